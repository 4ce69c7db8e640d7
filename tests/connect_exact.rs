//! `sockit connect` never changes bytes silently: `--framing raw` with stdin
//! carries every byte exactly both ways; what a framing cannot carry is
//! refused in one line; a server that does not answer in lockstep is an
//! error that names `sockit nc`; and a service that never replies (discard)
//! gets each message once, with nothing waited for.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{
    Running, Server, TestDir, abstract_name, peer, run_with_input, run_with_stdin, sockit, wait_for_count,
};

const WAIT: Duration = Duration::from_secs(30);

/// Every awkward byte: CRLF, a lone CR (mid-line and last), LF alone, NUL,
/// invalid UTF-8, an empty line, and no line ending at the very end.
const AWKWARD: &[u8] = b"GET / HTTP/1.0\r\n\r\na\rb\n\nnul\0here\xff\xfe\x80\r\n\x00\r\rend\r";

/// `sockit connect ARGS` with `input` on stdin.
fn connect(args: &[&str], input: &[u8]) -> Output {
    run_with_input(sockit().arg("connect").args(args), input, WAIT)
}

/// The one line of a failure: exit status 1, nothing on stdout, one line on stderr.
fn one_line_failure(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "stderr {stderr:?}");
    assert_eq!(
        output.stdout,
        b"",
        "stdout {:?}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        stderr.starts_with("sockit: error: ") && stderr.ends_with('\n') && stderr.lines().count() == 1,
        "not one error line: {stderr:?}"
    );
    stderr
}

/// Asserts `output` succeeded with exactly `want` on stdout (compared as
/// bytes; shown escaped when they differ).
fn assert_exact(output: &Output, want: &[u8]) {
    assert!(
        output.status.success(),
        "exit {:?}; stderr {:?}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    if output.stdout != want {
        let first = output.stdout.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "stdout differs: {} bytes, want {}; first difference at {first:?}; head {:?}",
            output.stdout.len(),
            want.len(),
            String::from_utf8_lossy(&output.stdout[..output.stdout.len().min(200)])
        );
    }
}

/// `len` bytes of every value, in no pattern (xorshift), the same every run.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

// --framing raw: bytes in, the same bytes out ------------------------------

#[test]
fn raw_echo_returns_every_byte_on_each_stream_kind() {
    let dir = TestDir::new("exact-raw");
    let unix = format!("unix:{}", dir.socket("echo.sock"));
    let seqpacket = format!("seqpacket:@{}", abstract_name("exact-raw"));
    for listen in ["tcp://127.0.0.1:0", unix.as_str(), seqpacket.as_str()] {
        let server = Server::start(&[listen, "--service", "echo"]);
        let output = connect(&[&server.endpoints[0], "-s", "echo", "-f", "raw"], AWKWARD);
        assert_exact(&output, AWKWARD);
        // A lone CR and a lone NUL, each on its own.
        for input in [&b"\r"[..], b"\0", b"\xff", b"\r\n"] {
            let output = connect(&[&server.endpoints[0], "-s", "echo", "-f", "raw"], input);
            assert_exact(&output, input);
        }
    }
}

#[test]
fn raw_echo_carries_a_five_megabyte_file_exactly() {
    let server = Server::start(&["tcp://127.0.0.1:0", "--service", "echo"]);
    let dir = TestDir::new("exact-big");
    let file = dir.path().join("noise.bin");
    let data = noise(5 * 1024 * 1024 + 7);
    std::fs::write(&file, &data).unwrap();
    let start = Instant::now();
    let output = run_with_stdin(
        sockit().args(["connect", &server.endpoints[0], "-s", "echo", "-f", "raw"]),
        Stdio::from(std::fs::File::open(&file).unwrap()),
        Duration::from_secs(120),
    );
    assert_exact(&output, &data);
    eprintln!("5 MiB echoed in {:?}", start.elapsed());
}

#[test]
fn raw_greet_prints_the_greeting_and_replies_with_nothing_added() {
    // The default server (auto framing) answers the line "bob\n" with a line.
    let server = Server::start(&["tcp://127.0.0.1:0"]);
    let output = connect(&[&server.endpoints[0], "-f", "raw"], b"bob\n");
    assert_exact(&output, b"Hello, I am serverHello, bob!\n");
}

