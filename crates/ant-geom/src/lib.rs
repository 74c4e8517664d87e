//! ant-geom: typed boxes, IoU, reference NMS, the letterbox map and the image transform into
//! the input of the ANT detector.
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
//!
//! ```
//! use ant_geom::{BoxXyxy, Letterbox, batched_nms};
//!
//! // Three detections in 512x512 network-input pixels: two near-duplicates of one car and a
//! // bus at the same place (another class, so it is not suppressed).
//! let boxes = [
//!     BoxXyxy::new(100.0, 50.0, 180.0, 110.0),
//!     BoxXyxy::new(102.0, 52.0, 182.0, 112.0),
//!     BoxXyxy::new(100.0, 50.0, 180.0, 110.0),
//! ];
//! let scores = [0.9, 0.8, 0.4];
//! let classes = [0, 0, 1];
//! let keep = batched_nms(&boxes, &scores, &classes, 0.5);
//! assert_eq!(keep, vec![0, 2]);
//!
//! // Back into the pixels of the 960x540 UA-DETRAC frame the input was letterboxed from.
//! let letterbox = Letterbox::new(960, 540, 512, 512);
//! assert_eq!(letterbox.resized_size(), (512, 288));
//! let in_frame = letterbox.inverse(boxes[keep[0]]);
//! assert!((in_frame.x1 - 187.5).abs() < 1e-3 && (in_frame.x2 - 337.5).abs() < 1e-3);
//! assert!((in_frame.iou(&BoxXyxy::new(187.5, 93.75, 337.5, 206.25)) - 1.0).abs() < 1e-5);
//! ```

#![warn(missing_docs)]

mod boxes;
mod letterbox;
pub mod nms;
pub mod transform;

pub use boxes::{BoxXywh, BoxXyxy};
pub use letterbox::Letterbox;
pub use nms::{batched_nms, batched_nms_top, nms};
pub use transform::InputTransform;
