//! Detection on images, preprocessing included: the entry point for a user who has a trained
//! checkpoint and RGB images.
//!
//! [`ImageDetector::load`] reads a native checkpoint (`MODEL.bpk` + `MODEL.json`, as
//! [`EfficientDet::save`] and `cargo xtask train` write them); [`ImageDetector::detect`]
//! letterboxes an image of any size into the network's input (effdet's `ResizePad`, ImageNet
//! normalisation: [`InputTransform`]), runs the chosen subnet (the full network unless
//! [`ImageDetector::with_subnet`] picks another), decodes and suppresses (effdet's
//! post-processing), and maps the boxes back into the image's own pixels.
//!
//! On the CPU (`Device::flex()`, no autodiff) the image runs through the prepared inference
//! engine ([`crate::prepared`]: every layer folded once at construction); on other devices
//! through the model's Burn ops. Both give the same detections.

use std::path::Path;

use ant_geom::InputTransform;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;

use crate::anchors::Anchors;
use crate::arch::SubnetArch;
use crate::config::EfficientDetConfig;
use crate::detector::EfficientDet;
use crate::error::Result;
use crate::postprocess::Detection;
use crate::prepared::{Map, PreparedDetector};

/// How the network runs.
#[derive(Debug)]
enum Engine {
    /// The prepared CPU engine.
    Prepared(Box<PreparedDetector>),
    /// Burn's ops on the model's device.
    Burn(Box<EfficientDet>),
}

/// A trained detector that takes RGB images and returns boxes in their pixels.
#[derive(Debug)]
pub struct ImageDetector {
    engine: Engine,
    config: EfficientDetConfig,
    arch: SubnetArch,
    anchors: Anchors,
    transform: InputTransform,
    device: Device,
}

impl ImageDetector {
    /// Loads a native checkpoint (`MODEL.bpk` with its `MODEL.json` beside it) onto `device`.
    ///
    /// # Errors
    /// A missing or invalid checkpoint file, named in the error.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Ok(Self::new(EfficientDet::load(path, device)?))
    }

    /// Wraps a model, on its device without autodiff (batch norms then use their running
    /// statistics, as at inference).
    pub fn new(model: EfficientDet) -> Self {
        let model = model.valid();
        let device = model.backbone.stem.weight.val().device();
        let config = model.config.clone();
        let engine = if device == Device::flex() {
            Engine::Prepared(Box::new(PreparedDetector::new(&model)))
        } else {
            Engine::Burn(Box::new(model))
        };
        let size = config.image_size as u32;
        Self {
            engine,
            anchors: Anchors::new(&config),
            arch: SubnetArch::LARGEST,
            transform: InputTransform::new(size, size),
            config,
            device,
        }
    }

    /// Runs subnet `arch` instead of the full network.
    ///
    /// # Errors
    /// [`crate::SupernetError::UnavailableRatio`] when the checkpoint lacks a ratio `arch`
    /// asks for (an extracted static subnet holds only its own).
    pub fn with_subnet(mut self, arch: SubnetArch) -> Result<Self> {
        match &self.engine {
            Engine::Prepared(prepared) => prepared.validate(&arch)?,
            Engine::Burn(model) => model.validate(&arch)?,
        }
        self.arch = arch;
        Ok(self)
    }

    /// The model's config (input size, classes, thresholds of the post-processing).
    pub fn config(&self) -> &EfficientDetConfig {
        &self.config
    }

    /// The subnet that runs.
    pub fn subnet(&self) -> SubnetArch {
        self.arch
    }

    /// The detections of `image`, by descending score, boxes in `image`'s pixels (x1, y1, x2,
    /// y2, clipped to the image). Boxes that vanish when mapped back are dropped.
    ///
    /// # Errors
    /// Only a model failure (none is expected once constructed).
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>> {
        let (input, letterbox) = self.transform.letterbox_image(image);
        let data = self.transform.normalize(&input);
        let size = self.config.image_size;
        let detections = match &self.engine {
            Engine::Prepared(prepared) => {
                let outputs = prepared.forward(&Map::new(3, size, size, data), &self.arch)?;
                prepared.postprocess(&outputs, &self.anchors)
            }
            Engine::Burn(model) => {
                let x =
                    Tensor::<4>::from_data(TensorData::new(data, [1, 3, size, size]), &self.device);
                let outputs = model.forward(x, &self.arch)?;
                model
                    .postprocess_with(&outputs, &self.anchors)
                    .pop()
                    .unwrap_or_default()
            }
        };
        Ok(detections.to_frame(&letterbox).items)
    }
}
