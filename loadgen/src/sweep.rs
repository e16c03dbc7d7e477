//! Latency against throughput in one run: the same workload at several closed-loop depths
//! (transactions in flight) or open-loop rates, one after the other against one target,
//! written as one table and one plot of p50 and p99 latency against acknowledged
//! throughput, so that the knee of the curve shows at a glance.

use crate::pacing::Pacing;
use crate::report::LatencyMs;
use crate::session::{
    run_against, target_population, with_target, workload, LoadgenError, LoadgenOptions,
};
use plotters::prelude::*;
use serde::Serialize;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// What a sweep varies.
#[derive(Clone, Debug, PartialEq)]
pub enum SweepLevels {
    /// Closed loop at these numbers of transactions in flight.
    InFlight(Vec<usize>),
    /// Open loop at these rates (tx/s), Poisson when `poisson`.
    Rates { rates: Vec<f64>, poisson: bool },
}

impl SweepLevels {
    fn len(&self) -> usize {
        match self {
            SweepLevels::InFlight(levels) => levels.len(),
            SweepLevels::Rates { rates, .. } => rates.len(),
        }
    }

    fn pacing(&self, index: usize, seed: u64) -> Pacing {
        match self {
            SweepLevels::InFlight(levels) => Pacing::Closed {
                in_flight_tx_max: levels[index],
            },
            SweepLevels::Rates {
                rates,
                poisson: true,
            } => Pacing::Poisson {
                rate_per_s: rates[index],
                seed,
            },
            SweepLevels::Rates { rates, .. } => Pacing::Fixed {
                rate_per_s: rates[index],
            },
        }
    }
}

/// One level of a sweep.
#[derive(Clone, Debug, Serialize)]
pub struct SweepPoint {
    /// "in flight 64" or "rate 20000 tx/s".
    pub level: String,
    pub offered_rate_per_s: Option<f64>,
    pub in_flight_tx_max: Option<usize>,
    pub acknowledged: u64,
    pub throughput_per_s: f64,
    pub latency_ms: LatencyMs,
    pub ok_share: f64,
    pub stopped: Option<String>,
}

/// What a sweep measured and where it was written.
pub struct SweepOutcome {
    pub points: Vec<SweepPoint>,
    pub table: PathBuf,
    pub json: PathBuf,
    pub plot: PathBuf,
}

/// Runs `options`' workload at every level of `levels` in turn (each with fresh ids, for
/// `options.duration`), against one target, and writes `sweep.txt`, `sweep.json` and
/// `sweep.svg` into `out_dir`. Stops early when the target stops.
pub fn run_sweep(
    options: &LoadgenOptions,
    levels: &SweepLevels,
    out_dir: &Path,
) -> Result<SweepOutcome, LoadgenError> {
    if levels.len() == 0 {
        return Err(LoadgenError::EmptySweep);
    }
    let population = target_population(options)?;
    let points = with_target(options, &population, |target| {
        let mut points = Vec::new();
        for index in 0..levels.len() {
            let level_options = LoadgenOptions {
                pacing: levels.pacing(index, options.seed),
                id_base: options.id_base + ((index as u128 + 1) << 40),
                out_dir: None,
                record: None,
                ..options.clone()
            };
            let (name, records) = workload(&level_options, &population)?;
            let outcome = run_against(&level_options, target, &records, &name)?;
            let result = &outcome.result;
            let pacing = result.pacing;
            points.push(SweepPoint {
                level: match pacing {
                    Pacing::Closed { in_flight_tx_max } => format!("in flight {in_flight_tx_max}"),
                    other => format!("rate {:.0} tx/s", other.rate_per_s().unwrap_or(0.0)),
                },
                offered_rate_per_s: pacing.rate_per_s(),
                in_flight_tx_max: match pacing {
                    Pacing::Closed { in_flight_tx_max } => Some(in_flight_tx_max),
                    _ => None,
                },
                acknowledged: result.acknowledged,
                throughput_per_s: result.throughput_per_s(),
                latency_ms: LatencyMs::of(&result.latency_us),
                ok_share: result.ok_share(),
                stopped: result.stopped.clone(),
            });
            if options.progress {
                eprint!("{}", table_row(points.last().expect("pushed")));
            }
            if result.stopped.is_some() {
                break;
            }
        }
        Ok(points)
    })?;
    let write = |name: &str, bytes: &[u8]| -> Result<PathBuf, LoadgenError> {
        let path = out_dir.join(name);
        std::fs::create_dir_all(out_dir)
            .and_then(|()| std::fs::write(&path, bytes))
            .map_err(|source| {
                LoadgenError::Report(crate::report::ReportError::Write {
                    path: path.clone(),
                    source,
                })
            })?;
        Ok(path)
    };
    let table = write("sweep.txt", table(&points).as_bytes())?;
    let json = write(
        "sweep.json",
        serde_json::to_string_pretty(&points)
            .expect("a sweep always serialises")
            .as_bytes(),
    )?;
    let plot = write("sweep.svg", plot(&points).as_bytes())?;
    Ok(SweepOutcome {
        points,
        table,
        json,
        plot,
    })
}

