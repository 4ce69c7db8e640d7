//! `sockit relay`: forward one endpoint to another, injecting seeded faults,
//! until SIGINT or SIGTERM; then log what was done, on one line.

use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use sockit::relay::{Directions, Faults, Probability, Relay, Side};
use sockit::server::DEFAULT_MAX_CONNECTIONS;
use sockit::{Endpoint, Error, Transport};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::options::{self, CertFlags, SocketFlags, TlsFlags};
use crate::serve::parse_duration;

/// Forward LISTEN to TARGET, as socat does, injecting faults on the way.
///
/// Streams (tcp, tls, unix) relay to streams and datagrams (udp, unix-dgram)
/// to datagrams, in any pairing of families; a stream is not relayed to
/// datagrams, nor seqpacket at all. Each stream client gets a connection of
/// its own to TARGET; an end of stream is passed on as a half-close. Each
/// datagram client address gets a socket of its own to TARGET, so replies
/// go back to it.
///
/// Either side may be `-` (stdin and stdout) or a program (`exec:CMD`,
/// `sh:CMD`), which are streams. As LISTEN, it is one client, relayed once
/// to TARGET; as TARGET, a program is started for each client, and stdin
/// and stdout take the first client only. A tls:// LISTEN terminates TLS
/// (--cert, --key); a tls:// TARGET originates it (--ca, --insecure, --sni).
///
/// Faults are drawn from --seed (random unless given, and logged at
/// startup), so a run can be repeated exactly. On SIGINT/SIGTERM the relay
/// stops and logs a one-line summary: connections, sessions, resets, and
/// for each direction (to_target, to_client) the messages received,
/// dropped, duplicated, reordered, delayed, forwarded and failed, and bytes.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    Serve a Unix socket's clients on TCP:\n    \
    sockit relay tcp://127.0.0.1:8000 unix:/tmp/app.sock\n  \
    Lossy, late, reordered UDP, the same on every run:\n    \
    sockit relay udp://127.0.0.1:9001 udp://127.0.0.1:9000 \\\n        \
    --drop 0.1 --reorder 0.05 --delay 5ms --jitter 2ms --seed 1\n  \
    A slow drip, byte by byte:\n    \
    sockit relay tcp://127.0.0.1:8001 127.0.0.1:8000 --slice 1 --delay 1ms\n  \
    A reset once 100 bytes have gone one way:\n    \
    sockit relay tcp://127.0.0.1:8001 127.0.0.1:8000 --reset-after 100\n  \
    stdin and stdout to a server (socat - TCP:127.0.0.1:8000):\n    \
    sockit relay - 127.0.0.1:8000\n  \
    A program per connection (socat TCP-LISTEN:9000,fork EXEC:cat):\n    \
    sockit relay tcp://127.0.0.1:9000 exec:cat\n  \
    TLS in front of a plain server (stunnel):\n    \
    sockit relay tls://0.0.0.0:8443 127.0.0.1:8000 --cert cert.pem --key key.pem\n  \
    A plain port to a TLS server:\n    \
    sockit relay tcp://127.0.0.1:8080 tls://example.com:443")]
pub struct Args {
    /// Where to listen: tcp://HOST:PORT, udp://HOST:PORT, HOST:PORT (TCP), tls://HOST:PORT,
    /// unix:PATH or unix-dgram:PATH (PATH may be @NAME, a Linux abstract name); or - (stdin
    /// and stdout) or exec:CMD / sh:CMD (a program), relayed once.
    #[arg(value_name = "LISTEN")]
    listen: Side,

    /// Where to forward to, of the same kind (stream or datagram); or - (stdin and stdout,
    /// for the first client), or exec:CMD / sh:CMD (a program per client).
    #[arg(value_name = "TARGET")]
    target: Side,

    #[command(flatten)]
    cert: CertFlags,

    #[command(flatten)]
    tls: TlsFlags,

    /// The seed of every random choice; the same seed and traffic give the same faults.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// Datagrams: drop each with probability P (0 to 1, or a percentage such as 10%).
    #[arg(long = "drop", value_name = "P", default_value = "0", help_heading = "Faults")]
    drop_p: Probability,

    /// Datagrams: send each twice with probability P.
    #[arg(long, value_name = "P", default_value = "0", help_heading = "Faults")]
    duplicate: Probability,

    /// Datagrams: hold each back with probability P, and send it right after the next one
    /// (or after 100ms if none follows).
    #[arg(long, value_name = "P", default_value = "0", help_heading = "Faults")]
    reorder: Probability,

