//! # ant-train
//!
//! The training loops of ANT (*Adapt Network Across Time for Efficient Video Processing*,
//! `../shared/paper/ANT.md`, Sec. 3.3 and 4): the standalone detector (stage 0) and the
//! supernet with the sandwich rule and in-place distillation (stage 1), as hand-written loops
//! over Burn's autodiff (burn `examples/custom-training-loop`); atomic per-epoch checkpoints
//! with exact resume; metrics files and a loss plot; evaluation with COCO AP under the
//! UA-DETRAC ignored-region protocol; the whole pipeline behind `cargo xtask train`.
//!
//! - [`config`]: the experiment file (`configs/*.json`) with `key=value` overrides.
//! - [`schedule`]: warm-up + step decay, a function of the step.
//! - [`joint`]: stage 2, fusion modules and gates on clips (Gumbel gates, compute term).
//! - [`trainer`]: the stage loops; [`checkpoint`]: atomic checkpoints; [`metrics`]: logs.
//! - [`norms`]: batch-norm recalibration of a subnet before evaluation.
//! - [`parallel`]: data-parallel steps, one model replica per shard and thread.
//! - [`eval`]: AP/AP50/GMAC/ms of a subnet on a split, the summary JSON.
//! - [`pipeline`]: data preparation, stages 0 and 1, evaluation, `summary.json`.
//! - [`evaluation`]: `cargo xtask eval`, every method of Table 1 on a run, streamed; the static
//!   subnet search with its cached [`latency`] table; markdown, JSON, [`plot`]s, COCO results.
#![warn(missing_docs)]

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod eval;
pub mod evaluation;
pub mod joint;
pub mod latency;
pub mod metrics;
pub mod norms;
pub mod parallel;
pub mod pipeline;
pub mod plot;
pub mod schedule;
pub mod trainer;

pub use config::TrainConfig;
pub use error::{Result, TrainError};
pub use eval::{EvalReport, MethodSummary, Summary, evaluate};
pub use evaluation::{EvalOptions, RunEvaluation, SearchOptions, evaluate_run};
pub use pipeline::{PipelineOutcome, run_pipeline};
pub use trainer::{ModelInit, RunOptions, Stage, StageOutcome, TrainData, train_stage};
