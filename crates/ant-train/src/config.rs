//! The training configuration: one JSON file per experiment under `configs/`, with `key=value`
//! overrides from the command line, saved as `config.json` in the run directory (like the
//! `TrainingConfig` of burn's `examples/guide/src/training.rs`, in plain serde so the file is
//! the whole truth of a run).
//!
//! The paper's UA-DETRAC recipe (Sec. 4): SGD with momentum 0.9 (PyTorch semantics, dampening
//! 0), weight decay 4e-5, learning rate 0.01 decayed to 0.001 at epoch 3 of 4, batch 16, drop
//! path 0.5, focal + Huber losses; the joint stage uses lr 0.002 for 8 epochs.

use std::path::{Path, PathBuf};

use ant_supernet::checkpoint::write_atomic;
use ant_supernet::{EfficientDetConfig, LossConfig};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, TrainError};

/// The detector to train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSettings {
    /// A preset of `EfficientDetConfig::by_name`: `d0`, `d0_plus` or `tiny`.
    pub preset: String,
    /// Square input size in pixels (a multiple of 128 keeps every level exact).
    pub image_size: usize,
    /// Number of classes (4 for UA-DETRAC: car, bus, van, others).
    pub num_classes: usize,
    /// Anchor size relative to the level stride (effdet: 4.0). Smaller inputs shrink the
    /// vehicles, so the small configs use smaller anchors.
    pub anchor_scale: f32,
    /// Backbone width multiplier (1.0: EfficientNet-B0; the CPU default halves it).
    pub width_multiplier: f64,
    /// Backbone depth multiplier: block repeats are `ceil(repeats * depth)` (1.0: B0).
    pub depth_multiplier: f64,
}

impl ModelSettings {
    /// The detector config these settings describe.
    pub fn detector_config(&self) -> Result<EfficientDetConfig> {
        let mut config = EfficientDetConfig::by_name(&self.preset, self.num_classes)
            .ok_or_else(|| TrainError::InvalidConfig {
                reason: format!(
                    "unknown model preset {:?}: expected d0, d0_plus or tiny",
                    self.preset
                ),
            })?
            .with_image_size(self.image_size);
        config.anchor_scale = self.anchor_scale;
        config.backbone.width_multiplier = self.width_multiplier;
        config.backbone.depth_multiplier = self.depth_multiplier;
        Ok(config)
    }
}

/// Where the frames come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSettings {
    /// The release root (`Insight-MVT_Annotation_Train/`, `DETRAC-Train-Annotations-XML/`, ...,
    /// or the synthetic generator's output), relative to the working directory.
    pub root: PathBuf,
    /// Generate the synthetic dataset into `root` when it is missing.
    pub synthesize_if_missing: bool,
    /// Sequences of the generated synthetic set (40% of them test sequences).
    pub synth_sequences: usize,
    /// Frames per generated sequence.
    pub synth_frames: u32,
    /// Camera closeness of the generated set (`ant_detrac::SynthConfig::zoom`; 1 if absent).
    #[serde(default = "unit_zoom")]
    pub synth_zoom: f32,
    /// Keep every `train_frame_step`-th annotated training frame.
    pub train_frame_step: usize,
    /// Keep every `test_frame_step`-th annotated test frame for evaluation.
    pub test_frame_step: usize,
    /// Probability of a horizontal flip per training frame and epoch.
    pub flip_probability: f32,
    /// Strength `s` of the photometric jitter of training frames, drawn per frame (per clip
    /// in the joint stage) and epoch: brightness, contrast and saturation in `1 +- s`,
    /// channel gains in `1 +- s/3` (`ant_detrac::ColorJitter`). 0 (the default) disables it.
    #[serde(default)]
    pub color_jitter: f32,
}

fn sgd() -> String {
    "sgd".to_string()
}

fn one() -> usize {
    1
}

fn unit_zoom() -> f32 {
    1.0
}

