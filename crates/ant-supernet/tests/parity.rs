//! Parity of the whole detector with effdet's `tf_efficientdet_d0` on the shared fixture.

mod common;

use ant_supernet::parity::run_parity;
use burn::tensor::Device;

#[test]
fn should_match_effdet_reference_outputs() {
    let Some(dir) = common::shared("fixtures/effdet-d0") else {
        return;
    };
    let report = run_parity(
        &dir.join("tf_efficientdet_d0_random.pth"),
        &dir.join("expected.safetensors"),
        &Device::flex(),
    )
    .unwrap();
    for entry in &report.entries {
        println!(
            "{:<32} {:.3e} (<= {:.0e})",
            entry.name, entry.max_abs_error, entry.tolerance
        );
    }
    assert!(
        report.entries.len() >= 3 + 10 + 2,
        "too few reference tensors compared"
    );
    assert!(report.passed(), "parity failed: {:#?}", report.entries);
}
