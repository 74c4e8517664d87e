//! Evaluation of a detector subnet on a split: COCO AP under the UA-DETRAC ignored-region
//! protocol (ant-metrics' `evaluate_detrac`, detections and ground truth at least half inside
//! an ignored region dropped), cost in GMAC per frame, and measured milliseconds per frame.
//!
//! Detections are mapped from network-input pixels back to frame pixels through each frame's
//! letterbox, so AP is measured on the original annotations.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use ant_detrac::dataset::FrameDatasetConfig;
use ant_detrac::{
    DetracBatcher, FrameDataset, InputTransform, LoadedSequence, load_frame, to_coco,
};
use ant_metrics::{
    CocoDataset, Detection, DetracGroundTruth, EvalParams, EvalResult, IgnorePolicy, IgnoreRegions,
    evaluate_detrac,
};
use ant_supernet::{EfficientDet, SubnetArch};
use ant_temporal::{AntDetector, AntTemporal, Mode};
use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// One evaluated method, in the format of `cargo xtask eval --json` (`{"methods": [..]}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodSummary {
    /// `static-full`, `ant-fixed3`, `ant-adaptive@<threshold>`, or a subnet's name.
    pub name: String,
    /// COCO AP (IoU 0.5:0.95) in [0, 1].
    pub ap: f64,
    /// AP at IoU 0.5.
    pub ap50: f64,
    /// AP at IoU 0.75.
    pub ap75: f64,
    /// Multiply-accumulates per frame, in GMAC.
    pub gmac: f64,
    /// Measured milliseconds per frame (forward and post-processing).
    pub ms: f64,
    /// Fraction of frames run as key frames (1 for a static detector).
    pub key_rate: f64,
}

/// The summary JSON of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The evaluated methods.
    pub methods: Vec<MethodSummary>,
}

/// The ground truth of some sequences as ant-metrics data, with their ignored regions and the
/// image id of each (sequence, frame).
#[derive(Debug)]
pub struct EvalGroundTruth {
    /// The COCO ground truth.
    pub dataset: CocoDataset,
    /// Ignored regions per image.
    pub regions: IgnoreRegions,
    /// Image id of each (sequence, frame).
    pub image_ids: HashMap<(String, u32), u64>,
}

impl EvalGroundTruth {
    /// The ant-detrac COCO export of `sequences` (every `frame_step`-th frame), read back from
    /// the JSON text that `cargo xtask dataset to-coco` writes for them.
    ///
    /// Going through the text makes the evaluation score exactly what the file states: the
    /// export's `f32` boxes become the `f64` values a JSON reader (pycocotools, `cargo xtask
    /// coco-eval`) gets from their shortest decimals, not their binary `f32` values, and the
    /// regions come from the file's `ignored_regions` key as `coco-eval --protocol detrac`
    /// reads them. An export and the detections `cargo xtask eval` writes then give its
    /// numbers to the last bit.
    pub fn new(sequences: &[LoadedSequence], root: &Path, frame_step: usize) -> Result<Self> {
        let exported = to_coco(sequences, root, frame_step)?;
        let DetracGroundTruth { dataset, regions } =
            DetracGroundTruth::from_json_str(&exported.to_json_string())?;
        let image_ids = exported
            .images
            .iter()
            .map(|image| ((image.sequence.clone(), image.frame), image.id))
            .collect();
        Ok(Self {
            dataset,
            regions,
            image_ids,
        })
    }

    /// Scores detections (frame pixels, this ground truth's image ids) as every evaluation of
    /// ant-train does: COCO bbox evaluation under the DETRAC protocol, ground truth and
    /// detections at least half inside an ignored region dropped
    /// ([`IgnorePolicy::DropHalfInside`]).
    pub fn score(&self, detections: &[Detection]) -> Result<EvalResult> {
        Ok(evaluate_detrac(
            &self.dataset,
            detections,
            &self.regions,
            IgnorePolicy::DropHalfInside,
            &EvalParams::default(),
        )?)
    }
}

/// AP, AP50, AP75, cost and speed of one subnet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// COCO AP in [0, 1].
    pub ap: f64,
    /// AP at IoU 0.5.
    pub ap50: f64,
    /// AP at IoU 0.75.
    pub ap75: f64,
    /// GMAC per frame of the subnet at the model's input size.
    pub gmac: f64,
    /// Milliseconds per frame (forward + post-processing, batch as configured).
    pub ms_per_frame: f64,
    /// Frames evaluated.
    pub frames: usize,
}

impl EvalReport {
    /// The summary entry of this report.
    pub fn method(&self, name: impl Into<String>) -> MethodSummary {
        MethodSummary {
            name: name.into(),
            ap: self.ap,
            ap50: self.ap50,
            ap75: self.ap75,
            gmac: self.gmac,
            ms: self.ms_per_frame,
            key_rate: 1.0,
        }
    }
}

