//! `sockit relay` end to end, with real processes on loopback: `sockit
//! serve` behind the relay, TCP to TCP, TCP to Unix, Unix to TCP, UDP to UDP
//! and Unix datagram to UDP, exact bytes through every fault (slices,
//! resets, half-closes, drops, duplicates, reordering, delays), seeded runs
//! that repeat exactly, and the relay's summary checked against what the
//! client saw.

mod common;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{
    Running, Server, TestDir, expect, noise, read_exactly, read_to_close, run_with_timeout, sockit,
    stdout_of, tcp_client,
};

/// How long any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(5);
/// How long a client waits to be sure no more datagrams come.
const QUIET: Duration = Duration::from_millis(300);
/// What every stream connection is greeted with in `auto` framing.
const GREETING: &[u8] = b"Hello, I am server";

/// `sockit relay ARGS`, started and relaying.
struct Relay {
    process: Running,
    /// The endpoint it listens on, as logged (`tcp://127.0.0.1:PORT`).
    endpoint: String,
}

impl Relay {
    /// Starts `sockit relay LISTEN TARGET ARGS…` and waits for its
    /// `relaying LISTEN -> TARGET (…)` line.
    fn start(listen: &str, target: &str, args: &[&str]) -> Relay {
        let process = Running::start(sockit().args(["relay", listen, target]).args(args));
        let line = process.wait_for_log("relaying ", WAIT);
        let rest = line.split("relaying ").nth(1).expect("the relaying line");
        let endpoint = rest.split_whitespace().next().expect("an endpoint").to_owned();
        assert!(rest.starts_with(&format!("{endpoint} -> {target} (")), "{line:?}");
        Relay { process, endpoint }
    }

    /// The socket address it listens on.
    fn addr(&self) -> SocketAddr {
        let (_, addr) = self.endpoint.split_once("://").expect("a network endpoint");
        addr.parse().expect("a socket address")
    }

    /// Stops it with SIGTERM; it must exit 0 and log its summary, returned
    /// as `NAME=COUNT`.
    fn stop(mut self) -> Summary {
        self.process.signal("TERM");
        let status = self.process.wait(WAIT);
        assert!(status.success(), "{status}; log:\n{}", self.process.log());
        let line = self.process.wait_for_log("relay stopped: ", WAIT);
        let counts = line
            .split("relay stopped: ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .map(|word| {
                let (name, count) = word.split_once('=').expect("NAME=COUNT");
                (name.to_owned(), count.parse().expect("a count"))
            })
            .collect();
        Summary {
            counts,
            log: self.process.log(),
        }
    }
}

/// A relay's summary.
struct Summary {
    counts: HashMap<String, u64>,
    log: String,
}

impl Summary {
    /// The count `name` (`resets`, `to_target.dropped`, …).
    fn get(&self, name: &str) -> u64 {
        *self
            .counts
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in the summary; log:\n{}", self.log))
    }

    /// Asserts each `(name, count)`.
    fn assert(&self, expected: &[(&str, u64)]) {
        for &(name, count) in expected {
            assert_eq!(self.get(name), count, "{name}; log:\n{}", self.log);
        }
    }
}

// Streams -------------------------------------------------------------------

/// Reads the greeting, then sends each message and reads its exact reply.
fn converse(stream: &mut (impl Read + Write), greeting: &[u8], exchanges: &[(&[u8], &[u8])]) {
    assert_eq!(read_exactly(stream, greeting.len()), greeting);
    for &(message, reply) in exchanges {
        stream.write_all(message).expect("send");
        expect(stream, reply);
    }
}

