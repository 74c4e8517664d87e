//! A synthetic UA-DETRAC: procedurally rendered traffic from a static camera, written in the
//! exact on-disk format of the release (v3 XML + JPEG), so the real loader reads it.
//!
//! This is the embedded default data of the project: the real UA-DETRAC (Wen et al., CVIU 2020)
//! is large and licensed for non-commercial research, while the ANT pipeline (paper Sec. 3) needs
//! video with boxes of four vehicle classes to train and evaluate on two CPU cores.
//!
//! Each sequence is a road seen from the side by a fixed camera: sky, a background band with
//! buildings and a parking strip, four lanes (the far two drive left, the near two right) with
//! perspective (far lanes are smaller and slower in pixels). Vehicles of the four benchmark
//! classes (with v3 fine-grained types) have distinct shapes, sizes and colours; they enter at
//! one edge and leave at the other, nearer vehicles occlude farther ones (recorded as
//! `<occlusion>` regions). Lighting (weather: sunny, cloudy, rainy with streaks, night with
//! lights) and sensor noise vary per sequence; noise is redrawn per frame. Ignored regions cover
//! the parking strip (parked cars drawn there are not annotated) and, in some sequences, the far
//! end of the farthest lane: vehicles whose box lies mostly inside one are not annotated, as in
//! DETRAC.
//!
//! Sequences differ in activity, from near-static (few slow vehicles, a red light that stops
//! everything for long stretches) to busy (dense, fast traffic), so that an adaptive key-frame
//! policy has something to adapt to. One sequence in four has a run of unannotated frames
//! (images without a `<frame>` element), like MVI_39811 of the real release.
//!
//! Everything is deterministic for a seed (ChaCha8 streams derived from the seed, the sequence
//! and the frame); frames are rendered and encoded in parallel.

use std::collections::BTreeMap;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use ant_geom::BoxXyxy;
use image::{Rgb, RgbImage};

use crate::annotation::{
    DetracBox, FrameAnnotation, Occlusion, Schema, SequenceAnnotation, Target,
};
use crate::classes::VehicleType;
use crate::dataset::splitmix64;
use crate::error::DetracError;
use crate::layout::{annotation_dir_name, annotation_file_name, image_dir_name, image_file_name};
use crate::split::{Split, SplitEntry, SplitList};

/// Options of the generator (the defaults are the project's embedded dataset).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SynthConfig {
    /// Seed of everything.
    pub seed: u64,
    /// Number of sequences; `round(0.4 * n)` of them (indices 1, 4, 7, ...) form the test split.
    pub sequences: usize,
    /// Frames (images) per sequence.
    pub frames: u32,
    /// Frame width in pixels (default half of DETRAC's 960).
    pub width: u32,
    /// Frame height in pixels (default half of DETRAC's 540).
    pub height: u32,
    /// JPEG quality, 1..=100.
    pub jpeg_quality: u8,
    /// How close the camera is: vehicle sizes (and speeds) in pixels scale with it, the lane
    /// lines stay where they are. 1 puts a far sedan at about 54x17 px in a 480x270 frame;
    /// 1.6 makes vehicles at a 256-px model input about as tall as real UA-DETRAC vehicles
    /// at EfficientDet-D0's 512-px input.
    #[serde(default = "unit_zoom")]
    pub zoom: f32,
}

fn unit_zoom() -> f32 {
    1.0
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            sequences: 8,
            frames: 60,
            width: 480,
            height: 270,
            jpeg_quality: 90,
            zoom: 1.0,
        }
    }
}

/// What was generated for one sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthSequenceInfo {
    /// The sequence name (`MVI_9xxxx`).
    pub name: String,
    /// Its split.
    pub split: Split,
    /// Activity level, 0 (near-static) to 1 (busy).
    pub activity: f32,
    /// `sunny`, `cloudy`, `rainy` or `night`.
    pub weather: String,
    /// Number of images.
    pub image_frames: u32,
    /// Number of annotated frames.
    pub annotated_frames: usize,
    /// Number of annotated boxes.
    pub targets: usize,
    /// Mean vehicle displacement between consecutive frames, in pixels per frame (over the
    /// vehicles present in both frames): how much the scene moves.
    pub mean_motion: f32,
    /// Fraction of consecutive frame pairs where no vehicle moves, enters or leaves (only
    /// lighting and sensor noise change).
    pub static_fraction: f32,
}

/// What [`write_dataset`] wrote (also saved as `synth.json` in the output directory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthSummary {
    /// The options used.
    pub config: SynthConfig,
    /// One entry per sequence.
    pub sequences: Vec<SynthSequenceInfo>,
}

/// A generated sequence held in memory.
#[derive(Debug, Clone)]
pub struct SynthSequence {
    /// The annotation, exactly as written to XML.
    pub annotation: SequenceAnnotation,
    /// Its split.
    pub split: Split,
    /// Activity level, 0..1.
    pub activity: f32,
    /// The rendered frames; `frames[k]` is frame number `k + 1`.
    pub frames: Vec<RgbImage>,
}

/// The name of synthetic sequence `index` (0-based): `MVI_90001`, `MVI_90002`, ...
pub fn sequence_name(index: usize) -> String {
    format!("MVI_9{:04}", index + 1)
}

/// The split of synthetic sequence `index` among `count`: every third sequence from index 1 is
/// a test sequence, up to `round(0.4 * count)` of them (the official 60/40 ratio).
pub fn sequence_split(index: usize, count: usize) -> Split {
    let test_count = ((count as f32) * 0.4).round() as usize;
    let test_indices: Vec<usize> = (0..count)
        .filter(|candidate| candidate % 3 == 1)
        .take(test_count)
        .collect();
    if test_indices.contains(&index) {
        Split::Test
    } else {
        Split::Train
    }
}

/// Generates one sequence in memory (deterministic in `config.seed` and `index`).
pub fn generate_sequence(config: &SynthConfig, index: usize) -> Result<SynthSequence, DetracError> {
    validate(config)?;
    let scene = Scene::new(config, index);
    let states = scene.simulate();
    let annotation = scene.annotate(&states);
    let frames = (0..config.frames as usize)
        .into_par_iter()
        .map(|frame_index| scene.render(&states[frame_index], frame_index as u32 + 1))
        .collect();
    Ok(SynthSequence {
        annotation,
        split: scene.split,
        activity: scene.activity,
        frames,
    })
}

fn validate(config: &SynthConfig) -> Result<(), DetracError> {
    let reason = if config.sequences == 0 {
        "--sequences must be at least 1"
    } else if config.frames == 0 {
        "--frames must be at least 1"
    } else if config.frames > 99_999 {
        "--frames must be at most 99999 (img%05d.jpg)"
    } else if config.width < 160 || config.height < 90 {
        "frames must be at least 160x90 pixels"
    } else if config.jpeg_quality == 0 || config.jpeg_quality > 100 {
        "jpeg quality must be in 1..=100"
    } else if !(0.5..=2.5).contains(&config.zoom) {
        "zoom must be in 0.5..=2.5"
    } else {
        return Ok(());
    };
    Err(DetracError::InvalidConfig {
        reason: reason.to_string(),
    })
}

