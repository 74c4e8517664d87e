//! `cargo xtask infer`: runs the streaming ANT detector (`ant_temporal::AntDetector`) over
//! the JPEG/PNG frames of a directory, in name order, or over a video decoded by the system's
//! ffmpeg (`ant_detrac::frames`), and writes one JSON object per frame (`frame`, `index`,
//! `size`, `key`, `arch`, `gmac`, `ms`, `decode_ms`, `detections` with `bbox` `[x, y, w, h]` in
//! source pixels, `score`, `class`), optionally drawing each frame with its boxes (those scoring
//! at least `--draw-min-score`), key flag and ratios.
//!
//! Frames of any size are letterboxed to the model's input one by one and their boxes mapped
//! back to their own pixels; when the size changes within a stream (a camera switching
//! resolution), the frame is made a key frame: the key frame's features describe another
//! geometry.
//!
//! Modes: `--threshold T` (adaptive ANT), `--interval N` (fixed-interval ANT, the default with
//! N = 3, the paper's training schedule), `--non-temporal` (gates on each frame's own
//! features), `--static R,R,R,R,R,R` (a static subnet; with `--threshold`/`--interval`,
//! fixed ratios on the non-key frames instead of the gates), `--skipconv T` (the full network
//! with Skip-Convolutions, `--skipconv-kernel sparse|dense`).
//!
//! A frame that does not decode (a corrupt or truncated file; a video frame ffmpeg decodes
//! with errors or loses) stops the run with its file or index named, or with
//! `--on-bad-frame skip` is reported, written as a `skipped` line and counted.

use std::fs::File;
use std::io::IsTerminal;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use ant_detrac::classes::VehicleClass;
use ant_detrac::draw::{class_color, draw_box, draw_label};
use ant_detrac::frames::{FrameSource, SourceItem, VideoOptions};
use ant_supernet::skipconv::SkipKernel;
use ant_supernet::{EfficientDet, EfficientDetConfig, SubnetArch};
use ant_temporal::{AntDetector, AntTemporal, AntTemporalConfig, FrameResult, Mode, temporal_path};
use anyhow::Context;
use clap::Args;
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::device::DeviceChoice;

/// Arguments of `cargo xtask infer`.
#[derive(Args, Debug)]
pub struct InferArgs {
    /// Directory of JPEG or PNG frames, processed in name order as one stream.
    #[arg(long, required_unless_present = "video", conflicts_with = "video")]
    frames: Option<PathBuf>,
    /// Video file (any format the system's ffmpeg reads, or a stream URL), decoded by ffmpeg
    /// frame by frame at each frame's own size.
    #[arg(long)]
    video: Option<PathBuf>,
    /// The ffmpeg program that decodes `--video` (default: `ffmpeg` on `PATH`).
    #[arg(long, default_value = "ffmpeg", requires = "video")]
    ffmpeg: PathBuf,
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
    /// D0 with Skip-Convolutions (the CPU engine): every convolution recomputes only the
    /// positions whose input moved by more than T (mean absolute change per channel) since
    /// it last computed them; the first frame is the key frame.
    #[arg(long, conflicts_with_all = ["threshold", "interval", "static_arch", "non_temporal"])]
    skipconv: Option<f32>,
    /// The Skip-Conv kernel: `sparse` computes only the recomputed positions, `dense` runs
    /// every convolution whole (same outputs).
    #[arg(long, value_enum, default_value_t = SkipConvKernel::Sparse, requires = "skipconv")]
    skipconv_kernel: SkipConvKernel,
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

/// The kernel of `--skipconv`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipConvKernel {
    /// Only the recomputed positions.
    Sparse,
    /// Every convolution whole.
    Dense,
}

