//! The streaming ANT detector: one frame at a time, with key frames, gated widths and fusion,
//! and the paper's baselines as modes of the same engine.
//!
//! **Prepared weights.** At creation every elastic stage is extracted once per ratio it holds
//! (`ElasticMbConv::extract`: sliced copies of the shared weights and that ratio's private
//! norms). Per frame the engine only picks the prepared blocks of the chosen ratio: no
//! narrowing or copying of weights, so a narrow stage costs what its MACs say.
//!
//! **Data flow.** A key frame runs stem, MBConv1 stage and the six elastic stages at ratio 6
//! and stores the seven stage outputs; BiFPN and heads run on its stages 2, 4, 6. A non-key
//! frame runs stem and MBConv1 stage, fuses stage 0 with the key frame's stage 0; then for
//! each elastic stage the gate on the previous fused feature picks the ratio, the stage runs
//! at it on the fused feature, and its output is fused with the key frame's; BiFPN and heads
//! run on the fused stages 2, 4, 6.

use std::path::Path;
use std::time::Instant;

use ant_geom::InputTransform;
use ant_scheduler::{KeyFramePolicy, KeyFrameScheduler};
use ant_supernet::arch::{MAX_RATIO, NUM_ELASTIC_STAGES};
use ant_supernet::backbone::ElasticMbConv;
use ant_supernet::config::PYRAMID_STAGES;
use ant_supernet::prepared::{Map, PreparedDetector, PreparedOutputs};
use ant_supernet::skipconv::{SkipConvDetector, SkipConvOptions, SkipKernel};
use ant_supernet::{Anchors, Detections, EfficientDet, HeadOutputs, SubnetArch, SupernetError};
use burn::prelude::*;
use image::RgbImage;

use crate::cost::TemporalCostTable;
use crate::error::{Result, TemporalError};
use crate::gate::argmax_rows;
use crate::model::AntModel;
use crate::prepared::PreparedTemporal;
use crate::temporal::AntTemporal;

/// How a stage's width is chosen on frames that are not key frames.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WidthPolicy {
    /// The dynamic gates choose (argmax).
    Gate,
    /// Fixed ratios.
    Fixed(SubnetArch),
}

/// An inference mode: whether there are key frames (and fusion), and how widths are chosen.
///
/// | mode | key frames | width of the other frames | fusion |
/// |---|---|---|---|
/// | [`Mode::static_full`] (D0) | none | 6,6,6,6,6,6 | no |
/// | [`Mode::static_subnet`] | none | given | no |
/// | [`Mode::non_temporal`] | none | gate on the frame's own features | no |
/// | [`Mode::fixed_interval`] | every n-th | gate on fused features | yes |
/// | [`Mode::adaptive`] | stem deviation >= threshold | gate on fused features | yes |
/// | [`Mode::skip_conv`] (D0 w/ Skip-Conv) | none | 6,6,6,6,6,6, each convolution recomputing only where its input moved | no |
///
/// [`Mode::with_fixed_width`] replaces the gates of a temporal mode by fixed ratios (key
/// frames full, the others at the given ratios with fusion).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mode {
    /// Key-frame policy; `None` for the non-temporal modes (no key frames, no fusion).
    pub key_frames: Option<KeyFramePolicy>,
    /// Width of the frames that are not key frames.
    pub width: WidthPolicy,
    /// Skip-Convolutions over the full network ([`ant_supernet::skipconv`]; CPU engine only).
    pub skip_conv: Option<SkipConvOptions>,
}

impl Mode {
    /// The static full network (EfficientDet-D0), every frame alike.
    pub fn static_full() -> Self {
        Self::static_subnet(SubnetArch::LARGEST)
    }

    /// A static subnet, every frame alike.
    pub fn static_subnet(arch: SubnetArch) -> Self {
        Self {
            key_frames: None,
            width: WidthPolicy::Fixed(arch),
            skip_conv: None,
        }
    }

    /// The non-temporal dynamic network: gates on each frame's own features, no key frames.
    pub fn non_temporal() -> Self {
        Self {
            key_frames: None,
            width: WidthPolicy::Gate,
            skip_conv: None,
        }
    }

