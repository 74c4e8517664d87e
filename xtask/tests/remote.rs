//! Remote replicas on the loopback address (cargo feature `remote`): `cargo xtask
//! serve-device` serves this machine's flex device in a process of its own, and `cargo xtask
//! train --replica-device ws://...` trains one data-parallel replica on it.
//!
//! - A stage with one local and one remote replica ends like one with two local replicas,
//!   within a stated tolerance: the remote replica runs Burn's generic ops (our flex training
//!   ops take flex tensors, not remote ones), which round differently.
//! - What a remote replica moves per step, counted by a proxy between trainer and server.
//! - A server killed mid-step stops the run with an error naming the device, leaves the last
//!   epoch checkpoint intact, and `--resume` on a new server ends like the uninterrupted run.
//! - A server refuses a trainer without its token.
//!
//! ```sh
//! cargo test --release -p xtask --features remote --test remote -- --nocapture
//! ```
#![cfg(feature = "remote")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ant_supernet::EfficientDet;
use ant_train::metrics::{EpochRecord, read_steps};
use burn::tensor::{Device, Tensor};

mod common;

use common::{line_count as lines, run_to_end};

const TOKEN: &str = "loopback-test-token";
/// The stage's epochs; the first `WARM` run on two local replicas before the runs compared
/// start (from a random model the first steps are chaotic: a rounding's difference grows
/// about tenfold a step, see the test).
const EPOCHS: usize = 5;
const WARM: usize = 3;
const STEPS_PER_EPOCH: usize = 8;

fn xtask() -> Command {
    let mut command = common::xtask_command();
    command.env_remove("ANT_REMOTE_TOKEN");
    command
}

/// `cargo xtask serve-device --device cpu` on a loopback port the system picks.
struct Server {
    child: Child,
    address: SocketAddr,
}

