//! The ANT model: the supernet detector and its temporal modules as one module, saved and
//! loaded as one checkpoint directory (`model.bpk` + `model.temporal.bpk`).

use std::path::Path;

use ant_supernet::EfficientDet;
use burn::module::Module;
use burn::nn::BatchNorm;
use burn::tensor::Device;

use crate::error::Result;
use crate::temporal::{AntTemporal, temporal_path};

/// The detector's file in a checkpoint directory; the temporal modules lie beside it
/// ([`temporal_path`]).
pub const MODEL_FILE: &str = "model.bpk";

/// ANT: the supernet detector and its fusion modules and gates, trained together (stage 2)
/// and run together ([`crate::AntDetector::new`] takes both parts).
#[derive(Module, Debug)]
pub struct AntModel {
    /// The supernet detector.
    pub detector: EfficientDet,
    /// Fusion modules and gates.
    pub temporal: AntTemporal,
}

impl AntModel {
    /// Loads a checkpoint directory (`model.bpk` + `model.temporal.bpk`, as [`Self::save`]
    /// writes) onto `device`.
    ///
    /// # Errors
    /// An unreadable or invalid file, named in the error; temporal modules built for another
    /// backbone.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let model_path = dir.join(MODEL_FILE);
        let detector = EfficientDet::load(&model_path, device)?;
        let temporal = AntTemporal::load(
            &temporal_path(&model_path),
            &detector.config.backbone,
            device,
        )?;
        Ok(Self { detector, temporal })
    }

    /// Saves into the directory `dir` (which must exist): the detector as `model.bpk`, the
    /// temporal modules beside it. Autodiff state is dropped first.
    ///
    /// # Errors
    /// A file that cannot be written, named in the error.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let valid = self.valid();
        let model_path = dir.join(MODEL_FILE);
        valid.detector.save(&model_path)?;
        valid.temporal.save(&temporal_path(&model_path))?;
        Ok(())
    }

    /// Calls `f` on every batch norm: the detector's, then each fusion module's two.
    pub fn for_each_norm(&mut self, f: &mut dyn FnMut(&mut BatchNorm)) {
        self.detector.for_each_norm(&mut *f);
        for fusion in self.temporal.present_fusions_mut() {
            f(&mut fusion.bn_pointwise);
            f(&mut fusion.bn_depthwise);
        }
    }

    /// Switches every detector batch norm to its running statistics (no batch statistics, no
    /// running-statistics updates) while its affine parameters keep training. Burn's flag is
    /// runtime state, not saved: call it on a fresh or loaded model.
    pub fn freeze_detector_norms(mut self) -> Self {
        self.detector.for_each_norm(|norm| {
            norm.training = norm.training.clone().with_value(false);
        });
        self
    }

    /// Freezes the stem (its convolution and batch norm get no gradient).
    pub fn freeze_stem(mut self) -> Self {
        self.detector.backbone.stem = self.detector.backbone.stem.no_grad();
        self.detector.backbone.bn_stem = self.detector.backbone.bn_stem.no_grad();
        self
    }
}
