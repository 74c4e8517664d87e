//! Training metrics on disk: every step's losses and learning rate in `STAGE/steps.csv`, one
//! JSON line per epoch in `RUN/metrics.jsonl`, and the loss curve of each stage as an SVG
//! plot (`STAGE/loss.svg`), redrawn after every epoch.
//!
//! On resume the step log is cut back to the checkpoint's step, so the files of a resumed run
//! equal those of an uninterrupted one.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use ant_supernet::checkpoint::write_atomic;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// One optimizer step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The stage name.
    pub stage: String,
    /// The 0-based epoch.
    pub epoch: usize,
    /// The 0-based global step.
    pub step: usize,
    /// The total loss.
    pub loss: f32,
    /// The detection (focal + Huber) part, summed over subnets.
    pub detection: f32,
    /// The distillation part (0 in stage 0).
    pub distill: f32,
    /// The learning rate used.
    pub lr: f64,
}

/// One epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The stage name.
    pub stage: String,
    /// The 0-based epoch.
    pub epoch: usize,
    /// Global steps after this epoch.
    pub global_step: usize,
    /// Mean total loss.
    pub loss: f32,
    /// Mean detection loss.
    pub detection: f32,
    /// Mean distillation loss.
    pub distill: f32,
    /// The learning rate of the epoch's last step.
    pub lr: f64,
    /// Training throughput.
    pub images_per_s: f64,
    /// Wall time of the epoch.
    pub seconds: f64,
}

/// The metric files of one stage of a run.
#[derive(Debug)]
pub struct MetricsLog {
    steps_path: PathBuf,
    epochs_path: PathBuf,
    plot_path: PathBuf,
}

const STEPS_HEADER: &str = "stage,epoch,step,loss,detection,distill,lr";

fn append(path: &Path, line: &str) -> Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| TrainError::io(path, source))?;
    writeln!(file, "{line}").map_err(|source| TrainError::io(path, source))
}

impl MetricsLog {
    /// Opens the logs of `stage` in `run_dir`, keeping only steps before `global_step` (and
    /// epochs that ended at or before it).
    pub fn open(run_dir: &Path, stage: &str, global_step: usize) -> Result<Self> {
        let stage_dir = run_dir.join(stage);
        std::fs::create_dir_all(&stage_dir).map_err(|source| TrainError::io(&stage_dir, source))?;
        let log = Self {
            steps_path: stage_dir.join("steps.csv"),
            epochs_path: run_dir.join("metrics.jsonl"),
            plot_path: stage_dir.join("loss.svg"),
        };
        let steps: Vec<StepRecord> = log
            .read_steps()?
            .into_iter()
            .filter(|record| record.step < global_step)
            .collect();
        let mut text = format!("{STEPS_HEADER}\n");
        for record in &steps {
            text.push_str(&step_line(record));
            text.push('\n');
        }
        write_atomic(&log.steps_path, text.as_bytes())?;
        let epochs: Vec<EpochRecord> = read_epochs(&log.epochs_path)?
            .into_iter()
            .filter(|record| record.stage != stage || record.global_step <= global_step)
            .collect();
        let mut text = String::new();
        for record in &epochs {
            text.push_str(&serde_json::to_string(record).expect("records serialise"));
            text.push('\n');
        }
        write_atomic(&log.epochs_path, text.as_bytes())?;
        Ok(log)
    }

    /// Appends a step.
    pub fn step(&mut self, record: &StepRecord) -> Result<()> {
        append(&self.steps_path, &step_line(record))
    }

    /// Appends an epoch and redraws the loss curve.
    pub fn epoch(&mut self, record: &EpochRecord) -> Result<()> {
        append(
            &self.epochs_path,
            &serde_json::to_string(record).expect("records serialise"),
        )?;
        let steps = self.read_steps()?;
        let svg = loss_curve_svg(&steps);
        Ok(write_atomic(&self.plot_path, svg.as_bytes())?)
    }

    /// The step records written so far.
    pub fn read_steps(&self) -> Result<Vec<StepRecord>> {
        read_steps(&self.steps_path)
    }
}

/// The step records of a stage's `steps.csv` (none when the file does not exist).
pub fn read_steps(path: &Path) -> Result<Vec<StepRecord>> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|source| TrainError::io(path, source))?;
    Ok(text.lines().skip(1).filter_map(parse_step_line).collect())
}

fn step_line(record: &StepRecord) -> String {
    format!(
        "{},{},{},{},{},{},{}",
        record.stage,
        record.epoch,
        record.step,
        record.loss,
        record.detection,
        record.distill,
        record.lr
    )
}

