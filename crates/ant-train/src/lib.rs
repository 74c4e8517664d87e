//! # ant-train
//!
//! The training loops of ANT (*Adapt Network Across Time for Efficient Video Processing*,
//! `../shared/paper/ANT.md`, Sec. 3.3 and 4): the standalone detector (stage 0), the
//! supernet with the sandwich rule and in-place distillation (stage 1) and fusion + gates
//! (stage 2), as hand-written loops over Burn's autodiff (burn
//! `examples/custom-training-loop`); atomic per-epoch checkpoints with exact resume; metrics
//! files and a loss plot; the training half of `cargo xtask train` (`ant-eval` evaluates
//! what it trained).
//!
//! - [`config`]: the experiment file (`configs/*.json`) with `key=value` overrides.
//! - [`schedule`]: warm-up + step decay, a function of the step.
//! - [`joint`]: stage 2, fusion modules and gates on clips (Gumbel gates, compute term).
//! - [`trainer`]: the stage loops; [`checkpoint`]: atomic checkpoints; [`metrics`]: logs.
//! - [`norms`]: batch-norm recalibration of a subnet before evaluation.
//! - [`parallel`]: data-parallel steps, one model replica per shard and thread.
//! - [`pipeline`]: data preparation and stages 0, 1 and 2 into a run directory, the trained
//!   models handed over for evaluation; [`pipeline::write_untrained_run`], the same layout
//!   with random weights.
#![warn(missing_docs)]

pub mod checkpoint;
pub mod config;
mod driver;
pub mod error;
pub mod joint;
pub mod metrics;
pub mod norms;
pub mod parallel;
pub mod pipeline;
pub mod schedule;
pub mod trainer;

pub use config::TrainConfig;
pub use error::{Result, TrainError};
pub use pipeline::{PipelineOutcome, TrainedJoint, run_pipeline, write_untrained_run};
pub use trainer::{ModelInit, RunOptions, Stage, StageOutcome, TrainData, train_stage};
