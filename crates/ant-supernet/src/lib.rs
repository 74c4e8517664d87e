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
