//! The dynamic gate (paper Sec. 3.2, after dynamic slimmable networks): global average pool,
//! FC, ReLU, FC to one score per expansion ratio. Training samples a width with the
//! straight-through Gumbel-softmax; inference takes the argmax.

use ant_supernet::arch::MAX_RATIO;
use ant_supernet::seeded::{splitmix64, uniform};
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Distribution, TensorData};

/// Configuration of one [`Gate`].
#[derive(Config, Debug)]
pub struct GateConfig {
    /// Channels of the (fused) stage feature the gate reads.
    pub channels: usize,
    /// Hidden width of the two-layer MLP.
    #[config(default = 64)]
    pub hidden: usize,
    /// Number of choices (expansion ratios 1..=num_choices).
    #[config(default = 6)]
    pub num_choices: usize,
}

impl GateConfig {
    /// A randomly initialised gate (Burn's Kaiming-uniform linear layers).
    pub fn init(&self, device: &Device) -> Gate {
        Gate {
            fc1: LinearConfig::new(self.channels, self.hidden).init(device),
            fc2: LinearConfig::new(self.hidden, self.num_choices).init(device),
        }
    }
}

/// Scores each expansion ratio of the next stage from a stage feature.
#[derive(Module, Debug)]
pub struct Gate {
    /// Pooled feature -> hidden.
    pub fc1: Linear,
    /// Hidden -> one score per ratio.
    pub fc2: Linear,
}

impl Gate {
    /// Ratio scores (logits).
    ///
    /// # Shapes
    /// `[batch, C, h, w] -> [batch, num_choices]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_pooled(pool(x))
    }

    /// Ratio scores of a non-fused stage from the current and the key frame's features side
    /// by side (`[pool(current), pool(key)]`; the gate was built for twice the channels).
    ///
    /// # Shapes
    /// `current`: `[batch, C, h, w]`, `key`: `[batch or 1, C, h, w]` -> `[batch, num_choices]`
    pub fn forward_pair(&self, current: Tensor<4>, key: Tensor<4>) -> Tensor<2> {
        let current = pool(current);
        let [batch_size, _] = current.dims();
        let key = pool(key);
        let [key_batch, channels] = key.dims();
        let key = if key_batch == batch_size {
            key
        } else {
            key.expand([batch_size, channels])
        };
        self.forward_pooled(Tensor::cat(vec![current, key], 1))
    }

    /// Ratio scores from pooled features.
    ///
    /// # Shapes
    /// `[batch, inputs] -> [batch, num_choices]`
    pub fn forward_pooled(&self, pooled: Tensor<2>) -> Tensor<2> {
        self.fc2.forward(relu(self.fc1.forward(pooled)))
    }

    /// Multiply-accumulates of the two linear layers.
    pub fn macs(&self) -> u64 {
        let [input, hidden] = self.fc1.weight.dims();
        let [_, outputs] = self.fc2.weight.dims();
        (input * hidden + hidden * outputs) as u64
    }
}

/// Global average pooling: `[batch, C, h, w] -> [batch, C]`.
fn pool(x: Tensor<4>) -> Tensor<2> {
    let [batch_size, channels, _, _] = x.dims();
    x.mean_dim(3).mean_dim(2).reshape([batch_size, channels])
}

/// Multiply-accumulates of a gate reading `channels` with `hidden` units and 6 outputs.
pub fn gate_macs(channels: usize, hidden: usize) -> u64 {
    (channels * hidden + hidden * MAX_RATIO) as u64
}

/// A straight-through Gumbel-softmax sample.
#[derive(Clone, Debug)]
pub struct GumbelSample {
    /// The weights to multiply the chosen branch by: straight-through one-hot when `hard`
    /// (value 1 at the choice, gradient of the soft sample), else the soft sample itself.
    /// `[batch, num_choices]`.
    pub weights: Tensor<2>,
    /// The chosen index per sample (argmax of the soft sample).
    pub choices: Vec<usize>,
}

/// Row-wise argmax of `[batch, n]` scores, read back to the host.
pub fn argmax_rows(scores: Tensor<2>) -> Vec<usize> {
    let [batch_size, _] = scores.dims();
    let indices = scores.argmax(1).reshape([batch_size]);
    indices
        .into_data()
        .iter::<i64>()
        .map(|index| index as usize)
        .collect()
}

/// One-hot rows for `choices` (`[choices.len(), num_choices]`), as a constant tensor.
pub fn one_hot_rows(choices: &[usize], num_choices: usize, device: &Device) -> Tensor<2> {
    let mut values = vec![0.0f32; choices.len() * num_choices];
    for (row, &choice) in choices.iter().enumerate() {
        values[row * num_choices + choice] = 1.0;
    }
    Tensor::from_data(
        TensorData::new(values, [choices.len(), num_choices]),
        device,
    )
}

