//! The supernet's contract: any subnet run through the supernet equals the same subnet
//! extracted as a standalone static model; invalid subnets and checkpoints are clear errors.

mod common;

use ant_supernet::{EfficientDet, EfficientDetConfig, SubnetArch, SupernetError};
use burn::module::{Param, RunningState};
use burn::tensor::{Device, Distribution, Tensor};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn small_config() -> EfficientDetConfig {
    EfficientDetConfig::tiny(4).with_image_size(128)
}

/// A model whose private batch norms hold distinct random statistics per ratio, so a subnet
/// that used the wrong norm would show it.
fn randomised_model(device: &Device) -> EfficientDet {
    let mut model = EfficientDet::init(&small_config(), device);
    for stage in &mut model.backbone.stages {
        for block in stage {
            for bn in block
                .bn_expand
                .iter_mut()
                .chain(&mut block.bn_depthwise)
                .chain(&mut block.bn_project)
            {
                let [channels] = bn.gamma.dims();
                bn.gamma = Param::from_tensor(Tensor::random(
                    [channels],
                    Distribution::Uniform(0.5, 1.5),
                    device,
                ));
                bn.beta = Param::from_tensor(Tensor::random(
                    [channels],
                    Distribution::Normal(0.0, 0.2),
                    device,
                ));
                bn.running_mean = RunningState::new(Tensor::random(
                    [channels],
                    Distribution::Normal(0.0, 0.2),
                    device,
                ));
                bn.running_var = RunningState::new(Tensor::random(
                    [channels],
                    Distribution::Uniform(0.5, 1.5),
                    device,
                ));
            }
        }
    }
    model
}

fn max_abs(a: Tensor<4>, b: Tensor<4>) -> f32 {
    (a - b).abs().max().into_scalar()
}

#[test]
fn should_equal_extracted_subnet_for_random_archs() {
    let device = Device::flex();
    let model = randomised_model(&device);
    let input = Tensor::<4>::random([1, 3, 128, 128], Distribution::Normal(0.0, 1.0), &device);
    let mut rng = StdRng::seed_from_u64(7);
    let mut archs = vec![SubnetArch::SMALLEST, SubnetArch::LARGEST];
    for _ in 0..4 {
        archs.push(SubnetArch::new(std::array::from_fn(|_| rng.random_range(1..=6))).unwrap());
    }
    for arch in archs {
        let extracted = model.extract(&arch).unwrap();
        let ours = model.forward(input.clone(), &arch).unwrap();
        let theirs = extracted.forward(input.clone(), &arch).unwrap();
        for (a, b) in ours
            .class
            .into_iter()
            .zip(theirs.class)
            .chain(ours.boxes.into_iter().zip(theirs.boxes))
        {
            let error = max_abs(a, b);
            assert!(
                error < 1e-5,
                "arch {arch}: supernet and extracted differ by {error}"
            );
        }
        // The extracted model holds only its own weights.
        let expected = model.cost(&arch).total.params as usize;
        assert!(extracted.trainable_params() < model.trainable_params());
        assert_eq!(extracted.trainable_params(), expected, "arch {arch}");
    }
}

#[test]
fn should_use_private_norms_per_ratio() {
    let device = Device::flex();
    let model = randomised_model(&device);
    let input = Tensor::<4>::random([1, 3, 128, 128], Distribution::Normal(0.0, 1.0), &device);
    let features = model
        .forward_backbone(input.clone(), &SubnetArch::uniform(3).unwrap())
        .unwrap();
    let other = model
        .forward_backbone(input, &SubnetArch::uniform(4).unwrap())
        .unwrap();
    assert!(max_abs(features.stages[1].clone(), other.stages[1].clone()) > 1e-3);
    assert_eq!(features.stages.len(), 7);
    assert_eq!(features.stem.dims(), [1, 32, 64, 64]);
}

#[test]
fn should_start_smaller_ratios_norms_from_the_largest() {
    // On the autodiff device, as the supernet stage does it (parameters must stay leaves).
    let device = Device::flex().autodiff();
    let mut model = randomised_model(&device);
    let values = |tensor: Tensor<1>| tensor.into_data().iter::<f32>().collect::<Vec<_>>();
    let largest_gammas = |model: &EfficientDet| -> Vec<Vec<f32>> {
        let blocks = model.backbone.stages.iter().flatten();
        blocks
            .map(|block| values(block.bn_expand.last().unwrap().gamma.val()))
            .collect()
    };
    let before = largest_gammas(&model);
    model.inherit_norms_from_largest();
    assert_eq!(before, largest_gammas(&model), "the largest is untouched");
    for block in model.backbone.stages.iter().flatten() {
        let last = block.ratios.len() - 1;
        for (index, ratio) in block.ratios.iter().enumerate() {
            let channels = block.in_channels * ratio;
            for (norms, width) in [
                (&block.bn_expand, channels),
                (&block.bn_depthwise, channels),
                (&block.bn_project, block.bn_project[last].gamma.dims()[0]),
            ] {
                let (bn, full) = (&norms[index], &norms[last]);
                assert_eq!(bn.gamma.dims(), [width]);
                assert_eq!(values(bn.gamma.val()), values(full.gamma.val())[..width]);
                assert_eq!(values(bn.beta.val()), values(full.beta.val())[..width]);
                assert_eq!(
                    values(bn.running_mean.value()),
                    values(full.running_mean.value())[..width]
                );
                assert_eq!(
                    values(bn.running_var.value()),
                    values(full.running_var.value())[..width]
                );
            }
        }
    }
    // Every subnet still runs (the inherited shapes line up).
    let input = Tensor::<4>::random([2, 3, 128, 128], Distribution::Normal(0.0, 1.0), &device);
    let output = model.forward(input, &SubnetArch::SMALLEST).unwrap();
    assert!(
        output.class[0]
            .clone()
            .into_data()
            .iter::<f32>()
            .all(f32::is_finite)
    );
}

