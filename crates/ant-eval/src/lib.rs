//! # ant-eval
//!
//! Evaluation of ANT (*Adapt Network Across Time for Efficient Video Processing*): COCO AP
//! under the UA-DETRAC ignored-region protocol, GMAC and measured latency, for one subnet on a
//! split ([`evaluate`], [`evaluate_stream`]), for the stages the main job trained
//! ([`summarize`], the second half of `cargo xtask train`), and for every method of the
//! paper's Table 1 on a training run ([`evaluate_run`], behind `cargo xtask eval`).
//!
//! The Table 1 runner, by file:
//! - `options`: [`EvalOptions`] and [`SearchOptions`], the default threshold sweeps;
//! - `run`: [`RunModels`] (a run's config and newest checkpoints) and [`evaluate_run`], which
//!   loads and recalibrates each method's model and runs the passes;
//! - `methods`: one method while it streams and its [`MethodReport`];
//! - `streaming`: the interleaved test pass;
//! - `search`: the static subnet search ("D0 w/ NAS") and its Pareto front;
//! - `latency`: the cached per-subnet [`LatencyTable`];
//! - `report` and `plots`: [`RunEvaluation`] (`report.json`), the markdown table, the SVG
//!   plots, [`write_outputs`].
//!
//!
//! Methods (as the run provides them):
//! - `static-full`: the full network (every stage at ratio 6) of stage 0 (the standalone
//!   detector), or of the stage-1 supernet when the run has no stage 0;
//! - `static-nas@<arch>`: the static subnets on the Pareto front of a search ("D0 w/ NAS"):
//!   sampled subnets of the stage-1 supernet, AP on a validation split held out of the
//!   training sequences, latency from a cached per-subnet table ([`LatencyTable`]);
//! - `dynamic-non-temporal`: the non-temporal dynamic network, when stage 2 of this run (or of
//!   the run given as `non_temporal_run`) trained one (`joint.non_temporal = true`);
//! - `ant-fixed<n>`: ANT with a key frame every `n` frames (`n` = the joint stage's clip
//!   length, 3 in the paper and the configs);
//! - `ant-adaptive@<threshold>`: ANT with adaptive key frames, per threshold of a sweep;
//! - `skipconv@<threshold>` and `skipconv-sparse@<threshold>` ("D0 w/ SkipConv"):
//!   `static-full`'s network with Skip-Convolutions (`ant_supernet::skipconv`, norm gates at
//!   each threshold of a sweep), timed with the dense kernel a CPU user has and with our
//!   sparse kernel; both compute the same outputs and count the same GMAC (the recomputed
//!   positions'). CPU engine only.
//!
//! Every evaluated subnet gets its batch-norm statistics recalibrated on training batches
//! first, exactly as the main job does before its evaluations (`norms::recalibrate_norms`,
//! `joint::recalibrate_joint`, the same calibration batches), so `static-full` and
//! `ant-fixed3` reproduce the run's `summary.json` AP.
//!
//! **Latency.** Batch 1, on the caller's thread pool, after `warmup_frames` frames per method;
//! each frame's time is [`AntDetector::process`] (forward, key-frame decision, fusion, gates,
//! box decoding, NMS). Image decoding (JPEG, letterbox, normalisation) is timed apart. The
//! methods run interleaved (each chunk of decoded frames goes through every method), so a
//! change of machine load hits all of them alike. `ms` is amortised from medians: `key_rate *
//! median(key frames) + (1 - key_rate) * median(other frames)`; the mean is reported too.
//!
//! **Validation split.** The synthetic and UA-DETRAC releases have only train and test
//! splits; the search holds out `val_sequences` training sequences, evenly spaced in name
//! order. They were seen in training (the run trained on every training sequence), so their
//! AP is optimistic, but the search never looks at the test split.

#![warn(missing_docs)]

mod error;
mod latency;
mod methods;
mod options;
mod plots;
mod report;
mod run;
mod search;
mod streaming;
mod subnet;
mod summary;

pub use error::{EvalError, Result};
pub use latency::{LatencyEntry, LatencyKey, LatencyTable, config_hash, median, pareto_front};
pub use methods::MethodReport;
pub use options::{DEFAULT_SKIPCONV_THRESHOLDS, DEFAULT_THRESHOLDS, EvalOptions, SearchOptions};
pub use plots::{Series, plots, scatter_svg};
pub use report::{RunEvaluation, markdown_table, write_outputs};
pub use run::{RunModels, evaluate_run};
pub use search::{SearchReport, SearchSample, sample_archs, validation_sequences};
pub use subnet::{EvalGroundTruth, EvalReport, MethodSummary, Summary, evaluate, evaluate_stream};
pub use summary::summarize;
