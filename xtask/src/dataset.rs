//! `cargo xtask dataset ...`: UA-DETRAC tools (issue 3).
//!
//! - `stats --xml FILE | --root DIR [--json]`: counts of one annotation file or a whole release;
//!   with `--json` the last line is one JSON object with keys `sequence`, `annotated_frames`,
//!   `max_frame`, `targets`, `ignored_regions`, `vehicle_types`, `classes`.
//! - `synth --out DIR [--seed S] [--sequences N] [--frames F]`: the synthetic release.
//! - `to-coco --root DIR [--split train|test] [--frame-step N] [--max-sequences N]
//!   [--ignored-as-crowd] --out GT.json`: COCO ground truth of a split, with the ignored regions
//!   in an extra `ignored_regions` key (read by `coco-eval --protocol detrac`) or, with
//!   `--ignored-as-crowd`, as `iscrowd` boxes of every category (for pycocotools).

use std::path::PathBuf;

use ant_detrac::{
    IgnoredRegionsAs, ReleaseLayout, SequenceAnnotation, SequenceStats, Split, SynthConfig,
    load_split, to_coco_with, write_dataset,
};
use anyhow::Context;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};

/// The dataset tools.
#[derive(Subcommand, Debug)]
pub enum DatasetCommand {
    /// Statistics of one annotation file or a whole release.
    Stats(StatsArgs),
    /// Write a synthetic dataset in the exact UA-DETRAC on-disk format (XML v3 + JPEG).
    Synth(SynthArgs),
    /// Export one split of a release as COCO ground truth (with its ignored regions).
    ToCoco(ToCocoArgs),
}

/// Flags of `dataset stats`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("input").required(true).args(["xml", "root"])))]
pub struct StatsArgs {
    /// One annotation file (v1 or v3 schema).
    #[arg(long)]
    pub xml: Option<PathBuf>,
    /// A release directory: every sequence with an annotation file, then the total.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Print one JSON object as the last line (the total for `--root`).
    #[arg(long)]
    pub json: bool,
}

/// Flags of `dataset synth`.
#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Output directory (created; existing files are overwritten).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed: the same seed writes the same dataset.
    #[arg(long, default_value_t = SynthConfig::default().seed)]
    pub seed: u64,
    /// Number of sequences (40% of them, every third from the second, are test sequences).
    #[arg(long, default_value_t = SynthConfig::default().sequences)]
    pub sequences: usize,
    /// Frames per sequence.
    #[arg(long, default_value_t = SynthConfig::default().frames)]
    pub frames: u32,
    /// Frame width in pixels.
    #[arg(long, default_value_t = SynthConfig::default().width)]
    pub width: u32,
    /// Frame height in pixels.
    #[arg(long, default_value_t = SynthConfig::default().height)]
    pub height: u32,
    /// Camera closeness: vehicle sizes in pixels scale with it (0.5..=2.5).
    #[arg(long, default_value_t = SynthConfig::default().zoom)]
    pub zoom: f32,
}

/// Which split to export.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum SplitArg {
    /// The training sequences.
    Train,
    /// The test sequences.
    Test,
}