#[test]
fn raw_discard_puts_every_byte_on_the_wire_and_waits_for_nothing() {
    // A discard server of our own that records what arrives, until end of stream.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let recorder = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).unwrap();
        got
    });
    let mut input = AWKWARD.to_vec();
    input.extend(noise(300_000));
    let start = Instant::now();
    let output = connect(&[&format!("tcp://{addr}"), "-s", "discard", "-f", "raw"], &input);
    assert_exact(&output, b"");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    assert!(recorder.join().unwrap() == input, "the bytes on the wire differ");
}

// Lines: what a framing cannot carry is refused --------------------------

#[test]
fn echo_lines_longer_than_a_read_come_back_whole() {
    // Bare (auto) framing, raw echo server: a 100 kB line arrives in several
    // reads, and is still one reply on one line.
    let server = Server::start(&["tcp://127.0.0.1:0", "--service", "echo"]);
    let long = vec![b'x'; 100_000];
    let input = [&long[..], b"\nshort\r\n", b"mid\rcr\n"].concat();
    let output = connect(&[&server.endpoints[0], "-s", "echo"], &input);
    let want = [&long[..], b"\nshort\nmid\rcr\n"].concat();
    assert_exact(&output, &want);
}

#[test]
fn line_framing_carries_a_cr_inside_a_line_exactly() {
    let server = Server::start(&["tcp://127.0.0.1:0", "--service", "echo", "--framing", "line"]);
    let output = connect(
        &[&server.endpoints[0], "-s", "echo", "-f", "line"],
        b"a\rb\r\n\0\xff\n",
    );
    assert_exact(&output, b"a\rb\n\0\xff\n");
}

#[test]
fn line_framing_refuses_what_it_cannot_carry() {
    // A recorder: nothing may reach the wire before the refusal.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("tcp://{}", listener.local_addr().unwrap());
    let cases: [(&[&str], &[u8], &str); 3] = [
        (
            &["x\ny"],
            b"",
            r#"cannot send "x\ny": line framing cannot carry a message that holds a newline"#,
        ),
        (
            &["x\r"],
            b"",
            r#"cannot send "x\r": line framing cannot carry a message that ends in a carriage return"#,
        ),
        // From stdin: "\r\r\n" is the line "c\r", its "\r\n" removed.
        (&[], b"c\r\r\n", r#"cannot send "c\r": line framing cannot carry"#),
    ];
    for (messages, input, want) in cases {
        let mut args = vec![endpoint.as_str(), "-s", "echo", "-f", "line"];
        args.extend(messages);
        let accepted = std::thread::scope(|scope| {
            let recorder = scope.spawn(|| {
                let (mut stream, _) = listener.accept().unwrap();
                stream.set_read_timeout(Some(WAIT)).unwrap();
                let mut got = Vec::new();
                stream.read_to_end(&mut got).unwrap();
                got
            });
            let output = connect(&args, input);
            let line = one_line_failure(&output);
            assert!(line.contains(want), "{line:?} does not contain {want:?}");
            assert!(line.contains("--framing len32"), "{line:?}");
            recorder.join().unwrap()
        });
        assert_eq!(accepted, b"", "sent before refusing {messages:?} {input:?}");
    }
}

// A server that is not a sockit service ----------------------------------

/// `python3 -m http.server` on a port of its choosing, serving `dir`.
fn http_server(dir: &std::path::Path) -> Option<(Running, u16)> {
    peer("python3", "serves HTTP as a server that is not a sockit service")?;
    let server = Running::start_merged(
        "python3",
        [
            "-u",
            "-m",
            "http.server",
            "0",
            "--bind",
            "127.0.0.1",
            "--directory",
            dir.to_str().unwrap(),
        ],
    );
    let line = server.wait_for_log("Serving HTTP on", Duration::from_secs(10));
    let port = line
        .split("port ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    Some((server, port))
}

/// What a plain TCP client gets for `request`, to compare with.
fn fetch(port: u16, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(request).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    got
}

/// An HTTP response with its `Date:` line blanked: it changes by the second.
fn undated(response: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(response);
    let mut out = Vec::new();
    for line in text.split_inclusive('\n') {
        if line.starts_with("Date: ") {
            out.extend_from_slice(b"Date: -\r\n");
        } else {
            out.extend_from_slice(line.as_bytes());
        }
    }
    out
}

#[test]
fn an_http_response_is_printed_exactly_or_refused_naming_nc() {
    let dir = TestDir::new("exact-http");
    let body = b"line one\r\nline two\nlone\rcr\0nul\r\n";
    std::fs::write(dir.path().join("known.txt"), body).unwrap();
    let Some((_server, port)) = http_server(dir.path()) else {
        return;
    };
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let request = b"GET /known.txt HTTP/1.0\r\n\r\n";

    // Raw: the response, byte for byte.
    let output = connect(&[&endpoint, "-s", "echo", "-f", "raw"], request);
    assert!(output.status.success(), "{output:?}");
    let response = &output.stdout;
    assert!(response.starts_with(b"HTTP/1.0 200 OK\r\n"), "{response:?}");
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = &response[..head_end];
    assert!(
        head.windows(2).filter(|w| w[1] == b'\n').all(|w| w[0] == b'\r'),
        "a header line lost its CR: {:?}",
        String::from_utf8_lossy(head)
    );
    assert_eq!(&response[head_end + 4..], body);
    let want = fetch(port, request);
    assert_eq!(
        String::from_utf8_lossy(&undated(response)),
        String::from_utf8_lossy(&undated(&want))
    );

    // Lines (the default, and echo): no reply in lockstep, so an error
    // naming sockit nc, and nothing printed.
    for args in [&[][..], &["-s", "echo"], &["-s", "echo", "-f", "line"]] {
        let mut all = vec![endpoint.as_str(), "--timeout", "500ms"];
        all.extend(args);
        let line = one_line_failure(&connect(&all, request));
        assert!(
            line.contains(&format!(
                "for raw bytes both ways, use sockit nc 127.0.0.1 {port}"
            )),
            "{args:?}: {line:?}"
        );
    }
}

#[test]
fn an_early_close_in_raw_mode_is_an_error_naming_nc() {
    // Reads the message, answers "x" and closes: an echo would owe 4 more bytes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut message = [0; 5];
        stream.read_exact(&mut message).unwrap();
        stream.write_all(b"x").unwrap();
    });
    let output = connect(&[&format!("tcp://{addr}"), "-s", "echo", "-f", "raw"], b"hello");
    server.join().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // What came is printed as it came; the error says what did not.
    assert_eq!(output.stdout, b"x");
    assert!(
        stderr.contains("closed the connection before echoing the last 4 bytes sent")
            && stderr.contains(&format!("use sockit nc 127.0.0.1 {}", addr.port())),
        "{stderr}"
    );
}

