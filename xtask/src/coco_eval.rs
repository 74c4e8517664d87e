//! `cargo xtask coco-eval`: COCO bbox evaluation of a results file against a ground-truth
//! file, printing pycocotools' 12 numbers (issue 3). The evaluation itself is ant-metrics'
//! `evaluate_bbox`, which mirrors pycocotools' `COCOeval(gt, gt.loadRes(dets), 'bbox')`.
//!
//! `--protocol detrac` applies the UA-DETRAC ignored regions first, as `cargo xtask eval`
//! does: the regions come from the `ignored_regions` key that `cargo xtask dataset to-coco`
//! writes, and ground truth and detections at least half inside them are dropped
//! (ant-metrics' `IgnorePolicy::DropHalfInside`). An export of the split `eval` scored, at its
//! frame step, with a `detections/<method>.json` of `eval`, gives that method's 12 numbers of
//! `report.json` exactly (issue 17).

use std::path::PathBuf;

use ant_metrics::{
    CocoDataset, DetracGroundTruth, EvalParams, IgnorePolicy, MetricsError, apply_ignore_regions,
    evaluate_bbox,
};
use anyhow::Context;
use clap::{Args, ValueEnum};

/// How the ground truth is scored.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// Plain COCO, as pycocotools: keys other than images, annotations and categories are not
    /// read.
    #[default]
    Coco,
    /// UA-DETRAC, as `cargo xtask eval`: drop ground truth and detections at least half inside
    /// the regions of the file's `ignored_regions` key (an error when the file has none).
    Detrac,
}

/// Arguments of `cargo xtask coco-eval`.
#[derive(Args, Debug)]
pub struct CocoEvalArgs {
    /// Ground truth in the COCO instances format (images, annotations, categories).
    #[arg(long)]
    pub gt: PathBuf,
    /// Detections in the COCO results format (a list of image_id, category_id, bbox, score).
    #[arg(long)]
    pub dets: PathBuf,
    /// `coco`, or `detrac` for the UA-DETRAC ignored regions of `cargo xtask dataset to-coco`.
    #[arg(long, value_enum, default_value_t = Protocol::Coco)]
    pub protocol: Protocol,
    /// Also print `{"stats":[...12 numbers...]}` as the last line of standard output.
    #[arg(long)]
    pub json: bool,
}

/// Reads the ground truth, with its regions for `--protocol detrac`.
fn read_ground_truth(args: &CocoEvalArgs) -> anyhow::Result<DetracGroundTruth> {
    let reading = || format!("reading ground truth {}", args.gt.display());
    match args.protocol {
        Protocol::Coco => Ok(DetracGroundTruth {
            dataset: CocoDataset::from_json_file(&args.gt).with_context(reading)?,
            regions: Default::default(),
        }),
        Protocol::Detrac => match DetracGroundTruth::from_json_file(&args.gt) {
            Err(error @ MetricsError::MissingIgnoredRegions { .. }) => {
                // Say why the key may be missing when the file holds crowd boxes instead.
                let crowd = CocoDataset::from_json_file(&args.gt)
                    .map(|dataset| dataset.annotations.iter().filter(|a| a.iscrowd).count())
                    .unwrap_or(0);
                let hint = if crowd > 0 {
                    format!(
                        "; it has {crowd} crowd annotations, as `dataset to-coco \
                         --ignored-as-crowd` writes the regions: score it with --protocol coco"
                    )
                } else {
                    "; export the ground truth with `cargo xtask dataset to-coco`, or score it \
                     with --protocol coco"
                        .to_owned()
                };
                Err(anyhow::Error::new(error).context(format!("{}{hint}", reading())))
            }
            other => other.with_context(reading),
        },
    }
}

/// Runs the command.
pub fn run(args: CocoEvalArgs) -> anyhow::Result<()> {
    let ground_truth = read_ground_truth(&args)?;
    let detections = ant_metrics::load_detections(&args.dets)
        .with_context(|| format!("reading detections {}", args.dets.display()))?;
    let params = EvalParams::default();
    let evaluating = || {
        format!(
            "evaluating {} against {}",
            args.dets.display(),
            args.gt.display()
        )
    };
    let dataset = &ground_truth.dataset;
    println!(
        "{} images, {} categories, {} ground-truth boxes, {} detections",
        dataset.images.len(),
        dataset.categories.len(),
        dataset.annotations.len(),
        detections.len()
    );
    let result = match args.protocol {
        Protocol::Coco => evaluate_bbox(dataset, &detections, &params).with_context(evaluating)?,
        Protocol::Detrac => {
            let (kept_truth, kept_detections) = apply_ignore_regions(
                dataset,
                &detections,
                &ground_truth.regions,
                IgnorePolicy::DropHalfInside,
            )
            .with_context(evaluating)?;
            println!(
                "DETRAC protocol: {} ignored regions on {} images; dropped, at least half \
                 inside them: {} ground-truth boxes, {} detections",
                ground_truth.regions.len(),
                ground_truth.regions.per_image.len(),
                dataset.annotations.len() - kept_truth.annotations.len(),
                detections.len() - kept_detections.len()
            );
            evaluate_bbox(&kept_truth, &kept_detections, &params).with_context(evaluating)?
        }
    };
    for line in result.summary_lines() {
        println!("{line}");
    }
    println!(
        "per-class AP @[ IoU=0.50:0.95 | area=all | maxDets={} ]:",
        params.max_det()
    );
    for category in &dataset.categories {
        let ap = result.per_class_ap.get(&category.id).copied().flatten();
        let shown = ap.map_or_else(
            || "-1.000 (no ground truth)".to_owned(),
            |v| format!("{v:0.3}"),
        );
        println!("  {:>4} {:<20} {shown}", category.id, category.name);
    }
    if args.json {
        println!("{}", serde_json::json!({ "stats": result.stats }));
    }
    Ok(())
}
