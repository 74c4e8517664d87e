//! Host-side random numbers that are pure functions of a seed (SplitMix64), for the draws of
//! a training step that must not depend on which thread of a data-parallel step asks first:
//! drop-path masks here, the gates' Gumbel noise in `ant-temporal`. The device's generator is
//! one per backend and process, shared by every thread.

/// SplitMix64's finaliser: a well-mixed 64-bit hash of `value`.
pub fn splitmix64(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform number in `[0, 1)` from the top 24 bits of `splitmix64(seed)`.
pub fn uniform(seed: u64) -> f32 {
    (splitmix64(seed) >> 40) as f32 / (1u64 << 24) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_spread_consecutive_seeds_over_the_unit_interval() {
        let draws: Vec<f32> = (0..10_000u64).map(uniform).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = draws.iter().sum::<f32>() / draws.len() as f32;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        let low = draws.iter().filter(|u| **u < 0.1).count();
        assert!((900..1100).contains(&low), "{low}");
    }
}