// discard: each message once, no reply waited for -------------------------

#[test]
fn udp_discard_sends_each_line_once_and_exits_at_once() {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("udp://{}", sink.local_addr().unwrap());
    let start = Instant::now();
    let output = connect(&[&endpoint, "--service", "discard"], b"a\nb\n");
    let took = start.elapsed();
    assert_exact(&output, b"");
    assert!(
        took < Duration::from_secs(3),
        "took {took:?}, waiting for replies"
    );
    sink.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0; 64];
    while let Ok(len) = sink.recv(&mut buf) {
        got.push(buf[..len].to_vec());
    }
    assert_eq!(got, [b"a".to_vec(), b"b".to_vec()]);
}

#[test]
fn discard_gets_each_message_once_on_every_kind() {
    let dir = TestDir::new("exact-discard");
    let unix_dgram = format!("unix-dgram:{}", dir.socket("discard.sock"));
    let seqpacket = format!("seqpacket:@{}", abstract_name("exact-discard"));
    for listen in ["udp://127.0.0.1:0", unix_dgram.as_str(), seqpacket.as_str()] {
        let server = Server::start(&[listen, "--service", "discard", "-v"]);
        let start = Instant::now();
        let output = connect(&[&server.endpoints[0], "-s", "discard"], b"first\nsecond\n");
        assert_exact(&output, b"");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{listen}: took {:?}",
            start.elapsed()
        );
        wait_for_count(&server.process, r#"data="second""#, 1, WAIT);
        // Nothing sent again: give a retry the time it would have taken.
        std::thread::sleep(Duration::from_millis(300));
        for data in [r#"data="first""#, r#"data="second""#] {
            assert_eq!(
                server.process.count_log(data),
                1,
                "{listen}: {data}\n{}",
                server.log()
            );
        }
    }
}

#[test]
fn tcp_discard_in_lines_exits_at_once() {
    let server = Server::start(&[
        "tcp://127.0.0.1:0",
        "--service",
        "discard",
        "-v",
        "--framing",
        "line",
    ]);
    let start = Instant::now();
    let output = connect(
        &[&server.endpoints[0], "-s", "discard", "-f", "line"],
        b"first\nsecond\n",
    );
    assert_exact(&output, b"");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    wait_for_count(&server.process, r#"data="second""#, 1, WAIT);
    assert_eq!(server.process.count_log(r#"data="first""#), 1, "{}", server.log());
}
