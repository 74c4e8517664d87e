//! COCO JSON in and out: ground truth in the instances format and detections in the results
//! format, so any evaluation can be re-checked with pycocotools.
//!
//! Formats: <https://cocodataset.org/#format-data> and <https://cocodataset.org/#format-results>.
//! The loading rules follow pycocotools `coco.py` (`COCO.__init__`, `COCO.loadRes`,
//! <https://github.com/cocodataset/cocoapi/blob/8c9bcc3cf640524c4c20a9c40e89cb6a2f2fa0e9/PythonAPI/pycocotools/coco.py>):
//! - Boxes are `[x, y, width, height]` in continuous pixels, kept as `f64` as Python does.
//! - A ground-truth annotation's `area` field (not its box) decides its area range; when the
//!   field is absent we use `width * height` (pycocotools would raise `KeyError`).
//! - `iscrowd` may be `0`/`1` or `true`/`false`, and defaults to `0`. A non-zero value makes
//!   the annotation a crowd region, which is also pycocotools' `ignore` flag (the `ignore`
//!   field of a file is overwritten by `iscrowd` in `COCOeval._prepare`, so we do not read it).
//! - Detections get `area = width * height`, `iscrowd = 0` and the ids `1..=N` in file order,
//!   as `loadRes` assigns them; their other fields (`id`, `segmentation`, ...) are ignored.
//! - Unknown JSON fields are ignored everywhere; `width`, `height` and `file_name` of images
//!   and `name` of categories are optional, since evaluation does not use them.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::MetricsError;

/// An image of the ground truth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoImage {
    /// Image id, unique in the dataset.
    pub id: u64,
    /// Width in pixels (0 when the file does not say).
    #[serde(default)]
    pub width: u32,
    /// Height in pixels (0 when the file does not say).
    #[serde(default)]
    pub height: u32,
    /// File name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

/// A category of the ground truth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoCategory {
    /// Category id, unique in the dataset.
    pub id: u64,
    /// Human-readable name.
    #[serde(default)]
    pub name: String,
    /// Parent category name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supercategory: Option<String>,
}

/// A ground-truth box (COCO instances format, bbox only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawAnnotation", into = "RawAnnotation")]
pub struct CocoAnnotation {
    /// Annotation id, unique in the dataset.
    pub id: u64,
    /// The image it lies on.
    pub image_id: u64,
    /// Its category.
    pub category_id: u64,
    /// `[x, y, width, height]` in continuous pixels.
    pub bbox: [f64; 4],
    /// The area that decides the COCO area range (small/medium/large).
    pub area: f64,
    /// Whether this is a crowd region: ignored as ground truth, and any number of detections
    /// may match it, by intersection over the detection's area.
    pub iscrowd: bool,
}

/// `iscrowd` as files write it: an integer or a boolean.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum CrowdFlag {
    Integer(i64),
    Boolean(bool),
}

/// The JSON layout of an annotation, with the optional fields of real files.
#[derive(Serialize, Deserialize)]
struct RawAnnotation {
    id: u64,
    image_id: u64,
    category_id: u64,
    bbox: [f64; 4],
    #[serde(default)]
    area: Option<f64>,
    #[serde(default)]
    iscrowd: Option<CrowdFlag>,
}

impl From<RawAnnotation> for CocoAnnotation {
    fn from(raw: RawAnnotation) -> Self {
        let iscrowd = match raw.iscrowd {
            Some(CrowdFlag::Integer(value)) => value != 0,
            Some(CrowdFlag::Boolean(value)) => value,
            None => false,
        };
        CocoAnnotation {
            id: raw.id,
            image_id: raw.image_id,
            category_id: raw.category_id,
            bbox: raw.bbox,
            area: raw.area.unwrap_or(raw.bbox[2] * raw.bbox[3]),
            iscrowd,
        }
    }
}

impl From<CocoAnnotation> for RawAnnotation {
    fn from(annotation: CocoAnnotation) -> Self {
        RawAnnotation {
            id: annotation.id,
            image_id: annotation.image_id,
            category_id: annotation.category_id,
            bbox: annotation.bbox,
            area: Some(annotation.area),
            iscrowd: Some(CrowdFlag::Integer(i64::from(annotation.iscrowd))),
        }
    }
}

/// A ground-truth dataset: images, box annotations and categories (COCO instances format).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CocoDataset {
    /// The images, including those without annotations (they still count for evaluation:
    /// detections on them are false positives).
    pub images: Vec<CocoImage>,
    /// The ground-truth boxes.
    #[serde(default)]
    pub annotations: Vec<CocoAnnotation>,
    /// The categories.
    pub categories: Vec<CocoCategory>,
}