/// Flags of `dataset to-coco`.
#[derive(Args, Debug)]
pub struct ToCocoArgs {
    /// The release directory (its `splits.tsv`, else the official split).
    #[arg(long)]
    pub root: PathBuf,
    /// The split to export.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    pub split: SplitArg,
    /// Keep every n-th annotated frame of each sequence (`cargo xtask eval` scores the run
    /// config's `data.test_frame_step`, 2 in configs/default.json, or its `--frame-step`).
    #[arg(long, default_value_t = 1)]
    pub frame_step: usize,
    /// Export only the first N sequences of the split (as `cargo xtask eval --max-sequences`).
    #[arg(long)]
    pub max_sequences: Option<usize>,
    /// Write each ignored region as an `iscrowd: 1` box of every category on each frame, for
    /// plain COCO tools such as pycocotools, instead of the `ignored_regions` key that
    /// `coco-eval --protocol detrac` reads (the crowd rule is not DETRAC's: see
    /// docs/results.md).
    #[arg(long)]
    pub ignored_as_crowd: bool,
    /// The COCO JSON file to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs the command.
pub fn run(command: DatasetCommand) -> anyhow::Result<()> {
    match command {
        DatasetCommand::Stats(args) => stats(args),
        DatasetCommand::Synth(args) => synth(args),
        DatasetCommand::ToCoco(args) => to_coco_command(args),
    }
}

fn stats(args: StatsArgs) -> anyhow::Result<()> {
    let total = if let Some(xml) = &args.xml {
        let annotation = SequenceAnnotation::from_file(xml)
            .with_context(|| format!("reading {}", xml.display()))?;
        let stats = SequenceStats::of(&annotation);
        println!("{}", stats.to_text());
        stats
    } else {
        let root = args
            .root
            .as_ref()
            .context("give --xml FILE or --root DIR")?;
        anyhow::ensure!(root.is_dir(), "{} is not a directory", root.display());
        let layout = ReleaseLayout::new(root);
        let sequences = layout
            .sequences()
            .with_context(|| format!("listing {}", root.display()))?;
        anyhow::ensure!(
            !sequences.is_empty(),
            "no annotation file under {}",
            root.display()
        );
        let mut total = SequenceStats::empty("*");
        for paths in &sequences {
            let annotation = SequenceAnnotation::from_file(&paths.annotation)
                .with_context(|| format!("reading {}", paths.annotation.display()))?;
            let stats = SequenceStats::of(&annotation);
            println!("{}", stats.to_text());
            total.merge(&stats);
        }
        println!(
            "total of {} sequences:\n{}",
            sequences.len(),
            total.to_text()
        );
        total
    };
    if args.json {
        println!("{}", serde_json::to_string(&total)?);
    }
    Ok(())
}

fn synth(args: SynthArgs) -> anyhow::Result<()> {
    let config = SynthConfig {
        seed: args.seed,
        sequences: args.sequences,
        frames: args.frames,
        width: args.width,
        height: args.height,
        zoom: args.zoom,
        ..SynthConfig::default()
    };
    let started = std::time::Instant::now();
    let summary = write_dataset(&config, &args.out)
        .with_context(|| format!("writing the synthetic dataset to {}", args.out.display()))?;
    for info in &summary.sequences {
        println!(
            "{} {:5} activity {:.2} {:6} {} frames ({} annotated), {} targets, \
             motion {:.2} px/frame, static {:.0}%",
            info.name,
            info.split.as_str(),
            info.activity,
            info.weather,
            info.image_frames,
            info.annotated_frames,
            info.targets,
            info.mean_motion,
            100.0 * info.static_fraction
        );
    }
    println!(
        "wrote {} sequences to {} in {:.1} s",
        summary.sequences.len(),
        args.out.display(),
        started.elapsed().as_secs_f32()
    );
    Ok(())
}

fn to_coco_command(args: ToCocoArgs) -> anyhow::Result<()> {
    let split = match args.split {
        SplitArg::Train => Split::Train,
        SplitArg::Test => Split::Test,
    };
    anyhow::ensure!(
        args.root.is_dir(),
        "{} is not a directory",
        args.root.display()
    );
    let layout = ReleaseLayout::new(&args.root);
    let mut sequences = load_split(&layout, split)
        .with_context(|| format!("reading the {split} split of {}", args.root.display()))?;
    if let Some(limit) = args.max_sequences {
        sequences.truncate(limit);
    }
    anyhow::ensure!(
        !sequences.is_empty(),
        "no {split} sequence of the split list under {}",
        args.root.display()
    );
    let regions_as = if args.ignored_as_crowd {
        IgnoredRegionsAs::Crowd
    } else {
        IgnoredRegionsAs::Key
    };
    let coco = to_coco_with(&sequences, &args.root, args.frame_step, regions_as)
        .with_context(|| format!("exporting {}", args.root.display()))?;
    let json = coco.to_json_string();
    if let Some(parent) = args
        .out
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&args.out, json).with_context(|| format!("writing {}", args.out.display()))?;
    let crowd = coco.annotations.iter().filter(|a| a.iscrowd != 0).count();
    let regions = match &coco.ignored_regions {
        Some(regions) => format!("{} ignored regions (key ignored_regions)", regions.len()),
        None => format!("{crowd} crowd boxes for the ignored regions"),
    };
    println!(
        "wrote {} images, {} boxes, {regions} of {} {split} sequences to {}",
        coco.images.len(),
        coco.annotations.len() - crowd,
        sequences.len(),
        args.out.display()
    );
    Ok(())
}