    /// ANT with every `interval`-th frame key.
    pub fn fixed_interval(interval: usize) -> Self {
        Self {
            key_frames: Some(KeyFramePolicy::Interval(interval)),
            width: WidthPolicy::Gate,
            skip_conv: None,
        }
    }

    /// ANT with adaptive key frames at a stem-deviation `threshold`.
    pub fn adaptive(threshold: f32) -> Self {
        Self {
            key_frames: Some(KeyFramePolicy::Adaptive { threshold }),
            width: WidthPolicy::Gate,
            skip_conv: None,
        }
    }

    /// The full network with Skip-Convolutions: every convolution recomputes only the
    /// positions whose input moved by more than `threshold` since it last computed them,
    /// with `kernel` (see [`ant_supernet::skipconv`]). The first frame of a stream computes
    /// everything and counts as its key frame.
    pub fn skip_conv(threshold: f32, kernel: SkipKernel) -> Self {
        Self {
            skip_conv: Some(SkipConvOptions { threshold, kernel }),
            ..Self::static_full()
        }
    }

    /// The same key frames, with fixed ratios instead of the gates.
    pub fn with_fixed_width(self, arch: SubnetArch) -> Self {
        Self {
            width: WidthPolicy::Fixed(arch),
            ..self
        }
    }

    /// Whether the mode needs the fusion modules or gates.
    pub fn needs_temporal(&self) -> bool {
        self.key_frames.is_some() || self.width == WidthPolicy::Gate
    }

    /// A short description, e.g. `adaptive(0.3)`, `interval(3)+fixed(1,1,1,1,1,1)`,
    /// `static(6,6,6,6,6,6)`, `skipconv(0.05,sparse)`.
    pub fn name(&self) -> String {
        if let Some(options) = self.skip_conv {
            return format!("skipconv({},{})", options.threshold, options.kernel.name());
        }
        let width = match self.width {
            WidthPolicy::Gate => "gate".to_string(),
            WidthPolicy::Fixed(arch) => format!("fixed({arch})"),
        };
        match self.key_frames {
            None if self.width == WidthPolicy::Gate => "non-temporal".to_string(),
            None => width.replace("fixed", "static"),
            Some(KeyFramePolicy::Interval(n)) => format!("interval({n})+{width}"),
            Some(KeyFramePolicy::Adaptive { threshold }) => {
                format!("adaptive({threshold})+{width}")
            }
        }
    }
}

/// The raw result of one frame (before decoding).
#[derive(Clone, Debug)]
pub struct FrameForward {
    /// Head outputs, `[1, ...]` per level.
    pub outputs: HeadOutputs,
    /// Whether the frame was a key frame (ran the full network and became the reference).
    pub key: bool,
    /// The ratios it ran.
    pub arch: SubnetArch,
    /// Normalised L1 stem deviation from the key frame (adaptive mode).
    pub deviation: Option<f32>,
    /// Wall time spent in fusion modules and gates (including reading the gates' choices).
    pub fusion_gate_ms: f64,
}

/// The result of one frame.
#[derive(Clone, Debug)]
pub struct FrameResult {
    /// Detections in input pixels from [`AntDetector::process`] (map them to the frame with
    /// the letterbox inverse), in the image's own pixels from [`AntDetector::process_image`].
    pub detections: Detections,
    /// Whether the frame was a key frame.
    pub key: bool,
    /// The ratios it ran.
    pub arch: SubnetArch,
    /// Multiply-accumulates of this frame, in billions (detector, plus fusion and gates where
    /// they ran).
    pub gmac: f64,
    /// Wall time of [`AntDetector::process`] (forward, key-frame decision, decoding, NMS).
    pub latency_ms: f64,
    /// The part of `latency_ms` spent in fusion and gates.
    pub fusion_gate_ms: f64,
    /// Normalised L1 stem deviation from the key frame (adaptive mode).
    pub deviation: Option<f32>,
}

/// The CPU engine's state: the prepared detector and temporal modules, and the last key
/// frame's stage features with the key frame's share of each fusion's pointwise convolution.
#[derive(Debug)]
struct CpuEngine {
    detector: PreparedDetector,
    temporal: Option<PreparedTemporal>,
    key_stages: Option<Vec<Map>>,
    key_terms: Option<Vec<Vec<f32>>>,
}

