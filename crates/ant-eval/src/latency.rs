//! The per-subnet latency table of the static subnet search ("D0 w/ NAS" in the paper's
//! Table 1), the Pareto front of accuracy against latency, and the robust statistics
//! (medians) the evaluation reports.
//!
//! Latency is a property of the machine, not of the run: the table is a JSON file keyed by
//! (subnet, input size, detector config, thread count, backend) so a second evaluation on the
//! same machine reuses every measurement instead of timing the subnets again.

use std::collections::BTreeMap;
use std::path::Path;

use ant_supernet::{EfficientDetConfig, SubnetArch};
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use ant_supernet::checkpoint::write_atomic;

/// One measured subnet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyEntry {
    /// The subnet, `r1,r2,r3,r4,r5,r6`.
    pub arch: String,
    /// Square input size in pixels.
    pub image_size: usize,
    /// Threads of the CPU pool during the measurement.
    pub threads: usize,
    /// FNV-1a hash of the detector config (JSON), so another model shape misses the cache.
    pub config_hash: String,
    /// The backend (`flex`, `wgpu`, ...), as the device prints it.
    pub backend: String,
    /// Median milliseconds per frame (batch 1, forward + decoding of the boxes + NMS).
    pub ms: f64,
    /// Timed runs behind the median.
    pub runs: usize,
}

/// What identifies a latency measurement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyKey {
    /// The subnet.
    pub arch: SubnetArch,
    /// Square input size in pixels.
    pub image_size: usize,
    /// Threads of the CPU pool.
    pub threads: usize,
    /// Hash of the detector config.
    pub config_hash: String,
    /// The backend.
    pub backend: String,
}

impl LatencyKey {
    /// The key of `arch` on a detector with `config`, `threads` threads, `backend`.
    pub fn new(
        arch: SubnetArch,
        config: &EfficientDetConfig,
        threads: usize,
        backend: impl Into<String>,
    ) -> Self {
        Self {
            arch,
            image_size: config.image_size,
            threads,
            config_hash: config_hash(config),
            backend: backend.into(),
        }
    }

    /// The table key: `arch|size|threads|hash|backend`.
    pub fn text(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.arch, self.image_size, self.threads, self.config_hash, self.backend
        )
    }
}

/// FNV-1a (64 bit) of the config's JSON, as 16 hex digits.
pub fn config_hash(config: &EfficientDetConfig) -> String {
    let text = serde_json::to_string(config).expect("a detector config always serialises");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The cached latency table (a JSON file).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyTable {
    /// Entries by [`LatencyKey::text`].
    pub entries: BTreeMap<String, LatencyEntry>,
}

impl LatencyTable {
    /// Reads the table at `path`; a missing file is an empty table.
    pub fn load(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(path).map_err(|source| EvalError::io(path, source))?;
        serde_json::from_str(&text).map_err(|source| EvalError::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes the table atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("a latency table always serialises");
        Ok(write_atomic(path, text.as_bytes())?)
    }

    /// The cached median for `key`.
    pub fn get(&self, key: &LatencyKey) -> Option<f64> {
        self.entries.get(&key.text()).map(|entry| entry.ms)
    }

    /// The cached median for `key`, or `measure()` (then cached). Returns the milliseconds and
    /// whether they came from the cache.
    pub fn get_or_measure(
        &mut self,
        key: &LatencyKey,
        runs: usize,
        measure: impl FnOnce() -> Result<f64>,
    ) -> Result<(f64, bool)> {
        if let Some(ms) = self.get(key) {
            return Ok((ms, true));
        }
        let ms = measure()?;
        self.entries.insert(
            key.text(),
            LatencyEntry {
                arch: key.arch.to_string(),
                image_size: key.image_size,
                threads: key.threads,
                config_hash: key.config_hash.clone(),
                backend: key.backend.clone(),
                ms,
                runs,
            },
        );
        Ok((ms, false))
    }
}

/// Indices of the points on the Pareto front of higher `accuracy` and lower `cost`, by
/// ascending cost. A point is on the front when no other point is at least as accurate and
/// at most as costly with one of the two strictly better; of exact duplicates the first is
/// kept. Non-finite points are never on the front.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len())
        .filter(|&i| points[i].0.is_finite() && points[i].1.is_finite())
        .collect();
    // Ascending cost; at equal cost the more accurate first, then the earlier index.
    order.sort_by(|&a, &b| {
        points[a]
            .1
            .total_cmp(&points[b].1)
            .then(points[b].0.total_cmp(&points[a].0))
            .then(a.cmp(&b))
    });
    let mut front = Vec::new();
    let mut best = f64::NEG_INFINITY;
    for index in order {
        // Every point seen so far costs at most as much; keep this one only if it is
        // strictly more accurate than all of them.
        if points[index].0 > best {
            best = points[index].0;
            front.push(index);
        }
    }
    front
}

/// The median of `values` (mean of the two middle values for an even count); `None` when
/// empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        0.5 * (sorted[middle - 1] + sorted[middle])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_keep_only_undominated_points_by_ascending_cost() {
        // (accuracy, cost)
        let points = [
            (0.30, 10.0), // 0: front (most accurate)
            (0.20, 5.0),  // 1: front
            (0.10, 6.0),  // 2: dominated by 1
            (0.25, 8.0),  // 3: front
            (0.05, 2.0),  // 4: front (cheapest)
            (0.25, 9.0),  // 5: dominated by 3 (same accuracy, costs more)
            (0.30, 12.0), // 6: dominated by 0
            (f64::NAN, 1.0),
        ];
        assert_eq!(pareto_front(&points), vec![4, 1, 3, 0]);
    }

    #[test]
    fn should_keep_one_of_exact_duplicates_and_handle_empty_input() {
        assert_eq!(pareto_front(&[(0.5, 1.0), (0.5, 1.0)]), vec![0]);
        assert!(pareto_front(&[]).is_empty());
        // At equal cost only the more accurate point is on the front.
        assert_eq!(pareto_front(&[(0.1, 1.0), (0.2, 1.0)]), vec![1]);
    }

    #[test]
    fn should_take_the_middle_value_as_median() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn should_reuse_cached_latencies_and_persist_them() {
        let config = EfficientDetConfig::tiny(4).with_image_size(128);
        let key = LatencyKey::new(SubnetArch::SMALLEST, &config, 1, "flex");
        let mut table = LatencyTable::default();
        let mut measured = 0;
        let (ms, cached) = table
            .get_or_measure(&key, 5, || {
                measured += 1;
                Ok(12.5)
            })
            .unwrap();
        assert_eq!((ms, cached, measured), (12.5, false, 1));
        let path = std::env::temp_dir().join(format!(
            "ant-latency-table-{}/table.json",
            std::process::id()
        ));
        table.save(&path).unwrap();
        let mut reloaded = LatencyTable::load(&path).unwrap();
        assert_eq!(reloaded, table);
        let (ms, cached) = reloaded
            .get_or_measure(&key, 5, || panic!("must come from the cache"))
            .unwrap();
        assert_eq!((ms, cached), (12.5, true));
        // Another thread count, input size or model is another measurement.
        let other_threads = LatencyKey::new(SubnetArch::SMALLEST, &config, 2, "flex");
        let other_size = LatencyKey::new(
            SubnetArch::SMALLEST,
            &EfficientDetConfig::tiny(4).with_image_size(256),
            1,
            "flex",
        );
        assert!(reloaded.get(&other_threads).is_none());
        assert!(reloaded.get(&other_size).is_none());
        std::fs::remove_dir_all(path.parent().unwrap()).ok();
    }
}
