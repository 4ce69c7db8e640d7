//! The command line: each bad endpoint and each bad flag gives a one-line
//! error naming what is wrong (exit status 2); runtime failures give one line
//! too (exit status 1); help and version go to stdout.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

/// How long any one `sockit` run may take here.
const LIMIT: Duration = Duration::from_secs(10);

/// Runs `sockit ARGS` to completion, with stdin empty.
fn sockit(args: &[&str]) -> Output {
    common::run_with_timeout(common::sockit().args(args), LIMIT)
}

/// Asserts the run failed with `code`, printed `stdout` exactly, and wrote
/// exactly one line on stderr, `sockit: error: ...`, containing each of
/// `needles`; returns that line.
fn assert_one_line_error(
    args: &[&str],
    output: &Output,
    code: i32,
    stdout: &str,
    needles: &[&str],
) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "sockit {args:?}: want exit status {code}; stderr {stderr:?}"
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        stdout,
        "sockit {args:?}: stdout; stderr {stderr:?}"
    );
    assert!(
        stderr.ends_with('\n') && stderr.matches('\n').count() == 1,
        "sockit {args:?}: stderr is not exactly one line: {stderr:?}"
    );
    assert!(
        stderr.starts_with("sockit: error: "),
        "sockit {args:?}: stderr {stderr:?}"
    );
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "sockit {args:?}: stderr {stderr:?} does not contain {needle:?}"
        );
    }
    stderr
}

/// Asserts `sockit ARGS` is refused as a usage error: exit status 2, nothing
/// on stdout, one line on stderr naming each of `needles`.
fn assert_usage_error(args: &[&str], needles: &[&str]) {
    let output = sockit(args);
    assert_one_line_error(args, &output, 2, "", needles);
}

/// A local port that nothing listens on (bound, then let go).
fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// Every `serve` below names port 0, so that a case that wrongly parses binds
// nothing fixed (the default is 8000) and fails as a timeout, not a clash.

#[test]
fn an_endpoint_without_a_port_says_what_is_expected() {
    assert_usage_error(
        &["serve", "foo"],
        &[
            "\"foo\"",
            "missing ':PORT'",
            "expected tcp://HOST:PORT",
            "sockit serve --help",
        ],
    );
}

#[test]
fn an_unknown_scheme_is_named() {
    assert_usage_error(
        &["serve", "ftp://x:1"],
        &["unknown scheme \"ftp\"", "\"ftp://x:1\""],
    );
}

#[test]
fn a_port_out_of_range_is_named() {
    assert_usage_error(
        &["serve", "tcp://127.0.0.1:99999"],
        &["\"99999\" is not a number from 0 to 65535"],
    );
}

#[test]
fn an_ipv6_address_needs_brackets() {
    assert_usage_error(
        &["serve", "tcp://::1:80"],
        &["write an IPv6 address in brackets, as [::1]:PORT"],
    );
}

#[test]
fn connect_without_an_endpoint_names_it() {
    assert_usage_error(
        &["connect"],
        &[
            "required arguments were not provided",
            "<ENDPOINT>",
            "sockit connect --help",
        ],
    );
}

#[test]
fn an_unknown_flag_is_named() {
    assert_usage_error(
        &["serve", "tcp://127.0.0.1:0", "--bogus"],
        &["unexpected argument '--bogus'"],
    );
}

#[test]
fn an_unknown_framing_is_named_with_the_choices() {
    assert_usage_error(
        &["serve", "tcp://127.0.0.1:0", "--framing", "lines"],
        &[
            "--framing",
            "unknown framing \"lines\"",
            "auto, raw, line or len32",
        ],
    );
}

#[test]
fn an_unknown_service_is_named_with_the_choices() {
    assert_usage_error(
        &["serve", "tcp://127.0.0.1:0", "--service", "hello"],
        &["--service", "unknown service \"hello\"", "greet, echo or discard"],
    );
}

#[test]
fn zero_max_connections_is_refused() {
    assert_usage_error(
        &["serve", "tcp://127.0.0.1:0", "--max-connections", "0"],
        &["invalid value '0' for '--max-connections <N>'"],
    );
}

#[test]
fn a_max_message_that_is_not_a_number_is_refused() {
    assert_usage_error(
        &["serve", "tcp://127.0.0.1:0", "--max-message", "abc"],
        &["invalid value 'abc' for '--max-message <BYTES>'"],
    );
}

#[test]
fn a_shutdown_timeout_that_is_not_a_duration_is_refused() {
    assert_usage_error(
        &["serve", "tcp://127.0.0.1:0", "--shutdown-timeout", "forever"],
        &[
            "--shutdown-timeout",
            "\"forever\" is not a duration such as 10s or 500ms",
        ],
    );
}

#[test]
fn a_connect_timeout_that_is_not_a_duration_is_refused() {
    assert_usage_error(
        &["connect", "127.0.0.1:1", "--timeout", "x"],
        &["--timeout", "\"x\" is not a duration such as 10s or 500ms"],
    );
}

#[test]
fn verbose_and_quiet_conflict() {
    assert_usage_error(
        &["-v", "-q", "serve", "tcp://127.0.0.1:0"],
        &["'--verbose...' cannot be used with '--quiet...'"],
    );
}

