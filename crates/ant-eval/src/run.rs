//! `cargo xtask eval`: every method of the paper's Table 1 on one run, in one process, each
//! sequence streamed frame by frame.
//!
//! Methods (as the run provides them):
//! - `static-full`: the full network (every stage at ratio 6) of stage 0 (the standalone
//!   detector), or of the stage-1 supernet when the run has no stage 0;
//! - `static-nas@<arch>`: the static subnets on the Pareto front of a search ("D0 w/ NAS"):
//!   sampled subnets of the stage-1 supernet, AP on a validation split held out of the
//!   training sequences, latency from a cached per-subnet table ([`crate::latency`]);
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

use std::path::{Path, PathBuf};
use std::time::Instant;

use ant_detrac::{
    DetracBatcher, InputTransform, LoadedSequence, ReleaseLayout, Split, load_frame, load_split,
};
use ant_metrics::{Detection, detections_to_json_string};
use ant_supernet::arch::{MAX_RATIO, NUM_ELASTIC_STAGES};
use ant_supernet::skipconv::SkipKernel;
use ant_supernet::{EfficientDet, SubnetArch};
use ant_temporal::{AntDetector, AntModel, AntTemporal, FrameResult, Mode};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{latest_checkpoint, write_atomic};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::eval::{EvalGroundTruth, MethodSummary, Summary, push_frame_detections};
use crate::joint::{JOINT_STAGE, NON_TEMPORAL_STAGE, calibration_clips, recalibrate_joint};
use crate::latency::{LatencyKey, LatencyTable, median, pareto_front};
use crate::norms::recalibrate_norms;
use crate::pipeline::{training_clips, training_frames};
use crate::plot::{Series, scatter_svg};
use crate::trainer::{Stage, calibration_batches, checkpoint_model};

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

/// Frames decoded at a time before every method runs on them.
const CHUNK_FRAMES: usize = 16;

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

/// The checkpoints of a run.
#[derive(Clone, Debug)]
pub struct RunModels {
    /// The run's config.
    pub config: TrainConfig,
    /// Stage 0's newest `model.bpk`.
    pub standalone: Option<PathBuf>,
    /// Stage 1's newest `model.bpk`.
    pub supernet: Option<PathBuf>,
    /// Stage 2's newest checkpoint directory (`model.bpk` + `model.temporal.bpk`).
    pub joint: Option<PathBuf>,
    /// The newest checkpoint directory of the non-temporal baseline trained beside ANT
    /// (`RUN/stage2-nontemporal`, `joint.non_temporal_baseline`).
    pub non_temporal: Option<PathBuf>,
}

impl RunModels {
    /// Finds the config and the newest checkpoint of each stage of `run_dir`.
    ///
    /// # Errors
    /// [`TrainError::NotFound`] naming the missing directory or file.
    pub fn locate(run_dir: &Path) -> Result<Self> {
        if !run_dir.is_dir() {
            return Err(TrainError::NotFound {
                what: "run directory".into(),
                path: run_dir.to_path_buf(),
            });
        }
        let config_path = run_dir.join("config.json");
        if !config_path.is_file() {
            return Err(TrainError::NotFound {
                what: "run config (not a `cargo xtask train` run directory?)".into(),
                path: config_path,
            });
        }
        let config = TrainConfig::load_run(run_dir)?;
        let newest_model = |stage: &str| -> Result<Option<PathBuf>> {
            let Some(checkpoint) = latest_checkpoint(&run_dir.join(stage))? else {
                return Ok(None);
            };
            let model = checkpoint_model(&checkpoint);
            if !model.is_file() {
                return Err(TrainError::NotFound {
                    what: format!("{stage} checkpoint model"),
                    path: model,
                });
            }
            Ok(Some(model))
        };
        let standalone = newest_model(Stage::Standalone.name())?;
        let supernet = newest_model(Stage::Supernet.name())?;
        let checkpoint_dir = |stage: &str| -> Result<Option<PathBuf>> {
            Ok(newest_model(stage)?.map(|model| {
                model
                    .parent()
                    .expect("a checkpoint model lies in its directory")
                    .to_path_buf()
            }))
        };
        let joint = checkpoint_dir(JOINT_STAGE)?;
        let non_temporal = checkpoint_dir(NON_TEMPORAL_STAGE)?;
        if standalone.is_none() && supernet.is_none() {
            return Err(TrainError::NotFound {
                what: "stage-0 or stage-1 checkpoint (epoch-NNNN/model.bpk with state.json)".into(),
                path: run_dir.join(Stage::Standalone.name()),
            });
        }
        Ok(Self {
            config,
            standalone,
            supernet,
            joint,
            non_temporal,
        })
    }
}

/// Everything measured for one method.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodReport {
    /// `static-full`, `static-nas@<arch>`, `dynamic-non-temporal`, `ant-fixed3`,
    /// `ant-adaptive@<threshold>`, `skipconv@<threshold>`, `skipconv-sparse@<threshold>`.
    pub name: String,
    /// `static-full`, `static-nas`, `non-temporal`, `ant-fixed`, `ant-adaptive`, `skipconv`
    /// (dense kernel), `skipconv-sparse`.
    pub family: String,
    /// The engine's mode, e.g. `adaptive(0.1)+gate`.
    pub mode: String,
    /// The checkpoint evaluated.
    pub source: String,
    /// The adaptive key-frame threshold, or the Skip-Conv gate threshold.
    pub threshold: Option<f32>,
    /// The subnet of a static method.
    pub arch: Option<String>,
    /// COCO AP (IoU 0.5:0.95) under the DETRAC ignored-region protocol, in [0, 1].
    pub ap: f64,
    /// AP at IoU 0.5.
    pub ap50: f64,
    /// AP at IoU 0.75.
    pub ap75: f64,
    /// All 12 of pycocotools' numbers under the same protocol (AP, AP50, AP75, APs, APm, APl,
    /// AR1, AR10, AR100, ARs, ARm, ARl; -1 where nothing could be measured): what `cargo xtask
    /// coco-eval --protocol detrac` prints for `detections_file` against `cargo xtask dataset
    /// to-coco` of the same sequences at `frame_step` (zeros in a report written before this
    /// field).
    #[serde(default)]
    pub stats: [f64; 12],
    /// Mean GMAC per frame (fusion and gates included where they ran).
    pub gmac: f64,
    /// Amortised ms per frame from medians (see the module docs).
    pub ms: f64,
    /// Mean ms per frame.
    pub ms_mean: f64,
    /// Median ms of key frames.
    pub ms_key_median: Option<f64>,
    /// Median ms of the other frames (every frame of a static or non-temporal method).
    pub ms_non_key_median: Option<f64>,
    /// Median ms of fusion + gates on non-key frames (gates alone for the non-temporal
    /// network).
    pub fusion_gate_ms_median: Option<f64>,
    /// Fraction of key frames (1 for a static subnet, which runs whole on every frame; 0 for
    /// the non-temporal network).
    pub key_rate: f64,
    /// Frames streamed.
    pub frames: usize,
    /// Key frames among them.
    pub key_frames: usize,
    /// Frames scored (annotated, every `frame_step`-th).
    pub scored_frames: usize,
    /// Parameters (detector subnet, plus the temporal modules a mode uses).
    pub params: u64,
    /// `[stage][ratio - 1]`: how often each elastic stage ran at each ratio, over the frames
    /// that were not key frames (key frames always run ratio 6).
    pub ratio_histogram: Vec<Vec<u64>>,
    /// Median stem deviation from the key frame (adaptive modes).
    pub deviation_median: Option<f64>,
    /// The COCO results file of its detections, relative to the output directory.
    pub detections_file: String,
}

