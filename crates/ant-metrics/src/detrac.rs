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
//!
//! Regions are COCO boxes (`[x, y, width, height]`, `f64`) like every box here, so a region read
//! from a file and the crowd annotation written for it hold the same numbers.
//! [`DetracGroundTruth`] reads a ground truth together with its regions from the
//! `ignored_regions` key of the files that `cargo xtask dataset to-coco` writes.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::coco::{parse_json, read_text};
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

/// Ignored regions per image id, as `[x, y, width, height]` in pixels of that image.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IgnoreRegions {
    /// Regions of each image; images without an entry have none.
    pub per_image: BTreeMap<u64, Vec<[f64; 4]>>,
}

impl IgnoreRegions {
    /// No regions anywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the regions of an image (a DETRAC sequence has one set for all its frames: call
    /// this for each frame's image id).
    pub fn insert(&mut self, image_id: u64, regions: Vec<[f64; 4]>) {
        self.per_image.insert(image_id, regions);
    }

    /// Adds one region to an image's regions.
    pub fn push(&mut self, image_id: u64, region: [f64; 4]) {
        self.per_image.entry(image_id).or_default().push(region);
    }

    /// The regions of an image (empty when it has none).
    pub fn get(&self, image_id: u64) -> &[[f64; 4]] {
        self.per_image.get(&image_id).map_or(&[], Vec::as_slice)
    }

    /// The number of regions over all images.
    pub fn len(&self) -> usize {
        self.per_image.values().map(Vec::len).sum()
    }

