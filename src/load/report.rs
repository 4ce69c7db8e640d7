//! A run's result, rendered for people (a summary), for machines (JSON) and
//! as a picture (an SVG percentile plot): pure formatting.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{Bench, Length, Percentiles, Tally};

/// What a run measured, with the settings it ran with.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sockit::load::{Bench, Length, Report, Tally};
/// use sockit::{Builtin, Framing};
///
/// let bench = Bench::new("tcp://127.0.0.1:7000".parse()?)
///     .service(Builtin::Echo)
///     .framing(Framing::Line)
///     .connections(2)
///     .pipeline(4)
///     .length(Length::Requests(100));
/// let mut tally = Tally::default();
/// tally.requests = 100;
/// for _ in 0..100 {
///     tally.reply(Duration::from_millis(1));
/// }
/// (tally.bytes_sent, tally.bytes_received) = (6500, 6500);
/// let report = Report::new(bench, 2, tally, Duration::from_secs(1));
/// assert_eq!(
///     report.summary(),
///     "sockit bench tcp://127.0.0.1:7000: echo, line framing, 2 connections × 4 in flight, 64-byte requests, closed loop
/// duration    1.00 s measured
/// requests    100
/// replies     100 correct
/// errors      0
/// throughput  100 msgs/s; 6.50 kB/s sent, 6.50 kB/s received (wire bytes, framing included)
/// latency     p50 1.00 ms, p90 1.00 ms, p99 1.00 ms, p99.9 1.00 ms, max 1.00 ms (from each send)
/// ",
/// );
/// # Ok::<(), sockit::EndpointError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Report {
    bench: Bench,
    connected: usize,
    tally: Tally,
    elapsed: Duration,
}

impl Report {
    /// The report of `bench`, run on `connected` connections, which counted
    /// `tally` over `elapsed` of measured time.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::{Bench, Report, Tally};
    ///
    /// let bench = Bench::new("udp://127.0.0.1:9000".parse()?).connections(4);
    /// let report = Report::new(bench, 3, Tally::default(), Duration::from_secs(2));
    /// assert_eq!((report.connected(), report.elapsed()), (3, Duration::from_secs(2)));
    /// assert_eq!(report.tally().replies, 0);
    /// assert!(report.summary().contains("3 of 4 connections"));
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn new(bench: Bench, connected: usize, tally: Tally, elapsed: Duration) -> Self {
        Report {
            bench,
            connected,
            tally,
            elapsed,
        }
    }

    /// The counts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::{Bench, Report, Tally};
    ///
    /// let mut tally = Tally::default();
    /// tally.wrong = 1;
    /// let report = Report::new(
    ///     Bench::new("tcp://127.0.0.1:7000".parse()?),
    ///     50,
    ///     tally,
    ///     Duration::from_secs(1),
    /// );
    /// assert_eq!(report.tally().errors(), 1);
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// The measured time: after the warmup, to the last reply.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::{Bench, Report, Tally};
    ///
    /// let report = Report::new(
    ///     Bench::new("tcp://127.0.0.1:7000".parse()?),
    ///     50,
    ///     Tally::default(),
    ///     Duration::from_millis(1500),
    /// );
    /// assert_eq!(report.elapsed().as_secs_f64(), 1.5);
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// How many connections were opened.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::{Bench, Report, Tally};
    ///
    /// let report = Report::new(
    ///     Bench::new("tcp://127.0.0.1:7000".parse()?),
    ///     49,
    ///     Tally::default(),
    ///     Duration::from_secs(1),
    /// );
    /// assert_eq!(report.connected(), 49);
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn connected(&self) -> usize {
        self.connected
    }

    /// Whether nothing went wrong: every request got its reply.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::{Bench, Report, Tally};
    ///
    /// let mut tally = Tally::default();
    /// tally.missing = 1;
    /// let report = Report::new(
    ///     Bench::new("udp://127.0.0.1:9000".parse()?),
    ///     50,
    ///     tally,
    ///     Duration::from_secs(1),
    /// );
    /// assert!(!report.is_ok());
    /// let summary = report.summary();
    /// let tail: Vec<&str> = summary.lines().skip(4).collect();
    /// assert_eq!(tail, [
    ///     "errors      1: 1 missing (no reply within 1s)",
    ///     "throughput  0 msgs/s; 0.00 B/s sent, 0.00 B/s received (wire bytes, framing included)",
    ///     "latency     none measured: no correct reply",
    ///     "FAILED: 1 error",
    /// ]);
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn is_ok(&self) -> bool {
        self.tally.errors() == 0
    }

