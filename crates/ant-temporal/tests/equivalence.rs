//! The training-time forward (`forward_clip`, the supernet's narrowed weights, batched with
//! per-sample ratios) and the streaming engine (`AntDetector`, pre-extracted weights) compute
//! the same head outputs for the same choices.

use ant_supernet::{EfficientDet, EfficientDetConfig, HeadOutputs, SubnetArch};
use ant_temporal::{
    AntDetector, AntTemporal, AntTemporalConfig, GateSampling, Mode, forward_clip,
    forward_clip_train, forward_non_key,
};
use burn::module::Module;
use burn::prelude::*;
use burn::tensor::Distribution;

const IMAGE_SIZE: usize = 128;

fn setup(device: &Device) -> (EfficientDet, AntTemporal) {
    let config = EfficientDetConfig::tiny(4).with_image_size(IMAGE_SIZE);
    let model = EfficientDet::init(&config, device);
    let temporal = AntTemporalConfig::new().init(&config.backbone, device);
    (model, temporal)
}

fn frame(batch: usize, seed_offset: f64, device: &Device) -> Tensor<4> {
    Tensor::random(
        [batch, 3, IMAGE_SIZE, IMAGE_SIZE],
        Distribution::Normal(seed_offset, 1.0),
        device,
    )
}

/// Largest absolute difference over every level, relative to the largest magnitude.
fn relative_difference(a: &HeadOutputs, b: &HeadOutputs) -> f32 {
    let mut worst = 0.0f32;
    for (x, y) in a
        .class
        .iter()
        .chain(&a.boxes)
        .zip(b.class.iter().chain(&b.boxes))
    {
        assert_eq!(x.dims(), y.dims());
        let scale: f32 = x.clone().abs().max().into_scalar();
        let difference: f32 = (x.clone() - y.clone()).abs().max().into_scalar();
        worst = worst.max(difference / scale.max(1.0));
    }
    worst
}

fn sample(outputs: &HeadOutputs, index: usize) -> HeadOutputs {
    let pick = |levels: &Vec<Tensor<4>>| {
        levels
            .iter()
            .map(|level| level.clone().narrow(0, index, 1))
            .collect()
    };
    HeadOutputs {
        class: pick(&outputs.class),
        boxes: pick(&outputs.boxes),
    }
}

#[test]
fn should_match_the_engine_when_gates_take_the_argmax() {
    let device = Device::flex();
    let (model, temporal) = setup(&device);
    let key = frame(1, 0.0, &device);
    let non_key = frame(1, 0.3, &device);
    let mut engine = AntDetector::new(
        model.clone(),
        Some(temporal.clone()),
        Mode::fixed_interval(2),
    )
    .unwrap();
    assert!(engine.forward_frame(key.clone()).unwrap().key);
    let streamed = engine.forward_frame(non_key.clone()).unwrap();
    assert!(!streamed.key);

    let trained =
        forward_clip(&model, &temporal, key, non_key, GateSampling::Argmax, false).unwrap();
    assert_eq!(trained.choices, [streamed.arch]);
    let difference = relative_difference(&streamed.outputs, &trained.outputs);
    assert!(difference < 1e-4, "relative difference {difference}");
}

#[test]
fn should_match_the_engine_for_fixed_mixed_ratios() {
    let device = Device::flex();
    let (model, temporal) = setup(&device);
    let arch: SubnetArch = "1,3,2,6,4,5".parse().unwrap();
    let key = frame(1, 0.0, &device);
    let non_key = frame(1, -0.2, &device);
    let mode = Mode::fixed_interval(2).with_fixed_width(arch);
    let mut engine = AntDetector::new(model.clone(), Some(temporal.clone()), mode).unwrap();
    engine.forward_frame(key.clone()).unwrap();
    let streamed = engine.forward_frame(non_key.clone()).unwrap();
    assert_eq!(streamed.arch, arch);

    let trained = forward_clip(
        &model,
        &temporal,
        key,
        non_key,
        GateSampling::Fixed(arch),
        false,
    )
    .unwrap();
    let difference = relative_difference(&streamed.outputs, &trained.outputs);
    assert!(difference < 1e-4, "relative difference {difference}");
}

