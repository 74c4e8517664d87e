//! `cargo xtask infer`: runs the streaming ANT detector (`ant_temporal::AntDetector`) over
//! the JPEG frames of a directory, in name order, and writes one JSON object per frame
//! (`frame`, `key`, `arch`, `gmac`, `ms`, `detections` with `bbox` `[x, y, w, h]` in source
//! pixels, `score`, `class`), optionally drawing each frame with its boxes (those scoring at
//! least `--draw-min-score`), key flag and ratios.
//!
//! Modes: `--threshold T` (adaptive ANT), `--interval N` (fixed-interval ANT, the default with
//! N = 3, the paper's training schedule), `--non-temporal` (gates on each frame's own
//! features), `--static R,R,R,R,R,R` (a static subnet; with `--threshold`/`--interval`,
//! fixed ratios on the non-key frames instead of the gates).
//!
//! A frame that does not decode stops the run with its file named, or with
//! `--on-bad-frame skip` is reported, written as a `skipped` line and counted.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ant_detrac::classes::VehicleClass;
use ant_detrac::draw::{class_color, draw_box};
use ant_detrac::transform::InputTransform;
use ant_supernet::{EfficientDet, EfficientDetConfig, SubnetArch};
use ant_temporal::{AntDetector, AntTemporal, AntTemporalConfig, FrameResult, Mode, temporal_path};
use anyhow::Context;
use burn::tensor::{Tensor, TensorData};
use clap::Args;
use image::{Rgb, RgbImage};
use serde_json::json;

use crate::device::DeviceChoice;

/// Arguments of `cargo xtask infer`.
#[derive(Args, Debug)]
pub struct InferArgs {
    /// Directory of JPEG frames, processed in name order as one stream.
    #[arg(long)]
    frames: PathBuf,
    /// Native checkpoint `MODEL.bpk` (+ `MODEL.json`); the temporal modules are read from
    /// `MODEL.temporal.bpk` beside it.
    #[arg(long, conflicts_with = "random_init")]
    weights: Option<PathBuf>,
    /// Random weights (for smoke tests and timing), of `--config`.
    #[arg(long)]
    random_init: bool,
    /// Config for `--random-init`: d0, d0_plus or tiny.
    #[arg(long, default_value = "d0")]
    config: String,
    /// Number of classes for `--random-init`.
    #[arg(long, default_value_t = 4)]
    num_classes: usize,
    /// Input size in pixels (default: the config's).
    #[arg(long)]
    image_size: Option<usize>,
    /// Adaptive key frames: a frame whose normalised L1 stem deviation from the key frame's
    /// reaches T becomes key.
    #[arg(long, conflicts_with_all = ["interval", "non_temporal"])]
    threshold: Option<f32>,
    /// Fixed key-frame interval (every N-th frame is key). Default 3 when no mode is given.
    #[arg(long, conflicts_with = "non_temporal")]
    interval: Option<usize>,
    /// Static subnet (six ratios); with --threshold or --interval, fixed ratios for the
    /// non-key frames instead of the gates.
    #[arg(long = "static", conflicts_with = "non_temporal")]
    static_arch: Option<SubnetArch>,
    /// Non-temporal dynamic network: gates on each frame's own features, no key frames.
    #[arg(long)]
    non_temporal: bool,
    /// Process only the first N frames.
    #[arg(long)]
    limit: Option<usize>,
    /// Output JSON-lines file.
    #[arg(long)]
    out: PathBuf,
    /// Write each frame with boxes, key flag and ratios drawn on it into this directory.
    #[arg(long)]
    draw: Option<PathBuf>,
    /// Only boxes scoring at least this are drawn (the JSON lines keep every detection).
    #[arg(long, default_value_t = 0.3)]
    draw_min_score: f32,
    /// Device: cpu (flex), wgpu or ndarray.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
    /// A frame that does not decode (corrupt, or a JPEG cut short): `fail` stops with the
    /// file named; `skip` reports it, writes a `{"frame", "skipped": true, "error"}` line
    /// for it and goes on (the stream's key-frame state is kept), counting it in the summary.
    #[arg(long, value_enum, default_value_t = OnBadFrame::Fail)]
    on_bad_frame: OnBadFrame,
}

