//! A long stream through `AntDetector`: the real clip looped frame after frame as one stream
//! (10,000 frames by default), each frame decoded from its JPEG (`ant_detrac::frames`),
//! letterboxed, run and its boxes mapped back, as `cargo xtask infer` does. It checks that a
//! stream neither grows in memory nor slows down: peak and current RSS after frame 1,000 and
//! after the last frame, and the median detector latency of the first and the last 1,000
//! frames (decoding timed apart), with the process's CPU time per frame over the same frames
//! beside it. Wall and CPU time drift with the machine over minutes (other tenants, clocks:
//! decoding, which keeps no state, drifts alike), so it then runs one more window through the
//! long-running stream and a fresh stream of the same model, frame by frame in alternating
//! order: the comparison that isolates what a long stream itself costs.
//!
//! Usage: `cargo run --release -p ant-benches --example long_stream -- [--frames 10000]
//! [--clip ../shared/data/detrac-clip/clip252] [--preset tiny] [--size 256] [--width 0.5]
//! [--depth 0.5]
//! [--interval 3 | --threshold T] [--weights MODEL.bpk]`
//!
//! Without `--weights` the model is the main job's (`configs/default.json`: the tiny preset with
//! B0 at width and depth 0.5), randomly initialised (the timing and memory behaviour do
//! not depend on the weights; the key-frame decisions of `--threshold` do). Threads:
//! `RAYON_NUM_THREADS` (default 1). Numbers: `docs/performance.md`, "Long streams".

use std::path::PathBuf;
use std::time::Instant;

use ant_benches::{Flags, in_pool, median};
use ant_detrac::InputTransform;
use ant_detrac::frames::{Frame, FrameSource, SourceItem};
use ant_supernet::EfficientDet;
use ant_temporal::{AntDetector, AntTemporal, AntTemporalConfig, Mode, temporal_path};
use burn::tensor::{Device, Tensor, TensorData};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `VmHWM` (peak) and `VmRSS` (current) of this process, in MiB.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU time of all this process's threads so far, in milliseconds (`/proc/self/task/*/schedstat`):
/// unlike wall time, it does not count the time other processes hold the cores.
fn cpu_ms() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        / 1e6
}

/// The clip's frames, from the first again after the last: one endless stream.
struct LoopedClip {
    dir: PathBuf,
    source: FrameSource,
}

impl LoopedClip {
    fn new(dir: PathBuf) -> Self {
        let source = FrameSource::directory(&dir).expect("the clip");
        Self { dir, source }
    }

    fn next_frame(&mut self) -> Frame {
        loop {
            match self.source.next() {
                Some(Ok(SourceItem::Frame(frame))) => return frame,
                Some(Ok(SourceItem::Bad(bad))) => panic!("{}", bad.error),
                Some(Err(error)) => panic!("{error}"),
                // The clip's end: loop it, the stream (and the key frame) going on.
                None => self.source = FrameSource::directory(&self.dir).expect("the clip"),
            }
        }
    }
}

/// One frame through `detector` as `cargo xtask infer` runs it.
struct Processed {
    key: bool,
    latency_ms: f64,
    boxes: usize,
}

fn process(
    detector: &mut AntDetector,
    transform: &InputTransform,
    frame: &Frame,
    device: &Device,
) -> Processed {
    let size = transform.input_width as usize;
    let (input, letterbox) = transform.letterbox_image(&frame.image);
    let values = transform.normalize(&input);
    let tensor = Tensor::<4>::from_data(TensorData::new(values, [1, 3, size, size]), device);
    let result = detector.process(tensor).expect("a frame");
    let (width, height) = (frame.image.width() as f32, frame.image.height() as f32);
    let boxes = result
        .detections
        .items
        .iter()
        .map(|d| letterbox.inverse(d.bbox).clip(width, height))
        .filter(|b| b.area() > 0.0)
        .count();
    Processed {
        key: result.key,
        latency_ms: result.latency_ms,
        boxes,
    }
}

fn main() {
    in_pool(run);
}

