//! `sockit bench`, end to end: exact counts and bytes against `sockit serve`
//! on every transport and both services; wrong, lost, duplicated and
//! unanswered replies counted exactly against broken Python servers; the
//! fixed-rate schedule; the SVG plot; progress lines; usage and connect errors.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{Running, Server, TestDir, peer, run_with_timeout, sockit};

/// How long one bench run may take.
const LIMIT: Duration = Duration::from_secs(60);

/// Runs `sockit bench ARGS --json` and returns its exit code, its report and
/// its stderr.
fn bench_json(args: &[&str]) -> (Option<i32>, Value, String) {
    let output = run_with_timeout(sockit().arg("bench").args(args).arg("--json"), LIMIT);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): stdout {:?}, stderr {stderr:?}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    (output.status.code(), report, stderr)
}

/// The counts of a report: requests, replies, and errors total, wrong,
/// missing, timeouts.
fn counts(report: &Value) -> [u64; 6] {
    let number = |value: &Value| value.as_u64().unwrap_or_else(|| panic!("not a count: {report}"));
    let errors = &report["errors"];
    [
        number(&report["requests"]),
        number(&report["replies"]),
        number(&errors["total"]),
        number(&errors["wrong"]),
        number(&errors["missing"]),
        number(&errors["timeouts"]),
    ]
}

/// Runs 2000 requests over 4 connections at `endpoint` with `extra` flags
/// and checks that every one got its reply, with the bytes each way exact.
fn answers_exactly(endpoint: &str, service: &str, extra: &[&str], request_wire: u64, reply_wire: u64) {
    let mut args = vec![endpoint, "--service", service, "-n", "2000", "-c", "4"];
    args.extend_from_slice(extra);
    let (code, report, stderr) = bench_json(&args);
    let what = format!("{args:?}: {report}; stderr {stderr:?}");
    assert_eq!(code, Some(0), "{what}");
    assert_eq!(counts(&report), [2000, 2000, 0, 0, 0, 0], "{what}");
    assert_eq!(report["errors"]["connections"], serde_json::json!({}), "{what}");
    assert_eq!(report["connected"].as_u64(), Some(4), "{what}");
    assert_eq!(report["bytes_sent"].as_u64(), Some(2000 * request_wire), "{what}");
    assert_eq!(
        report["bytes_received"].as_u64(),
        Some(2000 * reply_wire),
        "{what}"
    );
    assert_eq!(report["latency_from"], "send", "{what}");
    let latency = &report["latency_us"];
    let (p50, max) = (latency["p50"].as_f64().unwrap(), latency["max"].as_f64().unwrap());
    assert!(0.0 < p50 && p50 <= max, "{what}");
}

/// Every transport, for `service`: streams bare with one in flight and in
/// lines with 8; datagrams and seqpacket with 1 and 8 in flight.
fn every_transport_answers_exactly(service: &str, greet: bool) {
    let dir = TestDir::new(&format!("bench-{service}"));
    let (unix, unix_dgram, seqpacket) = (dir.socket("s.sock"), dir.socket("d.sock"), dir.socket("p.sock"));
    let endpoints = [
        "tcp://127.0.0.1:0".to_owned(),
        "udp://127.0.0.1:0".to_owned(),
        format!("unix:{unix}"),
        format!("unix-dgram:{unix_dgram}"),
        format!("seqpacket:{seqpacket}"),
    ];
    let mut args: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    args.extend(["--service", service]);
    let server = Server::start(&args);
    // 64-byte requests; greet answers "Hello, M!" (72 bytes) on a
    // connection and "Hello, M" (71) to a datagram; echo answers M.
    let (stream_reply, datagram_reply) = if greet { (72, 71) } else { (64, 64) };
    for endpoint in &server.endpoints {
        if endpoint.starts_with("udp://") || endpoint.starts_with("unix-dgram:") {
            answers_exactly(endpoint, service, &[], 64, datagram_reply);
            answers_exactly(endpoint, service, &["-p", "8"], 64, datagram_reply);
        } else if endpoint.starts_with("seqpacket:") {
            answers_exactly(endpoint, service, &[], 64, stream_reply);
            answers_exactly(endpoint, service, &["-p", "8"], 64, stream_reply);
        } else {
            answers_exactly(endpoint, service, &[], 64, stream_reply);
            answers_exactly(
                endpoint,
                service,
                &["--framing", "line", "-p", "8"],
                65,
                stream_reply + 1,
            );
        }
    }
    assert_eq!(server.endpoints.len(), 5, "{:?}", server.endpoints);
}