/// One detection (COCO results format).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The image it lies on.
    pub image_id: u64,
    /// Its category.
    pub category_id: u64,
    /// `[x, y, width, height]` in continuous pixels.
    pub bbox: [f64; 4],
    /// Confidence; higher ranks first.
    pub score: f64,
}

impl Detection {
    /// A detection from an `[x, y, width, height]` box.
    pub fn new(image_id: u64, category_id: u64, bbox: [f64; 4], score: f64) -> Self {
        Self {
            image_id,
            category_id,
            bbox,
            score,
        }
    }

    /// A detection from a corner box of ant-geom.
    pub fn from_xyxy(
        image_id: u64,
        category_id: u64,
        the_box: ant_geom::BoxXyxy,
        score: f32,
    ) -> Self {
        let xywh = the_box.to_xywh();
        Self::new(
            image_id,
            category_id,
            [
                f64::from(xywh.x),
                f64::from(xywh.y),
                f64::from(xywh.w),
                f64::from(xywh.h),
            ],
            f64::from(score),
        )
    }
}

pub(crate) fn parse_json<T: for<'de> Deserialize<'de>>(
    text: &str,
    origin: &str,
) -> Result<T, MetricsError> {
    serde_json::from_str(text).map_err(|source| MetricsError::Json {
        origin: origin.to_owned(),
        source,
    })
}

