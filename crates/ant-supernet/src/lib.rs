//! # ant-supernet
//!
//! The model definition of ANT (*Adapt Network Across Time for Efficient Video Processing*,
//! CVPR 2022 ECV workshop): EfficientDet-D0 whose EfficientNet-B0 backbone is a
//! weight-sharing **width supernet**. Six MBConv6 stages each take an expansion ratio in
//! {1..6} ([`SubnetArch`]); every subnet's weights are the first channels of the largest.
//!
//! Numerically identical to effdet's `tf_efficientdet_d0` at ratio 6 everywhere (see the
//! `parity` test), importable from effdet's PyTorch checkpoints ([`EfficientDet::from_effdet`]),
//! with cost accounting for any subnet ([`detector_cost`]).
//!
//! The layers run on the kernels of `ant-kernels` (the CPU inference kernels, and the training
//! ops with their own backward on Burn's `flex` backend), which fall back to Burn's ops on
//! other backends; [`prepared`] is the CPU inference engine built on them and [`skipconv`]
//! Skip-Convolutions over it. No training loop lives here: see `ant-train`. The temporal
//! modules (`ant-temporal`) reach the stage-level features through
//! [`EfficientDet::forward_backbone`] and run BiFPN and heads on fused features through
//! [`EfficientDet::forward_pyramid`].
//!
//! ## Detecting on images
//! [`ImageDetector`] is the entry point for a trained checkpoint: [`ImageDetector::load`] a
//! `model.bpk` (as `cargo xtask train` writes), pick a subnet, and detect on RGB images of
//! any size, boxes in their own pixels (`examples/detect.rs`, the README):
//!
//! ```
//! use ant_supernet::{EfficientDet, EfficientDetConfig, ImageDetector, SubnetArch};
//! use burn::tensor::Device;
//!
//! let device = Device::flex();
//! // A trained model comes from `ImageDetector::load(path, &device)`; an untrained one shows
//! // the calls.
//! let model = EfficientDet::init(&EfficientDetConfig::tiny(4).with_image_size(128), &device);
//! let detector = ImageDetector::new(model).with_subnet(SubnetArch::SMALLEST)?;
//! let frame = image::RgbImage::from_pixel(320, 180, image::Rgb([96, 96, 96]));
//! for detection in detector.detect(&frame)? {
//!     let b = detection.bbox;
//!     assert!(b.x1 >= 0.0 && b.x2 <= 320.0 && b.y1 >= 0.0 && b.y2 <= 180.0);
//!     assert!(detection.class < 4 && (0.0..=1.0).contains(&detection.score));
//! }
//! # Ok::<(), ant_supernet::SupernetError>(())
//! ```
#![warn(missing_docs)]

mod anchors;
pub mod arch;
pub mod backbone;
mod bifpn;
pub mod checkpoint;
pub mod config;
pub mod cost;
mod detect;
mod detector;
mod error;
mod head;
pub mod loss;
pub mod nn;
pub mod parity;
mod pickle_scan;
mod postprocess;
pub mod prepared;
pub mod seeded;
pub mod skipconv;
mod weights;

pub use anchors::Anchors;
pub use arch::SubnetArch;
pub use backbone::BackboneFeatures;
pub use config::EfficientDetConfig;
pub use cost::{Cost, DetectorCost, detector_cost};
pub use detect::ImageDetector;
pub use detector::{EfficientDet, HeadOutputs};
pub use error::{Result, SupernetError};
pub use loss::{AnchorTargets, DetectionLoss, LossConfig, detection_loss, label_anchors};
pub use postprocess::{Detection, Detections};
pub use weights::WeightMap;
