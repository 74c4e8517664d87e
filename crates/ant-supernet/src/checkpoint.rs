//! The native checkpoint: a burnpack file with the model's config stored beside it.
//!
//! `MODEL.bpk` holds every tensor (including all private batch norms of the supernet);
//! `MODEL.json` holds the [`EfficientDetConfig`]. Both are written to a temporary file and
//! renamed into place, so an interrupted save never leaves a half-written checkpoint.

use std::path::{Path, PathBuf};

use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::Device;

use crate::config::EfficientDetConfig;
use crate::detector::EfficientDet;
use crate::error::{Result, SupernetError};

fn config_path(path: &Path) -> PathBuf {
    path.with_extension("json")
}

fn write_error(path: &Path, reason: impl ToString) -> SupernetError {
    SupernetError::Write {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn read_error(path: &Path, reason: impl ToString) -> SupernetError {
    SupernetError::Read {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// A file that [`write_atomic`] could not write, with the operating system's error.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}")]
pub struct WriteError {
    /// The file (or its temporary sibling, or a parent directory) that failed.
    pub path: PathBuf,
    /// The operating system's error.
    #[source]
    pub source: std::io::Error,
}

/// Writes `contents` to `path` atomically: into `PATH.tmp` beside it, then renamed into place,
/// so a reader (or a run resumed after a kill) sees the old file or the new one, never half
/// of one. Missing parent directories are created. The one atomic write of the workspace:
/// checkpoints, configs, metrics, reports.
///
/// # Errors
/// [`WriteError`] naming the file that failed.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::result::Result<(), WriteError> {
    let error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError { path, source }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(error(parent))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, contents).map_err(error(&tmp))?;
    std::fs::rename(&tmp, path).map_err(error(path))
}

impl EfficientDet {
    /// Saves to `path` (conventionally `*.bpk`) and its config to `path` with `.json`.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| write_error(parent, error))?;
        }
        let config = serde_json::to_string_pretty(&self.config).expect("config serialises");
        let mut store = BurnpackStore::from_bytes(None).metadata("ant_config", config.clone());
        self.save_into(&mut store)
            .map_err(|error| write_error(path, format!("{error:?}")))?;
        let bytes = store
            .get_bytes()
            .map_err(|error| write_error(path, format!("{error:?}")))?;
        write_atomic(&config_path(path), config.as_bytes())?;
        Ok(write_atomic(path, &bytes)?)
    }

    /// Loads a checkpoint written by [`EfficientDet::save`].
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let json_path = config_path(path);
        let text = std::fs::read_to_string(&json_path)
            .map_err(|error| read_error(&json_path, format!("checkpoint config: {error}")))?;
        let config: EfficientDetConfig = serde_json::from_str(&text)
            .map_err(|error| read_error(&json_path, format!("checkpoint config: {error}")))?;
        Self::load_with_config(path, &config, device)
    }

    /// Loads a checkpoint into a model of `config`; a checkpoint of another shape is an error.
    pub fn load_with_config(
        path: &Path,
        config: &EfficientDetConfig,
        device: &Device,
    ) -> Result<Self> {
        if !path.is_file() {
            return Err(read_error(path, "no such file"));
        }
        let mut model = Self::init(config, device);
        let mut store = BurnpackStore::from_file(path)
            .auto_extension(false)
            .validate(true);
        let result = model.load_from(&mut store).map_err(|error| {
            read_error(path, format!("not a checkpoint of this model: {error:?}"))
        })?;
        if !result.errors.is_empty() || !result.missing.is_empty() {
            return Err(read_error(
                path,
                format!(
                    "not a checkpoint of config {:?}: {} missing, {} mismatched tensors (first: {:?})",
                    config.name,
                    result.missing.len(),
                    result.errors.len(),
                    result
                        .missing
                        .first()
                        .map(|m| format!("{m:?}"))
                        .or(result.errors.first().map(|e| format!("{e:?}")))
                ),
            ));
        }
        Ok(model)
    }
}
