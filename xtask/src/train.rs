//! `cargo xtask train`: the main job. With no arguments it reads `configs/default.json`,
//! generates the synthetic dataset into `datasets/synth` when it is missing, trains stages 0
//! (standalone detector), 1 (supernet) and 2 (fusion + gates) with `ant_train::run_pipeline`,
//! evaluates them on the synthetic test sequences with `ant_eval::summarize`, prints a table
//! and writes `summary.json` (the `cargo xtask eval --json` format) into the run directory
//! `runs/<name>-<UTC timestamp>`.
//!
//! The run directory holds `config.json` (the config after overrides), `metrics.jsonl`, one
//! directory per stage with `steps.csv`, `loss.svg` and the last two epoch checkpoints, and
//! `summary.json`. `--resume --run-dir DIR` continues a killed run from its newest checkpoints.

use std::io::IsTerminal;
use std::path::PathBuf;

use ant_eval::summarize;
use ant_train::{Progress, RunOptions, TrainConfig, run_pipeline};
use anyhow::Context;
use clap::Args;

use crate::device::DeviceChoice;

/// Flags of `cargo xtask train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Experiment config (JSON); `configs/detrac-paper.json` is the paper's UA-DETRAC recipe.
    #[arg(long, default_value = "configs/default.json")]
    pub config: PathBuf,
    /// Override a config value, e.g. `--set standalone.epochs=2` (repeatable; JSON values).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Start stage 0 from an effdet COCO checkpoint (`.pth`); the class head is re-initialised.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Run directory (default: `runs/<config name>-<UTC timestamp>`).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Continue from the newest checkpoints in `--run-dir` (default: the newest run of this
    /// config's name under `runs/`).
    #[arg(long)]
    pub resume: bool,
    /// Device: `cpu` (Burn's flex backend), `wgpu` or `cuda` (build with `--features wgpu` or
    /// `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Data-parallel training on this many GPUs (with `--device wgpu` or `cuda`; default 1):
    /// GPUs 0..N, one replica each (`data_parallel` becomes N); gradients are merged on GPU 0.
    #[arg(long)]
    pub gpus: Option<usize>,
    /// One more data-parallel replica on a device another machine serves with `cargo xtask
    /// serve-device` (`ws://host:port`, repeatable), beside the `data_parallel` local ones.
    /// Needs the `remote` feature; the token comes from `ANT_REMOTE_TOKEN` or
    /// `--remote-token-file`.
    #[arg(long = "replica-device", value_name = "URL")]
    pub replica_devices: Vec<String>,
    /// The file holding the token the `--replica-device` servers expect.
    #[arg(long, value_name = "FILE")]
    pub remote_token_file: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `YYYYMMDD-HHMMSS` in UTC, without a date library.
fn utc_timestamp() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The newest `runs/<name>-*` directory.
fn newest_run(name: &str) -> Option<PathBuf> {
    let prefix = format!("{name}-");
    let mut runs: Vec<PathBuf> = std::fs::read_dir("runs")
        .ok()?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect();
    runs.sort();
    runs.pop()
}

