//! `cargo xtask coco-eval`: owned by the metrics work (issue 3).

use clap::Args;

/// Arguments of `cargo xtask coco-eval`.
#[derive(Args, Debug)]
pub struct CocoEvalArgs {}

/// Runs the command.
pub fn run(_args: CocoEvalArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