/// Writes a whole synthetic release under `out`:
/// `Insight-MVT_Annotation_{Train,Test}/MVI_9xxxx/img%05d.jpg`,
/// `DETRAC-{Train,Test}-Annotations-XML-v3/MVI_9xxxx_v3.xml`, `splits.tsv` and `synth.json`.
pub fn write_dataset(config: &SynthConfig, out: &Path) -> Result<SynthSummary, DetracError> {
    validate(config)?;
    let mut infos = Vec::with_capacity(config.sequences);
    let mut split_entries = Vec::with_capacity(config.sequences);
    for index in 0..config.sequences {
        let scene = Scene::new(config, index);
        let states = scene.simulate();
        let annotation = scene.annotate(&states);
        let name = annotation.name.clone();
        let image_dir = out.join(image_dir_name(scene.split)).join(&name);
        std::fs::create_dir_all(&image_dir)
            .map_err(|source| DetracError::io(&image_dir, source))?;
        // Render and encode in parallel.
        (0..config.frames as usize)
            .into_par_iter()
            .try_for_each(|frame_index| {
                let num = frame_index as u32 + 1;
                let image = scene.render(&states[frame_index], num);
                write_jpeg(
                    &image,
                    &image_dir.join(image_file_name(num)),
                    config.jpeg_quality,
                )
            })?;
        let xml_dir = out.join(annotation_dir_name(scene.split, Schema::V3));
        std::fs::create_dir_all(&xml_dir).map_err(|source| DetracError::io(&xml_dir, source))?;
        let xml_path = xml_dir.join(annotation_file_name(&name, Schema::V3));
        std::fs::write(&xml_path, annotation.to_v3_xml())
            .map_err(|source| DetracError::io(&xml_path, source))?;
        let (mean_motion, static_fraction) = motion_statistics(&states);
        infos.push(SynthSequenceInfo {
            name: name.clone(),
            split: scene.split,
            activity: scene.activity,
            weather: scene.weather.name().to_string(),
            image_frames: config.frames,
            annotated_frames: annotation.frames.len(),
            targets: annotation.num_targets(),
            mean_motion,
            static_fraction,
        });
        split_entries.push(SplitEntry {
            split: scene.split,
            sequence: name,
            image_frames: config.frames,
            camera_state: annotation.camera_state.clone(),
            weather: annotation.weather.clone(),
        });
    }
    let splits = SplitList {
        entries: split_entries,
    };
    let splits_path = out.join("splits.tsv");
    let comment = format!(
        "synthetic UA-DETRAC (ant-detrac synth, seed {}, {} sequences x {} frames)",
        config.seed, config.sequences, config.frames
    );
    std::fs::write(&splits_path, splits.to_tsv(&comment))
        .map_err(|source| DetracError::io(&splits_path, source))?;
    let summary = SynthSummary {
        config: *config,
        sequences: infos,
    };
    let summary_path = out.join("synth.json");
    let json = serde_json::to_string_pretty(&summary).expect("the summary serialises");
    std::fs::write(&summary_path, json).map_err(|source| DetracError::io(&summary_path, source))?;
    Ok(summary)
}

fn write_jpeg(image: &RgbImage, path: &Path, quality: u8) -> Result<(), DetracError> {
    let file = std::fs::File::create(path).map_err(|source| DetracError::io(path, source))?;
    let mut writer = std::io::BufWriter::new(file);
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut writer, quality);
    image
        .write_with_encoder(encoder)
        .map_err(|source| DetracError::image(path.to_path_buf(), source))
}

/// Mean displacement (pixels per frame) and the fraction of static frame pairs.
fn motion_statistics(states: &[FrameState]) -> (f32, f32) {
    let mut total_motion = 0.0f32;
    let mut static_pairs = 0usize;
    for pair in states.windows(2) {
        let mut moved = 0.0f32;
        let mut matched = 0usize;
        let mut largest = 0.0f32;
        for vehicle in &pair[1].vehicles {
            if let Some(before) = pair[0].vehicles.iter().find(|other| other.id == vehicle.id) {
                let step = (vehicle.x - before.x).abs();
                moved += step;
                largest = largest.max(step);
                matched += 1;
            }
        }
        total_motion += moved / matched.max(1) as f32;
        let same_vehicles = matched == pair[0].vehicles.len() && matched == pair[1].vehicles.len();
        if same_vehicles && largest < 0.01 {
            static_pairs += 1;
        }
    }
    let pairs = states.len().saturating_sub(1).max(1) as f32;
    (total_motion / pairs, static_pairs as f32 / pairs)
}

/// Derives an independent ChaCha8 stream from the seed and a path of indices.
fn stream(seed: u64, parts: &[u64]) -> ChaCha8Rng {
    let mut state = seed ^ 0x0005_EED0_FA17_u64;
    for part in parts {
        state = splitmix64(state ^ splitmix64(*part));
    }
    ChaCha8Rng::seed_from_u64(state)
}

fn lerp(from: f32, to: f32, t: f32) -> f32 {
    from + (to - from) * t
}

/// Weather of a sequence: global light and effects.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Weather {
    Sunny,
    Cloudy,
    Rainy,
    Night,
}

impl Weather {
    fn name(self) -> &'static str {
        match self {
            Self::Sunny => "sunny",
            Self::Cloudy => "cloudy",
            Self::Rainy => "rainy",
            Self::Night => "night",
        }
    }
}

/// The drawing primitives of a vehicle body, in vehicle units (x from rear to front, y up).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    /// A filled rectangle `[x0, x1] x [y0, y1]`.
    Rect(f32, f32, f32, f32, Paint),
    /// A trapezoid with bottom `[x0, x1]` at `y0` and top `[x2, x3]` at `y1`.
    Trapezoid(f32, f32, f32, f32, f32, f32, Paint),
    /// A wheel at `x` with radius `r` (centre at height `r`).
    Wheel(f32, f32),
}

/// Which colour a part takes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Paint {
    Body,
    Accent,
    Glass,
    Dark,
}

/// Shape, size and look of a fine-grained type.
struct Model {
    vehicle_type: VehicleType,
    length: f32,
    height: f32,
    parts: &'static [Part],
    /// Colour choices: (v3 colour name, body RGB).
    colors: &'static [(&'static str, [u8; 3])],
    /// Accent colour (roof sign, cargo box, stripes).
    accent: [u8; 3],
}