#[test]
fn greet_on_every_transport_answers_every_request_exactly() {
    every_transport_answers_exactly("greet", true);
}

#[test]
fn echo_on_every_transport_answers_every_request_exactly() {
    every_transport_answers_exactly("echo", false);
}

#[test]
fn len32_framing_pipelines_too() {
    let server = Server::start(&["tcp://127.0.0.1:0", "--framing", "len32"]);
    // A 4-byte length before each request and each reply.
    answers_exactly(
        &server.endpoints[0],
        "greet",
        &["--framing", "len32", "-p", "16"],
        68,
        76,
    );
}

/// A Python server on 127.0.0.1 that logs `listening on PORT` on stderr.
fn python_server(python: &str, program: &str, args: &[&str]) -> (Running, String) {
    let server = Running::start(Command::new(python).arg("-c").arg(program).args(args));
    let line = server.wait_for_log("listening on ", Duration::from_secs(10));
    let port = line.rsplit(' ').next().unwrap().to_owned();
    (server, port)
}

/// An asyncio TCP server: echo of lines, but every 10th reply (over all
/// connections) has one byte changed; echo that reads and never answers;
/// or greet (bare greeting, then `Hello, M!` for each read), closing the
/// connection after the 30th message instead of answering it.
const BROKEN_TCP_SERVER: &str = r##"
import asyncio, sys
mode = sys.argv[1]
count = 0
async def handle(reader, writer):
    global count
    if mode == "greet-closes":
        writer.write(b"Hello, I am server")
    while True:
        message = await (reader.read(4096) if mode == "greet-closes" else reader.readline())
        if not message:
            break
        count += 1
        if mode == "echo-corrupts":
            if count % 10 == 0:
                message = message[:20] + b"#" + message[21:]
            writer.write(message)
        elif mode == "echo-silent":
            continue
        elif count > 30:
            break
        else:
            writer.write(b"Hello, " + message + b"!")
        await writer.drain()
    writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print("listening on", server.sockets[0].getsockname()[1], file=sys.stderr, flush=True)
    await server.serve_forever()
asyncio.run(main())
"##;

#[test]
fn corrupted_replies_are_counted_exactly() {
    let Some(python) = peer("python3", "runs a broken echo server") else {
        return;
    };
    let (_server, port) = python_server(&python, BROKEN_TCP_SERVER, &["echo-corrupts"]);
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let (code, report, stderr) = bench_json(&[
        &endpoint,
        "--service",
        "echo",
        "--framing",
        "line",
        "-p",
        "8",
        "-c",
        "3",
        "-n",
        "1000",
    ]);
    assert_eq!(code, Some(1), "{report}; stderr {stderr:?}");
    // Replies stay in step: each corrupt one is one wrong reply.
    assert_eq!(counts(&report), [1000, 900, 100, 100, 0, 0], "{report}");
    assert_eq!(report["errors"]["connections"], serde_json::json!({}), "{report}");
}

#[test]
fn a_server_that_closes_early_leaves_its_request_missing() {
    let Some(python) = peer("python3", "runs a greet server that closes early") else {
        return;
    };
    let (_server, port) = python_server(&python, BROKEN_TCP_SERVER, &["greet-closes"]);
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let (code, report, stderr) = bench_json(&[&endpoint, "-c", "1", "-n", "100"]);
    assert_eq!(code, Some(1), "{report}; stderr {stderr:?}");
    // 30 answered; the 31st is never answered and the connection closes.
    assert_eq!(counts(&report), [31, 30, 2, 0, 1, 0], "{report}");
    assert_eq!(
        report["errors"]["connections"],
        serde_json::json!({"UnexpectedEof": 1}),
        "{report}"
    );
}

