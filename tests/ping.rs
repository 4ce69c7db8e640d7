//! `sockit ping`: ICMP echo to loopback over IPv4 and IPv6, on raw and ICMP
//! datagram sockets, each reply with its TTL or hop limit; the requests' TTL
//! and `--hdrincl`'s header as seen on the wire; and pings that get no
//! answer, in a network namespace of the test's own where echo requests are
//! ignored.
//!
//! The kernel decides which sockets this process may open: raw ones need root
//! or `CAP_NET_RAW`, datagram ones a group in `net.ipv4.ping_group_range`. A
//! test whose socket the kernel forbids says SKIP, in CI too. Namespaces need
//! root (with `CAP_SYS_ADMIN`) and `ip` (iproute2); without them a test says
//! SKIP locally and fails under `CI=true`. Only loopback is ever pinged.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{CAP_SYS_ADMIN, Namespace, capabilities};
use socket2::{Domain, Protocol, Socket, Type};

/// How long any one `sockit ping` run may take here.
const LIMIT: Duration = Duration::from_secs(20);

/// The socket kinds of `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Raw,
    Dgram,
}

impl Mode {
    fn flag(self) -> &'static str {
        match self {
            Mode::Raw => "raw",
            Mode::Dgram => "dgram",
        }
    }

    /// How the first line names it.
    fn words(self) -> &'static str {
        match self {
            Mode::Raw => "raw socket",
            Mode::Dgram => "datagram socket",
        }
    }
}

/// Whether the kernel lets this process open an ICMP socket of `mode` for
/// the family of `host` here; the reason when not.
fn permitted(mode: Mode, host: &str) -> Result<(), String> {
    let ipv6 = host.contains(':');
    let (domain, protocol) = if ipv6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let ty = match mode {
        Mode::Raw => Type::RAW,
        Mode::Dgram => Type::DGRAM,
    };
    match Socket::new(domain, ty, Some(protocol)) {
        Ok(_) => Ok(()),
        Err(e) if mode == Mode::Raw => Err(format!(
            "the kernel refuses a raw ICMP socket ({e}): it needs root or CAP_NET_RAW"
        )),
        Err(e) => Err(format!(
            "the kernel refuses an ICMP datagram socket ({e}): net.ipv4.ping_group_range is {:?}",
            std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        )),
    }
}

/// Whether this host has an IPv6 loopback address; says SKIP when not.
fn has_ipv6_loopback() -> bool {
    if std::net::UdpSocket::bind("[::1]:0").is_ok() {
        return true;
    }
    eprintln!("SKIP: this host has no IPv6 loopback address (::1)");
    false
}

/// The TTL (IPv4) or hop limit (IPv6) that the kernel gives its echo replies
/// to `host`, a loopback address: read inside `namespace`, or here.
fn reply_ttl(host: &str, namespace: Option<&Namespace>) -> u8 {
    let path = if host.contains(':') {
        "/proc/sys/net/ipv6/conf/lo/hop_limit"
    } else {
        "/proc/sys/net/ipv4/ip_default_ttl"
    };
    let text = match namespace {
        None => std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}")),
        Some(namespace) => {
            let output = common::run_with_timeout(namespace.exec("cat").arg(path), LIMIT);
            assert!(output.status.success(), "cat {path}: {:?}", text(&output.stderr));
            text(&output.stdout)
        }
    };
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{path} is {text:?}"))
}

