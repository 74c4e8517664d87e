//! What `cargo xtask eval` evaluates: the threshold sweeps, the static subnet search and the
//! run, split and outputs ([`EvalOptions`]).

use std::path::PathBuf;

use ant_detrac::Split;
use burn::tensor::Device;

/// The default adaptive thresholds (normalised L1 stem deviation; see `ant-scheduler`).
///
/// Chosen on the validation split (`cargo xtask eval --split val --val-sequences 12` on the
/// main job's run), never on test: there the key rate falls from 1.0 at 0.01 to 0.79 at
/// 0.02, 0.50 at 0.05, 0.24 at 0.08 and 0.10 at 0.16, fastest between 0.045 and 0.08, which
/// the sweep samples every 0.005; 0.32 keeps the end with about one key frame per synthetic
/// sequence. Real UA-DETRAC footage deviates by 0.1-0.2 two frames apart
/// (docs/temporal.md): pass `--thresholds` for it.
pub const DEFAULT_THRESHOLDS: [f32; 15] = [
    0.01, 0.02, 0.03, 0.04, 0.045, 0.05, 0.055, 0.06, 0.065, 0.07, 0.08, 0.1, 0.13, 0.16, 0.32,
];

/// The default Skip-Conv gate thresholds (mean absolute input change per channel at a
/// position, the same threshold for every convolution; see `ant_supernet::skipconv`).
///
/// Chosen on the validation split (`cargo xtask eval --split val --val-sequences 12` on the
/// main job's run), never on test: AP holds up to 0.005 (76% of the dense network's GMAC),
/// loses 0.010 at 0.01 (68%), 0.109 at 0.03 (39%) and 0.253 at 0.1 (16%). 0 is the exact
/// end: every position whose input changed at all.
pub const DEFAULT_SKIPCONV_THRESHOLDS: [f32; 5] = [0.0, 0.005, 0.01, 0.03, 0.1];

/// The static subnet search.
#[derive(Clone, Debug)]
pub struct SearchOptions {
    /// Subnets sampled (the largest and the smallest included); 0 disables the search.
    pub samples: usize,
    /// Training sequences held out as the validation split.
    pub val_sequences: usize,
    /// At most this many front subnets are evaluated on the test split (evenly spaced along
    /// the front, both ends kept).
    pub max_front: usize,
    /// The latency table (default: `OUT/latency-table.json`).
    pub latency_table: Option<PathBuf>,
    /// Seed of the subnet sampling.
    pub seed: u64,
    /// Measure every sampled subnet again and overwrite its cached latency (after a change of
    /// the inference code, or of the machine's load).
    pub remeasure_latency: bool,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            samples: 12,
            val_sequences: 4,
            max_front: 6,
            latency_table: None,
            seed: 0,
            remeasure_latency: false,
        }
    }
}

/// What `cargo xtask eval` evaluates and where it writes.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// The run directory of `cargo xtask train`.
    pub run_dir: PathBuf,
    /// The dataset root (default: the run config's `data.root`).
    pub data_root: Option<PathBuf>,
    /// The split evaluated (test).
    pub split: Split,
    /// Evaluate the validation sequences of the static search (`search.val_sequences`
    /// training sequences, evenly spaced in name order) instead of `split`: where a new
    /// default threshold sweep is chosen, never on the test split. They were seen in
    /// training, so their AP is optimistic; the stem deviations between frames, which the
    /// thresholds act on, are not.
    pub validation: bool,
    /// Output directory (default `RUN_DIR/eval`).
    pub out_dir: Option<PathBuf>,
    /// Adaptive key-frame thresholds.
    pub thresholds: Vec<f32>,
    /// Skip-Conv gate thresholds (empty: no Skip-Conv rows).
    pub skipconv_thresholds: Vec<f32>,
    /// The static subnet search.
    pub search: SearchOptions,
    /// Another run whose stage 2 trained the non-temporal dynamic network
    /// (`joint.non_temporal = true`), evaluated as `dynamic-non-temporal`.
    pub non_temporal_run: Option<PathBuf>,
    /// Score every `frame_step`-th annotated frame (default: the config's `test_frame_step`).
    pub frame_step: Option<usize>,
    /// Evaluate only the first sequences of the split (quick looks, tests).
    pub max_sequences: Option<usize>,
    /// Frames each method runs before timing starts.
    pub warmup_frames: usize,
    /// Threads of the CPU pool (set by the caller; recorded here and in the latency keys).
    pub threads: usize,
    /// The device (plain; recalibration adds autodiff itself).
    pub device: Device,
    /// Progress lines through `tracing`.
    pub progress: bool,
}

impl EvalOptions {
    /// The defaults for `run_dir` on `device`.
    pub fn new(run_dir: impl Into<PathBuf>, device: Device) -> Self {
        Self {
            run_dir: run_dir.into(),
            data_root: None,
            split: Split::Test,
            validation: false,
            out_dir: None,
            thresholds: DEFAULT_THRESHOLDS.to_vec(),
            skipconv_thresholds: DEFAULT_SKIPCONV_THRESHOLDS.to_vec(),
            search: SearchOptions::default(),
            non_temporal_run: None,
            frame_step: None,
            max_sequences: None,
            warmup_frames: 3,
            threads: 1,
            device,
            progress: false,
        }
    }

    /// The output directory.
    pub fn out_dir(&self) -> PathBuf {
        self.out_dir
            .clone()
            .unwrap_or_else(|| self.run_dir.join("eval"))
    }
}