fn parse_step_line(line: &str) -> Option<StepRecord> {
    let fields: Vec<&str> = line.split(',').collect();
    if fields.len() != 7 {
        return None;
    }
    Some(StepRecord {
        stage: fields[0].to_string(),
        epoch: fields[1].parse().ok()?,
        step: fields[2].parse().ok()?,
        loss: fields[3].parse().ok()?,
        detection: fields[4].parse().ok()?,
        distill: fields[5].parse().ok()?,
        lr: fields[6].parse().ok()?,
    })
}

/// The epoch records of a `metrics.jsonl` file (none when it does not exist).
pub fn read_epochs(path: &Path) -> Result<Vec<EpochRecord>> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|source| TrainError::io(path, source))?;
    // A run killed while appending leaves its last line without the newline: that record is
    // dropped (its epoch is retrained on resume), a malformed complete line is an error.
    let complete = match text.rfind('\n') {
        Some(end) if end + 1 < text.len() => &text[..end + 1],
        Some(_) => text.as_str(),
        None => "",
    };
    complete
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).map_err(|source| TrainError::Json {
                path: path.to_path_buf(),
                source,
            })
        })
        .collect()
}

/// The loss curves of a stage as SVG, drawn by plotters: the total loss and the
/// distillation part per step, on a log scale.
pub fn loss_curve_svg(steps: &[StepRecord]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 360)).into_drawing_area();
        draw_loss_curves(&root, steps).expect("drawing into a string cannot fail");
        root.present().expect("drawing into a string cannot fail");
    }
    svg
}

fn draw_loss_curves(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    steps: &[StepRecord],
) -> std::result::Result<(), DrawingAreaErrorKind<std::io::Error>> {
    root.fill(&WHITE)?;
    let positive = |v: f32| v > 0.0 && v.is_finite();
    let values: Vec<f64> = steps
        .iter()
        .flat_map(|s| [s.loss, s.distill])
        .filter(|v| positive(*v))
        .map(f64::from)
        .collect();
    if values.is_empty() {
        return Ok(());
    }
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let first = steps[0].step as f64;
    let last = (steps[steps.len() - 1].step as f64).max(first + 1.0);
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("{}: loss per step", steps[0].stage),
            ("sans-serif", 14),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(first..last, (low * 0.9..high * 1.1).log_scale())?;
    chart
        .configure_mesh()
        .max_light_lines(0)
        .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
        .x_desc("step")
        .y_desc("loss (log scale)")
        .draw()?;
    type Pick = fn(&StepRecord) -> f32;
    let curves: [(&str, RGBColor, Pick); 2] = [
        ("total", RGBColor(0x46, 0x82, 0xb4), |s| s.loss),
        ("distillation", RGBColor(0xff, 0x8c, 0x00), |s| s.distill),
    ];
    for (label, color, pick) in curves {
        let points: Vec<(f64, f64)> = steps
            .iter()
            .filter(|s| positive(pick(s)))
            .map(|s| (s.step as f64, f64::from(pick(s))))
            .collect();
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: usize, loss: f32) -> StepRecord {
        StepRecord {
            stage: "s".into(),
            epoch: 0,
            step,
            loss,
            detection: loss,
            distill: 0.0,
            lr: 0.01,
        }
    }

    #[test]
    fn should_drop_an_epoch_line_torn_by_a_kill_but_refuse_a_malformed_one() {
        let dir = std::env::temp_dir().join(format!("ant-metrics-torn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metrics.jsonl");
        let epoch = |n: usize| EpochRecord {
            stage: "s".into(),
            epoch: n,
            global_step: 10 * (n + 1),
            loss: 1.0,
            detection: 1.0,
            distill: 0.0,
            lr: 0.01,
            images_per_s: 5.0,
            seconds: 2.0,
        };
        let line = |n: usize| serde_json::to_string(&epoch(n)).unwrap();
        // Killed halfway through appending the second record.
        let torn = format!("{}\n{}", line(0), &line(1)[..20]);
        std::fs::write(&path, &torn).unwrap();
        assert_eq!(read_epochs(&path).unwrap(), vec![epoch(0)]);
        // Complete lines only: both read.
        std::fs::write(&path, format!("{}\n{}\n", line(0), line(1))).unwrap();
        assert_eq!(read_epochs(&path).unwrap(), vec![epoch(0), epoch(1)]);
        // A malformed line that did end: an error naming the file.
        std::fs::write(&path, format!("{}\n{{oops\n", line(0))).unwrap();
        let error = read_epochs(&path).unwrap_err();
        assert!(error.to_string().contains("metrics.jsonl"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn should_round_trip_step_lines() {
        let original = record(3, 1.25);
        assert_eq!(parse_step_line(&step_line(&original)), Some(original));
    }

    #[test]
    fn should_draw_a_polyline_per_curve() {
        let svg = loss_curve_svg(&[record(0, 2.0), record(1, 1.0)]);
        assert!(svg.contains("<polyline") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("#4682B4") && svg.contains("total"));
    }
}
