//! # ant-train
//!
//! The training loops of ANT: the standalone detector, the supernet (sandwich rule with
//! in-place distillation) and the joint fusion + gate stage; checkpoints and evaluation.
//!
//! Status: not built yet (issue "Training"). `cargo xtask train` says "not yet" until then.
#![warn(missing_docs)]
