//! `sockit serve --metrics`: the health and readiness probes (`/healthz`,
//! `/readyz`) through a drain, and an endpoint that clients sending half a
//! request cannot blind.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Server, jam, run_with_timeout};

/// What a scraper or a probe waits for an answer, at most.
const PROMPT: Duration = Duration::from_secs(2);

/// One HTTP/1.1 request, answered within [`PROMPT`]: the status line, the
/// headers (lowercased names) and the body.
fn http(addr: SocketAddr, method: &str, path: &str) -> (String, Vec<(String, String)>, String) {
    common::http(addr, method, path, PROMPT)
}

/// The value of header `name`.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, value)| value.as_str())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

#[test]
fn readyz_answers_503_from_the_start_of_the_drain_and_healthz_200_throughout() {
    let mut server = Server::start(&[
        "tcp://127.0.0.1:0",
        "--framing",
        "line",
        "--shutdown-timeout",
        "30s",
        "--metrics=127.0.0.1:0",
    ]);
    let metrics = server.metrics_addr();

    let (status, headers, body) = http(metrics, "GET", "/healthz");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "ok\n"));
    assert_eq!(header(&headers, "content-type"), "text/plain; charset=utf-8");
    let (status, _, body) = http(metrics, "GET", "/readyz");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "ready\n"));
    // HEAD: the same status and length, no body.
    let (status, headers, body) = http(metrics, "HEAD", "/readyz");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", ""));
    assert_eq!(header(&headers, "content-length"), "6");
    // Another method is refused, another path not found, as for /metrics.
    let (status, headers, _) = http(metrics, "POST", "/readyz");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(header(&headers, "allow"), "GET, HEAD");
    let (status, _, body) = http(metrics, "GET", "/ready");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    assert_eq!(
        body,
        "not found: the metrics are at /metrics, the probes at /healthz and /readyz\n"
    );

    // A connection that holds the drain open (for up to 30 s).
    let jammed = jam(server.addr(0));
    server.process.signal("TERM");
    server
        .process
        .wait_for_log("stopped accepting", Duration::from_secs(5));
    assert!(server.process.is_running(), "log:\n{}", server.log());

    let (status, headers, body) = http(metrics, "GET", "/readyz");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 503 Service Unavailable", "draining\n")
    );
    assert_eq!(header(&headers, "content-type"), "text/plain; charset=utf-8");
    let (status, _, body) = http(metrics, "GET", "/healthz");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "ok\n"));
    // Still scraped while it drains: the jammed connection is open.
    let (status, _, body) = http(metrics, "GET", "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let open = format!(
        "sockit_connections_open{{listener=\"tcp://{}\"}} 1",
        server.addr(0)
    );
    assert!(body.lines().any(|line| line == open), "no {open:?} in:\n{body}");

    // The drain ends with the last connection, and so does the endpoint.
    drop(jammed);
    let status = server.process.wait(Duration::from_secs(10));
    assert!(status.success(), "exit status {status}; log:\n{}", server.log());
    common::assert_refused(metrics, "after the exit: the endpoint outlived the process");
}

/// Regression (issue 16): the endpoint served 16 connections at a time and
/// gave each 5 s for its headers, so about 200 clients that sent half a
/// request made every scrape with a 10 s timeout fail.
#[test]
fn clients_that_send_half_a_request_cannot_keep_a_scrape_or_a_probe_out() {
    let server = Server::start_under(
        &["env", "RUST_LOG=info,sockit::metrics=debug"],
        &["tcp://127.0.0.1:0", "--metrics=127.0.0.1:0"],
    );
    let metrics = server.metrics_addr();
    let listener = format!("listener=\"tcp://{}\"", server.addr(0));

    let opening = Instant::now();
    let half_sent: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut stream = TcpStream::connect(metrics).expect("connect");
            stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
            stream
        })
        .collect();
    let opened_in = opening.elapsed();

    let scrape = Instant::now();
    let (status, _, body) = http(metrics, "GET", "/metrics");
    let scraped_in = scrape.elapsed();
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let counted = format!("sockit_connections_total{{{listener}}} 0");
    assert!(
        body.lines().any(|line| line == counted),
        "no {counted:?} in:\n{body}"
    );
    let (status, _, body) = http(metrics, "GET", "/readyz");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "ready\n"));
    let (status, _, body) = http(metrics, "GET", "/healthz");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "ok\n"));
    // Answered at once, not once the half requests' 2 s for headers ran out.
    assert!(scraped_in < Duration::from_secs(1), "scraped in {scraped_in:?}");

    // The latest half requests still wait for the rest...
    let mut byte = [0; 1];
    let mut latest = &half_sent[299];
    latest.set_nonblocking(true).unwrap();
    let still_open = latest.read(&mut byte).expect_err("closed too");
    assert_eq!(
        still_open.kind(),
        ErrorKind::WouldBlock,
        "{still_open} (the 300 opened in {opened_in:?})"
    );
    // ...room was made by closing the first (256 are served at once: the
    // 300 and the scrape made 45 too many; the probes up to 2 more).
    let mut oldest = &half_sent[0];
    oldest.set_read_timeout(Some(PROMPT)).unwrap();
    assert_eq!(oldest.read(&mut byte).expect("a close, not a timeout"), 0);
    let evicted = "metrics endpoint: connection closed for a newer one (all 256 taken)";
    common::wait_for_count(&server.process, evicted, 45, Duration::from_secs(5));
    let count = server.process.count_log(evicted);
    assert!(count <= 47, "{count} closed to make room; log:\n{}", server.log());

    // curl, as a user would, with a deadline.
    if let Some(curl) = common::peer("curl", "the probes fetched as a user would") {
        for (path, want) in [("/readyz", "ready\n"), ("/healthz", "ok\n")] {
            let url = format!("http://{metrics}{path}");
            let output = run_with_timeout(
                std::process::Command::new(&curl).args(["-s", "-f", "--max-time", "2", &url]),
                Duration::from_secs(10),
            );
            assert!(output.status.success(), "curl {url}: {output:?}");
            assert_eq!(String::from_utf8_lossy(&output.stdout), want);
        }
    }
    drop(half_sent);
    let status = server.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}