impl MethodReport {
    /// The summary entry (`cargo xtask eval --json`).
    pub fn summary(&self) -> MethodSummary {
        MethodSummary {
            name: self.name.clone(),
            ap: self.ap,
            ap50: self.ap50,
            ap75: self.ap75,
            gmac: self.gmac,
            ms: self.ms,
            key_rate: self.key_rate,
        }
    }
}

/// One sampled subnet of the search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchSample {
    /// The subnet.
    pub arch: String,
    /// Validation AP.
    pub ap: f64,
    /// Validation AP50.
    pub ap50: f64,
    /// GMAC per frame.
    pub gmac: f64,
    /// Median ms per frame from the latency table.
    pub ms: f64,
    /// Whether the latency came from the cached table.
    pub cached: bool,
    /// On the Pareto front of validation AP vs latency.
    pub on_front: bool,
}

/// The static subnet search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchReport {
    /// The held-out training sequences.
    pub val_sequences: Vec<String>,
    /// Validation frames scored per subnet.
    pub val_frames: usize,
    /// Every sampled subnet.
    pub samples: Vec<SearchSample>,
    /// The front, by ascending latency.
    pub front: Vec<String>,
    /// The front subnets evaluated on the split.
    pub evaluated: Vec<String>,
    /// The latency table file.
    pub latency_table: String,
    /// Latencies taken from the table / measured now.
    pub cache_hits: usize,
    /// Latencies measured in this run.
    pub measured: usize,
    /// Wall-clock seconds of the search.
    pub seconds: f64,
}

/// The whole evaluation (`report.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEvaluation {
    /// The run directory.
    pub run_dir: String,
    /// The dataset root.
    pub data_root: String,
    /// The split evaluated.
    pub split: String,
    /// Its sequences.
    pub sequences: Vec<String>,
    /// Frames streamed per method.
    pub frames: usize,
    /// Frames scored per method.
    pub scored_frames: usize,
    /// Every `frame_step`-th annotated frame is scored.
    pub frame_step: usize,
    /// Input size in pixels.
    pub image_size: usize,
    /// Threads of the CPU pool.
    pub threads: usize,
    /// The device.
    pub device: String,
    /// Median ms to decode, letterbox and normalise a frame (excluded from method latency).
    pub decode_ms_median: Option<f64>,
    /// Mean of the same.
    pub decode_ms_mean: f64,
    /// Warm-up frames per method.
    pub warmup_frames: usize,
    /// The methods.
    pub methods: Vec<MethodReport>,
    /// The static subnet search, when run.
    pub search: Option<SearchReport>,
    /// What was skipped and why.
    pub notes: Vec<String>,
    /// Wall-clock seconds per phase.
    pub seconds: Vec<(String, f64)>,
}

impl RunEvaluation {
    /// The summary (`{"methods": [..]}`).
    pub fn summary(&self) -> Summary {
        Summary {
            methods: self.methods.iter().map(MethodReport::summary).collect(),
        }
    }

    /// The method named `name`.
    pub fn method(&self, name: &str) -> Option<&MethodReport> {
        self.methods.iter().find(|method| method.name == name)
    }
}

/// A method before it runs.
struct MethodSpec {
    name: String,
    family: &'static str,
    source: String,
    threshold: Option<f32>,
    arch: Option<SubnetArch>,
    params: u64,
}

/// A method while it runs: its detector and what it has measured.
struct MethodRun {
    spec: MethodSpec,
    detector: AntDetector,
    detections: Vec<Detection>,
    key_ms: Vec<f64>,
    non_key_ms: Vec<f64>,
    fusion_gate_ms: Vec<f64>,
    gmac: f64,
    frames: usize,
    keys: usize,
    scored: usize,
    histogram: [[u64; MAX_RATIO]; NUM_ELASTIC_STAGES],
    deviations: Vec<f64>,
}

impl MethodRun {
    fn new(
        spec: MethodSpec,
        model: EfficientDet,
        temporal: Option<AntTemporal>,
        mode: Mode,
    ) -> Result<Self> {
        Ok(Self {
            spec,
            detector: AntDetector::new(model, temporal, mode)?,
            detections: Vec::new(),
            key_ms: Vec::new(),
            non_key_ms: Vec::new(),
            fusion_gate_ms: Vec::new(),
            gmac: 0.0,
            frames: 0,
            keys: 0,
            scored: 0,
            histogram: [[0; MAX_RATIO]; NUM_ELASTIC_STAGES],
            deviations: Vec::new(),
        })
    }

    fn record(
        &mut self,
        result: FrameResult,
        image_id: Option<u64>,
        letterbox: &ant_geom::Letterbox,
    ) {
        self.frames += 1;
        self.gmac += result.gmac;
        if result.key {
            self.keys += 1;
            self.key_ms.push(result.latency_ms);
        } else {
            self.non_key_ms.push(result.latency_ms);
            for (stage, &ratio) in result.arch.ratios().iter().enumerate() {
                self.histogram[stage][ratio - 1] += 1;
            }
            // Fusion and gates (ANT), or gates alone (the non-temporal network).
            if self.detector.mode().needs_temporal() {
                self.fusion_gate_ms.push(result.fusion_gate_ms);
            }
        }
        if let Some(deviation) = result.deviation {
            self.deviations.push(f64::from(deviation));
        }
        if let Some(image_id) = image_id {
            self.scored += 1;
            push_frame_detections(&mut self.detections, image_id, letterbox, result.detections);
        }
    }

    fn report(&self, ground_truth: &EvalGroundTruth) -> Result<MethodReport> {
        let result = ground_truth.score(&self.detections)?;
        let frames = self.frames.max(1) as f64;
        let key_rate = self.keys as f64 / frames;
        let mode = self.detector.mode();
        // A static subnet runs all of itself on every frame: key rate 1 (the summary's
        // convention); the non-temporal network has no key frames at all.
        let reported_key_rate = if mode.key_frames.is_none()
            && mode.width != ant_temporal::WidthPolicy::Gate
            && mode.skip_conv.is_none()
        {
            1.0
        } else {
            key_rate
        };
        let key_median = median(&self.key_ms);
        let non_key_median = median(&self.non_key_ms);
        let ms = match (key_median, non_key_median) {
            (Some(key), Some(other)) => key_rate * key + (1.0 - key_rate) * other,
            (Some(only), None) | (None, Some(only)) => only,
            (None, None) => 0.0,
        };
        let total_ms: f64 = self.key_ms.iter().chain(&self.non_key_ms).sum();
        Ok(MethodReport {
            name: self.spec.name.clone(),
            family: self.spec.family.to_string(),
            mode: self.detector.mode().name(),
            source: self.spec.source.clone(),
            threshold: self.spec.threshold,
            arch: self.spec.arch.map(|arch| arch.to_string()),
            ap: result.stats[0].max(0.0),
            ap50: result.stats[1].max(0.0),
            ap75: result.stats[2].max(0.0),
            stats: result.stats,
            gmac: self.gmac / frames,
            ms,
            ms_mean: total_ms / frames,
            ms_key_median: key_median,
            ms_non_key_median: non_key_median,
            fusion_gate_ms_median: median(&self.fusion_gate_ms),
            key_rate: reported_key_rate,
            frames: self.frames,
            key_frames: self.keys,
            scored_frames: self.scored,
            params: self.spec.params,
            ratio_histogram: self.histogram.iter().map(|row| row.to_vec()).collect(),
            deviation_median: median(&self.deviations),
            detections_file: format!("detections/{}.json", file_stem(&self.spec.name)),
        })
    }
}

