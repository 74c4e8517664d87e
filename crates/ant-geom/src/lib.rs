//! ant-geom: typed boxes, IoU, reference NMS, the letterbox map and the image transform into the input of the ANT detector.
//!
//! ANT (Adapt Network Across Time) detects vehicles in UA-DETRAC video with an EfficientDet
//! supernet. This crate holds the plain-Rust geometry every other crate shares, with no Burn
//! dependency so it compiles fast and is easy to property-test:
//!
//! - [`BoxXyxy`] and [`BoxXywh`]: continuous pixel coordinates, areas without the legacy `+1`
//!   (the COCO rule), conversions as named functions.
//! - [`fn@nms`], [`batched_nms`] and [`batched_nms_top`]: greedy non-maximum suppression with
//!   the semantics of `torchvision.ops.nms` / `batched_nms` (suppress when IoU is strictly
//!   greater than the threshold; `_top` stops after the best `k` kept boxes), plus naive
//!   references in [`nms::reference`] that the tests compare against.
//! - [`Letterbox`]: effdet's `ResizePad` (keep aspect, pad at the bottom/right) as a box map
//!   with its inverse, and the horizontal flip used by augmentation.
//! - [`InputTransform`] ([`transform`]): the same letterbox applied to an RGB image, and
//!   ImageNet normalisation into the detector's CHW input; boxes to the input and back.
//!
//! Reference code: torchvision `ops/boxes.py` and effdet `data/transforms.py`
//! (<https://github.com/rwightman/efficientdet-pytorch/blob/c6dff775a36cea0bf9b76c58e59f936411c5ce01/effdet/data/transforms.py>).

#![warn(missing_docs)]

pub mod boxes;
pub mod letterbox;
pub mod nms;
pub mod transform;

pub use boxes::{BoxXywh, BoxXyxy};
pub use letterbox::Letterbox;
pub use nms::{batched_nms, batched_nms_top, nms};
pub use transform::InputTransform;
