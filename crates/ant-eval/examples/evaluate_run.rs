//! Every method of the paper's Table 1 on one run, with small sweeps so it finishes quickly
//! on a CPU.
//!
//! `cargo run --release -p ant-eval --example evaluate_run -- [RUN_DIR [OUT_DIR]]`
//!
//! Without arguments it writes an untrained run ([`ant_train::write_untrained_run`]: random
//! weights, the checkpoint layout of `cargo xtask train`) on a tiny synthetic set (5
//! sequences of 6 frames, 2 of them in the test split) under the system's temporary
//! directory, and evaluates that: the numbers then say nothing about ANT, only what the
//! evaluation produces. Given `RUN_DIR` (a run of `cargo xtask train`, or of the ant-train
//! example `tiny_run`) it evaluates that run on the data root of its config.
//!
//! [`ant_eval::evaluate_run`] streams each test sequence through every method in one pass:
//! `static-full`, the static subnets of a 3-sample search (`static-nas@<arch>`), ANT with the
//! training schedule's key frames (`ant-fixed<n>`) and adaptive key frames at two thresholds,
//! the non-temporal dynamic network when the run trained one, and Skip-Conv at two gate
//! thresholds with the dense and the sparse kernel. It prints the markdown table and writes
//! `table.md`, `report.json`, `summary.json`, the two SVG plots, the latency table and the
//! COCO detections of each method into `OUT_DIR` (default `RUN_DIR/eval-example`, so the
//! output of a full `cargo xtask eval`, `RUN_DIR/eval`, is left alone). Nothing is deleted.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ant_detrac::{SynthConfig, write_dataset};
use ant_eval::{EvalOptions, SearchOptions, evaluate_run, markdown_table};
use ant_train::{TrainConfig, write_untrained_run};
use burn::tensor::Device;

const USAGE: &str = "\
usage: cargo run --release -p ant-eval --example evaluate_run -- [RUN_DIR [OUT_DIR]]

Evaluates every method of Table 1 on a run with small sweeps (3 searched subnets,
2 adaptive and 2 Skip-Conv thresholds). Without RUN_DIR: an untrained run on a tiny
synthetic set, written under the system's temporary directory. OUT_DIR defaults to
RUN_DIR/eval-example.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "-h" || arg == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if let Some(flag) = args.iter().find(|arg| arg.starts_with('-')) {
        eprintln!("unknown option {flag:?}\n\n{USAGE}");
        return ExitCode::from(2);
    }
    if args.len() > 2 {
        eprintln!(
            "expected at most two arguments, got {}\n\n{USAGE}",
            args.len()
        );
        return ExitCode::from(2);
    }
    let run_dir = args.first().map(PathBuf::from);
    let out_dir = args.get(1).map(PathBuf::from);
    match run(run_dir, out_dir) {
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

fn run(run_dir: Option<PathBuf>, out_dir: Option<PathBuf>) -> Result<(), Box<dyn Error>> {
    let run_dir = match run_dir {
        Some(dir) => dir,
        None => untrained_run(
            &std::env::temp_dir().join(format!("ant-evaluate-run-{}", std::process::id())),
        )?,
    };
    let mut options = EvalOptions::new(&run_dir, Device::flex());
    options.out_dir = Some(out_dir.unwrap_or_else(|| run_dir.join("eval-example")));
    // Two points of the default adaptive sweep (about half and a quarter of the frames are
    // key on the main job's run) and two of the Skip-Conv gates (0: every changed position
    // is recomputed; 0.01: where AP starts to drop on the main job's run).
    options.thresholds = vec![0.05, 0.08];
    options.skipconv_thresholds = vec![0.0, 0.01];
    options.search = SearchOptions {
        samples: 3,
        val_sequences: 1,
        max_front: 2,
        ..SearchOptions::default()
    };
    options.warmup_frames = 1;
    println!("evaluating {}", run_dir.display());
    let evaluation = evaluate_run(&options)?;

    println!("\n{}", markdown_table(&evaluation));
    let out_dir = options.out_dir();
    println!("outputs in {}:", out_dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&out_dir)?
        .map(|entry| {
            entry.map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.path().is_dir() {
                    format!("{name}/")
                } else {
                    name
                }
            })
        })
        .collect::<Result<_, _>>()?;
    names.sort();
    println!("  {}", names.join(", "));
    let total = evaluation
        .seconds
        .iter()
        .find(|(phase, _)| phase == "total")
        .map_or(0.0, |(_, seconds)| *seconds);
    println!(
        "{} methods, {} frames streamed per method, {total:.1} s",
        evaluation.methods.len(),
        evaluation.frames
    );
    Ok(())
}

/// Writes a tiny synthetic set (3 train, 2 test sequences of 6 frames) into `root/synth` and
/// an untrained run on it into `root/run`, which it returns.
fn untrained_run(root: &Path) -> Result<PathBuf, Box<dyn Error>> {
    let data_root = root.join("synth");
    let synth = SynthConfig {
        sequences: 5,
        frames: 6,
        ..SynthConfig::default()
    };
    write_dataset(&synth, &data_root)?;
    let overrides = [
        format!("data.root={}", serde_json::to_string(&data_root)?),
        "data.test_frame_step=1".into(),
        "model.image_size=128".into(),
        "eval.recalibration_batches=1".into(),
        // 6-frame sequences: clips of 3 consecutive frames, one key frame in 3 (the default's
        // 4 frames 2 apart need 7 frames).
        "joint.clip_len=3".into(),
        "joint.frame_gap=1".into(),
        "joint.clip_step=null".into(),
    ];
    let config = TrainConfig::load(&workspace_root().join("configs/default.json"), &overrides)?;
    let run_dir = root.join("run");
    write_untrained_run(&run_dir, &config, &Device::flex())?;
    println!(
        "wrote an untrained run (random weights) to {} on a synthetic set in {}",
        run_dir.display(),
        data_root.display()
    );
    Ok(run_dir)
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