/// A file-name-safe form of a method name.
fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Streams `sequences` through every method, interleaved chunk by chunk; returns the
/// per-frame decoding milliseconds. With `scored_only`, only the frames that are scored run
/// (for static subnets, which keep no state between frames).
fn stream_pass(
    runs: &mut [MethodRun],
    sequences: &[LoadedSequence],
    ground_truth: &EvalGroundTruth,
    image_size: usize,
    warmup_frames: usize,
    scored_only: bool,
    device: &Device,
) -> Result<Vec<f64>> {
    let transform = InputTransform::new(image_size as u32, image_size as u32);
    let to_tensor = |image: Vec<f32>| {
        Tensor::<4>::from_data(
            TensorData::new(image, [1, 3, image_size, image_size]),
            device,
        )
    };
    if warmup_frames > 0
        && let Some(first) = sequences.first()
    {
        for frame in first.video_frames()?.iter().take(warmup_frames) {
            let image = to_tensor(load_frame(frame, &transform)?.image);
            for run in runs.iter_mut() {
                run.detector.process(image.clone())?;
            }
        }
    }
    let mut decode_ms = Vec::new();
    let mut rotation = 0;
    for sequence in sequences {
        for run in runs.iter_mut() {
            run.detector.reset();
        }
        let mut frames = sequence.video_frames()?;
        let image_id = |frame: &ant_detrac::FrameRef| {
            ground_truth
                .image_ids
                .get(&(frame.sequence.to_string(), frame.frame))
                .copied()
        };
        if scored_only {
            frames.retain(|frame| image_id(frame).is_some());
        }
        for chunk in frames.chunks(CHUNK_FRAMES) {
            let mut decoded = Vec::with_capacity(chunk.len());
            for frame in chunk {
                let started = Instant::now();
                let sample = load_frame(frame, &transform)?;
                decode_ms.push(started.elapsed().as_secs_f64() * 1e3);
                decoded.push((
                    image_id(frame),
                    sample.targets.letterbox,
                    to_tensor(sample.image),
                ));
            }
            // Each chunk starts with the next method: the first method after decoding meets
            // caches the decoder filled, and always putting static-full (the speedups'
            // denominator) there measured it 0.3-0.4 ms slower than the same network with
            // the supernet's weights.
            let count = runs.len();
            for offset in 0..count {
                let run = &mut runs[(offset + rotation) % count];
                for (image_id, letterbox, image) in &decoded {
                    let result = run.detector.process(image.clone())?;
                    run.record(result, *image_id, letterbox);
                }
            }
            rotation += 1;
        }
    }
    Ok(decode_ms)
}