/// The optimiser and schedule of one stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageSettings {
    /// Whether this stage runs.
    pub enabled: bool,
    /// Epochs over the training frames.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Cap on steps per epoch (`null`: the whole training set).
    pub max_steps_per_epoch: Option<usize>,
    /// Peak learning rate.
    pub lr: f64,
    /// Epochs at which the learning rate is multiplied by `lr_gamma`.
    pub lr_milestones: Vec<usize>,
    /// The decay factor at each milestone.
    pub lr_gamma: f64,
    /// Linear warm-up steps from `lr * warmup_factor` to `lr`.
    pub warmup_steps: usize,
    /// Learning rate factor at step 0 of the warm-up.
    pub warmup_factor: f64,
    /// `sgd` (the paper's; the default when absent) or `adamw` (Adam with decoupled weight
    /// decay `weight_decay`; `momentum` is unused).
    #[serde(default = "sgd")]
    pub optimizer: String,
    /// Clip each parameter's gradient to this L2 norm before the update (Burn's
    /// `GradientClippingConfig::Norm`); absent or `null`: no clipping.
    #[serde(default)]
    pub grad_clip_norm: Option<f32>,
    /// SGD momentum (dampening is 0, as in PyTorch).
    pub momentum: f64,
    /// L2 weight decay (applied to every parameter, as Burn's SGD does).
    pub weight_decay: f32,
    /// Stochastic depth rate of the backbone's residual blocks (timm's linear rule: block `i`
    /// of `n` drops with `rate * i / n`), in stages 0 and 1; the joint stage ignores it (its
    /// golden features come from the same network) and warns.
    pub drop_path: f32,
}

fn one_u32() -> u32 {
    1
}

fn all_stages() -> Vec<usize> {
    (0..=6).collect()
}

fn yes() -> bool {
    true
}

fn unit() -> f32 {
    1.0
}

fn two_sided() -> String {
    "two_sided".to_string()
}

fn current() -> String {
    "current".to_string()
}

/// The supernet stage: the sandwich rule with in-place distillation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SupernetSettings {
    /// Optimiser and schedule.
    #[serde(flatten)]
    pub stage: StageSettings,
    /// Random subnets per step besides the largest and the smallest.
    pub random_subnets: usize,
    /// Weight of the distillation loss (student vs the largest subnet's detached outputs).
    pub distill_weight: f32,
    /// Weight of the largest subnet's detection loss (1, the default when absent: the
    /// sandwich rule as published).
    #[serde(default = "unit")]
    pub largest_weight: f32,
    /// The students (every subnet but the largest) train the backbone only: their losses
    /// reach BiFPN and heads as a detached copy, so the shared neck and heads are trained by
    /// the largest alone and keep decoding the full network's features (our addition; `false`,
    /// the default when absent, trains them from every subnet as published).
    #[serde(default)]
    pub head_from_largest_only: bool,
    /// Weight of the largest subnet's distillation toward the frozen standalone detector
    /// (stage 0's weights, run on the same batch): it anchors the full network, which the
    /// key frames run, to the detector the supernet started from, while the students'
    /// gradients move the shared weights (our addition; 0, the default when absent, as
    /// published).
    #[serde(default)]
    pub standalone_distill_weight: f32,
}

