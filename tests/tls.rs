//! TLS: `sockit serve tls://` answers `openssl s_client` and `sockit
//! connect` with the greet protocol unchanged; the client verifies the
//! server's certificate against `--ca` (or the system's), refuses a wrong
//! one in one clear line, and skips verification with `--insecure`; bench
//! counts replies exactly over TLS; a peer that fails its handshake stops
//! no one else. The certificates are made here, with rcgen, per test.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::pki::{Pki, connector};
use common::{Server, peer, run_with_input, run_with_timeout, sockit, stdout_of};
use rcgen::{CertificateParams, KeyPair};

const LIMIT: Duration = Duration::from_secs(30);

/// `sockit connect ENDPOINT --ca ca.pem client1 client2 client3` prints
/// the greeting and the three replies.
fn expect_greeted_clients(pki: &Pki, endpoint: &str) {
    let ca = pki.file("ca.pem");
    let output = run(&["connect", endpoint, "--ca", &ca, "client1", "client2", "client3"]);
    assert_eq!(stdout_of(&output), GREETED_CLIENTS, "{endpoint}");
}

/// `sockit serve` on `endpoints` with the server's certificate and key.
fn serve(pki: &Pki, endpoints: &[&str], extra: &[&str]) -> Server {
    let (cert, key) = (pki.file("cert.pem"), pki.file("key.pem"));
    let mut args = endpoints.to_vec();
    args.extend(["--cert", &cert, "--key", &key]);
    args.extend(extra);
    Server::start(&args)
}

/// Runs `sockit ARGS`, with stdin empty.
fn run(args: &[&str]) -> std::process::Output {
    run_with_timeout(sockit().args(args), LIMIT)
}

/// The one line a failed run wrote on stderr, checking its exit status.
fn one_line_error(output: &std::process::Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(code), "stderr {stderr:?}");
    assert!(
        output.stdout.is_empty(),
        "stdout {:?}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    stderr
}

const GREETED_CLIENTS: &str = "Hello, I am server\nHello, client1!\nHello, client2!\nHello, client3!\n";

#[test]
fn openssl_s_client_gets_the_greeting_over_tls() {
    let Some(openssl) = peer("openssl", "the TLS interoperability test's client") else {
        return;
    };
    let pki = Pki::new("tls-openssl");
    let server = serve(&pki, &["tls://127.0.0.1:0"], &[]);
    assert!(
        server.endpoints[0].starts_with("tls://127.0.0.1:"),
        "{:?}",
        server.endpoints
    );
    let addr = server.addr(0).to_string();
    // -quiet also waits for the server to close after stdin ends; it does
    // so at `exit`. -verify_return_error: an unverified server fails here.
    let output = run_with_input(
        std::process::Command::new(openssl).args([
            "s_client",
            "-connect",
            &addr,
            "-quiet",
            "-verify_return_error",
            "-CAfile",
            &pki.file("ca.pem"),
            "-servername",
            "localhost",
        ]),
        b"bob\nexit\n",
        LIMIT,
    );
    // `auto` framing: the greeting is sent bare, before the client has said
    // anything; then lines get lines (PROTOCOL.md).
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "Hello, I am serverHello, bob!\n",
        "stderr {:?}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{output:?}");
    server
        .process
        .wait_for_log("Connection from 127.0.0.1:", Duration::from_secs(5));
    assert!(server.terminate(Duration::from_secs(5)).success());
}

#[test]
fn connect_verifies_the_server_against_the_ca() {
    let pki = Pki::new("tls-connect");
    let server = serve(&pki, &["tls://127.0.0.1:0", "tls://[::1]:0"], &[]);
    let ca = pki.file("ca.pem");
    let v4 = server.addr(0).port();
    let v6 = server.addr(1).port();
    // By address (checked against the certificate's IP addresses) and by
    // name (sent as SNI, checked against its DNS names).
    for endpoint in [
        format!("tls://127.0.0.1:{v4}"),
        format!("tls://localhost:{v4}"),
        format!("tls://[::1]:{v6}"),
    ] {
        let output = run(&["connect", &endpoint, "--ca", &ca, "client1", "client2", "client3"]);
        assert_eq!(stdout_of(&output), GREETED_CLIENTS, "{endpoint}");
    }
    // Lines from stdin, `exit` included: the server closes, cleanly.
    let output = run_with_input(
        sockit().args(["connect", &format!("tls://127.0.0.1:{v4}"), "--ca", &ca]),
        b"bob\nexit\nnever\n",
        LIMIT,
    );
    assert_eq!(stdout_of(&output), "Hello, I am server\nHello, bob!\n");
    assert!(server.terminate(Duration::from_secs(5)).success());
}