    /// Datagrams and stream pieces: wait this long before sending each (e.g. 5ms). A stream
    /// is paced by it: each piece waits in turn.
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = parse_duration,
          help_heading = "Faults")]
    delay: Duration,

    /// Vary each delay by up to this much either way, uniformly (never below zero).
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = parse_duration,
          help_heading = "Faults")]
    jitter: Duration,

    /// Streams: forward in pieces of at most N bytes, one write each.
    #[arg(long, value_name = "N", help_heading = "Faults")]
    slice: Option<NonZeroUsize>,

    /// Streams: once BYTES have been forwarded in one direction, reset both sides
    /// (TCP: RST, by SO_LINGER 0; a Unix stream peer sees an end of stream).
    #[arg(long, value_name = "BYTES", help_heading = "Faults")]
    reset_after: Option<u64>,

    /// Which way faults apply: both, to-target (what clients send) or to-client (what the
    /// target sends back).
    #[arg(long, value_name = "WAY", default_value = "both", help_heading = "Faults")]
    direction: Directions,

    /// Datagrams: end a client's session after this long without traffic.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_positive_duration)]
    idle_timeout: Duration,

    /// How long to wait for TARGET to accept a relayed stream connection.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    connect_timeout: Duration,

    /// The most connections (or datagram sessions) relayed at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,

    #[command(flatten)]
    socket: SocketFlags,
}

/// Parses a duration that must be more than zero.
fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        Duration::ZERO => Err("must be more than zero".to_owned()),
        duration => Ok(duration),
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    let mut faults = Faults::new(seed)
        .drop(args.drop_p)
        .duplicate(args.duplicate)
        .reorder(args.reorder)
        .delay(args.delay, args.jitter)
        .directions(args.direction);
    if let Some(slice) = args.slice {
        faults = faults.slice(slice);
    }
    if let Some(bytes) = args.reset_after {
        faults = faults.reset_after(bytes);
    }
    let options = args.socket.options();
    let mut relay = Relay::to(args.target.clone())
        .faults(faults.clone())
        .options(options.clone())
        .idle_timeout(args.idle_timeout)
        .connect_timeout(args.connect_timeout)
        .max_connections(args.max_connections);
    let tls_listen = matches!(args.listen, Side::Endpoint(Endpoint::Tls(_)));
    match args.cert.server_config(tls_listen, &args.listen) {
        Ok(Some(config)) => relay = relay.server_tls(config),
        Ok(None) => {}
        Err(error) => return Ok(crate::usage(&format!("{error:#}"), "relay")),
    }
    match &args.target {
        Side::Endpoint(target) => {
            if let Some(tls) = args.tls.client(target)? {
                relay = relay.client_tls(tls);
            }
        }
        other if args.tls.any() => {
            warn!("--ca, --insecure, --sni and --alpn apply to a tls:// TARGET, not {other}; ignored")
        }
        _ => {}
    }
    if let Err(error) = relay.check(&args.listen) {
        return Ok(crate::usage(&error.to_string(), "relay"));
    }
    for endpoint in [&args.listen, &args.target]
        .into_iter()
        .filter_map(Side::endpoint)
    {
        options::warn_unused(&options, endpoint);
    }
    let Side::Endpoint(listen) = &args.listen else {
        log_faults(&faults, seed, &args.listen, relay.target());
        let stopped = stop_signal()?;
        return match relay.run_once(args.listen.clone(), stopped).await {
            Ok(_) => Ok(ExitCode::SUCCESS),
            Err(error @ Error::Relay { .. }) => Ok(crate::usage(&error.to_string(), "relay")),
            Err(error) => Err(error.into()),
        };
    };
    let relay = match relay.bind(listen).await {
        Ok(relay) => relay,
        Err(error @ Error::Relay { .. }) => return Ok(crate::usage(&error.to_string(), "relay")),
        Err(error) => return Err(error.into()),
    };
    log_faults(&faults, seed, relay.local_endpoint(), relay.target());
    relay.run(stop_signal()?).await?;
    Ok(ExitCode::SUCCESS)
}

/// Warns of the faults that do not apply to what is relayed, and logs
/// what is relayed, with the faults and the seed that repeats them.
fn log_faults(faults: &Faults, seed: u64, listen: &dyn std::fmt::Display, target: &Side) {
    let transport = target.transport();
    for fault in faults.not_applying_to(transport) {
        let kind = if transport == Transport::Datagram {
            "datagrams"
        } else {
            "streams"
        };
        warn!("--{fault} does not apply to {kind}; ignored");
    }
    // The seed is logged even with no faults, so every run says how to repeat it.
    let details = if faults.any() {
        faults.to_string()
    } else {
        format!("seed {seed}, no faults")
    };
    info!("relaying {listen} -> {target} ({details})");
}

/// Completes on SIGINT or SIGTERM.
fn stop_signal() -> anyhow::Result<impl Future<Output = ()>> {
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => info!("SIGINT: stopping"),
            _ = terminate.recv() => info!("SIGTERM: stopping"),
        }
    })
}
