//! The UA-DETRAC protocol on top of COCO evaluation: what to do with the ignored regions that
//! each DETRAC sequence marks (parked cars, far-away traffic left unlabelled).
//!
//! The official DETRAC toolkit drops, frame by frame, every ground-truth box and every
//! detection that lies at least half inside the union of the ignored regions, before matching
//! (`dropObjectsInIgr.m`: keep a box when `igrArea / (w * h) < 0.5`, with `igrArea` read from
//! an integral image of the region mask). [`IgnorePolicy::DropHalfInside`] is that rule and our
//! default. We compute the covered area exactly in continuous coordinates (the union of the
//! regions clipped to the box) where the toolkit rasterises rounded boxes onto a pixel mask,
//! so a box can land on the other side of the 0.5 line only when it is within about a pixel
//! of it. A box of zero area covers nothing and is kept.
//!
//! [`IgnorePolicy::AsCrowd`] instead adds each region as a COCO crowd box (`iscrowd = 1`) of
//! every category: detections matching it (intersection over detection area `>=` the IoU
//! threshold) are ignored rather than counted as false positives, and ground truth is kept.
//! This is what COCO-style DETRAC evaluations (e.g. through pycocotools) usually do; it is
//! stricter at high IoU thresholds, where a detection must lie almost wholly inside a region.

use std::collections::BTreeMap;

use ant_geom::BoxXyxy;

use crate::{CocoDataset, Detection, EvalParams, EvalResult, MetricsError, evaluate_bbox};

/// A box at least this fraction inside the ignored regions is dropped by
/// [`IgnorePolicy::DropHalfInside`].
pub const DROP_FRACTION: f64 = 0.5;

/// How ignored regions enter the evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IgnorePolicy {
    /// Drop ground truth and detections at least half inside the regions (the official
    /// DETRAC toolkit's rule).
    #[default]
    DropHalfInside,
    /// Add the regions as COCO crowd boxes of every category.
    AsCrowd,
}

/// Ignored regions per image id, in pixels of that image.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IgnoreRegions {
    /// Regions of each image; images without an entry have none.
    pub per_image: BTreeMap<u64, Vec<BoxXyxy>>,
}

impl IgnoreRegions {
    /// No regions anywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the regions of an image (a DETRAC sequence has one set for all its frames: call
    /// this for each frame's image id).
    pub fn insert(&mut self, image_id: u64, regions: Vec<BoxXyxy>) {
        self.per_image.insert(image_id, regions);
    }

    /// The regions of an image (empty when it has none).
    pub fn get(&self, image_id: u64) -> &[BoxXyxy] {
        self.per_image.get(&image_id).map_or(&[], Vec::as_slice)
    }
}

/// A region as `[x1, y1, x2, y2]` in double precision.
fn region_corners(region: &BoxXyxy) -> [f64; 4] {
    [
        f64::from(region.x1),
        f64::from(region.y1),
        f64::from(region.x2),
        f64::from(region.y2),
    ]
}

/// Fraction of the `[x, y, w, h]` box covered by the union of the regions, in `[0, 1]`;
/// 0 for a box of zero area.
pub fn fraction_inside(bbox: [f64; 4], regions: &[BoxXyxy]) -> f64 {
    let [x, y, width, height] = bbox;
    let area = width * height;
    if width <= 0.0 || height <= 0.0 {
        return 0.0;
    }
    let (x2, y2) = (x + width, y + height);
    // The regions clipped to the box; the covered area is the area of their union.
    let clipped: Vec<[f64; 4]> = regions
        .iter()
        .map(region_corners)
        .map(|[rx1, ry1, rx2, ry2]| [rx1.max(x), ry1.max(y), rx2.min(x2), ry2.min(y2)])
        .filter(|[cx1, cy1, cx2, cy2]| cx1 < cx2 && cy1 < cy2)
        .collect();
    if clipped.is_empty() {
        return 0.0;
    }
    // Union area by coordinate compression: few regions per frame, so cubic cost is fine.
    let mut xs: Vec<f64> = clipped.iter().flat_map(|c| [c[0], c[2]]).collect();
    let mut ys: Vec<f64> = clipped.iter().flat_map(|c| [c[1], c[3]]).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    ys.sort_by(f64::total_cmp);
    ys.dedup();
    let mut covered = 0.0;
    for column in xs.windows(2) {
        for row in ys.windows(2) {
            let (cx, cy) = ((column[0] + column[1]) * 0.5, (row[0] + row[1]) * 0.5);
            if clipped
                .iter()
                .any(|c| c[0] <= cx && cx <= c[2] && c[1] <= cy && cy <= c[3])
            {
                covered += (column[1] - column[0]) * (row[1] - row[0]);
            }
        }
    }
    (covered / area).min(1.0)
}