#[test]
fn a_server_that_stops_answering_stalls_each_connection() {
    let Some(python) = peer("python3", "runs a server that never answers") else {
        return;
    };
    let (_server, port) = python_server(&python, BROKEN_TCP_SERVER, &["echo-silent"]);
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let started = Instant::now();
    let (code, report, stderr) = bench_json(&[
        &endpoint,
        "--service",
        "echo",
        "--framing",
        "line",
        "-p",
        "3",
        "-c",
        "2",
        "-n",
        "100",
        "--timeout",
        "300ms",
    ]);
    assert_eq!(code, Some(1), "{report}; stderr {stderr:?}");
    // Each connection sends a window of 3, waits 300 ms for the first reply,
    // and gives up: 2 timeouts, 6 requests missing.
    assert_eq!(counts(&report), [6, 0, 8, 0, 6, 2], "{report}");
    assert!(started.elapsed() >= Duration::from_millis(300));
}

/// An asyncio UDP server: greet that drops every 5th datagram, or echo that
/// before every 10th reply repeats the sender's previous one (already
/// answered, so it answers nothing in flight; and it comes before the reply
/// the sender waits for, so it is always read).
const BROKEN_UDP_SERVER: &str = r#"
import asyncio, sys
mode = sys.argv[1]
class Server(asyncio.DatagramProtocol):
    count = 0
    previous = {}
    def connection_made(self, transport):
        self.transport = transport
    def datagram_received(self, data, sender):
        self.count += 1
        if mode == "greet-drops":
            if self.count % 5:
                self.transport.sendto(b"Hello, " + data, sender)
        else:
            if self.count % 10 == 0:
                self.transport.sendto(self.previous.get(sender, b"answers nothing"), sender)
            self.transport.sendto(data, sender)
            self.previous[sender] = data
async def main():
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(Server, local_addr=("127.0.0.1", 0))
    print("listening on", transport.get_extra_info("sockname")[1], file=sys.stderr, flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"#;

#[test]
fn lost_datagrams_are_counted_missing_exactly() {
    let Some(python) = peer("python3", "runs a UDP server that drops datagrams") else {
        return;
    };
    let (_server, port) = python_server(&python, BROKEN_UDP_SERVER, &["greet-drops"]);
    let endpoint = format!("udp://127.0.0.1:{port}");
    let (code, report, stderr) =
        bench_json(&[&endpoint, "-c", "2", "-p", "4", "-n", "200", "--timeout", "200ms"]);
    assert_eq!(code, Some(1), "{report}; stderr {stderr:?}");
    assert_eq!(counts(&report), [200, 160, 40, 0, 40, 0], "{report}");
}

#[test]
fn repeated_datagram_replies_are_counted_wrong_exactly() {
    let Some(python) = peer("python3", "runs a UDP server that repeats replies") else {
        return;
    };
    let (_server, port) = python_server(&python, BROKEN_UDP_SERVER, &["echo-repeats"]);
    let endpoint = format!("udp://127.0.0.1:{port}");
    let (code, report, stderr) =
        bench_json(&[&endpoint, "--service", "echo", "-c", "2", "-p", "4", "-n", "200"]);
    assert_eq!(code, Some(1), "{report}; stderr {stderr:?}");
    // Every request answered; each repeat answers nothing in flight.
    assert_eq!(counts(&report), [200, 200, 20, 20, 0, 0], "{report}");
}

#[test]
fn a_fixed_rate_sends_on_schedule() {
    let server = Server::start(&["tcp://127.0.0.1:0", "--service", "echo"]);
    let started = Instant::now();
    let (code, report, stderr) = bench_json(&[
        &server.endpoints[0],
        "--service",
        "echo",
        "-c",
        "4",
        "-d",
        "1s",
        "--warmup",
        "0",
        "--rate",
        "200",
    ]);
    let took = started.elapsed();
    assert_eq!(code, Some(0), "{report}; stderr {stderr:?}");
    let [requests, replies, errors, ..] = counts(&report);
    assert!((150..=250).contains(&requests), "{report}");
    assert_eq!((replies, errors), (requests, 0), "{report}");
    assert_eq!(report["latency_from"], "schedule");
    assert_eq!(report["rate"].as_f64(), Some(200.0));
    // Spread over the second, not sent in a burst: the last is due at 0.995 s.
    assert!(took >= Duration::from_millis(995), "took {took:?}");
    let measured = report["duration_s"].as_f64().unwrap();
    assert!((0.99..5.0).contains(&measured), "{report}");
}

/// At a fixed rate the warmup's requests are known in advance: 200 a second
/// for 0.5 s is 100 warmup replies, counted apart from the 100 measured.
#[test]
fn warmup_replies_are_counted_apart() {
    let server = Server::start(&["tcp://127.0.0.1:0", "--service", "echo"]);
    let (code, report, stderr) = bench_json(&[
        &server.endpoints[0],
        "--service",
        "echo",
        "-c",
        "4",
        "-d",
        "500ms",
        "--warmup",
        "500ms",
        "--rate",
        "200",
    ]);
    assert_eq!(code, Some(0), "{report}; stderr {stderr:?}");
    assert_eq!(
        (
            report["requests"].as_u64(),
            report["replies"].as_u64(),
            report["warmup_replies"].as_u64()
        ),
        (Some(100), Some(100), Some(100)),
        "{report}"
    );
}

#[test]
fn the_plot_is_an_svg_percentile_plot_and_progress_goes_to_stderr() {
    let server = Server::start(&["udp://127.0.0.1:0"]);
    let dir = TestDir::new("bench-plot");
    let plot = dir.path().join("latency.svg");
    let output: Output = run_with_timeout(
        sockit()
            .args([
                "bench",
                &server.endpoints[0],
                "-c",
                "2",
                "-d",
                "1200ms",
                "--warmup",
                "0",
                "--plot",
            ])
            .arg(&plot),
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout {stdout:?}; stderr {stderr:?}"
    );
    let svg = std::fs::read_to_string(&plot).expect("the plot was written");
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    assert!(svg.trim_end().ends_with("</svg>"));
    for label in [">0%<", ">90%<", ">99%<", ">99.9%<", ">Percentile<", "<polyline"] {
        assert!(svg.contains(label), "no {label} in {svg}");
    }
    // The summary on stdout; a progress line a second on stderr (not a terminal).
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "sockit bench {}: greet, 2 connections",
            server.endpoints[0]
        )),
        "{stdout}"
    );
    assert!(
        lines.iter().any(|line| line.starts_with("latency     p50 ")),
        "{stdout}"
    );
    assert!(
        stderr
            .lines()
            .any(|line| line.starts_with("sockit bench: ") && line.contains(" msgs/s so far, ")),
        "{stderr:?}"
    );
}