#[test]
fn a_wrong_certificate_is_refused_in_one_clear_line() {
    let pki = Pki::new("tls-refuse");
    let server = serve(&pki, &["tls://127.0.0.1:0"], &[]);
    let endpoint = format!("tls://127.0.0.1:{}", server.addr(0).port());

    let output = run(&["connect", &endpoint, "--ca", &pki.file("other-ca.pem"), "client1"]);
    assert_eq!(
        one_line_error(&output, 1),
        format!(
            "sockit: error: {endpoint}: certificate not trusted: it is not signed by an authority trusted \
             here (give --ca the server's certificate or its CA; or --insecure for a test)\n"
        )
    );
    // The right authority, the wrong name.
    let output = run(&[
        "connect",
        &endpoint,
        "--ca",
        &pki.file("ca.pem"),
        "--sni",
        "example.com",
        "x",
    ]);
    // The names between are as webpki writes them (`IpAddress(0::1)`).
    let line = one_line_error(&output, 1);
    assert!(
        line.starts_with(&format!(
            "sockit: error: {endpoint}: certificate not trusted: certificate not valid for name \"example.com\"; \
             certificate is only valid for DnsName(\"localhost\"), IpAddress(127.0.0.1) or IpAddress("
        )) && line.ends_with(
            ") (connect by a name the certificate is valid for, or give one with --sni NAME; or --insecure for \
             a test)\n"
        ),
        "{line}"
    );
    // bench refuses the same way, before any load.
    let output = run(&[
        "bench",
        &endpoint,
        "--ca",
        &pki.file("other-ca.pem"),
        "-c",
        "2",
        "-n",
        "10",
    ]);
    assert_eq!(
        one_line_error(&output, 1),
        format!(
            "sockit: error: {endpoint}: certificate not trusted: it is not signed by an authority trusted \
             here (give --ca the server's certificate or its CA; or --insecure for a test)\n"
        )
    );
    // The server logged each failed handshake, and serves on.
    server
        .process
        .wait_for_log("TLS handshake failed", Duration::from_secs(5));
    let output = run(&["connect", &endpoint, "--ca", &pki.file("ca.pem"), "client1"]);
    assert_eq!(stdout_of(&output), "Hello, I am server\nHello, client1!\n");
    assert!(server.terminate(Duration::from_secs(5)).success());
}

/// `openssl req -x509 -newkey rsa:2048 -nodes -keyout KEY -out CERT -days 1
/// -subj /CN=localhost` in `dir`: a self-signed certificate that says it
/// is a CA's (basicConstraints CA:TRUE) and names localhost in its subject
/// only (no subjectAltName). `None` when openssl is missing.
fn openssl_self_signed(dir: &common::TestDir, cert: &str, key: &str) -> Option<(String, String)> {
    let openssl = peer("openssl", "makes the self-signed certificate as its users do")?;
    let (cert, key) = (dir.path().join(cert), dir.path().join(key));
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let output = run_with_timeout(
        std::process::Command::new(openssl).args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ]),
        LIMIT,
    );
    assert!(output.status.success(), "{output:?}");
    Some((cert.to_owned(), key.to_owned()))
}