impl Server {
    fn start(token: &str) -> Self {
        let mut child = xtask()
            .args(["serve-device", "--device", "cpu", "--listen", "127.0.0.1:0"])
            .env("ANT_REMOTE_TOKEN", token)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("xtask serve-device starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .strip_prefix("listening ws://")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Self { child, address }
    }

    fn url(&self) -> String {
        format!("ws://{}", self.address)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy in front of `target` that counts the bytes each way (trainer to server,
/// server to trainer).
struct Proxy {
    address: SocketAddr,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
}

impl Proxy {
    fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let counters = (up.clone(), down.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let server = TcpStream::connect(target).unwrap();
                for (mut from, mut to, count) in [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        &counters.0,
                    ),
                    (server, client, &counters.1),
                ] {
                    let count = count.clone();
                    std::thread::spawn(move || {
                        let mut buffer = vec![0u8; 1 << 16];
                        while let Ok(read) = from.read(&mut buffer) {
                            if read == 0 || to.write_all(&buffer[..read]).is_err() {
                                break;
                            }
                            count.fetch_add(read as u64, Ordering::Relaxed);
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self { address, up, down }
    }

    fn url(&self) -> String {
        format!("ws://{}", self.address)
    }
}

/// A short stage-0-only run on a small synthetic set of its own, `local` replicas on this
/// machine plus one per URL in `remote`.
fn train(root: &Path, run_dir: &Path, local: usize, remote: &[String], resume: bool) -> Command {
    let mut command = xtask();
    command.args(common::stage0_train_args(root, run_dir));
    for set in [
        "model.image_size=256".to_string(),
        format!("data_parallel={local}"),
        "standalone.batch_size=4".to_string(),
        format!("standalone.epochs={EPOCHS}"),
        format!("standalone.max_steps_per_epoch={STEPS_PER_EPOCH}"),
        "standalone.lr_milestones=[10]".to_string(),
    ] {
        command.args(["--set", &set]);
    }
    for url in remote {
        command.args(["--replica-device", url]);
    }
    if resume {
        command.arg("--resume");
    }
    command.env("ANT_REMOTE_TOKEN", TOKEN);
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    command
}

fn losses(run_dir: &Path) -> Vec<f32> {
    read_steps(&run_dir.join("stage0-standalone/steps.csv"))
        .unwrap()
        .iter()
        .map(|step| step.loss)
        .collect()
}

fn epoch_seconds(run_dir: &Path) -> Vec<f64> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str::<EpochRecord>(line).ok())
        .map(|record| record.seconds)
        .collect()
}

/// Every float parameter of a stage-0 checkpoint, in the model's visiting order.
fn parameters(run_dir: &Path, epoch: usize) -> Vec<Vec<f32>> {
    use burn::module::{Module, ModuleVisitor, Param};
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0
                .push(param.val().into_data().try_to_vec::<f32>().unwrap());
        }
    }
    let model = EfficientDet::load(
        &run_dir.join(format!("stage0-standalone/epoch-{epoch:04}/model.bpk")),
        &Device::flex(),
    )
    .unwrap();
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}

fn max_abs_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Waits (up to 5 minutes) until `path` exists, the run still going.
fn wait_for(child: &mut Child, path: &Path) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{} never appeared",
            path.display()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before {} appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn remote_replicas_should_train_like_local_ones_survive_a_lost_server_and_resume() {
    let root = std::env::temp_dir().join(format!("ant-remote-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let steps = EPOCHS * STEPS_PER_EPOCH;

    // Warm up on two local replicas: stop the run once epoch WARM is checkpointed.
    let warm = root.join("warm");
    let mut child = train(&root, &warm, 2, &[], false).spawn().unwrap();
    wait_for(
        &mut child,
        &warm.join(format!("stage0-standalone/epoch-{WARM:04}")),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let copy = |name: &str| {
        let dir = root.join(name);
        copy_dir(&warm, &dir);
        dir
    };

    // The rest of the stage on two local replicas: the reference.
    let local = copy("local");
    run_to_end(train(&root, &local, 2, &[], true));

    // One local replica and one remote one, through a byte-counting proxy.
    let server = Server::start(TOKEN);
    let proxy = Proxy::start(server.address);
    let remote = copy("remote");
    run_to_end(train(&root, &remote, 1, &[proxy.url()], true));
    let (up, down) = (
        proxy.up.load(Ordering::Relaxed),
        proxy.down.load(Ordering::Relaxed),
    );
    let compared = (EPOCHS - WARM) * STEPS_PER_EPOCH;

    let (local_losses, remote_losses) = (losses(&local), losses(&remote));
    assert_eq!(local_losses.len(), steps);
    assert_eq!(remote_losses.len(), steps);
    let warm_steps = WARM * STEPS_PER_EPOCH;
    assert_eq!(local_losses[..warm_steps], remote_losses[..warm_steps]);
    let gaps: Vec<f32> = local_losses
        .iter()
        .zip(&remote_losses)
        .skip(warm_steps)
        .map(|(a, b)| (a - b).abs() / a.abs())
        .collect();
    let loss_gap = gaps.iter().copied().fold(0.0, f32::max);
    // Parameters: each tensor's gap between the two runs against how far the compared epochs
    // moved it, with a floor of 1e-6 for tensors they barely moved (tensors the stage does not
    // train, such as the smaller ratios' norms, must agree exactly).
    let (warm_params, local_params, remote_params) = (
        parameters(&warm, WARM),
        parameters(&local, EPOCHS),
        parameters(&remote, EPOCHS),
    );
    let params: usize = local_params.iter().map(Vec::len).sum();
    let mut worst = (0.0f32, 0.0f32);
    for ((warm, local), remote) in warm_params.iter().zip(&local_params).zip(&remote_params) {
        let gap = max_abs_difference(local, remote);
        let update = max_abs_difference(local, warm);
        assert!(
            gap <= 1e-3 * update + if update > 0.0 { 1e-6 } else { 0.0 },
            "a parameter tensor of {} values is {gap:e} apart between the runs, which moved it \
             by {update:e}",
            local.len()
        );
        if update > 1e-3 && gap / update > worst.0 / worst.1.max(f32::MIN_POSITIVE) {
            worst = (gap, update);
        }
    }
    let (local_seconds, remote_seconds) = (epoch_seconds(&local), epoch_seconds(&remote));
    let parameter_bytes = params as u64 * 4;
    println!(
        "remote replica: {params} parameters ({parameter_bytes} bytes); per step {:.0} bytes \
         to the server, {:.0} back; seconds per epoch of {STEPS_PER_EPOCH} steps: local \
         {local_seconds:?}, remote {remote_seconds:?}; relative loss gaps [{}]; largest \
         parameter gap relative to its tensor's update (updates over 1e-3) {:.1e} ({:.1e} of \
         {:.1e})",
        up as f64 / compared as f64,
        down as f64 / compared as f64,
        gaps.iter()
            .map(|gap| format!("{gap:.1e}"))
            .collect::<Vec<_>>()
            .join(", "),
        worst.0 / worst.1,
        worst.0,
        worst.1,
    );
    assert!(
        loss_gap < 1e-5,
        "losses of one local + one remote replica vs two local: {local_losses:?} vs \
         {remote_losses:?}"
    );
    // What moves per step: the parameters out and the gradients of the ones the stage trains
    // back, the batch (two 256 px images and their anchor targets) and the operations out.
    // Anything well above that would be the model moving twice.
    let per_step = |bytes: u64| bytes as f64 / compared as f64 / parameter_bytes as f64;
    assert!(
        (1.0..4.0).contains(&per_step(up)) && (0.5..1.5).contains(&per_step(down)),
        "{up} bytes up and {down} down over {compared} steps: {:.2} and {:.2} times the \
         parameters per step",
        per_step(up),
        per_step(down)
    );

    // A server killed mid-step: the run stops with an error naming the replica's device.
    let mut doomed = Server::start(TOKEN);
    let killed = copy("killed");
    let mut child = train(&root, &killed, 1, &[doomed.url()], true)
        .spawn()
        .unwrap();
    // Drain stderr as it comes: a full pipe would block the run.
    let mut pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        pipe.read_to_string(&mut text).unwrap();
        text
    });
    let steps_file = killed.join("stage0-standalone/steps.csv");
    wait_for(
        &mut child,
        &killed.join(format!("stage0-standalone/epoch-{:04}", EPOCHS - 1)),
    );
    let started = Instant::now();
    while lines(&steps_file) < 1 + steps - STEPS_PER_EPOCH / 2 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the run never reached the middle of its last epoch"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    doomed.kill();
    let waited = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if waited.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the run did not stop within 120 s of losing its remote replica");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = stderr.join().unwrap();
    println!(
        "lost server: the run stopped {:.1} s later: {stderr}",
        waited.elapsed().as_secs_f64()
    );
    assert!(!status.success(), "the run went on without its replica");
    assert!(
        stderr.contains("replica 1") && stderr.contains(&doomed.url()),
        "the error names neither the replica nor its device: {stderr}"
    );
    assert!(
        lines(&steps_file) < 1 + steps,
        "the run reached its end: the test did not kill mid-run"
    );
    // The last epoch's checkpoint is whole and loads.
    assert_eq!(parameters(&killed, EPOCHS - 1).len(), local_params.len());

    // Resumed on a new server, the run ends exactly like the uninterrupted remote one.
    let rescue = Server::start(TOKEN);
    run_to_end(train(&root, &killed, 1, &[rescue.url()], true));
    assert_eq!(losses(&killed), remote_losses, "steps.csv after the resume");
    assert!(
        parameters(&killed, EPOCHS) == remote_params,
        "final parameters after the resume"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_server_should_refuse_a_trainer_without_its_token() {
    let root = std::env::temp_dir().join(format!("ant-remote-refuse-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let server = Server::start(TOKEN);
    for token in [None, Some("not-the-token")] {
        let run_dir = root.join("run");
        let mut command = train(&root, &run_dir, 1, &[server.url()], false);
        match token {
            Some(token) => command.env("ANT_REMOTE_TOKEN", token),
            None => command.env_remove("ANT_REMOTE_TOKEN"),
        };
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "token {token:?} was let in");
        assert!(
            stderr.contains(&server.url()) && stderr.contains("rejected the credential"),
            "token {token:?}: {stderr}"
        );
        assert!(
            !run_dir.exists(),
            "a refused run must not touch its run directory"
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// What one remote replica costs per step at the paper's model: D0 at 512 px, batch 2 (one
/// image a replica), 3 steps, against two local replicas. A measurement for
/// docs/distributed.md, not run by default (about 2 minutes):
/// `cargo test --release -p xtask --features remote --test remote -- --ignored --nocapture`.
#[test]
#[ignore]
fn d0_step_cost_over_loopback() {
    let root = std::env::temp_dir().join(format!("ant-remote-d0-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let d0 = |command: &mut Command| {
        command.args([
            "--set",
            "model.preset=d0",
            "--set",
            "model.width_multiplier=1.0",
            "--set",
            "model.depth_multiplier=1.0",
            "--set",
            "model.image_size=512",
            "--set",
            "model.anchor_scale=4.0",
            "--set",
            "standalone.batch_size=2",
            "--set",
            "standalone.epochs=1",
            "--set",
            "standalone.max_steps_per_epoch=3",
        ]);
    };
    let local = root.join("local");
    let mut command = train(&root, &local, 2, &[], false);
    d0(&mut command);
    run_to_end(command);
    let server = Server::start(TOKEN);
    let proxy = Proxy::start(server.address);
    let remote = root.join("remote");
    let mut command = train(&root, &remote, 1, &[proxy.url()], false);
    d0(&mut command);
    run_to_end(command);
    let steps = losses(&remote).len();
    assert_eq!(steps, 3);
    let (up, down) = (
        proxy.up.load(Ordering::Relaxed),
        proxy.down.load(Ordering::Relaxed),
    );
    let params: usize = parameters(&remote, 1).iter().map(Vec::len).sum();
    let parameter_bytes = params as f64 * 4.0;
    let per_step = |bytes: u64| bytes as f64 / steps as f64;
    println!(
        "D0 at 512, batch 2: {params} parameters ({:.1} MB); a remote replica moves {:.1} MB \
         to its server and {:.1} MB back per step ({:.2} and {:.2} times the parameters); \
         seconds per step: two local replicas {:.2}, one local and one remote {:.2}",
        parameter_bytes / 1e6,
        per_step(up) / 1e6,
        per_step(down) / 1e6,
        per_step(up) / parameter_bytes,
        per_step(down) / parameter_bytes,
        epoch_seconds(&local)[0] / steps as f64,
        epoch_seconds(&remote)[0] / steps as f64,
    );
    assert!((1.0..4.0).contains(&(per_step(up) / parameter_bytes)));
    assert!((0.5..1.5).contains(&(per_step(down) / parameter_bytes)));
    let _ = std::fs::remove_dir_all(&root);
}