const CAR_COLORS: &[(&str, [u8; 3])] = &[
    ("White", [225, 225, 222]),
    ("Black", [28, 28, 32]),
    ("Silver", [170, 172, 178]),
    ("Gray", [110, 112, 116]),
    ("Red", [180, 30, 30]),
    ("Blue", [35, 60, 160]),
    ("Green", [40, 110, 60]),
];
const TAXI_COLORS: &[(&str, [u8; 3])] = &[("Yellow", [235, 190, 20]), ("Green", [30, 150, 70])];
const POLICE_COLORS: &[(&str, [u8; 3])] = &[("Multi", [240, 240, 240])];
const BUS_COLORS: &[(&str, [u8; 3])] = &[
    ("Yellow", [230, 170, 30]),
    ("Red", [190, 40, 35]),
    ("Blue", [40, 90, 170]),
    ("Multi", [60, 150, 120]),
];
const VAN_COLORS: &[(&str, [u8; 3])] = &[
    ("White", [232, 232, 228]),
    ("Silver", [175, 178, 182]),
    ("Blue", [60, 90, 150]),
];
const TRUCK_COLORS: &[(&str, [u8; 3])] = &[
    ("Red", [170, 40, 30]),
    ("Blue", [30, 70, 140]),
    ("White", [220, 220, 215]),
    ("Green", [50, 100, 50]),
];

use Paint::{Accent, Body, Dark, Glass};
use Part::{Rect, Trapezoid, Wheel};

const SEDAN: &[Part] = &[
    Rect(0.0, 4.5, 0.25, 0.8, Body),
    Trapezoid(1.0, 3.5, 1.45, 3.0, 0.8, 1.45, Body),
    Trapezoid(1.2, 3.3, 1.6, 2.9, 0.85, 1.35, Glass),
    Rect(2.22, 2.32, 0.85, 1.4, Body),
    Wheel(0.95, 0.33),
    Wheel(3.55, 0.33),
];
const SUV: &[Part] = &[
    Rect(0.0, 4.7, 0.3, 1.05, Body),
    Trapezoid(0.3, 3.8, 0.45, 3.4, 1.05, 1.8, Body),
    Trapezoid(0.45, 3.65, 0.6, 3.3, 1.1, 1.7, Glass),
    Rect(2.0, 2.12, 1.1, 1.75, Body),
    Wheel(0.95, 0.4),
    Wheel(3.75, 0.4),
];
const HATCHBACK: &[Part] = &[
    Rect(0.0, 4.0, 0.25, 0.8, Body),
    Trapezoid(0.2, 3.0, 0.35, 2.6, 0.8, 1.5, Body),
    Trapezoid(0.4, 2.85, 0.5, 2.5, 0.85, 1.4, Glass),
    Wheel(0.8, 0.33),
    Wheel(3.2, 0.33),
];
const TAXI: &[Part] = &[
    Rect(0.0, 4.5, 0.25, 0.8, Body),
    Trapezoid(1.0, 3.5, 1.45, 3.0, 0.8, 1.45, Body),
    Trapezoid(1.2, 3.3, 1.6, 2.9, 0.85, 1.35, Glass),
    Rect(2.0, 2.5, 1.45, 1.7, Accent),
    Rect(0.0, 4.5, 0.5, 0.6, Dark),
    Wheel(0.95, 0.33),
    Wheel(3.55, 0.33),
];
const POLICE: &[Part] = &[
    Rect(0.0, 4.6, 0.25, 0.8, Dark),
    Rect(1.2, 3.4, 0.25, 0.8, Body),
    Trapezoid(1.0, 3.5, 1.45, 3.0, 0.8, 1.45, Body),
    Trapezoid(1.2, 3.3, 1.6, 2.9, 0.85, 1.35, Glass),
    Rect(1.9, 2.6, 1.45, 1.65, Accent),
    Wheel(0.95, 0.33),
    Wheel(3.6, 0.33),
];
const BUS: &[Part] = &[
    Rect(0.0, 11.0, 0.35, 3.1, Body),
    Rect(0.3, 10.6, 1.75, 2.7, Glass),
    Rect(10.2, 10.95, 0.6, 2.75, Glass),
    Rect(0.0, 11.0, 0.35, 0.7, Accent),
    Wheel(2.0, 0.5),
    Wheel(8.8, 0.5),
];
const VAN: &[Part] = &[
    Rect(0.0, 4.2, 0.3, 2.2, Body),
    Trapezoid(4.2, 5.2, 4.2, 4.6, 0.3, 2.2, Body),
    Trapezoid(4.2, 5.0, 4.2, 4.55, 1.3, 2.05, Glass),
    Rect(3.0, 4.1, 1.3, 2.0, Glass),
    Rect(0.0, 5.2, 0.3, 0.45, Dark),
    Wheel(1.0, 0.38),
    Wheel(4.3, 0.38),
];
const MINIVAN: &[Part] = &[
    Rect(0.0, 4.9, 0.3, 1.1, Body),
    Trapezoid(0.2, 4.3, 0.3, 3.6, 1.1, 1.85, Body),
    Trapezoid(0.35, 4.15, 0.45, 3.5, 1.15, 1.75, Glass),
    Rect(1.5, 1.6, 1.15, 1.8, Body),
    Rect(2.8, 2.9, 1.15, 1.8, Body),
    Wheel(0.95, 0.36),
    Wheel(3.95, 0.36),
];
const TRUCK_BOX_LARGE: &[Part] = &[
    Rect(0.0, 7.4, 0.55, 3.4, Accent),
    Rect(0.0, 9.5, 0.4, 0.8, Dark),
    Rect(7.6, 9.5, 0.4, 2.8, Body),
    Rect(8.6, 9.4, 1.6, 2.6, Glass),
    Wheel(1.3, 0.5),
    Wheel(2.5, 0.5),
    Wheel(8.5, 0.5),
];
const TRUCK_BOX_MED: &[Part] = &[
    Rect(0.0, 5.0, 0.5, 3.0, Accent),
    Rect(0.0, 7.0, 0.4, 0.75, Dark),
    Rect(5.2, 7.0, 0.4, 2.5, Body),
    Rect(6.1, 6.9, 1.5, 2.35, Glass),
    Wheel(1.2, 0.45),
    Wheel(6.0, 0.45),
];
const TRUCK_UTIL: &[Part] = &[
    Rect(0.0, 4.3, 0.45, 1.4, Body),
    Rect(0.4, 1.6, 1.4, 2.4, Accent),
    Rect(2.0, 3.9, 1.4, 1.8, Dark),
    Rect(4.4, 6.0, 0.45, 2.3, Body),
    Rect(5.1, 5.9, 1.4, 2.1, Glass),
    Wheel(1.1, 0.42),
    Wheel(5.0, 0.42),
];
const TRUCK_PICKUP: &[Part] = &[
    Rect(0.0, 5.3, 0.3, 1.0, Body),
    Rect(0.0, 2.1, 1.0, 1.2, Body),
    Trapezoid(2.2, 4.4, 2.4, 3.9, 1.0, 1.8, Body),
    Trapezoid(2.6, 4.25, 2.7, 3.8, 1.05, 1.7, Glass),
    Wheel(1.0, 0.38),
    Wheel(4.3, 0.38),
];
const TRUCK_FLATBED: &[Part] = &[
    Rect(0.0, 6.2, 0.5, 0.9, Dark),
    Rect(0.3, 2.6, 0.9, 2.0, Accent),
    Rect(3.0, 5.4, 0.9, 1.5, Accent),
    Rect(6.3, 8.0, 0.4, 2.5, Body),
    Rect(7.1, 7.95, 1.4, 2.3, Glass),
    Wheel(1.2, 0.45),
    Wheel(2.3, 0.45),
    Wheel(7.2, 0.45),
];