/// The server's own certificate given with --ca is trusted though it says
/// it is a CA's, as curl and `openssl s_client -CAfile` trust it: by
/// connect, nc and bench; still for the names it has only, and not when
/// another such certificate is given.
#[test]
fn the_servers_own_ca_certificate_given_with_ca_is_trusted() {
    let dir = common::TestDir::new("tls-own-ca-cert");
    let Some((cert, key)) = openssl_self_signed(&dir, "c.pem", "k.pem") else {
        return;
    };
    let (other, _) = openssl_self_signed(&dir, "other.pem", "other-key.pem").unwrap();
    let server = Server::start(&["tls://127.0.0.1:0", "--cert", &cert, "--key", &key]);
    let port = server.addr(0).port();
    let by_name = format!("tls://localhost:{port}");
    let by_address = format!("tls://127.0.0.1:{port}");

    let output = run(&[
        "connect", &by_name, "--ca", &cert, "client1", "client2", "client3",
    ]);
    assert_eq!(stdout_of(&output), GREETED_CLIENTS);
    let output = run_with_input(sockit().args(["nc", &by_name, "--ca", &cert]), b"bob\n", LIMIT);
    assert_eq!(stdout_of(&output), "Hello, I am serverHello, bob!\n");
    let report = bench_json(&[&by_name, "--ca", &cert, "-n", "20", "-c", "2"]);
    assert_eq!(report["replies"], 20, "{report}");
    assert_eq!(report["errors"]["total"], 0, "{report}");
    // Among other certificates in the file.
    let bundle = dir.path().join("bundle.pem");
    let pems = [
        std::fs::read_to_string(&other).unwrap(),
        std::fs::read_to_string(&cert).unwrap(),
    ];
    std::fs::write(&bundle, pems.concat()).unwrap();
    let output = run(&["connect", &by_name, "--ca", bundle.to_str().unwrap(), "client1"]);
    assert_eq!(stdout_of(&output), "Hello, I am server\nHello, client1!\n");

    // Another such certificate: refused, in one line that says what to do.
    let refused = "certificate not trusted: it is a CA's certificate (basicConstraints CA:TRUE), and not one \
                   trusted here (give --ca the server's certificate or its CA; or --insecure for a test)\n";
    let output = run(&["connect", &by_name, "--ca", &other, "client1"]);
    assert_eq!(
        one_line_error(&output, 1),
        format!("sockit: error: {by_name}: {refused}")
    );
    let output = run_with_timeout(sockit().args(["nc", &by_name, "--ca", &other]), LIMIT);
    assert_eq!(
        one_line_error(&output, 1),
        format!("sockit: error: {by_name}: {refused}")
    );
    let output = run(&["bench", &by_name, "--ca", &other, "-n", "10"]);
    assert_eq!(
        one_line_error(&output, 1),
        format!("sockit: error: {by_name}: {refused}")
    );

    // The certificate names localhost, not 127.0.0.1: refused, unless asked
    // for as localhost (--sni) or not verified (--insecure).
    let output = run(&["connect", &by_address, "--ca", &cert, "client1"]);
    assert_eq!(
        one_line_error(&output, 1),
        format!(
            "sockit: error: {by_address}: certificate not trusted: certificate not valid for name \"127.0.0.1\"; \
             certificate is only valid for CommonName(\"localhost\") (connect by a name the certificate is \
             valid for, or give one with --sni NAME; or --insecure for a test)\n"
        )
    );
    let output = run(&[
        "connect",
        &by_address,
        "--ca",
        &cert,
        "--sni",
        "example.com",
        "client1",
    ]);
    assert!(
        one_line_error(&output, 1).contains("certificate not valid for name \"example.com\""),
        "{output:?}"
    );
    let output = run(&[
        "connect",
        &by_address,
        "--ca",
        &cert,
        "--sni",
        "localhost",
        "client1",
    ]);
    assert_eq!(stdout_of(&output), "Hello, I am server\nHello, client1!\n");
    let output = run(&["connect", &by_address, "--insecure", "client1"]);
    assert_eq!(stdout_of(&output), "Hello, I am server\nHello, client1!\n");
    assert!(server.terminate(Duration::from_secs(5)).success());
}

