//! The outputs of `cargo xtask eval`: [`RunEvaluation`] (`report.json`), the summary, the
//! markdown table with its commentary (where AP is lost, the Skip-Conv rows, ANT against the
//! static front), and [`write_outputs`].

use std::path::Path;

use ant_supernet::checkpoint::write_atomic;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::methods::MethodReport;
use crate::plots::plots;
use crate::search::{SearchReport, SearchSample};
use crate::subnet::Summary;

/// The whole evaluation (`report.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEvaluation {
    /// The run directory.
    pub run_dir: String,
    /// The dataset root.
    pub data_root: String,
    /// The split evaluated.
    pub split: String,
    /// Its sequences.
    pub sequences: Vec<String>,
    /// Frames streamed per method.
    pub frames: usize,
    /// Frames scored per method.
    pub scored_frames: usize,
    /// Every `frame_step`-th annotated frame is scored.
    pub frame_step: usize,
    /// Input size in pixels.
    pub image_size: usize,
    /// Threads of the CPU pool.
    pub threads: usize,
    /// The device.
    pub device: String,
    /// Median ms to decode, letterbox and normalise a frame (excluded from method latency).
    pub decode_ms_median: Option<f64>,
    /// Mean of the same.
    pub decode_ms_mean: f64,
    /// Warm-up frames per method.
    pub warmup_frames: usize,
    /// The methods.
    pub methods: Vec<MethodReport>,
    /// The static subnet search, when run.
    pub search: Option<SearchReport>,
    /// What was skipped and why.
    pub notes: Vec<String>,
    /// Wall-clock seconds per phase.
    pub seconds: Vec<(String, f64)>,
}

impl RunEvaluation {
    /// The summary (`{"methods": [..]}`).
    pub fn summary(&self) -> Summary {
        Summary {
            methods: self.methods.iter().map(MethodReport::summary).collect(),
        }
    }

    /// The method named `name`.
    pub fn method(&self, name: &str) -> Option<&MethodReport> {
        self.methods.iter().find(|method| method.name == name)
    }
}

fn optional_ms(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_string(), |ms| format!("{ms:.1}"))
}

