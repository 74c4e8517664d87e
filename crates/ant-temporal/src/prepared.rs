//! The temporal modules prepared for the CPU inference engine
//! ([`ant_supernet::prepared`]): fusion modules with their norms folded and their pointwise
//! convolution split over its two inputs, gates as two small dense layers.
//!
//! A fusion module's pointwise convolution over `cat(current, key)` is `W_c current + W_k
//! key + b`. The key frame's features do not change until the next key frame, so
//! [`PreparedFusion::key_term`] computes `W_k key` once per key frame and every non-key frame
//! after it adds it: half the pointwise arithmetic of the module. (The reported GMAC still
//! counts the whole module on every non-key frame, as the paper's accounting does.)

use ant_supernet::prepared::{Activation, Dense, Depthwise, Map, Pointwise};
use burn::nn::Linear;
use burn::tensor::Tensor;

use crate::fusion::{Fusion, FusionAnchor};
use crate::gate::Gate;
use crate::temporal::AntTemporal;

fn values<const D: usize>(x: Tensor<D>) -> Vec<f32> {
    x.into_data()
        .try_into_vec::<f32>()
        .expect("float tensors hold f32")
}

/// A fusion module, prepared.
#[derive(Clone, Debug)]
pub struct PreparedFusion {
    current: Pointwise,
    key: Pointwise,
    depthwise: Depthwise,
    anchor: Option<FusionAnchor>,
}

impl PreparedFusion {
    /// Prepares `fusion`.
    pub fn new(fusion: &Fusion) -> Self {
        let pointwise = Pointwise::fold(
            fusion.pointwise.weight.val(),
            None,
            Some(&fusion.bn_pointwise),
        );
        let (current, key) = pointwise.split_inputs(fusion.channels);
        Self {
            current,
            key,
            depthwise: Depthwise::fold(
                fusion.depthwise.weight.val(),
                1,
                Some(&fusion.bn_depthwise),
                if fusion.residual && fusion.anchor == FusionAnchor::Blend {
                    Activation::Identity
                } else {
                    Activation::Swish
                },
            ),
            anchor: fusion.residual.then_some(fusion.anchor),
        }
    }

    /// `W_k key`, the key frame's share of the pointwise convolution.
    pub fn key_term(&self, key: &Map) -> Vec<f32> {
        self.key.product(key)
    }

    /// Fuses `current` with `key`, whose [`Self::key_term`] is `key_term`.
    pub fn run(&self, current: &Map, key: &Map, key_term: &[f32]) -> Map {
        let x = self
            .current
            .run_plus(current, key_term, Activation::Swish, None);
        let mut fused = self.depthwise.run(&x);
        match self.anchor {
            Some(FusionAnchor::Current) => fused.add_assign(current),
            Some(FusionAnchor::Key) => fused.add_assign(key),
            Some(FusionAnchor::Blend) => fused.blend_mask(current, key),
            None => {}
        }
        fused
    }
}

/// A gate, prepared: global average pool, dense + ReLU, dense, argmax.
#[derive(Clone, Debug)]
pub struct PreparedGate {
    fc1: Dense,
    fc2: Dense,
}

/// A Burn `Linear` (`[in, out]` weight) as a [`Dense`] (`[out, in]`).
fn dense(linear: &Linear) -> Dense {
    let [inputs, outputs] = linear.weight.dims();
    let weight = values(linear.weight.val().transpose());
    let bias = linear
        .bias
        .as_ref()
        .map_or_else(|| vec![0.0; outputs], |b| values(b.val()));
    Dense::new(weight, bias, inputs)
}

impl PreparedGate {
    /// Prepares `gate`.
    pub fn new(gate: &Gate) -> Self {
        Self {
            fc1: dense(&gate.fc1),
            fc2: dense(&gate.fc2),
        }
    }

    /// The ratio scores of the next stage.
    pub fn scores(&self, x: &Map) -> Vec<f32> {
        let hidden: Vec<f32> = self
            .fc1
            .run(&x.channel_means())
            .into_iter()
            .map(|v| v.max(0.0))
            .collect();
        self.fc2.run(&hidden)
    }

    /// The ratio scores from the current and the key frame's features side by side (a gate
    /// on a stage without fusion).
    pub fn scores_pair(&self, current: &Map, key: &Map) -> Vec<f32> {
        let mut pooled = current.channel_means();
        pooled.extend(key.channel_means());
        let hidden: Vec<f32> = self
            .fc1
            .run(&pooled)
            .into_iter()
            .map(|v| v.max(0.0))
            .collect();
        self.fc2.run(&hidden)
    }

    /// [`Self::choose`] for a gate on a stage without fusion.
    pub fn choose_pair(&self, current: &Map, key: &Map) -> usize {
        best_index(&self.scores_pair(current, key)) + 1
    }

    /// The chosen ratio (1-based): the first best score.
    pub fn choose(&self, x: &Map) -> usize {
        best_index(&self.scores(x)) + 1
    }
}

/// The index of the first largest score.
fn best_index(scores: &[f32]) -> usize {
    let mut best = 0;
    for (index, &score) in scores.iter().enumerate() {
        if score > scores[best] {
            best = index;
        }
    }
    best
}

/// Fusion modules and gates, prepared.
#[derive(Clone, Debug)]
pub struct PreparedTemporal {
    /// One per stage-level feature, where the modules have one.
    pub fusions: Vec<Option<PreparedFusion>>,
    /// One per elastic stage.
    pub gates: Vec<PreparedGate>,
}

impl PreparedTemporal {
    /// Prepares `temporal`.
    pub fn new(temporal: &AntTemporal) -> Self {
        Self {
            fusions: temporal
                .fusions
                .iter()
                .map(|f| f.as_ref().map(PreparedFusion::new))
                .collect(),
            gates: temporal.gates.iter().map(PreparedGate::new).collect(),
        }
    }
}