#[test]
fn tcp_to_tcp_carries_the_greeting_conversation() {
    let server = Server::start(&["tcp://127.0.0.1:0"]);
    let relay = Relay::start("tcp://127.0.0.1:0", &server.endpoints[0], &["--seed", "1"]);
    assert!(
        relay.endpoint.starts_with("tcp://127.0.0.1:"),
        "{}",
        relay.endpoint
    );
    assert_ne!(relay.addr(), server.addr(0));

    let mut client = tcp_client(relay.addr());
    converse(&mut client, GREETING, &[(b"client1", b"Hello, client1!")]);
    client.write_all(b"exit").unwrap();
    assert_eq!(read_to_close(&mut client), b"");

    // The seed's run, through the relay.
    let output = run_with_timeout(
        sockit().args(["connect", &relay.endpoint, "client1", "client2", "client3"]),
        WAIT,
    );
    assert_eq!(
        stdout_of(&output),
        "Hello, I am server\nHello, client1!\nHello, client2!\nHello, client3!\n"
    );
    let summary = relay.stop();
    // 7 + 4 bytes from the first client, 21 from the second; two greetings
    // and four replies of 15 bytes back.
    summary.assert(&[
        ("connections", 2),
        ("resets", 0),
        ("to_target.bytes_in", 32),
        ("to_target.bytes_out", 32),
        ("to_client.bytes_in", 2 * 18 + 4 * 15),
        ("to_client.bytes_out", 2 * 18 + 4 * 15),
        ("to_target.failed", 0),
        ("to_client.failed", 0),
    ]);
    assert!(summary.log.contains("(seed 1, no faults)"), "{}", summary.log);
}

#[test]
fn tcp_to_unix_and_unix_to_tcp() {
    let dir = TestDir::new("relay-tu");
    let unix_server = Server::start(&[&format!("unix:{}", dir.socket("server.sock"))]);
    let relay = Relay::start("tcp://127.0.0.1:0", &unix_server.endpoints[0], &[]);
    let mut client = tcp_client(relay.addr());
    converse(
        &mut client,
        GREETING,
        &[(b"bob\nalice\n", b"Hello, bob!\nHello, alice!\n")],
    );

    let tcp_server = Server::start(&["tcp://127.0.0.1:0"]);
    let listen = format!("unix:{}", dir.socket("relay.sock"));
    let unix_relay = Relay::start(&listen, &tcp_server.endpoints[0], &[]);
    assert_eq!(unix_relay.endpoint, listen);
    let output = run_with_timeout(sockit().args(["connect", &listen, "client1"]), WAIT);
    assert_eq!(stdout_of(&output), "Hello, I am server\nHello, client1!\n");
    unix_relay.stop();
    assert!(
        !common::is_socket(&dir.socket("relay.sock")),
        "the relay's socket file is removed when it stops"
    );
}

#[test]
fn slices_of_one_byte_still_give_exact_replies() {
    let server = Server::start(&["tcp://127.0.0.1:0", "--framing", "line"]);
    let relay = Relay::start("tcp://127.0.0.1:0", &server.endpoints[0], &["--slice", "1"]);
    let mut client = tcp_client(relay.addr());
    converse(
        &mut client,
        b"Hello, I am server\n",
        &[(b"bob\nalice\n", b"Hello, bob!\nHello, alice!\n")],
    );
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut client), b"");
    let summary = relay.stop();
    // One write per byte, each way.
    summary.assert(&[
        ("to_target.bytes_out", 10),
        ("to_target.forwarded", 10),
        ("to_client.bytes_out", 19 + 26),
        ("to_client.forwarded", 19 + 26),
    ]);
}

#[test]
fn a_reset_after_n_bytes_reaches_the_client_after_those_bytes() {
    let server = Server::start(&["tcp://127.0.0.1:0"]);
    let relay = Relay::start(
        "tcp://127.0.0.1:0",
        &server.endpoints[0],
        &["--reset-after", "10"],
    );
    let mut client = tcp_client(relay.addr());
    let mut got = Vec::new();
    let error = client
        .read_to_end(&mut got)
        .expect_err("a reset, not an end of stream");
    assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error}");
    assert_eq!(got, b"Hello, I a");
    let summary = relay.stop();
    summary.assert(&[
        ("connections", 1),
        ("resets", 1),
        ("to_client.bytes_in", 18),
        ("to_client.bytes_out", 10),
    ]);
}

