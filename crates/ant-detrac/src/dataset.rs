//! Burn `Dataset`s over UA-DETRAC sequences: single frames (standalone and supernet training,
//! evaluation) and clips of a key frame followed by non-key frames (the joint stage of ANT,
//! Sec. 3.2, which trains with a fixed key/non-key scheduler, "1/3" in the paper).
//!
//! Items are cheap references ([`FrameRef`], [`ClipRef`]): the image path, the ground truth in
//! frame pixels, the ignored regions and the flip decision. Decoding, resizing and
//! normalisation happen in [`load_frame`], which the batcher runs in parallel with rayon.
//!
//! Only annotated frames become items: a frame number without a `<frame>` element is never
//! used, neither as a sample nor as an empty negative, and clips only span annotated frames.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ant_geom::{BoxXyxy, Letterbox};
use burn::data::dataset::Dataset;
use image::RgbImage;

use crate::annotation::SequenceAnnotation;
use crate::classes::VehicleClass;
use crate::error::DetracError;
use crate::layout::{ReleaseLayout, SequencePaths};
use crate::split::Split;
use crate::transform::{
    InputTransform, boxes_to_input, flip_boxes_horizontal, flip_image_horizontal,
};

/// A sequence's files and parsed annotation.
#[derive(Debug, Clone)]
pub struct LoadedSequence {
    /// Where its files are.
    pub paths: SequencePaths,
    /// The parsed annotation.
    pub annotation: SequenceAnnotation,
}

impl LoadedSequence {
    /// Locates and parses one sequence of a release.
    pub fn load(layout: &ReleaseLayout, sequence: &str) -> Result<Self, DetracError> {
        let paths = layout.locate(sequence)?;
        let annotation = SequenceAnnotation::from_file(&paths.annotation)?;
        Ok(Self { paths, annotation })
    }

    /// Parses an annotation file whose frames are in `image_dir`.
    pub fn from_files(annotation: &Path, image_dir: &Path) -> Result<Self, DetracError> {
        let parsed = SequenceAnnotation::from_file(annotation)?;
        Ok(Self {
            paths: SequencePaths {
                name: parsed.name.clone(),
                annotation: annotation.to_path_buf(),
                image_dir: image_dir.to_path_buf(),
            },
            annotation: parsed,
        })
    }
}

impl LoadedSequence {
    /// Every image of the sequence in frame order, annotated or not, for streaming inference
    /// (the key-frame scheduler sees the real video); unannotated frames have no targets and
    /// `annotated == false`. Frames are the `img%05d.jpg` files found in the image directory.
    pub fn video_frames(&self) -> Result<Vec<FrameRef>, DetracError> {
        let dir = &self.paths.image_dir;
        let listing = std::fs::read_dir(dir).map_err(|source| DetracError::io(dir, source))?;
        let mut nums = Vec::new();
        for entry in listing {
            let entry = entry.map_err(|source| DetracError::io(dir, source))?;
            let file_name = entry.file_name();
            let num = file_name
                .to_str()
                .and_then(|name| name.strip_prefix("img"))
                .and_then(|rest| rest.strip_suffix(".jpg"))
                .filter(|digits| digits.len() == 5)
                .and_then(|digits| digits.parse::<u32>().ok());
            if let Some(num) = num.filter(|num| *num > 0) {
                nums.push(num);
            }
        }
        nums.sort_unstable();
        let first = self.annotation.frames.keys().next().copied().unwrap_or(1);
        if nums.is_empty() {
            return Err(DetracError::MissingImage {
                path: self.paths.image_path(first),
                sequence: self.annotation.name.clone(),
                frame: first,
            });
        }
        let name: Arc<str> = Arc::from(self.annotation.name.as_str());
        let ignored: Arc<[BoxXyxy]> = self.annotation.ignored_boxes().into();
        Ok(nums
            .into_iter()
            .map(|num| {
                if self.annotation.is_annotated(num) {
                    frame_ref(self, &name, &ignored, num)
                } else {
                    FrameRef {
                        sequence: name.clone(),
                        frame: num,
                        image_path: self.paths.image_path(num),
                        targets: Vec::new(),
                        ignored_regions: ignored.clone(),
                        flip: false,
                        jitter: ColorJitter::IDENTITY,
                        annotated: false,
                    }
                }
            })
            .collect())
    }
}

