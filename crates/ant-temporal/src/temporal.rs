//! The temporal modules as one Burn module: a [`Fusion`] per stage-level feature (all seven
//! stages) and a [`Gate`] per elastic stage (six), with their own checkpoint beside the
//! detector's (`MODEL.temporal.bpk` + `MODEL.temporal.json`).

use std::path::{Path, PathBuf};

use ant_supernet::arch::{MAX_RATIO, NUM_ELASTIC_STAGES};
use ant_supernet::checkpoint::{load_config, load_module, save_module};
use ant_supernet::config::BackboneConfig;
use burn::config::Config;
use burn::module::Module;
use burn::prelude::*;

use crate::error::{Result, TemporalError};
use crate::fusion::{Fusion, FusionAnchor, FusionConfig};
use crate::gate::{Gate, GateConfig};

/// Configuration of the temporal modules.
#[derive(Config, Debug)]
pub struct AntTemporalConfig {
    /// Hidden units of each gate's MLP.
    #[config(default = 64)]
    pub gate_hidden: usize,
    /// Depthwise kernel of the fusion modules.
    #[config(default = 3)]
    pub fusion_kernel: usize,
    /// Residual fusion modules that start as the identity ([`FusionConfig::residual`]).
    #[config(default = false)]
    pub residual_fusion: bool,
    /// What residual fusion modules add their output to ([`FusionConfig::anchor`]).
    #[config(default = "FusionAnchor::Current")]
    pub fusion_anchor: FusionAnchor,
    /// Whether a non-key frame's elastic stage `s + 1` runs on the fused output of stage `s`
    /// (`true`, the design so far) or on the subnet's own output of stage `s` (`false`: the
    /// current frame's features flow through the subnet unchanged, and the fused features
    /// go to the gates and the BiFPN only). With fusion modules anchored on the key frame,
    /// `true` lets the current frame in only through the first fusion's residual branch.
    #[config(default = true)]
    pub fused_input: bool,
    /// The stage-level features (0..=6) that get a fusion module (default: all seven). A gate
    /// on a stage without one reads the pooled current and key features side by side
    /// (`[pool(current), pool(key)]`, twice the channels) instead of the pooled fused
    /// feature. `[2, 4, 6]` fuses only the BiFPN's inputs: the fusions of the large early
    /// maps (stride 2 and 4) are a third of a non-key frame's fusion time and feed nothing
    /// but gates when stages read their own features (`fused_input = false`).
    #[config(default = "vec![0, 1, 2, 3, 4, 5, 6]")]
    pub fusion_stages: Vec<usize>,
}

impl AntTemporalConfig {
    /// Fusion modules for the seven stages of `backbone` and gates for the six elastic ones.
    pub fn init(&self, backbone: &BackboneConfig, device: &Device) -> AntTemporal {
        let channels: Vec<usize> = backbone.stages().iter().map(|s| s.out_channels).collect();
        let fused = |stage: usize| self.fusion_stages.contains(&stage);
        AntTemporal {
            fusions: channels
                .iter()
                .enumerate()
                .map(|(stage, &c)| {
                    fused(stage).then(|| {
                        FusionConfig::new(c)
                            .with_kernel_size(self.fusion_kernel)
                            .with_residual(self.residual_fusion)
                            .with_anchor(self.fusion_anchor)
                            .init(device)
                    })
                })
                .collect(),
            gates: channels[..NUM_ELASTIC_STAGES]
                .iter()
                .enumerate()
                .map(|(stage, &c)| {
                    GateConfig::new(if fused(stage) { c } else { 2 * c })
                        .with_hidden(self.gate_hidden)
                        .with_num_choices(MAX_RATIO)
                        .init(device)
                })
                .collect(),
            channels,
            config: self.clone(),
        }
    }
}

