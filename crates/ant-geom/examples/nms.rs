//! The detector's box post-processing on one UA-DETRAC frame: per-class NMS in network-input
//! pixels, then the letterbox inverse back to the 960x540 frame.
//!
//! `cargo run --release -p ant-geom --example nms`
//!
//! The vehicles are the seven ground-truth boxes of frame 1 of training sequence MVI_20011
//! (`../shared/data/detrac-sample/MVI_20011_v3.xml`). Each is mapped into the 512x512 input and
//! surrounded by the near-duplicates an anchor-based detector emits (shifted and resized
//! copies at lower scores), plus one "bus" candidate on the SUV (another class, so NMS keeps
//! it) and a low-scoring box on the road. NMS keeps one box per vehicle and class; mapped back,
//! each kept box is compared with its ground truth.

use ant_geom::{BoxXywh, BoxXyxy, Letterbox, batched_nms_top};

/// Frame 1 of MVI_20011: `(left, top, width, height, vehicle_type)` as in the XML.
const GROUND_TRUTH: [(f32, f32, f32, f32, &str); 7] = [
    (592.75, 378.8, 160.05, 162.2, "Suv"),
    (557.65, 120.98, 47.2, 43.06, "Sedan"),
    (545.2, 88.27, 35.25, 30.08, "Sedan"),
    (508.35, 67.5, 28.0, 25.925, "Suv"),
    (553.0, 70.095, 29.55, 19.695, "Taxi"),
    (731.1, 114.23, 52.4, 39.95, "Sedan"),
    (902.15, 250.12, 58.85, 107.99, "Suv"),
];

/// The benchmark classes the detector predicts (UA-DETRAC's four).
const CLASS_NAMES: [&str; 4] = ["car", "bus", "van", "others"];
const CAR: usize = 0;
const BUS: usize = 1;

/// One raw detection in network-input pixels.
struct Candidate {
    bbox: BoxXyxy,
    score: f32,
    class: usize,
}

/// The near-duplicates of one vehicle: the box itself, then shifted and resized copies at
/// lower scores (offsets in input pixels).
fn duplicates(bbox: BoxXyxy, best_score: f32) -> Vec<Candidate> {
    let offsets = [
        (0.0, 0.0, 0.0, 0.0),
        (2.0, 1.0, 2.0, 1.0),
        (-1.5, -1.0, 1.0, 2.0),
        (1.0, 1.0, -1.0, -1.0),
    ];
    offsets
        .iter()
        .enumerate()
        .map(|(rank, &(dx1, dy1, dx2, dy2))| Candidate {
            bbox: BoxXyxy::new(bbox.x1 + dx1, bbox.y1 + dy1, bbox.x2 + dx2, bbox.y2 + dy2),
            score: best_score - 0.07 * rank as f32,
            class: CAR,
        })
        .collect()
}

fn main() {
    let (frame_width, frame_height) = (960u32, 540u32);
    let letterbox = Letterbox::new(frame_width, frame_height, 512, 512);
    let ground_truth: Vec<BoxXyxy> = GROUND_TRUTH
        .iter()
        .map(|&(left, top, width, height, _)| BoxXywh::new(left, top, width, height).to_xyxy())
        .collect();

    let mut candidates = Vec::new();
    for (index, &bbox) in ground_truth.iter().enumerate() {
        candidates.extend(duplicates(
            letterbox.forward(bbox),
            0.92 - 0.04 * index as f32,
        ));
    }
    // The SUV also scored as a bus (a class confusion: batched NMS keeps both), and a weak
    // detection on the empty road.
    candidates.push(Candidate {
        bbox: letterbox.forward(ground_truth[0]),
        score: 0.31,
        class: BUS,
    });
    candidates.push(Candidate {
        bbox: BoxXyxy::new(150.0, 220.0, 190.0, 250.0),
        score: 0.12,
        class: CAR,
    });

    let boxes: Vec<BoxXyxy> = candidates.iter().map(|c| c.bbox).collect();
    let scores: Vec<f32> = candidates.iter().map(|c| c.score).collect();
    let classes: Vec<usize> = candidates.iter().map(|c| c.class).collect();
    let iou_threshold = 0.5;
    let max_detections = 100;
    let keep = batched_nms_top(&boxes, &scores, &classes, iou_threshold, max_detections);

    let (resized_width, resized_height) = letterbox.resized_size();
    println!(
        "letterbox {frame_width}x{frame_height} -> 512x512: scale {:.4}, image \
         {resized_width}x{resized_height} at the top left",
        letterbox.scale
    );
    println!(
        "NMS at IoU {iou_threshold}: kept {} of {} candidates",
        keep.len(),
        candidates.len()
    );
    println!("score  class   box in the frame (x1, y1, x2, y2)   best ground truth (IoU)");
    for &index in &keep {
        let candidate = &candidates[index];
        let in_frame = letterbox
            .inverse(candidate.bbox)
            .clip(frame_width as f32, frame_height as f32);
        let best = ground_truth
            .iter()
            .enumerate()
            .map(|(target, gt)| (target, gt.iou(&in_frame)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .filter(|&(_, iou)| iou > 0.0);
        let matched = match best {
            Some((target, iou)) => {
                format!(
                    "target {} {} ({iou:.3})",
                    target + 1,
                    GROUND_TRUTH[target].4
                )
            }
            None => "none".to_string(),
        };
        println!(
            "{:.2}   {:<6}  ({:6.1}, {:5.1}, {:6.1}, {:5.1})     {matched}",
            candidate.score,
            CLASS_NAMES[candidate.class],
            in_frame.x1,
            in_frame.y1,
            in_frame.x2,
            in_frame.y2,
        );
    }
}
