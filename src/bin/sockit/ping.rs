//! `sockit ping`: ICMP echo over IPv4 and IPv6, printed as iputils `ping` prints it.

use std::fmt::Display;
use std::io::Write;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow};
use sockit::icmp::{self, Answer, RoundTrips, Session, Statistics, Version};
use sockit::net::icmp::{EchoSocket, Kind, Options, Received, Reply};
use tokio::time::{Instant, sleep_until};
use tracing::{debug, warn};

use crate::serve::parse_duration;

/// Send ICMP echo requests to HOST and print each reply, then the statistics.
///
/// Uses a raw socket where permitted (root or CAP_NET_RAW), otherwise an ICMP
/// datagram socket (a group in sysctl net.ipv4.ping_group_range), and says
/// which on its first line. Sends one request per --interval until --count
/// have gone, or until Ctrl-C. After the last, it waits --timeout for replies
/// if none has come yet, or else twice the longest round trip (at least
/// --interval), as iputils does. Exit status 0 if any reply came, 1 if none.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sockit ping 127.0.0.1 -c 3\n  \
    sockit ping ::1 -c 3 --mode dgram\n  \
    sockit ping localhost -4 -i 200ms -s 1000\n  \
    sockit ping 127.0.0.1 -c 1 --hdrincl --ttl 5")]
pub struct Args {
    /// The host to ping: an IPv4 or IPv6 address, or a name.
    #[arg(value_name = "HOST")]
    host: String,

    /// Stop after sending N requests; without it, ping until Ctrl-C.
    #[arg(short, long, value_name = "N", value_parser = parse_count)]
    count: Option<u64>,

    /// The time between requests (at least 1ms).
    #[arg(short, long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    interval: Duration,

    /// Payload bytes per request; from 16 on, the first 16 carry the send time.
    #[arg(short, long, value_name = "BYTES", default_value_t = 56)]
    size: usize,

    /// After the last request, how long to wait for a reply when none has
    /// come yet.
    #[arg(short = 'W', long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    timeout: Duration,

    /// The time to live (IPv4) or hop limit (IPv6) of the requests, 1 to 255.
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    ttl: Option<u8>,

    /// The socket: raw (root or CAP_NET_RAW), dgram (a group in
    /// net.ipv4.ping_group_range), or auto: raw where permitted, else dgram.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    mode: Mode,

    /// Build the IPv4 header here and send it with each request
    /// (IP_HDRINCL): raw sockets and IPv4 only.
    #[arg(long, conflicts_with = "ipv6")]
    hdrincl: bool,

    /// Ping HOST's IPv4 address.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,

    /// Ping HOST's IPv6 address.
    #[arg(short = '6')]
    ipv6: bool,
}

/// Which socket `--mode` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// Raw where permitted, else datagram.
    Auto,
    /// A raw socket.
    Raw,
    /// An ICMP datagram socket.
    Dgram,
}

