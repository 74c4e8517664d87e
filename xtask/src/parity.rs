//! `cargo xtask parity`.

use clap::Args;

/// Arguments of `cargo xtask parity`.
#[derive(Args, Debug)]
pub struct ParityArgs {}

/// Runs the command.
pub fn run(_args: ParityArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