pub(crate) fn read_text(path: &Path) -> Result<String, MetricsError> {
    std::fs::read_to_string(path).map_err(|source| MetricsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_text(path: &Path, text: &str) -> Result<(), MetricsError> {
    std::fs::write(path, text).map_err(|source| MetricsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl CocoDataset {
    /// An empty dataset, to fill with [`CocoDataset::add_image`] and friends.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses and validates (see [`CocoDataset::validate`]) a ground-truth JSON text.
    pub fn from_json_str(text: &str) -> Result<Self, MetricsError> {
        let dataset: CocoDataset = parse_json(text, "<text>")?;
        dataset.validate()?;
        Ok(dataset)
    }

    /// Reads, parses and validates a ground-truth JSON file; errors name the file.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self, MetricsError> {
        let path = path.as_ref();
        let dataset: CocoDataset = parse_json(&read_text(path)?, &path.display().to_string())?;
        dataset
            .validate()
            .map_err(|source| MetricsError::InvalidFile {
                path: path.to_path_buf(),
                source: Box::new(source),
            })?;
        Ok(dataset)
    }

    /// The dataset as COCO instances JSON.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(self).expect("a COCO dataset always serializes")
    }

    /// Writes the dataset as COCO instances JSON.
    pub fn to_json_file(&self, path: impl AsRef<Path>) -> Result<(), MetricsError> {
        write_text(path.as_ref(), &self.to_json_string())
    }

    /// Adds an image.
    pub fn add_image(&mut self, id: u64, width: u32, height: u32) {
        self.images.push(CocoImage {
            id,
            width,
            height,
            file_name: None,
        });
    }

    /// Adds a category.
    pub fn add_category(&mut self, id: u64, name: impl Into<String>) {
        self.categories.push(CocoCategory {
            id,
            name: name.into(),
            supercategory: None,
        });
    }

    /// Adds a ground-truth box `[x, y, width, height]` with `area = width * height` and a fresh
    /// id (one more than the largest so far, starting at 1); returns that id.
    pub fn add_annotation(
        &mut self,
        image_id: u64,
        category_id: u64,
        bbox: [f64; 4],
        iscrowd: bool,
    ) -> u64 {
        let id = self.next_annotation_id();
        self.annotations.push(CocoAnnotation {
            id,
            image_id,
            category_id,
            bbox,
            area: bbox[2] * bbox[3],
            iscrowd,
        });
        id
    }

    /// One more than the largest annotation id (1 for an empty dataset).
    pub fn next_annotation_id(&self) -> u64 {
        self.annotations
            .iter()
            .map(|annotation| annotation.id)
            .max()
            .map_or(1, |id| id + 1)
    }

    /// The category ids, sorted and unique.
    pub fn category_ids(&self) -> Vec<u64> {
        let ids: BTreeSet<u64> = self.categories.iter().map(|category| category.id).collect();
        ids.into_iter().collect()
    }

    /// The image ids, sorted and unique.
    pub fn image_ids(&self) -> Vec<u64> {
        let ids: BTreeSet<u64> = self.images.iter().map(|image| image.id).collect();
        ids.into_iter().collect()
    }

    /// Checks that ids are unique, that every annotation names a known image and category,
    /// and that boxes and areas are finite.
    pub fn validate(&self) -> Result<(), MetricsError> {
        let mut image_ids = BTreeSet::new();
        for image in &self.images {
            if !image_ids.insert(image.id) {
                return Err(MetricsError::DuplicateId {
                    kind: "image",
                    id: image.id,
                });
            }
        }
        let mut category_ids = BTreeSet::new();
        for category in &self.categories {
            if !category_ids.insert(category.id) {
                return Err(MetricsError::DuplicateId {
                    kind: "category",
                    id: category.id,
                });
            }
        }
        let mut annotation_ids = BTreeSet::new();
        for annotation in &self.annotations {
            if !annotation_ids.insert(annotation.id) {
                return Err(MetricsError::DuplicateId {
                    kind: "annotation",
                    id: annotation.id,
                });
            }
            if !image_ids.contains(&annotation.image_id) {
                return Err(MetricsError::AnnotationForUnknownImage {
                    annotation_id: annotation.id,
                    image_id: annotation.image_id,
                });
            }
            if !category_ids.contains(&annotation.category_id) {
                return Err(MetricsError::AnnotationForUnknownCategory {
                    annotation_id: annotation.id,
                    category_id: annotation.category_id,
                });
            }
            let non_finite = |field| MetricsError::NonFinite {
                what: "annotation",
                index: annotation.id,
                field,
            };
            if !annotation.bbox.iter().all(|value| value.is_finite()) {
                return Err(non_finite("bbox"));
            }
            if !annotation.area.is_finite() {
                return Err(non_finite("area"));
            }
        }
        Ok(())
    }

    /// Checks detections against this ground truth: known image and category, finite box and
    /// score. `evaluate_bbox` calls this.
    pub fn check_detections(&self, detections: &[Detection]) -> Result<(), MetricsError> {
        let image_ids: BTreeSet<u64> = self.images.iter().map(|image| image.id).collect();
        let category_ids: BTreeSet<u64> =
            self.categories.iter().map(|category| category.id).collect();
        for (index, detection) in detections.iter().enumerate() {
            if !image_ids.contains(&detection.image_id) {
                return Err(MetricsError::DetectionForUnknownImage {
                    index,
                    image_id: detection.image_id,
                });
            }
            if !category_ids.contains(&detection.category_id) {
                return Err(MetricsError::DetectionForUnknownCategory {
                    index,
                    category_id: detection.category_id,
                });
            }
            let non_finite = |field| MetricsError::NonFinite {
                what: "detection",
                index: index as u64,
                field,
            };
            if !detection.bbox.iter().all(|value| value.is_finite()) {
                return Err(non_finite("bbox"));
            }
            if !detection.score.is_finite() {
                return Err(non_finite("score"));
            }
        }
        Ok(())
    }
}

/// Parses detections in the COCO results format (a JSON list).
pub fn detections_from_json_str(text: &str) -> Result<Vec<Detection>, MetricsError> {
    parse_json(text, "<text>")
}

/// Reads detections in the COCO results format; errors name the file.
pub fn load_detections(path: impl AsRef<Path>) -> Result<Vec<Detection>, MetricsError> {
    let path = path.as_ref();
    parse_json(&read_text(path)?, &path.display().to_string())
}

/// Detections as COCO results JSON (a list of `{image_id, category_id, bbox, score}`).
pub fn detections_to_json_string(detections: &[Detection]) -> String {
    serde_json::to_string(detections).expect("detections always serialize")
}

/// Writes detections as COCO results JSON.
pub fn save_detections(
    path: impl AsRef<Path>,
    detections: &[Detection],
) -> Result<(), MetricsError> {
    write_text(path.as_ref(), &detections_to_json_string(detections))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GT: &str = r#"{
        "info": {"year": 2016},
        "images": [{"id": 1, "width": 960, "height": 540, "file_name": "img00001.jpg"},
                   {"id": 2}],
        "annotations": [
            {"id": 7, "image_id": 1, "category_id": 3, "bbox": [1, 2, 10, 20], "area": 150.5,
             "iscrowd": 0, "segmentation": []},
            {"id": 8, "image_id": 2, "category_id": 3, "bbox": [0, 0, 4, 5], "iscrowd": true}
        ],
        "categories": [{"id": 3, "name": "car", "supercategory": "vehicle"}]
    }"#;

    #[test]
    fn should_read_instances_with_optional_fields() {
        let dataset = CocoDataset::from_json_str(GT).unwrap();
        assert_eq!(dataset.images.len(), 2);
        assert_eq!(dataset.images[1].width, 0);
        assert_eq!(dataset.annotations[0].area, 150.5);
        assert!(!dataset.annotations[0].iscrowd);
        // A missing area falls back to the box area.
        assert_eq!(dataset.annotations[1].area, 20.0);
        assert!(dataset.annotations[1].iscrowd);
        assert_eq!(dataset.category_ids(), vec![3]);
    }

    #[test]
    fn should_round_trip_dataset_through_json() {
        let dataset = CocoDataset::from_json_str(GT).unwrap();
        let again = CocoDataset::from_json_str(&dataset.to_json_string()).unwrap();
        assert_eq!(again, dataset);
    }

    #[test]
    fn should_round_trip_detections_through_json() {
        let detections = vec![
            Detection::new(1, 3, [1.5, 2.25, 10.0, 20.0], 0.875),
            Detection::from_xyxy(2, 3, ant_geom::BoxXyxy::new(0.0, 0.0, 4.0, 5.0), 0.5),
        ];
        let text = detections_to_json_string(&detections);
        assert_eq!(detections_from_json_str(&text).unwrap(), detections);
        assert_eq!(detections[1].bbox, [0.0, 0.0, 4.0, 5.0]);
    }

    #[test]
    fn should_ignore_extra_detection_fields() {
        let text = r#"[{"image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4], "score": 0.9,
                        "id": 55, "segmentation": [[1, 2]]}]"#;
        assert_eq!(detections_from_json_str(text).unwrap()[0].score, 0.9);
    }

    #[test]
    fn should_name_missing_field() {
        let error = detections_from_json_str(r#"[{"image_id": 1, "category_id": 3, "score": 1}]"#)
            .unwrap_err();
        let MetricsError::Json { source, .. } = &error else {
            panic!("{error:?}")
        };
        assert!(
            source.to_string().contains("missing field `bbox`"),
            "{source}"
        );
    }

    #[test]
    fn should_name_file_of_malformed_json() {
        let path =
            std::env::temp_dir().join(format!("ant-metrics-bad-{}.json", std::process::id()));
        std::fs::write(&path, "{\"images\": [").unwrap();
        let error = CocoDataset::from_json_file(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
        assert!(matches!(error, MetricsError::Json { .. }));
    }

    #[test]
    fn should_name_file_of_missing_file() {
        let error = CocoDataset::from_json_file("/nonexistent/gt.json").unwrap_err();
        assert_eq!(error.to_string(), "cannot access /nonexistent/gt.json");
    }

    #[test]
    fn should_reject_inconsistent_ground_truth() {
        let mut dataset = CocoDataset::new();
        dataset.add_image(1, 100, 100);
        dataset.add_category(1, "car");
        dataset.add_annotation(2, 1, [0.0, 0.0, 1.0, 1.0], false);
        assert!(matches!(
            dataset.validate(),
            Err(MetricsError::AnnotationForUnknownImage { image_id: 2, .. })
        ));
        dataset.annotations.clear();
        dataset.add_image(1, 100, 100);
        assert!(matches!(
            dataset.validate(),
            Err(MetricsError::DuplicateId {
                kind: "image",
                id: 1
            })
        ));
    }

    #[test]
    fn should_reject_detection_for_unknown_image_or_category() {
        let dataset = CocoDataset::from_json_str(GT).unwrap();
        let unknown_image = [Detection::new(9, 3, [0.0, 0.0, 1.0, 1.0], 0.5)];
        assert!(matches!(
            dataset.check_detections(&unknown_image),
            Err(MetricsError::DetectionForUnknownImage {
                index: 0,
                image_id: 9
            })
        ));
        let unknown_category = [Detection::new(1, 0, [0.0, 0.0, 1.0, 1.0], 0.5)];
        assert!(matches!(
            dataset.check_detections(&unknown_category),
            Err(MetricsError::DetectionForUnknownCategory {
                index: 0,
                category_id: 0
            })
        ));
        let nan_score = [Detection::new(1, 3, [0.0, 0.0, 1.0, 1.0], f64::NAN)];
        assert!(matches!(
            dataset.check_detections(&nan_score),
            Err(MetricsError::NonFinite { field: "score", .. })
        ));
    }

    #[test]
    fn should_number_added_annotations_after_largest_id() {
        let mut dataset = CocoDataset::from_json_str(GT).unwrap();
        assert_eq!(dataset.add_annotation(1, 3, [0.0, 0.0, 2.0, 3.0], false), 9);
        assert_eq!(dataset.annotations[2].area, 6.0);
    }
}