    /// Correct replies a second.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::{Bench, Report, Tally};
    ///
    /// let mut tally = Tally::default();
    /// for _ in 0..300 {
    ///     tally.reply(Duration::from_micros(50));
    /// }
    /// let report = Report::new(
    ///     Bench::new("tcp://127.0.0.1:7000".parse()?),
    ///     50,
    ///     tally,
    ///     Duration::from_millis(1500),
    /// );
    /// assert_eq!(report.msgs_per_sec(), 200.0);
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn msgs_per_sec(&self) -> f64 {
        per_second(self.tally.replies, self.elapsed)
    }

    fn latency_from(&self) -> &'static str {
        if self.bench.rate.is_some() {
            "schedule"
        } else {
            "send"
        }
    }

    /// The summary for people, one line per topic:
    ///
    /// ```text
    /// sockit bench tcp://127.0.0.1:7000: echo, raw framing, 50 connections × 1 in flight, 64-byte requests, closed loop
    /// duration    5.00 s measured, after 1.00 s of warmup
    /// requests    612,345
    /// replies     612,345 correct
    /// errors      0
    /// throughput  122,469 msgs/s; 7.84 MB/s sent, 7.84 MB/s received (wire bytes, framing included)
    /// latency     p50 398 µs, p90 450 µs, p99 610 µs, p99.9 1.21 ms, max 3.40 ms (from each send)
    /// ```
    ///
    /// A run with errors ends with a line `FAILED: N errors`.
    ///
    /// # Examples
    ///
    /// An open-loop run measures latency from each intended send time:
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::{Bench, Report, Tally};
    ///
    /// let bench = Bench::new("udp://127.0.0.1:9000".parse()?)
    ///     .rate(Some(20_000.0))
    ///     .warmup(Duration::from_secs(1));
    /// let report = Report::new(bench, 50, Tally::default(), Duration::from_secs(5));
    /// let summary = report.summary();
    /// let mut lines = summary.lines();
    /// assert_eq!(
    ///     lines.next(),
    ///     Some("sockit bench udp://127.0.0.1:9000: greet, 50 connections × 1 in flight, 64-byte requests, open loop at 20,000 requests/s"),
    /// );
    /// assert_eq!(lines.next(), Some("duration    5.00 s measured, after 1.00 s of warmup"));
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn summary(&self) -> String {
        let bench = &self.bench;
        let tally = &self.tally;
        let mut out = String::new();
        let framing = match bench.stream_framing() {
            Some(framing) => format!(", {framing} framing"),
            None => String::new(),
        };
        let connections = if self.connected == bench.connections {
            plural(bench.connections as u64, "connection")
        } else {
            format!("{} of {} connections", self.connected, bench.connections)
        };
        let load = match bench.rate {
            Some(rate) => format!("open loop at {} requests/s", group(rate.round() as u64)),
            None => "closed loop".to_owned(),
        };
        let _ = writeln!(
            out,
            "sockit bench {}: {}{framing}, {connections} × {} in flight, {}-byte requests, {load}",
            bench.endpoint, bench.service, bench.pipeline, bench.size
        );
        let warmup = if bench.warmup.is_zero() {
            String::new()
        } else {
            format!(", after {} of warmup", seconds(bench.warmup))
        };
        let _ = writeln!(out, "duration    {} measured{warmup}", seconds(self.elapsed));
        let _ = writeln!(out, "requests    {}", group(tally.requests));
        let _ = writeln!(out, "replies     {} correct", group(tally.replies));
        let _ = writeln!(out, "errors      {}", self.errors_line());
        let _ = writeln!(
            out,
            "throughput  {} msgs/s; {} sent, {} received (wire bytes, framing included)",
            group(self.msgs_per_sec().round() as u64),
            bytes_per_second(per_second(tally.bytes_sent, self.elapsed)),
            bytes_per_second(per_second(tally.bytes_received, self.elapsed)),
        );
        let from = match self.latency_from() {
            "send" => "from each send",
            _ => "from each intended send time",
        };
        match tally.percentiles() {
            Some(p) => {
                let _ = writeln!(
                    out,
                    "latency     p50 {}, p90 {}, p99 {}, p99.9 {}, max {} ({from})",
                    latency(p.p50 as f64),
                    latency(p.p90 as f64),
                    latency(p.p99 as f64),
                    latency(p.p99_9 as f64),
                    latency(p.max as f64),
                );
            }
            None => out.push_str("latency     none measured: no correct reply\n"),
        }
        if !self.is_ok() {
            let _ = writeln!(out, "FAILED: {}", plural(tally.errors(), "error"));
        }
        out
    }

    /// `0`, or the total and each kind.
    fn errors_line(&self) -> String {
        let tally = &self.tally;
        if tally.errors() == 0 {
            return "0".to_owned();
        }
        let mut kinds = Vec::new();
        if tally.wrong > 0 {
            kinds.push(format!("{} wrong", group(tally.wrong)));
        }
        if tally.missing > 0 {
            kinds.push(format!(
                "{} missing (no reply within {})",
                group(tally.missing),
                humantime::format_duration(self.bench.timeout)
            ));
        }
        if tally.timeouts > 0 {
            kinds.push(plural(tally.timeouts, "stalled connection"));
        }
        let failed = tally.connection_errors.total();
        if failed > 0 {
            let by_kind: Vec<String> = tally
                .connection_errors
                .iter()
                .map(|(kind, count)| format!("{count} {kind}"))
                .collect();
            kinds.push(format!(
                "{} ({})",
                plural(failed, "failed connection"),
                by_kind.join(", ")
            ));
        }
        format!("{}: {}", group(tally.errors()), kinds.join(", "))
    }

    /// The report as one JSON object; the fields are listed in the module's
    /// documentation.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::{Bench, Report, Tally};
    ///
    /// let mut tally = Tally::default();
    /// tally.requests = 2;
    /// tally.reply(Duration::from_micros(10));
    /// tally.connection_error(std::io::ErrorKind::ConnectionReset);
    /// let report = Report::new(
    ///     Bench::new("udp://127.0.0.1:9000".parse()?),
    ///     50,
    ///     tally,
    ///     Duration::from_secs(1),
    /// );
    /// let json: serde_json::Value = serde_json::from_str(&report.to_json())?;
    /// assert_eq!(json["endpoint"], "udp://127.0.0.1:9000");
    /// assert_eq!(json["framing"], serde_json::Value::Null);
    /// assert_eq!((json["requests"].as_u64(), json["replies"].as_u64()), (Some(2), Some(1)));
    /// assert_eq!(json["errors"]["connections"]["ConnectionReset"], 1);
    /// assert_eq!(json["latency_us"]["min"], 10.0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_json(&self) -> String {
        let bench = &self.bench;
        let tally = &self.tally;
        let us = |ns: u64| ns as f64 / 1000.0;
        let json = Json {
            endpoint: bench.endpoint.to_string(),
            service: bench.service.name(),
            framing: bench.stream_framing().map(|framing| framing.name()),
            connections: bench.connections,
            connected: self.connected,
            pipeline: bench.pipeline,
            size: bench.size,
            rate: bench.rate,
            warmup_s: bench.warmup.as_secs_f64(),
            duration_s: self.elapsed.as_secs_f64(),
            requests: tally.requests,
            replies: tally.replies,
            warmup_replies: tally.warmup_replies,
            errors: JsonErrors {
                total: tally.errors(),
                wrong: tally.wrong,
                missing: tally.missing,
                timeouts: tally.timeouts,
                connections: tally
                    .connection_errors
                    .iter()
                    .map(|(kind, count)| (format!("{kind:?}"), count))
                    .collect(),
            },
            msgs_per_s: self.msgs_per_sec(),
            bytes_sent: tally.bytes_sent,
            bytes_received: tally.bytes_received,
            sent_bytes_per_s: per_second(tally.bytes_sent, self.elapsed),
            received_bytes_per_s: per_second(tally.bytes_received, self.elapsed),
            latency_from: self.latency_from(),
            latency_us: tally.percentiles().map(|p: Percentiles| JsonLatency {
                min: us(p.min),
                mean: p.mean / 1000.0,
                p50: us(p.p50),
                p90: us(p.p90),
                p99: us(p.p99),
                p99_9: us(p.p99_9),
                max: us(p.max),
            }),
        };
        serde_json::to_string_pretty(&json).expect("a report serializes")
    }

    /// The latency distribution as an SVG percentile plot: percentiles on a
    /// log scale (0%, 90%, 99%, 99.9%, …) across, latency up.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::{Bench, Report, Tally};
    ///
    /// let mut tally = Tally::default();
    /// for us in 1..=1000 {
    ///     tally.reply(Duration::from_micros(us));
    /// }
    /// let report = Report::new(
    ///     Bench::new("tcp://127.0.0.1:7000".parse()?),
    ///     50,
    ///     tally,
    ///     Duration::from_secs(1),
    /// );
    /// let svg = report.plot_svg();
    /// assert!(svg.starts_with("<svg"));
    /// assert!(svg.contains("99.9%"));
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn plot_svg(&self) -> String {
        let bench = &self.bench;
        let length = match bench.length {
            Length::Duration(duration) => seconds(duration),
            Length::Requests(requests) => format!("{} requests", group(requests)),
        };
        let title = format!(
            "sockit bench {} ({}, {} × {} in flight, {} B, {length})",
            bench.endpoint, bench.service, self.connected, bench.pipeline, bench.size
        );
        percentile_plot(&title, self.tally.latency())
    }
}

