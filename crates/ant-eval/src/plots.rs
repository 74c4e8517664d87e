//! The accuracy-vs-cost figures of `cargo xtask eval` (the analogue of the paper's Fig. 4),
//! drawn as SVG by plotters: each method family a point or a curve, with axes, ticks and a
//! legend.

use plotters::prelude::*;

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

/// Colours of successive series (matplotlib's tab10).
const COLORS: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// The axis range of `values` padded by 5% (from zero when `include_zero` and all are
/// non-negative).
fn axis(values: impl Iterator<Item = f64>, include_zero: bool) -> std::ops::Range<f64> {
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for value in values.filter(|v| v.is_finite()) {
        low = low.min(value);
        high = high.max(value);
    }
    if !low.is_finite() {
        return 0.0..1.0;
    }
    if include_zero {
        low = low.min(0.0);
    }
    let pad = ((high - low) * 0.05).max(high.abs().max(1e-3) * 0.02);
    let low = if include_zero && low >= 0.0 {
        0.0
    } else {
        low - pad
    };
    low..high + pad
}

/// An SVG plot of `series` with a title and axis labels, drawn by plotters: points, curves
/// (`line`), per-point labels (e.g. thresholds) and a legend to the right.
pub fn scatter_svg(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 460)).into_drawing_area();
        draw_scatter(&root, title, x_label, y_label, series)
            .expect("drawing into a string cannot fail");
        root.present().expect("drawing into a string cannot fail");
    }
    svg
}

type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn draw_scatter(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> DrawResult {
    root.fill(&WHITE)?;
    let finite = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite();
    let all = || {
        series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(finite)
    };
    let x_range = axis(all().map(|p| p.0), false);
    let y_range = axis(all().map(|p| p.1), true);
    let (plot, legend) = root.split_horizontally(540);
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range, y_range)?;
    chart
        .configure_mesh()
        .max_light_lines(0)
        .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()?;
    for (index, serie) in series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let points: Vec<(f64, f64)> = serie.points.iter().copied().filter(finite).collect();
        if serie.line && points.len() > 1 {
            chart.draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?;
        }
        chart.draw_series(
            points
                .iter()
                .map(|&point| Circle::new(point, 4, color.filled())),
        )?;
        let labels = points.iter().zip(&serie.point_labels);
        chart.draw_series(labels.filter(|(_, label)| !label.is_empty()).map(
            |(&point, label)| {
                EmptyElement::at(point)
                    + Text::new(
                        label.clone(),
                        (5, -12),
                        ("sans-serif", 9).into_font().color(&color),
                    )
            },
        ))?;
    }
    for (index, serie) in series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let y = 50 + 18 * index as i32;
        legend.draw(&Circle::new((14, y), 4, color.filled()))?;
        legend.draw(&Text::new(
            serie.label.clone(),
            (24, y - 7),
            ("sans-serif", 12).into_font(),
        ))?;
    }
    Ok(())
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
        if let Some(path) = std::env::var_os("ANT_DUMP_SVG") {
            std::fs::write(path, &svg).unwrap();
        }
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // The curve, in the second series' colour (the axes are polylines too).
        let curve = svg
            .lines()
            .filter(|l| l.contains("<polyline") && l.contains("#D62728"));
        assert_eq!(curve.count(), 1);
        // Four data points and two legend markers.
        assert_eq!(svg.matches("<circle").count(), 6);
        for text in [
            "static-full",
            "ant-adaptive",
            "AP vs latency",
            "ms/frame",
            "0.2",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
    }
}