/// Fusion modules and dynamic gates.
///
/// `fusions[s]` fuses stage `s` (0 = the MBConv1 stage, 1..=6 the elastic stages), when the
/// config fuses it; `gates[s]` reads the fused output of stage `s` (or, on a stage without
/// fusion, the pooled current and key features side by side) and chooses the ratio of elastic
/// stage `s + 1` (so `gates[0]`, on the MBConv1 stage, gates the first elastic stage).
#[derive(Module, Debug)]
pub struct AntTemporal {
    /// One per stage-level feature (seven), `None` where the config fuses nothing.
    pub fusions: Vec<Option<Fusion>>,
    /// One per elastic stage (six).
    pub gates: Vec<Gate>,
    /// Channels of the seven stage-level features.
    #[module(skip)]
    pub channels: Vec<usize>,
    /// The configuration.
    #[module(skip)]
    pub config: AntTemporalConfig,
}

/// Reads a saved [`AntTemporalConfig`]; files written before `residual_fusion` existed hold
/// the paper's fusion module, files written before `fusion_anchor` existed residual modules
/// anchored on the current feature, files written before `fused_input` existed stages that
/// read the fused features, files written before `fusion_stages` existed seven fusions.
fn parse_config(text: &str) -> std::result::Result<AntTemporalConfig, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_str(text)?;
    if let Some(object) = value.as_object_mut() {
        object
            .entry("residual_fusion")
            .or_insert(serde_json::Value::Bool(false));
        object
            .entry("fusion_anchor")
            .or_insert(serde_json::Value::String("Current".into()));
        object
            .entry("fused_input")
            .or_insert(serde_json::Value::Bool(true));
        object
            .entry("fusion_stages")
            .or_insert(serde_json::json!([0, 1, 2, 3, 4, 5, 6]));
    }
    serde_json::from_value(value)
}

/// Where the temporal weights of the detector checkpoint `model_path` live:
/// `MODEL.bpk` -> `MODEL.temporal.bpk`.
pub fn temporal_path(model_path: &Path) -> PathBuf {
    model_path.with_extension("temporal.bpk")
}

impl AntTemporal {
    /// Channels of the seven stage-level features.
    pub fn channels(&self) -> Vec<usize> {
        self.channels.clone()
    }

    /// The fusion module of stage-level feature `stage`, if it has one.
    pub fn fusion(&self, stage: usize) -> Option<&Fusion> {
        self.fusions.get(stage).and_then(Option::as_ref)
    }

    /// The stages among the six gated ones whose gates read key-frame features (no fusion
    /// module on them).
    pub fn key_reading_gates(&self) -> Vec<usize> {
        (0..NUM_ELASTIC_STAGES)
            .filter(|&stage| self.fusion(stage).is_none())
            .collect()
    }

    /// The fusion modules present.
    pub fn present_fusions(&self) -> impl Iterator<Item = &Fusion> {
        self.fusions.iter().flatten()
    }

    /// The fusion modules present, mutably.
    pub fn present_fusions_mut(&mut self) -> impl Iterator<Item = &mut Fusion> {
        self.fusions.iter_mut().flatten()
    }

    /// Checks that these modules fit `backbone`.
    ///
    /// # Errors
    /// [`TemporalError::BackboneMismatch`].
    pub fn check(&self, backbone: &BackboneConfig) -> Result<()> {
        let found: Vec<usize> = backbone.stages().iter().map(|s| s.out_channels).collect();
        if found != self.channels() {
            return Err(TemporalError::BackboneMismatch {
                expected: self.channels(),
                found,
            });
        }
        Ok(())
    }

