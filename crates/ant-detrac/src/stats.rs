//! Per-sequence statistics of annotation files (`cargo xtask dataset stats`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::annotation::SequenceAnnotation;
use crate::classes::VehicleClass;

/// Counts of one sequence (or of several, merged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceStats {
    /// The sequence name (`*` for a merged total).
    pub sequence: String,
    /// The number of `<frame>` elements.
    pub annotated_frames: usize,
    /// The highest annotated frame number (maximum over merged sequences).
    pub max_frame: u32,
    /// The number of target boxes over all annotated frames.
    pub targets: usize,
    /// The number of ignored regions.
    pub ignored_regions: usize,
    /// Boxes per `vehicle_type` as spelled in the file (fine-grained in v3).
    pub vehicle_types: BTreeMap<String, usize>,
    /// Boxes per benchmark class (all four classes present, zeros included).
    pub classes: BTreeMap<String, usize>,
}

impl SequenceStats {
    /// Empty counts under a name.
    pub fn empty(sequence: &str) -> Self {
        Self {
            sequence: sequence.to_string(),
            annotated_frames: 0,
            max_frame: 0,
            targets: 0,
            ignored_regions: 0,
            vehicle_types: BTreeMap::new(),
            classes: VehicleClass::ALL
                .iter()
                .map(|class| (class.name().to_string(), 0))
                .collect(),
        }
    }

    /// The counts of one sequence.
    pub fn of(annotation: &SequenceAnnotation) -> Self {
        let mut stats = Self::empty(&annotation.name);
        stats.annotated_frames = annotation.frames.len();
        stats.max_frame = annotation.max_frame();
        stats.ignored_regions = annotation.ignored_regions.len();
        for target in annotation.frames.values().flat_map(|frame| &frame.targets) {
            stats.targets += 1;
            *stats
                .vehicle_types
                .entry(target.vehicle_type.as_str().to_string())
                .or_default() += 1;
            *stats
                .classes
                .entry(target.class().name().to_string())
                .or_default() += 1;
        }
        stats
    }

    /// Adds another sequence's counts (`max_frame` becomes the maximum).
    pub fn merge(&mut self, other: &SequenceStats) {
        self.annotated_frames += other.annotated_frames;
        self.max_frame = self.max_frame.max(other.max_frame);
        self.targets += other.targets;
        self.ignored_regions += other.ignored_regions;
        for (name, count) in &other.vehicle_types {
            *self.vehicle_types.entry(name.clone()).or_default() += count;
        }
        for (name, count) in &other.classes {
            *self.classes.entry(name.clone()).or_default() += count;
        }
    }

    /// A human-readable multi-line summary.
    pub fn to_text(&self) -> String {
        let join = |counts: &BTreeMap<String, usize>| {
            counts
                .iter()
                .map(|(name, count)| format!("{name}={count}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        format!(
            "sequence {}: {} annotated frames (highest {}), {} targets, {} ignored regions\n  \
             vehicle types: {}\n  classes: {}",
            self.sequence,
            self.annotated_frames,
            self.max_frame,
            self.targets,
            self.ignored_regions,
            join(&self.vehicle_types),
            join(&self.classes)
        )
    }
}