/// The joint stage (ANT, Sec. 3.3): fusion modules and gates on clips with a fixed key-frame
/// schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JointSettings {
    /// Optimiser and schedule (the paper: lr 0.002, 8 epochs). Epochs count clips.
    #[serde(flatten)]
    pub stage: StageSettings,
    /// Frames per clip: one key frame then `clip_len - 1` non-key frames (3: the paper's fixed
    /// 1-in-3 schedule).
    pub clip_len: usize,
    /// Frames between consecutive frames of a training clip (1, the default when absent:
    /// consecutive frames). Larger gaps train the fusion modules on non-key frames further
    /// from their key frame, as adaptive key frames at a high threshold produce.
    #[serde(default = "one_u32")]
    pub frame_gap: u32,
    /// Frames between the key frames of successive clips of a sequence (absent: `clip_len *
    /// frame_gap`, non-overlapping clips).
    #[serde(default)]
    pub clip_step: Option<u32>,
    /// Gumbel-softmax temperature at the first step, annealed exponentially to
    /// `temperature_end` at the last.
    pub temperature_start: f32,
    /// Temperature at the last step.
    pub temperature_end: f32,
    /// Weight of the feature distillation (fused stage features toward the full network's
    /// "golden" features of the same non-key frame, mean squared error summed over stages).
    pub distill_weight: f32,
    /// Divide each stage's distillation error by the golden feature's mean square (a relative
    /// error per stage, so that the wide late stages with large activations do not drown the
    /// others or the detection loss). Our addition; `false`, the default when absent, is the
    /// plain mean squared error.
    #[serde(default)]
    pub distill_normalized: bool,
    /// Weight of distilling each non-key frame's head outputs toward the full network's on
    /// the same frame (the in-place distillation loss of stage 1: binary KL on the class
    /// probabilities, Huber on the box codes of positive anchors). Our addition beside the
    /// paper's feature distillation; 0 (the default when absent) turns it off.
    #[serde(default)]
    pub head_distill_weight: f32,
    /// Weight of the compute term `((E[GMAC] - target) / target)^2` on the gates' expected
    /// cost (our choice: the paper names no such term, yet without one nothing pushes the
    /// gates toward small widths).
    pub compute_weight: f32,
    /// `two_sided` (the default when absent): the compute term pulls the expected cost to the
    /// target from both sides; `above`: it only penalises a cost above the target
    /// (`max(0, E[GMAC] - target) / target`, squared), so gates may go narrower still when
    /// accuracy allows.
    #[serde(default = "two_sided")]
    pub compute_penalty: String,
    /// The target, as a fraction of the full network's GMAC per frame.
    pub target_gmac_fraction: f64,
    /// Hidden units of each gate.
    pub gate_hidden: usize,
    /// Residual fusion modules that start as the identity (`ant_temporal::FusionConfig`,
    /// our addition; `false` is the paper's module).
    #[serde(default)]
    pub residual_fusion: bool,
    /// What residual fusion modules add their output to: `current` (the default when absent:
    /// the gated subnet's own feature), `key` (the key frame's feature, so a fresh module
    /// passes the key frame's stage features on and learns the change) or `blend` (`key + m *
    /// (current - key)` with a learned sigmoid mask, `ant_temporal::FusionAnchor::Blend`).
    #[serde(default = "current")]
    pub fusion_anchor: String,
    /// Whether a non-key frame's next stage runs on the fused feature (`true`, the default
    /// when absent) or on the subnet's own output, the fused features going to the gates and
    /// the BiFPN only (`ant_temporal::AntTemporalConfig::fused_input`).
    #[serde(default = "yes")]
    pub fused_input: bool,
    /// The stage-level features (0..=6) that get a fusion module (absent: all seven); gates of
    /// the other stages read the pooled current and key features side by side
    /// (`ant_temporal::AntTemporalConfig::fusion_stages`). The non-temporal baseline always
    /// builds all seven (its gates read the frame's own features).
    #[serde(default = "all_stages")]
    pub fusion_stages: Vec<usize>,
    /// Keep the detector's batch norms at the statistics stage 2 starts from (recalibrated
    /// per ratio, the shared ones for the full network) instead of normalising with batch
    /// statistics: training then sees the normalisation that inference uses. Our addition
    /// (the paper is silent): with batch statistics the shared BiFPN/head norms drift to a
    /// mix of key-frame and fused features, and the full network's AP50 fell from 0.47 to
    /// 0.04 in 80 joint steps. Fusion-module norms train as usual.
    #[serde(default)]
    pub frozen_norms: bool,
    /// Train only the fusion modules and gates, keeping every detector weight from stage 1.
    /// The paper trains all weights but the stem; on a CPU budget of a few dozen steps the
    /// detector's shared weights drift toward the gated subnets (no loss anchors the full
    /// network here, unlike the sandwich of stage 1) and the key frames suffer.
    #[serde(default)]
    pub freeze_detector: bool,
    /// Train the non-temporal dynamic baseline instead: gates on the current frame only, no
    /// fusion, no key frames.
    pub non_temporal: bool,
    /// Also train the non-temporal dynamic baseline (these settings with `non_temporal` set,
    /// from the same supernet) into `RUN/stage2-nontemporal`, where `cargo xtask eval` finds
    /// it as `dynamic-non-temporal`. `false`, the default when absent, trains ANT only.
    #[serde(default)]
    pub non_temporal_baseline: bool,
}