/// `count` distinct subnets among those the model holds (`available[stage]`: its ratios):
/// the largest and the smallest first, then uniform random ones from `seed`.
pub fn sample_archs(count: usize, seed: u64, available: &[Vec<usize>]) -> Vec<SubnetArch> {
    let pick = |choose: &dyn Fn(&[usize]) -> usize| {
        let mut ratios = [MAX_RATIO; NUM_ELASTIC_STAGES];
        for (stage, slot) in ratios.iter_mut().enumerate() {
            *slot = choose(&available[stage]);
        }
        SubnetArch::new(ratios).expect("ratios of the model are valid")
    };
    let mut archs = Vec::new();
    for arch in [
        pick(&|ratios| *ratios.iter().max().expect("a stage has ratios")),
        pick(&|ratios| *ratios.iter().min().expect("a stage has ratios")),
    ] {
        if archs.len() < count && !archs.contains(&arch) {
            archs.push(arch);
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5ea7c4);
    let mut attempts = 0;
    while archs.len() < count && attempts < 1000 * count.max(1) {
        attempts += 1;
        let mut ratios = [MAX_RATIO; NUM_ELASTIC_STAGES];
        for (stage, slot) in ratios.iter_mut().enumerate() {
            *slot = available[stage][rng.random_range(0..available[stage].len())];
        }
        let arch = SubnetArch::new(ratios).expect("ratios of the model are valid");
        if !archs.contains(&arch) {
            archs.push(arch);
        }
    }
    archs
}

/// `limit` indices of `front` evenly spaced, both ends kept.
fn spread(front: &[usize], limit: usize) -> Vec<usize> {
    if limit == 0 {
        return Vec::new();
    }
    if front.len() <= limit {
        return front.to_vec();
    }
    if limit == 1 {
        return vec![front[front.len() - 1]];
    }
    let mut picked: Vec<usize> = (0..limit)
        .map(|i| front[(i * (front.len() - 1) + (limit - 1) / 2) / (limit - 1)])
        .collect();
    picked.dedup();
    picked
}

/// Training sequences held out for the search: `count` of them, evenly spaced in name order.
pub fn validation_sequences(train: &[LoadedSequence], count: usize) -> Vec<LoadedSequence> {
    let mut sorted: Vec<&LoadedSequence> = train.iter().collect();
    sorted.sort_by(|a, b| a.paths.name.cmp(&b.paths.name));
    let count = count.min(sorted.len());
    (0..count)
        .map(|i| sorted[i * sorted.len() / count].clone())
        .collect()
}

fn info(progress: bool, message: &str) {
    if progress {
        tracing::info!("{message}");
    }
}

/// Evaluates every method on the run and writes the outputs (see [`write_outputs`]).
///
/// # Errors
/// A missing run directory, config or checkpoint ([`TrainError::NotFound`]), unreadable
/// data, or a failing model.
pub fn evaluate_run(options: &EvalOptions) -> Result<RunEvaluation> {
    let started_all = Instant::now();
    let mut seconds = Vec::new();
    let mut notes = Vec::new();
    let models = RunModels::locate(&options.run_dir)?;
    let config = &models.config;
    let out_dir = options.out_dir();
    let device = &options.device;
    let root = options
        .data_root
        .clone()
        .unwrap_or_else(|| config.data.root.clone());
    if !root.is_dir() {
        return Err(TrainError::NotFound {
            what: "dataset root (pass --data DIR)".into(),
            path: root,
        });
    }
    let layout = ReleaseLayout::new(root.clone());
    let mut sequences = if options.validation {
        validation_sequences(
            &load_split(&layout, Split::Train)?,
            options.search.val_sequences,
        )
    } else {
        load_split(&layout, options.split)?
    };
    if let Some(limit) = options.max_sequences {
        sequences.truncate(limit);
    }
    if sequences.is_empty() {
        return Err(TrainError::NotFound {
            what: format!("{} sequences", options.split),
            path: root,
        });
    }
    let frame_step = options.frame_step.unwrap_or(config.data.test_frame_step);
    let ground_truth = EvalGroundTruth::new(&sequences, &root, frame_step)?;

    // Calibration batches, built exactly as the main job builds them.
    let started = Instant::now();
    let train_sequences = if options.split == Split::Train && !options.validation {
        Vec::new()
    } else {
        load_split(&layout, Split::Train)?
    };
    let recalibrate = config.eval.recalibration_batches > 0 && !train_sequences.is_empty();
    if config.eval.recalibration_batches > 0 && train_sequences.is_empty() {
        notes.push(
            "no training sequences to recalibrate batch norms on: running statistics used".into(),
        );
    }
    let size = config.model.image_size;
    let batcher = DetracBatcher::new(InputTransform::new(size as u32, size as u32));
    let calibration = if recalibrate {
        let data = training_frames(config, &train_sequences)?;
        calibration_batches(
            &data,
            config.eval.recalibration_batches,
            config.standalone.batch_size.max(2),
            config.seed,
            device,
        )?
    } else {
        Vec::new()
    };
    let recalibrated = |model: &EfficientDet, arch: &SubnetArch| -> Result<EfficientDet> {
        if recalibrate {
            // Untracked parameters: the autodiff backend then records no graph for the
            // calibration forwards (with tracked ones, each recalibration kept about 1.5 GB
            // of graph alive, no backward ever freeing it: 12 search subnets ran out of
            // memory). Batch norms still take their training path (their flag is separate).
            recalibrate_norms(&model.clone().no_grad(), arch, &calibration)
        } else {
            Ok(model.clone())
        }
    };
    seconds.push(("calibration-data".into(), started.elapsed().as_secs_f64()));

    let mut runs = Vec::new();
    // static-full.
    let started = Instant::now();
    let (full_path, full_stage) = match (&models.standalone, &models.supernet) {
        (Some(path), _) => (path.clone(), "stage 0"),
        (None, Some(path)) => (path.clone(), "stage 1 (no stage 0 in this run)"),
        (None, None) => unreachable!("RunModels::locate checks one exists"),
    };
    let full = EfficientDet::load(&full_path, device)?;
    let full_params = full.cost(&SubnetArch::LARGEST).total.params;
    let full = recalibrated(&full, &SubnetArch::LARGEST)?;
    let full_source = format!("{} ({full_stage})", full_path.display());
    runs.push(MethodRun::new(
        MethodSpec {
            name: "static-full".into(),
            family: "static-full",
            source: full_source.clone(),
            threshold: None,
            arch: Some(SubnetArch::LARGEST),
            params: full_params,
        },
        full.clone(),
        None,
        Mode::static_full(),
    )?);
    // D0 w/ Skip-Conv: the same network, each threshold with both kernels.
    let mut skipconv_thresholds = options.skipconv_thresholds.clone();
    skipconv_thresholds.sort_by(f32::total_cmp);
    skipconv_thresholds.dedup();
    if !skipconv_thresholds.is_empty() && (device.is_autodiff() || *device != Device::flex()) {
        notes.push(format!(
            "Skip-Conv runs on the CPU engine only: no skipconv rows on {device:?}"
        ));
    } else {
        for threshold in skipconv_thresholds {
            for (name, family, kernel) in [
                ("skipconv", "skipconv", SkipKernel::Dense),
                ("skipconv-sparse", "skipconv-sparse", SkipKernel::Sparse),
            ] {
                runs.push(MethodRun::new(
                    MethodSpec {
                        name: format!("{name}@{threshold}"),
                        family,
                        source: full_source.clone(),
                        threshold: Some(threshold),
                        arch: Some(SubnetArch::LARGEST),
                        params: full_params,
                    },
                    full.clone(),
                    None,
                    Mode::skip_conv(threshold, kernel),
                )?);
            }
        }
    }
    drop(full);

    // The static subnet search on the validation split.
    let mut search_report = None;
    if let Some(supernet_path) = &models.supernet {
        if options.search.samples > 0 {
            let supernet = EfficientDet::load(supernet_path, device)?;
            let (report, front) = run_search(
                &supernet,
                &recalibrated,
                &train_sequences,
                &root,
                frame_step,
                options,
                &out_dir,
            )?;
            for arch in front {
                runs.push(MethodRun::new(
                    MethodSpec {
                        name: format!("static-nas@{arch}"),
                        family: "static-nas",
                        source: format!("{} (stage 1)", supernet_path.display()),
                        threshold: None,
                        arch: Some(arch),
                        params: supernet.cost(&arch).total.params,
                    },
                    recalibrated(&supernet, &arch)?,
                    None,
                    Mode::static_subnet(arch),
                )?);
            }
            search_report = report;
        } else {
            notes.push("static subnet search disabled (--search-samples 0)".into());
        }
    } else {
        notes.push("no stage-1 supernet in the run: no static subnet search".into());
    }
    seconds.push(("search".into(), started.elapsed().as_secs_f64()));

    // Stage 2: ANT or the non-temporal dynamic network.
    let started = Instant::now();
    let joint_inputs = JointInputs {
        train_sequences: &train_sequences,
        batcher,
        recalibrate,
        device,
    };
    if let Some(joint_dir) = &models.joint {
        let joint = load_recalibrated_joint(joint_dir, config, &joint_inputs)?;
        let joint_settings = &config.joint;
        let source = format!("{} (stage 2)", joint_dir.display());
        if joint_settings.non_temporal {
            runs.push(non_temporal_run(&joint, source)?);
            notes.push("stage 2 trained the non-temporal dynamic network: no ANT methods".into());
        } else {
            let detector_params = joint.detector.cost(&SubnetArch::LARGEST).total.params;
            let params = detector_params + joint.temporal.num_params() as u64;
            let interval = joint_settings.clip_len.max(1);
            let mut temporal_methods = vec![(
                format!("ant-fixed{interval}"),
                "ant-fixed",
                None,
                Mode::fixed_interval(interval),
            )];
            // Where AP is lost between the supernet and ANT: the same key frames with the
            // non-key frames at fixed widths (fusion without gates), the widest and the
            // narrowest.
            for arch in [SubnetArch::LARGEST, SubnetArch::SMALLEST] {
                temporal_methods.push((
                    format!("ant-fixed{interval}+width@{arch}"),
                    "ant-ablation",
                    None,
                    Mode::fixed_interval(interval).with_fixed_width(arch),
                ));
            }
            let mut thresholds = options.thresholds.clone();
            thresholds.sort_by(f32::total_cmp);
            thresholds.dedup();
            for threshold in thresholds {
                temporal_methods.push((
                    format!("ant-adaptive@{threshold}"),
                    "ant-adaptive",
                    Some(threshold),
                    Mode::adaptive(threshold),
                ));
            }
            for (name, family, threshold, mode) in temporal_methods {
                runs.push(MethodRun::new(
                    MethodSpec {
                        name,
                        family,
                        source: source.clone(),
                        threshold,
                        arch: None,
                        params,
                    },
                    joint.detector.clone(),
                    Some(joint.temporal.clone()),
                    mode,
                )?);
            }
        }
    } else {
        notes.push("no stage-2 checkpoint in the run: ANT methods skipped".into());
    }
    match &options.non_temporal_run {
        Some(other_dir) => {
            let other = RunModels::locate(other_dir)?;
            let joint_dir = other.joint.ok_or_else(|| TrainError::NotFound {
                what: "stage-2 checkpoint of the non-temporal run".into(),
                path: other_dir.join(JOINT_STAGE),
            })?;
            if !other.config.joint.non_temporal {
                return Err(TrainError::InvalidConfig {
                    reason: format!(
                        "{} trained ANT, not the non-temporal network (its joint.non_temporal \
                         is false)",
                        other_dir.display()
                    ),
                });
            }
            let joint = load_recalibrated_joint(&joint_dir, &other.config, &joint_inputs)?;
            runs.push(non_temporal_run(
                &joint,
                format!("{} (stage 2, non-temporal run)", joint_dir.display()),
            )?);
        }
        None if !config.joint.non_temporal => match &models.non_temporal {
            Some(joint_dir) => {
                let mut baseline = config.clone();
                baseline.joint.non_temporal = true;
                let joint = load_recalibrated_joint(joint_dir, &baseline, &joint_inputs)?;
                runs.push(non_temporal_run(
                    &joint,
                    format!("{} (stage 2, non-temporal baseline)", joint_dir.display()),
                )?);
            }
            None => notes.push(
                "no non-temporal dynamic network: train one beside ANT \
                 (`--set joint.non_temporal_baseline=true`) or in its own run \
                 (`--set joint.non_temporal=true`, passed with --non-temporal-run)"
                    .into(),
            ),
        },
        None => {}
    }
    seconds.push(("load-temporal".into(), started.elapsed().as_secs_f64()));

    let started = Instant::now();
    info(
        options.progress,
        &format!(
            "streaming {} sequences through {} methods",
            sequences.len(),
            runs.len()
        ),
    );
    let decode_ms = stream_pass(
        &mut runs,
        &sequences,
        &ground_truth,
        size,
        options.warmup_frames,
        false,
        device,
    )?;
    seconds.push(("test-pass".into(), started.elapsed().as_secs_f64()));

    std::fs::create_dir_all(out_dir.join("detections"))
        .map_err(|source| TrainError::io(out_dir.join("detections"), source))?;
    let mut methods = Vec::new();
    for run in &runs {
        let report = run.report(&ground_truth)?;
        write_atomic(
            &out_dir.join(&report.detections_file),
            detections_to_json_string(&run.detections).as_bytes(),
        )?;
        info(
            options.progress,
            &format!(
                "{}: AP {:.3} AP50 {:.3} GMAC {:.3} {:.1} ms key rate {:.3}",
                report.name, report.ap, report.ap50, report.gmac, report.ms, report.key_rate
            ),
        );
        methods.push(report);
    }
    let first = &runs[0];
    seconds.push(("total".into(), started_all.elapsed().as_secs_f64()));
    let evaluation = RunEvaluation {
        run_dir: options.run_dir.display().to_string(),
        data_root: root.display().to_string(),
        split: if options.validation {
            format!("val ({} training sequences)", sequences.len())
        } else {
            options.split.to_string()
        },
        sequences: sequences.iter().map(|s| s.paths.name.clone()).collect(),
        frames: first.frames,
        scored_frames: first.scored,
        frame_step,
        image_size: size,
        threads: options.threads,
        device: format!("{device:?}"),
        decode_ms_median: median(&decode_ms),
        decode_ms_mean: decode_ms.iter().sum::<f64>() / decode_ms.len().max(1) as f64,
        warmup_frames: options.warmup_frames,
        methods,
        search: search_report,
        notes,
        seconds,
    };
    write_outputs(&evaluation, &out_dir)?;
    Ok(evaluation)
}

/// What loading a stage-2 model for evaluation needs.
struct JointInputs<'a> {
    train_sequences: &'a [LoadedSequence],
    batcher: DetracBatcher,
    recalibrate: bool,
    device: &'a Device,
}

