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
//!
//! `README.md` lists the entry points and what the neighbouring crates do;
//! `cargo run --release -p ant-eval --example evaluate_run [-- RUN_DIR]` evaluates every method
//! on a run (by default an untrained one on a tiny synthetic set) with small sweeps.
//!
//! ```
//! use ant_eval::{LatencyKey, LatencyTable, median, pareto_front, sample_archs};
//! use ant_supernet::{EfficientDetConfig, SubnetArch};
//!
//! // The search samples subnets of the supernet (each of its six elastic stages holds the
//! // expansion ratios 1 to 6): the largest and the smallest first, then seeded random ones.
//! let available = vec![(1..=6).collect::<Vec<usize>>(); 6];
//! let archs = sample_archs(3, 0, &available);
//! assert_eq!(archs.len(), 3);
//! assert_eq!((archs[0], archs[1]), (SubnetArch::LARGEST, SubnetArch::SMALLEST));
//!
//! // (validation AP, ms per frame) of four subnets: the front by ascending latency leaves
//! // out the one that is both slower and less accurate than another.
//! let points = [(0.42, 7.0), (0.30, 2.5), (0.28, 4.0), (0.38, 4.5)];
//! assert_eq!(pareto_front(&points), [1, 3, 0]);
//!
//! // Latencies are medians, which a single slow frame does not move.
//! assert_eq!(median(&[5.0, 4.0, 30.0]), Some(5.0));
//!
//! // A subnet's latency is measured once per machine setup and then read from the table.
//! let config = EfficientDetConfig::tiny(4).with_image_size(128);
//! let key = LatencyKey::new(SubnetArch::SMALLEST, &config, 1, "flex");
//! let mut table = LatencyTable::default();
//! assert_eq!(table.get_or_measure(&key, 5, || Ok(2.5))?, (2.5, false));
//! let again = table.get_or_measure(&key, 5, || unreachable!("the table holds it"))?;
//! assert_eq!(again, (2.5, true));
//! # Ok::<(), ant_eval::EvalError>(())
//! ```
//!
//! Table 1 on a run of `cargo xtask train`, with a shorter adaptive sweep:
//!
//! ```
//! use ant_eval::{EvalOptions, evaluate_run, markdown_table};
//! use burn::tensor::Device;
//!
//! fn table(run_dir: &std::path::Path) -> ant_eval::Result<()> {
//!     let mut options = EvalOptions::new(run_dir, Device::flex());
//!     options.thresholds = vec![0.05, 0.08];
//!     let evaluation = evaluate_run(&options)?;
//!     print!("{}", markdown_table(&evaluation));
//!     println!("outputs in {}", options.out_dir().display());
//!     Ok(())
//! }
//! ```

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