#[test]
fn a_half_close_is_passed_on_and_the_reply_still_comes_back() {
    let server = Server::start(&["tcp://127.0.0.1:0"]);
    let relay = Relay::start("tcp://127.0.0.1:0", &server.endpoints[0], &[]);
    let mut client = tcp_client(relay.addr());
    client.write_all(b"bob\n").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut client), b"Hello, I am serverHello, bob!\n");
    relay.stop().assert(&[("resets", 0), ("to_target.bytes_out", 4)]);
}

#[test]
fn without_faults_plain_sockets_are_spliced_and_every_byte_arrives_both_ways() {
    // A backend that sends 8 MB of its own, and everything it reads back
    // after it, then closes: both directions full at once, each half-closed.
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend_addr = backend.local_addr().unwrap();
    let served = std::thread::spawn(move || {
        let (stream, _) = backend.accept().unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let sending = std::thread::spawn(move || {
            writer.write_all(&noise(8_000_000, 7)).unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        (&stream).read_to_end(&mut got).unwrap();
        sending.join().unwrap();
        got
    });
    let relay = Relay::start("tcp://127.0.0.1:0", &format!("tcp://{backend_addr}"), &["-v"]);
    let client = tcp_client(relay.addr());
    let mut writer = client.try_clone().unwrap();
    let sent = noise(12_000_000, 3);
    let sending = {
        let sent = sent.clone();
        std::thread::spawn(move || {
            writer.write_all(&sent).unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
        })
    };
    let mut client = client;
    assert!(
        read_to_close(&mut client) == noise(8_000_000, 7),
        "the backend's 8 MB, exactly"
    );
    sending.join().unwrap();
    assert!(served.join().unwrap() == sent, "the client's 12 MB, exactly");
    relay.process.wait_for_log("splicing both ways (zero-copy)", WAIT);
    relay.stop().assert(&[
        ("connections", 1),
        ("resets", 0),
        ("to_target.bytes_in", 12_000_000),
        ("to_target.bytes_out", 12_000_000),
        ("to_client.bytes_in", 8_000_000),
        ("to_client.bytes_out", 8_000_000),
    ]);
}

#[test]
fn a_unix_target_is_spliced_and_a_fault_makes_it_copied() {
    let dir = TestDir::new("relay-splice-unix");
    let server = Server::start(&[&format!("unix:{}", dir.socket("echo.sock")), "--service", "echo"]);
    for (faults, how) in [
        (&[][..], "splicing both ways (zero-copy)"),
        (&["--slice", "1000"][..], "copying both ways"),
    ] {
        let relay = Relay::start(
            "tcp://127.0.0.1:0",
            &server.endpoints[0],
            &[&["-v"], faults].concat(),
        );
        let mut client = tcp_client(relay.addr());
        let sent = noise(200_000, 11);
        let mut writer = client.try_clone().unwrap();
        let sending = {
            let sent = sent.clone();
            std::thread::spawn(move || {
                writer.write_all(&sent).unwrap();
                writer.shutdown(Shutdown::Write).unwrap();
            })
        };
        assert!(read_to_close(&mut client) == sent, "{how}: the echo, exactly");
        sending.join().unwrap();
        relay.process.wait_for_log(how, WAIT);
        relay
            .stop()
            .assert(&[("to_target.bytes_out", 200_000), ("to_client.bytes_out", 200_000)]);
    }
}

#[test]
fn a_stream_delay_holds_each_piece() {
    let server = Server::start(&["tcp://127.0.0.1:0"]);
    let relay = Relay::start(
        "tcp://127.0.0.1:0",
        &server.endpoints[0],
        &["--delay", "150ms", "--direction", "to-client"],
    );
    let start = Instant::now();
    let mut client = tcp_client(relay.addr());
    converse(&mut client, GREETING, &[]);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(150), "greeted after {waited:?}");
    drop(client);
    relay
        .stop()
        .assert(&[("to_client.delayed", 1), ("to_target.delayed", 0)]);
}

#[test]
fn a_client_whose_target_is_gone_is_reset() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let relay = Relay::start("tcp://127.0.0.1:0", &format!("tcp://127.0.0.1:{port}"), &[]);
    let mut client = tcp_client(relay.addr());
    let error = client.read_to_end(&mut Vec::new()).expect_err("a reset");
    assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error}");
    relay.process.wait_for_log("cannot reach the target", WAIT);
}