#[derive(Serialize)]
struct Json {
    endpoint: String,
    service: &'static str,
    framing: Option<&'static str>,
    connections: usize,
    connected: usize,
    pipeline: usize,
    size: usize,
    rate: Option<f64>,
    warmup_s: f64,
    duration_s: f64,
    requests: u64,
    replies: u64,
    warmup_replies: u64,
    errors: JsonErrors,
    msgs_per_s: f64,
    bytes_sent: u64,
    bytes_received: u64,
    sent_bytes_per_s: f64,
    received_bytes_per_s: f64,
    latency_from: &'static str,
    latency_us: Option<JsonLatency>,
}

#[derive(Serialize)]
struct JsonErrors {
    total: u64,
    wrong: u64,
    missing: u64,
    timeouts: u64,
    connections: std::collections::BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct JsonLatency {
    min: f64,
    mean: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    p99_9: f64,
    max: f64,
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        0.0
    } else {
        count as f64 / elapsed.as_secs_f64()
    }
}

/// `1234567` as `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `count` and `noun`, with an `s` unless there is one.
fn plural(count: u64, noun: &str) -> String {
    let s = if count == 1 { "" } else { "s" };
    format!("{} {noun}{s}", group(count))
}

/// Three significant digits: `8.21`, `82.1`, `821`.
fn significant(value: f64) -> String {
    if value >= 99.95 {
        format!("{value:.0}")
    } else if value >= 9.995 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// A latency in nanoseconds, in µs, ms or s to three significant digits.
fn latency(ns: f64) -> String {
    let us = ns / 1e3;
    if us < 999.5 {
        format!("{} µs", significant(us))
    } else if us < 999_500.0 {
        format!("{} ms", significant(us / 1e3))
    } else {
        format!("{} s", significant(us / 1e6))
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

/// Bytes a second in B/s, kB/s, MB/s or GB/s (powers of 1000).
fn bytes_per_second(rate: f64) -> String {
    let (value, unit) = if rate >= 999.5e6 {
        (rate / 1e9, "GB/s")
    } else if rate >= 999.5e3 {
        (rate / 1e6, "MB/s")
    } else if rate >= 999.5 {
        (rate / 1e3, "kB/s")
    } else {
        (rate, "B/s")
    };
    format!("{} {unit}", significant(value))
}

/// The plot's size and margins, in pixels.
const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

/// The most nines the percentile axis shows (99.9999%).
const MOST_NINES: u32 = 6;

/// An SVG percentile plot of the latencies (in nanoseconds) in `histogram`,
/// as HdrHistogram's plotter draws one: the x axis is the number of nines of
/// the percentile (0%, 90%, 99%, 99.9%, …), as far as the count of values
/// can tell; the y axis is latency from 0.
fn percentile_plot(title: &str, histogram: &Histogram<u64>) -> String {
    let count = histogram.len();
    let nines = (count.max(10) as f64)
        .log10()
        .ceil()
        .clamp(1.0, f64::from(MOST_NINES)) as u32;
    let mut points = Vec::new();
    if count > 0 {
        points.push((0.0, histogram.min() as f64));
        for step in histogram.iter_quantiles(5) {
            let quantile = step.quantile_iterated_to();
            let x = if quantile >= 1.0 {
                f64::from(nines)
            } else {
                (-(1.0 - quantile).log10()).min(f64::from(nines))
            };
            points.push((x, histogram.highest_equivalent(step.value_iterated_to()) as f64));
        }
        points.push((f64::from(nines), histogram.max() as f64));
    }
    render_plot(title, &points, nines)
}

/// Draws `points` (nines of the percentile, latency in nanoseconds) on axes
/// from 0 to `nines` across and 0 to a round latency up.
fn render_plot(title: &str, points: &[(f64, f64)], nines: u32) -> String {
    let (width, height) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let highest = points.iter().map(|&(_, y)| y).fold(0.0, f64::max);
    let (step, unit, per_unit) = y_axis(highest);
    let top = (highest / step).ceil().max(1.0) * step;
    let x_at = |nines_x: f64| LEFT + nines_x / f64::from(nines) * width;
    let y_at = |ns: f64| TOP + height - ns / top * height;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="25" text-anchor="middle" font-size="14">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    // Grid lines and labels across: one per nine.
    for nine in 0..=nines {
        let x = x_at(f64::from(nine));
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/>"##,
            TOP + height
        );
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + height + 18.0,
            percentile_label(nine)
        );
    }
    // Grid lines and labels up: every step.
    let mut tick = 0.0;
    while tick <= top + step / 2.0 {
        let y = y_at(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            LEFT + width
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            y + 4.0,
            axis_number(tick / per_unit)
        );
        tick += step;
    }
    let _ = writeln!(
        svg,
        r#"<rect x="{LEFT}" y="{TOP}" width="{width}" height="{height}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">Percentile</text>"#,
        LEFT + width / 2.0,
        HEIGHT - 15.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="20" y="{:.1}" text-anchor="middle" transform="rotate(-90 20 {:.1})">Latency ({unit})</text>"#,
        TOP + height / 2.0,
        TOP + height / 2.0
    );
    if points.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">no correct reply: no latency to plot</text>"#,
            LEFT + width / 2.0,
            TOP + height / 2.0
        );
    } else {
        let coordinates: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", x_at(x), y_at(y)))
            .collect();
        let _ = writeln!(
            svg,
            r##"<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{}"/>"##,
            coordinates.join(" ")
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// `0%`, `90%`, `99%`, `99.9%`, … for 0, 1, 2, 3, … nines.
fn percentile_label(nines: u32) -> String {
    match nines {
        0 => "0%".to_owned(),
        1 => "90%".to_owned(),
        _ => format!("99.{}%", "9".repeat(nines as usize - 2)).replace(".%", "%"),
    }
}

/// The y axis for latencies up to `highest` ns: a round step (1, 2 or 5
/// times a power of ten), its unit, and nanoseconds per unit.
fn y_axis(highest: f64) -> (f64, &'static str, f64) {
    let (unit, per_unit) = if highest >= 1e9 {
        ("s", 1e9)
    } else if highest >= 1e6 {
        ("ms", 1e6)
    } else {
        ("µs", 1e3)
    };
    // The smallest round step that reaches `highest` in six or fewer.
    let power = 10f64.powf((highest / 6.0).max(1.0).log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&step| highest / step <= 6.0)
        .unwrap_or(10.0 * power);
    (step, unit, per_unit)
}

/// A number on an axis: no more decimals than it needs (up to three).
fn axis_number(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Text safe inside an SVG element.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Framing;
    use crate::load::Length;

    fn report(tally: Tally, rate: Option<f64>) -> Report {
        let bench = Bench::new("tcp://127.0.0.1:7000".parse().unwrap())
            .service(crate::Builtin::Echo)
            .framing(Framing::Line)
            .connections(2)
            .pipeline(4)
            .size(64)
            .rate(rate)
            .warmup(Duration::from_secs(1))
            .length(Length::Requests(1000));
        Report::new(bench, 2, tally, Duration::from_secs(2))
    }

    fn clean_tally() -> Tally {
        let mut tally = Tally {
            requests: 1000,
            bytes_sent: 65_000,
            bytes_received: 65_000,
            ..Tally::default()
        };
        for us in 1..=1000 {
            tally.reply(Duration::from_micros(us));
        }
        tally
    }

    #[test]
    fn the_summary_of_a_clean_run() {
        assert_eq!(
            report(clean_tally(), None).summary(),
            "sockit bench tcp://127.0.0.1:7000: echo, line framing, 2 connections × 4 in flight, 64-byte requests, closed loop\n\
             duration    2.00 s measured, after 1.00 s of warmup\n\
             requests    1,000\n\
             replies     1,000 correct\n\
             errors      0\n\
             throughput  500 msgs/s; 32.5 kB/s sent, 32.5 kB/s received (wire bytes, framing included)\n\
             latency     p50 500 µs, p90 900 µs, p99 990 µs, p99.9 999 µs, max 1.00 ms (from each send)\n"
        );
    }

    #[test]
    fn the_summary_names_every_error_and_fails() {
        let mut tally = clean_tally();
        tally.wrong = 3;
        tally.missing = 1234;
        tally.timeouts = 1;
        tally.connection_error(std::io::ErrorKind::ConnectionReset);
        tally.connection_error(std::io::ErrorKind::ConnectionReset);
        tally.connection_error(std::io::ErrorKind::UnexpectedEof);
        let summary = report(tally, Some(500.0)).summary();
        let lines: Vec<&str> = summary.lines().collect();
        assert!(lines[0].ends_with("open loop at 500 requests/s"), "{}", lines[0]);
        assert_eq!(
            lines[4],
            "errors      1,241: 3 wrong, 1,234 missing (no reply within 1s), 1 stalled connection, \
             3 failed connections (2 connection reset, 1 unexpected end of file)"
        );
        assert!(
            lines[6].ends_with("(from each intended send time)"),
            "{}",
            lines[6]
        );
        assert_eq!(lines[7], "FAILED: 1,241 errors");
        assert_eq!(lines.len(), 8);
    }

    #[test]
    fn the_summary_without_replies_says_so() {
        let tally = Tally {
            requests: 5,
            missing: 5,
            ..Tally::default()
        };
        let summary = report(tally, None).summary();
        assert!(
            summary.contains("\nlatency     none measured: no correct reply\n"),
            "{summary}"
        );
        assert!(summary.ends_with("FAILED: 5 errors\n"), "{summary}");
    }

    #[test]
    fn json_has_the_documented_fields() {
        let mut tally = clean_tally();
        tally.connection_error(std::io::ErrorKind::ConnectionRefused);
        tally.warmup_replies = 321;
        let json: serde_json::Value = serde_json::from_str(&report(tally, None).to_json()).unwrap();
        assert_eq!(json["endpoint"], "tcp://127.0.0.1:7000");
        assert_eq!(json["service"], "echo");
        assert_eq!(json["framing"], "line");
        assert_eq!(
            (json["connections"].as_u64(), json["connected"].as_u64()),
            (Some(2), Some(2))
        );
        assert_eq!(
            (json["pipeline"].as_u64(), json["size"].as_u64()),
            (Some(4), Some(64))
        );
        assert_eq!(json["rate"], serde_json::Value::Null);
        assert_eq!(
            (json["warmup_s"].as_f64(), json["duration_s"].as_f64()),
            (Some(1.0), Some(2.0))
        );
        assert_eq!(
            (json["requests"].as_u64(), json["replies"].as_u64()),
            (Some(1000), Some(1000))
        );
        assert_eq!(json["warmup_replies"].as_u64(), Some(321));
        assert_eq!(
            json["errors"],
            serde_json::json!({"total": 1, "wrong": 0, "missing": 0, "timeouts": 0,
                               "connections": {"ConnectionRefused": 1}})
        );
        assert_eq!(json["msgs_per_s"].as_f64(), Some(500.0));
        assert_eq!(
            (json["bytes_sent"].as_u64(), json["bytes_received"].as_u64()),
            (Some(65_000), Some(65_000))
        );
        assert_eq!(json["sent_bytes_per_s"].as_f64(), Some(32_500.0));
        assert_eq!(json["received_bytes_per_s"].as_f64(), Some(32_500.0));
        assert_eq!(json["latency_from"], "send");
        let latency = &json["latency_us"];
        assert_eq!(latency["min"].as_f64(), Some(1.0));
        assert_eq!(latency["p50"].as_f64(), Some(500.223));
        assert_eq!(latency["p99_9"].as_f64(), Some(999.423));
        assert_eq!(latency["max"].as_f64(), Some(1000.447));
        assert_eq!(
            json.as_object().unwrap().len(),
            21,
            "no field more or less than documented"
        );
    }

    #[test]
    fn json_of_a_datagram_run_without_replies() {
        let bench = Bench::new("udp://127.0.0.1:9".parse().unwrap()).rate(Some(10.0));
        let json: serde_json::Value =
            serde_json::from_str(&Report::new(bench, 50, Tally::default(), Duration::ZERO).to_json())
                .unwrap();
        assert_eq!(json["framing"], serde_json::Value::Null);
        assert_eq!(json["latency_us"], serde_json::Value::Null);
        assert_eq!(json["latency_from"], "schedule");
        assert_eq!(json["rate"].as_f64(), Some(10.0));
        assert_eq!(json["msgs_per_s"].as_f64(), Some(0.0));
    }

    #[test]
    fn numbers_read_easily() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(latency(8_214.0), "8.21 µs");
        assert_eq!(latency(82_140.0), "82.1 µs");
        assert_eq!(latency(821_400.0), "821 µs");
        assert_eq!(latency(999_600.0), "1.00 ms");
        assert_eq!(latency(12_345_678.0), "12.3 ms");
        assert_eq!(latency(2_500_000_000.0), "2.50 s");
        assert_eq!(bytes_per_second(512.0), "512 B/s");
        assert_eq!(bytes_per_second(7_840_000.0), "7.84 MB/s");
        assert_eq!(bytes_per_second(1.2e9), "1.20 GB/s");
        assert_eq!(plural(1, "error"), "1 error");
        assert_eq!(plural(1200, "error"), "1,200 errors");
    }

    #[test]
    fn percentile_labels_count_nines() {
        let labels: Vec<String> = (0..=5).map(percentile_label).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
    }

    #[test]
    fn y_axis_steps_are_round() {
        assert_eq!(y_axis(1_000_000.0), (200_000.0, "ms", 1e6));
        assert_eq!(y_axis(1_000_447.0), (200_000.0, "ms", 1e6));
        assert_eq!(y_axis(730_000.0), (200_000.0, "µs", 1e3));
        assert_eq!(y_axis(90_000.0), (20_000.0, "µs", 1e3));
        assert_eq!(y_axis(3.2e9), (1e9, "s", 1e9));
        assert_eq!(axis_number(0.2), "0.2");
        assert_eq!(axis_number(200.0), "200");
    }

    #[test]
    fn the_plot_draws_the_points_on_percentile_and_latency_axes() {
        // Two nines across (0% to 99%), 0 to 100 µs up in steps of 20 µs.
        let svg = render_plot(
            "a <b> & c",
            &[(0.0, 10_000.0), (1.0, 50_000.0), (2.0, 100_000.0)],
            2,
        );
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"480\""),
            "{svg}"
        );
        assert!(svg.ends_with("</svg>\n"));
        assert!(svg.contains(">a &lt;b&gt; &amp; c</text>"));
        for label in [">0%<", ">90%<", ">99%<", ">Percentile<", ">Latency (µs)<"] {
            assert!(svg.contains(label), "no {label} in {svg}");
        }
        for tick in [">0<", ">20<", ">40<", ">60<", ">80<", ">100<"] {
            assert!(svg.contains(tick), "no {tick} in {svg}");
        }
        assert!(!svg.contains(">99.9%<"));
        // x: 80 + nines/2 × 690; y: 50 + 370 − latency/100 µs × 370.
        assert!(
            svg.contains(r#"points="80.0,383.0 425.0,235.0 770.0,50.0""#),
            "{svg}"
        );
    }

    #[test]
    fn the_plot_of_a_histogram_reaches_its_max_at_the_last_nine() {
        let tally = clean_tally();
        let svg = percentile_plot("t", tally.latency());
        // 1000 values tell percentiles up to three nines.
        assert!(svg.contains(">99.9%<") && !svg.contains(">99.99%<"), "{svg}");
        let points = svg.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        let points: Vec<&str> = points.split(' ').collect();
        // Up to 1.2 ms in steps of 0.2 ms: y = 50 + 370 − latency / 1.2 ms × 370.
        assert_eq!(points.first(), Some(&"80.0,419.7"), "min 1 µs at 0%");
        assert_eq!(points.last(), Some(&"770.0,111.5"), "max 1000.4 µs at 99.9%");
        let xs: Vec<f64> = points
            .iter()
            .map(|p| p.split(',').next().unwrap().parse().unwrap())
            .collect();
        assert!(xs.windows(2).all(|w| w[0] <= w[1]), "{xs:?}");
    }

    #[test]
    fn an_empty_plot_says_why() {
        let svg = percentile_plot("t", Tally::default().latency());
        assert!(svg.contains("no correct reply: no latency to plot"));
        assert!(!svg.contains("<polyline"));
    }
}
