//! The learning-rate schedule: linear warm-up, then step decay at epoch milestones (the
//! paper's "0.01, decayed to 0.001 at epoch 3 of 4"). A pure function of the global step, so
//! a resumed run gets exactly the rates of an uninterrupted one with no scheduler state.

use crate::config::StageSettings;

/// Warm-up plus multi-step decay.
#[derive(Clone, Debug, PartialEq)]
pub struct LrSchedule {
    /// Peak learning rate.
    pub base: f64,
    /// Steps of linear warm-up.
    pub warmup_steps: usize,
    /// Factor of `base` at step 0 of the warm-up.
    pub warmup_factor: f64,
    /// Global steps at which the rate is multiplied by `gamma`.
    pub milestones: Vec<usize>,
    /// Decay factor.
    pub gamma: f64,
}

impl LrSchedule {
    /// The schedule of a stage with `steps_per_epoch` steps in each epoch.
    pub fn for_stage(stage: &StageSettings, steps_per_epoch: usize) -> Self {
        Self {
            base: stage.lr,
            warmup_steps: stage.warmup_steps,
            warmup_factor: stage.warmup_factor,
            milestones: stage
                .lr_milestones
                .iter()
                .map(|epoch| epoch * steps_per_epoch)
                .collect(),
            gamma: stage.lr_gamma,
        }
    }

    /// The learning rate of global step `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        let decays = self.milestones.iter().filter(|m| step >= **m).count();
        let decayed = self.base * self.gamma.powi(decays as i32);
        if step < self.warmup_steps {
            let progress = step as f64 / self.warmup_steps as f64;
            decayed * (self.warmup_factor + (1.0 - self.warmup_factor) * progress)
        } else {
            decayed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_warm_up_linearly_then_decay_at_milestones() {
        let schedule = LrSchedule {
            base: 0.01,
            warmup_steps: 10,
            warmup_factor: 0.1,
            milestones: vec![30],
            gamma: 0.1,
        };
        assert!((schedule.lr_at(0) - 0.001).abs() < 1e-12);
        assert!((schedule.lr_at(5) - 0.0055).abs() < 1e-12);
        assert_eq!(schedule.lr_at(10), 0.01);
        assert_eq!(schedule.lr_at(29), 0.01);
        assert!((schedule.lr_at(30) - 0.001).abs() < 1e-12);
    }
}
