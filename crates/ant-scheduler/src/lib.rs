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
//!
//! ```
//! use ant_scheduler::{KeyFramePolicy, KeyFrameScheduler};
//!
//! // Stem features of four frames (flattened; a real stem map holds thousands of values).
//! let frames = [
//!     [1.0, -2.0, 3.0, 4.0],
//!     [1.1, -2.0, 3.0, 4.0], // moved by 0.1 / 10 = 1% of the key frame's magnitude
//!     [2.0, -1.0, 3.0, 4.0], // moved by 2 / 10 = 20%: a new key frame
//!     [2.0, -1.0, 3.1, 4.0], // 1% from the new key frame
//! ];
//! let mut scheduler = KeyFrameScheduler::new(KeyFramePolicy::adaptive(0.1)?)?;
//! let mut keys = Vec::new();
//! for features in &frames {
//!     let decision = scheduler.decide(Some(features.as_slice()))?;
//!     keys.push(decision.key);
//! }
//! assert_eq!(keys, [true, false, true, false]);
//!
//! // The fixed interval needs no features: frames 0, 3, 6, ... are key.
//! let mut fixed = KeyFrameScheduler::new(KeyFramePolicy::interval(3)?)?;
//! let mut keys = Vec::new();
//! for _ in 0..4 {
//!     keys.push(fixed.decide(None)?.key);
//! }
//! assert_eq!(keys, [true, false, false, true]);
//! # Ok::<(), ant_scheduler::SchedulerError>(())
//! ```
#![warn(missing_docs)]

mod deviation;
mod error;
mod policy;

pub use deviation::normalized_l1_deviation;
pub use error::SchedulerError;
pub use policy::{KeyDecision, KeyFramePolicy, KeyFrameScheduler};
