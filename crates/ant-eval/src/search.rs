//! The static subnet search ("D0 w/ NAS"): sampled subnets of the stage-1 supernet, their AP on
//! a validation split held out of the training sequences, their latency from the cached table
//! ([`crate::latency`]), and the Pareto front that is evaluated on the test split.

use std::path::Path;
use std::time::Instant;

use ant_detrac::LoadedSequence;
use ant_supernet::arch::{MAX_RATIO, NUM_ELASTIC_STAGES};
use ant_supernet::{EfficientDet, SubnetArch};
use ant_temporal::Mode;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::latency::{LatencyKey, LatencyTable, pareto_front};
use crate::methods::{MethodRun, MethodSpec};
use crate::options::EvalOptions;
use crate::run::info;
use crate::streaming::stream_pass;
use crate::subnet::EvalGroundTruth;

/// One sampled subnet of the search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchSample {
    /// The subnet.
    pub arch: String,
    /// Validation AP.
    pub ap: f64,
    /// Validation AP50.
    pub ap50: f64,
    /// GMAC per frame.
    pub gmac: f64,
    /// Median ms per frame from the latency table.
    pub ms: f64,
    /// Whether the latency came from the cached table.
    pub cached: bool,
    /// On the Pareto front of validation AP vs latency.
    pub on_front: bool,
}

/// The static subnet search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchReport {
    /// The held-out training sequences.
    pub val_sequences: Vec<String>,
    /// Validation frames scored per subnet.
    pub val_frames: usize,
    /// Every sampled subnet.
    pub samples: Vec<SearchSample>,
    /// The front, by ascending latency.
    pub front: Vec<String>,
    /// The front subnets evaluated on the split.
    pub evaluated: Vec<String>,
    /// The latency table file.
    pub latency_table: String,
    /// Latencies taken from the table / measured now.
    pub cache_hits: usize,
    /// Latencies measured in this run.
    pub measured: usize,
    /// Wall-clock seconds of the search.
    pub seconds: f64,
}