/// Loads a stage-2 checkpoint and recalibrates its fusion norms as the main job does (the
/// same calibration clips of `config`), with untracked parameters.
fn load_recalibrated_joint(
    joint_dir: &Path,
    config: &TrainConfig,
    inputs: &JointInputs,
) -> Result<AntModel> {
    let joint = AntModel::load(joint_dir, inputs.device)?;
    if !inputs.recalibrate {
        return Ok(joint);
    }
    let settings = &config.joint;
    let clips = training_clips(config, inputs.train_sequences)?;
    let pairs = calibration_clips(&clips, &inputs.batcher, config, inputs.device)?;
    recalibrate_joint(&joint.no_grad(), &pairs, settings.non_temporal)
}

/// The `dynamic-non-temporal` method of a non-temporal stage-2 model.
fn non_temporal_run(joint: &AntModel, source: String) -> Result<MethodRun> {
    let detector_params = joint.detector.cost(&SubnetArch::LARGEST).total.params;
    let gate_params: usize = joint.temporal.gates.iter().map(|g| g.num_params()).sum();
    MethodRun::new(
        MethodSpec {
            name: "dynamic-non-temporal".into(),
            family: "non-temporal",
            source,
            threshold: None,
            arch: None,
            params: detector_params + gate_params as u64,
        },
        joint.detector.clone(),
        Some(joint.temporal.clone()),
        Mode::non_temporal(),
    )
}