    /// Whether no image has a region.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A region `[x, y, width, height]` as `[x1, y1, x2, y2]`.
fn region_corners(&[x, y, width, height]: &[f64; 4]) -> [f64; 4] {
    [x, y, x + width, y + height]
}

/// Whether a region has a positive width and height (others cover nothing).
fn is_proper(&[_, _, width, height]: &[f64; 4]) -> bool {
    width > 0.0 && height > 0.0
}

/// Fraction of the `[x, y, w, h]` box covered by the union of the regions, in `[0, 1]`;
/// 0 for a box of zero area.
pub fn fraction_inside(bbox: [f64; 4], regions: &[[f64; 4]]) -> f64 {
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
pub fn is_half_inside(bbox: [f64; 4], regions: &[[f64; 4]]) -> bool {
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
                for region in image_regions.iter().filter(|region| is_proper(region)) {
                    for &category_id in &category_ids {
                        with_crowd.add_annotation(image_id, category_id, *region, true);
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

/// The `ignored_regions` key of a ground-truth file; serde skips every other key.
#[derive(Deserialize)]
struct RegionsKey {
    #[serde(default)]
    ignored_regions: Option<Vec<RegionEntry>>,
}

/// One entry of `ignored_regions`.
#[derive(Deserialize)]
struct RegionEntry {
    image_id: u64,
    bbox: [f64; 4],
}

/// A COCO ground truth with the DETRAC ignored regions of its images, as `cargo xtask dataset
/// to-coco` writes it: a COCO instances file with one more top-level key, `ignored_regions`, a
/// list of `{"image_id", "bbox": [x, y, width, height]}` with one entry per region and image.
/// pycocotools does not read that key.
///
/// `cargo xtask eval` builds its ground truth through [`DetracGroundTruth::from_json_str`] from
/// the very text that `to-coco` writes, so an exported file and its detections give the same
/// numbers, to the last bit, as `eval` did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DetracGroundTruth {
    /// The COCO ground truth.
    pub dataset: CocoDataset,
    /// The ignored regions of its images.
    pub regions: IgnoreRegions,
}

impl DetracGroundTruth {
    /// Parses and validates a ground truth with its regions (see
    /// [`DetracGroundTruth::from_json_file`]).
    pub fn from_json_str(text: &str) -> Result<Self, MetricsError> {
        let ground_truth = Self::parse(text, "<text>")?;
        ground_truth.validate()?;
        Ok(ground_truth)
    }

    /// Reads, parses and validates a ground-truth file with its regions; errors name the file.
    ///
    /// Fails with [`MetricsError::MissingIgnoredRegions`] when the file has no
    /// `ignored_regions` key at all (a plain COCO file: nothing says which regions to ignore);
    /// an empty list is a ground truth without regions. Fails as
    /// [`CocoDataset::from_json_file`] does, and when a region names an image that is not in
    /// the file.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self, MetricsError> {
        let path = path.as_ref();
        let ground_truth = Self::parse(&read_text(path)?, &path.display().to_string())?;
        ground_truth
            .validate()
            .map_err(|source| MetricsError::InvalidFile {
                path: path.to_path_buf(),
                source: Box::new(source),
            })?;
        Ok(ground_truth)
    }

    fn parse(text: &str, origin: &str) -> Result<Self, MetricsError> {
        let dataset: CocoDataset = parse_json(text, origin)?;
        let key: RegionsKey = parse_json(text, origin)?;
        let entries = key
            .ignored_regions
            .ok_or_else(|| MetricsError::MissingIgnoredRegions {
                origin: origin.to_owned(),
            })?;
        let mut regions = IgnoreRegions::new();
        for entry in entries {
            regions.push(entry.image_id, entry.bbox);
        }
        Ok(Self { dataset, regions })
    }

    /// [`CocoDataset::validate`], and every region on an image of the dataset.
    fn validate(&self) -> Result<(), MetricsError> {
        self.dataset.validate()?;
        let image_ids = self.dataset.image_ids();
        match self
            .regions
            .per_image
            .keys()
            .find(|id| image_ids.binary_search(id).is_err())
        {
            Some(&image_id) => Err(MetricsError::RegionsForUnknownImage { image_id }),
            None => Ok(()),
        }
    }

    /// [`evaluate_detrac`] of detections against this ground truth and its regions.
    pub fn evaluate(
        &self,
        detections: &[Detection],
        policy: IgnorePolicy,
        params: &EvalParams,
    ) -> Result<EvalResult, MetricsError> {
        evaluate_detrac(&self.dataset, detections, &self.regions, policy, params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A region from its corners.
    fn region(x1: f64, y1: f64, x2: f64, y2: f64) -> [f64; 4] {
        [x1, y1, x2 - x1, y2 - y1]
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

    const DETRAC_FILE: &str = r#"{
        "images": [{"id": 1, "width": 200, "height": 100, "sequence": "MVI_1", "frame": 1}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "area": 1600,
             "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [120, 10, 40, 40], "area": 1600,
             "iscrowd": 0}
        ],
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "bus"}],
        "ignored_regions": [{"image_id": 1, "bbox": [100.5, 0, 99.5, 100]}]
    }"#;

    #[test]
    fn should_read_ground_truth_with_its_ignored_regions() {
        let ground_truth = DetracGroundTruth::from_json_str(DETRAC_FILE).unwrap();
        assert_eq!(ground_truth.dataset.annotations.len(), 2);
        assert_eq!(ground_truth.regions.len(), 1);
        assert_eq!(ground_truth.regions.get(1), &[[100.5, 0.0, 99.5, 100.0]]);
        let (_, detections, _) = scene();
        let result = ground_truth
            .evaluate(
                &detections,
                IgnorePolicy::DropHalfInside,
                &EvalParams::default(),
            )
            .unwrap();
        assert!((result.stats[0] - 1.0).abs() < 1e-12, "{:?}", result.stats);
    }

    #[test]
    fn should_read_an_empty_region_list_as_no_regions() {
        let text = DETRAC_FILE.replace(r#"[{"image_id": 1, "bbox": [100.5, 0, 99.5, 100]}]"#, "[]");
        let ground_truth = DetracGroundTruth::from_json_str(&text).unwrap();
        assert!(ground_truth.regions.is_empty());
    }

    #[test]
    fn should_refuse_a_file_without_the_regions_key() {
        let path = std::env::temp_dir().join(format!(
            "ant-metrics-no-regions-{}.json",
            std::process::id()
        ));
        let plain = CocoDataset::from_json_str(DETRAC_FILE).unwrap();
        plain.to_json_file(&path).unwrap();
        let error = DetracGroundTruth::from_json_file(&path).unwrap_err();
        let _ = std::fs::remove_file(&path);
        assert!(
            matches!(&error, MetricsError::MissingIgnoredRegions { origin } if origin.contains("ant-metrics-no-regions")),
            "{error}"
        );
        assert!(error.to_string().contains("ignored_regions"), "{error}");
    }

    #[test]
    fn should_refuse_regions_of_an_image_not_in_the_file() {
        let text = DETRAC_FILE.replace(
            r#"{"image_id": 1, "bbox": [100.5"#,
            r#"{"image_id": 9, "bbox": [100.5"#,
        );
        let error = DetracGroundTruth::from_json_str(&text).unwrap_err();
        assert!(
            matches!(error, MetricsError::RegionsForUnknownImage { image_id: 9 }),
            "{error}"
        );
    }
}
