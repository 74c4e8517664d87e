//! The native checkpoint: a burnpack file with the model's config stored beside it.
//!
//! `MODEL.bpk` holds every tensor (including all private batch norms of the supernet);
//! `MODEL.json` holds the [`EfficientDetConfig`]. Both are written to a temporary file and
//! renamed into place, so an interrupted save never leaves a half-written checkpoint.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::Device;
use serde::Serialize;

use crate::config::EfficientDetConfig;
use crate::detector::EfficientDet;
use crate::error::{Result, SupernetError};

fn config_path(path: &Path) -> PathBuf {
    path.with_extension("json")
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

/// Saves `module` to `path` (burnpack; `config` also in its metadata as `ant_config`) and
/// `config` as JSON beside it (`path` with `.json`), both atomically: the one checkpoint
/// format of the workspace (the detector, the temporal modules).
///
/// # Errors
/// [`SupernetError::Pack`] when Burn cannot serialise the module, [`SupernetError::WriteFile`]
/// naming a file that could not be written.
pub fn save_module<M: ModuleSnapshot, C: Serialize>(
    module: &M,
    config: &C,
    path: &Path,
) -> Result<()> {
    let pack = |source| SupernetError::Pack {
        path: path.to_path_buf(),
        source,
    };
    let config = serde_json::to_string_pretty(config).expect("configs serialise");
    let mut store = BurnpackStore::from_bytes(None).metadata("ant_config", config.clone());
    module.save_into(&mut store).map_err(pack)?;
    let bytes = store.get_bytes().map_err(pack)?;
    write_atomic(&config_path(path), config.as_bytes())?;
    Ok(write_atomic(path, &bytes)?)
}

/// Reads the JSON config beside the checkpoint `path` (`path` with `.json`) with `parse`.
///
/// # Errors
/// [`SupernetError::ReadFile`] or [`SupernetError::Config`], naming the JSON file.
pub fn load_config<C>(path: &Path, parse: impl FnOnce(&str) -> serde_json::Result<C>) -> Result<C> {
    let json_path = config_path(path);
    let text = std::fs::read_to_string(&json_path).map_err(|source| SupernetError::ReadFile {
        path: json_path.clone(),
        source,
    })?;
    parse(&text).map_err(|source| SupernetError::Config {
        path: json_path,
        source,
    })
}

/// Loads the burnpack checkpoint `path` into `module`, which must have its shape (build it
/// from the config [`load_config`] read): a checkpoint with missing or mismatched tensors is
/// refused.
///
/// # Errors
/// [`SupernetError::Read`] for a missing file or a checkpoint of another shape,
/// [`SupernetError::Pack`] for one Burn cannot read.
pub fn load_module<M: ModuleSnapshot>(module: &mut M, path: &Path) -> Result<()> {
    if !path.is_file() {
        return Err(read_error(path, "no such file"));
    }
    let mut store = BurnpackStore::from_file(path)
        .auto_extension(false)
        .validate(true);
    let result = module
        .load_from(&mut store)
        .map_err(|source| SupernetError::Pack {
            path: path.to_path_buf(),
            source,
        })?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        return Err(read_error(
            path,
            format!(
                "not a checkpoint of this model: {} missing, {} mismatched tensors (first: {})",
                result.missing.len(),
                result.errors.len(),
                result
                    .missing
                    .first()
                    .map(|m| format!("{m:?}"))
                    .or(result.errors.first().map(|e| format!("{e:?}")))
                    .unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

impl EfficientDet {
    /// Saves to `path` (conventionally `*.bpk`) and its config to `path` with `.json`
    /// ([`save_module`]).
    ///
    /// # Errors
    /// The errors of [`save_module`].
    pub fn save(&self, path: &Path) -> Result<()> {
        save_module(&self.valid(), &self.config, path)
    }

    /// Loads a checkpoint written by [`EfficientDet::save`].
    ///
    /// # Errors
    /// The errors of [`load_config`] and [`load_module`], naming the file.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let config: EfficientDetConfig = load_config(path, |text| serde_json::from_str(text))?;
        Self::load_with_config(path, &config, device)
    }

    /// Loads a checkpoint into a model of `config`; a checkpoint of another shape is an error.
    ///
    /// # Errors
    /// The errors of [`load_module`].
    pub fn load_with_config(
        path: &Path,
        config: &EfficientDetConfig,
        device: &Device,
    ) -> Result<Self> {
        let mut model = Self::init(config, device);
        load_module(&mut model, path)?;
        Ok(model)
    }
}