    /// Saves to `path` (burnpack) and the config to `path` with `.json`, atomically
    /// (`ant_supernet::checkpoint::save_module`).
    ///
    /// # Errors
    /// [`TemporalError::Supernet`] naming the file that could not be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        Ok(save_module(&self.valid(), &self.config, path)?)
    }

    /// Loads modules saved by [`Self::save`] for `backbone`.
    ///
    /// # Errors
    /// [`TemporalError::Supernet`] for a missing, corrupt or mismatched file (named), a
    /// [`TemporalError::BackboneMismatch`] never: modules of another backbone have other
    /// shapes and are refused as mismatched.
    pub fn load(path: &Path, backbone: &BackboneConfig, device: &Device) -> Result<Self> {
        let config = load_config(path, parse_config)?;
        let mut model = config.init(backbone, device);
        load_module(&mut model, path)?;
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ant_supernet::EfficientDetConfig;

    #[test]
    fn should_build_seven_fusions_and_six_gates() {
        let device = Device::flex();
        let config = EfficientDetConfig::d0(4);
        let temporal = AntTemporalConfig::new().init(&config.backbone, &device);
        assert_eq!(temporal.channels(), [16, 24, 40, 80, 112, 192, 320]);
        assert_eq!(temporal.gates.len(), 6);
        assert!(temporal.check(&config.backbone).is_ok());
        assert!(
            temporal
                .check(&EfficientDetConfig::d0_plus(4).backbone)
                .is_err()
        );
    }

    #[test]
    fn should_read_configs_written_before_residual_fusion_as_the_papers_module() {
        let config = parse_config(r#"{"gate_hidden": 8, "fusion_kernel": 3}"#).unwrap();
        assert!(!config.residual_fusion);
        assert_eq!(config.gate_hidden, 8);
        let config =
            parse_config(r#"{"gate_hidden": 8, "fusion_kernel": 3, "residual_fusion": true}"#)
                .unwrap();
        assert!(config.residual_fusion);
        assert_eq!(config.fusion_anchor, FusionAnchor::Current);
        let config = parse_config(
            r#"{"gate_hidden": 8, "fusion_kernel": 3, "residual_fusion": true,
                "fusion_anchor": "Key"}"#,
        )
        .unwrap();
        assert_eq!(config.fusion_anchor, FusionAnchor::Key);
    }

    #[test]
    fn should_fuse_only_the_configured_stages_and_widen_the_other_gates() {
        let device = Device::flex();
        let config = EfficientDetConfig::d0(4);
        let temporal = AntTemporalConfig::new()
            .with_fusion_stages(vec![2, 4, 6])
            .init(&config.backbone, &device);
        let present: Vec<usize> = (0..7).filter(|&s| temporal.fusion(s).is_some()).collect();
        assert_eq!(present, [2, 4, 6]);
        let inputs: Vec<usize> = temporal
            .gates
            .iter()
            .map(|g| g.fc1.weight.dims()[0])
            .collect();
        assert_eq!(inputs, [32, 48, 40, 160, 112, 384]);
        assert!(temporal.check(&config.backbone).is_ok());
    }

    #[test]
    fn should_round_trip_through_a_checkpoint() {
        let device = Device::flex();
        let backbone = EfficientDetConfig::d0(4).backbone;
        let temporal = AntTemporalConfig::new()
            .with_gate_hidden(8)
            .with_residual_fusion(true)
            .init(&backbone, &device);
        let dir = std::env::temp_dir().join(format!("ant-temporal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = temporal_path(&dir.join("model.bpk"));
        assert!(path.ends_with("model.temporal.bpk"));
        temporal.save(&path).unwrap();
        let loaded = AntTemporal::load(&path, &backbone, &device).unwrap();
        assert_eq!(loaded.config.gate_hidden, 8);
        assert!(loaded.present_fusions().all(|fusion| fusion.residual));
        assert_eq!(loaded.present_fusions().count(), 7);
        let a: Vec<f32> = temporal.gates[2]
            .fc1
            .weight
            .val()
            .into_data()
            .try_to_vec()
            .unwrap();
        let b: Vec<f32> = loaded.gates[2]
            .fc1
            .weight
            .val()
            .into_data()
            .try_to_vec()
            .unwrap();
        assert_eq!(a, b);
        assert!(AntTemporal::load(&dir.join("missing.bpk"), &backbone, &device).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