/// Runs `sockit ping ARGS` here.
fn ping(args: &[&str]) -> Output {
    common::run_with_timeout(common::sockit().arg("ping").args(args), LIMIT)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// Milliseconds as sockit prints them: digits, with or without decimals.
fn milliseconds(text: &str) -> f64 {
    assert!(
        !text.is_empty() && text.chars().all(|c| c.is_ascii_digit() || c == '.'),
        "not a time in ms: {text:?}"
    );
    text.parse()
        .unwrap_or_else(|_| panic!("not a time in ms: {text:?}"))
}

/// Asserts a run of `sockit ping HOST -c COUNT` printed, exactly: the first
/// line naming `socket`, one reply per request in order, each with `ttl`,
/// and the statistics of `count` of `count` received. Returns the summary's
/// total time in ms.
fn assert_all_replied(output: &Output, host: &str, count: u16, socket: &str, ttl: u8) -> u64 {
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}; stdout {stdout:?}; stderr {stderr:?}",
        output.status
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1 + usize::from(count) + 4, "stdout {stdout:?}");
    let header = if host.contains(':') {
        format!("PING {host} ({host}) 56 data bytes, {socket}.")
    } else {
        format!("PING {host} ({host}) 56(84) bytes of data, {socket}.")
    };
    assert_eq!(lines[0], header);
    for seq in 1..=count {
        let line = lines[usize::from(seq)];
        let prefix = format!("64 bytes from {host}: icmp_seq={seq} ttl={ttl} time=");
        let time = line
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(" ms"))
            .unwrap_or_else(|| panic!("reply line {line:?} is not {prefix:?}... ms"));
        let time = milliseconds(time);
        assert!(time > 0.0 && time < 1000.0, "{line:?}");
    }
    let rest = &lines[1 + usize::from(count)..];
    assert_eq!(rest[0], "");
    assert_eq!(rest[1], format!("--- {host} ping statistics ---"));
    let summary = format!("{count} packets transmitted, {count} received, 0% packet loss, time ");
    let total = rest[2]
        .strip_prefix(&summary)
        .and_then(|ms| ms.strip_suffix("ms"))
        .unwrap_or_else(|| panic!("summary {:?} is not {summary:?}...ms", rest[2]));
    let total: u64 = total.parse().expect("whole milliseconds");
    let rtt = rest[3]
        .strip_prefix("rtt min/avg/max/mdev = ")
        .and_then(|rtt| rtt.strip_suffix(" ms"))
        .unwrap_or_else(|| panic!("not an rtt line: {:?}", rest[3]));
    let rtt: Vec<&str> = rtt.split('/').collect();
    let to_the_microsecond = |ms: &&str| {
        ms.split_once('.')
            .is_some_and(|(_, decimals)| decimals.len() == 3)
    };
    assert!(
        rtt.len() == 4 && rtt.iter().all(to_the_microsecond),
        "{:?}",
        rest[3]
    );
    let rtt: Vec<f64> = rtt.into_iter().map(milliseconds).collect();
    assert!(rtt[0] <= rtt[1] && rtt[1] <= rtt[2], "min/avg/max {rtt:?}");
    total
}

/// Pings `host` three times in `mode`: here, where the kernel permits it;
/// for a datagram socket it does not permit here, in a namespace whose
/// `ping_group_range` admits every group; or SKIP.
fn three_replies(mode: Mode, host: &str) {
    if host.contains(':') && !has_ipv6_loopback() {
        return;
    }
    let args = ["ping", host, "-c", "3", "-i", "200ms", "--mode", mode.flag()];
    let (output, ttl) = match permitted(mode, host) {
        Ok(()) => (
            common::run_with_timeout(common::sockit().args(args), LIMIT),
            reply_ttl(host, None),
        ),
        Err(reason) if mode == Mode::Dgram && capabilities() & CAP_SYS_ADMIN != 0 => {
            eprintln!("{reason}; widening it in a namespace of this test's own");
            let tag = if host.contains(':') { "dgram6" } else { "dgram4" };
            let Some(namespace) = Namespace::new(tag) else {
                return;
            };
            namespace.sysctl("net.ipv4.ping_group_range", "0 2147483647");
            (
                common::run_with_timeout(&mut namespace.sockit(&args), LIMIT),
                reply_ttl(host, Some(&namespace)),
            )
        }
        Err(reason) => {
            eprintln!("SKIP: {reason}");
            return;
        }
    };
    let total = assert_all_replied(&output, host, 3, mode.words(), ttl);
    assert!(
        (400..2_000).contains(&total),
        "3 pings 200ms apart took {total}ms"
    );
}

#[test]
fn raw_ipv4_gets_three_replies() {
    three_replies(Mode::Raw, "127.0.0.1");
}

#[test]
fn raw_ipv6_gets_three_replies() {
    three_replies(Mode::Raw, "::1");
}

#[test]
fn datagram_ipv4_gets_three_replies() {
    three_replies(Mode::Dgram, "127.0.0.1");
}

#[test]
fn datagram_ipv6_gets_three_replies() {
    three_replies(Mode::Dgram, "::1");
}

/// In a namespace whose kernel sends its echo replies with TTL 77 and hop
/// limit 88 rather than the usual 64, every socket kind shows those: raw
/// IPv4 from the IP header, the others from the control message.
#[test]
fn replies_show_the_ttl_they_arrived_with_on_every_socket() {
    let Some(namespace) = Namespace::new("ttl") else {
        return;
    };
    namespace.sysctl("net.ipv4.ping_group_range", "0 2147483647");
    let mut hosts = vec![("127.0.0.1", "net.ipv4.ip_default_ttl", 77)];
    if has_ipv6_loopback() {
        hosts.push(("::1", "net.ipv6.conf.lo.hop_limit", 88));
    }
    for (host, key, ttl) in hosts {
        namespace.sysctl(key, &ttl.to_string());
        assert_eq!(reply_ttl(host, Some(&namespace)), ttl, "{key}");
        for mode in [Mode::Raw, Mode::Dgram] {
            let args = ["ping", host, "-c", "1", "--mode", mode.flag()];
            let output = common::run_with_timeout(&mut namespace.sockit(&args), LIMIT);
            assert_all_replied(&output, host, 1, mode.words(), ttl);
        }
    }
}

