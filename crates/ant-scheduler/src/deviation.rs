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
    let (difference, magnitude) = l1_sums(current, key);
    Ok(if magnitude > 0.0 {
        (difference / magnitude) as f32
    } else if difference > 0.0 {
        f32::INFINITY
    } else {
        0.0
    })
}

/// Lanes of the partial sums: independent accumulators the compiler keeps in vector
/// registers, so the sum is bound by load throughput instead of one add's latency.
const LANES: usize = 16;
/// Elements summed in `f32` before the partial sums are added into `f64` totals: short enough
/// that the `f32` sums keep about seven digits over any map size.
const CHUNK: usize = 1024;

/// `(sum |a - b|, sum |b|)` in a fixed order (the same bits on every machine): lane `l` of a
/// chunk sums elements `l, l + LANES, ...`, the lanes are added in order into `f64`.
fn l1_sums(current: &[f32], key: &[f32]) -> (f64, f64) {
    let (mut difference, mut magnitude) = (0.0f64, 0.0f64);
    for (current, key) in current.chunks(CHUNK).zip(key.chunks(CHUNK)) {
        let (mut d, mut m) = ([0.0f32; LANES], [0.0f32; LANES]);
        let mut current_lanes = current.chunks_exact(LANES);
        let mut key_lanes = key.chunks_exact(LANES);
        for (a, b) in (&mut current_lanes).zip(&mut key_lanes) {
            for lane in 0..LANES {
                d[lane] += (a[lane] - b[lane]).abs();
                m[lane] += b[lane].abs();
            }
        }
        for (lane, (a, b)) in current_lanes
            .remainder()
            .iter()
            .zip(key_lanes.remainder())
            .enumerate()
        {
            d[lane] += (a - b).abs();
            m[lane] += b.abs();
        }
        for lane in 0..LANES {
            difference += f64::from(d[lane]);
            magnitude += f64::from(m[lane]);
        }
    }
    (difference, magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_match_a_sum_in_f64_to_seven_digits() {
        // A stem map's size (16 x 128 x 128) plus a remainder, values of a post-swish map.
        let len = 16 * 128 * 128 + 7;
        let value = |i: usize, shift: f32| ((i as f32 * 0.618_034 + shift).sin() * 3.0).max(-0.28);
        let key: Vec<f32> = (0..len).map(|i| value(i, 0.0)).collect();
        let current: Vec<f32> = (0..len).map(|i| value(i, 0.05)).collect();
        let (difference, magnitude) = current
            .iter()
            .zip(&key)
            .fold((0.0f64, 0.0f64), |acc, (&a, &b)| {
                (acc.0 + f64::from((a - b).abs()), acc.1 + f64::from(b.abs()))
            });
        let expected = difference / magnitude;
        let got = f64::from(normalized_l1_deviation(&current, &key).unwrap());
        assert!(
            ((got - expected) / expected).abs() < 1e-6,
            "{got} vs {expected}"
        );
    }

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