fn table_row(point: &SweepPoint) -> String {
    format!(
        "{:<24} {:>14.0} {:>10.2} {:>10.2} {:>10.2} {:>8.2}%{}\n",
        point.level,
        point.throughput_per_s,
        point.latency_ms.p50,
        point.latency_ms.p99,
        point.latency_ms.p99_9,
        point.ok_share * 100.0,
        point
            .stopped
            .as_ref()
            .map_or(String::new(), |reason| format!(
                "  (target stopped: {reason})"
            ))
    )
}

/// The sweep as a text table: one row per level.
pub fn table(points: &[SweepPoint]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:>14} {:>10} {:>10} {:>10} {:>9}",
        "level", "acked tx/s", "p50 ms", "p99 ms", "p99.9 ms", "ok"
    );
    for point in points {
        out.push_str(&table_row(point));
    }
    out
}

/// The plot: p50 and p99 latency (log scale) against acknowledged throughput, one point
/// per level, as SVG.
pub fn plot(points: &[SweepPoint]) -> String {
    let mut out = String::new();
    let drawn = (|| -> Result<(), String> {
        let root = SVGBackend::with_string(&mut out, (960, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let x_max = points
            .iter()
            .map(|p| p.throughput_per_s)
            .fold(0.0f64, f64::max)
            .max(1.0)
            * 1.1;
        let latencies = points
            .iter()
            .flat_map(|p| [p.latency_ms.p50, p.latency_ms.p99]);
        let y_min = latencies.clone().fold(f64::MAX, f64::min).clamp(0.001, 1.0) / 2.0;
        let y_max = latencies.fold(0.0f64, f64::max).max(y_min * 4.0) * 2.0;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "latency against acknowledged throughput",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("acknowledged tx/s")
            .y_desc("latency (ms)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(|e| e.to_string())?;
        for (name, pick, color) in [
            (
                "p50",
                (|p: &SweepPoint| p.latency_ms.p50) as fn(&SweepPoint) -> f64,
                BLUE,
            ),
            ("p99", |p: &SweepPoint| p.latency_ms.p99, RED),
        ] {
            let series: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| p.latency_ms.count > 0)
                .map(|p| (p.throughput_per_s, pick(p).max(y_min)))
                .collect();
            chart
                .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(series.iter().map(|&at| Circle::new(at, 4, color.filled())))
                .map_err(|e| e.to_string())?;
        }
        for point in points.iter().filter(|p| p.latency_ms.count > 0) {
            chart
                .draw_series(std::iter::once(Text::new(
                    point.level.clone(),
                    (point.throughput_per_s, point.latency_ms.p99.max(y_min)),
                    ("sans-serif", 12),
                )))
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    })();
    match drawn {
        Ok(()) => out,
        Err(error) => format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"960\" height=\"40\"><text x=\"10\" y=\"20\">plot not drawn: {}</text></svg>",
            error.replace('<', "&lt;").replace('&', "&amp;")
        ),
    }
}