/// Whether the DETRAC toolkit drops this box: at least half of it inside the regions.
pub fn is_half_inside(bbox: [f64; 4], regions: &[BoxXyxy]) -> bool {
    fraction_inside(bbox, regions) >= DROP_FRACTION
}

/// Applies the ignored regions to a ground truth and its detections, giving the COCO data to
/// evaluate (and to hand to pycocotools for a re-check).
///
/// Fails when regions name an image that the ground truth does not have.
pub fn apply_ignore_regions(
    ground_truth: &CocoDataset,
    detections: &[Detection],
    regions: &IgnoreRegions,
    policy: IgnorePolicy,
) -> Result<(CocoDataset, Vec<Detection>), MetricsError> {
    let image_ids = ground_truth.image_ids();
    if let Some(&image_id) = regions
        .per_image
        .keys()
        .find(|id| image_ids.binary_search(id).is_err())
    {
        return Err(MetricsError::RegionsForUnknownImage { image_id });
    }
    match policy {
        IgnorePolicy::DropHalfInside => {
            let mut filtered = ground_truth.clone();
            filtered
                .annotations
                .retain(|truth| !is_half_inside(truth.bbox, regions.get(truth.image_id)));
            let kept = detections
                .iter()
                .filter(|detection| {
                    !is_half_inside(detection.bbox, regions.get(detection.image_id))
                })
                .copied()
                .collect();
            Ok((filtered, kept))
        }
        IgnorePolicy::AsCrowd => {
            let mut with_crowd = ground_truth.clone();
            let category_ids = ground_truth.category_ids();
            for (&image_id, image_regions) in &regions.per_image {
                for region in image_regions.iter().filter(|region| region.is_valid()) {
                    let [x1, y1, x2, y2] = region_corners(region);
                    for &category_id in &category_ids {
                        with_crowd.add_annotation(
                            image_id,
                            category_id,
                            [x1, y1, x2 - x1, y2 - y1],
                            true,
                        );
                    }
                }
            }
            Ok((with_crowd, detections.to_vec()))
        }
    }
}