/// With the defaults (one request a second, `--mode auto`), as a user runs it.
#[test]
fn auto_mode_pings_once_a_second_on_the_permitted_socket() {
    let host = "127.0.0.1";
    let mode = match (permitted(Mode::Raw, host), permitted(Mode::Dgram, host)) {
        (Ok(()), _) => Mode::Raw,
        (_, Ok(())) => Mode::Dgram,
        (Err(raw), Err(dgram)) => {
            let output = ping(&[host, "-c", "1"]);
            assert_eq!(output.status.code(), Some(1));
            assert_eq!(text(&output.stdout), "");
            let stderr = text(&output.stderr);
            for needle in [
                "no ICMP socket is permitted",
                "CAP_NET_RAW",
                "net.ipv4.ping_group_range",
            ] {
                assert!(stderr.contains(needle), "{stderr:?} lacks {needle:?}");
            }
            eprintln!("SKIP: {raw}; {dgram}");
            return;
        }
    };
    let output = ping(&[host, "-c", "3"]);
    let total = assert_all_replied(&output, host, 3, mode.words(), reply_ttl(host, None));
    assert!(
        (2_000..3_000).contains(&total),
        "3 pings a second apart took {total}ms"
    );
}

/// Without `CAP_NET_RAW`, auto falls back to a datagram socket, and says so;
/// with neither kind permitted, the error names the sysctl to change.
#[test]
fn auto_mode_falls_back_to_datagram_without_cap_net_raw() {
    let Some(namespace) = Namespace::new("fallback") else {
        return;
    };
    let Some(setpriv) = common::peer("setpriv", "drops CAP_NET_RAW (util-linux)") else {
        return;
    };
    let host = "127.0.0.1";
    let args = ["ping", host, "-c", "2", "-i", "100ms"];
    let without_cap_net_raw = || {
        let mut command = namespace.exec(&setpriv);
        command
            .args(["--bounding-set", "-net_raw", env!("CARGO_BIN_EXE_sockit")])
            .args(args);
        command
    };

    namespace.sysctl("net.ipv4.ping_group_range", "0 2147483647");
    let output = common::run_with_timeout(&mut namespace.sockit(&args), LIMIT);
    let ttl = reply_ttl(host, Some(&namespace));
    assert_all_replied(&output, host, 2, "raw socket", ttl);
    let output = common::run_with_timeout(&mut without_cap_net_raw(), LIMIT);
    assert_all_replied(&output, host, 2, "datagram socket", ttl);

    namespace.sysctl("net.ipv4.ping_group_range", "1 0");
    let output = common::run_with_timeout(&mut without_cap_net_raw(), LIMIT);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr {stderr:?}");
    assert_eq!(text(&output.stdout), "");
    assert!(
        stderr.starts_with("sockit: error: cannot ping 127.0.0.1: no ICMP socket is permitted")
            && stderr.contains("CAP_NET_RAW")
            && stderr.contains("net.ipv4.ping_group_range (now \"1 0\"")
            && stderr.matches('\n').count() == 1,
        "stderr {stderr:?}"
    );
}

