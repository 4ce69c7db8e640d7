//! `sockit serve --metrics`: after a known load on TCP, UDP, a Unix socket
//! and a seqpacket socket, the Prometheus endpoint shows the exact counts.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, UdpSocket};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use common::{
    Server, TestDir, read_exactly, read_to_close, run_with_timeout, sockit, tcp_client, wait_for_count,
};

/// The greeting in `auto` framing, before the peer's framing is known.
const GREETING: &[u8] = b"Hello, I am server";
/// The longest message the server under test takes.
const MAX_MESSAGE: usize = 16;

/// Sends each line of `messages` and reads its reply before the next, so
/// that every read of the server's holds one message; then closes.
/// Returns the bytes sent and received.
fn converse(stream: &mut (impl Read + Write), messages: &[String]) -> (usize, usize) {
    assert_eq!(read_exactly(stream, GREETING.len()), GREETING);
    let (mut sent, mut received) = (0, GREETING.len());
    for message in messages {
        stream.write_all(format!("{message}\n").as_bytes()).unwrap();
        let reply = format!("Hello, {message}!\n");
        assert_eq!(read_exactly(stream, reply.len()), reply.as_bytes());
        sent += message.len() + 1;
        received += reply.len();
    }
    (sent, received)
}

/// One HTTP/1.1 request with a plain client: the status line, the headers
/// (lowercased names) and the body.
fn http(addr: SocketAddr, method: &str, path: &str) -> (String, Vec<(String, String)>, String) {
    common::http(addr, method, path, Duration::from_secs(10))
}

/// Asserts that every line of `text` is a comment or `name{labels} value`.
fn assert_parses(text: &str) {
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        assert!(value.parse::<f64>().is_ok(), "not a number: {line:?}");
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "not a metric name: {line:?}"
        );
        if let Some(labels) = series.strip_prefix(name).filter(|rest| !rest.is_empty()) {
            let labels = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("labels not in braces: {line:?}"));
            for label in labels.split("\",") {
                let (key, value) = label
                    .split_once("=\"")
                    .unwrap_or_else(|| panic!("bad label: {line:?}"));
                assert!(
                    key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{line:?}"
                );
                assert!(!value.contains('"') || value.ends_with('"'), "{line:?}");
            }
        }
    }
}