/// Samples a choice per row of `logits` with Gumbel noise at `temperature`:
/// `y = softmax((logits + g) / temperature)`, `g = -ln(-ln u)`, `u ~ U(0, 1)` clamped to
/// `[1e-6, 1 - 1e-6]` so the logs stay finite. `u` comes from the device's generator, or,
/// with `seed`, from a host-side hash of (`seed`, row, column).
///
/// # Shapes
/// `logits`: `[batch, n]`.
pub fn gumbel_softmax(
    logits: Tensor<2>,
    temperature: f32,
    hard: bool,
    seed: Option<u64>,
) -> GumbelSample {
    assert!(
        temperature > 0.0,
        "Gumbel-softmax temperature must be positive"
    );
    let [batch_size, num_choices] = logits.dims();
    let device = logits.device();
    let uniform = match seed {
        None => Tensor::<2>::random(
            [batch_size, num_choices],
            Distribution::Uniform(0.0, 1.0),
            &device,
        ),
        Some(seed) => {
            let values: Vec<f32> = (0..(batch_size * num_choices) as u64)
                .map(|index| uniform(seed ^ splitmix64(index)))
                .collect();
            Tensor::from_data(TensorData::new(values, [batch_size, num_choices]), &device)
        }
    }
    .clamp(1e-6, 1.0 - 1e-6);
    let gumbel = uniform.log().neg().log().neg();
    let soft = softmax((logits + gumbel) / temperature, 1);
    let choices = argmax_rows(soft.clone());
    let weights = if hard {
        let one_hot = one_hot_rows(&choices, num_choices, &device);
        one_hot - soft.clone().detach() + soft
    } else {
        soft
    };
    GumbelSample { weights, choices }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_score_every_ratio() {
        let device = Device::flex();
        let gate = GateConfig::new(16).init(&device);
        let x = Tensor::<4>::random([3, 16, 4, 4], Distribution::Default, &device);
        assert_eq!(gate.forward(x).dims(), [3, 6]);
        assert_eq!(gate.macs(), gate_macs(16, 64));
    }

    #[test]
    fn should_give_one_hot_values_when_hard() {
        let device = Device::flex();
        let logits = Tensor::<2>::random([4, 6], Distribution::Default, &device);
        let sample = gumbel_softmax(logits, 0.5, true, None);
        let values: Vec<f32> = sample.weights.into_data().try_to_vec().unwrap();
        for (row, &choice) in values.chunks(6).zip(&sample.choices) {
            for (index, &value) in row.iter().enumerate() {
                let expected = if index == choice { 1.0 } else { 0.0 };
                assert!(
                    (value - expected).abs() < 1e-6,
                    "{row:?} vs choice {choice}"
                );
            }
        }
    }

    #[test]
    fn should_follow_dominant_logits_at_low_temperature() {
        let device = Device::flex();
        let logits = Tensor::<2>::from_data([[0.0, 0.0, 50.0, 0.0, 0.0, 0.0]], &device);
        let sample = gumbel_softmax(logits, 0.1, false, None);
        assert_eq!(sample.choices, [2]);
    }

    #[test]
    fn should_pass_gradients_through_the_hard_sample() {
        let device = Device::flex().autodiff();
        let logits = Tensor::<2>::random([2, 6], Distribution::Default, &device).require_grad();
        let sample = gumbel_softmax(logits.clone(), 1.0, true, Some(7));
        let target = Tensor::<2>::from_data([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; 2], &device);
        let grads = (sample.weights * target).sum().backward();
        let gradient = logits.grad(&grads).expect("logits get a gradient");
        let magnitude: f32 = gradient.abs().sum().into_scalar();
        assert!(magnitude > 0.0);
    }

    #[test]
    fn should_draw_seeded_noise_reproducibly_and_evenly() {
        let device = Device::flex();
        let logits = Tensor::<2>::zeros([600, 6], &device);
        let first = gumbel_softmax(logits.clone(), 1.0, true, Some(11)).choices;
        // Other draws from the device's generator in between change nothing.
        let _ = Tensor::<2>::random([8, 8], Distribution::Default, &device);
        assert_eq!(
            first,
            gumbel_softmax(logits.clone(), 1.0, true, Some(11)).choices
        );
        assert_ne!(first, gumbel_softmax(logits, 1.0, true, Some(12)).choices);
        let mut counts = [0usize; 6];
        for choice in first {
            counts[choice] += 1;
        }
        // Equal logits: each choice about 100 times of 600 (binomial sd ~9).
        assert!(counts.iter().all(|&c| (60..140).contains(&c)), "{counts:?}");
    }
}