// Datagrams -----------------------------------------------------------------

/// A UDP socket talking only to `to`.
fn udp_client(to: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.connect(to).expect("connect");
    socket
}

/// The next datagram, if one comes within `wait`.
fn next_datagram(socket: &UdpSocket, wait: Duration) -> Option<Vec<u8>> {
    socket.set_read_timeout(Some(wait)).unwrap();
    let mut buf = vec![0; 1 << 16];
    match socket.recv(&mut buf) {
        Ok(len) => Some(buf[..len].to_vec()),
        Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        Err(error) => panic!("recv: {error}"),
    }
}

/// Exactly `count` datagrams, each within [`WAIT`], and then none for [`QUIET`].
fn receive(socket: &UdpSocket, count: usize) -> Vec<Vec<u8>> {
    let all: Vec<Vec<u8>> = (0..count)
        .map(|i| next_datagram(socket, WAIT).unwrap_or_else(|| panic!("only {i} of {count} datagrams came")))
        .collect();
    if let Some(extra) = next_datagram(socket, QUIET) {
        panic!("{all:?} and then {extra:?}: more than {count} datagrams");
    }
    all
}

/// Every datagram that comes: the first within [`WAIT`], each next within [`QUIET`].
fn receive_until_quiet(socket: &UdpSocket) -> Vec<Vec<u8>> {
    let Some(first) = next_datagram(socket, WAIT) else {
        return Vec::new();
    };
    let mut all = vec![first];
    all.extend(std::iter::from_fn(|| next_datagram(socket, QUIET)));
    all
}

/// Sends each message as a datagram, then expects exactly `count` back.
fn send_all(socket: &UdpSocket, messages: &[&[u8]], count: usize) -> Vec<Vec<u8>> {
    for message in messages {
        socket.send(message).expect("send");
    }
    receive(socket, count)
}

#[test]
fn udp_to_udp_and_unix_datagram_to_udp() {
    let server = Server::start(&["udp://127.0.0.1:0"]);
    let relay = Relay::start("udp://127.0.0.1:0", &server.endpoints[0], &[]);
    let output = run_with_timeout(
        sockit().args(["connect", &relay.endpoint, "client1", "client2"]),
        WAIT,
    );
    assert_eq!(stdout_of(&output), "Hello, client1\nHello, client2\n");
    let client = udp_client(relay.addr());
    assert_eq!(send_all(&client, &[b"\xff\x00"], 1), [b"Hello, \xff\x00"]);

    let dir = TestDir::new("relay-du");
    let listen = format!("unix-dgram:{}", dir.socket("relay.sock"));
    let unix_relay = Relay::start(&listen, &server.endpoints[0], &[]);
    let output = run_with_timeout(sockit().args(["connect", &listen, "client1"]), WAIT);
    assert_eq!(stdout_of(&output), "Hello, client1\n");
    unix_relay.stop().assert(&[("sessions", 1)]);

    relay.stop().assert(&[
        ("sessions", 2),
        ("to_target.received", 3),
        ("to_target.forwarded", 3),
        ("to_client.forwarded", 3),
        ("to_target.dropped", 0),
    ]);
}