/// The 13 fine-grained models. Lengths and heights are in vehicle units (about metres).
const MODELS: &[Model] = &[
    Model {
        vehicle_type: VehicleType::Sedan,
        length: 4.5,
        height: 1.45,
        parts: SEDAN,
        colors: CAR_COLORS,
        accent: [0, 0, 0],
    },
    Model {
        vehicle_type: VehicleType::Suv,
        length: 4.7,
        height: 1.8,
        parts: SUV,
        colors: CAR_COLORS,
        accent: [0, 0, 0],
    },
    Model {
        vehicle_type: VehicleType::Hatchback,
        length: 4.0,
        height: 1.5,
        parts: HATCHBACK,
        colors: CAR_COLORS,
        accent: [0, 0, 0],
    },
    Model {
        vehicle_type: VehicleType::Taxi,
        length: 4.5,
        height: 1.7,
        parts: TAXI,
        colors: TAXI_COLORS,
        accent: [250, 250, 240],
    },
    Model {
        vehicle_type: VehicleType::Police,
        length: 4.6,
        height: 1.65,
        parts: POLICE,
        colors: POLICE_COLORS,
        accent: [30, 60, 230],
    },
    Model {
        vehicle_type: VehicleType::Bus,
        length: 11.0,
        height: 3.1,
        parts: BUS,
        colors: BUS_COLORS,
        accent: [240, 240, 235],
    },
    Model {
        vehicle_type: VehicleType::Van,
        length: 5.2,
        height: 2.2,
        parts: VAN,
        colors: VAN_COLORS,
        accent: [0, 0, 0],
    },
    Model {
        vehicle_type: VehicleType::MiniVan,
        length: 4.9,
        height: 1.85,
        parts: MINIVAN,
        colors: CAR_COLORS,
        accent: [0, 0, 0],
    },
    Model {
        vehicle_type: VehicleType::TruckBoxLarge,
        length: 9.5,
        height: 3.4,
        parts: TRUCK_BOX_LARGE,
        colors: TRUCK_COLORS,
        accent: [200, 120, 40],
    },
    Model {
        vehicle_type: VehicleType::TruckBoxMed,
        length: 7.0,
        height: 3.0,
        parts: TRUCK_BOX_MED,
        colors: TRUCK_COLORS,
        accent: [215, 205, 190],
    },
    Model {
        vehicle_type: VehicleType::TruckUtil,
        length: 6.0,
        height: 2.4,
        parts: TRUCK_UTIL,
        colors: TRUCK_COLORS,
        accent: [240, 150, 20],
    },
    Model {
        vehicle_type: VehicleType::TruckPickup,
        length: 5.3,
        height: 1.8,
        parts: TRUCK_PICKUP,
        colors: TRUCK_COLORS,
        accent: [0, 0, 0],
    },
    Model {
        vehicle_type: VehicleType::TruckFlatbed,
        length: 8.0,
        height: 2.5,
        parts: TRUCK_FLATBED,
        colors: TRUCK_COLORS,
        accent: [150, 110, 70],
    },
];

/// Picks a model: classes with car 0.6, van 0.15, bus 0.1, others 0.15, then a type.
fn pick_model(rng: &mut ChaCha8Rng) -> usize {
    let class_draw: f32 = rng.random();
    let candidates: &[usize] = if class_draw < 0.6 {
        &[0, 0, 1, 1, 2, 3, 4]
    } else if class_draw < 0.75 {
        &[6, 7]
    } else if class_draw < 0.85 {
        &[5]
    } else {
        &[8, 9, 10, 11, 12]
    };
    candidates[rng.random_range(0..candidates.len())]
}

/// One lane: vehicles drive along a horizontal ground line.
#[derive(Debug, Clone, Copy)]
struct Lane {
    /// y of the ground line in pixels.
    ground: f32,
    /// Pixels per vehicle unit (perspective: smaller far away).
    scale: f32,
    /// +1 drives right, -1 drives left.
    direction: f32,
    /// Speed in pixels per frame when moving.
    speed: f32,
    /// Probability that a vehicle enters per frame.
    spawn_rate: f32,
}

/// One vehicle's simulated state.
#[derive(Debug, Clone, Copy)]
struct Vehicle {
    id: u32,
    lane: usize,
    model: usize,
    color: usize,
    /// x of the rear end (driving right) or of the front end (driving left), in pixels: the box
    /// is `[x, x + length * scale]` either way.
    x: f32,
    /// Individual speed factor.
    speed_factor: f32,
}

/// The vehicles of one frame, and whether the light is red.
#[derive(Debug, Clone)]
struct FrameState {
    vehicles: Vec<Vehicle>,
}

/// A sequence: fixed background, lanes, lighting, and the traffic parameters.
struct Scene {
    config: SynthConfig,
    index: usize,
    name: String,
    split: Split,
    activity: f32,
    weather: Weather,
    brightness: f32,
    tint: [f32; 3],
    noise_sigma: f32,
    lanes: Vec<Lane>,
    /// Red light: (period, red frames, offset); all lanes stop while red.
    light: Option<(u32, u32, u32)>,
    background: RgbImage,
    ignored: Vec<BoxXyxy>,
    /// First and last unannotated frame numbers (inclusive), if any.
    unannotated: Option<(u32, u32)>,
}