/// Runs `cargo xtask train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    // Bars with ETAs on a terminal, plain lines in a log; log lines print above the bars.
    let progress = if args.quiet {
        Progress::quiet()
    } else {
        Progress::stderr()
    };
    let writer = progress.clone();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // A lost remote replica makes Burn's client warn once per queued batch of
                // operations (thousands of identical lines); the run's own error says it.
                tracing_subscriber::EnvFilter::new(
                    "info,burn_remote::client::service::writer=error",
                )
            }),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(move || writer.writer())
        .try_init();
    let mut config = TrainConfig::load(&args.config, &args.overrides)
        .with_context(|| format!("loading {}", args.config.display()))?;
    if let Some(init) = args.init {
        config.init = Some(init);
    }
    let run_dir = match (args.run_dir, args.resume) {
        (Some(dir), _) => dir,
        (None, true) => newest_run(&config.name)
            .with_context(|| format!("--resume: no runs/{}-* directory to resume", config.name))?,
        (None, false) => PathBuf::from("runs").join(format!("{}-{}", config.name, utc_timestamp())),
    };
    // Replicas are for a CPU's cores: on a GPU two replicas only contend (measured on an H200:
    // 4.8 img/s with two, 10.9 with one), so wgpu runs one replica per GPU.
    let (device, replica_devices) = match (args.device, args.gpus) {
        (DeviceChoice::Wgpu | DeviceChoice::Cuda, gpus) => {
            let count = gpus.unwrap_or(1);
            if count == 0 {
                anyhow::bail!("--gpus must be at least 1");
            }
            if config.data_parallel != count {
                tracing::info!(data_parallel = count, "one data-parallel replica per GPU");
                config.data_parallel = count;
                config.validate()?;
            }
            if count == 1 {
                (args.device.device()?, Vec::new())
            } else {
                let gpus = crate::device::gpu_devices(args.device, count)?;
                (gpus[0].clone(), gpus)
            }
        }
        (_, Some(_)) => anyhow::bail!("--gpus needs --device wgpu or cuda"),
        (_, None) => (args.device.device()?, Vec::new()),
    };
    // Remote replicas come after the local ones: replica i runs on replica_devices[i].
    let local_replicas = config.data_parallel;
    let replica_devices = if args.replica_devices.is_empty() {
        replica_devices
    } else {
        let token = crate::remote::client_token(args.remote_token_file.as_deref())?;
        let remote = crate::remote::replica_devices(&args.replica_devices, token.as_deref())?;
        let mut devices = if replica_devices.is_empty() {
            vec![device.clone(); local_replicas]
        } else {
            replica_devices
        };
        for (url, remote) in args.replica_devices.iter().zip(&remote) {
            tracing::info!(replica = devices.len(), url = %url, device = ?remote, "remote replica");
        }
        devices.extend(remote);
        config.data_parallel = devices.len();
        config.validate()?;
        devices
    };
    let options = RunOptions {
        run_dir: run_dir.clone(),
        device,
        replica_devices,
        resume: args.resume,
        progress,
        stop_after_epochs: None,
    };
    tracing::info!(run_dir = %run_dir.display(), config = %args.config.display(), "train");
    let started = std::time::Instant::now();
    let remote_urls = &args.replica_devices;
    let trained = run_pipeline(&config, &options)
        .map_err(|error| match error {
            // A remote replica lost mid-step: name its URL and say how to go on.
            ant_train::TrainError::Worker { replica, .. } if replica >= local_replicas => {
                let url = &remote_urls[replica - local_replicas];
                anyhow::Error::new(error).context(format!(
                    "replica {replica} is the remote device {url}: once its `cargo xtask \
                     serve-device` is back, continue with --resume (the last epoch checkpoint \
                     is kept)"
                ))
            }
            _ => anyhow::Error::new(error),
        })
        .with_context(|| format!("training run {}", run_dir.display()))?;
    let (summary, eval_seconds) = summarize(&config, &trained, &options.device)
        .with_context(|| format!("evaluating run {}", run_dir.display()))?;
    let mut seconds = trained.seconds.clone();
    seconds.extend(eval_seconds);
    trained.unlock();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    println!(
        "{:<20} {:>7} {:>7} {:>11} {:>9}",
        "method", "AP", "AP50", "GMAC/frame", "ms/frame"
    );
    for method in &summary.methods {
        println!(
            "{:<20} {:>7.3} {:>7.3} {:>11.3} {:>9.1}",
            method.name, method.ap, method.ap50, method.gmac, method.ms
        );
    }
    for (phase, seconds) in &seconds {
        println!("time {phase:<20} {seconds:>8.1} s");
    }
    println!(
        "total {:.1} s; run directory {} (summary.json, metrics.jsonl, loss.svg)",
        started.elapsed().as_secs_f64(),
        run_dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_format_a_sortable_utc_timestamp() {
        let stamp = utc_timestamp();
        assert_eq!(stamp.len(), 15);
        assert!(stamp.starts_with("20"));
        assert_eq!(&stamp[8..9], "-");
    }
}