#[test]
fn the_endpoint_shows_the_exact_counts_of_a_known_load() {
    let dir = TestDir::new("metrics");
    let unix = dir.socket("greet.sock");
    let packets = dir.socket("packets.sock");
    let max_message = MAX_MESSAGE.to_string();
    let server = Server::start(&[
        "tcp://127.0.0.1:0",
        "udp://127.0.0.1:0",
        &format!("unix:{unix}"),
        &format!("seqpacket:{packets}"),
        "--metrics=127.0.0.1:0",
        "--max-message",
        &max_message,
    ]);
    let metrics = server.metrics_addr();
    let url = format!("http://{metrics}/metrics");
    let (tcp, udp) = (server.addr(0), server.addr(1));

    // TCP: three connections of five messages each...
    let (mut tcp_in, mut tcp_out) = (0, 0);
    for client in 0..3 {
        let messages: Vec<String> = (0..5).map(|n| format!("c{client}m{n}")).collect();
        let mut stream = tcp_client(tcp);
        let (sent, received) = converse(&mut stream, &messages);
        stream.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_close(&mut stream), b"");
        tcp_in += sent;
        tcp_out += received;
    }
    // ...and one whose message is too long: one read of it all, an error, closed.
    let mut stream = tcp_client(tcp);
    let too_long = format!("{}\n", "x".repeat(MAX_MESSAGE + 1));
    stream.write_all(too_long.as_bytes()).unwrap();
    let refused = read_to_close(&mut stream);
    assert_eq!(refused, b"Hello, I am serverERR message too long\n");
    drop(stream);
    tcp_in += too_long.len();
    tcp_out += refused.len();

    // UDP: four datagrams answered one at a time, and one too long, dropped.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (mut udp_in, mut udp_out) = (0, 0);
    for n in 0..4 {
        let message = format!("u{n}");
        socket.send_to(message.as_bytes(), udp).unwrap();
        let mut reply = [0; 64];
        let (len, _) = socket.recv_from(&mut reply).unwrap();
        assert_eq!(&reply[..len], format!("Hello, {message}").as_bytes());
        udp_in += message.len();
        udp_out += len;
    }
    let long_datagram = vec![b'y'; MAX_MESSAGE + 1];
    socket.send_to(&long_datagram, udp).unwrap();
    udp_in += long_datagram.len();

    // Unix: one connection of two messages.
    let mut stream = UnixStream::connect(&unix).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (unix_in, unix_out) = converse(&mut stream, &["n0".to_owned(), "n1".to_owned()]);
    stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut stream), b"");

    // Seqpacket: one connection, one packet answered, one too long.
    let socket = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
    socket.connect(&SockAddr::unix(&packets).unwrap()).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut packet = [0; 64];
    let mut receive = || {
        let len = (&socket).read(&mut packet).unwrap();
        packet[..len].to_vec()
    };
    assert_eq!(receive(), GREETING);
    socket.send(b"p0").unwrap();
    assert_eq!(receive(), b"Hello, p0!");
    socket.send(&[b'z'; MAX_MESSAGE + 1]).unwrap();
    assert_eq!(receive(), b"ERR message too long");
    assert_eq!(receive(), b"");
    drop(socket);

    // Every connection closed on the server's side (counted before it says
    // so), and the long datagram counted: after every earlier datagram was.
    wait_for_count(&server.process, "closed.", 6, Duration::from_secs(10));
    let udp_label = format!("listener=\"udp://{udp}\"");
    let long_counted = format!("sockit_errors_total{{{udp_label},kind=\"message_too_long\"}} 1");
    let start = std::time::Instant::now();
    let (status, headers, body) = loop {
        let (status, headers, body) = http(metrics, "GET", "/metrics");
        if body.lines().any(|line| line == long_counted) || start.elapsed() > Duration::from_secs(5) {
            break (status, headers, body);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(
        headers.contains(&(
            "content-type".to_owned(),
            "text/plain; version=0.0.4; charset=utf-8".to_owned()
        )),
        "{headers:?}"
    );
    assert_parses(&body);
    let tcp_label = format!("listener=\"tcp://{tcp}\"");
    let unix_label = format!("listener=\"unix:{unix}\"");
    let packets_label = format!("listener=\"seqpacket:{packets}\"");
    let want = [
        "# TYPE sockit_connections_total counter".to_owned(),
        format!("sockit_connections_total{{{tcp_label}}} 4"),
        format!("sockit_connections_open{{{tcp_label}}} 0"),
        format!("sockit_messages_received_total{{{tcp_label}}} 15"),
        format!("sockit_replies_sent_total{{{tcp_label}}} 15"),
        format!("sockit_bytes_received_total{{{tcp_label}}} {tcp_in}"),
        format!("sockit_bytes_sent_total{{{tcp_label}}} {tcp_out}"),
        format!("sockit_errors_total{{{tcp_label},kind=\"message_too_long\"}} 1"),
        // One observation per read that was answered: fifteen messages, one error.
        format!("sockit_reply_latency_seconds_count{{{tcp_label}}} 16"),
        format!("sockit_reply_latency_seconds_bucket{{le=\"+Inf\",{tcp_label}}} 16"),
        format!("sockit_messages_received_total{{{udp_label}}} 5"),
        format!("sockit_replies_sent_total{{{udp_label}}} 4"),
        format!("sockit_bytes_received_total{{{udp_label}}} {udp_in}"),
        format!("sockit_bytes_sent_total{{{udp_label}}} {udp_out}"),
        long_counted,
        format!("sockit_reply_latency_seconds_count{{{udp_label}}} 4"),
        format!("sockit_connections_total{{{unix_label}}} 1"),
        format!("sockit_connections_open{{{unix_label}}} 0"),
        format!("sockit_messages_received_total{{{unix_label}}} 2"),
        format!("sockit_bytes_received_total{{{unix_label}}} {unix_in}"),
        format!("sockit_bytes_sent_total{{{unix_label}}} {unix_out}"),
        format!("sockit_reply_latency_seconds_count{{{unix_label}}} 2"),
        format!("sockit_connections_total{{{packets_label}}} 1"),
        format!("sockit_connections_open{{{packets_label}}} 0"),
        format!("sockit_messages_received_total{{{packets_label}}} 1"),
        format!("sockit_replies_sent_total{{{packets_label}}} 1"),
        format!(
            "sockit_bytes_received_total{{{packets_label}}} {}",
            2 + MAX_MESSAGE + 1
        ),
        format!("sockit_bytes_sent_total{{{packets_label}}} {}", 18 + 10 + 20),
        format!("sockit_errors_total{{{packets_label},kind=\"message_too_long\"}} 1"),
        format!("sockit_reply_latency_seconds_count{{{packets_label}}} 1"),
    ];
    for line in &want {
        assert!(body.lines().any(|l| l == line), "no line {line:?} in:\n{body}");
    }
    // As exact as that: byte counts worked out from the payloads, not read back.
    assert_eq!(
        (tcp_in, tcp_out, udp_in, udp_out),
        (3 * 5 * 5 + 18, 3 * (18 + 5 * 13) + 18 + 21, 4 * 2 + 17, 4 * 9)
    );
    // Datagram listeners have no connections; no error a load did not cause.
    assert!(
        !body.contains(&format!("sockit_connections_total{{{udp_label}}}")),
        "{body}"
    );
    assert_eq!(body.matches("sockit_errors_total{").count(), 3, "{body}");
    assert!(!body.contains("# EOF"), "{body}");

    // OpenMetrics, for a scraper that asks for it.
    let mut stream = tcp_client(metrics);
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {metrics}\r\nAccept: application/openmetrics-text;version=1.0.0\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let openmetrics = String::from_utf8(read_to_close(&mut stream)).unwrap();
    assert!(
        openmetrics.contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"),
        "{openmetrics}"
    );
    assert!(
        openmetrics.contains("# TYPE sockit_connections counter\n"),
        "{openmetrics}"
    );
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");

    // Anything else: 404, 405.
    let (status, _, _) = http(metrics, "GET", "/");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, headers, _) = http(metrics, "POST", "/metrics");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert!(
        headers.contains(&("allow".to_owned(), "GET, HEAD".to_owned())),
        "{headers:?}"
    );

    // curl, as a user would, sees the same text.
    if let Some(curl) = common::peer("curl", "the metrics fetched as a user would") {
        let output = run_with_timeout(
            std::process::Command::new(curl).args(["-s", "-f", &url]),
            Duration::from_secs(10),
        );
        assert!(output.status.success(), "curl {url}: {output:?}");
        assert_eq!(String::from_utf8_lossy(&output.stdout), body);
    }

    let status = server.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_metrics_address_in_use_fails_before_serving() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let output = run_with_timeout(
        sockit().args(["serve", "tcp://127.0.0.1:0", "--metrics", &addr.to_string()]),
        Duration::from_secs(10),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot serve the metrics on {addr} (--metrics)")),
        "{stderr}"
    );
    assert!(!stderr.contains("listening on"), "{stderr}");
    drop(taken);
}

