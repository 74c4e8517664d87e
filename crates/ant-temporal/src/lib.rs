//! # ant-temporal
//!
//! The ANT detector across time: fusion modules (concat, 1x1 conv, BN, act, 3x3 depthwise,
//! BN, act) that merge a non-key frame's stage features with the key frame's, and dynamic
//! gates (global pool, FC, ReLU, FC; Gumbel-softmax in training, argmax at test) that pick
//! each next stage's width.
//!
//! Status: not built yet (issue "The ANT detector across time"). The supernet it builds on
//! exposes the stage-level features through `ant_supernet::EfficientDet::forward_backbone`.
#![warn(missing_docs)]
