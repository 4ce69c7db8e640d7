//! `sockit serve`: serve a built-in service on one or more endpoints until
//! SIGINT or SIGTERM, then shut down gracefully.

use std::process::ExitCode;
use std::time::Duration;

use std::net::IpAddr;

use anyhow::Context;
use socket2::SockRef;
use sockit::limit::{DEFAULT_MAX_AMPLIFICATION, RateLimit};
use sockit::net::SocketOptions;
use sockit::server::DEFAULT_MAX_CONNECTIONS;
use sockit::{Builtin, Endpoint, Framing, Limits, Server, Transport, WhenFull};
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config;
use crate::options::{self, SocketFlags};

/// Serve a service (the tutorial's greeting by default) on endpoints.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sockit serve                                   the tutorial's TCP server on 127.0.0.1:8000\n  \
    sockit serve udp://127.0.0.1:9000              the tutorial's UDP server\n  \
    sockit serve tcp://[::1]:7000 --service echo   an echo server on IPv6\n  \
    sockit serve unix:/tmp/greet.sock --mode 0660  on a Unix socket file\n  \
    sockit serve seqpacket:@greet                  on a Linux abstract seqpacket socket\n  \
    sockit serve 127.0.0.1:8000 --framing line -v  lines only, logging every message\n  \
    sockit serve udp://[::]:9000 --rate-limit 20/s  a UDP service others can reach\n  \
    sockit serve 0.0.0.0:8000 --idle-timeout 5m --read-timeout 30s  open to others")]
pub struct Args {
    /// Where to listen: tcp://HOST:PORT, udp://HOST:PORT, HOST:PORT (TCP), unix:PATH,
    /// unix-dgram:PATH or seqpacket:PATH (PATH may be @NAME, a Linux abstract name).
    #[arg(value_name = "ENDPOINT", default_value = "tcp://127.0.0.1:8000")]
    endpoints: Vec<Endpoint>,

    /// What to answer: greet (the tutorial's protocol), echo or discard.
    #[arg(short, long, default_value_t = Builtin::Greet)]
    service: Builtin,

    /// How stream messages are cut: auto, raw, line or len32
    /// [default: auto for greet, raw for echo and discard].
    #[arg(short, long)]
    framing: Option<Framing>,

    /// Read the limits (max_connections, max_message, idle_timeout, read_timeout,
    /// rate_limit, rate_burst, max_amplification, max_reply) from this TOML file, and
    /// again on SIGHUP: a reload applies the connection limit at once, the datagram
    /// limits from the next datagram, the rest to new connections, and closes none.
    #[arg(long, value_name = "FILE",
          conflicts_with_all = ["max_connections", "max_message", "idle_timeout", "read_timeout",
                                "rate_limit", "max_amplification", "max_reply"])]
    config: Option<std::path::PathBuf>,

    /// The most connections open at once; more wait or are refused (--when-full).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS,
          value_parser = parse_count)]
    max_connections: usize,

    /// Past --max-connections, new peers wait in the backlog until a connection closes
    /// (wait), or are closed at once, before the greeting, without a word (refuse).
    #[arg(long, value_name = "WHAT", default_value_t = WhenFull::Wait)]
    when_full: WhenFull,

    /// The longest message in bytes (or with K, M: 64K); a longer one gets an error and
    /// its connection is closed (a longer datagram is dropped).
    #[arg(long, value_name = "BYTES", default_value = "64K", value_parser = parse_message_size)]
    max_message: usize,

    /// How long to let open connections finish after SIGINT/SIGTERM (e.g. 10s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    shutdown_timeout: Duration,

    /// Close a stream connection with no traffic either way for this long (nothing read,
    /// none of the replies it owes written: a peer that stops reading is closed too),
    /// e.g. 5m; 0: never. Off by default: sockit is a test tool, and a learner's `nc` left
    /// open is not to be closed under them. Set it on a service others can reach.
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = parse_duration)]
    idle_timeout: Duration,

    /// Close a stream connection whose message takes longer than this to arrive whole,
    /// from its first byte (slowloris), e.g. 30s; 0: never. Off by default, for the same
    /// reason; seqpacket packets arrive whole and need none.
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = parse_duration)]
    read_timeout: Duration,

    /// Permissions of Unix socket files, in octal (e.g. 0660); by default the umask decides.
    #[arg(long, value_name = "OCTAL", value_parser = parse_mode)]
    mode: Option<u32>,

    /// The listen backlog of stream listeners.
    #[arg(long, value_name = "N", default_value_t = sockit::net::DEFAULT_BACKLOG)]
    backlog: u32,

    /// Datagrams read (recvmmsg) and answered (sendmmsg) per system call on datagram
    /// listeners; 1 reads and answers one at a time.
    #[arg(long, value_name = "N", default_value_t = sockit::server::DEFAULT_DATAGRAM_BATCH,
          value_parser = parse_count)]
    batch: usize,

    /// Answer at most RATE datagrams from each source (an IPv4 address, an IPv6 /64, a
    /// Unix address), e.g. 100/s, 600/m or 10/h; past it, its datagrams are dropped
    /// unanswered and counted. Off by default, for tests on loopback, where one client
    /// sending at full speed is the point: set it on a UDP service others can reach, so
    /// that it cannot be made to flood a forged address with replies.
    #[arg(long, value_name = "RATE", help_heading = "Datagram limits")]
    rate_limit: Option<RateLimit>,

    /// The most datagrams a source may send at once under --rate-limit, after a quiet
    /// spell [default: the rate's count, 100 for 100/s].
    #[arg(long, value_name = "N", requires = "rate_limit", help_heading = "Datagram limits",
          value_parser = clap::value_parser!(u32).range(1..))]
    rate_burst: Option<u32>,

    /// Send no reply larger than K times its datagram (or 64 bytes, whichever is more);
    /// 0: no cap. The default is QUIC's limit for an unverified address; greet's and
    /// echo's replies always pass it.
    #[arg(long, value_name = "K", default_value_t = DEFAULT_MAX_AMPLIFICATION,
          help_heading = "Datagram limits")]
    max_amplification: u32,

    /// Send no reply larger than BYTES (or with K, M: 1K) to a datagram [default: no cap].
    #[arg(long, value_name = "BYTES", value_parser = options::parse_bytes,
          help_heading = "Datagram limits")]
    max_reply: Option<usize>,

    /// Join this multicast group on UDP listeners (repeatable).
    #[arg(long, value_name = "GROUP", help_heading = "Socket options")]
    multicast: Vec<IpAddr>,

    #[command(flatten)]
    socket: SocketFlags,
}

