//! Shared helpers for the criterion benches of the ant workspace (see `benches/`).

use burn::tensor::{Device, Distribution, Tensor};

/// A normalised random input of `[1, 3, size, size]`.
pub fn random_input(size: usize, device: &Device) -> Tensor<4> {
    Tensor::random([1, 3, size, size], Distribution::Normal(0.0, 1.0), device)
}

/// The input size of the temporal benches: `ANT_BENCH_SIZE` (for a quicker run), else 512.
pub fn bench_size() -> usize {
    std::env::var("ANT_BENCH_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512)
}

/// What the temporal benches run: a randomly initialised D0 supernet (4 classes) at `size`,
/// its fusion modules and gates, and one random input frame.
pub struct D0Temporal {
    /// The supernet detector.
    pub model: ant_supernet::EfficientDet,
    /// Fusion modules and gates.
    pub temporal: ant_temporal::AntTemporal,
    /// `[1, 3, size, size]`.
    pub input: Tensor<4>,
}

impl D0Temporal {
    /// Builds it on `device`.
    pub fn new(size: usize, device: &Device) -> Self {
        let config = ant_supernet::EfficientDetConfig::d0(4).with_image_size(size);
        let model = ant_supernet::EfficientDet::init(&config, device);
        let temporal = ant_temporal::AntTemporalConfig::new().init(&config.backbone, device);
        let input = random_input(size, device);
        Self {
            model,
            temporal,
            input,
        }
    }
}

/// The median of `values` (the upper middle one of an even count).
///
/// # Panics
/// When `values` is empty.
pub fn median(values: &[f64]) -> f64 {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs `run` inside a rayon pool of `RAYON_NUM_THREADS` threads (default 1), as `cargo xtask
/// eval` runs: the calling thread is a worker, so a layer split over one thread is not handed
/// to another thread.
pub fn in_pool<R: Send>(run: impl FnOnce() -> R + Send) -> R {
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
        .install(run)
}

/// An example's command line: `--name value` flags.
pub struct Flags {
    args: Vec<String>,
}

impl Flags {
    /// The process's arguments.
    pub fn from_env() -> Self {
        Self {
            args: std::env::args().skip(1).collect(),
        }
    }

    /// The value after `name`, if given.
    pub fn get(&self, name: &str) -> Option<String> {
        self.args
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.args.get(i + 1))
            .cloned()
    }

    /// Whether `name` is given (a flag without a value).
    pub fn has(&self, name: &str) -> bool {
        self.args.iter().any(|a| a == name)
    }

    /// The value after `name` parsed, or `default`.
    ///
    /// # Panics
    /// When the value does not parse, naming the flag.
    pub fn parse_or<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        self.get(name).map_or(default, |value| {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{name} {value:?} does not parse"))
        })
    }

    /// The detector config of `--preset`, `--size`, `--width` and `--depth` (4 classes), each
    /// defaulting to the given value.
    ///
    /// # Panics
    /// For an unknown preset or a value that does not parse.
    pub fn model_config(
        &self,
        preset: &str,
        size: usize,
        width: f64,
        depth: f64,
    ) -> ant_supernet::EfficientDetConfig {
        let preset = self.get("--preset").unwrap_or_else(|| preset.into());
        let mut config = ant_supernet::EfficientDetConfig::by_name(&preset, 4)
            .expect("preset d0, d0_plus or tiny")
            .with_image_size(self.parse_or("--size", size));
        config.backbone.width_multiplier = self.parse_or("--width", width);
        config.backbone.depth_multiplier = self.parse_or("--depth", depth);
        config
    }
}