impl Scene {
    fn new(config: &SynthConfig, index: usize) -> Self {
        let mut rng = stream(config.seed, &[index as u64, 0]);
        let (width, height) = (config.width as f32, config.height as f32);
        let activity = if config.sequences <= 1 {
            0.5
        } else {
            index as f32 / (config.sequences - 1) as f32
        };
        // Weathers cycle over the sequences from a seeded start, so every four consecutive
        // sequences cover all four.
        let weather_offset = stream(config.seed, &[u64::MAX]).random_range(0..4usize);
        let weather = [
            Weather::Sunny,
            Weather::Cloudy,
            Weather::Rainy,
            Weather::Night,
        ][(index + weather_offset) % 4];
        let (brightness, tint) = match weather {
            Weather::Sunny => (rng.random_range(1.0..1.15), [1.05, 1.0, 0.92]),
            Weather::Cloudy => (rng.random_range(0.8..0.95), [0.95, 0.98, 1.05]),
            Weather::Rainy => (rng.random_range(0.65..0.8), [0.92, 0.97, 1.05]),
            Weather::Night => (rng.random_range(0.3..0.42), [0.85, 0.9, 1.1]),
        };
        let noise_sigma =
            rng.random_range(1.5..7.0f32) + if weather == Weather::Night { 3.0 } else { 0.0 };
        // Four lanes: ground lines from 55% to 96% of the height; 12 to 20 pixels per unit (times
        // the zoom) at
        // 270 px height, so a far sedan is about 54x17 px (36x12 at a 320 px wide input).
        let unit = height / 270.0;
        let grounds = [0.55, 0.68, 0.82, 0.96];
        let speed_level = lerp(0.35, 5.5, activity);
        let lanes = grounds
            .iter()
            .enumerate()
            .map(|(lane_index, fraction)| {
                let depth = (fraction - grounds[0]) / (grounds[3] - grounds[0]);
                let scale = unit * config.zoom * lerp(12.0, 20.0, depth);
                Lane {
                    ground: height * fraction,
                    scale,
                    direction: if lane_index < 2 { -1.0 } else { 1.0 },
                    speed: speed_level * scale / 16.0 * rng.random_range(0.75..1.25f32),
                    spawn_rate: lerp(0.004, 0.05, activity) * rng.random_range(0.6..1.4f32),
                }
            })
            .collect();
        // Near-static sequences stop at a red light for long stretches.
        let light = (activity < 0.4).then(|| {
            let period = rng.random_range(40..70u32);
            let red = (period as f32 * lerp(0.8, 0.45, activity / 0.4)) as u32;
            (period, red, rng.random_range(0..period))
        });
        let mut ignored = vec![BoxXyxy::new(0.0, 0.36 * height, width, 0.44 * height)];
        if rng.random_bool(0.5) {
            let far_end = rng.random_range(0.12..0.22f32) * width;
            ignored.push(BoxXyxy::new(0.0, 0.44 * height, far_end, 0.56 * height));
        }
        let unannotated = (index % 4 == 2 && config.frames >= 12).then(|| {
            let start = config.frames / 2 + 1;
            (start, start + config.frames / 6)
        });
        let mut scene = Self {
            config: *config,
            index,
            name: sequence_name(index),
            split: sequence_split(index, config.sequences),
            activity,
            weather,
            brightness,
            tint,
            noise_sigma,
            lanes,
            light,
            background: RgbImage::new(1, 1),
            ignored,
            unannotated,
        };
        scene.background = scene.paint_background(&mut rng);
        scene
    }

    fn vehicle_length(&self, vehicle: &Vehicle) -> f32 {
        MODELS[vehicle.model].length * self.lanes[vehicle.lane].scale
    }

    fn vehicle_box(&self, vehicle: &Vehicle) -> BoxXyxy {
        let lane = &self.lanes[vehicle.lane];
        let model = &MODELS[vehicle.model];
        BoxXyxy::new(
            vehicle.x,
            lane.ground - model.height * lane.scale,
            vehicle.x + model.length * lane.scale,
            lane.ground,
        )
    }

    fn new_vehicle(&self, rng: &mut ChaCha8Rng, id: u32, lane: usize, x: Option<f32>) -> Vehicle {
        let model = pick_model(rng);
        let color = rng.random_range(0..MODELS[model].colors.len());
        let mut vehicle = Vehicle {
            id,
            lane,
            model,
            color,
            x: 0.0,
            speed_factor: rng.random_range(0.97..1.03),
        };
        let length = self.vehicle_length(&vehicle);
        vehicle.x = x.unwrap_or(if self.lanes[lane].direction > 0.0 {
            -length - 1.0
        } else {
            self.config.width as f32 + 1.0
        });
        vehicle
    }

    /// Runs the traffic for all frames.
    fn simulate(&self) -> Vec<FrameState> {
        let mut rng = stream(self.config.seed, &[self.index as u64, 1]);
        let width = self.config.width as f32;
        let mut next_id = 1u32;
        let mut vehicles: Vec<Vehicle> = Vec::new();
        // Initial traffic: vehicles spread along each lane with gaps.
        let occupancy = lerp(0.2, 0.75, self.activity);
        for lane in 0..self.lanes.len() {
            let mut x = rng.random_range(-40.0..40.0f32);
            while x < width {
                let vehicle = self.new_vehicle(&mut rng, next_id, lane, Some(x));
                let length = self.vehicle_length(&vehicle);
                if rng.random::<f32>() < occupancy {
                    vehicles.push(vehicle);
                    next_id += 1;
                }
                x += length + self.lanes[lane].scale * rng.random_range(2.0..9.0f32);
            }
        }
        let mut states = Vec::with_capacity(self.config.frames as usize);
        for frame_index in 0..self.config.frames {
            states.push(FrameState {
                vehicles: vehicles.clone(),
            });
            let red = self
                .light
                .is_some_and(|(period, red, offset)| (frame_index + offset) % period < red);
            // Move: the red light stops everything; otherwise keep a gap to the vehicle ahead.
            let snapshot = vehicles.clone();
            for vehicle in &mut vehicles {
                if red {
                    continue;
                }
                let lane = self.lanes[vehicle.lane];
                let mut step = lane.speed * vehicle.speed_factor * lane.direction;
                let my_box = self.vehicle_box(vehicle);
                let gap = lane.scale * 1.5;
                for other in snapshot
                    .iter()
                    .filter(|other| other.lane == vehicle.lane && other.id != vehicle.id)
                {
                    let other_box = self.vehicle_box(other);
                    if lane.direction > 0.0 && other_box.x1 >= my_box.x2 {
                        step = step.min((other_box.x1 - gap - my_box.x2).max(0.0));
                    } else if lane.direction < 0.0 && other_box.x2 <= my_box.x1 {
                        step = step.max(-(my_box.x1 - gap - other_box.x2).max(0.0));
                    }
                }
                vehicle.x += step;
            }
            // Leave.
            vehicles.retain(|vehicle| {
                let rect = self.vehicle_box(vehicle);
                rect.x2 > -2.0 && rect.x1 < width + 2.0
            });
            // Enter, when the entry is free.
            for lane_index in 0..self.lanes.len() {
                let lane = self.lanes[lane_index];
                if red || rng.random::<f32>() >= lane.spawn_rate {
                    continue;
                }
                let candidate = self.new_vehicle(&mut rng, next_id, lane_index, None);
                let candidate_box = self.vehicle_box(&candidate);
                let clearance = lane.scale * 2.0;
                let free = vehicles
                    .iter()
                    .filter(|other| other.lane == lane_index)
                    .all(|other| {
                        let other_box = self.vehicle_box(other);
                        other_box.x1 > candidate_box.x2 + clearance
                            || other_box.x2 < candidate_box.x1 - clearance
                    });
                if free {
                    vehicles.push(candidate);
                    next_id += 1;
                }
            }
        }
        states
    }

