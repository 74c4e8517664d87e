//! Checkpoints of a stage, written atomically at the end of every epoch.
//!
//! `RUN/STAGE/epoch-NNNN/` holds `model.bpk` (+ `model.json`, the detector config),
//! `optim.bpk` (Burn's optimizer record: momentum buffers keyed by parameter id, which the
//! burnpack model file preserves) and `state.json` ([`TrainState`]). The directory is written
//! as `epoch-NNNN.tmp` and renamed into place, so a run killed mid-save leaves only complete
//! checkpoints; resuming picks the highest complete epoch. Older epochs beyond the last two
//! are removed.

use std::path::{Path, PathBuf};

use ant_supernet::EfficientDet;
use ant_supernet::checkpoint::write_atomic;
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Everything besides weights and optimizer moments that a resumed run needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// The stage name.
    pub stage: String,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Global optimizer steps taken.
    pub global_step: usize,
    /// The run's seed (the data order and subnet sampling of epoch `e` derive from it).
    pub seed: u64,
    /// The last epoch's mean loss.
    /// (NaN before the first epoch, written as JSON `null` and read back as NaN.)
    #[serde(deserialize_with = "nan_from_null")]
    pub last_loss: f32,
}

/// serde_json writes a NaN `f32` as `null`: read it back as NaN (the state of a stage
/// checkpointed before its first epoch).
fn nan_from_null<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<f32, D::Error> {
    Ok(Option::<f32>::deserialize(deserializer)?.unwrap_or(f32::NAN))
}

/// The kill tests' hook: with `ANT_TEST_ABORT_AT=POINT` in the environment the process
/// aborts (no unwinding, no cleanup: a SIGKILL's effect) when it reaches `POINT`. Points:
/// `checkpoint-before-rename` (every file of a checkpoint written, the directory not yet
/// renamed into place).
fn abort_if_asked(point: &str) {
    if std::env::var("ANT_TEST_ABORT_AT").is_ok_and(|asked| asked == point) {
        eprintln!("ANT_TEST_ABORT_AT={point}: aborting");
        std::process::abort();
    }
}

fn epoch_dir_name(epochs_done: usize) -> String {
    format!("epoch-{epochs_done:04}")
}

/// Saves a checkpoint of `epochs_done` epochs under `stage_dir`; returns its directory.
pub fn save_checkpoint(
    stage_dir: &Path,
    model: &EfficientDet,
    optim: &ModuleOptimizer,
    state: &TrainState,
) -> Result<PathBuf> {
    // `valid()` first: Burn's batch-norm `RunningState` keeps the latest statistics update
    // pending per thread and only `valid()`/`train()` merge it; saving the module directly
    // would store statistics one update behind (and a resumed run would diverge).
    save_checkpoint_with(stage_dir, optim, state, |dir| {
        Ok(model.valid().save(&dir.join("model.bpk"))?)
    })
}

/// [`save_checkpoint`] with the model files written by `write_models` into the checkpoint's
/// (temporary) directory.
pub fn save_checkpoint_with(
    stage_dir: &Path,
    optim: &ModuleOptimizer,
    state: &TrainState,
    write_models: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let final_dir = stage_dir.join(epoch_dir_name(state.epochs_done));
    let tmp_dir = stage_dir.join(format!("{}.tmp", epoch_dir_name(state.epochs_done)));
    if tmp_dir.exists() {
        std::fs::remove_dir_all(&tmp_dir).map_err(|source| TrainError::io(&tmp_dir, source))?;
    }
    std::fs::create_dir_all(&tmp_dir).map_err(|source| TrainError::io(&tmp_dir, source))?;
    write_models(&tmp_dir)?;
    let optim_path = tmp_dir.join("optim.bpk");
    optim
        .save(&optim_path)
        .map_err(|source| TrainError::OptimizerRecord {
            path: optim_path.clone(),
            source,
        })?;
    let text = serde_json::to_string_pretty(state).expect("a train state always serialises");
    write_atomic(&tmp_dir.join("state.json"), text.as_bytes())?;
    abort_if_asked("checkpoint-before-rename");
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(|source| TrainError::io(&final_dir, source))?;
    }
    std::fs::rename(&tmp_dir, &final_dir).map_err(|source| TrainError::io(&final_dir, source))?;
    // Keep the last two complete checkpoints.
    let mut complete = list_checkpoints(stage_dir)?;
    while complete.len() > 2 {
        let (_, oldest) = complete.remove(0);
        std::fs::remove_dir_all(&oldest).map_err(|source| TrainError::io(&oldest, source))?;
    }
    Ok(final_dir)
}

/// The complete checkpoints of a stage, by ascending epoch.
pub fn list_checkpoints(stage_dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    if !stage_dir.is_dir() {
        return Ok(Vec::new());
    }
    let listing =
        std::fs::read_dir(stage_dir).map_err(|source| TrainError::io(stage_dir, source))?;
    let mut found = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|source| TrainError::io(stage_dir, source))?;
        let name = entry.file_name();
        let epoch = name
            .to_str()
            .and_then(|name| name.strip_prefix("epoch-"))
            .and_then(|digits| digits.parse::<usize>().ok());
        if let Some(epoch) = epoch
            && entry.path().join("state.json").is_file()
        {
            found.push((epoch, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// The newest complete checkpoint of a stage.
pub fn latest_checkpoint(stage_dir: &Path) -> Result<Option<PathBuf>> {
    Ok(list_checkpoints(stage_dir)?.pop().map(|(_, path)| path))
}

/// Reads a checkpoint's state.
pub fn load_state(checkpoint: &Path) -> Result<TrainState> {
    let path = checkpoint.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|source| TrainError::io(&path, source))?;
    serde_json::from_str(&text).map_err(|source| TrainError::Json { path, source })
}

/// Loads a checkpoint's model onto `device`.
pub fn load_model(checkpoint: &Path, device: &Device) -> Result<EfficientDet> {
    Ok(EfficientDet::load(&checkpoint.join("model.bpk"), device)?)
}

/// Loads a checkpoint's optimizer state into `optim`.
pub fn load_optimizer(checkpoint: &Path, optim: ModuleOptimizer) -> Result<ModuleOptimizer> {
    let path = checkpoint.join("optim.bpk");
    optim
        .load(&path)
        .map_err(|source| TrainError::OptimizerRecord { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_read_back_the_state_of_a_stage_checkpointed_before_its_first_epoch() {
        let state = TrainState {
            stage: "stage2-joint".into(),
            epochs_done: 0,
            global_step: 0,
            seed: 7,
            last_loss: f32::NAN,
        };
        let text = serde_json::to_string_pretty(&state).unwrap();
        assert!(text.contains("\"last_loss\": null"), "{text}");
        let back: TrainState = serde_json::from_str(&text).unwrap();
        assert!(back.last_loss.is_nan());
        assert_eq!((back.stage.as_str(), back.seed), ("stage2-joint", 7));
        let trained = TrainState {
            last_loss: 0.5,
            ..state
        };
        let back: TrainState =
            serde_json::from_str(&serde_json::to_string(&trained).unwrap()).unwrap();
        assert_eq!(back, trained);
    }
}