fn mode(args: &InferArgs) -> Mode {
    if let Some(threshold) = args.skipconv {
        let kernel = match args.skipconv_kernel {
            SkipConvKernel::Sparse => SkipKernel::Sparse,
            SkipConvKernel::Dense => SkipKernel::Dense,
        };
        return Mode::skip_conv(threshold, kernel);
    }
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

    let (mut source, input) = match (&args.frames, &args.video) {
        (Some(dir), _) => (FrameSource::directory(dir)?, dir),
        (None, Some(video)) => {
            let options = VideoOptions {
                program: args.ffmpeg.clone(),
            };
            (FrameSource::video_with(video, &options)?, video)
        }
        (None, None) => anyhow::bail!("give --frames DIR or --video FILE"),
    };
    let total = match (source.remaining(), args.limit) {
        (Some(remaining), Some(limit)) => Some(remaining.min(limit)),
        (remaining, limit) => remaining.or(limit),
    };
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
        "infer: {} of {} at {image_size} px, mode {}",
        total.map_or("the frames".to_string(), |n| format!("{n} frames")),
        input.display(),
        mode.name()
    );

    let mut summary = Summary::default();
    let mut size = None;
    let limit = args.limit.unwrap_or(usize::MAX);
    let bar = FrameProgress::new(total);
    for item in source.by_ref().take(limit) {
        let frame = match item? {
            SourceItem::Frame(frame) => frame,
            SourceItem::Bad(bad) if args.on_bad_frame == OnBadFrame::Skip => {
                let reason = format!("{:#}", anyhow::Error::new(bad.error));
                bar.println(&format!(
                    "infer: skipping frame {} ({}): {reason}",
                    bad.index, bad.name
                ));
                let line = json!({"frame": bad.name, "index": bad.index, "skipped": true, "error": reason});
                writeln!(out, "{line}")
                    .with_context(|| format!("writing {}", args.out.display()))?;
                summary.skipped.push(bad.name);
                continue;
            }
            SourceItem::Bad(bad) => {
                bar.finish();
                return Err(anyhow::Error::new(bad.error).context(format!(
                    "frame {} of {} does not decode (pass --on-bad-frame skip to go on \
                     without it)",
                    bad.index,
                    input.display()
                )));
            }
        };
        let image = &frame.image;
        let frame_size = image.dimensions();
        if size.is_some_and(|previous| previous != frame_size) {
            // The detector starts anew (the key frame's features describe another geometry).
            summary.size_changes += 1;
        }
        size = Some(frame_size);
        let result = detector
            .process_image(image)
            .with_context(|| format!("processing frame {} ({})", frame.index, frame.name))?;
        let detections: Vec<_> = result
            .detections
            .items
            .iter()
            .map(|d| {
                let xywh = d.bbox.to_xywh();
                json!({"bbox": [xywh.x, xywh.y, xywh.w, xywh.h], "score": d.score, "class": d.class})
            })
            .collect();
        let line = json!({
            "frame": frame.name,
            "index": frame.index,
            "size": [frame_size.0, frame_size.1],
            "key": result.key,
            "arch": result.arch.ratios(),
            "gmac": result.gmac,
            "ms": result.latency_ms,
            "decode_ms": frame.decode_ms,
            "fusion_gate_ms": result.fusion_gate_ms,
            "deviation": result.deviation,
            "detections": detections,
        });
        writeln!(out, "{line}").with_context(|| format!("writing {}", args.out.display()))?;
        if let Some(dir) = &args.draw {
            let mut canvas = image.clone();
            for detection in result
                .detections
                .items
                .iter()
                .filter(|d| d.score >= args.draw_min_score)
            {
                let class =
                    VehicleClass::from_index(detection.class).unwrap_or(VehicleClass::Others);
                draw_box(&mut canvas, detection.bbox, class_color(class), 2);
            }
            annotate(&mut canvas, &result);
            let target = dir.join(drawing_name(&frame.name));
            canvas
                .save(&target)
                .with_context(|| format!("writing {}", target.display()))?;
        }
        summary.add(&result, frame.decode_ms);
        bar.frame(summary.frames(), &result);
    }
    out.flush()
        .with_context(|| format!("writing {}", args.out.display()))?;
    bar.finish();
    anyhow::ensure!(
        summary.frames() + summary.skipped.len() > 0,
        "no frame of {} was processed",
        input.display()
    );
    summary.print();
    Ok(())
}