#[tokio::test]
async fn a_library_server_counts_into_the_callers_registry() {
    use prometheus_client::registry::Registry;
    use sockit::metrics::Metrics;
    use sockit::{Endpoint, Greet, Server};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let metrics = Metrics::new();
    let endpoint: Endpoint = "tcp://127.0.0.1:0".parse().unwrap();
    let listener = Server::new(Greet)
        .metrics(&metrics)
        .bind(&endpoint)
        .await
        .unwrap();
    let local = listener.local_endpoint().to_string();
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = tokio::spawn(listener.serve(stop.clone().cancelled_owned()));

    let mut client = tokio::net::TcpStream::connect(local.strip_prefix("tcp://").unwrap())
        .await
        .unwrap();
    client.write_all(b"lib\n").await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"Hello, I am serverHello, lib!\n");
    stop.cancel();
    serving.await.unwrap().unwrap();

    // Embedded in a registry of the caller's, beside its own metrics.
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        format!("sockit_connections_total{{listener=\"{local}\"}} 1"),
        format!("sockit_connections_open{{listener=\"{local}\"}} 0"),
        format!("sockit_messages_received_total{{listener=\"{local}\"}} 1"),
        format!("sockit_bytes_received_total{{listener=\"{local}\"}} 4"),
        format!("sockit_bytes_sent_total{{listener=\"{local}\"}} {}", 18 + 12),
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
    }
    assert_eq!(text, metrics.encode());
}
