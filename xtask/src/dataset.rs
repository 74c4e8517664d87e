//! `cargo xtask dataset ...`: owned by the loader work (issue 3).

use clap::Subcommand;

/// The dataset tools.
#[derive(Subcommand, Debug)]
pub enum DatasetCommand {
    /// Statistics of one annotation file or a whole release.
    Stats,
}

/// Runs the command.
pub fn run(_command: DatasetCommand) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