    /// Vehicles in drawing order: far lanes first.
    fn drawing_order<'s>(&self, state: &'s FrameState) -> Vec<&'s Vehicle> {
        let mut order: Vec<&Vehicle> = state.vehicles.iter().collect();
        order.sort_by_key(|vehicle| (vehicle.lane, vehicle.id));
        order
    }

    fn is_ignored(&self, rect: &BoxXyxy) -> bool {
        let area = rect.area().max(1e-6);
        self.ignored
            .iter()
            .any(|region| rect.intersection(region) / area > 0.5)
    }

    /// The annotation of all frames (all but the unannotated run).
    fn annotate(&self, states: &[FrameState]) -> SequenceAnnotation {
        let (width, height) = (self.config.width as f32, self.config.height as f32);
        let mut frames = BTreeMap::new();
        for (frame_index, state) in states.iter().enumerate() {
            let num = frame_index as u32 + 1;
            if self
                .unannotated
                .is_some_and(|(first, last)| (first..=last).contains(&num))
            {
                continue;
            }
            let order = self.drawing_order(state);
            let mut targets = Vec::new();
            for (position, vehicle) in order.iter().enumerate() {
                let full = self.vehicle_box(vehicle);
                let clipped = full.clip(width, height);
                if clipped.width() <= 0.0 || clipped.height() <= 0.0 {
                    continue;
                }
                let truncation = 1.0 - clipped.area() / full.area();
                if truncation > 0.5 || self.is_ignored(&clipped) {
                    continue;
                }
                let occlusions = order[position + 1..]
                    .iter()
                    .filter_map(|occluder| {
                        let cover = self.vehicle_box(occluder).clip(width, height);
                        let overlap = BoxXyxy::new(
                            clipped.x1.max(cover.x1),
                            clipped.y1.max(cover.y1),
                            clipped.x2.min(cover.x2),
                            clipped.y2.min(cover.y2),
                        );
                        (overlap.width() > 0.5 && overlap.height() > 0.5).then(|| Occlusion {
                            region: round_box(DetracBox::from_xyxy(overlap)),
                            occluder_id: i64::from(occluder.id),
                            status: 1,
                        })
                    })
                    .collect();
                let lane = &self.lanes[vehicle.lane];
                let model = &MODELS[vehicle.model];
                targets.push(Target {
                    id: vehicle.id,
                    bbox: round_box(DetracBox::from_xyxy(clipped)),
                    orientation: if lane.direction > 0.0 { 0.0 } else { 180.0 },
                    speed: round2(lane.speed * vehicle.speed_factor),
                    trajectory_length: 0,
                    truncation_ratio: round2(truncation),
                    vehicle_type: model.vehicle_type,
                    color: Some(model.colors[vehicle.color].0.to_string()),
                    occlusions,
                });
            }
            targets.sort_by_key(|target| target.id);
            frames.insert(
                num,
                FrameAnnotation {
                    num,
                    density: targets.len() as u32,
                    targets,
                },
            );
        }
        // trajectory_length: how many annotated frames each track appears in.
        let mut lengths: BTreeMap<u32, u32> = BTreeMap::new();
        for target in frames.values().flat_map(|frame| &frame.targets) {
            *lengths.entry(target.id).or_default() += 1;
        }
        for target in frames.values_mut().flat_map(|frame| &mut frame.targets) {
            target.trajectory_length = lengths[&target.id];
        }
        SequenceAnnotation {
            name: self.name.clone(),
            schema: Schema::V3,
            camera_state: "stable".to_string(),
            weather: self.weather.name().to_string(),
            ignored_regions: self
                .ignored
                .iter()
                .map(|region| round_box(DetracBox::from_xyxy(*region)))
                .collect(),
            frames,
        }
    }

    fn paint_background(&self, rng: &mut ChaCha8Rng) -> RgbImage {
        let (width, height) = (self.config.width, self.config.height);
        let mut image = RgbImage::new(width, height);
        let horizon = (0.36 * height as f32) as u32;
        let road_top = (0.44 * height as f32) as u32;
        let sky_top: [f32; 3] = if self.weather == Weather::Night {
            [10.0, 14.0, 35.0]
        } else {
            [110.0, 150.0, 205.0]
        };
        for y in 0..height {
            for x in 0..width {
                let color = if y < horizon {
                    let t = y as f32 / horizon as f32;
                    [
                        sky_top[0] + 60.0 * t,
                        sky_top[1] + 50.0 * t,
                        sky_top[2] + 30.0 * t,
                    ]
                } else if y < road_top {
                    [120.0, 118.0, 112.0]
                } else {
                    [88.0, 88.0, 92.0]
                };
                image.put_pixel(x, y, to_rgb(color));
            }
        }
        // Buildings and trees along the horizon.
        let mut x = 0.0f32;
        while x < width as f32 {
            let building_width = rng.random_range(0.05..0.14f32) * width as f32;
            let building_height = rng.random_range(0.08..0.25f32) * height as f32;
            let shade = rng.random_range(70.0..170.0f32);
            let tone = [
                shade,
                shade * rng.random_range(0.85..1.05),
                shade * rng.random_range(0.8..1.1),
            ];
            fill_rect(
                &mut image,
                x,
                horizon as f32 - building_height,
                x + building_width,
                horizon as f32,
                tone,
            );
            // Windows.
            let mut wy = horizon as f32 - building_height + 4.0;
            while wy < horizon as f32 - 6.0 {
                let mut wx = x + 3.0;
                while wx < x + building_width - 5.0 {
                    let lit = self.weather == Weather::Night && rng.random_bool(0.4);
                    let glass = if lit {
                        [230.0, 210.0, 120.0]
                    } else {
                        [60.0, 70.0, 85.0]
                    };
                    fill_rect(&mut image, wx, wy, wx + 3.0, wy + 4.0, glass);
                    wx += 7.0;
                }
                wy += 9.0;
            }
            x += building_width + rng.random_range(0.0..0.05f32) * width as f32;
        }
        // Asphalt texture (static per sequence).
        for y in road_top..height {
            for x in 0..width {
                let grain = rng.random_range(-6.0..6.0f32);
                let pixel = image.get_pixel(x, y).0;
                image.put_pixel(x, y, to_rgb(pixel.map(|value| f32::from(value) + grain)));
            }
        }
        // Kerb and lane markings between lanes (dashed).
        fill_rect(
            &mut image,
            0.0,
            road_top as f32,
            width as f32,
            road_top as f32 + 2.0,
            [200.0, 200.0, 195.0],
        );
        for pair in self.lanes.windows(2) {
            let y = (pair[0].ground + pair[1].ground) / 2.0 - 2.0;
            let solid = pair[0].direction != pair[1].direction;
            let mut x = 0.0f32;
            while x < width as f32 {
                let length = if solid { width as f32 } else { 18.0 };
                fill_rect(&mut image, x, y, x + length, y + 1.5, [215.0, 210.0, 170.0]);
                x += length + 14.0;
            }
        }
        // Parked cars in the parking strip (inside the first ignored region, never annotated).
        let strip = self.ignored[0];
        let scale = (strip.height() / 1.9).min(10.0);
        let mut x = rng.random_range(0.0..20.0f32);
        while x < width as f32 {
            let model = &MODELS[[0usize, 1, 2, 7][rng.random_range(0..4usize)]];
            let color = model.colors[rng.random_range(0..model.colors.len())].1;
            if rng.random_bool(0.7) {
                draw_model(
                    &mut image,
                    model,
                    color,
                    x,
                    strip.y2 - 1.0,
                    scale,
                    rng.random_bool(0.5),
                );
            }
            x += model.length * scale + rng.random_range(2.0..12.0f32);
        }
        image
    }

    /// Renders one frame: background, vehicles (far first), light, weather, sensor noise.
    fn render(&self, state: &FrameState, num: u32) -> RgbImage {
        let mut image = self.background.clone();
        for vehicle in self.drawing_order(state) {
            let lane = &self.lanes[vehicle.lane];
            let model = &MODELS[vehicle.model];
            let color = model.colors[vehicle.color].1;
            draw_model(
                &mut image,
                model,
                color,
                vehicle.x,
                lane.ground,
                lane.scale,
                lane.direction < 0.0,
            );
        }
        let mut rng = stream(self.config.seed, &[self.index as u64, 2, u64::from(num)]);
        let gain = self.tint.map(|tint| tint * self.brightness);
        for pixel in image.pixels_mut() {
            for channel in 0..3 {
                // Approximately Gaussian noise: the sum of three uniforms.
                let noise: f32 = (rng.random::<f32>() + rng.random::<f32>() + rng.random::<f32>()
                    - 1.5)
                    * 2.0
                    * self.noise_sigma;
                let value = f32::from(pixel[channel]) * gain[channel] + noise;
                pixel[channel] = value.clamp(0.0, 255.0) as u8;
            }
        }
        if self.weather == Weather::Night {
            for vehicle in &state.vehicles {
                let rect = self.vehicle_box(vehicle);
                let lane = &self.lanes[vehicle.lane];
                let light_y = lane.ground - 0.65 * lane.scale;
                let radius = 0.25 * lane.scale;
                // Lights sit inside the box, at the front and rear ends.
                let (front, back) = if lane.direction > 0.0 {
                    (rect.x2 - radius, rect.x1 + radius)
                } else {
                    (rect.x1 + radius, rect.x2 - radius)
                };
                fill_circle(&mut image, front, light_y, radius, [255.0, 245.0, 200.0]);
                fill_circle(&mut image, back, light_y, radius * 0.8, [220.0, 30.0, 20.0]);
            }
        }
        if self.weather == Weather::Rainy {
            for _ in 0..(self.config.width / 6) {
                let x = rng.random_range(0.0..self.config.width as f32);
                let y = rng.random_range(0.0..self.config.height as f32);
                for step in 0..8 {
                    let (px, py) = (x + step as f32 * 0.4, y + step as f32);
                    if px >= 0.0
                        && py >= 0.0
                        && (px as u32) < self.config.width
                        && (py as u32) < self.config.height
                    {
                        let pixel = image.get_pixel_mut(px as u32, py as u32);
                        pixel.0 = pixel.0.map(|value| value.saturating_add(45));
                    }
                }
            }
        }
        image
    }
}