/// The search: sample subnets, validation AP of each (recalibrated), latency from the table,
/// the Pareto front. Returns the report and the front subnets to evaluate on the split.
fn run_search(
    supernet: &EfficientDet,
    recalibrated: &dyn Fn(&EfficientDet, &SubnetArch) -> Result<EfficientDet>,
    train_sequences: &[LoadedSequence],
    root: &Path,
    frame_step: usize,
    options: &EvalOptions,
    out_dir: &Path,
) -> Result<(Option<SearchReport>, Vec<SubnetArch>)> {
    let started = Instant::now();
    let search = &options.search;
    let val = validation_sequences(train_sequences, search.val_sequences);
    if val.is_empty() {
        return Ok((None, Vec::new()));
    }
    let ground_truth = EvalGroundTruth::new(&val, root, frame_step)?;
    let available: Vec<Vec<usize>> = supernet
        .backbone
        .stages
        .iter()
        .map(|stage| stage[0].ratios.clone())
        .collect();
    let archs = sample_archs(search.samples, search.seed, &available);
    let table_path = search
        .latency_table
        .clone()
        .unwrap_or_else(|| out_dir.join("latency-table.json"));
    let mut table = LatencyTable::load(&table_path)?;
    let backend = format!("{:?}", options.device);
    let (mut hits, mut measured) = (0, 0);
    // Every sampled subnet in one interleaved pass (as the test pass), so load changes hit
    // them alike; latency is the median over the validation frames after the warm-up.
    let mut runs = Vec::with_capacity(archs.len());
    for arch in &archs {
        runs.push(MethodRun::new(
            MethodSpec {
                name: format!("search@{arch}"),
                family: "static-nas",
                source: String::new(),
                threshold: None,
                arch: Some(*arch),
                params: supernet.cost(arch).total.params,
            },
            recalibrated(supernet, arch)?,
            None,
            Mode::static_subnet(*arch),
        )?);
    }
    info(
        options.progress,
        &format!(
            "search: {} subnets on {} validation frames",
            archs.len(),
            ground_truth.image_ids.len()
        ),
    );
    stream_pass(
        &mut runs,
        &val,
        &ground_truth,
        supernet.config.image_size,
        options.warmup_frames,
        true,
        &options.device,
    )?;
    let mut samples = Vec::new();
    for (index, (arch, run)) in archs.iter().zip(&runs).enumerate() {
        let report = run.report(&ground_truth)?;
        let key = LatencyKey::new(*arch, &supernet.config, options.threads, backend.clone());
        if search.remeasure_latency {
            table.entries.remove(&key.text());
        }
        let (ms, cached) = table.get_or_measure(&key, report.frames, || Ok(report.ms))?;
        if cached {
            hits += 1;
        } else {
            measured += 1;
        }
        info(
            options.progress,
            &format!(
                "search {}/{}: {arch} val AP {:.3} AP50 {:.3} {:.1} ms{}",
                index + 1,
                archs.len(),
                report.ap,
                report.ap50,
                ms,
                if cached { " (cached)" } else { "" }
            ),
        );
        samples.push(SearchSample {
            arch: arch.to_string(),
            ap: report.ap,
            ap50: report.ap50,
            gmac: report.gmac,
            ms,
            cached,
            on_front: false,
        });
    }
    drop(runs);
    table.save(&table_path)?;
    let points: Vec<(f64, f64)> = samples.iter().map(|s| (s.ap, s.ms)).collect();
    let front = pareto_front(&points);
    for &index in &front {
        samples[index].on_front = true;
    }
    let evaluated = spread(&front, search.max_front);
    Ok((
        Some(SearchReport {
            val_sequences: val.iter().map(|s| s.paths.name.clone()).collect(),
            val_frames: ground_truth.image_ids.len(),
            front: front.iter().map(|&i| samples[i].arch.clone()).collect(),
            evaluated: evaluated.iter().map(|&i| samples[i].arch.clone()).collect(),
            samples,
            latency_table: table_path.display().to_string(),
            cache_hits: hits,
            measured,
            seconds: started.elapsed().as_secs_f64(),
        }),
        evaluated.iter().map(|&i| archs[i]).collect(),
    ))
}

fn optional_ms(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_string(), |ms| format!("{ms:.1}"))
}