/// A real chain still needs its CA: the server's CA certificate given
/// with --ca does not make the CA's certificate, presented by a server,
/// a server's for any name; and the leaf is verified as before.
#[test]
fn a_chain_is_verified_as_before_beside_the_pinned_certificate() {
    let pki = Pki::new("tls-chain-pinned");
    // The server presents the CA's own certificate, with the CA's key.
    let dir = common::TestDir::new("tls-chain-pinned-ca");
    let ca = common::pki::make_ca("sockit test CA");
    let (ca_cert, ca_key) = (dir.path().join("ca.pem"), dir.path().join("ca-key.pem"));
    std::fs::write(&ca_cert, ca.pem()).unwrap();
    std::fs::write(&ca_key, ca.key().serialize_pem()).unwrap();
    let (ca_cert, ca_key) = (ca_cert.to_str().unwrap(), ca_key.to_str().unwrap());
    let server = Server::start(&["tls://127.0.0.1:0", "--cert", ca_cert, "--key", ca_key]);
    let endpoint = format!("tls://localhost:{}", server.addr(0).port());
    // It names nothing: trusted as itself, it is still for no server name.
    let output = run(&["connect", &endpoint, "--ca", ca_cert, "client1"]);
    assert_eq!(
        one_line_error(&output, 1),
        format!(
            "sockit: error: {endpoint}: certificate not trusted: certificate not valid for name \"localhost\"; \
             certificate is only valid for CommonName(\"sockit test CA\") (connect by a name the certificate is \
             valid for, or give one with --sni NAME; or --insecure for a test)\n"
        )
    );
    // Another CA's, not given: refused as a CA's.
    let output = run(&["connect", &endpoint, "--ca", &pki.file("ca.pem"), "client1"]);
    assert!(
        one_line_error(&output, 1)
            .contains("it is a CA's certificate (basicConstraints CA:TRUE), and not one trusted here"),
        "{output:?}"
    );
    assert!(server.terminate(Duration::from_secs(5)).success());
    // A leaf signed by the CA given: trusted by name and address; by another CA: not.
    let server = serve(&pki, &["tls://127.0.0.1:0"], &[]);
    expect_greeted_clients(&pki, &format!("tls://localhost:{}", server.addr(0).port()));
    expect_greeted_clients(&pki, &server.endpoints[0]);
    let output = run(&[
        "connect",
        &server.endpoints[0],
        "--ca",
        &pki.file("other-ca.pem"),
        "client1",
    ]);
    assert!(
        one_line_error(&output, 1).contains("it is not signed by an authority trusted here"),
        "{output:?}"
    );
    assert!(server.terminate(Duration::from_secs(5)).success());
}

#[test]
fn insecure_skips_verification() {
    let pki = Pki::new("tls-insecure");
    // A self-signed certificate, trusted by nobody.
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(pki.path("cert.pem"), cert.pem()).unwrap();
    std::fs::write(pki.path("key.pem"), key.serialize_pem()).unwrap();
    let server = serve(&pki, &["tls://127.0.0.1:0"], &[]);
    let endpoint = format!("tls://127.0.0.1:{}", server.addr(0).port());
    let output = run(&[
        "connect",
        &endpoint,
        "--insecure",
        "client1",
        "client2",
        "client3",
    ]);
    assert_eq!(stdout_of(&output), GREETED_CLIENTS);
    let output = run(&["connect", &endpoint, "--ca", &pki.file("ca.pem"), "client1"]);
    assert!(
        one_line_error(&output, 1).contains("certificate not trusted"),
        "{output:?}"
    );
    assert!(server.terminate(Duration::from_secs(5)).success());
}

#[test]
fn a_peer_that_fails_its_handshake_stops_no_one_else() {
    let pki = Pki::new("tls-garbage");
    // Two permits: a silent peer holds one while it may still shake hands.
    let server = serve(&pki, &["tls://127.0.0.1:0"], &["--max-connections", "2"]);
    let addr = server.addr(0);
    let endpoint = format!("tls://{addr}");
    let _silent = common::tcp_client(addr);
    for _ in 0..3 {
        // Not TLS at all: the server answers with an alert at most, and
        // closes, giving its permit back.
        let mut garbage = common::tcp_client(addr);
        garbage.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        match garbage.read_to_end(&mut answer) {
            // Closed, or reset for bytes it closed without reading: closed either way.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("the server did not close a peer that is not TLS: {e}"),
        }
        assert!(!answer.windows(5).any(|w| w == b"Hello"), "{answer:?}");
    }
    let output = run(&["connect", &endpoint, "--ca", &pki.file("ca.pem"), "client1"]);
    assert_eq!(stdout_of(&output), "Hello, I am server\nHello, client1!\n");
    common::wait_for_count(&server.process, "TLS handshake failed", 3, Duration::from_secs(5));
    assert_eq!(
        server.process.count_log("TLS handshake failed"),
        3,
        "{}",
        server.log()
    );
    assert!(server.terminate(Duration::from_secs(5)).success());
}

