//! Key-frame policies and the stateful scheduler that applies one to a stream.

use serde::{Deserialize, Serialize};

use crate::deviation::normalized_l1_deviation;
use crate::error::SchedulerError;

/// How key frames are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum KeyFramePolicy {
    /// Every `n`-th frame is key, counting from the first frame of the stream (frames
    /// `0, n, 2n, ...`). `Interval(1)` makes every frame key; the paper trains with 3.
    Interval(usize),
    /// A frame is key when [`normalized_l1_deviation`] of its stem features from the last key
    /// frame's reaches `threshold` (`deviation >= threshold`). Threshold 0 makes every frame
    /// key; a threshold above every deviation keeps only the first.
    Adaptive {
        /// The deviation at which a frame becomes the new key frame.
        threshold: f32,
    },
}

impl KeyFramePolicy {
    /// A fixed interval, checked.
    ///
    /// # Errors
    /// [`SchedulerError::InvalidInterval`] for 0.
    pub fn interval(interval: usize) -> Result<Self, SchedulerError> {
        if interval == 0 {
            return Err(SchedulerError::InvalidInterval { interval });
        }
        Ok(Self::Interval(interval))
    }

    /// An adaptive threshold, checked.
    ///
    /// # Errors
    /// [`SchedulerError::InvalidThreshold`] for a negative or NaN threshold.
    pub fn adaptive(threshold: f32) -> Result<Self, SchedulerError> {
        if threshold.is_nan() || threshold < 0.0 {
            return Err(SchedulerError::InvalidThreshold { threshold });
        }
        Ok(Self::Adaptive { threshold })
    }

    /// Whether [`KeyFrameScheduler::decide`] needs the frame's stem features.
    pub fn needs_features(&self) -> bool {
        matches!(self, Self::Adaptive { .. })
    }
}

/// The outcome of one decision.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KeyDecision {
    /// Whether this frame is a key frame.
    pub key: bool,
    /// The deviation from the previous key frame (adaptive policy, not on the first frame).
    pub deviation: Option<f32>,
}

/// Applies a [`KeyFramePolicy`] to a stream of frames.
#[derive(Clone, Debug)]
pub struct KeyFrameScheduler {
    policy: KeyFramePolicy,
    /// Frames decided since the last reset.
    frame_index: usize,
    /// The stem features of the last key frame (adaptive policy only).
    key_features: Option<Vec<f32>>,
}

impl KeyFrameScheduler {
    /// A scheduler at the start of a stream.
    ///
    /// # Errors
    /// The policy's own checks ([`KeyFramePolicy::interval`], [`KeyFramePolicy::adaptive`]).
    pub fn new(policy: KeyFramePolicy) -> Result<Self, SchedulerError> {
        match policy {
            KeyFramePolicy::Interval(interval) => KeyFramePolicy::interval(interval)?,
            KeyFramePolicy::Adaptive { threshold } => KeyFramePolicy::adaptive(threshold)?,
        };
        Ok(Self {
            policy,
            frame_index: 0,
            key_features: None,
        })
    }

    /// The policy.
    pub fn policy(&self) -> KeyFramePolicy {
        self.policy
    }

    /// Whether [`Self::decide`] needs the frame's stem features.
    pub fn needs_features(&self) -> bool {
        self.policy.needs_features()
    }

    /// Decides whether the next frame is key. `stem_features` are the frame's stem output,
    /// flattened (any layout, the same for every frame); the fixed interval ignores them.
    ///
    /// # Errors
    /// [`SchedulerError::MissingFeatures`] when the adaptive policy gets `None`;
    /// [`SchedulerError::LengthMismatch`] when the features' length changes within a stream.
    pub fn decide(&mut self, stem_features: Option<&[f32]>) -> Result<KeyDecision, SchedulerError> {
        let decision = match self.policy {
            KeyFramePolicy::Interval(interval) => KeyDecision {
                key: self.frame_index.is_multiple_of(interval),
                deviation: None,
            },
            KeyFramePolicy::Adaptive { threshold } => {
                let current = stem_features.ok_or(SchedulerError::MissingFeatures)?;
                match &self.key_features {
                    None => {
                        self.key_features = Some(current.to_vec());
                        KeyDecision {
                            key: true,
                            deviation: None,
                        }
                    }
                    Some(key_features) => {
                        let deviation = normalized_l1_deviation(current, key_features)?;
                        // A NaN deviation makes the frame key: never trust a broken reference.
                        let key = deviation.is_nan() || deviation >= threshold;
                        if key {
                            self.key_features = Some(current.to_vec());
                        }
                        KeyDecision {
                            key,
                            deviation: Some(deviation),
                        }
                    }
                }
            }
        };
        self.frame_index += 1;
        Ok(decision)
    }

