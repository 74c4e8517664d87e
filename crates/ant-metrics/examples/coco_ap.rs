//! COCO AP of a tiny hand-made detection set, then the same set under the UA-DETRAC
//! ignored-region rule:
//!
//! `cargo run --release -p ant-metrics --example coco_ap`
//!
//! Two 960x540 frames of a traffic scene with cars and buses. The detector finds most vehicles
//! (one tightly, one loosely: it counts at IoU 0.5 but not at 0.75), misses a small car, emits a
//! duplicate, and fires on a parked car that the annotators left out and covered with an
//! ignored region. Plain COCO evaluation counts that detection as a false positive; the DETRAC
//! protocol drops it, since it lies at least half inside the region.

use ant_metrics::{
    CocoDataset, Detection, EvalParams, EvalResult, IgnorePolicy, IgnoreRegions, MetricsError,
    STAT_NAMES, evaluate_bbox, evaluate_detrac,
};

const CAR: u64 = 1;
const BUS: u64 = 2;

/// Prints AP / AP50 / AP75 and the per-class AP of one evaluation.
fn report(title: &str, ground_truth: &CocoDataset, result: &EvalResult) {
    println!("{title}");
    for (index, name) in STAT_NAMES.iter().enumerate().take(3) {
        println!("  {name:<5} {:.4}", result.stats[index]);
    }
    for (category_id, ap) in &result.per_class_ap {
        let name = ground_truth
            .categories
            .iter()
            .find(|category| category.id == *category_id)
            .map_or("?", |category| category.name.as_str());
        let ap50 = result.per_class_ap50[category_id];
        match (ap, ap50) {
            (Some(ap), Some(ap50)) => println!("  {name:<5} AP {ap:.4}  AP50 {ap50:.4}"),
            _ => println!("  {name:<5} no ground truth"),
        }
    }
}

fn main() -> Result<(), MetricsError> {
    let mut ground_truth = CocoDataset::new();
    ground_truth.add_category(CAR, "car");
    ground_truth.add_category(BUS, "bus");
    for image_id in [1, 2] {
        ground_truth.add_image(image_id, 960, 540);
    }
    // Boxes are COCO `[x, y, width, height]` in pixels.
    ground_truth.add_annotation(1, CAR, [100.0, 300.0, 120.0, 80.0], false);
    ground_truth.add_annotation(1, CAR, [400.0, 320.0, 90.0, 60.0], false);
    ground_truth.add_annotation(1, BUS, [600.0, 200.0, 200.0, 150.0], false);
    ground_truth.add_annotation(2, CAR, [110.0, 305.0, 120.0, 80.0], false);
    ground_truth.add_annotation(2, CAR, [700.0, 100.0, 40.0, 30.0], false);
    ground_truth.add_annotation(2, BUS, [620.0, 210.0, 200.0, 150.0], false);

    let detections = [
        // Frame 1: a tight car, a loose car (IoU 0.72), the bus, and the parked car.
        Detection::new(1, CAR, [101.0, 301.0, 119.0, 79.0], 0.95),
        Detection::new(1, CAR, [390.0, 310.0, 100.0, 75.0], 0.80),
        Detection::new(1, BUS, [602.0, 203.0, 196.0, 148.0], 0.90),
        Detection::new(1, CAR, [800.0, 50.0, 60.0, 40.0], 0.85),
        // Frame 2: the car (the small one at x = 700 is missed), a duplicate of it, the bus
        // and the parked car again.
        Detection::new(2, CAR, [112.0, 306.0, 118.0, 78.0], 0.93),
        Detection::new(2, CAR, [130.0, 320.0, 110.0, 70.0], 0.40),
        Detection::new(2, BUS, [618.0, 212.0, 204.0, 146.0], 0.85),
        Detection::new(2, CAR, [801.0, 51.0, 60.0, 40.0], 0.94),
    ];

    let params = EvalParams::default();
    let coco = evaluate_bbox(&ground_truth, &detections, &params)?;
    println!("pycocotools' summary of the plain COCO evaluation:");
    for line in coco.summary_lines() {
        println!("  {line}");
    }
    println!();
    report("plain COCO", &ground_truth, &coco);

    // The sequence's ignored region (one set for every frame, as in a DETRAC XML file).
    let mut regions = IgnoreRegions::new();
    for image_id in [1, 2] {
        regions.push(image_id, [780.0, 30.0, 150.0, 80.0]);
    }
    let detrac = evaluate_detrac(
        &ground_truth,
        &detections,
        &regions,
        IgnorePolicy::DropHalfInside,
        &params,
    )?;
    report(
        "DETRAC rule (boxes at least half inside an ignored region dropped)",
        &ground_truth,
        &detrac,
    );
    Ok(())
}
