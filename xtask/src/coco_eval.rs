//! `cargo xtask coco-eval`: COCO bbox evaluation of a results file against a ground-truth
//! file, printing pycocotools' 12 numbers (issue 3). The evaluation itself is ant-metrics'
//! `evaluate_bbox`, which mirrors pycocotools' `COCOeval(gt, gt.loadRes(dets), 'bbox')`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// Arguments of `cargo xtask coco-eval`.
#[derive(Args, Debug)]
pub struct CocoEvalArgs {
    /// Ground truth in the COCO instances format (images, annotations, categories).
    #[arg(long)]
    pub gt: PathBuf,
    /// Detections in the COCO results format (a list of image_id, category_id, bbox, score).
    #[arg(long)]
    pub dets: PathBuf,
    /// Also print `{"stats":[...12 numbers...]}` as the last line of standard output.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run(args: CocoEvalArgs) -> anyhow::Result<()> {
    let ground_truth = ant_metrics::CocoDataset::from_json_file(&args.gt)
        .with_context(|| format!("reading ground truth {}", args.gt.display()))?;
    let detections = ant_metrics::load_detections(&args.dets)
        .with_context(|| format!("reading detections {}", args.dets.display()))?;
    let params = ant_metrics::EvalParams::default();
    let result =
        ant_metrics::evaluate_bbox(&ground_truth, &detections, &params).with_context(|| {
            format!(
                "evaluating {} against {}",
                args.dets.display(),
                args.gt.display()
            )
        })?;
    println!(
        "{} images, {} categories, {} ground-truth boxes, {} detections",
        ground_truth.images.len(),
        ground_truth.categories.len(),
        ground_truth.annotations.len(),
        detections.len()
    );
    for line in result.summary_lines() {
        println!("{line}");
    }
    println!(
        "per-class AP @[ IoU=0.50:0.95 | area=all | maxDets={} ]:",
        params.max_det()
    );
    for category in &ground_truth.categories {
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
