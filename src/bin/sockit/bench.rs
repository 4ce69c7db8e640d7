//! `sockit bench`: put load on a server and measure it (msgs/s, errors,
//! latency percentiles), checking every reply byte for byte.

use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rustix::process::{Resource, getrlimit, setrlimit};
use sockit::load::{Bench, BenchError, Length, Live, Phase, Progress, Report};
use sockit::{Builtin, Endpoint, Framing};
use tracing::warn;

use crate::options::{self, SocketFlags, TlsFlags};
use crate::serve::parse_duration;

/// Load a server with requests and measure it: msgs/s, bytes/s, errors, and
/// latency percentiles (p50, p90, p99, p99.9, max) from an HDR histogram.
///
/// Every reply is checked byte for byte against what its request was owed
/// (greet: Hello, M! on streams and seqpacket, Hello, M to a datagram; echo:
/// M); a wrong or missing reply is counted and reported, and makes the exit
/// status 1. Each request carries its connection and sequence number, so
/// datagram replies are matched however they are lost or reordered.
///
/// By default each connection keeps --pipeline requests in flight and sends
/// the next when a reply comes (closed loop). With --rate, requests are
/// sent on a fixed schedule whatever the server does (open loop), and
/// latency is measured from when each was meant to be sent, so a server that
/// falls behind shows its backlog as latency.
///
/// All connections run on one thread's event loop: pin it with taskset to
/// keep it off the server's core. Progress goes to stderr (a bar on a
/// terminal, a line a second otherwise); the summary, or --json, to stdout.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sockit bench 127.0.0.1:8000                         the tutorial's server, 50 connections, 10 s\n  \
    sockit bench tcp://127.0.0.1:7000 --service echo -c 50 -d 5s\n  \
    sockit bench tcp://127.0.0.1:7000 --service echo --framing line -p 16\n  \
    sockit bench udp://127.0.0.1:9000 -c 4 -p 64 -n 100000 --json\n  \
    sockit bench tls://localhost:8443 --ca cert.pem -c 10 -d 5s\n  \
    sockit bench unix:/tmp/greet.sock --rate 20000 -d 30s --plot latency.svg\n  \
    taskset -c 1 sockit bench seqpacket:@greet -c 100 -s 1024")]
pub struct Args {
    /// Where to send load: tcp://HOST:PORT, udp://HOST:PORT, tls://HOST:PORT, HOST:PORT (TCP), unix:PATH,
    /// unix-dgram:PATH or seqpacket:PATH (PATH may be @NAME, a Linux abstract name).
    #[arg(value_name = "ENDPOINT")]
    endpoint: Endpoint,

    /// The protocol the server speaks: greet (a greeting, then a reply per
    /// message) or echo.
    #[arg(long, value_name = "SERVICE", default_value_t = Builtin::Greet)]
    service: Builtin,

    /// How stream requests are framed: auto and raw send them bare (one in
    /// flight per connection), line adds '\n', len32 a 4-byte length. The
    /// server must frame the same way (its auto understands line).
    #[arg(short, long, default_value_t = Framing::Auto)]
    framing: Framing,

    /// How many connections to open (sockets, for datagrams).
    #[arg(short = 'c', long = "conns", value_name = "N", default_value_t = 50)]
    connections: usize,

    /// How long to send for, after the warmup (e.g. 10s, 500ms).
    #[arg(short, long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    duration: Duration,

    /// Send N requests in all, shared by the connections, instead of for a duration.
    #[arg(short = 'n', long, value_name = "N", conflicts_with = "duration")]
    requests: Option<u64>,

    /// The size of each request in bytes, framing not included; at least 16,
    /// the id that matches a reply to its request.
    #[arg(short, long, value_name = "BYTES", default_value_t = 64)]
    size: usize,

    /// How many requests each connection keeps in flight; more than 1 on a
    /// stream needs --framing line or len32.
    #[arg(short, long, value_name = "K", default_value_t = 1)]
    pipeline: usize,

    /// Open loop: send R requests a second in all, on a fixed schedule.
    #[arg(short, long, value_name = "R")]
    rate: Option<f64>,

    /// Run unmeasured load first for this long [default: 1s with --duration,
    /// none with --requests].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    warmup: Option<Duration>,

    /// How long to wait to connect, and for each reply before it counts as missing.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    timeout: Duration,

    /// Print the report as one JSON object instead of the summary.
    #[arg(long)]
    json: bool,

    /// Also draw the latency distribution (a percentile plot) into FILE, as SVG.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,

    /// The local address to send from (IP:PORT; port 0 lets the system choose).
    #[arg(long, value_name = "ADDR", help_heading = "Socket options")]
    bind: Option<SocketAddr>,

    #[command(flatten)]
    socket: SocketFlags,

