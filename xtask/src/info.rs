//! `cargo xtask info`: parameters and GMAC of the detector and its backbone for any subnet,
//! counted as torch's FlopCounterMode counts them (see `ant_supernet::cost`).

use ant_supernet::{EfficientDetConfig, SubnetArch, detector_cost};
use anyhow::Context;
use clap::Args;

/// Arguments of `cargo xtask info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Model config: d0, d0_plus or tiny.
    #[arg(long, default_value = "d0")]
    config: String,
    /// Number of classes (4 for UA-DETRAC, 90 for COCO).
    #[arg(long, default_value_t = 4)]
    num_classes: usize,
    /// Subnet: six expansion ratios in 1..=6, one per elastic stage.
    #[arg(long, default_value = "6,6,6,6,6,6")]
    arch: SubnetArch,
    /// Input size in pixels (default: the config's).
    #[arg(long)]
    image_size: Option<usize>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let mut config =
        EfficientDetConfig::by_name(&args.config, args.num_classes).with_context(|| {
            format!(
                "unknown config {:?}: expected d0, d0_plus or tiny",
                args.config
            )
        })?;
    if let Some(size) = args.image_size {
        anyhow::ensure!(size >= 32, "image size {size} is too small (at least 32)");
        config = config.with_image_size(size);
    }
    let cost = detector_cost(&config, &args.arch);
    let gmac = cost.total.macs as f64 / 1e9;
    let backbone_gmac = cost.backbone.macs as f64 / 1e9;
    println!(
        "config {} ({} classes, {} px), subnet {}",
        config.name, config.num_classes, config.image_size, args.arch
    );
    println!("{:<10} {:>12} {:>10}", "part", "params", "GMAC");
    let rows = [
        ("stem", cost.stem),
        ("backbone", cost.backbone),
        ("bifpn", cost.fpn),
        ("heads", cost.heads),
        ("total", cost.total),
    ];
    for (name, part) in rows {
        println!(
            "{name:<10} {:>12} {:>10.3}",
            part.params,
            part.macs as f64 / 1e9
        );
    }
    for (index, stage) in cost.stages.iter().enumerate() {
        println!(
            "  stage {} {:>12} {:>10.3}",
            index + 1,
            stage.params,
            stage.macs as f64 / 1e9
        );
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "params": cost.total.params,
                "gmac": gmac,
                "backbone_gmac": backbone_gmac,
                "backbone_params": cost.backbone.params,
                "arch": args.arch,
                "config": config.name,
                "image_size": config.image_size,
            })
        );
    }
    Ok(())
}
