//! Batch-norm statistics for evaluation: recalibration of a subnet's running statistics.
//!
//! Burn's `BatchNorm` (like effdet's, momentum 0.01) updates its running statistics slowly;
//! after a short CPU training from scratch they lag far behind the weights, and a model that
//! detects perfectly with batch statistics fails in evaluation mode. Before evaluating (or
//! exporting) a subnet we therefore recompute its statistics as the plain average of the
//! batch statistics over a few training batches: momentum `1 / (k + 1)` for the `k`-th batch,
//! which is PyTorch's `momentum=None` cumulative average and the usual recalibration of
//! slimmable/once-for-all supernets. The private norms of each expansion ratio (see
//! `ant-supernet`'s backbone) are only touched by their own subnet; the shared norms of the
//! BiFPN and heads are recalibrated for the subnet being evaluated, on a copy.

use ant_supernet::{EfficientDet, SubnetArch};
use burn::module::Module;
use burn::tensor::Tensor;

use crate::error::Result;

/// Sets the running-statistics momentum of every batch norm.
pub fn set_norm_momentum(model: &mut EfficientDet, momentum: f64) {
    model.for_each_norm(|norm| norm.momentum = momentum);
}

/// A copy of `model` (on its plain device) whose batch-norm statistics for subnet `arch` are
/// the average batch statistics over `batches` (plain-device images); `model` is unchanged.
pub fn recalibrate_norms(
    model: &EfficientDet,
    arch: &SubnetArch,
    batches: &[Tensor<4>],
) -> Result<EfficientDet> {
    // `valid()` gives fresh running-state cells (a clone would share them); `train()` puts
    // the parameters back on the autodiff device so the norms use and record batch statistics.
    let mut copy = model.valid().train();
    let mut momenta = Vec::new();
    copy.for_each_norm(|norm| momenta.push(norm.momentum));
    for (index, images) in batches.iter().enumerate() {
        set_norm_momentum(&mut copy, 1.0 / (index as f64 + 1.0));
        let images = Tensor::from_inner(images.clone());
        let _ = copy.forward(images, arch)?;
    }
    let mut restored = momenta.into_iter();
    copy.for_each_norm(|norm| norm.momentum = restored.next().expect("same norms as before"));
    Ok(copy.valid())
}

/// A copy of a supernet whose every private norm and the shared norms are recalibrated: the
/// uniform subnets of ratios 1..5 in turn (each sets its own ratio's private backbone norms),
/// then the full network, so the shared BiFPN/head norms end with the full network's
/// statistics (the key-frame path). The joint stage starts from this: its non-key frames run
/// any mix of ratios, whose private norms the supernet stage only updated slowly. The smaller
/// ratios use the first half of `batches` (their norms are per channel and few).
pub fn recalibrate_supernet(model: &EfficientDet, batches: &[Tensor<4>]) -> Result<EfficientDet> {
    let mut current = model.valid();
    let half = &batches[..batches.len().div_ceil(2)];
    for ratio in ant_supernet::arch::MIN_RATIO..ant_supernet::arch::MAX_RATIO {
        let arch = SubnetArch::uniform(ratio)?;
        if model.validate(&arch).is_err() {
            continue; // an extracted model without this ratio
        }
        current = recalibrate_norms(&current, &arch, half)?;
    }
    recalibrate_norms(&current, &SubnetArch::LARGEST, batches)
}
