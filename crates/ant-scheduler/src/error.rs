//! The scheduler crate's error type.

/// Everything that can go wrong when deciding key frames.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchedulerError {
    /// Two feature vectors to compare have different lengths.
    #[error("stem features of {current} values cannot be compared with a key frame of {key}")]
    LengthMismatch {
        /// Length of the current frame's features.
        current: usize,
        /// Length of the key frame's features.
        key: usize,
    },
    /// The adaptive policy was asked to decide without the frame's stem features.
    #[error("the adaptive key-frame policy needs the frame's stem features")]
    MissingFeatures,
    /// A fixed interval of zero frames.
    #[error("key-frame interval must be at least 1, got {interval}")]
    InvalidInterval {
        /// The interval asked for.
        interval: usize,
    },
    /// A threshold that is negative or not a number.
    #[error("deviation threshold must be a non-negative number, got {threshold}")]
    InvalidThreshold {
        /// The threshold asked for.
        threshold: f32,
    },
}
