//! The supernet crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong when describing, building, loading or saving a supernet.
#[derive(Debug, thiserror::Error)]
pub enum SupernetError {
    /// A subnet description that is not a list of six expansion ratios.
    #[error("invalid subnet {text:?}: {reason}")]
    InvalidArch {
        /// The text that was parsed.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A stage asked for an expansion ratio the model does not hold.
    #[error("stage {stage} has no expansion ratio {ratio} (available: {available:?})")]
    UnavailableRatio {
        /// The elastic stage (1-based, as in the paper).
        stage: usize,
        /// The ratio asked for.
        ratio: usize,
        /// The ratios the stage holds.
        available: Vec<usize>,
    },
    /// A checkpoint could not be read.
    #[error("reading {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A file could not be written atomically.
    #[error(transparent)]
    WriteFile(#[from] crate::checkpoint::WriteError),
    /// A checkpoint's config file could not be read.
    #[error("cannot read {path}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint's config file is not the JSON of a config.
    #[error("malformed checkpoint config {path}")]
    Config {
        /// The file.
        path: PathBuf,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
    /// Burn's store could not write or read a burnpack checkpoint (truncated, corrupt, not a
    /// burnpack file).
    #[error("burnpack checkpoint {path}")]
    Pack {
        /// The file.
        path: PathBuf,
        /// Burn's error.
        #[source]
        source: burn::store::burn_pack::Error,
    },
    /// A tensor the model needs is not in the checkpoint.
    #[error(
        "{path}: missing tensor {key:?} (is this an effdet tf_efficientdet checkpoint of the same config?)"
    )]
    MissingTensor {
        /// The checkpoint.
        path: PathBuf,
        /// The state-dict key.
        key: String,
    },
    /// A tensor in the checkpoint has a different shape than the model's.
    #[error("{path}: tensor {key:?} has shape {found:?}, the model expects {expected:?}")]
    ShapeMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// The state-dict key.
        key: String,
        /// The checkpoint's shape.
        found: Vec<usize>,
        /// The model's shape.
        expected: Vec<usize>,
    },
    /// The checkpoint holds tensors the model does not use: it was made for another model.
    #[error("{path}: {count} tensors are not used by the model, e.g. {example:?}")]
    UnexpectedTensors {
        /// The checkpoint.
        path: PathBuf,
        /// How many.
        count: usize,
        /// One of them.
        example: String,
    },
    /// A tensor of an unsupported element type.
    #[error("{path}: tensor {key:?} has unsupported dtype {dtype}")]
    UnsupportedDtype {
        /// The checkpoint.
        path: PathBuf,
        /// The state-dict key.
        key: String,
        /// The element type found.
        dtype: String,
    },
    /// A native checkpoint written for a different model configuration.
    #[error("{path}: checkpoint was written for config {found}, not {expected}")]
    ConfigMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// The checkpoint's config, as JSON.
        found: String,
        /// The model's config, as JSON.
        expected: String,
    },
    /// A Skip-Conv gate threshold that is negative or not a number.
    #[error("skip-conv threshold {threshold} is not a finite number >= 0")]
    InvalidThreshold {
        /// The threshold given.
        threshold: f32,
    },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, SupernetError>;