#[test]
fn drop_one_loses_everything_and_drop_zero_nothing() {
    let server = Server::start(&["udp://127.0.0.1:0"]);
    let lossy = Relay::start("udp://127.0.0.1:0", &server.endpoints[0], &["--drop", "1.0"]);
    let client = udp_client(lossy.addr());
    assert_eq!(
        send_all(&client, &[b"a", b"b", b"c", b"d", b"e"], 0),
        Vec::<Vec<u8>>::new()
    );
    lossy.stop().assert(&[
        ("to_target.received", 5),
        ("to_target.dropped", 5),
        ("to_target.forwarded", 0),
        ("to_client.received", 0),
    ]);

    let lossless = Relay::start(
        "udp://127.0.0.1:0",
        &server.endpoints[0],
        &["--drop", "0", "--seed", "3"],
    );
    let client = udp_client(lossless.addr());
    for i in 0..20 {
        let message = format!("m{i}");
        client.send(message.as_bytes()).unwrap();
        let reply = next_datagram(&client, WAIT).unwrap_or_else(|| panic!("no reply to {message}"));
        assert_eq!(reply, format!("Hello, {message}").into_bytes());
    }
    assert_eq!(next_datagram(&client, QUIET), None, "a reply too many");
    lossless.stop().assert(&[
        ("to_target.dropped", 0),
        ("to_client.dropped", 0),
        ("to_client.forwarded", 20),
    ]);
}

#[test]
fn duplicate_one_sends_every_datagram_twice_each_way() {
    let server = Server::start(&["udp://127.0.0.1:0"]);
    // Both ways: the request twice, so two replies, each twice.
    let relay = Relay::start("udp://127.0.0.1:0", &server.endpoints[0], &["--duplicate", "1"]);
    let client = udp_client(relay.addr());
    assert_eq!(send_all(&client, &[b"x"], 4), vec![b"Hello, x".to_vec(); 4]);
    relay.stop().assert(&[
        ("to_target.duplicated", 1),
        ("to_target.forwarded", 2),
        ("to_client.received", 2),
        ("to_client.duplicated", 2),
        ("to_client.forwarded", 4),
    ]);
    // Towards the target only: the request twice, so two replies.
    let relay = Relay::start(
        "udp://127.0.0.1:0",
        &server.endpoints[0],
        &["--duplicate", "100%", "--direction", "to-target"],
    );
    let client = udp_client(relay.addr());
    assert_eq!(send_all(&client, &[b"y"], 2), vec![b"Hello, y".to_vec(); 2]);
    relay
        .stop()
        .assert(&[("to_target.forwarded", 2), ("to_client.duplicated", 0)]);
}

#[test]
fn reorder_one_swaps_each_pair() {
    let server = Server::start(&["udp://127.0.0.1:0"]);
    let relay = Relay::start(
        "udp://127.0.0.1:0",
        &server.endpoints[0],
        &["--reorder", "1", "--direction", "to-target"],
    );
    let client = udp_client(relay.addr());
    // a is held and goes after b; b cannot be held while a is, and releases
    // it; c is held and goes after d.
    assert_eq!(
        send_all(&client, &[b"a", b"b", b"c", b"d"], 4),
        [b"Hello, b", b"Hello, a", b"Hello, d", b"Hello, c"]
    );
    relay
        .stop()
        .assert(&[("to_target.reordered", 2), ("to_target.forwarded", 4)]);
}

#[test]
fn a_datagram_delay_holds_each_way() {
    let server = Server::start(&["udp://127.0.0.1:0"]);
    let relay = Relay::start(
        "udp://127.0.0.1:0",
        &server.endpoints[0],
        &["--delay", "100ms", "--jitter", "20ms", "--seed", "5"],
    );
    let client = udp_client(relay.addr());
    let start = Instant::now();
    client.send(b"slow").unwrap();
    assert_eq!(next_datagram(&client, WAIT).as_deref(), Some(&b"Hello, slow"[..]));
    // Each way waits 80ms at least.
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(160), "answered after {waited:?}");
    relay
        .stop()
        .assert(&[("to_target.delayed", 1), ("to_client.delayed", 1)]);
}

