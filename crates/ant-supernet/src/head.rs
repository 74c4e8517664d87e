//! EfficientDet's class and box nets: separable convs shared over pyramid levels, with
//! per-level batch norms, then a separable prediction conv.
//!
//! Reference: effdet `efficientdet.py::HeadNet`,
//! <https://github.com/rwightman/efficientdet-pytorch/blob/v0.4.1/effdet/efficientdet.py>

use burn::module::{Module, Param};
use burn::nn::BatchNorm;
use burn::tensor::{Device, Tensor};

use crate::error::Result;
use crate::nn::{SeparableConv, batch_norm, load_batch_norm};
use crate::weights::WeightMap;

/// A class or box net.
#[derive(Module, Debug)]
pub struct HeadNet {
    /// `box_class_repeats` separable convs (no norm inside), shared by all levels.
    pub conv_rep: Vec<SeparableConv>,
    /// Norms `[repeat][level]`.
    pub bn_rep: Vec<Vec<BatchNorm>>,
    /// The prediction conv: `num_anchors * outputs_per_anchor` channels.
    pub predict: SeparableConv,
}

impl HeadNet {
    /// `outputs_per_anchor` is `num_classes` for the class net and 4 for the box net;
    /// `prior_bias` initialises the prediction bias (effdet: `-log((1 - 0.01) / 0.01)` for
    /// classes, 0 for boxes).
    pub fn init(
        channels: usize,
        repeats: usize,
        num_levels: usize,
        num_anchors: usize,
        outputs_per_anchor: usize,
        prior_bias: f32,
        device: &Device,
    ) -> Self {
        let mut predict =
            SeparableConv::init(channels, num_anchors * outputs_per_anchor, false, device);
        if let Some(bias) = &predict.pointwise.bias {
            predict.pointwise.bias = Some(Param::from_tensor(
                bias.val().zeros_like().add_scalar(prior_bias),
            ));
        }
        Self {
            conv_rep: (0..repeats)
                .map(|_| SeparableConv::init(channels, channels, false, device))
                .collect(),
            bn_rep: (0..repeats)
                .map(|_| {
                    (0..num_levels)
                        .map(|_| batch_norm(channels, device))
                        .collect()
                })
                .collect(),
            predict,
        }
    }

    /// # Shapes
    /// Each level `[batch, channels, h_l, w_l]` -> `[batch, num_anchors * outputs, h_l, w_l]`.
    pub fn forward(&self, levels: &[Tensor<4>]) -> Vec<Tensor<4>> {
        levels
            .iter()
            .enumerate()
            .map(|(level, x)| {
                let mut x = x.clone();
                for (conv, norms) in self.conv_rep.iter().zip(&self.bn_rep) {
                    x = ant_kernels::fast::norm_act(&norms[level], conv.forward(x), true);
                }
                self.predict.forward(x)
            })
            .collect()
    }

    /// Loads effdet's `class_net` / `box_net`. With `load_predict == false` the prediction
    /// conv keeps its initialisation (a class head for another number of classes) and the
    /// checkpoint's is only marked as seen.
    pub fn load_effdet(
        &mut self,
        weights: &mut WeightMap,
        prefix: &str,
        load_predict: bool,
        device: &Device,
    ) -> Result<()> {
        for (index, conv) in self.conv_rep.iter_mut().enumerate() {
            conv.load(weights, &format!("{prefix}.conv_rep.{index}"), device)?;
        }
        for (repeat, norms) in self.bn_rep.iter_mut().enumerate() {
            for (level, bn) in norms.iter_mut().enumerate() {
                load_batch_norm(
                    bn,
                    weights,
                    &format!("{prefix}.bn_rep.{repeat}.{level}.bn"),
                    device,
                )?;
            }
        }
        if load_predict {
            self.predict
                .load(weights, &format!("{prefix}.predict"), device)?;
        } else {
            for name in ["conv_dw.weight", "conv_pw.weight", "conv_pw.bias"] {
                weights.mark_used(&format!("{prefix}.predict.{name}"));
            }
        }
        Ok(())
    }
}
