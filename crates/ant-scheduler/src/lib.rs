//! # ant-scheduler
//!
//! Key-frame policies of ANT (*Adapt Network Across Time for Efficient Video Processing*,
//! CVPR 2022 ECV workshop, Sec. 3.3), free of the model: they decide from plain numbers.
//!
//! - [`KeyFramePolicy::Interval`]: every `n`-th frame is key (the paper trains with 1 in 3).
//! - [`KeyFramePolicy::Adaptive`]: a frame is key when the normalised L1 deviation of its stem
//!   features from the last key frame's ([`normalized_l1_deviation`]) reaches a threshold.
//!
//! The first frame of a stream, and the first frame after [`KeyFrameScheduler::reset`], are
//! always key. The scheduler owns the key frame's stem features (a copy of the slice it was
//! given), so the caller only hands in the current frame's.
//!
//! The paper's reference code is not public; the deviation follows the paper's wording
//! ("normalized L1 deviation" of the features after the conv stem, Fig. 3).
#![warn(missing_docs)]

mod deviation;
mod error;
mod policy;

pub use deviation::normalized_l1_deviation;
pub use error::SchedulerError;
pub use policy::{KeyDecision, KeyFramePolicy, KeyFrameScheduler};
