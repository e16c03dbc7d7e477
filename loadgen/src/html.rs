//! The HTML report: one self-contained page (inline SVG plots drawn with plotters, no
//! scripts, no external files) that opens in any browser.
//!
//! Plots: throughput over time (with the offered rate), latency percentiles over time,
//! latency by percentile (HdrHistogram's percentile plot), and acknowledgements by result
//! code on a logarithmic scale (a handful of refusals beside millions of `ok` still show).
//! The plots over time leave out a last interval the run ended inside (its caption says
//! so): its few acknowledgements over a short length would read as a spike. Legends sit in
//! a corner the lines leave free.

use crate::report::Report;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::fmt::Write;

const WIDTH: u32 = 960;
const HEIGHT: u32 = 360;

/// Renders the whole page.
pub fn render(report: &Report) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>tally-loadgen report: {workload}</title>\n<style>\n\
         body {{ font-family: sans-serif; margin: 2em; color: #222; }}\n\
         table {{ border-collapse: collapse; margin: 1em 0; }}\n\
         td, th {{ border: 1px solid #ccc; padding: 0.3em 0.8em; text-align: right; }}\n\
         th {{ background: #f3f3f3; }} td:first-child, th:first-child {{ text-align: left; }}\n\
         figure {{ margin: 1.5em 0; }} figcaption {{ font-weight: bold; margin-bottom: 0.3em; }}\n\
         </style>\n</head>\n<body>\n<h1>tally-loadgen report: {workload}</h1>\n",
        workload = escape(&report.workload)
    );
    let _ = writeln!(page, "<table id=\"summary\">");
    let rows: Vec<(&str, String)> = vec![
        ("target", escape(&report.target)),
        ("pacing", escape(&report.pacing)),
        (
            "offered rate",
            report
                .offered_rate_per_s
                .map_or("closed loop".to_string(), |rate| format!("{rate:.0} tx/s")),
        ),
        ("warm-up", format!("{:.1} s", report.warmup_s)),
        ("sent", report.sent.to_string()),
        ("acknowledged", report.acknowledged.to_string()),
        ("busy answers", report.busy_answers.to_string()),
        ("elapsed", format!("{:.2} s", report.elapsed_s)),
        ("throughput", format!("{:.0} tx/s", report.throughput_per_s)),
        ("latency p50", format!("{:.2} ms", report.latency_ms.p50)),
        ("latency p99", format!("{:.2} ms", report.latency_ms.p99)),
        (
            "latency p99.9",
            format!("{:.2} ms", report.latency_ms.p99_9),
        ),
        ("latency max", format!("{:.2} ms", report.latency_ms.max)),
        ("ok share", format!("{:.2}%", report.ok_share * 100.0)),
        (
            "ok share promised",
            report.ok_share_promised.map_or("-".to_string(), |min| {
                format!("at least {:.1}%", min * 100.0)
            }),
        ),
    ];
    for (name, value) in rows {
        let _ = writeln!(page, "<tr><th>{name}</th><td>{value}</td></tr>");
    }
    let _ = writeln!(page, "</table>");
    if let Some(reason) = &report.stopped {
        let _ = writeln!(
            page,
            "<p id=\"stopped\"><strong>The target stopped:</strong> {}</p>",
            escape(reason)
        );
    }
    if report.ok_share_below_promise {
        let _ = writeln!(
            page,
            "<p id=\"ok-share-warning\" style=\"color: #b00; font-size: 1.3em\"><strong>Only {:.2}% \
             of acknowledgements are ok, below the {:.1}% this workload promises:</strong> the \
             run measured refusals, not settlement (see the result codes below).</p>",
            report.ok_share * 100.0,
            report.ok_share_promised.unwrap_or(0.0) * 100.0
        );
    }
    if report.signing_limited {
        let _ = writeln!(
            page,
            "<p id=\"signing-limited\" style=\"color: #b00\"><strong>Limited by the load \
             generator:</strong> sending waited {:.2} s for transactions not signed yet; the \
             figures are its signing rate, not the node's.</p>",
            report.signing_stalled_s
        );
    }
    if report.nodes.len() > 1 {
        let _ = writeln!(
            page,
            "<table id=\"nodes\">\n<tr><th>node</th><th>took</th><th>acknowledged</th>\
             <th>share</th><th>ok</th><th>p50 ms</th><th>p99 ms</th></tr>"
        );
        for node in &report.nodes {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td><td>{}</td><td>{:.2}</td><td>{:.2}</td></tr>",
                escape(&node.node),
                node.sent,
                node.acknowledged,
                node.share * 100.0,
                node.ok,
                node.latency_ms.p50,
                node.latency_ms.p99
            );
        }
        let _ = writeln!(page, "</table>");
    }
    let _ = writeln!(
        page,
        "<p>Latency is measured from each transaction's intended send time (open loop: \
         fixed before the run) to its acknowledgement, so a stalled node shows in the figures \
         instead of slowing the sender down.</p>"
    );
    for (id, caption, svg) in [
        (
            "throughput",
            format!("Throughput over time{}", partial_note(report)),
            plot_throughput(report),
        ),
        (
            "latency-over-time",
            format!("Latency over time{}", partial_note(report)),
            plot_latency_over_time(report),
        ),
        (
            "latency-percentiles",
            "Latency by percentile".to_string(),
            plot_latency_distribution(report),
        ),
        (
            "ok-share",
            format!(
                "Share of ok acknowledgements over time{}",
                partial_note(report)
            ),
            plot_ok_share(report),
        ),
        (
            "results",
            "Acknowledgements by result code".to_string(),
            plot_results(report),
        ),
    ] {
        let _ = writeln!(
            page,
            "<figure id=\"{id}\"><figcaption>{caption}</figcaption>\n{svg}\n</figure>"
        );
    }
    let _ = writeln!(
        page,
        "<table id=\"result-codes\">\n<tr><th>result</th><th>count</th></tr>"
    );
    for (name, count) in &report.results {
        let _ = writeln!(page, "<tr><td>{}</td><td>{count}</td></tr>", escape(name));
    }
    let _ = writeln!(page, "</table>\n</body>\n</html>");
    page
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Draws into an SVG string; a drawing error (only possible with impossible ranges) becomes
/// a note in the page instead of a broken report.
fn svg(draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), String>) -> String {
    let mut out = String::new();
    let outcome = {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(|e| e.to_string()))
    };
    match outcome {
        Ok(()) => out,
        Err(error) => format!("<p>(plot not drawn: {})</p>", escape(&error)),
    }
}

/// The timeline without a last interval shorter than half the others (the run ended inside
/// it): drawn over time, its few acknowledgements over a short length read as a spike.
fn whole_intervals(report: &Report) -> &[crate::report::IntervalReport] {
    let timeline = &report.timeline;
    match timeline.split_last() {
        Some((last, rest)) if !rest.is_empty() && last.length_s < rest[0].length_s / 2.0 => rest,
        _ => timeline,
    }
}

/// The caption's note on a partial last interval left out of the plots over time.
fn partial_note(report: &Report) -> String {
    let whole = whole_intervals(report).len();
    match report.timeline.get(whole) {
        Some(last) => format!(
            " (the last {:.1} s, a partial interval with {} acknowledgements, is left out)",
            last.length_s, last.acknowledged
        ),
        None => String::new(),
    }
}

/// Room above the highest value for the legend box in the upper right corner.
const LEGEND_ROOM: f64 = 1.45;

fn upper(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.fold(0.0f64, f64::max);
    if max > 0.0 {
        max * 1.1
    } else {
        1.0
    }
}

fn plot_throughput(report: &Report) -> String {
    let intervals = whole_intervals(report);
    let points: Vec<(f64, f64)> = intervals
        .iter()
        .map(|i| (i.start_s + i.length_s / 2.0, i.throughput_per_s))
        .collect();
    let x_max = upper(intervals.iter().map(|i| i.start_s + i.length_s));
    let y_max = upper(points.iter().map(|p| p.1).chain(report.offered_rate_per_s)) * LEGEND_ROOM;
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("time since start (s)")
            .y_desc("acknowledged tx/s")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label("acknowledged")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        if let Some(rate) = report.offered_rate_per_s {
            chart
                .draw_series(LineSeries::new(
                    vec![(0.0, rate), (x_max, rate)],
                    RED.stroke_width(1),
                ))
                .map_err(|e| e.to_string())?
                .label("offered")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| e.to_string())
    })
}

