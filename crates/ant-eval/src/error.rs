//! The error type of ant-eval.

use std::path::PathBuf;

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file or directory could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (the latency table) is malformed.
    #[error("malformed JSON in {path}")]
    Json {
        /// The file.
        path: PathBuf,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
    /// A file or directory the evaluation needs is missing.
    #[error("{what} not found: {path}")]
    NotFound {
        /// What is missing (run directory, config, a stage's checkpoint, ...).
        what: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A run that cannot be evaluated as asked.
    #[error("cannot evaluate {path}: {reason}")]
    InvalidRun {
        /// The run directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading the run's config, or recalibrating on its training data, failed.
    #[error(transparent)]
    Train(#[from] ant_train::TrainError),
    /// The model failed (invalid subnet, checkpoint read).
    #[error(transparent)]
    Supernet(#[from] ant_supernet::SupernetError),
    /// The temporal modules failed (shapes, checkpoint).
    #[error(transparent)]
    Temporal(#[from] ant_temporal::TemporalError),
    /// The dataset failed (missing frame, malformed annotation).
    #[error(transparent)]
    Detrac(#[from] ant_detrac::DetracError),
    /// Scoring failed.
    #[error(transparent)]
    Metrics(#[from] ant_metrics::MetricsError),
}

impl From<ant_supernet::checkpoint::WriteError> for EvalError {
    fn from(error: ant_supernet::checkpoint::WriteError) -> Self {
        Self::Io {
            path: error.path,
            source: error.source,
        }
    }
}

impl EvalError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The result type of ant-eval.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;
