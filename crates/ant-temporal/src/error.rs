//! The temporal crate's error type.

use ant_scheduler::SchedulerError;
use ant_supernet::SupernetError;

/// Everything that can go wrong when building or running the ANT detector.
#[derive(Debug, thiserror::Error)]
pub enum TemporalError {
    /// The supernet refused a subnet or a checkpoint.
    #[error(transparent)]
    Supernet(#[from] SupernetError),
    /// The key-frame scheduler refused a policy or a frame.
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    /// A mode that gates widths or fuses key-frame features was asked for without the
    /// temporal modules.
    #[error("mode {mode} needs the fusion modules and gates, but none were given")]
    MissingTemporal {
        /// The mode's name.
        mode: String,
    },
    /// Gates built to read key-frame features (stages without fusion read the current and
    /// the key frame's features side by side) asked to run without key frames.
    #[error(
        "the gates of stages {stages:?} read key-frame features (no fusion module there): \
         they cannot gate the non-temporal mode"
    )]
    GatesNeedKeyFrames {
        /// The stages whose gates read key-frame features.
        stages: Vec<usize>,
    },
    /// The temporal modules were built for another backbone.
    #[error("temporal modules expect stage channels {expected:?}, the backbone has {found:?}")]
    BackboneMismatch {
        /// Channels the temporal modules were built for.
        expected: Vec<usize>,
        /// Channels of the backbone.
        found: Vec<usize>,
    },
    /// A frame of the wrong shape.
    #[error("frame has shape {found:?}, the detector expects {expected:?}")]
    FrameShape {
        /// `[1, 3, image_size, image_size]`.
        expected: [usize; 4],
        /// The frame's shape.
        found: [usize; 4],
    },
    /// Skip-Conv mode on a device other than the CPU engine's.
    #[error(
        "skip-conv runs on the prepared CPU engine only (device flex without autodiff), not on {device}"
    )]
    SkipConvNeedsCpu {
        /// The model's device.
        device: String,
    },
    /// Key and non-key clips of different shapes.
    #[error("key frames {key:?} and non-key frames {non_key:?} differ in shape")]
    ClipShape {
        /// Key frame batch shape.
        key: [usize; 4],
        /// Non-key frame batch shape.
        non_key: [usize; 4],
    },
}

/// The crate's result type.
pub type Result<T, E = TemporalError> = std::result::Result<T, E>;