/// In a namespace whose kernel ignores echo requests, two pings get no
/// answer: 100% loss, exit status 1, after `-W` past the last request.
#[test]
fn unanswered_pings_report_full_loss_after_the_timeout() {
    let Some(namespace) = Namespace::new("loss") else {
        return;
    };
    namespace.sysctl("net.ipv4.icmp_echo_ignore_all", "1");
    let mut hosts = vec!["127.0.0.1"];
    if Path::new("/proc/sys/net/ipv6/icmp/echo_ignore_all").exists() {
        namespace.sysctl("net.ipv6.icmp.echo_ignore_all", "1");
        hosts.push("::1");
    } else {
        eprintln!("SKIP (::1 only): this kernel has no net.ipv6.icmp.echo_ignore_all");
    }
    for host in hosts {
        let start = Instant::now();
        let output = common::run_with_timeout(
            &mut namespace.sockit(&["ping", host, "-c", "2", "-i", "200ms", "-W", "1s"]),
            LIMIT,
        );
        let elapsed = start.elapsed();
        let stdout = text(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{host}: stdout {stdout:?}; stderr {:?}",
            text(&output.stderr)
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 4, "{host}: no reply lines, no rtt line: {stdout:?}");
        assert!(
            lines[0].starts_with(&format!("PING {host} ({host}) 56")),
            "{stdout:?}"
        );
        assert_eq!(lines[1..3], ["", &format!("--- {host} ping statistics ---")]);
        let summary = "2 packets transmitted, 0 received, 100% packet loss, time ";
        let total: u64 = lines[3]
            .strip_prefix(summary)
            .and_then(|ms| ms.strip_suffix("ms"))
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_else(|| panic!("{host}: summary {:?} is not {summary:?}...ms", lines[3]));
        // 200ms between the two requests, then 1s for replies.
        assert!((1_200..2_500).contains(&total), "{host}: time {total}ms");
        assert!(elapsed < Duration::from_secs(5), "{host}: took {elapsed:?}");
    }
}

/// An echo request as seen on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Request {
    ttl: u8,
    ip_id: u16,
    seq: u16,
}

/// The echo requests to 127.0.0.1 of `size` payload bytes that a raw socket
/// sees while `sockit ping 127.0.0.1 -c 2 -s SIZE ARGS` runs; and sockit's
/// output.
fn captured_requests(size: usize, args: &[&str]) -> Option<(Vec<Request>, Output)> {
    if let Err(reason) = permitted(Mode::Raw, "127.0.0.1") {
        eprintln!("SKIP: {reason}");
        return None;
    }
    let capture = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)).expect("a raw socket");
    capture
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let size_text = size.to_string();
    let mut command = common::sockit();
    command
        .args(["ping", "127.0.0.1", "-c", "2", "-i", "100ms", "-s", &size_text])
        .args(args);
    let output = common::run_with_timeout(&mut command, LIMIT);
    // The kernel queued a copy of every ICMP packet while sockit ran.
    let mut requests = Vec::new();
    let mut packet = vec![0; 1 << 16];
    while let Ok(len) = (&capture).read(&mut packet) {
        let packet = &packet[..len];
        let total_length = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
        let icmp = &packet[usize::from(packet[0] & 0x0f) * 4..];
        if packet[9] == 1 && icmp[0] == 8 && total_length == 20 + 8 + size && packet[16..20] == [127, 0, 0, 1]
        {
            let ip_id = u16::from_be_bytes([packet[4], packet[5]]);
            let seq = u16::from_be_bytes([icmp[6], icmp[7]]);
            requests.push(Request {
                ttl: packet[8],
                ip_id,
                seq,
            });
        }
    }
    Some((requests, output))
}

#[test]
fn ttl_sets_the_requests_time_to_live() {
    assert_ne!(
        reply_ttl("127.0.0.1", None),
        5,
        "the test needs a default other than 5"
    );
    let Some((requests, output)) = captured_requests(345, &["--ttl", "5", "--mode", "raw"]) else {
        return;
    };
    assert!(output.status.success(), "stderr {:?}", text(&output.stderr));
    let seen: Vec<(u8, u16)> = requests.iter().map(|r| (r.ttl, r.seq)).collect();
    assert_eq!(seen, [(5, 1), (5, 2)], "(TTL, seq) of the requests");
}

/// `--hdrincl` sends the header sockit built: its TTL, and its IP
/// identification, which sockit sets to the sequence number.
#[test]
fn hdrincl_sends_the_ipv4_header_sockit_built() {
    let Some((requests, output)) = captured_requests(346, &["--hdrincl", "--ttl", "5"]) else {
        return;
    };
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "stdout {stdout:?}; stderr {:?}",
        text(&output.stderr)
    );
    assert!(
        stdout.starts_with(
            "PING 127.0.0.1 (127.0.0.1) 346(374) bytes of data, raw socket, IPv4 header built by sockit (IP_HDRINCL).\n"
        ),
        "{stdout:?}"
    );
    let ttl = reply_ttl("127.0.0.1", None);
    for seq in 1..=2 {
        let line = format!("354 bytes from 127.0.0.1: icmp_seq={seq} ttl={ttl} time=");
        assert!(stdout.contains(&line), "{stdout:?} lacks {line:?}");
    }
    assert!(stdout.contains("\n2 packets transmitted, 2 received, 0% packet loss, time "));
    let seen: Vec<(u8, u16, u16)> = requests.iter().map(|r| (r.ttl, r.ip_id, r.seq)).collect();
    assert_eq!(seen, [(5, 1, 1), (5, 2, 2)], "(TTL, IP id, seq) of the requests");
}

