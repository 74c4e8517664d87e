//! The main job's training, made tiny: stages 0, 1 and 2 of ANT on a small synthetic set in
//! well under a minute of CPU time.
//!
//! `cargo run --release -p ant-train --example tiny_run -- [OUT_DIR]`
//!
//! Loads the committed CPU config (`configs/default.json`), shrinks it with the `key=value`
//! overrides `cargo xtask train --set` takes (12 synthetic sequences of 8 frames, 128-px
//! input, one epoch of one or two steps per stage), generates the set into `OUT_DIR/synth`
//! and runs [`ant_train::run_pipeline`] into `OUT_DIR/run`: the standalone detector, the
//! supernet (sandwich rule), then fusion + gates for ANT and for the non-temporal baseline.
//! It prints the seconds of each phase, the files of the run directory and how to evaluate
//! the run. `OUT_DIR` defaults to a fresh directory under the system's temporary directory;
//! nothing is deleted, and a directory that already holds a run is refused.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ant_train::{RunOptions, TrainConfig, run_pipeline};
use burn::tensor::Device;

const USAGE: &str = "\
usage: cargo run --release -p ant-train --example tiny_run -- [OUT_DIR]

Trains stages 0, 1 and 2 of ANT for a step or two each on a tiny synthetic set:
the set goes to OUT_DIR/synth, the run to OUT_DIR/run (default OUT_DIR: a new
directory under the system's temporary directory).";

/// The overrides that make `configs/default.json` tiny; the data root is added by [`run`].
const TINY: [&str; 11] = [
    "data.test_frame_step=4",
    "data.synth_sequences=12",
    "data.synth_frames=8",
    "model.image_size=128",
    "standalone.epochs=1",
    "standalone.max_steps_per_epoch=2",
    "supernet.epochs=1",
    "supernet.max_steps_per_epoch=1",
    "joint.epochs=1",
    "joint.max_steps_per_epoch=2",
    "eval.recalibration_batches=1",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out_dir = match args.as_slice() {
        [] => std::env::temp_dir().join(format!("ant-tiny-run-{}", std::process::id())),
        [flag] if flag == "-h" || flag == "--help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [flag] if flag.starts_with('-') => {
            eprintln!("unknown option {flag:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
        [dir] => PathBuf::from(dir),
        _ => {
            eprintln!(
                "expected at most one argument, got {}\n\n{USAGE}",
                args.len()
            );
            return ExitCode::from(2);
        }
    };
    match run(&out_dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn run(out_dir: &Path) -> Result<(), Box<dyn Error>> {
    // Absolute, so the data root saved in the run's config.json holds from any directory.
    let out_dir = std::path::absolute(out_dir)?;
    let run_dir = out_dir.join("run");
    if run_dir.join("config.json").exists() {
        return Err(format!(
            "{} already holds a run: pick another OUT_DIR (or continue it with \
             `cargo xtask train --resume --run-dir {}`)",
            run_dir.display(),
            run_dir.display()
        )
        .into());
    }
    let config_path = workspace_root().join("configs/default.json");
    // The data root is a JSON string in the override, so any path survives the parsing.
    let mut overrides = vec![format!(
        "data.root={}",
        serde_json::to_string(&out_dir.join("synth"))?
    )];
    overrides.extend(TINY.iter().map(|text| text.to_string()));
    let config = TrainConfig::load(&config_path, &overrides)?;
    println!(
        "config {} with {} overrides: {} px, {} synthetic sequences x {} frames into {}",
        config_path.display(),
        overrides.len(),
        config.model.image_size,
        config.data.synth_sequences,
        config.data.synth_frames,
        config.data.root.display()
    );

    let options = RunOptions {
        progress: ant_train::Progress::stderr(),
        ..RunOptions::new(&run_dir, Device::flex())
    };
    let trained = run_pipeline(&config, &options)?;
    println!("\nphase seconds:");
    for (phase, seconds) in &trained.seconds {
        println!("  {phase:<22} {seconds:>7.2}");
    }
    println!(
        "trained: {}{}{}; {} test sequences held for evaluation",
        if trained.standalone.is_some() {
            "standalone detector, "
        } else {
            ""
        },
        if trained.supernet.is_some() {
            "supernet, "
        } else {
            ""
        },
        trained
            .joint
            .iter()
            .map(|joint| joint.stage)
            .collect::<Vec<_>>()
            .join(" + "),
        trained.test_sequences.len()
    );
    // Release the run directory's lock before listing it and handing it to an evaluation.
    trained.unlock();

    println!("\nfiles of {}:", run_dir.display());
    let mut files = Vec::new();
    list_files(&run_dir, &mut files)?;
    files.sort();
    for (path, bytes) in &files {
        let relative = path.strip_prefix(&run_dir).unwrap_or(path);
        println!("  {:<48} {:>10} bytes", relative.display(), bytes);
    }
    println!(
        "\nevaluate it (every method of Table 1, with small sweeps):\n  \
         cargo run --release -p ant-eval --example evaluate_run -- {}\n\
         or in full:\n  cargo xtask eval --run {}",
        run_dir.display(),
        run_dir.display()
    );
    Ok(())
}

/// Every file under `dir` (recursively) with its size in bytes.
fn list_files(dir: &Path, files: &mut Vec<(PathBuf, u64)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        if metadata.is_dir() {
            list_files(&entry.path(), files)?;
        } else {
            files.push((entry.path(), metadata.len()));
        }
    }
    Ok(())
}

/// The workspace root, two levels above this package's directory. Read when the example runs
/// (cargo sets `CARGO_MANIFEST_DIR` for `cargo run`), falling back to the directory it was
/// built in.
fn workspace_root() -> PathBuf {
    let manifest_dir: PathBuf = std::env::var_os("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .into();
    let root = manifest_dir.join("../..");
    root.canonicalize().unwrap_or(root)
}
