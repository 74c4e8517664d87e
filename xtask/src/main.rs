//! The ant runner: `cargo xtask <command>` composes the workspace crates into the jobs a user
//! runs (training, evaluation, inference, import, parity and cost checks, dataset tools).
//!
//! Every command lives in its own module with a clap `Args` struct and a `run` function.

mod coco_eval;
mod dataset;
pub mod device;
mod eval;
mod import;
mod infer;
mod info;
mod parity;
mod remote;
mod train;

use clap::{Parser, Subcommand};

/// mimalloc reuses freed memory: the engine's and Burn's large activation buffers would
/// otherwise be mapped and faulted in afresh for every layer of every frame.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// ANT: Adapt Network Across Time, on Burn.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train the three stages (standalone, supernet, joint) and evaluate.
    Train(train::TrainArgs),
    /// Evaluate a training run on the test sequences: every method of Table 1, streamed.
    Eval(eval::EvalArgs),
    /// Run the streaming ANT detector over a directory of frames (JSON lines, drawings).
    Infer(infer::InferArgs),
    /// Parameters and GMAC of the detector and its backbone, for any subnet.
    Info(info::InfoArgs),
    /// Compare our detector with effdet's reference outputs.
    Parity(parity::ParityArgs),
    /// Convert an effdet/timm PyTorch checkpoint into our native format.
    Import(import::ImportArgs),
    /// UA-DETRAC tools: statistics, the synthetic generator, COCO export.
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
    /// COCO bbox evaluation of a results file against a ground-truth file (pycocotools' numbers).
    CocoEval(coco_eval::CocoEvalArgs),
    /// Serve this machine's device to trainers on others (`train --replica-device`); build
    /// with `--features remote`.
    ServeDevice(remote::ServeDeviceArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Infer(args) => infer::run(args),
        Command::Info(args) => info::run(args),
        Command::Parity(args) => parity::run(args),
        Command::Import(args) => import::run(args),
        Command::Dataset(command) => dataset::run(command),
        Command::CocoEval(args) => coco_eval::run(args),
        Command::ServeDevice(args) => remote::serve(args),
    }
}