impl JointSettings {
    /// The fusion stages of the temporal modules this stage builds: all seven for the
    /// non-temporal network (no key frames for its gates to read), else `fusion_stages`.
    pub fn temporal_fusion_stages(&self) -> Vec<usize> {
        if self.non_temporal {
            all_stages()
        } else {
            self.fusion_stages.clone()
        }
    }

    /// The fusion anchor named by `fusion_anchor` (validated by [`TrainConfig::validate`]).
    pub fn anchor(&self) -> ant_temporal::FusionAnchor {
        match self.fusion_anchor.as_str() {
            "key" => ant_temporal::FusionAnchor::Key,
            "blend" => ant_temporal::FusionAnchor::Blend,
            _ => ant_temporal::FusionAnchor::Current,
        }
    }
}

/// The focal and Huber loss hyper-parameters (effdet's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossSettings {
    /// Focal loss alpha.
    pub alpha: f32,
    /// Focal loss gamma.
    pub gamma: f32,
    /// Huber delta.
    pub delta: f32,
    /// Weight of the box loss.
    pub box_loss_weight: f32,
}

impl From<LossSettings> for LossConfig {
    fn from(settings: LossSettings) -> Self {
        LossConfig {
            alpha: settings.alpha,
            gamma: settings.gamma,
            delta: settings.delta,
            box_loss_weight: settings.box_loss_weight,
            ..LossConfig::default()
        }
    }
}

/// Evaluation on the test split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalSettings {
    /// Images per forward pass (1 measures per-frame latency honestly).
    pub batch_size: usize,
    /// Training batches whose average batch statistics replace each evaluated subnet's
    /// running statistics (0: evaluate with the running statistics as trained; see `norms`).
    pub recalibration_batches: usize,
}

/// A whole experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// A short name; the run directory defaults to `runs/<name>-<timestamp>`.
    pub name: String,
    /// Seed of everything random: initialisation, data order, flips, subnet sampling.
    pub seed: u64,
    /// An effdet COCO checkpoint (`.pth`) to start stage 0 from, class head re-initialised.
    pub init: Option<PathBuf>,
    /// Data-parallel replicas per training step of stages 0 and 1: each batch is split into
    /// this many shards, each run forward and backward by its own copy of the model on its own
    /// thread (the two cores of a laptop-class CPU); the gradients are summed, the batch-norm
    /// running statistics averaged. 1 runs the batch in one piece. Batch-norm statistics are
    /// per shard, as in PyTorch's DistributedDataParallel without SyncBatchNorm.
    #[serde(default = "one")]
    pub data_parallel: usize,
    /// The detector.
    pub model: ModelSettings,
    /// The data.
    pub data: DataSettings,
    /// The losses.
    pub loss: LossSettings,
    /// Stage 0: the standalone detector (the largest subnet only).
    pub standalone: StageSettings,
    /// Stage 1: the supernet.
    pub supernet: SupernetSettings,
    /// Stage 2: fusion modules and gates (joint).
    pub joint: JointSettings,
    /// Evaluation.
    pub eval: EvalSettings,
}

fn read_json_value(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|source| TrainError::io(path, source))?;
    serde_json::from_str(&text).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Sets `key.path=value` in a JSON object; the key must exist, the value is parsed as JSON
