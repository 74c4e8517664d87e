//! Host-side random numbers that are pure functions of a seed (SplitMix64), for the draws of
//! a training step that must not depend on which thread of a data-parallel step asks first:
//! drop-path masks here, the gates' Gumbel noise in `ant-temporal`. The device's generator is
//! one per backend and process, shared by every thread.

use rand_xoshiro::SplitMix64;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};

/// A well-mixed 64-bit hash of `value`: the first output of SplitMix64 seeded with it.
pub fn splitmix64(value: u64) -> u64 {
    SplitMix64::seed_from_u64(value).next_u64()
}

/// A uniform number in `[0, 1)` from the top 24 bits of `splitmix64(seed)`.
pub fn uniform(seed: u64) -> f32 {
    (splitmix64(seed) >> 40) as f32 / (1u64 << 24) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_hash_as_splitmix64_does() {
        // SplitMix64's first outputs for seeds 0 and 1 (the reference C implementation).
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(1), 0x910a_2dec_8902_5cc1);
    }

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
