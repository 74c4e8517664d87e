//! Self-contained SVG scatter/line plots (no plotting dependency): the accuracy-vs-cost
//! figures of `cargo xtask eval` (the analogue of the paper's Fig. 4), each method a point or
//! a curve, with axes, ticks and a legend.

use crate::methods::MethodReport;
use crate::report::RunEvaluation;

/// One series of a plot.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The legend label.
    pub label: String,
    /// The points, `(x, y)`; drawn in the given order when `line` is set.
    pub points: Vec<(f64, f64)>,
    /// Join the points with a line (a curve such as a threshold sweep).
    pub line: bool,
    /// An optional label per point (e.g. the threshold), drawn next to it.
    pub point_labels: Vec<String>,
}

/// Colours of successive series.
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// Rounds `span / 6` to 1, 2 or 5 times a power of ten.
fn tick_step(span: f64) -> f64 {
    let raw = (span / 6.0).max(1e-12);
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// The axis range `[low, high]` padded by 5% and a tick step, from the data values.
fn axis(values: impl Iterator<Item = f64>, include_zero: bool) -> (f64, f64, f64) {
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for value in values.filter(|v| v.is_finite()) {
        low = low.min(value);
        high = high.max(value);
    }
    if !low.is_finite() {
        return (0.0, 1.0, 0.2);
    }
    if include_zero {
        low = low.min(0.0);
    }
    let pad = ((high - low) * 0.05).max(high.abs().max(1e-3) * 0.02);
    let (low, high) = (
        if include_zero && low >= 0.0 {
            0.0
        } else {
            low - pad
        },
        high + pad,
    );
    (low, high, tick_step(high - low))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG plot of `series` with a title and axis labels.
pub fn scatter_svg(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let (width, height) = (720.0f64, 460.0f64);
    let (left, right, top, bottom) = (70.0f64, 220.0f64, 40.0f64, 55.0f64);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let all = || series.iter().flat_map(|s| s.points.iter().copied());
    let (x_low, x_high, x_step) = axis(all().map(|p| p.0), false);
    let (y_low, y_high, y_step) = axis(all().map(|p| p.1), true);
    let x_of = |x: f64| left + (x - x_low) / (x_high - x_low).max(1e-12) * plot_w;
    let y_of = |y: f64| top + plot_h - (y - y_low) / (y_high - y_low).max(1e-12) * plot_h;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">{}</text>\n",
        left + plot_w / 2.0,
        escape(title)
    );
    // Grid and ticks.
    let mut tick = (x_low / x_step).ceil() * x_step;
    while tick <= x_high + 1e-9 * x_step {
        let x = x_of(tick);
        svg.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\n\
             <text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n",
            top + plot_h,
            top + plot_h + 16.0,
            trim_number(tick, x_step)
        ));
        tick += x_step;
    }
    let mut tick = (y_low / y_step).ceil() * y_step;
    while tick <= y_high + 1e-9 * y_step {
        let y = y_of(tick);
        svg.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>\n",
            left + plot_w,
            left - 6.0,
            y + 4.0,
            trim_number(tick, y_step)
        ));
        tick += y_step;
    }
    svg.push_str(&format!(
        "<rect x=\"{left}\" y=\"{top}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" \
         stroke=\"black\"/>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" text-anchor=\"middle\">{}</text>\n\
         <text x=\"16\" y=\"{:.1}\" font-size=\"13\" text-anchor=\"middle\" \
         transform=\"rotate(-90 16 {:.1})\">{}</text>\n",
        left + plot_w / 2.0,
        height - 14.0,
        escape(x_label),
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        escape(y_label)
    ));
    for (index, serie) in series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let points: Vec<(f64, f64)> = serie
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        if serie.line && points.len() > 1 {
            let path: Vec<String> = points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", x_of(x), y_of(y)))
                .collect();
            svg.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" \
                 points=\"{}\"/>\n",
                path.join(" ")
            ));
        }
        for (point_index, &(x, y)) in points.iter().enumerate() {
            svg.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{color}\"/>\n",
                x_of(x),
                y_of(y)
            ));
            if let Some(label) = serie
                .point_labels
                .get(point_index)
                .filter(|l| !l.is_empty())
            {
                svg.push_str(&format!(
                    "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" fill=\"{color}\">{}</text>\n",
                    x_of(x) + 5.0,
                    y_of(y) - 5.0,
                    escape(label)
                ));
            }
        }
        let legend_y = top + 10.0 + 18.0 * index as f64;
        let legend_x = left + plot_w + 14.0;
        svg.push_str(&format!(
            "<circle cx=\"{legend_x:.1}\" cy=\"{legend_y:.1}\" r=\"4\" fill=\"{color}\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{}</text>\n",
            legend_x + 10.0,
            legend_y + 4.0,
            escape(&serie.label)
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

/// A tick value with as many decimals as its step needs.
fn trim_number(value: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil() as usize
    };
    format!("{value:.decimals$}")
}

/// The two figures (AP vs GMAC, AP vs latency), each method family a point or a curve.
pub fn plots(evaluation: &RunEvaluation) -> (String, String) {
    let families = [
        ("static-full", "static-full (D0)"),
        ("static-nas", "static subnets (NAS front)"),
        ("non-temporal", "dynamic non-temporal"),
        ("ant-fixed", "ANT fixed 1-in-n"),
        ("ant-adaptive", "ANT adaptive (thresholds)"),
        ("skipconv", "D0 w/ Skip-Conv, dense kernel"),
        ("skipconv-sparse", "D0 w/ Skip-Conv, sparse kernel"),
    ];
    let series = |x_of: fn(&MethodReport) -> f64| -> Vec<Series> {
        families
            .iter()
            .filter_map(|(family, label)| {
                let mut members: Vec<&MethodReport> = evaluation
                    .methods
                    .iter()
                    .filter(|m| m.family == *family)
                    .collect();
                if members.is_empty() {
                    return None;
                }
                // A threshold sweep is drawn in threshold order, the rest by the x value.
                members.sort_by(|a, b| match (a.threshold, b.threshold) {
                    (Some(ta), Some(tb)) => ta.total_cmp(&tb),
                    _ => x_of(a).total_cmp(&x_of(b)),
                });
                Some(Series {
                    label: (*label).to_string(),
                    points: members.iter().map(|m| (x_of(m), m.ap)).collect(),
                    line: members.len() > 1,
                    point_labels: members
                        .iter()
                        .map(|m| m.threshold.map_or(String::new(), |t| t.to_string()))
                        .collect(),
                })
            })
            .collect()
    };
    let subtitle = format!(
        "{} ({} px, {} thread(s))",
        evaluation.split, evaluation.image_size, evaluation.threads
    );
    (
        scatter_svg(
            &format!("AP vs GMAC per frame, {subtitle}"),
            "GMAC per frame",
            "AP (IoU 0.5:0.95)",
            &series(|m| m.gmac),
        ),
        scatter_svg(
            &format!("AP vs latency, {subtitle}"),
            "ms per frame (amortised, batch 1)",
            "AP (IoU 0.5:0.95)",
            &series(|m| m.ms),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_draw_points_curves_and_legend() {
        let series = [
            Series {
                label: "static-full".into(),
                points: vec![(40.0, 0.5)],
                line: false,
                point_labels: vec![],
            },
            Series {
                label: "ant-adaptive".into(),
                points: vec![(20.0, 0.4), (25.0, 0.45), (30.0, 0.48)],
                line: true,
                point_labels: vec!["0.5".into(), "0.2".into(), "0.1".into()],
            },
        ];
        let svg = scatter_svg("AP vs latency", "ms/frame", "AP", &series);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        // Four data points and two legend markers.
        assert_eq!(svg.matches("<circle").count(), 6);
        assert!(svg.contains(">static-full<") && svg.contains(">ant-adaptive<"));
    }

    #[test]
    fn should_pick_round_tick_steps() {
        assert_eq!(tick_step(1.0), 0.2);
        assert_eq!(tick_step(40.0), 10.0);
        assert_eq!(tick_step(14.0), 5.0);
        assert!((tick_step(0.3) - 0.05).abs() < 1e-12);
    }
}