fn plot_ok_share(report: &Report) -> String {
    let intervals = whole_intervals(report);
    let points: Vec<(f64, f64)> = intervals
        .iter()
        .filter(|i| i.acknowledged > 0)
        .map(|i| (i.start_s + i.length_s / 2.0, i.ok_share * 100.0))
        .collect();
    let x_max = upper(intervals.iter().map(|i| i.start_s + i.length_s));
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, 0f64..100.5f64)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("time since start (s)")
            .y_desc("ok (% of acknowledged)")
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label("ok share")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        if let Some(min) = report.ok_share_promised {
            chart
                .draw_series(LineSeries::new(
                    vec![(0.0, min * 100.0), (x_max, min * 100.0)],
                    RED.stroke_width(1),
                ))
                .map_err(|e| e.to_string())?
                .label("promised")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| e.to_string())
    })
}

fn plot_latency_over_time(report: &Report) -> String {
    let intervals = whole_intervals(report);
    let series = |pick: fn(&crate::report::LatencyMs) -> f64| -> Vec<(f64, f64)> {
        intervals
            .iter()
            .filter(|i| i.latency_ms.count > 0)
            .map(|i| (i.start_s + i.length_s / 2.0, pick(&i.latency_ms)))
            .collect()
    };
    let lines = [
        ("p50", series(|l| l.p50), BLUE),
        ("p99", series(|l| l.p99), GREEN),
        ("max", series(|l| l.max), RED),
    ];
    let x_max = upper(intervals.iter().map(|i| i.start_s + i.length_s));
    let y_max = upper(
        lines
            .iter()
            .flat_map(|(_, points, _)| points.iter().map(|p| p.1)),
    ) * LEGEND_ROOM;
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("time since start (s)")
            .y_desc("latency (ms)")
            .draw()
            .map_err(|e| e.to_string())?;
        for (name, points, color) in lines {
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| e.to_string())
    })
}

