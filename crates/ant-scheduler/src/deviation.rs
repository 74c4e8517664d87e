//! The normalised L1 deviation between two feature maps (paper Sec. 3.3, Fig. 3).

use crate::error::SchedulerError;

/// The normalised L1 deviation of `current` from `key`:
///
/// `d = mean_i |current_i - key_i| / mean_i |key_i|`
///
/// that is, the mean absolute difference relative to the key frame's mean magnitude, so the
/// number does not depend on the scale of the features nor on their size (a deviation of 0.1
/// means the features moved by 10% of their typical magnitude). Identical features give 0. A
/// key frame whose features are all zero gives 0 when `current` is also all zero and
/// `f32::INFINITY` otherwise. Sums are accumulated in `f64`.
///
/// # Errors
/// [`SchedulerError::LengthMismatch`] when the two slices differ in length.
pub fn normalized_l1_deviation(current: &[f32], key: &[f32]) -> Result<f32, SchedulerError> {
    if current.len() != key.len() {
        return Err(SchedulerError::LengthMismatch {
            current: current.len(),
            key: key.len(),
        });
    }
    let (difference, magnitude) =
        current
            .iter()
            .zip(key)
            .fold((0.0f64, 0.0f64), |(difference, magnitude), (&a, &b)| {
                (
                    difference + f64::from((a - b).abs()),
                    magnitude + f64::from(b.abs()),
                )
            });
    Ok(if magnitude > 0.0 {
        (difference / magnitude) as f32
    } else if difference > 0.0 {
        f32::INFINITY
    } else {
        0.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_be_zero_for_identical_features() {
        let features = [1.0, -2.0, 3.5];
        assert_eq!(normalized_l1_deviation(&features, &features), Ok(0.0));
    }

    #[test]
    fn should_normalise_by_the_key_frame_magnitude() {
        // mean |a - b| = 1, mean |b| = 2.
        let key = [2.0, -2.0];
        let current = [3.0, -3.0];
        assert_eq!(normalized_l1_deviation(&current, &key), Ok(0.5));
    }

    #[test]
    fn should_not_depend_on_feature_scale() {
        let key = [1.0, 2.0, -3.0, 0.5];
        let current = [1.5, 1.0, -2.0, 0.0];
        let scaled_key: Vec<f32> = key.iter().map(|v| v * 10.0).collect();
        let scaled_current: Vec<f32> = current.iter().map(|v| v * 10.0).collect();
        let a = normalized_l1_deviation(&current, &key).unwrap();
        let b = normalized_l1_deviation(&scaled_current, &scaled_key).unwrap();
        assert!((a - b).abs() < 1e-6);
    }

    #[test]
    fn should_handle_an_all_zero_key_frame() {
        assert_eq!(normalized_l1_deviation(&[0.0, 0.0], &[0.0, 0.0]), Ok(0.0));
        assert_eq!(
            normalized_l1_deviation(&[0.0, 1.0], &[0.0, 0.0]),
            Ok(f32::INFINITY)
        );
    }

    #[test]
    fn should_reject_features_of_another_length() {
        assert_eq!(
            normalized_l1_deviation(&[1.0], &[1.0, 2.0]),
            Err(SchedulerError::LengthMismatch { current: 1, key: 2 })
        );
    }
}