    /// Starts a new stream: the next frame is key.
    pub fn reset(&mut self) {
        self.frame_index = 0;
        self.key_features = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys(scheduler: &mut KeyFrameScheduler, frames: &[Vec<f32>]) -> Vec<bool> {
        frames
            .iter()
            .map(|frame| scheduler.decide(Some(frame)).unwrap().key)
            .collect()
    }

    /// Features that drift away from the first frame by `step` per frame.
    fn drifting(frames: usize, step: f32) -> Vec<Vec<f32>> {
        (0..frames)
            .map(|index| vec![1.0 + step * index as f32, -1.0, 2.0])
            .collect()
    }

    #[test]
    fn should_make_every_third_frame_key_with_interval_three() {
        let mut scheduler = KeyFrameScheduler::new(KeyFramePolicy::Interval(3)).unwrap();
        let decisions: Vec<bool> = (0..7)
            .map(|_| scheduler.decide(None).unwrap().key)
            .collect();
        assert_eq!(decisions, [true, false, false, true, false, false, true]);
    }

    #[test]
    fn should_make_the_frame_after_reset_key() {
        let mut scheduler = KeyFrameScheduler::new(KeyFramePolicy::Interval(3)).unwrap();
        assert!(scheduler.decide(None).unwrap().key);
        assert!(!scheduler.decide(None).unwrap().key);
        scheduler.reset();
        assert!(scheduler.decide(None).unwrap().key);

        let mut adaptive =
            KeyFrameScheduler::new(KeyFramePolicy::Adaptive { threshold: 1e9 }).unwrap();
        let frames = drifting(3, 0.1);
        assert_eq!(keys(&mut adaptive, &frames), [true, false, false]);
        adaptive.reset();
        assert_eq!(keys(&mut adaptive, &frames), [true, false, false]);
    }

    #[test]
    fn should_make_a_new_key_frame_when_the_deviation_reaches_the_threshold() {
        // The first key frame has sum |b| = 4; each frame moves the first value by 0.4.
        let frames = drifting(6, 0.4);
        let mut scheduler =
            KeyFrameScheduler::new(KeyFramePolicy::Adaptive { threshold: 0.15 }).unwrap();
        let decisions: Vec<KeyDecision> = frames
            .iter()
            .map(|frame| scheduler.decide(Some(frame)).unwrap())
            .collect();
        assert!(decisions[0].key && decisions[0].deviation.is_none());
        // Frame 1: |0.4| / 4 = 0.1 < 0.15; frame 2: 0.8 / 4 = 0.2 >= 0.15, new key.
        assert!(!decisions[1].key);
        assert!((decisions[1].deviation.unwrap() - 0.1).abs() < 1e-6);
        assert!(decisions[2].key);
        // Frame 3 is measured against frame 2 (sum |b| = 4.8): 0.4 / 4.8 < 0.15.
        assert!(!decisions[3].key);
    }

    #[test]
    fn should_reject_missing_features_in_adaptive_mode() {
        let mut scheduler =
            KeyFrameScheduler::new(KeyFramePolicy::Adaptive { threshold: 0.1 }).unwrap();
        assert_eq!(scheduler.decide(None), Err(SchedulerError::MissingFeatures));
    }

    #[test]
    fn should_reject_invalid_policies() {
        assert_eq!(
            KeyFrameScheduler::new(KeyFramePolicy::Interval(0)).unwrap_err(),
            SchedulerError::InvalidInterval { interval: 0 }
        );
        assert!(KeyFramePolicy::adaptive(-1.0).is_err());
        assert!(KeyFramePolicy::adaptive(f32::NAN).is_err());
    }

    proptest! {
        #[test]
        fn should_make_every_frame_key_at_threshold_zero(
            frames in prop::collection::vec(prop::collection::vec(-5.0f32..5.0, 4), 1..20)
        ) {
            let mut scheduler =
                KeyFrameScheduler::new(KeyFramePolicy::Adaptive { threshold: 0.0 }).unwrap();
            prop_assert!(keys(&mut scheduler, &frames).into_iter().all(|key| key));
        }

        #[test]
        fn should_keep_only_the_first_key_frame_at_an_infinite_threshold(
            frames in prop::collection::vec(prop::collection::vec(0.5f32..5.0, 4), 1..20)
        ) {
            let mut scheduler = KeyFrameScheduler::new(KeyFramePolicy::Adaptive {
                threshold: f32::INFINITY,
            })
            .unwrap();
            let decisions = keys(&mut scheduler, &frames);
            prop_assert!(decisions[0]);
            prop_assert!(decisions[1..].iter().all(|key| !key));
        }

        #[test]
        fn should_have_count_of_interval_keys_equal_ceil_frames_over_interval(
            frames in 1usize..50, interval in 1usize..10
        ) {
            let mut scheduler = KeyFrameScheduler::new(KeyFramePolicy::Interval(interval)).unwrap();
            let count = (0..frames).filter(|_| scheduler.decide(None).unwrap().key).count();
            prop_assert_eq!(count, frames.div_ceil(interval));
        }
    }
}