/// x is the number of nines (0 = p0, 1 = p90, 2 = p99, ...), as HdrHistogram plots it.
fn plot_latency_distribution(report: &Report) -> String {
    let points: Vec<(f64, f64)> = report
        .latency_distribution
        .iter()
        .map(|&(percentile, ms)| (-(1.0 - percentile / 100.0).max(1e-5).log10(), ms))
        .collect();
    let y_max = upper(points.iter().map(|p| p.1));
    svg(|root| {
        // the right margin holds the last label, 99.999%, centred on the axis's end
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .margin_right(36)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..5.0, 0f64..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .x_labels(6)
            .x_label_formatter(&|nines| {
                let percentile = 100.0 * (1.0 - 10f64.powf(-nines));
                let digits = format!("{percentile:.3}");
                format!("{}%", digits.trim_end_matches('0').trim_end_matches('.'))
            })
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// Bars on a logarithmic scale: a run of a million `ok` and a dozen refusals shows both.
fn plot_results(report: &Report) -> String {
    let bars: Vec<(String, u64)> = report
        .results
        .iter()
        .map(|(name, count)| (name.clone(), *count))
        .collect();
    // the bars start below 1, so that a count of 1 still shows
    const FLOOR: f64 = 0.5;
    let y_max = upper(bars.iter().map(|b| b.1 as f64)).max(10.0) * 3.0;
    let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (0..bars.len().max(1)).into_segmented(),
                (FLOOR..y_max).log_scale(),
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc("acknowledgements (log scale)")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .x_labels(bars.len().max(1))
            .x_label_formatter(&|segment| match segment {
                SegmentValue::CenterOf(index) | SegmentValue::Exact(index) => {
                    names.get(*index).cloned().unwrap_or_default()
                }
                SegmentValue::Last => String::new(),
            })
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(bars.iter().enumerate().map(|(index, (_, count))| {
                Rectangle::new(
                    [
                        (SegmentValue::Exact(index), FLOOR),
                        (SegmentValue::Exact(index + 1), (*count as f64).max(FLOOR)),
                    ],
                    BLUE.mix(0.6).filled(),
                )
            }))
            .map_err(|e| e.to_string())?;
        // each bar's count above it
        chart
            .draw_series(bars.iter().enumerate().map(|(index, (_, count))| {
                Text::new(
                    count.to_string(),
                    (
                        SegmentValue::CenterOf(index),
                        (*count as f64).max(FLOOR) * 1.3,
                    ),
                    ("sans-serif", 14).into_font(),
                )
            }))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}
