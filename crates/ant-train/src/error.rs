//! The error type of ant-train: every way a training or evaluation run can fail.

use std::path::PathBuf;

/// Why a training or evaluation run failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file or directory could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (config, training state) is malformed.
    #[error("malformed JSON in {path}")]
    Json {
        /// The file.
        path: PathBuf,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
    /// A configuration value is unusable.
    #[error("invalid training config: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// A config file has a key the config does not know (a typo, or a setting of another
    /// version): it would otherwise be ignored without a word.
    #[error("unknown config key {key:?} in {path}{hint}")]
    UnknownConfigKey {
        /// The file.
        path: PathBuf,
        /// The key's dotted path (`standalone.warmup_stepz`).
        key: String,
        /// `: did you mean "..."?` when a known key is close, else empty.
        hint: String,
    },
    /// `--resume` on a directory that holds no run (no saved config, no checkpoint).
    #[error("nothing to resume in {path}: no config.json and no stage checkpoint there")]
    NothingToResume {
        /// The run directory.
        path: PathBuf,
    },
    /// Another training holds the run directory's lock.
    #[error(
        "{path} is in use by another training (its lock {lock} is held); wait for it or \
         pick another --run-dir"
    )]
    RunInUse {
        /// The run directory.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// A data-parallel replica panicked (a lost remote device panics inside Burn's client).
    #[error("data-parallel replica {replica} on device {device} failed: {message}")]
    Worker {
        /// The replica's index (its shard of the batch).
        replica: usize,
        /// The replica's device, as Burn prints it.
        device: String,
        /// The panic message.
        message: String,
    },
    /// A `key=value` override does not name a config field or its value has the wrong type.
    #[error("bad config override {text:?}: {reason}")]
    BadOverride {
        /// The override as given.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// The optimiser state could not be saved or loaded.
    #[error("optimizer state {path}")]
    OptimizerRecord {
        /// The file.
        path: PathBuf,
        /// Burn's record error.
        #[source]
        source: burn::store::RecordError,
    },
    /// A checkpoint exists but does not belong to this run (other config or stage).
    #[error("cannot resume from {path}: {reason}")]
    ResumeMismatch {
        /// The checkpoint directory.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// The loss became NaN or infinite: training stopped, the last good checkpoint is kept.
    #[error(
        "non-finite loss ({value}) in stage {stage} at epoch {epoch}, step {step}; \
         the last good checkpoint is {last_good}"
    )]
    NonFiniteLoss {
        /// The stage name.
        stage: String,
        /// The 0-based epoch.
        epoch: usize,
        /// The global step.
        step: usize,
        /// The loss value.
        value: f32,
        /// The last checkpoint written (or `none`).
        last_good: String,
    },
    /// A file or directory the evaluation needs is missing.
    #[error("{what} not found: {path}")]
    NotFound {
        /// What is missing (run directory, config, a stage's checkpoint, ...).
        what: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The model failed (invalid subnet, checkpoint read/write).
    #[error(transparent)]
    Supernet(#[from] ant_supernet::SupernetError),
    /// The temporal modules failed (shapes, checkpoint).
    #[error(transparent)]
    Temporal(#[from] ant_temporal::TemporalError),
    /// The dataset failed (missing frame, malformed annotation).
    #[error(transparent)]
    Detrac(#[from] ant_detrac::DetracError),
    /// The evaluation failed.
    #[error(transparent)]
    Metrics(#[from] ant_metrics::MetricsError),
}

impl From<ant_supernet::checkpoint::WriteError> for TrainError {
    fn from(error: ant_supernet::checkpoint::WriteError) -> Self {
        Self::Io {
            path: error.path,
            source: error.source,
        }
    }
}

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The result type of ant-train.
pub type Result<T> = std::result::Result<T, TrainError>;
