//! A checkpoint write that fails partway (a full disk, a write error; simulated by a model
//! writer that writes part of its file and then fails as the OS does when out of space)
//! returns an error naming the file and the OS's reason, and leaves the previous checkpoint
//! the newest complete one, loadable; the next good save clears the half-written directory.

use std::path::{Path, PathBuf};

use ant_supernet::{EfficientDet, EfficientDetConfig};
use ant_train::checkpoint::{
    TrainState, latest_checkpoint, load_model, load_state, save_checkpoint, save_checkpoint_with,
};
use ant_train::trainer::optimizer;
use ant_train::{TrainConfig, TrainError};
use burn::tensor::Device;

fn manifest_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
}

fn state(epochs_done: usize) -> TrainState {
    TrainState {
        stage: "stage0-standalone".into(),
        epochs_done,
        global_step: epochs_done * 10,
        seed: 0,
        last_loss: 1.0,
    }
}

#[test]
fn should_keep_the_previous_checkpoint_when_a_save_fails() {
    let stage_dir = std::env::temp_dir().join(format!("ant-ckpt-fail-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&stage_dir);
    let config =
        TrainConfig::load(&manifest_dir().join("../../configs/default.json"), &[]).unwrap();
    let device = Device::flex();
    let detector = EfficientDetConfig::by_name("tiny", 4)
        .unwrap()
        .with_image_size(128);
    let model = EfficientDet::init(&detector, &device);
    let optim = optimizer(&config.standalone);

    let first = save_checkpoint(&stage_dir, &model, &optim, &state(1)).unwrap();

    // Epoch 2: the model file is half written when the disk fills up.
    let failed_file = std::cell::RefCell::new(PathBuf::new());
    let error = save_checkpoint_with(&stage_dir, &optim, &state(2), |dir: &Path| {
        let path = dir.join("model.bpk");
        std::fs::write(&path, [0u8; 1000]).unwrap();
        *failed_file.borrow_mut() = path.clone();
        Err(TrainError::io(
            &path,
            std::io::Error::from_raw_os_error(28), // ENOSPC
        ))
    })
    .unwrap_err();
    let message = anyhow_chain(&error);
    assert!(
        message.contains("model.bpk") && message.contains("No space left on device"),
        "{message}"
    );
    assert!(
        failed_file.borrow().exists(),
        "the simulated partial write happened"
    );

    // The newest complete checkpoint is still epoch 1, and it loads.
    assert_eq!(latest_checkpoint(&stage_dir).unwrap(), Some(first.clone()));
    assert_eq!(load_state(&first).unwrap(), state(1));
    load_model(&first, &device).unwrap();

    // The next good save of epoch 2 replaces the half-written directory.
    let second = save_checkpoint(&stage_dir, &model, &optim, &state(2)).unwrap();
    assert_eq!(latest_checkpoint(&stage_dir).unwrap(), Some(second));
    let leftovers: Vec<_> = std::fs::read_dir(&stage_dir)
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(&stage_dir);
}

/// The error and its sources, as a user sees them (`anyhow`'s `{:#}`), without anyhow.
fn anyhow_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        text.push_str(": ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    text
}