/// Maps one frame's detections back to frame pixels as COCO results (class index + 1 is the
/// category id); boxes that vanish in the mapping are dropped.
pub(crate) fn push_frame_detections(
    detections: &mut Vec<Detection>,
    image_id: u64,
    letterbox: &ant_geom::Letterbox,
    frame_detections: ant_supernet::Detections,
) {
    for item in frame_detections.to_frame(letterbox).items {
        detections.push(Detection::from_xyxy(
            image_id,
            item.class as u64 + 1,
            item.bbox,
            item.score,
        ));
    }
}

/// Evaluates the streaming detector of `ant-temporal` in `mode` (fresh state per sequence)
/// over every frame of `sequences` in order; AP on the annotated frames kept by
/// `frame_step`. Returns the report and the fraction of key frames.
pub fn evaluate_stream(
    model: &EfficientDet,
    temporal: Option<&AntTemporal>,
    mode: Mode,
    sequences: &[LoadedSequence],
    root: &Path,
    frame_step: usize,
    device: &Device,
) -> Result<(EvalReport, f64)> {
    let ground_truth = EvalGroundTruth::new(sequences, root, frame_step)?;
    let size = model.config.image_size as u32;
    let transform = InputTransform::new(size, size);
    let mut detections = Vec::new();
    let (mut frames, mut keys, mut gmac, mut milliseconds) = (0usize, 0usize, 0f64, 0f64);
    for sequence in sequences {
        let mut detector = AntDetector::new(model.clone(), temporal.cloned(), mode)?;
        for frame in sequence.video_frames()? {
            let sample = load_frame(&frame, &transform)?;
            let image = Tensor::<4>::from_data(
                TensorData::new(sample.image, [1, 3, size as usize, size as usize]),
                device,
            );
            let result = detector.process(image)?;
            frames += 1;
            keys += usize::from(result.key);
            gmac += result.gmac;
            milliseconds += result.latency_ms;
            let Some(&image_id) = ground_truth
                .image_ids
                .get(&(frame.sequence.to_string(), frame.frame))
            else {
                continue;
            };
            push_frame_detections(
                &mut detections,
                image_id,
                &sample.targets.letterbox,
                result.detections,
            );
        }
    }
    let result = ground_truth.score(&detections)?;
    let frames_f = frames.max(1) as f64;
    Ok((
        EvalReport {
            ap: result.stats[0].max(0.0),
            ap50: result.stats[1].max(0.0),
            ap75: result.stats[2].max(0.0),
            gmac: gmac / frames_f,
            ms_per_frame: milliseconds / frames_f,
            frames,
        },
        keys as f64 / frames_f,
    ))
}

/// Evaluates subnet `arch` of `model` (on a plain, non-autodiff device) on every
/// `frame_step`-th annotated frame of `sequences`.
pub fn evaluate(
    model: &EfficientDet,
    arch: &SubnetArch,
    sequences: &[LoadedSequence],
    root: &Path,
    frame_step: usize,
    batch_size: usize,
    device: &Device,
) -> Result<EvalReport> {
    let ground_truth = EvalGroundTruth::new(sequences, root, frame_step)?;
    let dataset = FrameDataset::new(
        sequences,
        FrameDatasetConfig {
            frame_step,
            ..FrameDatasetConfig::default()
        },
    )?;
    let size = model.config.image_size as u32;
    let batcher = DetracBatcher::new(InputTransform::new(size, size));
    let mut detections = Vec::new();
    let mut model_seconds = 0f64;
    let items = dataset.items();
    for chunk in items.chunks(batch_size.max(1)) {
        let batch = batcher.batch(chunk.to_vec(), device)?;
        let started = Instant::now();
        let outputs = model.detect(batch.images, arch)?;
        model_seconds += started.elapsed().as_secs_f64();
        for (targets, frame_detections) in batch.targets.iter().zip(outputs) {
            let image_id = ground_truth.image_ids[&(targets.sequence.to_string(), targets.frame)];
            push_frame_detections(
                &mut detections,
                image_id,
                &targets.letterbox,
                frame_detections,
            );
        }
    }
    let result = ground_truth.score(&detections)?;
    let clamp = |value: f64| value.max(0.0);
    Ok(EvalReport {
        ap: clamp(result.stats[0]),
        ap50: clamp(result.stats[1]),
        ap75: clamp(result.stats[2]),
        gmac: model.cost(arch).total.macs as f64 / 1e9,
        ms_per_frame: 1000.0 * model_seconds / items.len() as f64,
        frames: items.len(),
    })
}