/// Rounds to 2 decimals, like the coordinates of the release.
fn round2(value: f32) -> f32 {
    (value * 100.0).round() / 100.0
}

/// Rounds the edges (not the sizes) to 2 decimals, so a box clipped to the frame stays inside.
fn round_box(rect: DetracBox) -> DetracBox {
    let (left, top) = (round2(rect.left), round2(rect.top));
    DetracBox {
        left,
        top,
        width: round2(round2(rect.left + rect.width) - left),
        height: round2(round2(rect.top + rect.height) - top),
    }
}

fn to_rgb(color: [f32; 3]) -> Rgb<u8> {
    Rgb(color.map(|value| value.clamp(0.0, 255.0) as u8))
}

/// Fills `[x0, x1) x [y0, y1)` (pixel centres inside), clipped to the image.
fn fill_rect(image: &mut RgbImage, x0: f32, y0: f32, x1: f32, y1: f32, color: [f32; 3]) {
    let (width, height) = (image.width() as f32, image.height() as f32);
    let (start_x, end_x) = (
        x0.max(0.0).round() as u32,
        x1.min(width).round().max(0.0) as u32,
    );
    let (start_y, end_y) = (
        y0.max(0.0).round() as u32,
        y1.min(height).round().max(0.0) as u32,
    );
    let rgb = to_rgb(color);
    for y in start_y..end_y {
        for x in start_x..end_x {
            image.put_pixel(x, y, rgb);
        }
    }
}

fn fill_circle(image: &mut RgbImage, cx: f32, cy: f32, radius: f32, color: [f32; 3]) {
    let rgb = to_rgb(color);
    let (width, height) = (image.width() as i64, image.height() as i64);
    let (x0, x1) = ((cx - radius).floor() as i64, (cx + radius).ceil() as i64);
    let (y0, y1) = ((cy - radius).floor() as i64, (cy + radius).ceil() as i64);
    for y in y0.max(0)..y1.min(height) {
        for x in x0.max(0)..x1.min(width) {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            if dx * dx + dy * dy <= radius * radius {
                image.put_pixel(x as u32, y as u32, rgb);
            }
        }
    }
}