/// Runs 200 datagrams through `--drop 0.3 --seed SEED` (both ways), checks
/// the relay's summary against what came back, and returns the messages
/// answered.
fn seeded_drops(server: &str, seed: &str) -> Vec<usize> {
    const COUNT: usize = 200;
    let relay = Relay::start("udp://127.0.0.1:0", server, &["--drop", "0.3", "--seed", seed]);
    let client = udp_client(relay.addr());
    let receiver = client.try_clone().unwrap();
    // Read while sending, so no reply waits in a full socket buffer.
    let replies = std::thread::spawn(move || receive_until_quiet(&receiver));
    for i in 0..COUNT {
        client.send(format!("m{i}").as_bytes()).unwrap();
        if i % 20 == 19 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let replies = replies.join().unwrap();
    let answered: Vec<usize> = replies
        .iter()
        .map(|reply| {
            let text = std::str::from_utf8(reply).unwrap();
            text.strip_prefix("Hello, m").unwrap().parse().unwrap()
        })
        .collect();
    assert!(answered.is_sorted(), "no reordering was asked for: {answered:?}");
    let summary = relay.stop();
    let sent_on = summary.get("to_target.forwarded");
    summary.assert(&[
        ("sessions", 1),
        ("to_target.received", COUNT as u64),
        ("to_target.dropped", COUNT as u64 - sent_on),
        ("to_client.received", sent_on),
        ("to_client.dropped", sent_on - answered.len() as u64),
        ("to_client.forwarded", answered.len() as u64),
        ("to_target.failed", 0),
        ("to_client.failed", 0),
    ]);
    // Loss of about half (0.3 each way): far from none and from all.
    assert!((60..140).contains(&answered.len()), "{} answered", answered.len());
    answered
}

#[test]
fn a_seed_drops_the_same_datagrams_every_run() {
    let server = Server::start(&["udp://127.0.0.1:0"]);
    let first = seeded_drops(&server.endpoints[0], "7");
    assert_eq!(seeded_drops(&server.endpoints[0], "7"), first);
    assert_ne!(seeded_drops(&server.endpoints[0], "8"), first);
}

// The command line ------------------------------------------------------------

/// `sockit relay ARGS` fails at once with a usage error naming each of `needles`.
fn usage_error(args: &[&str], needles: &[&str]) {
    let output = run_with_timeout(sockit().arg("relay").args(args), WAIT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: not one line: {stderr:?}");
    assert!(stderr.starts_with("sockit: error: "), "{stderr:?}");
    for needle in needles.iter().chain(&["(see 'sockit relay --help')"]) {
        assert!(stderr.contains(needle), "{args:?}: no {needle:?} in {stderr:?}");
    }
}

#[test]
fn bad_command_lines_are_one_line_usage_errors() {
    let udp = ["udp://127.0.0.1:0", "udp://127.0.0.1:9"];
    usage_error(
        &[udp[0], udp[1], "--drop", "1.5"],
        &["'--drop <P>'", "\"1.5\" is not a probability from 0 to 1"],
    );
    usage_error(
        &[udp[0], udp[1], "--reorder", "often"],
        &["\"often\" is not a probability"],
    );
    usage_error(
        &[udp[0], udp[1], "--direction", "up"],
        &["\"up\" is not a direction"],
    );
    usage_error(
        &["tcp://127.0.0.1:0", udp[1]],
        &["cannot relay tcp://127.0.0.1:0 to udp://127.0.0.1:9", "datagrams"],
    );
    usage_error(
        &["seqpacket:@x", "seqpacket:@y"],
        &["seqpacket endpoints are not relayed yet"],
    );
    usage_error(&[udp[0]], &["<TARGET>"]);
}

#[test]
fn help_names_the_relay_with_examples() {
    let stdout = stdout_of(&run_with_timeout(sockit().args(["relay", "--help"]), WAIT));
    for needle in [
        "Usage: sockit relay [OPTIONS] <LISTEN> <TARGET>",
        "sockit relay tcp://127.0.0.1:9000 exec:cat",
        "sockit relay - 127.0.0.1:8000",
        "a stream is not relayed to datagrams",
        "sockit relay tcp://127.0.0.1:8000 unix:/tmp/app.sock",
        "--drop 0.1 --reorder 0.05 --delay 5ms --jitter 2ms --seed 1",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in {stdout}");
    }
    let stdout = stdout_of(&run_with_timeout(sockit().arg("--help"), WAIT));
    assert!(stdout.contains("  relay "), "{stdout}");
}
