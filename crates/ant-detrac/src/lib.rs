//! ant-detrac: the UA-DETRAC data of the ANT reproduction ("Adapt Network Across Time",
//! `../shared/paper/ANT.md`, evaluated on UA-DETRAC: Wen et al., CVIU 2020,
//! <https://detrac-db.rit.albany.edu/>).
//!
//! - [`annotation`]: both XML schemas (v1 and v3) into [`SequenceAnnotation`], and a v3 writer.
//! - [`classes`]: the four benchmark classes and the documented v3 type table.
//! - [`layout`]: the on-disk layout of a release; [`split`]: the official 60/40 split list.
//! - [`transform`]: letterbox resize with the exact box inverse, flip, normalisation.
//! - [`dataset`] and [`batcher`]: Burn `Dataset`s of single frames and of key-frame clips, and
//!   a `Batcher` that decodes JPEGs in parallel.
//! - [`frames`]: frame sources for streaming: a directory of images, or a video decoded by
//!   the system's ffmpeg frame by frame.
//! - [`coco`]: COCO ground-truth export; [`stats`]: per-sequence statistics.
//! - [`synth`]: a procedural generator writing sequences in the exact UA-DETRAC format.
#![warn(missing_docs)]

pub mod annotation;
pub mod batcher;
pub mod classes;
pub mod coco;
pub mod dataset;
pub mod draw;
pub mod error;
pub mod frames;
pub mod layout;
pub mod split;
pub mod stats;
pub mod synth;
/// The image transforms into the detector's input, from `ant-geom` (re-exported: the
/// batchers use them).
pub use ant_geom::transform;

pub use annotation::{DetracBox, FrameAnnotation, Occlusion, Schema, SequenceAnnotation, Target};
pub use batcher::{ClipBatch, DetectionBatch, DetracBatcher};
pub use classes::{V3_TYPE_TABLE, VehicleClass, VehicleType};
pub use coco::{CocoGroundTruth, IgnoredRegionsAs, to_coco, to_coco_with};
pub use dataset::{
    ClipDataset, ClipDatasetConfig, ClipRef, ColorJitter, FrameDataset, FrameDatasetConfig,
    FrameRef, FrameSample, FrameTargets, GtBox, LoadedSequence, decode_frame, decode_image,
    load_frame, load_split,
};
pub use error::DetracError;
pub use frames::{BadFrame, Frame, FrameSource, SourceItem, VideoOptions};
pub use layout::{ReleaseLayout, SequencePaths};
pub use split::{Split, SplitEntry, SplitList};
pub use stats::SequenceStats;
pub use synth::{SynthConfig, SynthSummary, generate_sequence, write_dataset};
pub use transform::InputTransform;