/// Every fusion design (the paper's module; residual on the current, on the key frame's
/// feature; the blend) with stages reading the fused or their own features: the engine (the
/// prepared CPU path) and the training forward agree. The fusion norms are randomised, so
/// every residual branch and mask is far from its start.
#[test]
fn should_match_the_engine_for_every_fusion_design() {
    use ant_temporal::FusionAnchor;
    use burn::module::{Param, RunningState};
    let device = Device::flex();
    let config = EfficientDetConfig::tiny(4).with_image_size(IMAGE_SIZE);
    let model = EfficientDet::init(&config, &device);
    let arch: SubnetArch = "2,1,4,3,6,1".parse().unwrap();
    let key = frame(1, 0.0, &device);
    let non_key = frame(1, 0.25, &device);
    let designs = [
        (false, FusionAnchor::Current),
        (true, FusionAnchor::Current),
        (true, FusionAnchor::Key),
        (true, FusionAnchor::Blend),
    ];
    let all: Vec<usize> = (0..7).collect();
    let cases = designs
        .iter()
        .flat_map(|&design| [(design, true, all.clone()), (design, false, all.clone())])
        .chain([
            ((true, FusionAnchor::Blend), false, vec![2, 4, 6]),
            ((true, FusionAnchor::Key), true, vec![1, 4, 6]),
        ]);
    for ((residual, anchor), fused_input, fusion_stages) in cases {
        {
            let mut temporal = AntTemporalConfig::new()
                .with_residual_fusion(residual)
                .with_fusion_anchor(anchor)
                .with_fused_input(fused_input)
                .with_fusion_stages(fusion_stages.clone())
                .init(&config.backbone, &device);
            for fusion in temporal.present_fusions_mut() {
                for bn in [&mut fusion.bn_pointwise, &mut fusion.bn_depthwise] {
                    let [c] = bn.gamma.dims();
                    let random = |d| Tensor::<1>::random([c], d, &device);
                    bn.gamma = Param::from_tensor(random(Distribution::Uniform(0.5, 1.5)));
                    bn.beta = Param::from_tensor(random(Distribution::Normal(0.0, 0.5)));
                    bn.running_mean = RunningState::new(random(Distribution::Normal(0.0, 0.2)));
                    bn.running_var = RunningState::new(random(Distribution::Uniform(0.5, 1.5)));
                }
            }
            let mode = Mode::fixed_interval(2).with_fixed_width(arch);
            let mut engine = AntDetector::new(model.clone(), Some(temporal.clone()), mode).unwrap();
            engine.forward_frame(key.clone()).unwrap();
            let streamed = engine.forward_frame(non_key.clone()).unwrap();
            let trained = forward_clip(
                &model,
                &temporal,
                key.clone(),
                non_key.clone(),
                GateSampling::Fixed(arch),
                false,
            )
            .unwrap();
            let difference = relative_difference(&streamed.outputs, &trained.outputs);
            assert!(
                difference < 1e-4,
                "residual {residual} anchor {anchor:?} fused input {fused_input} stages \
                 {fusion_stages:?}: {difference}"
            );
            // The engine's Burn path (every device but the plain CPU one) agrees too.
            let autodiff = device.clone().autodiff();
            let mut burn_engine = AntDetector::new(
                model.clone().to_device(&autodiff),
                Some(temporal.clone().to_device(&autodiff)),
                mode,
            )
            .unwrap();
            burn_engine
                .forward_frame(key.clone().to_device(&autodiff))
                .unwrap();
            let burn_streamed = burn_engine
                .forward_frame(non_key.clone().to_device(&autodiff))
                .unwrap();
            let on_cpu = |outputs: HeadOutputs| HeadOutputs {
                class: outputs
                    .class
                    .into_iter()
                    .map(|x| x.to_device(&device))
                    .collect(),
                boxes: outputs
                    .boxes
                    .into_iter()
                    .map(|x| x.to_device(&device))
                    .collect(),
            };
            let difference = relative_difference(&on_cpu(burn_streamed.outputs), &trained.outputs);
            assert!(
                difference < 1e-4,
                "Burn path, residual {residual} anchor {anchor:?} fused input {fused_input}: \
                 {difference}"
            );
        }
    }
}