#[test]
fn serving_on_a_port_in_use_fails_with_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("tcp://127.0.0.1:{}", taken.local_addr().unwrap().port());
    let args = ["serve", endpoint.as_str()];
    let output = sockit(&args);
    assert_one_line_error(
        &args,
        &output,
        1,
        "",
        &[
            &format!("cannot listen on {endpoint}: "),
            "Address already in use",
        ],
    );
}

#[test]
fn connecting_where_nothing_listens_is_refused() {
    let endpoint = format!("tcp://127.0.0.1:{}", free_tcp_port());
    let args = ["connect", endpoint.as_str(), "client1"];
    let output = sockit(&args);
    assert_one_line_error(
        &args,
        &output,
        1,
        "",
        &[&format!("cannot connect to {endpoint}: "), "refused"],
    );
}

#[test]
fn a_datagram_where_nothing_listens_is_refused() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("udp://127.0.0.1:{port}");
    // Short waits, so that a refusal that never came fails as a timeout, fast.
    let args = [
        "connect",
        endpoint.as_str(),
        "x",
        "--timeout",
        "1s",
        "--retries",
        "0",
    ];
    let output = sockit(&args);
    assert_one_line_error(&args, &output, 1, "", &[&endpoint, "refused"]);
}

/// A one-connection TCP server on 127.0.0.1 run by `conversation` in a thread.
fn fake_server(
    conversation: impl FnOnce(std::net::TcpStream) -> Vec<u8> + Send + 'static,
) -> (SocketAddr, thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        conversation(stream)
    });
    (addr, server)
}

#[test]
fn a_server_that_never_greets_times_out_as_asked() {
    // Accepts, sends nothing, and holds the connection until the client closes.
    let (addr, server) = fake_server(|mut stream| {
        let mut received = Vec::new();
        stream
            .read_to_end(&mut received)
            .expect("read until the client closes");
        received
    });
    let endpoint = format!("tcp://{addr}");
    let args = ["connect", endpoint.as_str(), "client1", "--timeout", "300ms"];
    let start = Instant::now();
    let output = sockit(&args);
    let elapsed = start.elapsed();
    assert_one_line_error(
        &args,
        &output,
        1,
        "",
        &[&format!("{endpoint} did not answer within 300ms")],
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
        "gave up after {elapsed:?}, not 300ms"
    );
    // The client waits for the greeting before it sends anything.
    assert_eq!(server.join().unwrap(), b"");
}

#[test]
fn a_reset_in_mid_conversation_fails_with_one_line() {
    // Greets, reads the message, then closes with SO_LINGER 0: a reset.
    let (addr, server) = fake_server(|mut stream| {
        stream.write_all(b"Hello, I am server").unwrap();
        let mut received = vec![0; b"client1".len()];
        stream.read_exact(&mut received).expect("read the message");
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(stream);
        received
    });
    let endpoint = format!("tcp://{addr}");
    let args = ["connect", endpoint.as_str(), "client1"];
    let output = sockit(&args);
    let line = assert_one_line_error(
        &args,
        &output,
        1,
        "Hello, I am server\n",
        &[&format!("connection to {endpoint} failed: ")],
    );
    assert!(line.to_lowercase().contains("reset"), "{line:?}");
    assert_eq!(server.join().unwrap(), b"client1");
}

/// Asserts `sockit ARGS` prints help with examples on stdout and exits 0.
fn assert_help(args: &[&str], usage: &str, example: &str) {
    let output = sockit(args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "sockit {args:?}: {output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "", "sockit {args:?}");
    for needle in [usage, "Examples:", example] {
        assert!(
            stdout.contains(needle),
            "sockit {args:?}: no {needle:?} in {stdout}"
        );
    }
}

#[test]
fn help_goes_to_stdout_with_examples() {
    assert_help(
        &["--help"],
        "Usage: sockit [OPTIONS] <COMMAND>",
        "sockit connect 127.0.0.1:8000 client1 client2 client3",
    );
    assert_help(
        &["serve", "--help"],
        "Usage: sockit serve [OPTIONS] [ENDPOINT]...",
        "sockit serve udp://127.0.0.1:9000",
    );
    assert_help(
        &["connect", "--help"],
        "Usage: sockit connect [OPTIONS] <ENDPOINT> [MESSAGE]...",
        "sockit connect udp://127.0.0.1:9000 client1 client2",
    );
}

#[test]
fn version_goes_to_stdout() {
    let output = sockit(&["--version"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "sockit 0.1.0\n");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

/// `--log-format json`: every log line is one JSON object, with the message
/// and its fields, for log collectors.
#[test]
fn every_log_line_is_a_json_object() {
    let server = common::Server::start(&["tcp://127.0.0.1:0", "--log-format", "json"]);
    let mut client = common::tcp_client(server.addr(0));
    let mut greeting = [0; 18];
    client.read_exact(&mut greeting).unwrap();
    let local = client.local_addr().unwrap();
    drop(client);
    server.process.wait_for_log("closed.", LIMIT);
    let log = server.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l["fields"]["message"].as_str().unwrap())
        .collect();
    assert!(
        messages[0].starts_with("listening on tcp://127.0.0.1:"),
        "{messages:?}"
    );
    assert!(
        messages.contains(&format!("Accept new connection from {local}").as_str()),
        "{messages:?}"
    );
    assert!(lines.iter().all(|l| l["level"] == "INFO"), "{log}");
}