#[test]
fn alpn_is_offered_and_chosen() {
    let pki = Pki::new("tls-alpn");
    let server = serve(&pki, &["tls://127.0.0.1:0"], &["--alpn", "greet"]);
    let endpoint = format!("tls://127.0.0.1:{}", server.addr(0).port());
    let ca = pki.file("ca.pem");
    // Offered among others, chosen; not offered at all, served anyway.
    for alpn in [&["--alpn", "h2", "--alpn", "greet"][..], &[]] {
        let mut args = vec!["connect", &endpoint, "--ca", &ca, "-v", "client1"];
        args.extend_from_slice(alpn);
        let output = run(&args);
        assert_eq!(
            stdout_of(&output),
            "Hello, I am server\nHello, client1!\n",
            "{alpn:?}"
        );
        let chose = String::from_utf8_lossy(&output.stderr)
            .contains("the server chose an application protocol alpn=\"greet\"");
        assert_eq!(chose, !alpn.is_empty(), "{alpn:?}: {output:?}");
    }
    // Only others offered: refused in the handshake.
    let output = run(&["connect", &endpoint, "--ca", &ca, "--alpn", "h2", "client1"]);
    assert_eq!(
        one_line_error(&output, 1),
        format!("sockit: error: cannot connect to {endpoint}: received fatal alert: NoApplicationProtocol\n")
    );
    assert!(server.terminate(Duration::from_secs(5)).success());
}

#[test]
fn a_config_file_listener_serves_tls() {
    let pki = Pki::new("tls-config");
    let config = pki.path("sockit.toml");
    std::fs::write(
        &config,
        format!(
            "[[listener]]\nendpoint = \"tls://127.0.0.1:0\"\ncert = {:?}\nkey = {:?}\nalpn = [\"greet\"]\n",
            pki.file("cert.pem"),
            pki.file("key.pem")
        ),
    )
    .unwrap();
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let endpoint = &server.endpoints[0];
    assert!(endpoint.starts_with("tls://127.0.0.1:"), "{endpoint}");
    expect_greeted_clients(&pki, endpoint);
    assert!(server.terminate(Duration::from_secs(5)).success());
}