fn run() {
    let flags = Flags::from_env();
    let flag = |name: &str| flags.get(name);
    let total: usize = flag("--frames").map_or(10_000, |s| s.parse().expect("--frames"));
    let window = (total / 10).clamp(1, 1_000);
    let clip_dir = PathBuf::from(
        flag("--clip").unwrap_or_else(|| "../shared/data/detrac-clip/clip252".into()),
    );
    // The main job's model (`configs/default.json`): tiny, B0 at width and depth 0.5.
    let config = flags.model_config("tiny", 256, 0.5, 0.5);
    let preset = flag("--preset").unwrap_or_else(|| "tiny".into());
    let (size, width, depth) = (
        config.image_size,
        config.backbone.width_multiplier,
        config.backbone.depth_multiplier,
    );
    let mode = match (flag("--threshold"), flag("--interval")) {
        (Some(t), _) => Mode::adaptive(t.parse().expect("--threshold")),
        (None, Some(n)) => Mode::fixed_interval(n.parse().expect("--interval")),
        (None, None) => Mode::fixed_interval(3),
    };
    let threads = rayon::current_num_threads();
    let device = Device::flex();
    let (model, temporal) = match flag("--weights") {
        Some(path) => {
            let path = PathBuf::from(path);
            let mut model = EfficientDet::load(&path, &device).expect("loading --weights");
            model.config = model.config.clone().with_image_size(size);
            let temporal =
                AntTemporal::load(&temporal_path(&path), &model.config.backbone, &device)
                    .expect("loading the temporal modules beside --weights");
            (model, temporal)
        }
        None => {
            let model = EfficientDet::init(&config, &device);
            let temporal = AntTemporalConfig::new().init(&config.backbone, &device);
            (model, temporal)
        }
    };
    let mut detector =
        AntDetector::new(model.clone(), Some(temporal.clone()), mode).expect("a valid mode");
    let transform = InputTransform::new(size as u32, size as u32);

    let (mut latency, mut decode) = (Vec::with_capacity(total), Vec::with_capacity(total));
    let (mut early, mut keys, mut boxes) = (None, 0usize, 0usize);
    let started = Instant::now();
    let mut cpu = [cpu_ms(), 0.0, 0.0, 0.0];
    let (mut rises, mut last_peak) = (Vec::new(), 0.0);
    let mut clip = LoopedClip::new(clip_dir.clone());
    while latency.len() < total {
        let frame = clip.next_frame();
        let result = process(&mut detector, &transform, &frame, &device);
        boxes += result.boxes;
        keys += usize::from(result.key);
        latency.push(result.latency_ms);
        decode.push(frame.decode_ms);
        if latency.len() > window {
            // When, past the first window, the peak rises (a leak rises steadily, a transient
            // allocation once).
            let peak = rss_mib().0;
            if peak > last_peak {
                rises.push((latency.len(), peak - last_peak));
                last_peak = peak;
            }
        }
        if latency.len() == window {
            let memory = rss_mib();
            early = Some(memory);
            last_peak = memory.0;
            cpu[1] = cpu_ms();
        }
        if latency.len() == total - window {
            cpu[2] = cpu_ms();
        }
    }
    let late = rss_mib();
    cpu[3] = cpu_ms();

    // Wall time drifts with the machine (other tenants, clocks) over minutes, so the first and
    // last windows can differ for reasons outside the stream. The controlled comparison: one
    // more window, each frame through the long-running stream and through a fresh stream of
    // the same model, in alternating order, so both see the same machine.
    let mut fresh = AntDetector::new(model, Some(temporal), mode).expect("a valid mode");
    let (mut long_ms, mut fresh_ms) = (Vec::new(), Vec::new());
    while long_ms.len() < window {
        let frame = clip.next_frame();
        if long_ms.len() % 2 == 0 {
            long_ms.push(process(&mut detector, &transform, &frame, &device).latency_ms);
            fresh_ms.push(process(&mut fresh, &transform, &frame, &device).latency_ms);
        } else {
            fresh_ms.push(process(&mut fresh, &transform, &frame, &device).latency_ms);
            long_ms.push(process(&mut detector, &transform, &frame, &device).latency_ms);
        }
    }
    let (long_median, fresh_median) = (median(&long_ms), median(&fresh_ms));
    let (cpu_first, cpu_last) = (
        (cpu[1] - cpu[0]) / window as f64,
        (cpu[3] - cpu[2]) / window as f64,
    );
    let early = early.expect("the first window");
    let first = median(&latency[..window]);
    let last = median(&latency[total - window..]);
    println!(
        "{total} frames of {} ({preset}, width {width} depth {depth}, at {size} px, mode {}, \
         {threads} thread(s)) in {:.0} s: {keys} key frames, {boxes} boxes",
        clip_dir.display(),
        mode.name(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "peak RSS   after frame {window}: {:8.1} MiB   after frame {total}: {:8.1} MiB   ratio {:.4}",
        early.0,
        late.0,
        late.0 / early.0
    );
    let shown: Vec<String> = rises
        .iter()
        .take(12)
        .map(|(frame, mib)| format!("+{mib:.2} MiB at frame {frame}"))
        .collect();
    println!(
        "peak rises after frame {window}: {} ({})",
        rises.len(),
        if shown.is_empty() {
            "none".to_string()
        } else {
            shown.join(", ")
        }
    );
    println!(
        "RSS        after frame {window}: {:8.1} MiB   after frame {total}: {:8.1} MiB   ratio {:.4}",
        early.1,
        late.1,
        late.1 / early.1
    );
    println!(
        "detector   median ms, frames 1-{window}: {first:.3}   frames {}-{total}: {last:.3}   ratio {:.4}",
        total - window + 1,
        last / first
    );
    println!(
        "CPU time   mean ms per frame, frames 1-{window}: {cpu_first:.3}   frames {}-{total}: {cpu_last:.3}   ratio {:.4}",
        total - window + 1,
        cpu_last / cpu_first
    );
    println!(
        "decoding   median ms, frames 1-{window}: {:.3}   frames {}-{total}: {:.3}",
        median(&decode[..window]),
        total - window + 1,
        median(&decode[total - window..])
    );
    println!(
        "then {window} frames through this stream and a fresh one, interleaved: median ms \
         {long_median:.3} (after {total} frames) vs {fresh_median:.3} (fresh)   ratio {:.4}",
        long_median / fresh_median
    );
    let within = |ratio: f64| (ratio - 1.0).abs() <= 0.05;
    println!(
        "within 5%: peak RSS {}, detector latency {}, CPU time per frame {}, against a fresh \
         stream {}",
        within(late.0 / early.0),
        within(last / first),
        within(cpu_last / cpu_first),
        within(long_median / fresh_median)
    );
}
