//! `cargo xtask import`.

use clap::Args;

/// Arguments of `cargo xtask import`.
#[derive(Args, Debug)]
pub struct ImportArgs {}

/// Runs the command.
pub fn run(_args: ImportArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
