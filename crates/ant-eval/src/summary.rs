//! The main job's evaluation (the second half of `cargo xtask train`): each trained stage on
//! the test split, its batch norms recalibrated first, into `summary.json` (the format
//! `cargo xtask eval --json` prints).
//!
//! - stage 0: `static-full`;
//! - stage 1: `supernet-largest` and `supernet-smallest`;
//! - stage 2: `ant-fixed<clip_len>` (ANT with the training schedule's key frames) or
//!   `dynamic-non-temporal`, per trained variant.

use std::time::Instant;

use ant_supernet::checkpoint::write_atomic;
use ant_supernet::{EfficientDet, SubnetArch};
use ant_temporal::Mode;
use ant_train::joint::recalibrate_joint;
use ant_train::norms::recalibrate_norms;
use ant_train::{PipelineOutcome, TrainConfig};
use burn::tensor::Device;

use crate::error::Result;
use crate::subnet::{Summary, evaluate, evaluate_stream};

/// Evaluates what [`ant_train::run_pipeline`] trained with `config` and writes
/// `summary.json` into its run directory. Returns the summary and the wall-clock seconds of
/// each evaluation (`eval-static`, `eval-supernet`, `eval-<stage>`).
///
/// # Errors
/// Unreadable test frames or annotations, a failing model, an unwritable run directory.
pub fn summarize(
    config: &TrainConfig,
    trained: &PipelineOutcome,
    device: &Device,
) -> Result<(Summary, Vec<(String, f64)>)> {
    let mut summary = Summary::default();
    let mut seconds = Vec::new();
    let recalibrate = config.eval.recalibration_batches > 0;
    let mut evaluate_into = |name: &str, model: &EfficientDet, arch: &SubnetArch| -> Result<()> {
        let recalibrated;
        let model = if recalibrate {
            recalibrated = recalibrate_norms(model, arch, &trained.calibration)?;
            &recalibrated
        } else {
            model
        };
        let report = evaluate(
            model,
            arch,
            &trained.test_sequences,
            &config.data.root,
            config.data.test_frame_step,
            config.eval.batch_size,
            device,
        )?;
        tracing::info!(name, ap = report.ap, ap50 = report.ap50, "evaluated");
        summary.methods.push(report.method(name));
        Ok(())
    };
    if let Some(model) = &trained.standalone {
        let started = Instant::now();
        evaluate_into("static-full", model, &SubnetArch::LARGEST)?;
        seconds.push(("eval-static".into(), started.elapsed().as_secs_f64()));
    }
    if let Some(model) = &trained.supernet {
        let started = Instant::now();
        for (name, arch) in [
            ("supernet-largest", SubnetArch::LARGEST),
            ("supernet-smallest", SubnetArch::SMALLEST),
        ] {
            evaluate_into(name, model, &arch)?;
        }
        seconds.push(("eval-supernet".into(), started.elapsed().as_secs_f64()));
    }
    for variant in &trained.joint {
        let started = Instant::now();
        let joint = &variant.config.joint;
        let model = if recalibrate {
            recalibrate_joint(&variant.model, &variant.calibration, joint.non_temporal)?
        } else {
            variant.model.clone()
        };
        let (name, mode) = if joint.non_temporal {
            ("dynamic-non-temporal".to_string(), Mode::non_temporal())
        } else {
            (
                format!("ant-fixed{}", joint.clip_len),
                Mode::fixed_interval(joint.clip_len),
            )
        };
        let (report, key_rate) = evaluate_stream(
            &model.detector,
            Some(&model.temporal),
            mode,
            &trained.test_sequences,
            &config.data.root,
            config.data.test_frame_step,
            device,
        )?;
        tracing::info!(
            name,
            ap = report.ap,
            ap50 = report.ap50,
            gmac = report.gmac,
            key_rate,
            "evaluated"
        );
        let mut method = report.method(name);
        method.key_rate = key_rate;
        summary.methods.push(method);
        seconds.push((
            format!("eval-{}", variant.stage),
            started.elapsed().as_secs_f64(),
        ));
    }
    let text = serde_json::to_string_pretty(&summary).expect("a summary always serialises");
    write_atomic(&trained.run_dir.join("summary.json"), text.as_bytes())?;
    Ok((summary, seconds))
}