/// Loads every sequence of one split present in a release (split from `ROOT/splits.tsv` or
/// the official list).
pub fn load_split(
    layout: &ReleaseLayout,
    split: Split,
) -> Result<Vec<LoadedSequence>, DetracError> {
    layout
        .split_sequences(split)?
        .into_iter()
        .map(|paths| {
            let annotation = SequenceAnnotation::from_file(&paths.annotation)?;
            Ok(LoadedSequence { paths, annotation })
        })
        .collect()
}

/// One ground-truth vehicle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GtBox {
    /// The box in pixels (frame pixels in a [`FrameRef`], input pixels in a sample).
    pub bbox: BoxXyxy,
    /// The benchmark class.
    pub class: VehicleClass,
    /// The track id in its sequence.
    pub track_id: u32,
}

/// One annotated frame, not yet decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameRef {
    /// The sequence name.
    pub sequence: Arc<str>,
    /// The 1-based frame number.
    pub frame: u32,
    /// The JPEG of the frame.
    pub image_path: PathBuf,
    /// The ground truth, in frame pixels.
    pub targets: Vec<GtBox>,
    /// The ignored regions of the sequence, in frame pixels.
    pub ignored_regions: Arc<[BoxXyxy]>,
    /// Whether to mirror the frame (training augmentation).
    pub flip: bool,
    /// Photometric jitter of the frame (training augmentation; the identity otherwise).
    pub jitter: ColorJitter,
    /// Whether the frame has a `<frame>` element. Always true in the datasets; false only for
    /// the unannotated frames of [`LoadedSequence::video_frames`], which must not be scored or
    /// used as negatives.
    pub annotated: bool,
}

/// A clip: `frames[0]` is the key frame, the rest are the non-key frames that follow it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipRef {
    /// Consecutive annotated frames, key frame first; all share one flip decision.
    pub frames: Vec<FrameRef>,
}

/// The ground truth of a decoded frame, in network-input pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameTargets {
    /// The sequence name.
    pub sequence: Arc<str>,
    /// The 1-based frame number.
    pub frame: u32,
    /// The vehicles, in input pixels, clipped to the resized image; boxes left empty by the
    /// clip are dropped.
    pub boxes: Vec<BoxXyxy>,
    /// The 0-based class index of each box ([`VehicleClass::index`]).
    pub classes: Vec<usize>,
    /// The ignored regions in input pixels (no loss there; detections there are discarded).
    pub ignored_regions: Vec<BoxXyxy>,
    /// The map from frame pixels to input pixels; its `inverse` maps predictions back (to the
    /// mirrored frame when `flipped`).
    pub letterbox: Letterbox,
    /// Whether the frame was mirrored.
    pub flipped: bool,
    /// Whether the frame is annotated (see [`FrameRef::annotated`]).
    pub annotated: bool,
}

/// A decoded, transformed frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameSample {
    /// Normalised CHW pixels, `3 * input_height * input_width` values.
    pub image: Vec<f32>,
    /// Ground truth in input pixels.
    pub targets: FrameTargets,
}

/// Decodes a frame's JPEG into RGB, with errors naming the file, sequence and frame.
pub fn decode_frame(item: &FrameRef) -> Result<RgbImage, DetracError> {
    let path = &item.image_path;
    if !path.is_file() {
        return Err(DetracError::MissingImage {
            path: path.clone(),
            sequence: item.sequence.to_string(),
            frame: item.frame,
        });
    }
    decode_image(path)
}

/// Decodes an image file (JPEG, PNG, ...) into RGB. A JPEG cut short (no end-of-image
/// marker, which decoders otherwise fill in with grey) is an error, like one that does not
/// decode; every error names the file.
pub fn decode_image(path: &Path) -> Result<RgbImage, DetracError> {
    let bytes = std::fs::read(path).map_err(|source| DetracError::io(path, source))?;
    if is_truncated_jpeg(&bytes) {
        return Err(DetracError::TruncatedJpeg {
            path: path.to_path_buf(),
        });
    }
    let image = image::load_from_memory(&bytes)
        .map_err(|source| DetracError::image(path.to_path_buf(), source))?;
    Ok(image.into_rgb8())
}

/// Whether `bytes` start like a JPEG (SOI marker) but lack the EOI marker at the end (trailing
/// zero padding allowed).
fn is_truncated_jpeg(bytes: &[u8]) -> bool {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let end = bytes
        .iter()
        .rposition(|byte| *byte != 0)
        .map_or(0, |last| last + 1);
    !bytes[..end].ends_with(&[0xFF, 0xD9])
}