    #[command(flatten)]
    tls: TlsFlags,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut options = args.socket.options();
    if let Some(local) = args.bind {
        options = options.bind(local);
    }
    let length = match args.requests {
        Some(requests) => Length::Requests(requests),
        None => Length::Duration(args.duration),
    };
    let warmup = args.warmup.unwrap_or(match length {
        Length::Duration(_) => Duration::from_secs(1),
        Length::Requests(_) => Duration::ZERO,
    });
    let mut bench = Bench::new(args.endpoint.clone())
        .service(args.service)
        .framing(args.framing)
        .connections(args.connections)
        .length(length)
        .size(args.size)
        .pipeline(args.pipeline)
        .rate(args.rate)
        .warmup(warmup)
        .timeout(args.timeout)
        .options(options.clone());
    if let Some(tls) = args.tls.client(&args.endpoint)? {
        bench = bench.tls(tls);
    }
    if let Err(BenchError::Invalid(reason)) = bench.check() {
        return Ok(usage(reason));
    }
    options::warn_unused(&options, &args.endpoint);
    if args.framing != Framing::Auto && bench.stream_framing().is_none() {
        warn!(
            "--framing does not apply to {}: every message is a packet; ignored",
            args.endpoint
        );
    }
    // A socket per connection, and a timer too at a fixed rate.
    allow_descriptors(2 * args.connections as u64 + 64);

    let live = Arc::new(Live::default());
    let mut running = {
        let live = Arc::clone(&live);
        // The load runs on a thread of its own with a current-thread
        // runtime: one core, however many connections.
        tokio::task::spawn_blocking(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(bench.run(&live))
        })
    };
    let display = ProgressDisplay::new(&length);
    let every = display.every();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let ran = loop {
        tokio::select! {
            ran = &mut running => break ran,
            _ = ticks.tick() => display.show(&live.progress()),
        }
    };
    display.finish();
    let report = match ran {
        Ok(report) => report.map_err(|error| match error {
            BenchError::Connect(error) => options::untrusted_hint(error),
            other => other.into(),
        })?,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    };

    if let Some(path) = &args.plot {
        std::fs::write(path, report.plot_svg())
            .with_context(|| format!("cannot write the plot to {}", path.display()))?;
    }
    let text = if args.json {
        report.to_json() + "\n"
    } else {
        report.summary()
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")?;
    Ok(exit_status(&report))
}

/// 0 when every request got its reply, 1 otherwise.
fn exit_status(report: &Report) -> ExitCode {
    if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Says a usage error as `main` does: one line, exit status 2.
fn usage(what: impl Display) -> ExitCode {
    eprintln!("sockit: error: {what} (see 'sockit bench --help')");
    ExitCode::from(2)
}

/// Raises the soft limit on open files towards `needed`, as far as the hard
/// limit allows (many systems start processes at 1024).
fn allow_descriptors(needed: u64) {
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_none_or(|current| current >= needed) {
        return;
    }
    let raised = limit.maximum.map_or(needed, |maximum| maximum.min(needed));
    let new = rustix::process::Rlimit {
        current: Some(raised),
        maximum: limit.maximum,
    };
    if let Err(error) = setrlimit(Resource::Nofile, new) {
        warn!("cannot raise the limit on open files to {raised}: {error}");
    } else if raised < needed {
        warn!("at most {raised} files may be open (the hard limit): some connections may fail");
    }
}

/// Progress on stderr: a bar on a terminal, a line a second otherwise;
/// none with `-q` (or when `RUST_LOG` hides info).
struct ProgressDisplay {
    bar: Option<ProgressBar>,
    length: Length,
    shown: bool,
}

impl ProgressDisplay {
    fn new(length: &Length) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let total = match length {
                Length::Duration(duration) => duration.as_millis() as u64,
                Length::Requests(requests) => *requests,
            };
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{bar:30}] {percent:>3}% {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        let shown = tracing::enabled!(tracing::Level::INFO);
        ProgressDisplay {
            bar: bar.filter(|_| shown),
            length: *length,
            shown,
        }
    }

    /// How often to update.
    fn every(&self) -> Duration {
        if self.bar.is_some() {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        }
    }

    fn show(&self, progress: &Progress) {
        if !self.shown {
            return;
        }
        let rate = if progress.measured.is_zero() {
            0.0
        } else {
            progress.replies as f64 / progress.measured.as_secs_f64()
        };
        let line = match progress.phase {
            Phase::Connecting => "connecting".to_owned(),
            Phase::Warmup => format!("warming up, {} errors", progress.errors),
            Phase::Measuring | Phase::Done => format!(
                "{:.1} s, {} replies, {:.0} msgs/s so far, {} errors",
                progress.measured.as_secs_f64(),
                progress.replies,
                rate,
                progress.errors
            ),
            _ => String::new(),
        };
        match &self.bar {
            Some(bar) => {
                let position = match self.length {
                    Length::Duration(_) => progress.measured.as_millis() as u64,
                    Length::Requests(_) => progress.requests,
                };
                bar.set_position(position);
                bar.set_message(line);
            }
            None => eprintln!("sockit bench: {line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