/// What `infer` does with a frame that does not decode.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnBadFrame {
    /// Stop with an error naming the file.
    Fail,
    /// Report it, write a `skipped` line and go on.
    Skip,
}

fn mode(args: &InferArgs) -> Mode {
    let temporal = match (args.threshold, args.interval) {
        (Some(threshold), _) => Some(Mode::adaptive(threshold)),
        (None, Some(interval)) => Some(Mode::fixed_interval(interval)),
        (None, None) => None,
    };
    match (temporal, args.static_arch, args.non_temporal) {
        (_, _, true) => Mode::non_temporal(),
        (Some(mode), Some(arch), _) => mode.with_fixed_width(arch),
        (Some(mode), None, _) => mode,
        (None, Some(arch), _) => Mode::static_subnet(arch),
        (None, None, _) => Mode::fixed_interval(3),
    }
}

fn frame_paths(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        let is_jpeg = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"));
        if is_jpeg {
            paths.push(path);
        }
    }
    paths.sort();
    anyhow::ensure!(!paths.is_empty(), "no JPEG frames in {}", dir.display());
    Ok(paths)
}

/// Runs the command.
pub fn run(args: InferArgs) -> anyhow::Result<()> {
    let device = args.device.device()?;
    let mode = mode(&args);
    let (model, temporal) = match (&args.weights, args.random_init) {
        (Some(path), _) => {
            let mut model = EfficientDet::load(path, &device)
                .with_context(|| format!("loading {}", path.display()))?;
            if let Some(size) = args.image_size {
                model.config = model.config.clone().with_image_size(size);
            }
            let temporal_file = temporal_path(path);
            let temporal = if temporal_file.is_file() {
                Some(
                    AntTemporal::load(&temporal_file, &model.config.backbone, &device)
                        .with_context(|| format!("loading {}", temporal_file.display()))?,
                )
            } else {
                anyhow::ensure!(
                    !mode.needs_temporal(),
                    "mode {} needs fusion modules and gates, but {} does not exist (train the \
                     joint stage, or use --static without --threshold/--interval)",
                    mode.name(),
                    temporal_file.display()
                );
                None
            };
            (model, temporal)
        }
        (None, true) => {
            let mut config = EfficientDetConfig::by_name(&args.config, args.num_classes)
                .with_context(|| {
                    format!(
                        "unknown config {:?}: expected d0, d0_plus or tiny",
                        args.config
                    )
                })?;
            if let Some(size) = args.image_size {
                config = config.with_image_size(size);
            }
            let model = EfficientDet::init(&config, &device);
            let temporal = AntTemporalConfig::new().init(&config.backbone, &device);
            (model, Some(temporal))
        }
        (None, false) => anyhow::bail!("give --weights MODEL.bpk or --random-init"),
    };
    let image_size = model.config.image_size;
    anyhow::ensure!(image_size >= 32, "image size {image_size} is too small");
    let mut detector = AntDetector::new(model, temporal, mode)?;
    let transform = InputTransform::new(image_size as u32, image_size as u32);

    let mut paths = frame_paths(&args.frames)?;
    if let Some(limit) = args.limit {
        paths.truncate(limit);
    }
    if let Some(dir) = &args.draw {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let file =
        File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut out = BufWriter::new(file);
    eprintln!(
        "infer: {} frames of {} at {image_size} px, mode {}",
        paths.len(),
        args.frames.display(),
        mode.name()
    );

    let mut summary = Summary::default();
    let started = Instant::now();
    for (index, path) in paths.iter().enumerate() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let image = match ant_detrac::decode_image(path) {
            Ok(image) => image,
            Err(error) if args.on_bad_frame == OnBadFrame::Skip => {
                let reason = format!("{:#}", anyhow::Error::new(error));
                eprintln!("\ninfer: skipping frame {} ({name}): {reason}", index + 1);
                let line = json!({"frame": name, "skipped": true, "error": reason});
                writeln!(out, "{line}")
                    .with_context(|| format!("writing {}", args.out.display()))?;
                summary.skipped.push(name);
                continue;
            }
            Err(error) => {
                eprintln!();
                return Err(anyhow::Error::new(error).context(format!(
                    "frame {} of {} does not decode (pass --on-bad-frame skip to go on \
                     without it)",
                    index + 1,
                    args.frames.display()
                )));
            }
        };
        let (input, letterbox) = transform.letterbox_image(&image);
        let values = transform.normalize(&input);
        let frame = Tensor::<4>::from_data(
            TensorData::new(values, [1, 3, image_size, image_size]),
            &device,
        );
        let result = detector
            .process(frame)
            .with_context(|| format!("processing {}", path.display()))?;
        let (width, height) = (image.width() as f32, image.height() as f32);
        let boxes: Vec<_> = result
            .detections
            .items
            .iter()
            .map(|d| (letterbox.inverse(d.bbox).clip(width, height), d))
            .collect();
        let detections: Vec<_> = boxes
            .iter()
            .map(|(bbox, d)| {
                let xywh = bbox.to_xywh();
                json!({"bbox": [xywh.x, xywh.y, xywh.w, xywh.h], "score": d.score, "class": d.class})
            })
            .collect();
        let line = json!({
            "frame": name,
            "key": result.key,
            "arch": result.arch.ratios(),
            "gmac": result.gmac,
            "ms": result.latency_ms,
            "fusion_gate_ms": result.fusion_gate_ms,
            "deviation": result.deviation,
            "detections": detections,
        });
        writeln!(out, "{line}").with_context(|| format!("writing {}", args.out.display()))?;
        if let Some(dir) = &args.draw {
            let mut canvas = image.clone();
            for (bbox, detection) in boxes.iter().filter(|(_, d)| d.score >= args.draw_min_score) {
                let class =
                    VehicleClass::from_index(detection.class).unwrap_or(VehicleClass::Others);
                draw_box(&mut canvas, *bbox, class_color(class), 2);
            }
            annotate(&mut canvas, &result);
            let target = dir.join(&name);
            canvas
                .save(&target)
                .with_context(|| format!("writing {}", target.display()))?;
        }
        summary.add(&result);
        progress(index + 1, paths.len(), started, &result);
    }
    out.flush()
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!();
    summary.print();
    Ok(())
}