#[test]
fn a_server_that_never_shakes_hands_times_out_the_client() {
    // Accepts (the kernel does, into the backlog), and says nothing.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("tls://{}", silent.local_addr().unwrap());
    let started = std::time::Instant::now();
    let output = run(&["connect", &endpoint, "--insecure", "--timeout", "300ms", "x"]);
    assert_eq!(
        one_line_error(&output, 1),
        format!("sockit: error: cannot connect to {endpoint}: the TLS handshake timed out\n")
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// The metrics text served on `addr`, fetched with a plain HTTP/1.1 request.
fn metrics_text(addr: std::net::SocketAddr) -> String {
    common::http(addr, "GET", "/metrics", Duration::from_secs(5)).2
}

#[test]
fn metrics_count_tls_connections_and_failed_handshakes() {
    let pki = Pki::new("tls-metrics");
    let server = serve(&pki, &["tls://127.0.0.1:0"], &["--metrics=127.0.0.1:0"]);
    let metrics = server.metrics_addr();
    let endpoint = &server.endpoints[0];
    expect_greeted_clients(&pki, endpoint);
    let mut garbage = common::tcp_client(server.addr(0));
    garbage.write_all(b"not TLS\r\n").unwrap();
    let _ = garbage.read_to_end(&mut Vec::new());

    // Bytes are counted inside TLS: 3 requests of 7, the greeting (18) and 3 replies of 15.
    let label = format!("listener=\"{endpoint}\"");
    let want = [
        format!("sockit_connections_total{{{label}}} 2"),
        format!("sockit_connections_open{{{label}}} 0"),
        format!("sockit_messages_received_total{{{label}}} 3"),
        format!("sockit_replies_sent_total{{{label}}} 3"),
        format!("sockit_bytes_received_total{{{label}}} 21"),
        format!("sockit_bytes_sent_total{{{label}}} {}", 18 + 3 * 15),
        format!("sockit_reply_latency_seconds_count{{{label}}} 3"),
        format!("sockit_errors_total{{{label},kind=\"tls_handshake\"}} 1"),
    ];
    // The last connection's counts land just after its log line: wait for them.
    let started = std::time::Instant::now();
    let body = loop {
        let body = metrics_text(metrics);
        if want.iter().all(|line| body.lines().any(|l| l == line))
            || started.elapsed() > Duration::from_secs(5)
        {
            break body;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    for line in &want {
        assert!(body.lines().any(|l| l == line), "no line {line:?} in:\n{body}");
    }
    assert_eq!(body.matches("sockit_errors_total{").count(), 1, "{body}");
    assert!(server.terminate(Duration::from_secs(5)).success());
}

#[test]
fn relay_refuses_a_tls_listener_without_its_certificate_in_one_line() {
    let output = run(&["relay", "tls://127.0.0.1:0", "tcp://127.0.0.1:1"]);
    assert_eq!(
        one_line_error(&output, 2),
        "sockit: error: cannot relay tls://127.0.0.1:0 to tcp://127.0.0.1:1: a tls:// listening side needs \
         a certificate and its key (--cert, --key) (see 'sockit relay --help')\n"
    );
}

/// Runs `sockit bench ARGS --json` and returns its report.
fn bench_json(args: &[&str]) -> serde_json::Value {
    let output = run_with_timeout(sockit().arg("bench").args(args).arg("--json"), LIMIT);
    let stdout = stdout_of(&output);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout:?}"))
}

#[test]
fn bench_counts_replies_exactly_over_tls() {
    let pki = Pki::new("tls-bench");
    let server = serve(&pki, &["tls://127.0.0.1:0"], &[]);
    let endpoint = format!("tls://127.0.0.1:{}", server.addr(0).port());
    let ca = pki.file("ca.pem");
    // 64-byte requests, bare then in lines with 8 in flight; greet answers
    // "Hello, M!" (72 bytes). Bytes are counted inside TLS.
    for (extra, request, reply) in [(&[][..], 64, 72), (&["--framing", "line", "-p", "8"][..], 65, 73)] {
        let mut args = vec![endpoint.as_str(), "--ca", &ca, "-n", "2000", "-c", "4"];
        args.extend_from_slice(extra);
        let report = bench_json(&args);
        let what = format!("{args:?}: {report}");
        assert_eq!(report["requests"], 2000, "{what}");
        assert_eq!(report["replies"], 2000, "{what}");
        assert_eq!(report["errors"]["total"], 0, "{what}");
        assert_eq!(report["connected"], 4, "{what}");
        assert_eq!(report["bytes_sent"], 2000 * request, "{what}");
        assert_eq!(report["bytes_received"], 2000 * reply, "{what}");
    }
    // For a duration: every request sent got its reply.
    let report = bench_json(&[&endpoint, "--ca", &ca, "-d", "300ms", "--warmup", "0s", "-c", "2"]);
    let requests = report["requests"].as_u64().unwrap();
    assert!(requests > 0, "{report}");
    assert_eq!(report["replies"].as_u64(), Some(requests), "{report}");
    assert_eq!(report["errors"]["total"], 0, "{report}");
    assert!(server.terminate(Duration::from_secs(5)).success());
}

#[test]
fn tls_flags_are_checked_in_one_line() {
    let pki = Pki::new("tls-flags");
    let (cert, key) = (pki.file("cert.pem"), pki.file("key.pem"));
    let usage = |args: &[&str]| one_line_error(&run(args), 2);
    assert_eq!(
        usage(&["serve", "tls://127.0.0.1:0"]),
        "sockit: error: a tls:// endpoint needs --cert FILE and --key FILE (see 'sockit serve --help')\n"
    );
    assert_eq!(
        usage(&["serve", "tls://127.0.0.1:0", "--cert", &cert]),
        "sockit: error: --cert needs --key, the certificate's private key (see 'sockit serve --help')\n"
    );
    assert_eq!(
        usage(&["serve", "tcp://127.0.0.1:0", "--cert", &cert, "--key", &key]),
        "sockit: error: --cert and --key are for tls:// endpoints, and none is given (see 'sockit serve --help')\n"
    );
    // Files that are not what they should be: named, with what is wrong.
    let failed = |args: &[&str]| one_line_error(&run(args), 1);
    assert_eq!(
        failed(&["serve", "tls://127.0.0.1:0", "--cert", &key, "--key", &key]),
        format!("sockit: error: --cert {key}: no certificate found (expected a PEM file)\n")
    );
    assert_eq!(
        failed(&["serve", "tls://127.0.0.1:0", "--cert", &cert, "--key", &cert]),
        format!("sockit: error: --key {cert}: no private key found (expected a PEM file)\n")
    );
    let other_key = pki.path("other-key.pem");
    std::fs::write(&other_key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let other_key = other_key.to_str().unwrap();
    assert_eq!(
        failed(&["serve", "tls://127.0.0.1:0", "--cert", &cert, "--key", other_key]),
        format!("sockit: error: --key {other_key}: not the key of the certificate in {cert}\n")
    );
    assert_eq!(
        usage(&["serve", "tcp://127.0.0.1:0", "--alpn", "greet"]),
        "sockit: error: --alpn is for tls:// endpoints, and none is given (see 'sockit serve --help')\n"
    );
    assert_eq!(
        failed(&["connect", "tls://127.0.0.1:1", "--ca", &key, "x"]),
        format!("sockit: error: --ca {key}: no certificate found (expected a PEM file)\n")
    );
}

/// The library: `Server::tls` serves Greet over TLS to a tokio-rustls
/// client, with the stream protocol's bytes unchanged: a message too long
/// gets its error reply, then the connection ends with close_notify.
#[tokio::test]
async fn the_library_serves_greet_over_tls() {
    use sockit::{Endpoint, Framing, Greet, Server as SockitServer, StreamClient};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let pki = Pki::new("tls-library");
    let config = sockit::net::tls::server_config(&pki.path("cert.pem"), &pki.path("key.pem")).unwrap();
    let endpoint: Endpoint = "tls://127.0.0.1:0".parse().unwrap();

    // Without a certificate, a tls:// endpoint is not bound.
    let unbound = SockitServer::new(Greet).bind(&endpoint).await.unwrap_err();
    assert_eq!(
        format!("{unbound}: {}", std::error::Error::source(&unbound).unwrap()),
        "cannot listen on tls://127.0.0.1:0: no certificate and key to serve TLS with (Server::tls)"
    );

    let listener = SockitServer::new(Greet)
        .framing(Framing::Line)
        .max_message(8)
        .tls(config)
        .bind(&endpoint)
        .await
        .unwrap();
    let local = listener.local_endpoint().clone();
    assert!(local.to_string().starts_with("tls://127.0.0.1:"), "{local}");
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = tokio::spawn(listener.serve(stop.clone().cancelled_owned()));

    // A client of tokio-rustls' own.
    let connector = connector(&pki, &[]);
    let addr = local.host_port().unwrap().socket_addr().unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(b"bob\n").await.unwrap();
    let mut got = vec![0; b"Hello, I am server\nHello, bob!\n".len()];
    tls.read_exact(&mut got).await.unwrap();
    assert_eq!(got, b"Hello, I am server\nHello, bob!\n");
    tls.write_all(b"much too long\nnever\n").await.unwrap();
    let mut rest = Vec::new();
    // A clean end: close_notify, not a bare end of stream (which
    // tokio-rustls reports as an error).
    tls.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b"ERR message too long\n");

    // StreamClient with the same trust, by name.
    let client_tls = sockit::net::tls::ClientTls::new(Some(&pki.path("ca.pem")), false).unwrap();
    let by_name: Endpoint = format!("tls://localhost:{}", addr.port()).parse().unwrap();
    let options = sockit::net::SocketOptions::default();
    let mut client = StreamClient::connect_tls(&by_name, Framing::Line, LIMIT, &options, &client_tls)
        .await
        .unwrap();
    assert_eq!(client.receive().await.unwrap().unwrap(), "Hello, I am server");
    client.send(b"alice").await.unwrap();
    assert_eq!(client.receive().await.unwrap().unwrap(), "Hello, alice!");
    // Shutdown closes it cleanly too.
    stop.cancel();
    assert_eq!(client.receive().await.unwrap(), None);
    serving.await.unwrap().unwrap();
}

/// Binds Greet on `tls://127.0.0.1:0` with `setup` applied, and serves it
/// until the token is cancelled.
async fn serve_greet(
    pki: &Pki,
    setup: impl FnOnce(sockit::Server<sockit::Greet>) -> sockit::Server<sockit::Greet>,
) -> (std::net::SocketAddr, tokio_util::sync::CancellationToken) {
    let config = sockit::net::tls::server_config(&pki.path("cert.pem"), &pki.path("key.pem")).unwrap();
    let server = setup(sockit::Server::new(sockit::Greet).tls(config));
    common::serve_in_background(&server, "tls://127.0.0.1:0").await
}

#[tokio::test(start_paused = true)]
async fn a_silent_peer_is_closed_at_the_handshake_timeout() {
    use tokio::io::AsyncReadExt;
    let pki = Pki::new("tls-silent");
    let (addr, _stop) = serve_greet(&pki, |server| server).await;
    let start = tokio::time::Instant::now();
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut got = Vec::new();
    silent.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"");
    assert_eq!(
        start.elapsed().as_secs(),
        sockit::net::tls::HANDSHAKE_TIMEOUT.as_secs()
    );
}

#[tokio::test]
async fn the_idle_timeout_closes_a_tls_connection_with_close_notify() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = Pki::new("tls-idle");
    let idle = Duration::from_millis(300);
    let (addr, _stop) = serve_greet(&pki, |server| server.idle_timeout(idle)).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector(&pki, &[]).connect(name, tcp).await.unwrap();
    tls.write_all(b"bob\n").await.unwrap();
    let start = std::time::Instant::now();
    let mut got = Vec::new();
    // read_to_end fails on an end without close_notify.
    tokio::time::timeout(LIMIT, tls.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"Hello, I am serverHello, bob!\n");
    assert!(
        start.elapsed() >= idle - Duration::from_millis(50),
        "{:?}",
        start.elapsed()
    );
}

/// Requests that arrived, unread, before the drain began are answered
/// over TLS too, before the close_notify: the server was writing a long
/// reply the client had not taken, so it read nothing meanwhile.
#[tokio::test]
async fn requests_that_arrived_before_the_drain_are_answered_over_tls() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = Pki::new("tls-drain");
    let (addr, stop) = serve_greet(&pki, |server| {
        server
            .framing(sockit::Framing::Line)
            .max_message(16 << 20)
            .shutdown_timeout(LIMIT)
    })
    .await;
    // A small receive buffer, so that the sockets between hold far less
    // than the reply to one long line.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector(&pki, &[]).connect(name, tcp).await.unwrap();
    let mut greeting = vec![0; b"Hello, I am server\n".len()];
    tls.read_exact(&mut greeting).await.unwrap();
    let long = vec![b'y'; 8 << 20];
    tls.write_all(&[&long[..], b"\n"].concat()).await.unwrap();
    let mut start = [0; 7];
    tls.read_exact(&mut start).await.unwrap();
    assert_eq!(&start, b"Hello, ");
    tls.write_all(b"a\nb\nc\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    let mut rest = Vec::new();
    // read_to_end fails on an end without close_notify.
    tokio::time::timeout(LIMIT, tls.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    common::assert_long_reply_then_abc(&rest, &long);
}

/// SIGHUP reads the certificate and key files again (no config file
/// needed): new connections get the renewed certificate, and one that
/// cannot be read leaves the one in use.
#[test]
fn sighup_reads_the_certificate_again() {
    let pki = Pki::new("tls-renew");
    let renewed = Pki::new("tls-renewed");
    let server = serve(&pki, &["tls://127.0.0.1:0"], &[]);
    let endpoint = server.endpoints[0].clone();
    expect_greeted_clients(&pki, &endpoint);

    // The files now hold a certificate from another authority.
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(renewed.path(file), pki.path(file)).unwrap();
    }
    server.process.signal("HUP");
    server
        .process
        .wait_for_log("SIGHUP: certificate read again from", LIMIT);
    expect_greeted_clients(&renewed, &endpoint);
    let old = run(&["connect", &endpoint, "--ca", &pki.file("ca.pem"), "client1"]);
    assert!(
        one_line_error(&old, 1).contains("certificate not trusted"),
        "{old:?}"
    );

    // A broken file: logged, and the renewed certificate stays in use.
    std::fs::write(pki.path("cert.pem"), "not a certificate").unwrap();
    server.process.signal("HUP");
    server.process.wait_for_log("the certificate in use stays", LIMIT);
    expect_greeted_clients(&renewed, &endpoint);
    assert!(server.terminate(Duration::from_secs(5)).success());
}

#[test]
fn a_peer_that_says_nothing_is_closed_at_the_handshake_timeout() {
    let pki = Pki::new("tls-handshake-timeout");
    let server = serve(&pki, &["tls://127.0.0.1:0"], &["--tls-handshake-timeout", "1s"]);
    let mut silent = std::net::TcpStream::connect(server.addr(0)).expect("connect");
    silent.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let start = std::time::Instant::now();
    let read = silent.read(&mut [0; 16]);
    let waited = start.elapsed();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        (Duration::from_millis(800)..Duration::from_secs(5)).contains(&waited),
        "closed after {waited:?}"
    );
    server
        .process
        .wait_for_log("TLS handshake failed: not done within 1s", LIMIT);
    // A client that does its handshake is served as ever.
    expect_greeted_clients(&pki, &server.endpoints[0]);
}
