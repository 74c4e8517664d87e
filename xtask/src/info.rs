//! `cargo xtask info`.

use clap::Args;

/// Arguments of `cargo xtask info`.
#[derive(Args, Debug)]
pub struct InfoArgs {}

/// Runs the command.
pub fn run(_args: InfoArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
