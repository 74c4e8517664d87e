//! The error type of ant-metrics: every way that loading COCO data or evaluating it can fail.

use std::path::PathBuf;

/// Why reading, validating or evaluating COCO data failed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A file could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Text is not valid JSON of the expected COCO layout (this includes missing fields such
    /// as `bbox`; serde's message names the field, line and column).
    #[error("malformed COCO JSON in {origin}")]
    Json {
        /// The file, or `<text>` for in-memory input.
        origin: String,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
    /// A file parsed but its content is inconsistent; the source says what.
    #[error("invalid COCO data in {path}")]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: Box<MetricsError>,
    },
    /// Two images, categories or annotations share an id.
    #[error("{kind} id {id} appears more than once")]
    DuplicateId {
        /// `image`, `category` or `annotation`.
        kind: &'static str,
        /// The repeated id.
        id: u64,
    },
    /// A ground-truth annotation names an image that is not in `images`.
    #[error("annotation {annotation_id} refers to image {image_id}, which is not in the images")]
    AnnotationForUnknownImage {
        /// The annotation.
        annotation_id: u64,
        /// The image it names.
        image_id: u64,
    },
    /// A ground-truth annotation names a category that is not in `categories`.
    #[error(
        "annotation {annotation_id} has category {category_id}, which is not in the categories"
    )]
    AnnotationForUnknownCategory {
        /// The annotation.
        annotation_id: u64,
        /// The category it names.
        category_id: u64,
    },
    /// A detection names an image that is not in the ground truth (pycocotools' `loadRes`
    /// refuses these too: "Results do not correspond to current coco set").
    #[error("detection {index} refers to image {image_id}, which is not in the ground truth")]
    DetectionForUnknownImage {
        /// Position of the detection in its list (0-based).
        index: usize,
        /// The image it names.
        image_id: u64,
    },
    /// A detection names a category that is not in the ground truth. pycocotools silently
    /// ignores such detections; we refuse them, since they are nearly always an off-by-one
    /// class mapping.
    #[error(
        "detection {index} has category {category_id}, which is not in the ground truth's \
         categories"
    )]
    DetectionForUnknownCategory {
        /// Position of the detection in its list (0-based).
        index: usize,
        /// The category it names.
        category_id: u64,
    },
    /// A detection or annotation holds NaN or an infinity.
    #[error("{what} {index} has a non-finite {field}")]
    NonFinite {
        /// `detection` or `annotation`.
        what: &'static str,
        /// Position (detections) or id (annotations).
        index: u64,
        /// `bbox`, `score` or `area`.
        field: &'static str,
    },
    /// Ignore regions were given for an image that is not in the ground truth.
    #[error("ignore regions given for image {image_id}, which is not in the ground truth")]
    RegionsForUnknownImage {
        /// The image.
        image_id: u64,
    },
    /// A ground truth read for the DETRAC protocol has no `ignored_regions` key.
    #[error(
        "{origin} has no `ignored_regions` key, where the DETRAC protocol reads the regions to \
         ignore"
    )]
    MissingIgnoredRegions {
        /// The file, or `<text>` for in-memory input.
        origin: String,
    },
    /// The evaluation parameters cannot be used.
    #[error("invalid evaluation parameters: {reason}")]
    InvalidParams {
        /// What is wrong.
        reason: &'static str,
    },
}