/// How long to wait for replies after the last request, as iputils does:
/// `--timeout` while none has come, else twice the longest round trip, and
/// at least `--interval`.
fn linger(statistics: &Statistics, args: &Args) -> Duration {
    match statistics.round_trips() {
        Some(rtt) => (2 * rtt.max).max(args.interval),
        None => args.timeout,
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.hdrincl && args.mode == Mode::Dgram {
        return Ok(usage("--hdrincl builds the IPv4 header, which needs --mode raw"));
    }
    let target = match resolve(&args).await? {
        Ok(target) => target,
        Err(usage_error) => return Ok(usage(usage_error)),
    };
    if args.hdrincl && target.is_ipv6() {
        let of = if args.host == target.to_string() {
            String::new()
        } else {
            format!(" of {}", args.host)
        };
        return Ok(usage(format!(
            "--hdrincl builds an IPv4 header, so it cannot ping the IPv6 address {target}{of}"
        )));
    }
    let version = match target {
        IpAddr::V4(_) => Version::V4,
        IpAddr::V6(_) => Version::V6,
    };
    if let Err(error) = icmp::check_payload_size(version, args.size) {
        return Ok(usage(format!("--size {}: {error}", args.size)));
    }
    let options = Options {
        kind: match args.mode {
            Mode::Auto => None,
            Mode::Raw => Some(Kind::Raw),
            Mode::Dgram => Some(Kind::Datagram),
        },
        ttl: args.ttl,
        header_included: args.hdrincl,
    };
    let socket = EchoSocket::open(target, &options).with_context(|| format!("cannot ping {}", args.host))?;

    let mut out = std::io::stdout();
    let socket_kind = match (socket.kind(), socket.header_included()) {
        (Kind::Raw, true) => "raw socket, IPv4 header built by sockit (IP_HDRINCL)",
        (Kind::Raw, false) => "raw socket",
        (Kind::Datagram, _) => "datagram socket",
    };
    let size = args.size;
    match version {
        Version::V4 => say(
            &mut out,
            format!(
                "PING {} ({target}) {size}({}) bytes of data, {socket_kind}.",
                args.host,
                size + icmp::ECHO_HEADER_LEN + icmp::IPV4_HEADER_LEN
            ),
        )?,
        Version::V6 => say(
            &mut out,
            format!("PING {} ({target}) {size} data bytes, {socket_kind}.", args.host),
        )?,
    }

    let started = Instant::now();
    let mut session = Session::new(size);
    let mut buf = vec![0; 1 << 16];
    let mut next_send = started;
    // Once every request is sent: when to stop waiting for replies.
    let mut deadline: Option<Instant> = None;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        // In this order, so that replies however many never hold up a
        // request or the end.
        tokio::select! {
            biased;
            signal = &mut ctrl_c => {
                signal.context("cannot listen for Ctrl-C")?;
                break;
            }
            () = sleep_until(next_send), if deadline.is_none() => {
                let (seq, payload) = session.probe(Instant::now().into_std(), since_epoch());
                if let Err(error) = socket.send(seq, &payload).await {
                    session.error();
                    warn!("cannot send icmp_seq={seq}: {error}");
                }
                let now = Instant::now();
                if args.count.is_some_and(|count| session.statistics().transmitted >= count) {
                    deadline = Some(now + linger(session.statistics(), &args));
                } else {
                    // Keep the pace, but never send a burst to catch up.
                    next_send = (next_send + args.interval).max(now);
                }
            }
            () = sleep_until(deadline.unwrap_or(started)), if deadline.is_some() => break,
            received = socket.recv(&mut buf) => {
                match received {
                    Ok(Received::Reply(reply)) => on_reply(&mut out, &mut session, &socket, &reply)?,
                    Ok(Received::Other(message)) => debug!(?message, "ignored"),
                    Ok(Received::Invalid(error)) => warn!("ignored a bad packet from {target}: {error}"),
                    Err(error) => {
                        session.error();
                        let statistics = session.statistics();
                        if statistics.errors > statistics.transmitted {
                            return Err(error).context("cannot receive ICMP replies");
                        }
                        warn!("receiving: {error}");
                    }
                }
                let statistics = session.statistics();
                if args.count.is_some_and(|count| statistics.received + statistics.errors >= count) {
                    break;
                }
            }
        }
    }

    let statistics = session.statistics();
    say(&mut out, format!("\n--- {} ping statistics ---", args.host))?;
    say(&mut out, summary(statistics, started.elapsed()))?;
    if let Some(rtt) = statistics.round_trips() {
        say(&mut out, round_trips(&rtt))?;
    }
    Ok(if statistics.received > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Counts a reply and prints its line.
fn on_reply(
    out: &mut impl Write,
    session: &mut Session,
    socket: &EchoSocket,
    reply: &Reply<'_>,
) -> anyhow::Result<()> {
    let (rtt, duplicate) = match session.reply(reply.seq, reply.payload, Instant::now().into_std()) {
        Answer::Reply(rtt) => (rtt, ""),
        Answer::Duplicate(rtt) => (rtt, " (DUP!)"),
        Answer::Unknown => {
            debug!(seq = reply.seq, "ignored a reply to no request of this run");
            return Ok(());
        }
        Answer::WrongData => {
            warn!(seq = reply.seq, "ignored a reply whose data is not the request's");
            return Ok(());
        }
    };
    let ttl = reply.ttl.map(|ttl| format!(" ttl={ttl}")).unwrap_or_default();
    say(
        out,
        format!(
            "{} bytes from {}: icmp_seq={}{ttl} time={} ms{duplicate}",
            reply.len,
            socket.target(),
            reply.seq,
            reply_time(rtt)
        ),
    )
}

/// Resolves HOST to the address to ping, of the family `-4`/`-6` ask for;
/// the inner error is a usage error.
async fn resolve(args: &Args) -> anyhow::Result<Result<IpAddr, String>> {
    let wanted = |ip: &IpAddr| !(args.ipv4 && ip.is_ipv6() || args.ipv6 && ip.is_ipv4());
    let family = if args.ipv4 { "IPv4" } else { "IPv6" };
    if let Ok(ip) = args.host.parse::<IpAddr>() {
        if !wanted(&ip) {
            return Ok(Err(format!("{ip} is not an {family} address")));
        }
        return Ok(Ok(ip));
    }
    let found = tokio::net::lookup_host((args.host.as_str(), 0))
        .await
        .with_context(|| format!("cannot resolve {}", args.host))?
        .map(|addr| addr.ip())
        .find(wanted);
    found
        .map(Ok)
        .ok_or_else(|| anyhow!("{} has no {family} address", args.host))
}

/// Says a usage error as `main` does: one line, exit status 2.
fn usage(what: impl Display) -> ExitCode {
    eprintln!("sockit: error: {what} (see 'sockit ping --help')");
    ExitCode::from(2)
}

/// Writes one line to stdout at once.
fn say(out: &mut impl Write, line: impl Display) -> anyhow::Result<()> {
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

/// The wall clock, for the timestamp in the payload.
fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// `3 packets transmitted, 3 received, 0% packet loss, time 2003ms`, with
/// `+N duplicates` and `+N errors` where there are any, as iputils has it.
fn summary(statistics: &Statistics, elapsed: Duration) -> String {
    let mut line = format!(
        "{} packets transmitted, {} received",
        statistics.transmitted, statistics.received
    );
    if statistics.duplicates > 0 {
        line += &format!(", +{} duplicates", statistics.duplicates);
    }
    if statistics.errors > 0 {
        line += &format!(", +{} errors", statistics.errors);
    }
    line += &format!(
        ", {}% packet loss, time {}ms",
        percent(statistics.loss_percent()),
        elapsed.as_millis()
    );
    line
}

/// `rtt min/avg/max/mdev = 0.040/0.045/0.051/0.004 ms`, to the microsecond.
fn round_trips(rtt: &RoundTrips) -> String {
    let ms = |d: Duration| {
        let us = d.as_micros();
        format!("{}.{:03}", us / 1000, us % 1000)
    };
    format!(
        "rtt min/avg/max/mdev = {}/{}/{}/{} ms",
        ms(rtt.min),
        ms(rtt.avg),
        ms(rtt.max),
        ms(rtt.mdev)
    )
}

/// A reply's round trip in milliseconds, with as many decimals as iputils
/// shows: three below 1 ms, two below 10, one below 100, none above.
fn reply_time(rtt: Duration) -> String {
    let us = rtt.as_micros();
    if us >= 100_000 - 50 {
        format!("{}", (us + 500) / 1000)
    } else if us >= 10_000 - 5 {
        format!("{}.{}", (us + 50) / 1000, (us + 50) % 1000 / 100)
    } else if us >= 1000 {
        format!("{}.{:02}", (us + 5) / 1000, (us + 5) % 1000 / 10)
    } else {
        format!("0.{us:03}")
    }
}

/// A percentage as C's `%g` prints it: six significant digits, no trailing
/// zeros (`0`, `100`, `33.3333`).
fn percent(value: f64) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    let integer_digits = value.abs().log10().floor() as i32 + 1;
    let decimals = (6 - integer_digits).max(0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// Parses a count of at least 1.
fn parse_count(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(count) => Ok(count),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

/// Parses an interval of at least 1 ms.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = parse_duration(text)?;
    if interval < Duration::from_millis(1) {
        return Err("must be at least 1ms".to_owned());
    }
    Ok(interval)
}

/// Parses a timeout above zero.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let timeout = parse_duration(text)?;
    if timeout.is_zero() {
        return Err("must be more than 0".to_owned());
    }
    Ok(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_times_have_iputils_decimals() {
        let us = Duration::from_micros;
        assert_eq!(reply_time(us(45)), "0.045");
        assert_eq!(reply_time(us(999)), "0.999");
        assert_eq!(reply_time(us(1_000)), "1.00");
        assert_eq!(reply_time(us(1_234)), "1.23");
        assert_eq!(reply_time(us(9_994)), "9.99");
        assert_eq!(reply_time(us(9_995)), "10.0");
        assert_eq!(reply_time(us(12_345)), "12.3");
        assert_eq!(reply_time(us(99_950)), "100");
        assert_eq!(reply_time(us(1_234_567)), "1235");
    }

    #[test]
    fn percentages_are_printed_as_percent_g() {
        assert_eq!(percent(0.0), "0");
        assert_eq!(percent(100.0), "100");
        assert_eq!(percent(50.0), "50");
        assert_eq!(percent(100.0 / 3.0), "33.3333");
        assert_eq!(percent(200.0 / 3.0), "66.6667");
        assert_eq!(percent(12.5), "12.5");
        assert_eq!(percent(0.1), "0.1");
        assert_eq!(percent(100.0 / 7.0), "14.2857");
    }

    #[test]
    fn summary_and_round_trips_read_as_iputils() {
        let start = std::time::Instant::now();
        let mut session = Session::new(56);
        let mut replies = Vec::new();
        for _ in 0..3 {
            replies.push(session.probe(start, Duration::ZERO));
        }
        for ((seq, payload), us) in replies.iter().zip([40, 51, 44]) {
            session.reply(*seq, payload, start + Duration::from_micros(us));
        }
        let statistics = session.statistics();
        assert_eq!(
            summary(statistics, Duration::from_micros(2_003_900)),
            "3 packets transmitted, 3 received, 0% packet loss, time 2003ms"
        );
        assert_eq!(
            round_trips(&statistics.round_trips().unwrap()),
            "rtt min/avg/max/mdev = 0.040/0.045/0.051/0.004 ms"
        );
        session.reply(replies[0].0, &replies[0].1, start + Duration::from_micros(60));
        session.probe(start, Duration::ZERO);
        session.error();
        assert_eq!(
            summary(session.statistics(), Duration::from_millis(3_001)),
            "4 packets transmitted, 3 received, +1 duplicates, +1 errors, 25% packet loss, time 3001ms"
        );
    }
}
