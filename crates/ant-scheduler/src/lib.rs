//! # ant-scheduler
//!
//! Key-frame policies, free of the model: fixed interval, and adaptive (normalised L1
//! deviation of stem features from the last key frame's, against a threshold).
//!
//! Status: not built yet (issue "The ANT detector across time").
#![warn(missing_docs)]