/// The markdown report: the analogue of the paper's Table 1, ratio histograms, the search and
/// the speedup of each adaptive threshold over `static-full`.
pub fn markdown_table(evaluation: &RunEvaluation) -> String {
    let mut text = String::new();
    let baseline = evaluation.method("static-full");
    text.push_str(&format!(
        "Run `{}`, split `{}` ({} sequences, {} frames streamed per method, {} scored: the \
         annotated frames at step {}), {} px, device `{}`, {} thread(s), batch 1, {} warm-up frames \
         per method. Decoding a frame (JPEG, letterbox, normalisation) took {} ms (median), \
         excluded from the latencies below. `ms/frame` is amortised from medians: key rate x \
         median key-frame ms + (1 - key rate) x median other-frame ms.\n\n",
        evaluation.run_dir,
        evaluation.split,
        evaluation.sequences.len(),
        evaluation.frames,
        evaluation.scored_frames,
        evaluation.frame_step,
        evaluation.image_size,
        evaluation.device,
        evaluation.threads,
        evaluation.warmup_frames,
        optional_ms(evaluation.decode_ms_median),
    ));
    text.push_str(
        "| method | AP | AP50 | AP75 | GMAC/frame | ms/frame | key-frame ms | other-frame ms | \
         fusion+gates ms | key rate | params | speedup | AP vs static-full |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for method in &evaluation.methods {
        let (speedup, delta) = baseline.map_or(("—".into(), "—".into()), |base| {
            (
                format!("{:.2}x", base.ms / method.ms.max(1e-9)),
                format!("{:+.3}", method.ap - base.ap),
            )
        });
        text.push_str(&format!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {} | {} | {} | {:.3} | {} | {} | {} \
             |\n",
            method.name,
            method.ap,
            method.ap50,
            method.ap75,
            method.gmac,
            method.ms,
            optional_ms(method.ms_key_median),
            optional_ms(method.ms_non_key_median),
            optional_ms(method.fusion_gate_ms_median),
            method.key_rate,
            method.params,
            speedup,
            delta,
        ));
    }
    if let Some(base) = baseline {
        let adaptive: Vec<&MethodReport> = evaluation
            .methods
            .iter()
            .filter(|m| m.family == "ant-adaptive" || m.family == "ant-fixed")
            .collect();
        if !adaptive.is_empty() {
            text.push_str("\nANT against `static-full` (amortised ms/frame, AP):\n\n");
            for method in adaptive {
                text.push_str(&format!(
                    "- `{}`: {:.2}x ({:.1} vs {:.1} ms/frame), {:.3} vs {:.3} GMAC/frame, AP \
                     {:.3} vs {:.3} ({:+.3}), AP50 {:.3} vs {:.3} ({:+.3}); key rate {:.3}{}\n",
                    method.name,
                    base.ms / method.ms.max(1e-9),
                    method.ms,
                    base.ms,
                    method.gmac,
                    base.gmac,
                    method.ap,
                    base.ap,
                    method.ap - base.ap,
                    method.ap50,
                    base.ap50,
                    method.ap50 - base.ap50,
                    method.key_rate,
                    method
                        .deviation_median
                        .map_or(String::new(), |d| format!(", median stem deviation {d:.3}")),
                ));
            }
        }
    }
    text.push_str(&where_ap_is_lost(evaluation));
    text.push_str(&skipconv_rows(evaluation));
    text.push_str(&against_the_front(evaluation));
    text.push_str(
        "\nChosen ratios per elastic stage over the frames that are not key frames (counts of \
         ratios 1/2/3/4/5/6; key frames always run 6):\n\n\
         | method | stage 1 | stage 2 | stage 3 | stage 4 | stage 5 | stage 6 |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for method in &evaluation.methods {
        let cells: Vec<String> = method
            .ratio_histogram
            .iter()
            .map(|row| {
                row.iter()
                    .map(|count| count.to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect();
        text.push_str(&format!("| {} | {} |\n", method.name, cells.join(" | ")));
    }
    if let Some(search) = &evaluation.search {
        text.push_str(&format!(
            "\nStatic subnet search: {} subnets of the stage-1 supernet on {} validation frames \
             (training sequences {} held out; seen in training, never the test split); latency \
             from `{}` ({} cached, {} measured now); {:.1} s.\n\n\
             | subnet | val AP | val AP50 | GMAC | ms | on front | evaluated |\n\
             |---|---|---|---|---|---|---|\n",
            search.samples.len(),
            search.val_frames,
            search.val_sequences.join(", "),
            search.latency_table,
            search.cache_hits,
            search.measured,
            search.seconds,
        ));
        let mut samples: Vec<&SearchSample> = search.samples.iter().collect();
        samples.sort_by(|a, b| a.ms.total_cmp(&b.ms));
        for sample in samples {
            text.push_str(&format!(
                "| {} | {:.3} | {:.3} | {:.3} | {:.1}{} | {} | {} |\n",
                sample.arch,
                sample.ap,
                sample.ap50,
                sample.gmac,
                sample.ms,
                if sample.cached { " (cached)" } else { "" },
                if sample.on_front { "yes" } else { "" },
                if search.evaluated.contains(&sample.arch) {
                    "yes"
                } else {
                    ""
                },
            ));
        }
    }
    if !evaluation.notes.is_empty() {
        text.push('\n');
        for note in &evaluation.notes {
            text.push_str(&format!("- note: {note}\n"));
        }
    }
    text
}

/// The adaptive point whose AP is within `tolerance` of static-full's at the best speed (or
/// the one with the best AP when none is).
fn best_adaptive(evaluation: &RunEvaluation, tolerance: f64) -> Option<&MethodReport> {
    let base = evaluation.method("static-full")?;
    let adaptive = evaluation
        .methods
        .iter()
        .filter(|m| m.family == "ant-adaptive");
    adaptive
        .clone()
        .filter(|m| m.ap >= base.ap - tolerance)
        .min_by(|a, b| a.ms.total_cmp(&b.ms))
        .or_else(|| adaptive.max_by(|a, b| a.ap.total_cmp(&b.ap)))
}

/// The "where AP is lost" table: standalone detector -> supernet -> fusion -> gates ->
/// key-frame schedule, each row the method isolating one step.
fn where_ap_is_lost(evaluation: &RunEvaluation) -> String {
    let find = |prefix: &str, suffix: &str| {
        evaluation
            .methods
            .iter()
            .find(|m| m.name.starts_with(prefix) && m.name.ends_with(suffix))
    };
    let adaptive = best_adaptive(evaluation, 0.005);
    let rows = [
        (
            "standalone detector (stage 0)",
            evaluation.method("static-full"),
        ),
        (
            "supernet, full network (stage 1)",
            evaluation.method("static-nas@6,6,6,6,6,6"),
        ),
        (
            "supernet, smallest subnet",
            evaluation.method("static-nas@1,1,1,1,1,1"),
        ),
        (
            "fusion, non-key frames at the widest width",
            find("ant-fixed", "+width@6,6,6,6,6,6"),
        ),
        (
            "fusion, non-key frames at the smallest width",
            find("ant-fixed", "+width@1,1,1,1,1,1"),
        ),
        (
            "gates (fixed key frames)",
            evaluation.methods.iter().find(|m| m.family == "ant-fixed"),
        ),
        (
            "adaptive key frames (the fastest within 0.005 AP)",
            adaptive,
        ),
    ];
    if rows.iter().filter(|(_, m)| m.is_some()).count() < 3 {
        return String::new();
    }
    let base = evaluation.method("static-full");
    let mut text = String::from(
        "\nWhere AP is lost, from the standalone detector to ANT (each row the method that \
         isolates one step):\n\n\
         | step | method | AP | AP vs static-full | ms/frame | key rate |\n\
         |---|---|---|---|---|---|\n",
    );
    for (step, method) in rows {
        if let Some(method) = method {
            text.push_str(&format!(
                "| {step} | {} | {:.3} | {} | {:.1} | {:.3} |\n",
                method.name,
                method.ap,
                base.map_or("—".into(), |b| format!("{:+.3}", method.ap - b.ap)),
                method.ms,
                method.key_rate,
            ));
        }
    }
    text
}

/// Table 1's Skip-Conv row per threshold: both kernels' latency beside static-full's.
fn skipconv_rows(evaluation: &RunEvaluation) -> String {
    let dense: Vec<&MethodReport> = evaluation
        .methods
        .iter()
        .filter(|m| m.family == "skipconv")
        .collect();
    let Some(base) = evaluation.method("static-full") else {
        return String::new();
    };
    if dense.is_empty() {
        return String::new();
    }
    let mut text = String::from(
        "\nD0 w/ Skip-Conv (norm gates on every convolution of `static-full`'s network): GMAC \
         of the recomputed positions; ms with the dense kernel (every convolution whole, the \
         gates on top: what a CPU user gets) and with our sparse kernel (only the recomputed \
         positions).\n\n\
         | threshold | AP | AP vs static-full | GMAC/frame | share of static-full's GMAC | \
         dense-kernel ms | sparse-kernel ms | speedup dense / sparse |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for method in dense {
        let threshold = method.threshold.unwrap_or(0.0);
        let sparse = evaluation.method(&format!("skipconv-sparse@{threshold}"));
        text.push_str(&format!(
            "| {threshold} | {:.3} | {:+.3} | {:.3} | {:.2} | {:.1} | {} | {:.2}x / {} |\n",
            method.ap,
            method.ap - base.ap,
            method.gmac,
            method.gmac / base.gmac.max(1e-12),
            method.ms,
            sparse.map_or("—".into(), |s| format!("{:.1}", s.ms)),
            base.ms / method.ms.max(1e-9),
            sparse.map_or("—".into(), |s| format!(
                "{:.2}x",
                base.ms / s.ms.max(1e-9)
            )),
        ));
    }
    text
}

/// Fig. 4's comparison as a table: each adaptive point against the best static subnet of the
/// searched front at or below its latency.
fn against_the_front(evaluation: &RunEvaluation) -> String {
    let statics: Vec<&MethodReport> = evaluation
        .methods
        .iter()
        .filter(|m| m.family == "static-nas")
        .collect();
    let adaptive: Vec<&MethodReport> = evaluation
        .methods
        .iter()
        .filter(|m| m.family == "ant-adaptive")
        .collect();
    if statics.is_empty() || adaptive.is_empty() {
        return String::new();
    }
    let mut text = String::from(
        "\nANT adaptive against the static-NAS front (Fig. 4): the best static subnet at or \
         below the same latency.\n\n\
         | method | ms/frame | AP | best static at or below | its AP | ANT at or above |\n\
         |---|---|---|---|---|---|\n",
    );
    let mut wins = 0;
    for method in &adaptive {
        let best = statics
            .iter()
            .filter(|s| s.ms <= method.ms)
            .max_by(|a, b| a.ap.total_cmp(&b.ap));
        let (name, ap, at_or_above) = match best {
            Some(best) => (
                best.name.clone(),
                format!("{:.3}", best.ap),
                method.ap >= best.ap,
            ),
            None => ("none as fast".into(), "—".into(), true),
        };
        wins += usize::from(at_or_above);
        text.push_str(&format!(
            "| {} | {:.1} | {:.3} | {name} | {ap} | {} |\n",
            method.name,
            method.ms,
            method.ap,
            if at_or_above { "yes" } else { "no" },
        ));
    }
    text.push_str(&format!(
        "\n{wins} of {} adaptive points at or above the front.\n",
        adaptive.len()
    ));
    text
}

/// Writes `report.json` (everything), `summary.json` (the `--json` summary), `table.md`,
/// `ap-vs-gmac.svg` and `ap-vs-latency.svg` into `out_dir`, each atomically (the COCO results
/// per method, `detections/<method>.json`, are written by [`evaluate_run`]).
pub fn write_outputs(evaluation: &RunEvaluation, out_dir: &Path) -> Result<()> {
    let json = serde_json::to_string_pretty(evaluation).expect("a report always serialises");
    write_atomic(&out_dir.join("report.json"), json.as_bytes())?;
    let summary =
        serde_json::to_string_pretty(&evaluation.summary()).expect("a summary always serialises");
    write_atomic(&out_dir.join("summary.json"), summary.as_bytes())?;
    write_atomic(
        &out_dir.join("table.md"),
        markdown_table(evaluation).as_bytes(),
    )?;
    let (gmac, latency) = plots(evaluation);
    write_atomic(&out_dir.join("ap-vs-gmac.svg"), gmac.as_bytes())?;
    write_atomic(&out_dir.join("ap-vs-latency.svg"), latency.as_bytes())?;
    Ok(())
}