/// Head outputs from either engine.
enum Outputs {
    Tensors(HeadOutputs),
    Maps(PreparedOutputs),
}

/// A frame's forward pass before decoding.
struct Forward {
    outputs: Outputs,
    /// The MACs a Skip-Conv frame computed, in billions (other modes count from the arch).
    gmac: Option<f64>,
    key: bool,
    arch: SubnetArch,
    deviation: Option<f32>,
    fusion_gate_ms: f64,
}

/// Whether `device` is the CPU device the prepared engine runs on.
fn is_plain_flex(device: &Device) -> bool {
    !device.is_autodiff() && *device == Device::flex()
}

/// The streaming detector.
///
/// On the CPU (`flex`, no autodiff) frames run through the prepared inference engine
/// ([`ant_supernet::prepared`], [`crate::prepared`]): every layer folded once, plain buffers
/// between layers. On other devices (wgpu) they run through the model's Burn ops, with every
/// elastic stage extracted once per ratio.
#[derive(Debug)]
pub struct AntDetector {
    model: EfficientDet,
    temporal: Option<AntTemporal>,
    mode: Mode,
    scheduler: Option<KeyFrameScheduler>,
    /// `prepared[stage][ratio - 1]`: the stage's blocks extracted at that ratio (Burn path).
    prepared: Vec<Vec<Option<Vec<ElasticMbConv>>>>,
    cpu: Option<CpuEngine>,
    /// The Skip-Conv engine ([`Mode::skip_conv`]).
    skip: Option<SkipConvDetector>,
    /// The last key frame's seven stage outputs.
    key_stages: Option<Vec<Tensor<4>>>,
    costs: TemporalCostTable,
    anchors: Anchors,
    device: Device,
    /// The input transform of [`Self::process_image`], and the size of its last image.
    transform: InputTransform,
    image_size: Option<(u32, u32)>,
}

impl AntDetector {
    /// A detector for `mode`. `temporal` is needed by every mode but the static ones.
    ///
    /// # Errors
    /// [`TemporalError::MissingTemporal`], [`TemporalError::BackboneMismatch`], an invalid
    /// key-frame policy, or a fixed arch / key-frame width the model does not hold.
    pub fn new(model: EfficientDet, temporal: Option<AntTemporal>, mode: Mode) -> Result<Self> {
        if mode.needs_temporal() && temporal.is_none() {
            return Err(TemporalError::MissingTemporal { mode: mode.name() });
        }
        if let Some(temporal) = &temporal {
            temporal.check(&model.config.backbone)?;
            let key_reading = temporal.key_reading_gates();
            if mode.key_frames.is_none()
                && mode.width == WidthPolicy::Gate
                && !key_reading.is_empty()
            {
                return Err(TemporalError::GatesNeedKeyFrames {
                    stages: key_reading,
                });
            }
        }
        if let WidthPolicy::Fixed(arch) = mode.width {
            model.validate(&arch)?;
        }
        if mode.key_frames.is_some() {
            model.validate(&SubnetArch::LARGEST)?;
        }
        let scheduler = mode.key_frames.map(KeyFrameScheduler::new).transpose()?;
        let device = model.backbone.stem.weight.val().device();
        let cpu = is_plain_flex(&device).then(|| CpuEngine {
            detector: PreparedDetector::new(&model),
            temporal: temporal.as_ref().map(PreparedTemporal::new),
            key_stages: None,
            key_terms: None,
        });
        let skip = match mode.skip_conv {
            Some(options) => {
                let cpu = cpu
                    .as_ref()
                    .ok_or_else(|| TemporalError::SkipConvNeedsCpu {
                        device: format!("{device:?}"),
                    })?;
                Some(SkipConvDetector::new(cpu.detector.clone(), options)?)
            }
            None => None,
        };
        let prepared = if cpu.is_some() {
            Vec::new()
        } else {
            model
                .backbone
                .stages
                .iter()
                .map(|stage| {
                    (1..=MAX_RATIO)
                        .map(|ratio| {
                            stage[0]
                                .ratios
                                .contains(&ratio)
                                .then(|| stage.iter().map(|block| block.extract(ratio)).collect())
                        })
                        .collect()
                })
                .collect()
        };
        let (gate_hidden, fusion_kernel) = temporal
            .as_ref()
            .map_or((64, 3), |t| (t.config.gate_hidden, t.config.fusion_kernel));
        let costs = match &temporal {
            Some(temporal) => TemporalCostTable::for_temporal(&model.config, &temporal.config),
            None => TemporalCostTable::new(&model.config, gate_hidden, fusion_kernel),
        };
        let anchors = model.anchors();
        let size = model.config.image_size as u32;
        Ok(Self {
            model,
            temporal,
            mode,
            scheduler,
            prepared,
            cpu,
            skip,
            key_stages: None,
            costs,
            anchors,
            device,
            transform: InputTransform::new(size, size),
            image_size: None,
        })
    }