/// COCO bbox evaluation under the DETRAC protocol: [`apply_ignore_regions`] then
/// [`evaluate_bbox`].
pub fn evaluate_detrac(
    ground_truth: &CocoDataset,
    detections: &[Detection],
    regions: &IgnoreRegions,
    policy: IgnorePolicy,
    params: &EvalParams,
) -> Result<EvalResult, MetricsError> {
    let (ground_truth, detections) =
        apply_ignore_regions(ground_truth, detections, regions, policy)?;
    evaluate_bbox(&ground_truth, &detections, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(x1: f32, y1: f32, x2: f32, y2: f32) -> BoxXyxy {
        BoxXyxy::new(x1, y1, x2, y2)
    }

    #[test]
    fn should_measure_fraction_inside_union_of_regions() {
        let bbox = [0.0, 0.0, 10.0, 10.0];
        assert_eq!(fraction_inside(bbox, &[]), 0.0);
        assert_eq!(
            fraction_inside(bbox, &[region(-5.0, -5.0, 20.0, 20.0)]),
            1.0
        );
        assert_eq!(fraction_inside(bbox, &[region(5.0, 0.0, 20.0, 20.0)]), 0.5);
        // Two overlapping regions covering the left 3 and the left 6 columns: the union is 6.
        let overlapping = [region(0.0, 0.0, 3.0, 10.0), region(0.0, 0.0, 6.0, 10.0)];
        assert!((fraction_inside(bbox, &overlapping) - 0.6).abs() < 1e-12);
        // Two disjoint quarter regions: each 25, together 50.
        let quarters = [region(0.0, 0.0, 5.0, 5.0), region(5.0, 5.0, 10.0, 10.0)];
        assert!((fraction_inside(bbox, &quarters) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn should_drop_box_exactly_half_inside() {
        // The toolkit keeps a box only when strictly less than half is inside.
        assert!(is_half_inside(
            [0.0, 0.0, 10.0, 10.0],
            &[region(5.0, 0.0, 20.0, 10.0)]
        ));
        assert!(!is_half_inside(
            [0.0, 0.0, 10.0, 10.0],
            &[region(5.1, 0.0, 20.0, 10.0)]
        ));
    }

    #[test]
    fn should_keep_zero_area_box() {
        assert!(!is_half_inside(
            [1.0, 1.0, 0.0, 5.0],
            &[region(0.0, 0.0, 10.0, 10.0)]
        ));
    }

    fn scene() -> (CocoDataset, Vec<Detection>, IgnoreRegions) {
        let mut ground_truth = CocoDataset::new();
        ground_truth.add_image(1, 200, 100);
        ground_truth.add_category(1, "car");
        ground_truth.add_category(2, "bus");
        // One car outside the region, one inside it.
        ground_truth.add_annotation(1, 1, [10.0, 10.0, 40.0, 40.0], false);
        ground_truth.add_annotation(1, 1, [120.0, 10.0, 40.0, 40.0], false);
        let detections = vec![
            Detection::new(1, 1, [10.0, 10.0, 40.0, 40.0], 0.9),
            // A detection of the car inside the region, and a top-scoring false positive
            // inside it.
            Detection::new(1, 1, [120.0, 10.0, 40.0, 40.0], 0.8),
            Detection::new(1, 1, [150.0, 50.0, 30.0, 30.0], 0.95),
        ];
        let mut regions = IgnoreRegions::new();
        regions.insert(1, vec![region(100.0, 0.0, 200.0, 100.0)]);
        (ground_truth, detections, regions)
    }

    #[test]
    fn should_drop_ground_truth_and_detections_inside_regions() {
        let (ground_truth, detections, regions) = scene();
        let (kept_truth, kept_detections) = apply_ignore_regions(
            &ground_truth,
            &detections,
            &regions,
            IgnorePolicy::DropHalfInside,
        )
        .unwrap();
        assert_eq!(kept_truth.annotations.len(), 1);
        assert_eq!(kept_detections, detections[..1].to_vec());
        let result = evaluate_detrac(
            &ground_truth,
            &detections,
            &regions,
            IgnorePolicy::DropHalfInside,
            &EvalParams::default(),
        )
        .unwrap();
        assert!((result.stats[0] - 1.0).abs() < 1e-12, "{:?}", result.stats);
    }

    #[test]
    fn should_add_regions_as_crowd_of_every_category() {
        let (ground_truth, detections, regions) = scene();
        let (with_crowd, same_detections) =
            apply_ignore_regions(&ground_truth, &detections, &regions, IgnorePolicy::AsCrowd)
                .unwrap();
        assert_eq!(same_detections, detections);
        let crowd: Vec<_> = with_crowd
            .annotations
            .iter()
            .filter(|a| a.iscrowd)
            .collect();
        assert_eq!(crowd.len(), 2);
        assert_eq!(crowd[0].bbox, [100.0, 0.0, 100.0, 100.0]);
        assert_eq!((crowd[0].category_id, crowd[1].category_id), (1, 2));
        with_crowd.validate().unwrap();
        // The car inside the region is still ground truth and is found; the top-scoring false
        // positive lies wholly inside the crowd box and is ignored, so AP is 1.
        let result = evaluate_detrac(
            &ground_truth,
            &detections,
            &regions,
            IgnorePolicy::AsCrowd,
            &EvalParams::default(),
        )
        .unwrap();
        assert!((result.stats[0] - 1.0).abs() < 1e-12, "{:?}", result.stats);
    }

    #[test]
    fn should_refuse_regions_for_unknown_image() {
        let (ground_truth, detections, mut regions) = scene();
        regions.insert(5, vec![region(0.0, 0.0, 1.0, 1.0)]);
        let error =
            apply_ignore_regions(&ground_truth, &detections, &regions, IgnorePolicy::AsCrowd)
                .unwrap_err();
        assert!(matches!(
            error,
            MetricsError::RegionsForUnknownImage { image_id: 5 }
        ));
    }
}