/// `count` distinct subnets among those the model holds (`available[stage]`: its ratios):
/// the largest and the smallest first, then uniform random ones from `seed`.
pub fn sample_archs(count: usize, seed: u64, available: &[Vec<usize>]) -> Vec<SubnetArch> {
    let pick = |choose: &dyn Fn(&[usize]) -> usize| {
        let mut ratios = [MAX_RATIO; NUM_ELASTIC_STAGES];
        for (stage, slot) in ratios.iter_mut().enumerate() {
            *slot = choose(&available[stage]);
        }
        SubnetArch::new(ratios).expect("ratios of the model are valid")
    };
    let mut archs = Vec::new();
    for arch in [
        pick(&|ratios| *ratios.iter().max().expect("a stage has ratios")),
        pick(&|ratios| *ratios.iter().min().expect("a stage has ratios")),
    ] {
        if archs.len() < count && !archs.contains(&arch) {
            archs.push(arch);
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5ea7c4);
    let mut attempts = 0;
    while archs.len() < count && attempts < 1000 * count.max(1) {
        attempts += 1;
        let mut ratios = [MAX_RATIO; NUM_ELASTIC_STAGES];
        for (stage, slot) in ratios.iter_mut().enumerate() {
            *slot = available[stage][rng.random_range(0..available[stage].len())];
        }
        let arch = SubnetArch::new(ratios).expect("ratios of the model are valid");
        if !archs.contains(&arch) {
            archs.push(arch);
        }
    }
    archs
}

/// `limit` indices of `front` evenly spaced, both ends kept.
fn spread(front: &[usize], limit: usize) -> Vec<usize> {
    if limit == 0 {
        return Vec::new();
    }
    if front.len() <= limit {
        return front.to_vec();
    }
    if limit == 1 {
        return vec![front[front.len() - 1]];
    }
    let mut picked: Vec<usize> = (0..limit)
        .map(|i| front[(i * (front.len() - 1) + (limit - 1) / 2) / (limit - 1)])
        .collect();
    picked.dedup();
    picked
}

/// Training sequences held out for the search: `count` of them, evenly spaced in name order.
pub fn validation_sequences(train: &[LoadedSequence], count: usize) -> Vec<LoadedSequence> {
    let mut sorted: Vec<&LoadedSequence> = train.iter().collect();
    sorted.sort_by(|a, b| a.paths.name.cmp(&b.paths.name));
    let count = count.min(sorted.len());
    (0..count)
        .map(|i| sorted[i * sorted.len() / count].clone())
        .collect()
}

/// The search: sample subnets, validation AP of each (recalibrated), latency from the table,
/// the Pareto front. Returns the report and the front subnets to evaluate on the split.
pub(crate) fn run_search(
    supernet: &EfficientDet,
    recalibrated: &dyn Fn(&EfficientDet, &SubnetArch) -> Result<EfficientDet>,
    train_sequences: &[LoadedSequence],
    root: &Path,
    frame_step: usize,
    options: &EvalOptions,
    out_dir: &Path,
) -> Result<(Option<SearchReport>, Vec<SubnetArch>)> {
    let started = Instant::now();
    let search = &options.search;
    let val = validation_sequences(train_sequences, search.val_sequences);
    if val.is_empty() {
        return Ok((None, Vec::new()));
    }
    let ground_truth = EvalGroundTruth::new(&val, root, frame_step)?;
    let available: Vec<Vec<usize>> = supernet
        .backbone
        .stages
        .iter()
        .map(|stage| stage[0].ratios.clone())
        .collect();
    let archs = sample_archs(search.samples, search.seed, &available);
    let table_path = search
        .latency_table
        .clone()
        .unwrap_or_else(|| out_dir.join("latency-table.json"));
    let mut table = LatencyTable::load(&table_path)?;
    let backend = format!("{:?}", options.device);
    let (mut hits, mut measured) = (0, 0);
    // Every sampled subnet in one interleaved pass (as the test pass), so load changes hit
    // them alike; latency is the median over the validation frames after the warm-up.
    let mut runs = Vec::with_capacity(archs.len());
    for arch in &archs {
        runs.push(MethodRun::new(
            MethodSpec {
                name: format!("search@{arch}"),
                family: "static-nas",
                source: String::new(),
                threshold: None,
                arch: Some(*arch),
                params: supernet.cost(arch).total.params,
            },
            recalibrated(supernet, arch)?,
            None,
            Mode::static_subnet(*arch),
        )?);
    }
    info(
        options.progress,
        &format!(
            "search: {} subnets on {} validation frames",
            archs.len(),
            ground_truth.image_ids.len()
        ),
    );
    stream_pass(
        &mut runs,
        &val,
        &ground_truth,
        supernet.config.image_size,
        options.warmup_frames,
        true,
        &options.device,
    )?;
    let mut samples = Vec::new();
    for (index, (arch, run)) in archs.iter().zip(&runs).enumerate() {
        let report = run.report(&ground_truth)?;
        let key = LatencyKey::new(*arch, &supernet.config, options.threads, backend.clone());
        if search.remeasure_latency {
            table.entries.remove(&key.text());
        }
        let (ms, cached) = table.get_or_measure(&key, report.frames, || Ok(report.ms))?;
        if cached {
            hits += 1;
        } else {
            measured += 1;
        }
        info(
            options.progress,
            &format!(
                "search {}/{}: {arch} val AP {:.3} AP50 {:.3} {:.1} ms{}",
                index + 1,
                archs.len(),
                report.ap,
                report.ap50,
                ms,
                if cached { " (cached)" } else { "" }
            ),
        );
        samples.push(SearchSample {
            arch: arch.to_string(),
            ap: report.ap,
            ap50: report.ap50,
            gmac: report.gmac,
            ms,
            cached,
            on_front: false,
        });
    }
    drop(runs);
    table.save(&table_path)?;
    let points: Vec<(f64, f64)> = samples.iter().map(|s| (s.ap, s.ms)).collect();
    let front = pareto_front(&points);
    for &index in &front {
        samples[index].on_front = true;
    }
    let evaluated = spread(&front, search.max_front);
    Ok((
        Some(SearchReport {
            val_sequences: val.iter().map(|s| s.paths.name.clone()).collect(),
            val_frames: ground_truth.image_ids.len(),
            front: front.iter().map(|&i| samples[i].arch.clone()).collect(),
            evaluated: evaluated.iter().map(|&i| samples[i].arch.clone()).collect(),
            samples,
            latency_table: table_path.display().to_string(),
            cache_hits: hits,
            measured,
            seconds: started.elapsed().as_secs_f64(),
        }),
        evaluated.iter().map(|&i| archs[i]).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_sample_distinct_subnets_starting_with_the_extremes() {
        let all: Vec<Vec<usize>> = vec![(1..=6).collect(); NUM_ELASTIC_STAGES];
        let archs = sample_archs(12, 0, &all);
        assert_eq!(archs.len(), 12);
        assert_eq!(archs[0], SubnetArch::LARGEST);
        assert_eq!(archs[1], SubnetArch::SMALLEST);
        for (i, a) in archs.iter().enumerate() {
            assert!(!archs[i + 1..].contains(a), "{a} twice");
        }
        assert_eq!(archs, sample_archs(12, 0, &all));
        assert_ne!(archs[2..], sample_archs(12, 1, &all)[2..]);
        // A model holding only ratio 6 has one subnet.
        let only_six = vec![vec![6]; NUM_ELASTIC_STAGES];
        assert_eq!(sample_archs(12, 0, &only_six), vec![SubnetArch::LARGEST]);
    }

    #[test]
    fn should_spread_a_long_front_keeping_both_ends() {
        let front: Vec<usize> = (10..20).collect();
        let picked = spread(&front, 4);
        assert_eq!(picked.len(), 4);
        assert_eq!(picked[0], 10);
        assert_eq!(picked[3], 19);
        assert_eq!(spread(&front[..3], 6), vec![10, 11, 12]);
    }
}