/// Decodes, flips (if asked), letterboxes and normalises one frame.
pub fn load_frame(item: &FrameRef, transform: &InputTransform) -> Result<FrameSample, DetracError> {
    let mut image = decode_frame(item)?;
    let width = image.width() as f32;
    let mut boxes: Vec<BoxXyxy> = item.targets.iter().map(|target| target.bbox).collect();
    let mut ignored: Vec<BoxXyxy> = item.ignored_regions.to_vec();
    item.jitter.apply(&mut image);
    if item.flip {
        flip_image_horizontal(&mut image);
        boxes = flip_boxes_horizontal(&boxes, width);
        ignored = flip_boxes_horizontal(&ignored, width);
    }
    let (input, letterbox) = transform.letterbox_image(&image);
    let input_boxes = boxes_to_input(&letterbox, &boxes);
    let mut kept_boxes = Vec::with_capacity(input_boxes.len());
    let mut classes = Vec::with_capacity(input_boxes.len());
    for (rect, target) in input_boxes.into_iter().zip(&item.targets) {
        if rect.width() > 0.0 && rect.height() > 0.0 {
            kept_boxes.push(rect);
            classes.push(target.class.index());
        }
    }
    let ignored_regions = boxes_to_input(&letterbox, &ignored)
        .into_iter()
        .filter(|rect| rect.width() > 0.0 && rect.height() > 0.0)
        .collect();
    Ok(FrameSample {
        image: transform.normalize(&input),
        targets: FrameTargets {
            sequence: item.sequence.clone(),
            frame: item.frame,
            boxes: kept_boxes,
            classes,
            ignored_regions,
            letterbox,
            flipped: item.flip,
            annotated: item.annotated,
        },
    })
}

/// Photometric jitter: a brightness factor and a per-channel gain (a colour cast), then a
/// saturation factor (mixing with the pixel's luma) and a contrast factor (around the frame's
/// mean luma). Real traffic video varies in exactly these between cameras, weather and time of
/// day; the detector should not learn one scene's palette.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColorJitter {
    /// Multiplies every channel.
    pub brightness: f32,
    /// Scales the distance from the frame's mean luma.
    pub contrast: f32,
    /// Scales the distance from each pixel's luma (0: grey).
    pub saturation: f32,
    /// Per-channel (R, G, B) gain.
    pub gains: [f32; 3],
}

impl Default for ColorJitter {
    fn default() -> Self {
        Self::IDENTITY
    }
}

impl ColorJitter {
    /// No change.
    pub const IDENTITY: Self = Self {
        brightness: 1.0,
        contrast: 1.0,
        saturation: 1.0,
        gains: [1.0; 3],
    };

    /// Whether applying it changes nothing.
    pub fn is_identity(&self) -> bool {
        *self == Self::IDENTITY
    }

    /// A jitter of the given strength from six uniforms in [0, 1): brightness, contrast and
    /// saturation in `1 +- strength`, gains in `1 +- strength / 3`.
    pub fn from_uniforms(strength: f32, uniforms: [f32; 6]) -> Self {
        let factor = |uniform: f32, range: f32| 1.0 + range * (2.0 * uniform - 1.0);
        Self {
            brightness: factor(uniforms[0], strength),
            contrast: factor(uniforms[1], strength),
            saturation: factor(uniforms[2], strength),
            gains: [3, 4, 5].map(|index| factor(uniforms[index], strength / 3.0)),
        }
    }