/// Usage errors: one line, exit status 2, before any socket is opened (so no
/// privilege is needed to see them).
#[test]
fn bad_combinations_are_usage_errors() {
    for (args, needles) in [
        (
            &["::1", "--hdrincl"][..],
            &["--hdrincl", "IPv4 header", "IPv6 address ::1"][..],
        ),
        (
            &["127.0.0.1", "--hdrincl", "--mode", "dgram"],
            &["--hdrincl", "--mode raw"],
        ),
        (&["127.0.0.1", "--hdrincl", "-6"], &["--hdrincl", "-6"]),
        (&["::1", "-4"], &["::1 is not an IPv4 address"]),
        (&["127.0.0.1", "-6"], &["127.0.0.1 is not an IPv6 address"]),
        (&["127.0.0.1", "-s", "65508"], &["--size 65508", "65507"]),
        (&["::1", "-s", "65528"], &["--size 65528", "65527"]),
        (&["127.0.0.1", "-c", "0"], &["--count", "at least 1"]),
        (&["127.0.0.1", "--ttl", "0"], &["--ttl"]),
        (&["127.0.0.1", "--ttl", "256"], &["--ttl"]),
        (&["127.0.0.1", "-i", "0"], &["--interval", "at least 1ms"]),
        (&["127.0.0.1", "-W", "0s"], &["--timeout", "more than 0"]),
        (&["127.0.0.1", "--mode", "cooked"], &["--mode", "cooked"]),
    ] {
        let output = ping(args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "ping {args:?}: stderr {stderr:?}");
        assert_eq!(text(&output.stdout), "", "ping {args:?}");
        assert!(
            stderr.starts_with("sockit: error: ")
                && stderr.ends_with("(see 'sockit ping --help')\n")
                && stderr.matches('\n').count() == 1,
            "ping {args:?}: stderr {stderr:?}"
        );
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "ping {args:?}: {stderr:?} lacks {needle:?}"
            );
        }
    }
}

#[test]
fn help_has_examples() {
    let output = ping(&["--help"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success());
    for needle in [
        "Usage: sockit ping [OPTIONS] <HOST>",
        "Examples:",
        "sockit ping 127.0.0.1 -c 3",
        "--hdrincl",
    ] {
        assert!(stdout.contains(needle), "{stdout:?} lacks {needle:?}");
    }
}

/// Without `--count`, ping runs until Ctrl-C (SIGINT), then prints the
/// statistics and exits 0, replies having come.
#[test]
fn ctrl_c_ends_the_run_with_the_statistics() {
    let host = "127.0.0.1";
    if let (Err(raw), Err(dgram)) = (permitted(Mode::Raw, host), permitted(Mode::Dgram, host)) {
        eprintln!("SKIP: {raw}; {dgram}");
        return;
    }
    let mut ping = common::Running::start_with_stdout(
        common::sockit().args(["ping", host, "-i", "100ms"]),
        std::process::Stdio::piped(),
    );
    std::thread::sleep(Duration::from_millis(1_000));
    assert!(ping.is_running(), "stopped early; stderr {}", ping.log());
    ping.signal("INT");
    let status = ping.wait(Duration::from_secs(5));
    let mut stdout = String::new();
    ping.child()
        .stdout
        .take()
        .expect("stdout is piped")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    assert!(
        status.success(),
        "{status:?}; stdout {stdout:?}; stderr {}",
        ping.log()
    );
    let replies = stdout
        .lines()
        .filter(|l| l.starts_with("64 bytes from 127.0.0.1: icmp_seq="))
        .count();
    assert!(
        (3..=11).contains(&replies),
        "{replies} replies in 1s, 100ms apart: {stdout:?}"
    );
    let (_, statistics) = stdout
        .split_once("\n\n--- 127.0.0.1 ping statistics ---\n")
        .unwrap_or_else(|| panic!("no statistics: {stdout:?}"));
    let summary = statistics.lines().next().unwrap_or_default();
    let transmitted: usize = summary
        .split_once(" packets transmitted, ")
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("summary {summary:?}"));
    // A request sent just before the signal may still be on its way back.
    assert!(
        transmitted == replies || transmitted == replies + 1,
        "{transmitted} sent, {replies} replies: {stdout:?}"
    );
    assert!(
        summary.starts_with(&format!(
            "{transmitted} packets transmitted, {replies} received, "
        )),
        "{summary:?}"
    );
    assert!(
        statistics
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("rtt min/avg/max/mdev = "))
    );
}
