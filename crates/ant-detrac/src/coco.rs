//! Export of UA-DETRAC ground truth as COCO instances JSON, for COCO-style AP (the ANT paper's
//! metric: AP over IoU 0.5:0.05:0.95, Sec. 4) with pycocotools or `ant-metrics`.
//!
//! Category ids are 1-based, `car`=1, `bus`=2, `van`=3, `others`=4; the model's 0-based class
//! index is `category_id - 1` ([`VehicleClass::coco_category_id`]). Images are the annotated
//! frames only, numbered 1.. in (sequence, frame) order, with `file_name` relative to the
//! release root and two extra fields, `sequence` and `frame`. Boxes are `[x, y, w, h]` in frame
//! pixels, clipped to the frame (UA-DETRAC boxes may reach one pixel past it), `area = w * h`,
//! `iscrowd = 0`.
//!
//! The ignored regions, which COCO has no field for, go one of two ways ([`IgnoredRegionsAs`]):
//! - [`IgnoredRegionsAs::Key`] (the default): an extra top-level `ignored_regions` list of
//!   `{image_id, bbox}`, one entry per region and image. pycocotools ignores unknown keys;
//!   `cargo xtask coco-eval --protocol detrac` (ant-metrics' `DetracGroundTruth`) reads it and
//!   drops ground truth and detections at least half inside the regions, as `cargo xtask eval`
//!   does, which builds its ground truth from this export's JSON text.
//! - [`IgnoredRegionsAs::Crowd`]: each region becomes an `iscrowd = 1` annotation of every
//!   category on each image, after that image's boxes (regions without area are left out), and
//!   there is no `ignored_regions` key. Plain COCO tools (pycocotools) then give detections in
//!   the regions the crowd treatment (ant-metrics' `IgnorePolicy::AsCrowd`, to the bit).

use std::collections::BTreeMap;
use std::path::Path;

use ant_geom::BoxXyxy;
use serde::{Deserialize, Serialize};

use crate::annotation::DetracBox;
use crate::classes::VehicleClass;
use crate::dataset::LoadedSequence;
use crate::error::DetracError;

/// One COCO image: an annotated frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoImage {
    /// 1-based image id.
    pub id: u64,
    /// The JPEG path relative to the release root.
    pub file_name: String,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// The sequence name (extra field).
    pub sequence: String,
    /// The 1-based frame number (extra field).
    pub frame: u32,
}

/// One COCO ground-truth box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoAnnotation {
    /// 1-based annotation id.
    pub id: u64,
    /// The image id.
    pub image_id: u64,
    /// The category id (`class index + 1`).
    pub category_id: u32,
    /// `[x, y, width, height]` in frame pixels.
    pub bbox: [f32; 4],
    /// `width * height`.
    pub area: f32,
    /// 0, or 1 for an ignored region exported as a crowd box ([`IgnoredRegionsAs::Crowd`]).
    pub iscrowd: u8,
}

/// One COCO category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoCategory {
    /// The category id.
    pub id: u32,
    /// `car`, `bus`, `van` or `others`.
    pub name: String,
    /// Always `vehicle`.
    pub supercategory: String,
}

/// An ignored region of an image (extra, non-COCO).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoIgnoredRegion {
    /// The image id.
    pub image_id: u64,
    /// `[x, y, width, height]` in frame pixels.
    pub bbox: [f32; 4],
}

/// A COCO instances ground-truth file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoGroundTruth {
    /// The annotated frames.
    pub images: Vec<CocoImage>,
    /// The boxes.
    pub annotations: Vec<CocoAnnotation>,
    /// The four benchmark classes.
    pub categories: Vec<CocoCategory>,
    /// The ignored regions per image; `None` (and no key in the JSON) when they were exported
    /// as crowd annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored_regions: Option<Vec<CocoIgnoredRegion>>,
}

/// Where the export puts the ignored regions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IgnoredRegionsAs {
    /// In the extra top-level `ignored_regions` list.
    #[default]
    Key,
    /// As `iscrowd = 1` annotations of every category.
    Crowd,
}

impl CocoGroundTruth {
    /// The ground truth as the JSON text `cargo xtask dataset to-coco` writes (and `cargo xtask
    /// eval` reads its ground truth from).
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(self).expect("a COCO ground truth always serializes")
    }

    /// The ignored regions of each image id, as corner boxes (none when they were exported as
    /// crowd annotations).
    pub fn ignored_regions_by_image(&self) -> BTreeMap<u64, Vec<BoxXyxy>> {
        let mut map: BTreeMap<u64, Vec<BoxXyxy>> = BTreeMap::new();
        for region in self.ignored_regions.iter().flatten() {
            let [x, y, w, h] = region.bbox;
            map.entry(region.image_id)
                .or_default()
                .push(BoxXyxy::new(x, y, x + w, y + h));
        }
        map
    }

    /// The image id of a (sequence, frame), if exported.
    pub fn image_id(&self, sequence: &str, frame: u32) -> Option<u64> {
        self.images
            .iter()
            .find(|image| image.sequence == sequence && image.frame == frame)
            .map(|image| image.id)
    }
}