/// Parses a count that must be at least 1.
fn parse_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(count) => Ok(count),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

/// Parses a message size: at least one byte.
fn parse_message_size(text: &str) -> Result<usize, String> {
    match options::parse_bytes(text)? {
        0 => Err("must be at least 1".to_owned()),
        bytes => Ok(bytes),
    }
}

/// Parses file permissions in octal: `0660`, `660`, `0o660`.
fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o7777 => Ok(mode),
        _ => Err(format!("{text:?} is not a file mode in octal such as 0660")),
    }
}

/// Parses `10s`, `500ms`, `1m`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration such as 10s or 500ms: {e}"))
}

/// On SIGHUP: reads the --config file again and applies its limits; a file
/// that cannot be read or is wrong leaves the limits as they were.
fn reload(config: Option<&std::path::Path>, live: &sockit::LimitsHandle) {
    let Some(path) = config else {
        info!("SIGHUP: there is no --config file to read again; nothing changes");
        return;
    };
    match config::read(path) {
        Ok(limits) => {
            live.set(limits);
            let off = |timeout: Option<Duration>| timeout.map_or("off".to_owned(), |t| format!("{t:?}"));
            info!(
                max_connections = limits.max_connections,
                max_message = limits.max_message,
                idle_timeout = off(limits.idle_timeout),
                read_timeout = off(limits.read_timeout),
                "SIGHUP: limits read again from {}",
                path.display()
            );
        }
        Err(error) => warn!("SIGHUP: {error:#}; the limits stay as they were"),
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = options::with_multicast(args.socket.options(), &args.multicast);
    let limits = match &args.config {
        Some(path) => config::read(path)?,
        None => Limits {
            max_connections: args.max_connections,
            max_message: args.max_message,
            idle_timeout: Some(args.idle_timeout),
            read_timeout: Some(args.read_timeout),
            rate_limit: args
                .rate_limit
                .map(|limit| args.rate_burst.map_or(limit, |burst| limit.burst(burst))),
            reply_cap: options::reply_cap(args.max_amplification, args.max_reply),
        },
    };
    let server = Server::new(args.service)
        .options(options.clone())
        .limits(limits)
        .when_full(args.when_full)
        .shutdown_timeout(args.shutdown_timeout)
        .backlog(args.backlog)
        .datagram_batch(args.batch);
    let server = match args.mode {
        Some(mode) => server.unix_mode(mode),
        None => server,
    };
    let server = match args.framing {
        Some(framing) => server.framing(framing),
        None => server,
    };
    // Bind everything first, so a bad endpoint fails before anything is served.
    let mut listeners = Vec::with_capacity(args.endpoints.len());
    for endpoint in &args.endpoints {
        options::warn_unused(&options, endpoint);
        let listener = server.bind(endpoint).await?;
        listeners.push(listener);
    }
    let stop = CancellationToken::new();
    let mut serving = JoinSet::new();
    let options_set = options != SocketOptions::default();
    for listener in listeners {
        let endpoint = listener.local_endpoint();
        let mut details = format!("{} service", args.service);
        if endpoint.transport() == Transport::Stream {
            details.push_str(&format!(", {} framing", listener.framing()));
        } else if let Some(limit) = limits.rate_limit {
            details.push_str(&format!(", at most {limit} a source"));
        }
        if options_set {
            details.push_str(&format!(", {}", options.read_back(&SockRef::from(&listener))));
        }
        info!("listening on {endpoint} ({details})");
        serving.spawn(listener.serve(stop.clone().cancelled_owned()));
    }

    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let live = server.limits_handle();
    loop {
        tokio::select! {
            _ = interrupt.recv() => { info!("SIGINT: shutting down (again to stop at once)"); break }
            _ = terminate.recv() => { info!("SIGTERM: shutting down (again to stop at once)"); break }
            _ = hangup.recv() => reload(args.config.as_deref(), &live),
        }
    }
    stop.cancel();
    let finished = async {
        while let Some(served) = serving.join_next().await {
            served.context("a listener panicked")??;
        }
        anyhow::Ok(())
    };
    tokio::select! {
        finished = finished => finished?,
        _ = interrupt.recv() => { warn!("stopped at once"); return Ok(ExitCode::FAILURE) }
        _ = terminate.recv() => { warn!("stopped at once"); return Ok(ExitCode::FAILURE) }
    }
    info!("shut down cleanly");
    Ok(ExitCode::SUCCESS)
}