/// The file a drawn frame is written to: a frame file's own name, a video frame's index as a
/// JPEG.
fn drawing_name(name: &str) -> String {
    if Path::new(name).extension().is_some() {
        name.to_string()
    } else {
        format!("{name}.jpg")
    }
}

/// The stream's progress: a bar with the rate and ETA (a spinner for a stream of unknown
/// length) on a terminal, a plain line every 100 frames otherwise.
struct FrameProgress {
    bar: ProgressBar,
    terminal: bool,
}

impl FrameProgress {
    fn new(total: Option<usize>) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = match (terminal, total) {
            (false, _) => ProgressBar::hidden(),
            (true, Some(total)) => ProgressBar::new(total as u64).with_style(
                ProgressStyle::with_template(
                    "[{bar:30}] {pos}/{len} {per_sec} eta {eta_precise} {msg}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            ),
            (true, None) => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {pos} frames {per_sec} {msg}")
                    .expect("a valid template"),
            ),
        };
        Self { bar, terminal }
    }

    fn frame(&self, done: usize, result: &FrameResult) {
        self.bar.inc(1);
        let message = format!(
            "{} {} {:.2} GMAC {:.0} ms",
            if result.key { "key    " } else { "non-key" },
            result.arch,
            result.gmac,
            result.latency_ms,
        );
        if self.terminal {
            self.bar.set_message(message);
        } else if done.is_multiple_of(100) {
            eprintln!("infer: {done} frames; last {message}");
        }
    }

    fn println(&self, line: &str) {
        if self.terminal {
            self.bar.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    fn finish(&self) {
        self.bar.finish();
    }
}

/// The median of `values` (0 when empty).
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        0.5 * (values[middle - 1] + values[middle])
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
    if count == 0 { 0.0 } else { sum / count as f64 }
}

/// One processed frame, for the summary.
struct FrameRecord {
    key: bool,
    gmac: f64,
    ms: f64,
    fusion_gate_ms: f64,
    decode_ms: f64,
}

#[derive(Default)]
struct Summary {
    frames: Vec<FrameRecord>,
    /// Frames that did not decode, skipped with `--on-bad-frame skip`.
    skipped: Vec<String>,
    /// Frames whose size differed from the previous frame's.
    size_changes: usize,
}

impl Summary {
    fn add(&mut self, result: &FrameResult, decode_ms: f64) {
        self.frames.push(FrameRecord {
            key: result.key,
            gmac: result.gmac,
            ms: result.latency_ms,
            fusion_gate_ms: result.fusion_gate_ms,
            decode_ms,
        });
    }

    fn frames(&self) -> usize {
        self.frames.len()
    }

    fn print(&self) {
        let all = || self.frames.iter();
        let keys = || self.frames.iter().filter(|f| f.key);
        let others = || self.frames.iter().filter(|f| !f.key);
        eprintln!(
            "{} frames, {} key: mean {:.3} GMAC; detector median {:.1} ms (mean {:.1}) per \
             frame, decoding median {:.1} ms (timed apart)",
            self.frames(),
            keys().count(),
            mean(all().map(|f| f.gmac)),
            median(all().map(|f| f.ms)),
            mean(all().map(|f| f.ms)),
            median(all().map(|f| f.decode_ms)),
        );
        if keys().next().is_some() {
            eprintln!(
                "  key frames:     {:.3} GMAC, median {:.1} ms",
                mean(keys().map(|f| f.gmac)),
                median(keys().map(|f| f.ms)),
            );
        }
        if others().next().is_some() {
            eprintln!(
                "  other frames:   {:.3} GMAC, median {:.1} ms (fusion + gates {:.1} ms)",
                mean(others().map(|f| f.gmac)),
                median(others().map(|f| f.ms)),
                median(others().map(|f| f.fusion_gate_ms)),
            );
        }
        if self.size_changes > 0 {
            eprintln!(
                "  frame size changed {} time(s); each change started a key frame",
                self.size_changes
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
    draw_label(image, &label, 4, 4, 2, color);
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