fn progress(done: usize, total: usize, started: Instant, result: &FrameResult) {
    const WIDTH: usize = 30;
    let filled = done * WIDTH / total.max(1);
    let elapsed = started.elapsed().as_secs_f64();
    let eta = elapsed / done as f64 * (total - done) as f64;
    eprint!(
        "\r[{}{}] {done}/{total} {} {} {:.2} GMAC {:.0} ms  eta {eta:.0}s   ",
        "=".repeat(filled),
        " ".repeat(WIDTH - filled),
        if result.key { "key    " } else { "non-key" },
        result.arch,
        result.gmac,
        result.latency_ms,
    );
}

#[derive(Default)]
struct Summary {
    key: Vec<(f64, f64)>,
    non_key: Vec<(f64, f64, f64)>,
    /// Frames that did not decode, skipped with `--on-bad-frame skip`.
    skipped: Vec<String>,
}

impl Summary {
    fn add(&mut self, result: &FrameResult) {
        if result.key {
            self.key.push((result.gmac, result.latency_ms));
        } else {
            self.non_key
                .push((result.gmac, result.latency_ms, result.fusion_gate_ms));
        }
    }

    fn print(&self) {
        let frames = self.key.len() + self.non_key.len();
        let mean = |values: &mut dyn Iterator<Item = f64>| {
            let (sum, count) = values.fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
            if count == 0 { 0.0 } else { sum / count as f64 }
        };
        eprintln!(
            "{frames} frames, {} key: mean {:.3} GMAC, {:.1} ms per frame",
            self.key.len(),
            mean(
                &mut self
                    .key
                    .iter()
                    .map(|k| k.0)
                    .chain(self.non_key.iter().map(|n| n.0))
            ),
            mean(
                &mut self
                    .key
                    .iter()
                    .map(|k| k.1)
                    .chain(self.non_key.iter().map(|n| n.1))
            ),
        );
        if !self.key.is_empty() {
            eprintln!(
                "  key frames:     {:.3} GMAC, {:.1} ms",
                mean(&mut self.key.iter().map(|k| k.0)),
                mean(&mut self.key.iter().map(|k| k.1)),
            );
        }
        if !self.non_key.is_empty() {
            eprintln!(
                "  other frames:   {:.3} GMAC, {:.1} ms (fusion + gates {:.1} ms)",
                mean(&mut self.non_key.iter().map(|n| n.0)),
                mean(&mut self.non_key.iter().map(|n| n.1)),
                mean(&mut self.non_key.iter().map(|n| n.2)),
            );
        }
        if !self.skipped.is_empty() {
            eprintln!(
                "  skipped:        {} bad frame(s): {}",
                self.skipped.len(),
                self.skipped.join(", ")
            );
        }
    }
}

