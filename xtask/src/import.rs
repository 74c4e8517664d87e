//! `cargo xtask import`: converts an effdet/timm PyTorch checkpoint into our native format
//! (`MODEL.bpk` + `MODEL.json`). A class head for another number of classes is
//! re-initialised (COCO's 90 -> UA-DETRAC's 4).

use std::path::PathBuf;

use ant_supernet::{EfficientDet, EfficientDetConfig};
use anyhow::Context;
use clap::Args;

use crate::device::DeviceChoice;

/// Arguments of `cargo xtask import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// effdet/timm PyTorch state dict, e.g. `tf_efficientdet_d0_34-f153e0cf.pth`.
    #[arg(long)]
    weights: PathBuf,
    /// Output checkpoint (`.bpk`; the config goes beside it as `.json`).
    #[arg(long)]
    out: PathBuf,
    /// Model config: d0 or d0_plus.
    #[arg(long, default_value = "d0")]
    config: String,
    /// Classes of the new model (the class head is re-initialised if it differs).
    #[arg(long, default_value_t = 4)]
    num_classes: usize,
    /// Input size in pixels (default: the config's).
    #[arg(long)]
    image_size: Option<usize>,
    /// Device: cpu, wgpu, ndarray.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

/// Runs the command.
pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    let device = args.device.device()?;
    let mut config =
        EfficientDetConfig::by_name(&args.config, args.num_classes).with_context(|| {
            format!(
                "unknown config {:?}: expected d0, d0_plus or tiny",
                args.config
            )
        })?;
    if let Some(size) = args.image_size {
        config = config.with_image_size(size);
    }
    let model = EfficientDet::from_effdet(&config, &args.weights, &device)
        .with_context(|| format!("importing {}", args.weights.display()))?;
    model
        .save(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "imported {} -> {} ({} trainable parameters in the supernet, config {})",
        args.weights.display(),
        args.out.display(),
        model.trainable_params(),
        config.name
    );
    Ok(())
}