/// Draws a vehicle with its rear-left box corner at `x` and its wheels on `ground`; `mirror`
/// makes it face left.
fn draw_model(
    image: &mut RgbImage,
    model: &Model,
    body: [u8; 3],
    x: f32,
    ground: f32,
    scale: f32,
    mirror: bool,
) {
    let length = model.length;
    let to_x = |u: f32| {
        if mirror {
            x + (length - u) * scale
        } else {
            x + u * scale
        }
    };
    let to_y = |v: f32| ground - v * scale;
    let body = body.map(f32::from);
    let paint = |paint: Paint| match paint {
        Paint::Body => body,
        Paint::Accent => model.accent.map(f32::from),
        Paint::Glass => [45.0, 60.0, 75.0],
        Paint::Dark => [35.0, 35.0, 38.0],
    };
    for part in model.parts {
        match *part {
            Part::Rect(u0, u1, v0, v1, color) => {
                let (xa, xb) = (to_x(u0), to_x(u1));
                fill_rect(
                    image,
                    xa.min(xb),
                    to_y(v1),
                    xa.max(xb),
                    to_y(v0),
                    paint(color),
                );
            }
            Part::Trapezoid(u0, u1, u2, u3, v0, v1, color) => {
                let rows = ((v1 - v0) * scale).ceil().max(1.0) as usize;
                for row in 0..rows {
                    let t = (row as f32 + 0.5) / rows as f32;
                    let v = v0 + (v1 - v0) * t;
                    let (ua, ub) = (lerp(u0, u2, t), lerp(u1, u3, t));
                    let (xa, xb) = (to_x(ua), to_x(ub));
                    let y = to_y(v);
                    fill_rect(
                        image,
                        xa.min(xb),
                        y - 0.5,
                        xa.max(xb),
                        y + 0.5,
                        paint(color),
                    );
                }
            }
            Part::Wheel(u, radius) => {
                fill_circle(
                    image,
                    to_x(u),
                    to_y(radius),
                    radius * scale,
                    [20.0, 20.0, 22.0],
                );
                fill_circle(
                    image,
                    to_x(u),
                    to_y(radius),
                    radius * scale * 0.45,
                    [150.0, 150.0, 155.0],
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SynthConfig {
        SynthConfig {
            seed: 7,
            sequences: 4,
            frames: 24,
            ..SynthConfig::default()
        }
    }

    #[test]
    fn should_generate_the_same_sequence_for_the_same_seed() {
        let first = generate_sequence(&small(), 1).unwrap();
        let second = generate_sequence(&small(), 1).unwrap();
        assert_eq!(first.annotation, second.annotation);
        assert_eq!(first.frames, second.frames);
        let other_seed = generate_sequence(&SynthConfig { seed: 8, ..small() }, 1).unwrap();
        assert_ne!(first.annotation, other_seed.annotation);
    }

    #[test]
    fn should_scale_vehicles_with_the_zoom_and_reject_a_silly_one() {
        let mean_height = |zoom: f32| {
            let config = SynthConfig {
                zoom,
                frames: 6,
                ..small()
            };
            let sequence = generate_sequence(&config, 3).unwrap();
            let heights: Vec<f32> = sequence
                .annotation
                .frames
                .values()
                .flat_map(|frame| frame.targets.iter().map(|target| target.bbox.height))
                .collect();
            assert!(!heights.is_empty());
            heights.iter().sum::<f32>() / heights.len() as f32
        };
        let ratio = mean_height(1.6) / mean_height(1.0);
        assert!((1.3..1.9).contains(&ratio), "height ratio {ratio}");
        let error = generate_sequence(
            &SynthConfig {
                zoom: 9.0,
                ..small()
            },
            0,
        )
        .unwrap_err();
        assert!(error.to_string().contains("zoom"), "{error}");
    }

    #[test]
    fn should_split_like_the_official_ratio() {
        let splits: Vec<Split> = (0..8).map(|index| sequence_split(index, 8)).collect();
        let test_count = splits.iter().filter(|split| **split == Split::Test).count();
        assert_eq!(test_count, 3);
        assert_eq!(splits[1], Split::Test);
        assert_eq!(splits[0], Split::Train);
    }

    #[test]
    fn should_annotate_boxes_inside_the_frame_with_all_four_classes_over_a_dataset() {
        let config = SynthConfig::default();
        let mut classes = std::collections::BTreeSet::new();
        for index in 0..config.sequences {
            let scene = Scene::new(&config, index);
            let annotation = scene.annotate(&scene.simulate());
            assert!(!annotation.frames.is_empty());
            for target in annotation.frames.values().flat_map(|frame| &frame.targets) {
                let rect = target.bbox.to_xyxy();
                assert!(rect.x1 >= 0.0 && rect.y1 >= 0.0, "{rect:?}");
                assert!(rect.x2 <= 480.001 && rect.y2 <= 270.001, "{rect:?}");
                // Vehicles stay at least ~12 px tall at a 320 px wide input (x2/3).
                assert!(rect.height() >= 17.0, "{rect:?}");
                classes.insert(target.class());
            }
        }
        assert_eq!(classes.len(), 4, "{classes:?}");
    }

    #[test]
    fn should_range_from_near_static_to_busy() {
        let config = SynthConfig::default();
        let change = |index: usize| {
            let sequence = generate_sequence(&config, index).unwrap();
            // Compare vehicle motion only: the mean box displacement of tracks between frames.
            let mut moved = 0.0f32;
            let mut count = 0usize;
            let frames: Vec<&FrameAnnotation> = sequence.annotation.frames.values().collect();
            for pair in frames.windows(2) {
                for target in &pair[1].targets {
                    if let Some(before) = pair[0].targets.iter().find(|other| other.id == target.id)
                    {
                        moved += (target.bbox.left - before.bbox.left).abs();
                        count += 1;
                    }
                }
            }
            moved / count.max(1) as f32
        };
        let calm = change(0);
        let busy = change(config.sequences - 1);
        assert!(calm * 4.0 < busy, "calm {calm} busy {busy}");
    }

    #[test]
    fn should_write_xml_that_parses_back_to_the_same_annotation() {
        let sequence = generate_sequence(&small(), 3).unwrap();
        let xml = sequence.annotation.to_v3_xml();
        let parsed = SequenceAnnotation::parse(&xml, Path::new("synth.xml")).unwrap();
        assert_eq!(parsed, sequence.annotation);
        assert!(xml.starts_with("<sequence name=\"MVI_90004\">\n   <sequence_attribute"));
    }

    #[test]
    fn should_leave_a_run_of_frames_unannotated_in_every_fourth_sequence() {
        let config = small();
        let sequence = generate_sequence(&config, 2).unwrap();
        assert_eq!(sequence.frames.len(), 24);
        assert!(sequence.annotation.frames.len() < 24);
        assert!(!sequence.annotation.is_annotated(13));
        assert!(sequence.annotation.is_annotated(1));
    }

    #[test]
    fn should_record_occlusions_by_nearer_vehicles() {
        let config = SynthConfig::default();
        let any_occlusion = (0..config.sequences).any(|index| {
            let scene = Scene::new(&config, index);
            let annotation = scene.annotate(&scene.simulate());
            annotation
                .frames
                .values()
                .flat_map(|frame| &frame.targets)
                .any(|target| !target.occlusions.is_empty())
        });
        assert!(any_occlusion);
    }

    #[test]
    fn should_reject_an_empty_configuration() {
        let error = generate_sequence(
            &SynthConfig {
                frames: 0,
                ..small()
            },
            0,
        )
        .unwrap_err();
        assert!(matches!(error, DetracError::InvalidConfig { .. }));
    }
}
