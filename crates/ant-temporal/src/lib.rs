//! # ant-temporal
//!
//! The ANT detector across time (*ANT: Adapt Network Across Time for Efficient Video
//! Processing*, CVPR 2022 ECV workshop, Sec. 3.2): fusion modules that merge a non-key
//! frame's stage-level features with the key frame's, dynamic gates that pick each next
//! stage's width, and a streaming engine whose modes are ANT and its baselines. The paper's
//! code is not public; layers follow the paper's text and the supernet of `ant-supernet`.
//!
//! ## Modules
//! - [`Fusion`] (`FusionConfig`): `cat(current, key)` -> 1x1 conv 2C->C, BN, swish, 3x3
//!   depthwise, BN, swish. One per stage-level feature (the seven stages of the backbone).
//! - [`Gate`] (`GateConfig`): global average pool, FC, ReLU, FC to six ratio scores. `gates[s]`
//!   reads the fused output of stage `s` and chooses the ratio of elastic stage `s + 1`: the
//!   gate on the fused MBConv1 stage (stage 0, fixed width) chooses the first elastic stage.
//! - [`AntTemporal`] (`AntTemporalConfig::init(&backbone_config, &device)`): both, as one
//!   module with its own checkpoint ([`temporal_path`]: `MODEL.bpk` -> `MODEL.temporal.bpk`).
//! - [`AntModel`]: the detector and its temporal modules, saved and loaded as one checkpoint
//!   directory (what stage 2 trains and [`AntDetector`] runs).
//!
//! ## Training forward (stable API for `ant-train`)
//! ```text
//! forward_clip_train(model: &EfficientDet, temporal: &AntTemporal, key: Tensor<4>,
//!                    non_key: Tensor<4>, temperature: f32, hard: bool, non_temporal: bool)
//!     -> Result<NonKeyOutput { outputs: HeadOutputs, fused_stages: Vec<Tensor<4>>,
//!                              gate_probs: Vec<Tensor<2>>, expected_gmac: Tensor<1>,
//!                              choices: Vec<SubnetArch> }>
//! ```
//! The key frames run the full supernet; each non-key sample runs the ratios its gates
//! sample with the straight-through Gumbel-softmax (samples grouped by ratio), on fused
//! features. `expected_gmac` (`[batch]`) is differentiable in the gate probabilities, from
//! `ant_supernet::detector_cost`'s per-stage MACs ([`TemporalCostTable`]). `non_temporal`
//! drops fusion and gates on the frame's own features. [`forward_clip`] takes any
//! [`GateSampling`] (argmax, fixed ratios) and [`forward_non_key`] reuses stored key features.
//!
//! ## Inference
//! [`AntDetector::new(model, temporal, mode)`](AntDetector::new), then
//! [`process(frame)`](AntDetector::process) per frame -> [`FrameResult`] (detections, key or
//! not, ratios, GMAC, latency, fusion + gate time), [`reset`](AntDetector::reset) between
//! streams. Modes ([`Mode`]): static full, static subnet, non-temporal, fixed interval,
//! adaptive. Each (stage, ratio) is extracted once at creation, so per-frame work never
//! slices weights.
//!
//! ## Streaming images
//! [`AntDetector::load`] reads a stage-2 checkpoint directory (`model.bpk` +
//! `model.temporal.bpk`, [`AntModel`]) for a [`Mode`]; [`AntDetector::process_image`] takes
//! the stream's RGB images one by one, boxes in their own pixels (`examples/stream.rs`, the
//! README):
//!
//! ```
//! use ant_supernet::{EfficientDet, EfficientDetConfig};
//! use ant_temporal::{AntDetector, AntModel, AntTemporalConfig, Mode};
//! use burn::tensor::Device;
//!
//! let device = Device::flex();
//! let config = EfficientDetConfig::tiny(4).with_image_size(128);
//! let detector = EfficientDet::init(&config, &device);
//! let temporal = AntTemporalConfig::new().init(&config.backbone, &device);
//! // What stage 2 of `cargo xtask train` saves, loaded back as a user would.
//! let dir = std::env::temp_dir().join(format!("ant-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! AntModel { detector, temporal }.save(&dir)?;
//! let mut ant = AntDetector::load(&dir, Mode::fixed_interval(3), &device)?;
//! for index in 0..4u8 {
//!     let frame = image::RgbImage::from_pixel(320, 180, image::Rgb([90 + index, 90, 90]));
//!     let result = ant.process_image(&frame)?;
//!     assert_eq!(result.key, index % 3 == 0); // a key frame, then two gated non-key ones
//!     assert!(result.detections.items.iter().all(|d| d.bbox.x2 <= 320.0 && d.bbox.y2 <= 180.0));
//! }
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), ant_temporal::TemporalError>(())
//! ```
#![warn(missing_docs)]

mod cost;
mod engine;
mod error;
mod fusion;
pub mod gate;
mod model;
pub mod prepared;
mod temporal;
mod train;

pub use cost::TemporalCostTable;
pub use engine::{AntDetector, FrameForward, FrameResult, Mode, WidthPolicy};
pub use error::{Result, TemporalError};
pub use fusion::{Fusion, FusionAnchor, FusionConfig};
pub use gate::{Gate, GateConfig};
pub use model::{AntModel, MODEL_FILE};
pub use temporal::{AntTemporal, AntTemporalConfig, temporal_path};
pub use train::{GateSampling, NonKeyOutput, forward_clip, forward_clip_train, forward_non_key};
