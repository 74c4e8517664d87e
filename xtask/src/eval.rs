//! `cargo xtask eval`: every method of the paper's Table 1 on a training run, streamed frame
//! by frame on the test sequences in one process (`ant_eval::evaluate_run`): static D0, the
//! static subnets of a search ("D0 w/ NAS"), the non-temporal dynamic network (when the run
//! trained one), ANT with the fixed 1-in-3 schedule, ANT adaptive at a sweep of
//! thresholds and D0 with Skip-Convolutions at a sweep of gate thresholds. Writes `RUN/eval/` (`table.md`, `report.json`, `summary.json`, two SVG plots,
//! `detections/<method>.json`, `latency-table.json`); `--json` prints the summary as the last
//! line of stdout.
//!
//! `--threads N` builds Burn flex's thread pool (rayon's global pool: flex's matrix products
//! and our kernels run on it) before any tensor work.

use std::io::IsTerminal;
use std::path::PathBuf;

use ant_detrac::Split;
use ant_eval::{
    DEFAULT_SKIPCONV_THRESHOLDS, DEFAULT_THRESHOLDS, EvalOptions, SearchOptions, evaluate_run,
};
use anyhow::Context;
use clap::Args;

use crate::device::DeviceChoice;

/// Flags of `cargo xtask eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The run directory of `cargo xtask train` (config.json, stage checkpoints).
    #[arg(long = "run")]
    pub run_dir: PathBuf,
    /// Dataset root (default: the run config's `data.root`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The split to evaluate: `test`, `train`, or `val` (the static search's validation
    /// sequences, `--val-sequences` training sequences: where to choose thresholds).
    #[arg(long, default_value = "test", value_parser = parse_split)]
    pub split: EvalSplit,
    /// CPU threads (Burn flex's pool); 1 measures single-thread latency.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Output directory (default: RUN/eval).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Adaptive key-frame thresholds (normalised L1 stem deviation), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_THRESHOLDS.to_vec())]
    pub thresholds: Vec<f32>,
    /// Skip-Conv gate thresholds (mean absolute input change per channel), comma-separated;
    /// each gives a `skipconv@T` (dense kernel) and a `skipconv-sparse@T` row. `--no-skipconv`
    /// leaves them out.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_SKIPCONV_THRESHOLDS.to_vec())]
    pub skipconv_thresholds: Vec<f32>,
    /// No Skip-Conv rows.
    #[arg(long)]
    pub no_skipconv: bool,
    /// A run whose stage 2 trained the non-temporal dynamic network (`--set
    /// joint.non_temporal=true`), evaluated as `dynamic-non-temporal` beside this run's ANT.
    #[arg(long)]
    pub non_temporal_run: Option<PathBuf>,
    /// Subnets sampled by the static search (largest and smallest included; 0: no search).
    #[arg(long, default_value_t = 12)]
    pub search_samples: usize,
    /// Training sequences held out as the search's validation split.
    #[arg(long, default_value_t = 4)]
    pub val_sequences: usize,
    /// At most this many front subnets evaluated on the split.
    #[arg(long, default_value_t = 6)]
    pub max_front: usize,
    /// The cached latency table (default: OUT/latency-table.json).
    #[arg(long)]
    pub latency_table: Option<PathBuf>,
    /// Measure the searched subnets' latency again, overwriting the cached table entries
    /// (after changing inference code; the table's key does not know the code version).
    #[arg(long)]
    pub remeasure_latency: bool,
    /// Score every N-th annotated frame (default: the config's data.test_frame_step).
    #[arg(long)]
    pub frame_step: Option<usize>,
    /// Evaluate only the first N sequences of the split.
    #[arg(long)]
    pub max_sequences: Option<usize>,
    /// Frames each method runs before timing starts.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Device: `cpu` (flex) or `wgpu` (build with `--features wgpu`).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Print the summary JSON as the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// What `--split` names.
#[derive(Clone, Copy, Debug)]
pub enum EvalSplit {
    /// A split of the release.
    Release(Split),
    /// The search's validation sequences.
    Validation,
}

fn parse_split(text: &str) -> Result<EvalSplit, String> {
    if text == "val" {
        return Ok(EvalSplit::Validation);
    }
    Split::parse(text)
        .map(EvalSplit::Release)
        .ok_or_else(|| format!("unknown split {text:?}: expected test, train or val"))
}

/// Runs `cargo xtask eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(if args.quiet { "warn" } else { "info" })
            }),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
    anyhow::ensure!(args.threads >= 1, "--threads must be at least 1");
    if let Some(bad) = args
        .skipconv_thresholds
        .iter()
        .find(|t| !t.is_finite() || **t < 0.0)
    {
        anyhow::bail!("--skipconv-thresholds: {bad} is not a finite number >= 0");
    }
    // Everything runs inside the pool (not beside it): a batch-1 layer split over the pool's
    // threads is then run by the calling thread too, and with one thread nothing is handed
    // to another thread at all.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .context("building the CPU thread pool")?;
    pool.install(|| run_in_pool(args))
}

fn run_in_pool(args: EvalArgs) -> anyhow::Result<()> {
    let threads = rayon::current_num_threads();
    let device = args.device.device()?;
    let mut options = EvalOptions::new(args.run_dir.clone(), device);
    options.data_root = args.data;
    match args.split {
        EvalSplit::Release(split) => options.split = split,
        EvalSplit::Validation => options.validation = true,
    }
    options.out_dir = args.out;
    options.thresholds = args.thresholds;
    options.skipconv_thresholds = if args.no_skipconv {
        Vec::new()
    } else {
        args.skipconv_thresholds
    };
    options.search = SearchOptions {
        samples: args.search_samples,
        val_sequences: args.val_sequences,
        max_front: args.max_front,
        latency_table: args.latency_table,
        seed: 0,
        remeasure_latency: args.remeasure_latency,
    };
    options.non_temporal_run = args.non_temporal_run;
    options.frame_step = args.frame_step;
    options.max_sequences = args.max_sequences;
    options.warmup_frames = args.warmup;
    options.threads = threads;
    options.progress = !args.quiet;
    let out_dir = options.out_dir();
    tracing::info!(run = %args.run_dir.display(), threads, out = %out_dir.display(), "eval");
    let evaluation = evaluate_run(&options)
        .with_context(|| format!("evaluating run {}", args.run_dir.display()))?;
    if !args.quiet {
        print!("{}", ant_eval::markdown_table(&evaluation));
        println!(
            "\noutputs in {} (table.md, report.json, summary.json, ap-vs-gmac.svg, \
             ap-vs-latency.svg, detections/); {:.1} s",
            out_dir.display(),
            evaluation
                .seconds
                .iter()
                .find(|(phase, _)| phase == "total")
                .map_or(0.0, |(_, s)| *s)
        );
    }
    if args.json {
        println!("{}", serde_json::to_string(&evaluation.summary())?);
    }
    Ok(())
}