#[test]
fn should_drop_whole_residual_branches_per_sample_in_training_only() {
    let device = Device::flex().autodiff();
    let mut model = EfficientDet::init(&small_config(), &device);
    let input = Tensor::<4>::random([16, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
    let arch = SubnetArch::LARGEST;
    let stage = |model: &EfficientDet| {
        model.forward_backbone(input.clone(), &arch).unwrap().stages[6].clone()
    };
    let reference = stage(&model);
    assert_eq!(
        max_abs(reference.clone(), stage(&model)),
        0.0,
        "deterministic at 0"
    );
    model.set_drop_path(0.9);
    let rates: Vec<f32> = model
        .backbone
        .stages
        .iter()
        .flatten()
        .map(|block| block.drop_path)
        .collect();
    assert!(rates.windows(2).all(|pair| pair[0] < pair[1]), "{rates:?}");
    assert!(rates[0] > 0.0 && *rates.last().unwrap() < 0.9);
    let dropped = stage(&model);
    let per_sample = (dropped - reference.clone())
        .abs()
        .sum_dim(1)
        .sum_dim(2)
        .sum_dim(3);
    let changed = per_sample
        .into_data()
        .iter::<f32>()
        .filter(|difference| *difference > 1e-4)
        .count();
    assert!(changed > 0, "some samples lose branches");
    model.set_drop_path(0.0);
    assert_eq!(max_abs(reference, stage(&model)), 0.0, "off again");
}

#[test]
fn should_reject_subnets_an_extracted_model_does_not_hold() {
    let device = Device::flex();
    let model = EfficientDet::init(&small_config(), &device);
    let arch: SubnetArch = "2,3,4,5,6,1".parse().unwrap();
    let extracted = model.extract(&arch).unwrap();
    let input = Tensor::<4>::zeros([1, 3, 128, 128], &device);
    let error = extracted.forward(input, &SubnetArch::LARGEST).unwrap_err();
    assert!(
        matches!(
            error,
            SupernetError::UnavailableRatio {
                stage: 1,
                ratio: 6,
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("stage 1 has no expansion ratio 6")
    );
}

#[test]
fn should_round_trip_native_checkpoint() {
    let device = Device::flex();
    let model = randomised_model(&device);
    let dir = std::env::temp_dir().join(format!("ant-ckpt-{}", std::process::id()));
    let path = dir.join("model.bpk");
    model.save(&path).unwrap();
    let loaded = EfficientDet::load(&path, &device).unwrap();
    let input = Tensor::<4>::random([1, 3, 128, 128], Distribution::Normal(0.0, 1.0), &device);
    let arch: SubnetArch = "1,2,3,4,5,6".parse().unwrap();
    let a = model.forward(input.clone(), &arch).unwrap();
    let b = loaded.forward(input, &arch).unwrap();
    assert!(max_abs(a.class[0].clone(), b.class[0].clone()) < 1e-6);
    // A checkpoint of another config is refused with the file named.
    let error =
        EfficientDet::load_with_config(&path, &EfficientDetConfig::d0(4), &device).unwrap_err();
    assert!(error.to_string().contains("model.bpk"), "{error}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn should_name_file_for_missing_or_corrupt_checkpoints() {
    let device = Device::flex();
    let missing = std::path::Path::new("/nonexistent/weights.pth");
    let error = EfficientDet::from_effdet(&small_config(), missing, &device).unwrap_err();
    assert!(
        error.to_string().contains("/nonexistent/weights.pth"),
        "{error}"
    );
    let corrupt = std::env::temp_dir().join(format!("ant-corrupt-{}.pth", std::process::id()));
    std::fs::write(&corrupt, b"this is not a checkpoint").unwrap();
    let error = EfficientDet::from_effdet(&small_config(), &corrupt, &device).unwrap_err();
    assert!(
        error.to_string().contains("not a PyTorch checkpoint"),
        "{error}"
    );
    std::fs::remove_file(corrupt).ok();
}

#[test]
fn should_refuse_effdet_checkpoint_of_another_config() {
    let Some(dir) = common::shared("fixtures/effdet-d0") else {
        return;
    };
    let device = Device::flex();
    let error = EfficientDet::from_effdet(
        &EfficientDetConfig::d0_plus(4),
        &dir.join("tf_efficientdet_d0_random.pth"),
        &device,
    )
    .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("tf_efficientdet_d0_random.pth") && text.contains("shape"),
        "{text}"
    );
}

#[test]
fn should_reinitialise_class_head_for_other_class_count() {
    let Some(dir) = common::shared("fixtures/effdet-d0") else {
        return;
    };
    let device = Device::flex();
    let model = EfficientDet::from_effdet(
        &EfficientDetConfig::d0(7).with_image_size(128),
        &dir.join("tf_efficientdet_d0_random.pth"),
        &device,
    )
    .unwrap();
    assert_eq!(model.class_net.predict.pointwise.out_channels(), 9 * 7);
}
