//! The prepared CPU engine computes what the Burn model computes: every stage-level feature,
//! every head output and the detections, for the full network, the smallest subnet and
//! random mixed subnets of a supernet whose every batch norm holds random statistics (so a
//! wrongly folded or wrongly chosen norm shows). The D0 parity with effdet through the
//! engine is in `parity.rs`.

use ant_supernet::prepared::{Map, PreparedDetector};
use ant_supernet::{EfficientDet, EfficientDetConfig, SubnetArch};
use burn::module::{Param, RunningState};
use burn::tensor::{Device, Distribution, Tensor};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn randomised_model(config: &EfficientDetConfig, device: &Device) -> EfficientDet {
    let mut model = EfficientDet::init(config, device);
    model.for_each_norm(|bn| {
        let [channels] = bn.gamma.dims();
        let random = |distribution| Tensor::<1>::random([channels], distribution, device);
        bn.gamma = Param::from_tensor(random(Distribution::Uniform(0.5, 1.5)));
        bn.beta = Param::from_tensor(random(Distribution::Normal(0.0, 0.2)));
        bn.running_mean = RunningState::new(random(Distribution::Normal(0.0, 0.2)));
        bn.running_var = RunningState::new(random(Distribution::Uniform(0.5, 1.5)));
    });
    model
}

/// The largest difference relative to the reference's largest magnitude.
fn relative_error(ours: &[f32], reference: Tensor<4>) -> f32 {
    let reference: Vec<f32> = reference.into_data().iter::<f32>().collect();
    assert_eq!(ours.len(), reference.len(), "shapes differ");
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let error = ours
        .iter()
        .zip(&reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    error / scale
}

fn archs() -> Vec<SubnetArch> {
    let mut rng = StdRng::seed_from_u64(11);
    let mut archs = vec![SubnetArch::LARGEST, SubnetArch::SMALLEST];
    for _ in 0..3 {
        archs.push(SubnetArch::new(std::array::from_fn(|_| rng.random_range(1..=6))).unwrap());
    }
    archs
}

/// Burn's random generator is one per backend for the process: the tests of this file
/// initialise their models one at a time from a fixed seed, so every run checks the same
/// weights.
static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn check(config: EfficientDetConfig) {
    let device = Device::flex();
    let (model, input) = {
        let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        device.seed(5);
        let model = randomised_model(&config, &device);
        let size = config.image_size;
        let input =
            Tensor::<4>::random([1, 3, size, size], Distribution::Normal(0.0, 1.0), &device);
        (model, input)
    };
    let prepared = PreparedDetector::new(&model);
    let image = Map::from_tensor(input.clone());
    let anchors = model.anchors();
    for arch in archs() {
        let features = model.forward_backbone(input.clone(), &arch).unwrap();
        let (stem, stages) = prepared.backbone(&image, &arch).unwrap();
        let error = relative_error(&stem.data, features.stem.clone());
        assert!(error < 1e-5, "arch {arch}: stem differs by {error}");
        for (index, (ours, theirs)) in stages.iter().zip(&features.stages).enumerate() {
            let error = relative_error(&ours.data, theirs.clone());
            assert!(
                error < 1e-4,
                "arch {arch}: stage {index} differs by {error}"
            );
        }
        let theirs = model.forward_pyramid(features.pyramid());
        let ours = prepared.pyramid([&stages[2], &stages[4], &stages[6]]);
        for (level, (a, b)) in ours.class.iter().zip(&theirs.class).enumerate() {
            let error = relative_error(&a.data, b.clone());
            assert!(
                error < 1e-4,
                "arch {arch}: class level {level} differs by {error}"
            );
        }
        for (level, (a, b)) in ours.boxes.iter().zip(&theirs.boxes).enumerate() {
            let error = relative_error(&a.data, b.clone());
            assert!(
                error < 1e-4,
                "arch {arch}: box level {level} differs by {error}"
            );
        }
        // The same detections. Random weights give near-tied scores, whose order float noise
        // decides, so each of our best detections must have a counterpart of the same class,
        // score and box among the reference's.
        let expected = &model.postprocess_with(&theirs, &anchors)[0];
        let found = prepared.postprocess(&ours, &anchors);
        assert_eq!(found.len(), expected.len(), "arch {arch}");
        for a in found.items.iter().take(20) {
            // Random weights decode to boxes far outside the image (box codes of ~10 through
            // `exp`, infinite when `exp` overflows), so coordinates compare relatively.
            let close = |x: f32, y: f32| x == y || (x - y).abs() <= 1e-2 + 1e-3 * y.abs();
            let matched = expected.items.iter().any(|b| {
                a.class == b.class
                    && (a.score - b.score).abs() < 1e-4
                    && close(a.bbox.x1, b.bbox.x1)
                    && close(a.bbox.y1, b.bbox.y1)
                    && close(a.bbox.x2, b.bbox.x2)
                    && close(a.bbox.y2, b.bbox.y2)
            });
            assert!(matched, "arch {arch}: {a:?} has no counterpart");
        }
    }
}

#[test]
fn should_equal_the_burn_model_on_the_tiny_preset() {
    check(EfficientDetConfig::tiny(4).with_image_size(128));
}

#[test]
fn should_equal_the_burn_model_at_half_width_and_depth() {
    // The main job's model: stages with one block, odd channel counts after rounding.
    let mut config = EfficientDetConfig::tiny(4).with_image_size(128);
    config.backbone.width_multiplier = 0.5;
    config.backbone.depth_multiplier = 0.5;
    check(config);
}

#[test]
fn should_refuse_a_ratio_the_model_does_not_hold() {
    let device = Device::flex();
    let config = EfficientDetConfig::tiny(4).with_image_size(128);
    let model = EfficientDet::init(&config, &device);
    let arch: SubnetArch = "2,2,2,2,2,2".parse().unwrap();
    let prepared = PreparedDetector::new(&model.extract(&arch).unwrap());
    let image = Map::new(3, 128, 128, vec![0.0; 3 * 128 * 128]);
    assert!(prepared.backbone(&image, &arch).is_ok());
    let error = prepared
        .backbone(&image, &SubnetArch::LARGEST)
        .unwrap_err()
        .to_string();
    assert!(error.contains("ratio 6"), "{error}");
}