#[test]
fn quiet_shows_no_progress_only_the_summary() {
    let server = Server::start(&["udp://127.0.0.1:0"]);
    let output: Output = run_with_timeout(
        sockit().args([
            "bench",
            &server.endpoints[0],
            "-c",
            "2",
            "-d",
            "1200ms",
            "--warmup",
            "0",
            "-q",
        ]),
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert!(stdout.starts_with("sockit bench udp://"), "{stdout}");
    assert!(stdout.contains("\nlatency     p50 "), "{stdout}");
}

/// Runs `sockit bench ARGS`, which must fail with exit status 2 and one
/// line on stderr; returns that line.
fn usage_error(args: &[&str]) -> String {
    let output = run_with_timeout(sockit().arg("bench").args(args), LIMIT);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{args:?}: stderr {stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(output.stdout.is_empty());
    stderr
}

#[test]
fn usage_errors_are_one_line_with_exit_status_2() {
    let line = usage_error(&["tcp://127.0.0.1:1", "-p", "4"]);
    assert_eq!(
        line,
        "sockit: error: a pipeline of 4 needs line or len32 framing (on the server too): auto framing sends \
         messages bare, and a byte stream cannot tell where one bare message ends and the next begins \
         (see 'sockit bench --help')\n"
    );
    let line = usage_error(&["unix:/nowhere", "-p", "2", "--framing", "raw"]);
    assert!(
        line.contains("a pipeline of 2 needs line or len32 framing"),
        "{line}"
    );
    assert!(usage_error(&["tcp://127.0.0.1:1", "-s", "15"]).contains("the size is at least 16"));
    assert!(usage_error(&["tcp://127.0.0.1:1", "--service", "discard"]).contains("discard"));
    assert!(usage_error(&["tcp://127.0.0.1:1", "-n", "5", "-d", "1s"]).contains("cannot be used with"));
}

#[test]
fn nothing_to_connect_to_is_an_error_not_a_report() {
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let output = run_with_timeout(sockit().args(["bench", &endpoint, "-c", "3", "-n", "10"]), LIMIT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr:?}");
    assert!(output.stdout.is_empty());
    assert_eq!(
        stderr.trim_end(),
        format!("sockit: error: cannot connect to {endpoint}: Connection refused (os error 111)")
    );
}
