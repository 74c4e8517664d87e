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
//!
//! `README.md` lists the entry points and what the neighbouring crates do;
//! `cargo run --release -p ant-train --example tiny_run` trains all three stages for a step or
//! two on a tiny synthetic set and prints the run directory it wrote.
//!
//! ```
//! use std::path::Path;
//!
//! use ant_train::schedule::LrSchedule;
//! use ant_train::trainer::{Stage, epoch_order, steps_per_epoch};
//! use ant_train::{RunOptions, TrainConfig};
//! use burn::tensor::Device;
//!
//! // The committed CPU config, shrunk with the `key=value` overrides of `cargo xtask train --set`.
//! let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/default.json");
//! let overrides = [
//!     "model.image_size=128".to_string(),
//!     "standalone.epochs=1".into(),
//!     "standalone.max_steps_per_epoch=2".into(),
//! ];
//! let config = TrainConfig::load(&path, &overrides)?;
//! assert_eq!(config.model.image_size, 128);
//! // 96 training frames in batches of 4 make 24 steps, capped at 2.
//! assert_eq!(steps_per_epoch(96, &config.standalone), 2);
//!
//! // Stage 0 of the full config at 24 steps per epoch: a linear warm-up from 10% of the rate
//! // 0.02 over 40 steps, then a tenth of it from epoch 10 (step 240) on.
//! let full = TrainConfig::load(&path, &[])?;
//! let schedule = LrSchedule::for_stage(&full.standalone, 24);
//! assert!((schedule.lr_at(0) - 0.002).abs() < 1e-12);
//! assert!((schedule.lr_at(20) - 0.011).abs() < 1e-12);
//! assert_eq!(schedule.lr_at(40), 0.02);
//! assert!((schedule.lr_at(240) - 0.002).abs() < 1e-12);
//!
//! // An epoch's frame order is a seeded shuffle, so a resumed run sees the same frames.
//! let order = epoch_order(8, config.seed, Stage::Standalone, 0);
//! assert_eq!(order, epoch_order(8, config.seed, Stage::Standalone, 0));
//! let mut sorted = order.clone();
//! sorted.sort();
//! assert_eq!(sorted, (0..8).collect::<Vec<_>>());
//!
//! // Where and how a training runs, apart from the experiment: resume a killed run.
//! let options = RunOptions {
//!     resume: true,
//!     ..RunOptions::new("runs/tiny", Device::flex())
//! };
//! assert!(options.replica_devices.is_empty() && options.progress.is_quiet());
//! # Ok::<(), ant_train::TrainError>(())
//! ```
//!
//! The whole training, as `cargo xtask train` runs it (the example does this on a tiny set):
//!
//! ```
//! use ant_train::{RunOptions, TrainConfig, run_pipeline};
//! use burn::tensor::Device;
//!
//! fn train(config: &TrainConfig, run_dir: &std::path::Path) -> ant_train::Result<()> {
//!     let trained = run_pipeline(config, &RunOptions::new(run_dir, Device::flex()))?;
//!     for (phase, seconds) in &trained.seconds {
//!         println!("{phase}: {seconds:.1} s");
//!     }
//!     // `ant_eval::summarize(config, &trained, &device)` evaluates the trained models.
//!     Ok(())
//! }
//! ```
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
pub mod progress;
pub mod schedule;
pub mod trainer;

pub use config::TrainConfig;
pub use error::{Result, TrainError};
pub use pipeline::{PipelineOutcome, TrainedJoint, run_pipeline, write_untrained_run};
pub use progress::Progress;
pub use trainer::{ModelInit, RunOptions, Stage, StageOutcome, TrainData, train_stage};