    /// Applies the jitter in place (8-bit, saturating).
    pub fn apply(&self, image: &mut RgbImage) {
        if self.is_identity() || image.width() == 0 || image.height() == 0 {
            return;
        }
        let luma = |pixel: [f32; 3]| 0.299 * pixel[0] + 0.587 * pixel[1] + 0.114 * pixel[2];
        let scale = self.gains.map(|gain| gain * self.brightness);
        let shifted = |pixel: &image::Rgb<u8>| -> [f32; 3] {
            let value = [0, 1, 2].map(|channel| f32::from(pixel[channel]) * scale[channel]);
            let grey = luma(value);
            value.map(|channel| grey + (channel - grey) * self.saturation)
        };
        let total: f64 = image
            .pixels()
            .map(|pixel| f64::from(luma(shifted(pixel))))
            .sum();
        let mean = (total / f64::from(image.width() * image.height())) as f32;
        for pixel in image.pixels_mut() {
            let value = shifted(pixel);
            for channel in 0..3 {
                let contrasted = mean + (value[channel] - mean) * self.contrast;
                pixel[channel] = contrasted.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// Training augmentation decisions (horizontal flip, colour jitter), deterministic in (seed,
/// epoch, item index), so that a resumed run sees the same frames as an uninterrupted one.
#[derive(Debug)]
struct Augment {
    flip_probability: f32,
    jitter_strength: f32,
    seed: u64,
    epoch: AtomicU64,
}

impl Augment {
    fn new(flip_probability: f32, seed: u64) -> Self {
        Self {
            flip_probability,
            jitter_strength: 0.0,
            seed,
            epoch: AtomicU64::new(0),
        }
    }

    fn hash(&self, index: usize) -> u64 {
        let epoch = self.epoch.load(Ordering::Relaxed);
        splitmix64(self.seed ^ splitmix64(epoch.wrapping_mul(0x9E37_79B9) ^ index as u64))
    }

    fn uniform(value: u64) -> f32 {
        (value >> 40) as f32 / (1u64 << 24) as f32
    }

    fn flip(&self, index: usize) -> bool {
        self.flip_probability > 0.0 && Self::uniform(self.hash(index)) < self.flip_probability
    }

    fn jitter(&self, index: usize) -> ColorJitter {
        if self.jitter_strength <= 0.0 {
            return ColorJitter::IDENTITY;
        }
        // A stream of its own, independent of the flip decision.
        let mut state = self.hash(index) ^ 0xC010_0A11_7E55_0000;
        let uniforms = [0; 6].map(|_: u8| {
            state = splitmix64(state);
            Self::uniform(state)
        });
        ColorJitter::from_uniforms(self.jitter_strength, uniforms)
    }
}

/// A well-mixed 64-bit hash for per-item decisions (and the synthetic generator's seeds):
/// the first output of SplitMix64 seeded with `value`.
pub(crate) fn splitmix64(value: u64) -> u64 {
    use rand_xoshiro::rand_core::{RngCore, SeedableRng};
    rand_xoshiro::SplitMix64::seed_from_u64(value).next_u64()
}

/// The frame references of one annotated frame of a sequence.
fn frame_ref(
    sequence: &LoadedSequence,
    name: &Arc<str>,
    ignored: &Arc<[BoxXyxy]>,
    num: u32,
) -> FrameRef {
    let frame = &sequence.annotation.frames[&num];
    FrameRef {
        sequence: name.clone(),
        frame: num,
        image_path: sequence.paths.image_path(num),
        targets: frame
            .targets
            .iter()
            .map(|target| GtBox {
                bbox: target.bbox.to_xyxy(),
                class: target.class(),
                track_id: target.id,
            })
            .collect(),
        ignored_regions: ignored.clone(),
        flip: false,
        jitter: ColorJitter::IDENTITY,
        annotated: true,
    }
}

/// Options of a [`FrameDataset`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameDatasetConfig {
    /// Keep every `frame_step`-th annotated frame of each sequence (1 keeps all).
    pub frame_step: usize,
    /// Probability of a horizontal flip per item and epoch (0 for evaluation).
    pub flip_probability: f32,
    /// Seed of the flip decisions.
    pub seed: u64,
}

impl Default for FrameDatasetConfig {
    fn default() -> Self {
        Self {
            frame_step: 1,
            flip_probability: 0.0,
            seed: 0,
        }
    }
}

/// Annotated frames of some sequences, one item per frame.
#[derive(Debug)]
pub struct FrameDataset {
    items: Vec<FrameRef>,
    augment: Augment,
}

impl FrameDataset {
    /// All annotated frames (every `frame_step`-th) of the given sequences.
    pub fn new(
        sequences: &[LoadedSequence],
        config: FrameDatasetConfig,
    ) -> Result<Self, DetracError> {
        if config.frame_step == 0 {
            return Err(DetracError::InvalidConfig {
                reason: "frame_step must be at least 1".to_string(),
            });
        }
        let mut items = Vec::new();
        for sequence in sequences {
            let name: Arc<str> = Arc::from(sequence.annotation.name.as_str());
            let ignored: Arc<[BoxXyxy]> = sequence.annotation.ignored_boxes().into();
            for num in sequence.annotation.frames.keys().step_by(config.frame_step) {
                items.push(frame_ref(sequence, &name, &ignored, *num));
            }
        }
        if items.is_empty() {
            return Err(DetracError::InvalidConfig {
                reason: "no annotated frame in the given sequences".to_string(),
            });
        }
        Ok(Self {
            items,
            augment: Augment::new(config.flip_probability, config.seed),
        })
    }

    /// Adds colour jitter of the given strength (0 disables it) to the training items; see
    /// [`ColorJitter::from_uniforms`].
    pub fn with_color_jitter(mut self, strength: f32) -> Self {
        self.augment.jitter_strength = strength.max(0.0);
        self
    }

    /// Sets the epoch, which re-draws the augmentation decisions.
    pub fn set_epoch(&self, epoch: u64) {
        self.augment.epoch.store(epoch, Ordering::Relaxed);
    }

    /// The items without augmentation decisions.
    pub fn items(&self) -> &[FrameRef] {
        &self.items
    }

    /// Checks that every frame's JPEG exists (not that it decodes), before a long run.
    pub fn check_images(&self) -> Result<(), DetracError> {
        check_images(&self.items)
    }
}

fn check_images(items: &[FrameRef]) -> Result<(), DetracError> {
    match items.iter().find(|item| !item.image_path.is_file()) {
        Some(item) => Err(DetracError::MissingImage {
            path: item.image_path.clone(),
            sequence: item.sequence.to_string(),
            frame: item.frame,
        }),
        None => Ok(()),
    }
}

impl Dataset<FrameRef> for FrameDataset {
    fn get(&self, index: usize) -> Result<FrameRef, burn::data::dataset::DatasetError> {
        let mut item = self.items[index].clone();
        item.flip = self.augment.flip(index);
        item.jitter = self.augment.jitter(index);
        Ok(item)
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

/// Options of a [`ClipDataset`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipDatasetConfig {
    /// Frames per clip: one key frame then `clip_len - 1` non-key frames (3 is the paper's
    /// fixed 1/3 scheduler).
    pub clip_len: usize,
    /// Distance in frame numbers between consecutive frames of a clip (1: consecutive frames).
    pub frame_gap: u32,
    /// Distance in frame numbers between the key frames of successive clips of a sequence;
    /// `clip_len * frame_gap` gives non-overlapping clips.
    pub clip_step: u32,
    /// Probability of mirroring a whole clip.
    pub flip_probability: f32,
    /// Seed of the flip decisions.
    pub seed: u64,
}

impl ClipDatasetConfig {
    /// Non-overlapping clips of `clip_len` consecutive frames, no flips.
    pub fn consecutive(clip_len: usize) -> Self {
        Self {
            clip_len,
            frame_gap: 1,
            clip_step: clip_len as u32,
            flip_probability: 0.0,
            seed: 0,
        }
    }
}

/// Clips of annotated frames: a key frame and the non-key frames that follow it.
#[derive(Debug)]
pub struct ClipDataset {
    clips: Vec<ClipRef>,
    augment: Augment,
}

impl ClipDataset {
    /// Every clip whose frames (`key`, `key + gap`, ...) are all annotated, key frames at
    /// least `clip_step` apart.
    pub fn new(
        sequences: &[LoadedSequence],
        config: ClipDatasetConfig,
    ) -> Result<Self, DetracError> {
        if config.clip_len == 0 || config.frame_gap == 0 || config.clip_step == 0 {
            return Err(DetracError::InvalidConfig {
                reason: format!(
                    "clip_len ({}), frame_gap ({}) and clip_step ({}) must be at least 1",
                    config.clip_len, config.frame_gap, config.clip_step
                ),
            });
        }
        let mut clips = Vec::new();
        for sequence in sequences {
            let annotation = &sequence.annotation;
            let name: Arc<str> = Arc::from(annotation.name.as_str());
            let ignored: Arc<[BoxXyxy]> = annotation.ignored_boxes().into();
            let mut next_key = 0u32;
            for &key in annotation.frames.keys() {
                if key < next_key {
                    continue;
                }
                let nums: Vec<u32> = (0..config.clip_len as u32)
                    .map(|offset| key + offset * config.frame_gap)
                    .collect();
                if nums.iter().all(|num| annotation.is_annotated(*num)) {
                    clips.push(ClipRef {
                        frames: nums
                            .iter()
                            .map(|num| frame_ref(sequence, &name, &ignored, *num))
                            .collect(),
                    });
                    next_key = key + config.clip_step;
                }
            }
        }
        if clips.is_empty() {
            return Err(DetracError::InvalidConfig {
                reason: format!(
                    "no clip of {} annotated frames {} apart in the given sequences",
                    config.clip_len, config.frame_gap
                ),
            });
        }
        Ok(Self {
            clips,
            augment: Augment::new(config.flip_probability, config.seed),
        })
    }

    /// Adds colour jitter of the given strength (0 disables it), one draw per clip.
    pub fn with_color_jitter(mut self, strength: f32) -> Self {
        self.augment.jitter_strength = strength.max(0.0);
        self
    }

    /// Sets the epoch, which re-draws the augmentation decisions.
    pub fn set_epoch(&self, epoch: u64) {
        self.augment.epoch.store(epoch, Ordering::Relaxed);
    }

    /// The clips without augmentation decisions.
    pub fn clips(&self) -> &[ClipRef] {
        &self.clips
    }

    /// Checks that every frame's JPEG exists.
    pub fn check_images(&self) -> Result<(), DetracError> {
        self.clips
            .iter()
            .try_for_each(|clip| check_images(&clip.frames))
    }
}

impl Dataset<ClipRef> for ClipDataset {
    fn get(&self, index: usize) -> Result<ClipRef, burn::data::dataset::DatasetError> {
        let mut clip = self.clips[index].clone();
        let flip = self.augment.flip(index);
        let jitter = self.augment.jitter(index);
        for frame in &mut clip.frames {
            frame.flip = flip;
            frame.jitter = jitter;
        }
        Ok(clip)
    }

    fn len(&self) -> usize {
        self.clips.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_hash_as_splitmix64_does() {
        // SplitMix64's first outputs for seeds 0 and 1 (the reference C implementation).
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(1), 0x910a_2dec_8902_5cc1);
    }

    fn image() -> RgbImage {
        RgbImage::from_fn(4, 3, |x, y| {
            image::Rgb([(x * 60) as u8, (y * 100) as u8, (x * 20 + y * 30) as u8])
        })
    }

    #[test]
    fn should_leave_the_frame_unchanged_with_the_identity() {
        let mut jittered = image();
        ColorJitter::IDENTITY.apply(&mut jittered);
        assert_eq!(jittered, image());
        assert!(ColorJitter::from_uniforms(0.3, [0.5; 6]).is_identity());
    }

    #[test]
    fn should_scale_brightness_and_remove_colour_at_zero_saturation() {
        let mut darker = image();
        ColorJitter {
            brightness: 0.5,
            ..ColorJitter::IDENTITY
        }
        .apply(&mut darker);
        for (before, after) in image().pixels().zip(darker.pixels()) {
            for channel in 0..3 {
                let expected = (f32::from(before[channel]) * 0.5).round() as u8;
                assert_eq!(after[channel], expected);
            }
        }
        let mut grey = image();
        ColorJitter {
            saturation: 0.0,
            ..ColorJitter::IDENTITY
        }
        .apply(&mut grey);
        for pixel in grey.pixels() {
            assert!(pixel[0].abs_diff(pixel[1]) <= 1 && pixel[1].abs_diff(pixel[2]) <= 1);
        }
        // Zero contrast: every pixel becomes the mean luma.
        let mut flat = image();
        ColorJitter {
            contrast: 0.0,
            ..ColorJitter::IDENTITY
        }
        .apply(&mut flat);
        let first = flat.get_pixel(0, 0).0;
        assert!(flat.pixels().all(|pixel| pixel.0 == first));
        assert!(first[0] > 0);
    }

    #[test]
    fn should_draw_jitter_deterministically_per_epoch_and_item_within_range() {
        let mut augment = Augment::new(0.5, 7);
        assert!(augment.jitter(3).is_identity(), "strength 0 is off");
        augment.jitter_strength = 0.3;
        let first = augment.jitter(3);
        assert_eq!(first, augment.jitter(3));
        assert_ne!(first, augment.jitter(4));
        augment.epoch.store(1, Ordering::Relaxed);
        assert_ne!(first, augment.jitter(3));
        for index in 0..200 {
            let jitter = augment.jitter(index);
            for factor in [jitter.brightness, jitter.contrast, jitter.saturation] {
                assert!((0.7..=1.3).contains(&factor), "{factor}");
            }
            for gain in jitter.gains {
                assert!((0.9..=1.1).contains(&gain), "{gain}");
            }
        }
        // The flip decisions do not depend on the jitter.
        let flips: Vec<bool> = (0..50).map(|index| augment.flip(index)).collect();
        augment.jitter_strength = 0.0;
        assert_eq!(
            flips,
            (0..50).map(|index| augment.flip(index)).collect::<Vec<_>>()
        );
    }
}
