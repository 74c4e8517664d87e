//! Typed subnet descriptions: one expansion ratio per elastic MBConv6 stage.
//!
//! The paper's supernet has six elastic stages (EfficientNet-B0 stages 2..7) whose expansion
//! ratio is chosen from {1, .., 6}, giving 6^6 = 46,656 subnets. A [`SubnetArch`] is validated
//! on construction: an invalid one is an error, never a panic or a silent clamp.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SupernetError};

/// Number of elastic (MBConv6) stages in the backbone.
pub const NUM_ELASTIC_STAGES: usize = 6;
/// The largest expansion ratio (the full network).
pub const MAX_RATIO: usize = 6;
/// The smallest expansion ratio.
pub const MIN_RATIO: usize = 1;

/// The expansion ratio of each elastic stage, in order (stage 2 .. stage 7 of EfficientNet-B0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<usize>", into = "Vec<usize>")]
pub struct SubnetArch([usize; NUM_ELASTIC_STAGES]);

impl SubnetArch {
    /// The full network: every stage at expansion ratio 6.
    pub const LARGEST: SubnetArch = SubnetArch([MAX_RATIO; NUM_ELASTIC_STAGES]);
    /// The smallest subnet: every stage at expansion ratio 1.
    pub const SMALLEST: SubnetArch = SubnetArch([MIN_RATIO; NUM_ELASTIC_STAGES]);

    /// Validates six ratios, each in `1..=6`.
    pub fn new(ratios: [usize; NUM_ELASTIC_STAGES]) -> Result<Self> {
        if let Some((stage, ratio)) = ratios
            .iter()
            .enumerate()
            .find(|(_, r)| !(MIN_RATIO..=MAX_RATIO).contains(*r))
        {
            return Err(SupernetError::InvalidArch {
                text: format!("{ratios:?}"),
                reason: format!(
                    "stage {} has ratio {ratio}, expected {MIN_RATIO}..={MAX_RATIO}",
                    stage + 1
                ),
            });
        }
        Ok(Self(ratios))
    }

    /// Every stage at the same ratio.
    pub fn uniform(ratio: usize) -> Result<Self> {
        Self::new([ratio; NUM_ELASTIC_STAGES])
    }

    /// The ratios, stage by stage.
    pub fn ratios(&self) -> [usize; NUM_ELASTIC_STAGES] {
        self.0
    }

    /// The ratio of elastic stage `index` (0-based).
    pub fn ratio(&self, index: usize) -> usize {
        self.0[index]
    }

    /// Returns a copy with stage `index` (0-based) set to `ratio`.
    pub fn with_ratio(mut self, index: usize, ratio: usize) -> Result<Self> {
        self.0[index] = ratio;
        Self::new(self.0)
    }

    /// Enumerates all 6^6 subnets in lexicographic order.
    pub fn all() -> impl Iterator<Item = SubnetArch> {
        (0..MAX_RATIO.pow(NUM_ELASTIC_STAGES as u32)).map(|mut code| {
            let mut ratios = [0; NUM_ELASTIC_STAGES];
            for slot in ratios.iter_mut().rev() {
                *slot = code % MAX_RATIO + 1;
                code /= MAX_RATIO;
            }
            SubnetArch(ratios)
        })
    }
}

impl Default for SubnetArch {
    fn default() -> Self {
        Self::LARGEST
    }
}

impl fmt::Display for SubnetArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|r| r.to_string()).collect();
        write!(f, "{}", parts.join(","))
    }
}

impl FromStr for SubnetArch {
    type Err = SupernetError;

    /// Parses `"6,6,6,6,6,6"` (commas, optional spaces).
    fn from_str(text: &str) -> Result<Self> {
        let invalid = |reason: String| SupernetError::InvalidArch {
            text: text.to_string(),
            reason,
        };
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        if parts.len() != NUM_ELASTIC_STAGES {
            return Err(invalid(format!(
                "expected {NUM_ELASTIC_STAGES} comma-separated ratios, found {}",
                parts.len()
            )));
        }
        let mut ratios = [0; NUM_ELASTIC_STAGES];
        for (slot, part) in ratios.iter_mut().zip(&parts) {
            *slot = part
                .parse()
                .map_err(|_| invalid(format!("{part:?} is not a whole number")))?;
        }
        Self::new(ratios).map_err(|error| match error {
            SupernetError::InvalidArch { reason, .. } => invalid(reason),
            other => other,
        })
    }
}

impl TryFrom<Vec<usize>> for SubnetArch {
    type Error = SupernetError;

    fn try_from(ratios: Vec<usize>) -> Result<Self> {
        let array: [usize; NUM_ELASTIC_STAGES] =
            ratios
                .clone()
                .try_into()
                .map_err(|_| SupernetError::InvalidArch {
                    text: format!("{ratios:?}"),
                    reason: format!(
                        "expected {NUM_ELASTIC_STAGES} ratios, found {}",
                        ratios.len()
                    ),
                })?;
        Self::new(array)
    }
}

impl From<SubnetArch> for Vec<usize> {
    fn from(arch: SubnetArch) -> Self {
        arch.0.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_parse_and_display_round_trip() {
        let arch: SubnetArch = "1, 2,3,4,5,6".parse().unwrap();
        assert_eq!(arch.ratios(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(arch.to_string(), "1,2,3,4,5,6");
    }

    #[test]
    fn should_reject_out_of_range_ratio_with_stage_named() {
        let error = "6,6,7,6,6,6".parse::<SubnetArch>().unwrap_err().to_string();
        assert!(error.contains("stage 3 has ratio 7"), "{error}");
        assert!("0,6,6,6,6,6".parse::<SubnetArch>().is_err());
    }

    #[test]
    fn should_reject_wrong_count_and_garbage() {
        assert!(
            "6,6,6"
                .parse::<SubnetArch>()
                .unwrap_err()
                .to_string()
                .contains("found 3")
        );
        assert!(
            "6,6,x,6,6,6"
                .parse::<SubnetArch>()
                .unwrap_err()
                .to_string()
                .contains("\"x\"")
        );
        assert!(SubnetArch::try_from(vec![1, 2]).is_err());
    }

    #[test]
    fn should_enumerate_every_subnet_once() {
        let all: Vec<SubnetArch> = SubnetArch::all().collect();
        assert_eq!(all.len(), 46_656);
        assert_eq!(all[0], SubnetArch::SMALLEST);
        assert_eq!(*all.last().unwrap(), SubnetArch::LARGEST);
    }

    #[test]
    fn should_deserialize_only_valid_archs() {
        let arch: SubnetArch = serde_json::from_str("[6,5,4,3,2,1]").unwrap();
        assert_eq!(arch.ratio(0), 6);
        assert!(serde_json::from_str::<SubnetArch>("[6,5,4,3,2,9]").is_err());
    }
}