#[test]
fn should_match_the_engine_without_fusion_in_the_non_temporal_mode() {
    let device = Device::flex();
    let (model, temporal) = setup(&device);
    let x = frame(1, 0.1, &device);
    let mut engine =
        AntDetector::new(model.clone(), Some(temporal.clone()), Mode::non_temporal()).unwrap();
    let streamed = engine.forward_frame(x.clone()).unwrap();
    assert!(!streamed.key);
    let trained = forward_non_key(&model, &temporal, None, x, GateSampling::Argmax).unwrap();
    assert_eq!(trained.choices, [streamed.arch]);
    let difference = relative_difference(&streamed.outputs, &trained.outputs);
    assert!(difference < 1e-4, "relative difference {difference}");
}

#[test]
fn should_run_each_sample_of_a_gumbel_batch_at_its_own_ratios() {
    let device = Device::flex();
    let (model, temporal) = setup(&device);
    let key = frame(3, 0.0, &device);
    let non_key = frame(3, 0.5, &device);
    // A high temperature makes different choices within the batch likely.
    let batched = forward_clip_train(
        &model,
        &temporal,
        key.clone(),
        non_key.clone(),
        50.0,
        true,
        false,
    )
    .unwrap();
    assert_eq!(batched.choices.len(), 3);
    assert_eq!(batched.expected_gmac.dims(), [3]);
    assert_eq!(batched.gate_probs.len(), 6);
    assert_eq!(batched.fused_stages.len(), 7);
    // The batch mixes ratios within a stage, so the grouping path runs (all three samples
    // agreeing at all six stages has probability (1/36)^6 at this temperature).
    let mixed = (0..6).any(|stage| {
        let ratios: Vec<usize> = batched.choices.iter().map(|a| a.ratio(stage)).collect();
        ratios.iter().any(|&r| r != ratios[0])
    });
    assert!(mixed, "{:?}", batched.choices);
    for (index, arch) in batched.choices.iter().enumerate() {
        let single = forward_clip(
            &model,
            &temporal,
            key.clone().narrow(0, index, 1),
            non_key.clone().narrow(0, index, 1),
            GateSampling::Fixed(*arch),
            false,
        )
        .unwrap();
        let difference = relative_difference(&sample(&batched.outputs, index), &single.outputs);
        assert!(difference < 1e-4, "sample {index} ({arch}): {difference}");
    }
}

#[test]
fn should_give_gates_gradients_from_the_loss_and_the_expected_cost() {
    let device = Device::flex().autodiff();
    let (model, temporal) = setup(&device);
    let key = frame(2, 0.0, &device);
    let non_key = frame(2, 0.2, &device);
    let output = forward_clip_train(&model, &temporal, key, non_key, 1.0, true, false).unwrap();
    let gmac: Vec<f32> = output.expected_gmac.to_data().try_to_vec().unwrap();
    // Between the smallest and the largest subnet plus fusion and gates (tiny at 128 px).
    assert!(gmac.iter().all(|&g| g > 0.0 && g < 1.0), "{gmac:?}");
    let loss = output.outputs.class[0].clone().mean() + output.expected_gmac.sum();
    let grads = loss.backward();
    for gate in &temporal.gates {
        let gradient = gate
            .fc2
            .weight
            .val()
            .grad(&grads)
            .expect("gate gets a gradient");
        let magnitude: f32 = gradient.abs().sum().into_scalar();
        assert!(magnitude > 0.0);
    }
    let fusion = temporal
        .fusion(6)
        .expect("stage 6 is fused")
        .pointwise
        .weight
        .val()
        .grad(&grads);
    assert!(fusion.is_some(), "fusion modules get gradients");
}

#[test]
fn should_cost_what_the_gates_chose() {
    let device = Device::flex();
    let (model, temporal) = setup(&device);
    let key = frame(1, 0.0, &device);
    let non_key = frame(1, 0.3, &device);
    let arch = SubnetArch::SMALLEST;
    let output = forward_clip(
        &model,
        &temporal,
        key,
        non_key,
        GateSampling::Fixed(arch),
        false,
    )
    .unwrap();
    let engine = AntDetector::new(
        model,
        Some(temporal),
        Mode::fixed_interval(2).with_fixed_width(arch),
    )
    .unwrap();
    let expected: f32 = output.expected_gmac.into_scalar();
    // The engine does not run gates in a fixed-width mode; the training forward does.
    let gates = engine.costs().total_gate_macs() as f64 / 1e9;
    let engine_gmac = engine.frame_gmac(false, &arch) + gates;
    assert!(
        (f64::from(expected) - engine_gmac).abs() < 1e-5,
        "{expected} vs {engine_gmac}"
    );
}