    /// ANT from a stage-2 checkpoint directory ([`AntModel::load`]: `model.bpk` and
    /// `model.temporal.bpk`) on `device`, for `mode`.
    ///
    /// # Errors
    /// A missing or invalid checkpoint file, named in the error; the errors of [`Self::new`].
    pub fn load(dir: &Path, mode: Mode, device: &Device) -> Result<Self> {
        let model = AntModel::load(dir, device)?;
        Self::new(model.detector, Some(model.temporal), mode)
    }

    /// Processes the next RGB image of a stream: letterboxed into the network's input
    /// (effdet's transform, [`InputTransform`]), run by [`Self::process`], the detections
    /// mapped back into `image`'s pixels (clipped; boxes that vanish are dropped). An image
    /// of another size than the previous one starts a new stream ([`Self::reset`]): the key
    /// frame's features describe another geometry. `latency_ms` excludes the transform.
    ///
    /// # Errors
    /// The errors of [`Self::process`].
    pub fn process_image(&mut self, image: &RgbImage) -> Result<FrameResult> {
        let size = image.dimensions();
        if self.image_size.is_some_and(|previous| previous != size) {
            self.reset();
        }
        self.image_size = Some(size);
        let (input, letterbox) = self.transform.letterbox_image(image);
        let side = self.model.config.image_size;
        let frame = Tensor::<4>::from_data(
            TensorData::new(self.transform.normalize(&input), [1, 3, side, side]),
            &self.device,
        );
        let mut result = self.process(frame)?;
        result.detections = result.detections.to_frame(&letterbox);
        Ok(result)
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The detector.
    pub fn model(&self) -> &EfficientDet {
        &self.model
    }

    /// The cost table (per stage and ratio, fusion, gates).
    pub fn costs(&self) -> &TemporalCostTable {
        &self.costs
    }

    /// Starts a new stream: forgets the key frame; the next frame is key.
    pub fn reset(&mut self) {
        if let Some(scheduler) = &mut self.scheduler {
            scheduler.reset();
        }
        self.key_stages = None;
        if let Some(skip) = &mut self.skip {
            skip.reset();
        }
        if let Some(cpu) = &mut self.cpu {
            cpu.key_stages = None;
            cpu.key_terms = None;
        }
    }

    /// MACs of a frame that was (`key`) or was not a key frame and ran `arch`, in billions.
    pub fn frame_gmac(&self, key: bool, arch: &SubnetArch) -> f64 {
        let mut macs = self.costs.detector_macs(arch);
        if !key {
            if self.mode.key_frames.is_some() {
                macs += self.costs.total_fusion_macs();
            }
            if self.mode.width == WidthPolicy::Gate {
                macs += self.costs.total_gate_macs();
            }
        }
        macs as f64 / 1e9
    }

    fn check_frame(&self, frame: &Tensor<4>) -> Result<()> {
        let size = self.model.config.image_size;
        let expected = [1, 3, size, size];
        if frame.dims() != expected {
            return Err(TemporalError::FrameShape {
                expected,
                found: frame.dims(),
            });
        }
        Ok(())
    }

    fn blocks(&self, stage: usize, ratio: usize) -> Result<&[ElasticMbConv]> {
        self.prepared[stage][ratio - 1].as_deref().ok_or_else(|| {
            SupernetError::UnavailableRatio {
                stage: stage + 1,
                ratio,
                available: self.model.backbone.stages[stage][0].ratios.clone(),
            }
            .into()
        })
    }

    fn run_stage(&self, stage: usize, x: Tensor<4>, ratio: usize) -> Result<Tensor<4>> {
        Ok(self
            .blocks(stage, ratio)?
            .iter()
            .fold(x, |x, block| block.forward(x, ratio)))
    }

    /// Runs one frame up to the head outputs.
    ///
    /// # Shapes
    /// `frame`: `[1, 3, image_size, image_size]`, ImageNet-normalised.
    ///
    /// # Errors
    /// [`TemporalError::FrameShape`]; a gate choosing a ratio the model does not hold.
    pub fn forward_frame(&mut self, frame: Tensor<4>) -> Result<FrameForward> {
        let forward = self.forward(frame)?;
        let outputs = match forward.outputs {
            Outputs::Tensors(outputs) => outputs,
            Outputs::Maps(maps) => maps.to_tensors(&self.device),
        };
        Ok(FrameForward {
            outputs,
            key: forward.key,
            arch: forward.arch,
            deviation: forward.deviation,
            fusion_gate_ms: forward.fusion_gate_ms,
        })
    }

    fn forward(&mut self, frame: Tensor<4>) -> Result<Forward> {
        self.check_frame(&frame)?;
        if let Some(skip) = &mut self.skip {
            let frame = skip.forward(&Map::from_tensor(frame));
            return Ok(Forward {
                outputs: Outputs::Maps(frame.outputs),
                gmac: Some(frame.macs as f64 / 1e9),
                key: frame.first,
                arch: SubnetArch::LARGEST,
                deviation: None,
                fusion_gate_ms: 0.0,
            });
        }
        if self.cpu.is_some() {
            return self.forward_cpu(frame);
        }
        let backbone = &self.model.backbone;
        let stem = backbone.forward_stem(frame);
        let (key, deviation) = match &mut self.scheduler {
            Some(scheduler) => {
                let features = scheduler
                    .needs_features()
                    .then(|| stem.to_data().try_to_vec::<f32>().expect("stem is f32"));
                let decision = scheduler.decide(features.as_deref())?;
                // A stream without a stored key frame starts with one whatever the policy.
                (
                    decision.key || self.key_stages.is_none(),
                    decision.deviation,
                )
            }
            None => (false, None),
        };
        let first = backbone.forward_first_stage(stem);
        if key {
            let mut stages = Vec::with_capacity(NUM_ELASTIC_STAGES + 1);
            let mut y = first;
            stages.push(y.clone());
            for stage in 0..NUM_ELASTIC_STAGES {
                y = self.run_stage(stage, y, MAX_RATIO)?;
                stages.push(y.clone());
            }
            let outputs = self
                .model
                .forward_pyramid(PYRAMID_STAGES.map(|index| stages[index].clone()));
            self.key_stages = Some(stages);
            return Ok(Forward {
                outputs: Outputs::Tensors(outputs),
                gmac: None,
                key,
                arch: SubnetArch::LARGEST,
                deviation,
                fusion_gate_ms: 0.0,
            });
        }

        let key_stages = if self.mode.key_frames.is_some() {
            self.key_stages.as_ref()
        } else {
            None
        };
        let mut fusion_gate_ms = 0.0;
        let mut timed = |start: Instant, device: &Device| {
            let _ = device.sync();
            fusion_gate_ms += start.elapsed().as_secs_f64() * 1e3;
        };
        let fuse = |stage: usize, x: Tensor<4>, key_stages: Option<&Vec<Tensor<4>>>| match (
            key_stages,
            self.temporal.as_ref().and_then(|t| t.fusion(stage)),
        ) {
            (Some(stored), Some(fusion)) => fusion.forward(x, stored[stage].clone()),
            _ => x,
        };
        let fused_input = self
            .temporal
            .as_ref()
            .is_none_or(|temporal| temporal.config.fused_input)
            || key_stages.is_none();
        let mut raw = (!fused_input).then(|| first.clone());
        let mut stages = Vec::with_capacity(NUM_ELASTIC_STAGES + 1);
        let _ = self.device.sync();
        let start = Instant::now();
        let mut y = fuse(0, first, key_stages);
        if key_stages.is_some() {
            timed(start, &self.device);
        }
        stages.push(y.clone());
        let mut ratios = [0usize; NUM_ELASTIC_STAGES];
        for (stage, ratio_slot) in ratios.iter_mut().enumerate() {
            let ratio = match (self.mode.width, &self.temporal) {
                (WidthPolicy::Fixed(arch), _) => arch.ratio(stage),
                (WidthPolicy::Gate, Some(temporal)) => {
                    let _ = self.device.sync();
                    let start = Instant::now();
                    let gate = &temporal.gates[stage];
                    let scores = match key_stages {
                        Some(stored) if temporal.fusion(stage).is_none() => {
                            gate.forward_pair(y.clone(), stored[stage].clone())
                        }
                        _ => gate.forward(y.clone()),
                    };
                    let ratio = argmax_rows(scores)[0] + 1;
                    timed(start, &self.device);
                    ratio
                }
                (WidthPolicy::Gate, None) => unreachable!("checked in AntDetector::new"),
            };
            *ratio_slot = ratio;
            let input = raw.take().unwrap_or(y);
            y = self.run_stage(stage, input, ratio)?;
            if !fused_input {
                raw = Some(y.clone());
            }
            if key_stages.is_some() {
                let _ = self.device.sync();
                let start = Instant::now();
                y = fuse(stage + 1, y, key_stages);
                timed(start, &self.device);
            }
            stages.push(y.clone());
        }
        let outputs = self
            .model
            .forward_pyramid(PYRAMID_STAGES.map(|index| stages[index].clone()));
        Ok(Forward {
            outputs: Outputs::Tensors(outputs),
            gmac: None,
            key,
            arch: SubnetArch::new(ratios)?,
            deviation,
            fusion_gate_ms,
        })
    }

    /// [`Self::forward`] on the prepared CPU engine.
    fn forward_cpu(&mut self, frame: Tensor<4>) -> Result<Forward> {
        let cpu = self.cpu.as_mut().expect("called with the CPU engine");
        let image = Map::from_tensor(frame);
        let stem = cpu.detector.stem(&image);
        let (key, deviation) = match &mut self.scheduler {
            Some(scheduler) => {
                let features = scheduler.needs_features().then_some(stem.data.as_slice());
                let decision = scheduler.decide(features)?;
                (decision.key || cpu.key_stages.is_none(), decision.deviation)
            }
            None => (false, None),
        };
        let first = cpu.detector.first_stage(&stem);
        if key {
            let mut stages = Vec::with_capacity(NUM_ELASTIC_STAGES + 1);
            stages.push(first);
            for stage in 0..NUM_ELASTIC_STAGES {
                let input = stages.last().expect("the first stage is in");
                let output = cpu.detector.stage(stage, input, MAX_RATIO)?;
                stages.push(output);
            }
            let outputs = cpu
                .detector
                .pyramid(PYRAMID_STAGES.map(|index| &stages[index]));
            cpu.key_stages = Some(stages);
            cpu.key_terms = None;
            return Ok(Forward {
                outputs: Outputs::Maps(outputs),
                gmac: None,
                key,
                arch: SubnetArch::LARGEST,
                deviation,
                fusion_gate_ms: 0.0,
            });
        }
        let temporal = cpu.temporal.as_ref();
        let fusing = self.mode.key_frames.is_some();
        let mut fusion_gate_ms = 0.0;
        if fusing && cpu.key_terms.is_none() {
            let started = Instant::now();
            let (stored, temporal) = (
                cpu.key_stages.as_ref().expect("a key frame came first"),
                temporal.expect("checked in AntDetector::new"),
            );
            cpu.key_terms = Some(
                temporal
                    .fusions
                    .iter()
                    .zip(stored.iter())
                    .map(|(fusion, key)| {
                        fusion
                            .as_ref()
                            .map_or_else(Vec::new, |fusion| fusion.key_term(key))
                    })
                    .collect(),
            );
            fusion_gate_ms += started.elapsed().as_secs_f64() * 1e3;
        }
        let fuse = |stage: usize, x: Map, fusion_gate_ms: &mut f64| -> Map {
            let fusion = temporal.and_then(|t| t.fusions[stage].as_ref());
            match (fusing, fusion, &cpu.key_stages, &cpu.key_terms) {
                (true, Some(fusion), Some(stored), Some(terms)) => {
                    let started = Instant::now();
                    let fused = fusion.run(&x, &stored[stage], &terms[stage]);
                    *fusion_gate_ms += started.elapsed().as_secs_f64() * 1e3;
                    fused
                }
                _ => x,
            }
        };
        // Stages read the fused features, or (`fused_input` off) the subnet's own chain.
        let fused_input = self
            .temporal
            .as_ref()
            .is_none_or(|temporal| temporal.config.fused_input)
            || !fusing;
        let mut raw = (!fused_input).then(|| first.clone());
        let mut stages = Vec::with_capacity(NUM_ELASTIC_STAGES + 1);
        stages.push(fuse(0, first, &mut fusion_gate_ms));
        let mut ratios = [0usize; NUM_ELASTIC_STAGES];
        for (stage, slot) in ratios.iter_mut().enumerate() {
            let fused = stages.last().expect("the first stage is in");
            let ratio = match (self.mode.width, temporal) {
                (WidthPolicy::Fixed(arch), _) => arch.ratio(stage),
                (WidthPolicy::Gate, Some(temporal)) => {
                    let started = Instant::now();
                    let gate = &temporal.gates[stage];
                    let ratio = match (&cpu.key_stages, &temporal.fusions[stage]) {
                        (Some(stored), None) if fusing => gate.choose_pair(fused, &stored[stage]),
                        _ => gate.choose(fused),
                    };
                    fusion_gate_ms += started.elapsed().as_secs_f64() * 1e3;
                    ratio
                }
                (WidthPolicy::Gate, None) => unreachable!("checked in AntDetector::new"),
            };
            *slot = ratio;
            let output = match raw.as_ref() {
                Some(own) => cpu.detector.stage(stage, own, ratio)?,
                None => cpu.detector.stage(stage, fused, ratio)?,
            };
            if !fused_input {
                raw = Some(output.clone());
            }
            stages.push(fuse(stage + 1, output, &mut fusion_gate_ms));
        }
        let outputs = cpu
            .detector
            .pyramid(PYRAMID_STAGES.map(|index| &stages[index]));
        Ok(Forward {
            outputs: Outputs::Maps(outputs),
            gmac: None,
            key,
            arch: SubnetArch::new(ratios)?,
            deviation,
            fusion_gate_ms,
        })
    }

    /// Detects objects in one frame of the stream.
    ///
    /// # Shapes
    /// `frame`: `[1, 3, image_size, image_size]`, ImageNet-normalised.
    ///
    /// # Errors
    /// As [`Self::forward_frame`].
    pub fn process(&mut self, frame: Tensor<4>) -> Result<FrameResult> {
        let start = Instant::now();
        // On a worker of Rayon's pool: the CPU kernels' parallel loops then run on that
        // worker (and spread to idle ones) instead of being handed over from the calling
        // thread and waited for, once per layer.
        rayon::scope(|_| self.process_from(frame, start))
    }

    fn process_from(&mut self, frame: Tensor<4>, start: Instant) -> Result<FrameResult> {
        let forward = self.forward(frame)?;
        let detections = match &forward.outputs {
            Outputs::Tensors(outputs) => self
                .model
                .postprocess_with(outputs, &self.anchors)
                .into_iter()
                .next()
                .expect("one image in, one detection list out"),
            Outputs::Maps(maps) => self
                .cpu
                .as_ref()
                .expect("maps come from the CPU engine")
                .detector
                .postprocess(maps, &self.anchors),
        };
        let latency_ms = start.elapsed().as_secs_f64() * 1e3;
        Ok(FrameResult {
            detections,
            key: forward.key,
            arch: forward.arch,
            gmac: forward
                .gmac
                .unwrap_or_else(|| self.frame_gmac(forward.key, &forward.arch)),
            latency_ms,
            fusion_gate_ms: forward.fusion_gate_ms,
            deviation: forward.deviation,
        })
    }
}