/// The four categories with their COCO ids.
pub fn coco_categories() -> Vec<CocoCategory> {
    VehicleClass::ALL
        .iter()
        .map(|class| CocoCategory {
            id: class.coco_category_id(),
            name: class.name().to_string(),
            supercategory: "vehicle".to_string(),
        })
        .collect()
}

/// `[x, y, w, h]` of a box clipped to the frame; coordinates are kept exactly as written in the
/// file where no clipping is needed (so `w` is not recomputed as `(x + w) - x` in `f32`).
fn clipped_xywh(rect: &DetracBox, width: f32, height: f32) -> [f32; 4] {
    let clip_axis = |start: f32, size: f32, limit: f32| {
        if start >= 0.0 && start + size <= limit {
            (start, size)
        } else {
            let clipped_start = start.clamp(0.0, limit);
            let clipped_end = (start + size).clamp(0.0, limit);
            (clipped_start, clipped_end - clipped_start)
        }
    };
    let (x, w) = clip_axis(rect.left, rect.width, width);
    let (y, h) = clip_axis(rect.top, rect.height, height);
    [x, y, w, h]
}

/// Exports the annotated frames (every `frame_step`-th) of the sequences as COCO ground truth,
/// with the ignored regions in the `ignored_regions` key ([`IgnoredRegionsAs::Key`]).
///
/// The frame size is read from the first annotated frame's JPEG header of each sequence;
/// `root` makes `file_name` relative.
pub fn to_coco(
    sequences: &[LoadedSequence],
    root: &Path,
    frame_step: usize,
) -> Result<CocoGroundTruth, DetracError> {
    to_coco_with(sequences, root, frame_step, IgnoredRegionsAs::Key)
}

/// [`to_coco`] with the ignored regions where `regions_as` says.
pub fn to_coco_with(
    sequences: &[LoadedSequence],
    root: &Path,
    frame_step: usize,
    regions_as: IgnoredRegionsAs,
) -> Result<CocoGroundTruth, DetracError> {
    if frame_step == 0 {
        return Err(DetracError::InvalidConfig {
            reason: "frame_step must be at least 1".to_string(),
        });
    }
    let mut ground_truth = CocoGroundTruth {
        images: Vec::new(),
        annotations: Vec::new(),
        categories: coco_categories(),
        ignored_regions: None,
    };
    let mut ignored_regions = Vec::new();
    for sequence in sequences {
        let annotation = &sequence.annotation;
        let first =
            annotation
                .frames
                .keys()
                .next()
                .copied()
                .ok_or_else(|| DetracError::EmptySequence {
                    path: sequence.paths.annotation.clone(),
                    sequence: annotation.name.clone(),
                })?;
        let first_path = sequence.paths.image_path(first);
        if !first_path.is_file() {
            return Err(DetracError::MissingImage {
                path: first_path,
                sequence: annotation.name.clone(),
                frame: first,
            });
        }
        let (width, height) = image::image_dimensions(&first_path)
            .map_err(|source| DetracError::image(first_path.clone(), source))?;
        let ignored: Vec<[f32; 4]> = annotation
            .ignored_regions
            .iter()
            .map(|region| clipped_xywh(region, width as f32, height as f32))
            .collect();
        for frame in annotation.frames.values().step_by(frame_step) {
            let image_id = ground_truth.images.len() as u64 + 1;
            let path = sequence.paths.image_path(frame.num);
            let file_name = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            ground_truth.images.push(CocoImage {
                id: image_id,
                file_name,
                width,
                height,
                sequence: annotation.name.clone(),
                frame: frame.num,
            });
            for target in &frame.targets {
                let bbox = clipped_xywh(&target.bbox, width as f32, height as f32);
                if bbox[2] <= 0.0 || bbox[3] <= 0.0 {
                    continue;
                }
                ground_truth.annotations.push(CocoAnnotation {
                    id: ground_truth.annotations.len() as u64 + 1,
                    image_id,
                    category_id: target.class().coco_category_id(),
                    bbox,
                    area: bbox[2] * bbox[3],
                    iscrowd: 0,
                });
            }
            match regions_as {
                IgnoredRegionsAs::Key => {
                    ignored_regions.extend(
                        ignored
                            .iter()
                            .map(|&bbox| CocoIgnoredRegion { image_id, bbox }),
                    );
                }
                IgnoredRegionsAs::Crowd => {
                    // As ant-metrics' `IgnorePolicy::AsCrowd`: regions with an area, after the
                    // image's own boxes, region by region, every category of each.
                    for bbox in ignored.iter().filter(|bbox| bbox[2] > 0.0 && bbox[3] > 0.0) {
                        for category in &ground_truth.categories {
                            ground_truth.annotations.push(CocoAnnotation {
                                id: ground_truth.annotations.len() as u64 + 1,
                                image_id,
                                category_id: category.id,
                                bbox: *bbox,
                                area: bbox[2] * bbox[3],
                                iscrowd: 1,
                            });
                        }
                    }
                }
            }
        }
    }
    if regions_as == IgnoredRegionsAs::Key {
        ground_truth.ignored_regions = Some(ignored_regions);
    }
    Ok(ground_truth)
}
