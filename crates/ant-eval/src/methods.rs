//! One method of Table 1 while it streams ([`MethodRun`]: its [`AntDetector`] and what it
//! measured per frame) and its report ([`MethodReport`]): AP from its detections, GMAC,
//! latency amortised from medians over key and other frames, key rate, ratio histogram.

use ant_metrics::Detection;
use ant_supernet::arch::{MAX_RATIO, NUM_ELASTIC_STAGES};
use ant_supernet::{EfficientDet, SubnetArch};
use ant_temporal::{AntDetector, AntModel, AntTemporal, FrameResult, Mode};
use burn::module::Module;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::latency::median;
use crate::subnet::{EvalGroundTruth, MethodSummary, push_frame_detections};

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

/// A method before it runs.
pub(crate) struct MethodSpec {
    pub(crate) name: String,
    pub(crate) family: &'static str,
    pub(crate) source: String,
    pub(crate) threshold: Option<f32>,
    pub(crate) arch: Option<SubnetArch>,
    pub(crate) params: u64,
}

/// A method while it runs: its detector and what it has measured.
pub(crate) struct MethodRun {
    pub(crate) spec: MethodSpec,
    pub(crate) detector: AntDetector,
    pub(crate) detections: Vec<Detection>,
    pub(crate) key_ms: Vec<f64>,
    pub(crate) non_key_ms: Vec<f64>,
    pub(crate) fusion_gate_ms: Vec<f64>,
    pub(crate) gmac: f64,
    pub(crate) frames: usize,
    pub(crate) keys: usize,
    pub(crate) scored: usize,
    pub(crate) histogram: [[u64; MAX_RATIO]; NUM_ELASTIC_STAGES],
    pub(crate) deviations: Vec<f64>,
}

impl MethodRun {
    pub(crate) fn new(
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

    pub(crate) fn record(
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

    pub(crate) fn report(&self, ground_truth: &EvalGroundTruth) -> Result<MethodReport> {
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

/// The `dynamic-non-temporal` method of a non-temporal stage-2 model.
pub(crate) fn non_temporal_run(joint: &AntModel, source: String) -> Result<MethodRun> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_name_result_files_safely() {
        assert_eq!(
            file_stem("static-nas@1,2,3,4,5,6"),
            "static-nas@1_2_3_4_5_6"
        );
        assert_eq!(file_stem("ant-adaptive@0.1"), "ant-adaptive@0.1");
    }
}