/// 3x5 bitmaps (rows top to bottom, 3 bits each) of the characters the overlay uses.
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' | 'O' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' | 'S' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        'K' => [5, 5, 6, 5, 5],
        'E' => [7, 4, 7, 4, 7],
        'Y' => [5, 5, 2, 2, 2],
        'N' => [5, 7, 7, 5, 5],
        'G' => [7, 4, 5, 5, 7],
        'M' => [5, 7, 7, 5, 5],
        'A' => [2, 5, 7, 5, 5],
        'C' => [7, 4, 4, 4, 7],
        '-' => [0, 0, 7, 0, 0],
        ',' => [0, 0, 0, 2, 4],
        '.' => [0, 0, 0, 0, 2],
        _ => [0; 5],
    }
}

/// Draws `text` at (x, y) with `scale`-pixel dots on a dark box.
fn draw_text(image: &mut RgbImage, text: &str, x: u32, y: u32, scale: u32, color: [u8; 3]) {
    let advance = 4 * scale;
    let width = advance * text.chars().count() as u32 + scale;
    for dy in 0..7 * scale {
        for dx in 0..width {
            if x + dx < image.width() && y + dy < image.height() {
                image.put_pixel(x + dx, y + dy, Rgb([0, 0, 0]));
            }
        }
    }
    for (index, c) in text.chars().enumerate() {
        let left = x + scale + index as u32 * advance;
        for (row, bits) in glyph(c).iter().enumerate() {
            for column in 0..3 {
                if bits >> (2 - column) & 1 == 1 {
                    for py in 0..scale {
                        for px in 0..scale {
                            let (ix, iy) = (
                                left + column * scale + px,
                                y + scale + row as u32 * scale + py,
                            );
                            if ix < image.width() && iy < image.height() {
                                image.put_pixel(ix, iy, Rgb(color));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The key flag, ratios and GMAC in the top-left corner; key frames get a red border.
fn annotate(image: &mut RgbImage, result: &FrameResult) {
    let ratios = result.arch.ratios().map(|r| r.to_string()).join(",");
    let label = format!(
        "{} {ratios} {:.2} GMAC",
        if result.key { "KEY" } else { "NON-KEY" },
        result.gmac
    );
    let color = if result.key {
        [255, 60, 60]
    } else {
        [255, 255, 255]
    };
    draw_text(image, &label, 4, 4, 3, color);
    if result.key {
        let (w, h) = (image.width() as f32, image.height() as f32);
        draw_box(
            image,
            ant_geom::BoxXyxy::new(0.0, 0.0, w, h),
            [255, 60, 60],
            4,
        );
    }
}