/// The markdown report: the analogue of the paper's Table 1, ratio histograms, the search and
/// the speedup of each adaptive threshold over `static-full`.
pub fn markdown_table(evaluation: &RunEvaluation) -> String {
    let mut text = String::new();
    let baseline = evaluation.method("static-full");
    text.push_str(&format!(
        "Run `{}`, split `{}` ({} sequences, {} frames streamed per method, {} scored: the \
         annotated frames at step {}), {} px, device `{}`, {} thread(s), batch 1, {} warm-up frames \
         per method. Decoding a frame (JPEG, letterbox, normalisation) took {} ms (median), \
         excluded from the latencies below. `ms/frame` is amortised from medians: key rate x \
         median key-frame ms + (1 - key rate) x median other-frame ms.\n\n",
        evaluation.run_dir,
        evaluation.split,
        evaluation.sequences.len(),
        evaluation.frames,
        evaluation.scored_frames,
        evaluation.frame_step,
        evaluation.image_size,
        evaluation.device,
        evaluation.threads,
        evaluation.warmup_frames,
        optional_ms(evaluation.decode_ms_median),
    ));
    text.push_str(
        "| method | AP | AP50 | AP75 | GMAC/frame | ms/frame | key-frame ms | other-frame ms | \
         fusion+gates ms | key rate | params | speedup | AP vs static-full |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for method in &evaluation.methods {
        let (speedup, delta) = baseline.map_or(("—".into(), "—".into()), |base| {
            (
                format!("{:.2}x", base.ms / method.ms.max(1e-9)),
                format!("{:+.3}", method.ap - base.ap),
            )
        });
        text.push_str(&format!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {} | {} | {} | {:.3} | {} | {} | {} \
             |\n",
            method.name,
            method.ap,
            method.ap50,
            method.ap75,
            method.gmac,
            method.ms,
            optional_ms(method.ms_key_median),
            optional_ms(method.ms_non_key_median),
            optional_ms(method.fusion_gate_ms_median),
            method.key_rate,
            method.params,
            speedup,
            delta,
        ));
    }
    if let Some(base) = baseline {
        let adaptive: Vec<&MethodReport> = evaluation
            .methods
            .iter()
            .filter(|m| m.family == "ant-adaptive" || m.family == "ant-fixed")
            .collect();
        if !adaptive.is_empty() {
            text.push_str("\nANT against `static-full` (amortised ms/frame, AP):\n\n");
            for method in adaptive {
                text.push_str(&format!(
                    "- `{}`: {:.2}x ({:.1} vs {:.1} ms/frame), {:.3} vs {:.3} GMAC/frame, AP \
                     {:.3} vs {:.3} ({:+.3}), AP50 {:.3} vs {:.3} ({:+.3}); key rate {:.3}{}\n",
                    method.name,
                    base.ms / method.ms.max(1e-9),
                    method.ms,
                    base.ms,
                    method.gmac,
                    base.gmac,
                    method.ap,
                    base.ap,
                    method.ap - base.ap,
                    method.ap50,
                    base.ap50,
                    method.ap50 - base.ap50,
                    method.key_rate,
                    method
                        .deviation_median
                        .map_or(String::new(), |d| format!(", median stem deviation {d:.3}")),
                ));
            }
        }
    }
    text.push_str(&where_ap_is_lost(evaluation));
    text.push_str(&skipconv_rows(evaluation));
    text.push_str(&against_the_front(evaluation));
    text.push_str(
        "\nChosen ratios per elastic stage over the frames that are not key frames (counts of \
         ratios 1/2/3/4/5/6; key frames always run 6):\n\n\
         | method | stage 1 | stage 2 | stage 3 | stage 4 | stage 5 | stage 6 |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for method in &evaluation.methods {
        let cells: Vec<String> = method
            .ratio_histogram
            .iter()
            .map(|row| {
                row.iter()
                    .map(|count| count.to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect();
        text.push_str(&format!("| {} | {} |\n", method.name, cells.join(" | ")));
    }
    if let Some(search) = &evaluation.search {
        text.push_str(&format!(
            "\nStatic subnet search: {} subnets of the stage-1 supernet on {} validation frames \
             (training sequences {} held out; seen in training, never the test split); latency \
             from `{}` ({} cached, {} measured now); {:.1} s.\n\n\
             | subnet | val AP | val AP50 | GMAC | ms | on front | evaluated |\n\
             |---|---|---|---|---|---|---|\n",
            search.samples.len(),
            search.val_frames,
            search.val_sequences.join(", "),
            search.latency_table,
            search.cache_hits,
            search.measured,
            search.seconds,
        ));
        let mut samples: Vec<&SearchSample> = search.samples.iter().collect();
        samples.sort_by(|a, b| a.ms.total_cmp(&b.ms));
        for sample in samples {
            text.push_str(&format!(
                "| {} | {:.3} | {:.3} | {:.3} | {:.1}{} | {} | {} |\n",
                sample.arch,
                sample.ap,
                sample.ap50,
                sample.gmac,
                sample.ms,
                if sample.cached { " (cached)" } else { "" },
                if sample.on_front { "yes" } else { "" },
                if search.evaluated.contains(&sample.arch) {
                    "yes"
                } else {
                    ""
                },
            ));
        }
    }
    if !evaluation.notes.is_empty() {
        text.push('\n');
        for note in &evaluation.notes {
            text.push_str(&format!("- note: {note}\n"));
        }
    }
    text
}

/// The adaptive point whose AP is within `tolerance` of static-full's at the best speed (or
/// the one with the best AP when none is).
fn best_adaptive(evaluation: &RunEvaluation, tolerance: f64) -> Option<&MethodReport> {
    let base = evaluation.method("static-full")?;
    let adaptive = evaluation
        .methods
        .iter()
        .filter(|m| m.family == "ant-adaptive");
    adaptive
        .clone()
        .filter(|m| m.ap >= base.ap - tolerance)
        .min_by(|a, b| a.ms.total_cmp(&b.ms))
        .or_else(|| adaptive.max_by(|a, b| a.ap.total_cmp(&b.ap)))
}

/// The "where AP is lost" table: standalone detector -> supernet -> fusion -> gates ->
/// key-frame schedule, each row the method isolating one step.
fn where_ap_is_lost(evaluation: &RunEvaluation) -> String {
    let find = |prefix: &str, suffix: &str| {
        evaluation
            .methods
            .iter()
            .find(|m| m.name.starts_with(prefix) && m.name.ends_with(suffix))
    };
    let adaptive = best_adaptive(evaluation, 0.005);
    let rows = [
        (
            "standalone detector (stage 0)",
            evaluation.method("static-full"),
        ),
        (
            "supernet, full network (stage 1)",
            evaluation.method("static-nas@6,6,6,6,6,6"),
        ),
        (
            "supernet, smallest subnet",
            evaluation.method("static-nas@1,1,1,1,1,1"),
        ),
        (
            "fusion, non-key frames at the widest width",
            find("ant-fixed", "+width@6,6,6,6,6,6"),
        ),
        (
            "fusion, non-key frames at the smallest width",
            find("ant-fixed", "+width@1,1,1,1,1,1"),
        ),
        (
            "gates (fixed key frames)",
            evaluation.methods.iter().find(|m| m.family == "ant-fixed"),
        ),
        (
            "adaptive key frames (the fastest within 0.005 AP)",
            adaptive,
        ),
    ];
    if rows.iter().filter(|(_, m)| m.is_some()).count() < 3 {
        return String::new();
    }
    let base = evaluation.method("static-full");
    let mut text = String::from(
        "\nWhere AP is lost, from the standalone detector to ANT (each row the method that \
         isolates one step):\n\n\
         | step | method | AP | AP vs static-full | ms/frame | key rate |\n\
         |---|---|---|---|---|---|\n",
    );
    for (step, method) in rows {
        if let Some(method) = method {
            text.push_str(&format!(
                "| {step} | {} | {:.3} | {} | {:.1} | {:.3} |\n",
                method.name,
                method.ap,
                base.map_or("—".into(), |b| format!("{:+.3}", method.ap - b.ap)),
                method.ms,
                method.key_rate,
            ));
        }
    }
    text
}

/// Table 1's Skip-Conv row per threshold: both kernels' latency beside static-full's.
fn skipconv_rows(evaluation: &RunEvaluation) -> String {
    let dense: Vec<&MethodReport> = evaluation
        .methods
        .iter()
        .filter(|m| m.family == "skipconv")
        .collect();
    let Some(base) = evaluation.method("static-full") else {
        return String::new();
    };
    if dense.is_empty() {
        return String::new();
    }
    let mut text = String::from(
        "\nD0 w/ Skip-Conv (norm gates on every convolution of `static-full`'s network): GMAC \
         of the recomputed positions; ms with the dense kernel (every convolution whole, the \
         gates on top: what a CPU user gets) and with our sparse kernel (only the recomputed \
         positions).\n\n\
         | threshold | AP | AP vs static-full | GMAC/frame | share of static-full's GMAC | \
         dense-kernel ms | sparse-kernel ms | speedup dense / sparse |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for method in dense {
        let threshold = method.threshold.unwrap_or(0.0);
        let sparse = evaluation.method(&format!("skipconv-sparse@{threshold}"));
        text.push_str(&format!(
            "| {threshold} | {:.3} | {:+.3} | {:.3} | {:.2} | {:.1} | {} | {:.2}x / {} |\n",
            method.ap,
            method.ap - base.ap,
            method.gmac,
            method.gmac / base.gmac.max(1e-12),
            method.ms,
            sparse.map_or("—".into(), |s| format!("{:.1}", s.ms)),
            base.ms / method.ms.max(1e-9),
            sparse.map_or("—".into(), |s| format!(
                "{:.2}x",
                base.ms / s.ms.max(1e-9)
            )),
        ));
    }
    text
}

/// Fig. 4's comparison as a table: each adaptive point against the best static subnet of the
/// searched front at or below its latency.
fn against_the_front(evaluation: &RunEvaluation) -> String {
    let statics: Vec<&MethodReport> = evaluation
        .methods
        .iter()
        .filter(|m| m.family == "static-nas")
        .collect();
    let adaptive: Vec<&MethodReport> = evaluation
        .methods
        .iter()
        .filter(|m| m.family == "ant-adaptive")
        .collect();
    if statics.is_empty() || adaptive.is_empty() {
        return String::new();
    }
    let mut text = String::from(
        "\nANT adaptive against the static-NAS front (Fig. 4): the best static subnet at or \
         below the same latency.\n\n\
         | method | ms/frame | AP | best static at or below | its AP | ANT at or above |\n\
         |---|---|---|---|---|---|\n",
    );
    let mut wins = 0;
    for method in &adaptive {
        let best = statics
            .iter()
            .filter(|s| s.ms <= method.ms)
            .max_by(|a, b| a.ap.total_cmp(&b.ap));
        let (name, ap, at_or_above) = match best {
            Some(best) => (
                best.name.clone(),
                format!("{:.3}", best.ap),
                method.ap >= best.ap,
            ),
            None => ("none as fast".into(), "—".into(), true),
        };
        wins += usize::from(at_or_above);
        text.push_str(&format!(
            "| {} | {:.1} | {:.3} | {name} | {ap} | {} |\n",
            method.name,
            method.ms,
            method.ap,
            if at_or_above { "yes" } else { "no" },
        ));
    }
    text.push_str(&format!(
        "\n{wins} of {} adaptive points at or above the front.\n",
        adaptive.len()
    ));
    text
}

/// The two figures (AP vs GMAC, AP vs latency), each method family a point or a curve.
pub fn plots(evaluation: &RunEvaluation) -> (String, String) {
    let families = [
        ("static-full", "static-full (D0)"),
        ("static-nas", "static subnets (NAS front)"),
        ("non-temporal", "dynamic non-temporal"),
        ("ant-fixed", "ANT fixed 1-in-n"),
        ("ant-adaptive", "ANT adaptive (thresholds)"),
        ("skipconv", "D0 w/ Skip-Conv, dense kernel"),
        ("skipconv-sparse", "D0 w/ Skip-Conv, sparse kernel"),
    ];
    let series = |x_of: fn(&MethodReport) -> f64| -> Vec<Series> {
        families
            .iter()
            .filter_map(|(family, label)| {
                let mut members: Vec<&MethodReport> = evaluation
                    .methods
                    .iter()
                    .filter(|m| m.family == *family)
                    .collect();
                if members.is_empty() {
                    return None;
                }
                // A threshold sweep is drawn in threshold order, the rest by the x value.
                members.sort_by(|a, b| match (a.threshold, b.threshold) {
                    (Some(ta), Some(tb)) => ta.total_cmp(&tb),
                    _ => x_of(a).total_cmp(&x_of(b)),
                });
                Some(Series {
                    label: (*label).to_string(),
                    points: members.iter().map(|m| (x_of(m), m.ap)).collect(),
                    line: members.len() > 1,
                    point_labels: members
                        .iter()
                        .map(|m| m.threshold.map_or(String::new(), |t| t.to_string()))
                        .collect(),
                })
            })
            .collect()
    };
    let subtitle = format!(
        "{} ({} px, {} thread(s))",
        evaluation.split, evaluation.image_size, evaluation.threads
    );
    (
        scatter_svg(
            &format!("AP vs GMAC per frame, {subtitle}"),
            "GMAC per frame",
            "AP (IoU 0.5:0.95)",
            &series(|m| m.gmac),
        ),
        scatter_svg(
            &format!("AP vs latency, {subtitle}"),
            "ms per frame (amortised, batch 1)",
            "AP (IoU 0.5:0.95)",
            &series(|m| m.ms),
        ),
    )
}

/// Writes `report.json` (everything), `summary.json` (the `--json` summary), `table.md`,
/// `ap-vs-gmac.svg` and `ap-vs-latency.svg` into `out_dir`, each atomically (the COCO results
/// per method, `detections/<method>.json`, are written by [`evaluate_run`]).
pub fn write_outputs(evaluation: &RunEvaluation, out_dir: &Path) -> Result<()> {
    let json = serde_json::to_string_pretty(evaluation).expect("a report always serialises");
    write_atomic(&out_dir.join("report.json"), json.as_bytes())?;
    let summary =
        serde_json::to_string_pretty(&evaluation.summary()).expect("a summary always serialises");
    write_atomic(&out_dir.join("summary.json"), summary.as_bytes())?;
    write_atomic(
        &out_dir.join("table.md"),
        markdown_table(evaluation).as_bytes(),
    )?;
    let (gmac, latency) = plots(evaluation);
    write_atomic(&out_dir.join("ap-vs-gmac.svg"), gmac.as_bytes())?;
    write_atomic(&out_dir.join("ap-vs-latency.svg"), latency.as_bytes())?;
    Ok(())
}

/// Writes an untrained run (random weights, seeded by the config) with the layout of
/// `cargo xtask train`: `config.json`, one checkpoint per stage (`epoch-0001/model.bpk` +
/// `state.json`; stage 2 also `model.temporal.bpk`). For tests, and for timing the
/// evaluation without training first.
pub fn write_untrained_run(run_dir: &Path, config: &TrainConfig, device: &Device) -> Result<()> {
    std::fs::create_dir_all(run_dir).map_err(|source| TrainError::io(run_dir, source))?;
    config.save(&run_dir.join("config.json"))?;
    let detector_config = config.model.detector_config()?;
    let model = EfficientDet::init(&detector_config, device);
    for stage in [
        Stage::Standalone.name(),
        Stage::Supernet.name(),
        JOINT_STAGE,
    ] {
        let checkpoint = run_dir.join(stage).join("epoch-0001");
        let model_path = checkpoint_model(&checkpoint);
        model.save(&model_path)?;
        if stage == JOINT_STAGE {
            let temporal = ant_temporal::AntTemporalConfig::new()
                .with_gate_hidden(config.joint.gate_hidden)
                .with_residual_fusion(config.joint.residual_fusion)
                .with_fusion_anchor(config.joint.anchor())
                .with_fused_input(config.joint.fused_input)
                .with_fusion_stages(config.joint.temporal_fusion_stages())
                .init(&detector_config.backbone, device);
            temporal.save(&ant_temporal::temporal_path(&model_path))?;
        }
        let state = crate::checkpoint::TrainState {
            stage: stage.to_string(),
            epochs_done: 1,
            global_step: 0,
            seed: config.seed,
            last_loss: 0.0,
        };
        let text = serde_json::to_string_pretty(&state).expect("a train state always serialises");
        write_atomic(&checkpoint.join("state.json"), text.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_sample_distinct_subnets_starting_with_the_extremes() {
        let all: Vec<Vec<usize>> = vec![(1..=6).collect(); NUM_ELASTIC_STAGES];
        let archs = sample_archs(12, 0, &all);
        assert_eq!(archs.len(), 12);
        assert_eq!(archs[0], SubnetArch::LARGEST);
        assert_eq!(archs[1], SubnetArch::SMALLEST);
        for (i, a) in archs.iter().enumerate() {
            assert!(!archs[i + 1..].contains(a), "{a} twice");
        }
        assert_eq!(archs, sample_archs(12, 0, &all));
        assert_ne!(archs[2..], sample_archs(12, 1, &all)[2..]);
        // A model holding only ratio 6 has one subnet.
        let only_six = vec![vec![6]; NUM_ELASTIC_STAGES];
        assert_eq!(sample_archs(12, 0, &only_six), vec![SubnetArch::LARGEST]);
    }

    #[test]
    fn should_spread_a_long_front_keeping_both_ends() {
        let front: Vec<usize> = (10..20).collect();
        let picked = spread(&front, 4);
        assert_eq!(picked.len(), 4);
        assert_eq!(picked[0], 10);
        assert_eq!(picked[3], 19);
        assert_eq!(spread(&front[..3], 6), vec![10, 11, 12]);
    }

    #[test]
    fn should_name_result_files_safely() {
        assert_eq!(
            file_stem("static-nas@1,2,3,4,5,6"),
            "static-nas@1_2_3_4_5_6"
        );
        assert_eq!(file_stem("ant-adaptive@0.1"), "ant-adaptive@0.1");
    }
}