/// and, when that fails, taken as a string.
pub fn apply_override(root: &mut Value, text: &str) -> Result<()> {
    let bad = |reason: &str| TrainError::BadOverride {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    let (key, raw) = text
        .split_once('=')
        .ok_or_else(|| bad("expected key.path=value"))?;
    let mut slot = &mut *root;
    for part in key.trim().split('.') {
        let object = slot
            .as_object_mut()
            .ok_or_else(|| bad(&format!("{part:?}: its parent is not a section")))?;
        if !object.contains_key(part) {
            let hint = nearest_key(part, object.keys())
                .map_or_else(String::new, |near| format!(" (did you mean {near:?}?)"));
            return Err(bad(&format!("no config field {part:?}{hint}")));
        }
        slot = object.get_mut(part).expect("checked above");
    }
    let value = serde_json::from_str(raw.trim()).unwrap_or_else(|_| Value::String(raw.into()));
    *slot = value;
    Ok(())
}

/// The first key (in file order, depth first) of `given` that `known` does not have, as a
/// dotted path, with the known key nearest to it at that level. `known` is the parsed config
/// serialised back: it holds every field the config reads, the flattened ones included,
/// which `serde(deny_unknown_fields)` cannot check.
fn unknown_key(given: &Value, known: &Value, prefix: &str) -> Option<(String, Option<String>)> {
    let (Value::Object(given), Value::Object(known)) = (given, known) else {
        return None;
    };
    for (key, value) in given {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match known.get(key) {
            Some(known_value) => {
                if let Some(found) = unknown_key(value, known_value, &path) {
                    return Some(found);
                }
            }
            None => return Some((path, nearest_key(key, known.keys()))),
        }
    }
    None
}

/// The key of `candidates` nearest to `key`, when it is near enough to be a typo of it.
fn nearest_key<'a>(key: &str, candidates: impl Iterator<Item = &'a String>) -> Option<String> {
    candidates
        .map(|candidate| (edit_distance(key, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 3))
        .min()
        .map(|(_, candidate)| candidate.clone())
}

/// Levenshtein distance between two keys (by characters).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

impl TrainConfig {
    /// Reads a config file and applies `key=value` overrides in order.
    ///
    /// # Errors
    /// [`TrainError::UnknownConfigKey`] for a key the config does not read (with the nearest
    /// known key), besides unreadable files, malformed JSON, bad overrides and invalid values.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let mut value = read_json_value(path)?;
        for text in overrides {
            apply_override(&mut value, text)?;
        }
        let config: TrainConfig =
            serde_json::from_value(value.clone()).map_err(|source| TrainError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        let known = serde_json::to_value(&config).expect("a config always serialises");
        if let Some((key, nearest)) = unknown_key(&value, &known, "") {
            return Err(TrainError::UnknownConfigKey {
                path: path.to_path_buf(),
                key,
                hint: nearest.map_or_else(String::new, |n| format!(": did you mean {n:?}?")),
            });
        }
        config.validate()?;
        Ok(config)
    }

    /// Reads the `config.json` saved in a run directory.
    pub fn load_run(run_dir: &Path) -> Result<Self> {
        Self::load(&run_dir.join("config.json"), &[])
    }

    /// Writes the config as pretty JSON (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("a config always serialises");
        Ok(write_atomic(path, text.as_bytes())?)
    }

    /// Checks the values a run cannot start with.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: String| Err(TrainError::InvalidConfig { reason });
        self.model.detector_config()?;
        if self.model.image_size == 0 || !self.model.image_size.is_multiple_of(128) {
            return invalid(format!(
                "model.image_size {} must be a positive multiple of 128",
                self.model.image_size
            ));
        }
        let multipliers = [self.model.width_multiplier, self.model.depth_multiplier];
        if multipliers.iter().any(|m| !(m.is_finite() && *m > 0.0)) {
            return invalid("model width and depth multipliers must be positive".to_string());
        }
        if self.data.train_frame_step == 0 || self.data.test_frame_step == 0 {
            return invalid("data frame steps must be at least 1".to_string());
        }
        if !(0.0..1.0).contains(&self.data.color_jitter) {
            return invalid(format!(
                "data.color_jitter {} must be in [0, 1)",
                self.data.color_jitter
            ));
        }
        for (name, stage) in [
            ("standalone", &self.standalone),
            ("supernet", &self.supernet.stage),
            ("joint", &self.joint.stage),
        ] {
            if stage.batch_size == 0 {
                return invalid(format!("{name}.batch_size must be at least 1"));
            }
            if !(stage.lr.is_finite() && stage.lr > 0.0) {
                return invalid(format!("{name}.lr must be positive"));
            }
            if !matches!(stage.optimizer.as_str(), "sgd" | "adamw") {
                return invalid(format!(
                    "{name}.optimizer {:?}: expected \"sgd\" or \"adamw\"",
                    stage.optimizer
                ));
            }
            if stage
                .grad_clip_norm
                .is_some_and(|norm| !(norm.is_finite() && norm > 0.0))
            {
                return invalid(format!("{name}.grad_clip_norm must be positive"));
            }
            if stage.max_steps_per_epoch == Some(0) {
                return invalid(format!("{name}.max_steps_per_epoch must be at least 1"));
            }
        }
        if self.data_parallel == 0 {
            return invalid("data_parallel must be at least 1".to_string());
        }
        for (name, stage) in [
            ("standalone", &self.standalone),
            ("supernet", &self.supernet.stage),
        ] {
            if stage.batch_size < self.data_parallel {
                return invalid(format!(
                    "{name}.batch_size {} is smaller than data_parallel {}: a replica would \
                     get no images",
                    stage.batch_size, self.data_parallel
                ));
            }
        }
        let anchor = self.supernet.standalone_distill_weight;
        if !(anchor.is_finite() && anchor >= 0.0) {
            return invalid(format!(
                "supernet.standalone_distill_weight {anchor} must be zero or positive"
            ));
        }
        if anchor > 0.0 && self.supernet.stage.enabled && !self.standalone.enabled {
            return invalid(
                "supernet.standalone_distill_weight needs the standalone stage: it anchors the largest \
                 subnet to the detector stage 0 trains"
                    .to_string(),
            );
        }
        if self.joint.clip_len < 2 {
            return invalid("joint.clip_len must be at least 2 (a key and a non-key frame)".into());
        }
        if !(self.joint.temperature_start > 0.0 && self.joint.temperature_end > 0.0) {
            return invalid("joint temperatures must be positive".to_string());
        }
        if self.joint.target_gmac_fraction.is_nan() || self.joint.target_gmac_fraction <= 0.0 {
            return invalid("joint.target_gmac_fraction must be positive".to_string());
        }
        let stages = &self.joint.fusion_stages;
        if stages.iter().any(|&stage| stage > 6) || stages.windows(2).any(|w| w[0] >= w[1]) {
            return invalid(format!(
                "joint.fusion_stages {stages:?}: expected distinct stage indices 0..=6 in \
                 ascending order"
            ));
        }
        if !matches!(self.joint.compute_penalty.as_str(), "two_sided" | "above") {
            return invalid(format!(
                "joint.compute_penalty {:?}: expected \"two_sided\" or \"above\"",
                self.joint.compute_penalty
            ));
        }
        if !matches!(
            self.joint.fusion_anchor.as_str(),
            "current" | "key" | "blend"
        ) {
            return invalid(format!(
                "joint.fusion_anchor {:?}: expected \"current\", \"key\" or \"blend\"",
                self.joint.fusion_anchor
            ));
        }
        if self.eval.batch_size == 0 {
            return invalid("eval.batch_size must be at least 1".to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This package's directory, read when the test runs: a compile-time `env!` would keep the
    /// path of whichever checkout last built the test binary when checkouts share a target
    /// directory (as the README recommends), and the test would read that checkout's files.
    fn manifest_dir() -> std::path::PathBuf {
        std::env::var_os("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
            .into()
    }

    fn configs_dir() -> PathBuf {
        manifest_dir().join("../../configs")
    }

    #[test]
    fn should_parse_every_committed_config() {
        for name in ["default.json", "detrac-paper.json", "smoke.json"] {
            let config = TrainConfig::load(&configs_dir().join(name), &[]).unwrap();
            config.validate().unwrap();
        }
    }

    #[test]
    fn should_follow_the_paper_recipe_in_the_detrac_config() {
        let config = TrainConfig::load(&configs_dir().join("detrac-paper.json"), &[]).unwrap();
        let stage = &config.standalone;
        assert_eq!(config.model.preset, "d0");
        assert_eq!(config.model.image_size, 512);
        assert_eq!((stage.epochs, stage.batch_size), (4, 16));
        assert_eq!((stage.lr, stage.lr_gamma), (0.01, 0.1));
        assert_eq!(stage.lr_milestones, [3]);
        assert_eq!((stage.momentum, stage.weight_decay), (0.9, 4e-5));
        assert_eq!(stage.drop_path, 0.5);
    }

    #[test]
    fn should_apply_overrides_and_reject_unknown_keys() {
        let path = configs_dir().join("default.json");
        let overrides = ["standalone.epochs=7".to_string(), "name=other".to_string()];
        let config = TrainConfig::load(&path, &overrides).unwrap();
        assert_eq!(config.standalone.epochs, 7);
        assert_eq!(config.name, "other");
        let error = TrainConfig::load(&path, &["standalone.epoch=7".to_string()]).unwrap_err();
        assert!(matches!(error, TrainError::BadOverride { .. }), "{error}");
        let error = TrainConfig::load(&path, &["standalone.epochs=x".to_string()]).unwrap_err();
        assert!(matches!(error, TrainError::Json { .. }), "{error}");
    }

    #[test]
    fn should_name_an_unknown_key_with_its_file_and_the_nearest_known_one() {
        let dir = std::env::temp_dir().join(format!("ant-config-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut value = read_json_value(&configs_dir().join("default.json")).unwrap();
        value["standalone"]["warmup_stepz"] = Value::from(999);
        let path = dir.join("typo.json");
        std::fs::write(&path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
        let error = TrainConfig::load(&path, &[]).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(&error, TrainError::UnknownConfigKey { key, .. } if key == "standalone.warmup_stepz"),
            "{message}"
        );
        assert!(message.contains("typo.json"), "{message}");
        assert!(
            message.contains("did you mean \"warmup_steps\""),
            "{message}"
        );

        // A top-level key with nothing close: named, no suggestion.
        let mut value = read_json_value(&configs_dir().join("default.json")).unwrap();
        value["learning_rate_of_everything"] = Value::from(1);
        std::fs::write(&path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
        let message = TrainConfig::load(&path, &[]).unwrap_err().to_string();
        assert!(
            message.contains("\"learning_rate_of_everything\"")
                && !message.contains("did you mean"),
            "{message}"
        );
        // The same for --set: the key named, the near one suggested.
        let error = TrainConfig::load(
            &configs_dir().join("default.json"),
            &["standalone.warmup_stepz=3".into()],
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("\"warmup_stepz\"") && error.contains("did you mean \"warmup_steps\""),
            "{error}"
        );
        // A key of the flattened stage settings inside `supernet` is known.
        assert!(
            TrainConfig::load(
                &configs_dir().join("default.json"),
                &["supernet.lr=0.01".into()]
            )
            .is_ok()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn should_accept_sgd_or_adamw_and_name_anything_else() {
        let path = configs_dir().join("default.json");
        let adamw = ["supernet.optimizer=\"adamw\"".to_string()];
        TrainConfig::load(&path, &adamw).unwrap();
        let adam = ["joint.optimizer=adam".to_string()];
        let error = TrainConfig::load(&path, &adam).unwrap_err();
        assert!(error.to_string().contains("joint.optimizer"), "{error}");
    }

    #[test]
    fn should_accept_a_positive_gradient_clip_and_name_a_bad_one() {
        let path = configs_dir().join("default.json");
        let clip = ["supernet.grad_clip_norm=0.5".to_string()];
        let config = TrainConfig::load(&path, &clip).unwrap();
        assert_eq!(config.supernet.stage.grad_clip_norm, Some(0.5));
        assert_eq!(config.standalone.grad_clip_norm, None);
        let bad = ["joint.grad_clip_norm=-1".to_string()];
        let error = TrainConfig::load(&path, &bad).unwrap_err();
        assert!(
            error.to_string().contains("joint.grad_clip_norm"),
            "{error}"
        );
    }
}
