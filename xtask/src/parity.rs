//! `cargo xtask parity`: runs effdet's reference input through our model built from an
//! effdet checkpoint and compares every reference tensor; non-zero exit on any failure.

use std::path::PathBuf;

use ant_supernet::parity::run_parity;
use anyhow::Context;
use clap::Args;

use crate::device::DeviceChoice;

/// Arguments of `cargo xtask parity`.
#[derive(Args, Debug)]
pub struct ParityArgs {
    /// effdet/timm PyTorch state dict (`.pth`).
    #[arg(long)]
    weights: PathBuf,
    /// Reference outputs (`.safetensors` with `input`, `backbone_*`, `class_out_*`, ...).
    #[arg(long)]
    reference: PathBuf,
    /// Device: cpu, wgpu, ndarray.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// Print one JSON object with every error as the last line.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(args: ParityArgs) -> anyhow::Result<()> {
    let device = args.device.device()?;
    let report = run_parity(&args.weights, &args.reference, &device).with_context(|| {
        format!(
            "parity of {} against {}",
            args.weights.display(),
            args.reference.display()
        )
    })?;
    println!(
        "{:<32} {:>12} {:>10}  result",
        "tensor", "max |error|", "tolerance"
    );
    for entry in &report.entries {
        let verdict = if entry.passed() { "ok" } else { "FAIL" };
        println!(
            "{:<32} {:>12.3e} {:>10.0e}  {verdict}",
            entry.name, entry.max_abs_error, entry.tolerance
        );
    }
    if args.json {
        let errors: serde_json::Map<String, serde_json::Value> = report
            .entries
            .iter()
            .map(|e| (e.name.clone(), serde_json::json!(e.max_abs_error)))
            .collect();
        println!(
            "{}",
            serde_json::json!({ "passed": report.passed(), "errors": errors })
        );
    }
    anyhow::ensure!(
        report.passed(),
        "parity failed: some tensors exceed their tolerance"
    );
    Ok(())
}
