//! `sockit nc` over TLS, as real processes over loopback: dialling `sockit
//! serve tls://` with `--ca`, `--insecure` and `--sni`; listening on
//! `tls://` for `openssl s_client` and for `sockit nc`, every byte compared
//! both ways; a client that does not speak TLS is dropped in one line and
//! `-k` serves on. The certificates are made here, per test.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pki::Pki;
use common::{Server, TestDir, nc, noise, peer, run_with_input, run_with_timeout};

const LIMIT: Duration = Duration::from_secs(30);

/// A process being talked to: its stdin written when the test says, its
/// stdout and stderr read as they come. Killed when dropped.
struct Talking {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Talking {
    fn start(command: &mut Command) -> Talking {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
            let got = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&got);
            std::thread::spawn(move || {
                let mut buf = [0; 64 * 1024];
                while let Ok(read @ 1..) = pipe.read(&mut buf) {
                    sink.lock().unwrap().extend_from_slice(&buf[..read]);
                }
            });
            got
        }
        let stdout = collect(child.stdout.take().expect("piped"));
        let stderr = collect(child.stderr.take().expect("piped"));
        Talking {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
        }
    }

    /// Writes `bytes` to its stdin.
    fn send(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(bytes).expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Ends its stdin.
    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits until its stdout holds as many bytes as `want`, and asserts
    /// they are `want`.
    fn expect_stdout(&self, want: &[u8]) {
        let start = Instant::now();
        loop {
            let got = self.stdout.lock().unwrap().clone();
            if got.len() >= want.len() {
                assert!(
                    got == want,
                    "stdout {:?}, want {:?}; stderr {:?}",
                    String::from_utf8_lossy(&got[..got.len().min(200)]),
                    String::from_utf8_lossy(&want[..want.len().min(200)]),
                    self.stderr()
                );
                return;
            }
            assert!(
                start.elapsed() < LIMIT,
                "stdout {} bytes of {} within {LIMIT:?}; stderr {:?}",
                got.len(),
                want.len(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until its stderr holds `lines` lines; returns them.
    fn stderr_lines(&self, lines: usize) -> String {
        let start = Instant::now();
        loop {
            let said = self.stderr();
            if said.matches('\n').count() >= lines {
                return said;
            }
            assert!(
                start.elapsed() < LIMIT,
                "fewer than {lines} lines on stderr within {LIMIT:?}: {said:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for it to exit within `LIMIT`: its status, stdout and stderr.
    fn finish(mut self) -> (ExitStatus, Vec<u8>, String) {
        self.close_stdin();
        let status = common::exit_within(&mut self.child, LIMIT)
            .unwrap_or_else(|| panic!("still running after {LIMIT:?}; stderr {:?}", self.stderr()));
        // What it wrote last is read once its pipes close.
        let start = Instant::now();
        while Arc::strong_count(&self.stdout) + Arc::strong_count(&self.stderr) > 2 && start.elapsed() < LIMIT
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let stdout = self.stdout.lock().unwrap().clone();
        (status, stdout, self.stderr())
    }
}

impl Drop for Talking {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sockit nc -l -v tls://127.0.0.1:0 --cert CERT --key KEY EXTRA`, and
/// the port of its `listening on` line.
fn listen_tls(cert: &str, key: &str, extra: &[&str]) -> (Talking, u16) {
    let mut args = vec!["-l", "-v", "tls://127.0.0.1:0", "--cert", cert, "--key", key];
    args.extend_from_slice(extra);
    let listener = Talking::start(&mut nc(&args));
    let said = listener.stderr_lines(1);
    let port = said
        .strip_prefix("sockit nc: listening on tls://127.0.0.1:")
        .and_then(|rest| rest.lines().next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {said:?}"));
    (listener, port)
}

/// A run that succeeded, said nothing on stderr, and printed `want`.
fn expect_output(output: &std::process::Output, want: &[u8]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: stderr {stderr:?}", output.status);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(want),
        "stderr {stderr:?}"
    );
    assert_eq!(output.stdout, want);
    assert_eq!(stderr, "");
}

/// The one line a failed run wrote on stderr, with exit status 1.
fn one_line_error(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "stderr {stderr:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    stderr
}

/// The greet server's answer to `bob\n` with `auto` framing: the greeting
/// bare, then a line.
const GREETED_BOB: &[u8] = b"Hello, I am serverHello, bob!\n";

/// `sockit serve tls://127.0.0.1:0` with the test PKI's server certificate.
fn serve(pki: &Pki) -> Server {
    let (cert, key) = (pki.file("cert.pem"), pki.file("key.pem"));
    Server::start(&["tls://127.0.0.1:0", "--cert", &cert, "--key", &key])
}

#[test]
fn nc_converses_with_a_tls_server_it_trusts_by_ca() {
    let pki = Pki::new("nc-tls-ca");
    let server = serve(&pki);
    let port = server.addr(0).port();
    let ca = pki.file("ca.pem");
    // By name (sent as SNI) and by address (checked against the
    // certificate's IP addresses).
    for endpoint in [
        format!("tls://localhost:{port}"),
        format!("tls://127.0.0.1:{port}"),
    ] {
        let output = run_with_input(&mut nc(&[&endpoint, "--ca", &ca]), b"bob\n", LIMIT);
        expect_output(&output, GREETED_BOB);
    }

    // Another authority: refused in one line that says what to do.
    let endpoint = format!("tls://localhost:{port}");
    let output = run_with_timeout(&mut nc(&[&endpoint, "--ca", &pki.file("other-ca.pem")]), LIMIT);
    assert_eq!(
        one_line_error(&output),
        format!(
            "sockit: error: {endpoint}: certificate not trusted: it is not signed by an authority trusted here \
             (give --ca the server's certificate or its CA; or --insecure for a test)\n"
        )
    );
    assert!(server.terminate(Duration::from_secs(5)).success());
}

#[test]
fn nc_insecure_takes_a_certificate_it_does_not_trust() {
    let pki = Pki::new("nc-tls-insecure");
    let server = serve(&pki);
    let endpoint = format!("tls://localhost:{}", server.addr(0).port());
    let output = run_with_input(&mut nc(&[&endpoint, "--insecure"]), b"bob\n", LIMIT);
    expect_output(&output, GREETED_BOB);
    // --insecure and --ca do not go together.
    let output = run_with_timeout(
        &mut nc(&[&endpoint, "--insecure", "--ca", &pki.file("ca.pem")]),
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(server.terminate(Duration::from_secs(5)).success());
}

/// The first TLS record `sockit nc ARGS` sends to a TCP listener (the
/// ClientHello), which then closes.
fn client_hello(endpoint_host: &str, args: &[&str]) -> Vec<u8> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("tls://{endpoint_host}:{}", listener.local_addr().unwrap().port());
    let mut client = Talking::start(nc(&[&endpoint]).args(args));
    let (mut stream, _) = listener.accept().unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let mut header = [0; 5];
    stream.read_exact(&mut header).unwrap();
    assert_eq!(header[0], 0x16, "a handshake record: {header:?}");
    let mut record = vec![0; usize::from(u16::from_be_bytes([header[3], header[4]]))];
    stream.read_exact(&mut record).unwrap();
    drop(stream);
    client.close_stdin();
    let (status, stdout, _) = client.finish();
    assert_eq!(status.code(), Some(1));
    assert!(stdout.is_empty());
    record
}

/// The server_name extension naming `name` (RFC 6066): its type, length,
/// the list's length, host_name, the name's length, the name.
fn sni_extension(name: &str) -> Vec<u8> {
    let len = u16::try_from(name.len()).unwrap();
    [
        &[0, 0][..],
        &(len + 5).to_be_bytes(),
        &(len + 3).to_be_bytes(),
        &[0],
        &len.to_be_bytes(),
        name.as_bytes(),
    ]
    .concat()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

#[test]
fn nc_sends_the_sni_it_is_given_and_verifies_the_certificate_against_it() {
    // What is sent: the host's name, or --sni's; no address.
    let hello = client_hello("localhost", &["--insecure"]);
    assert!(contains(&hello, &sni_extension("localhost")), "{hello:?}");
    let hello = client_hello("127.0.0.1", &["--insecure", "--sni", "example.org"]);
    assert!(contains(&hello, &sni_extension("example.org")), "{hello:?}");
    assert!(!contains(&hello, b"127.0.0.1"), "{hello:?}");

    // A server whose certificate names localhost only, reached by address.
    let dir = TestDir::new("nc-tls-sni");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let (cert_file, key_file) = (cert_file.to_str().unwrap(), key_file.to_str().unwrap());
    let server = Server::start(&["tls://127.0.0.1:0", "--cert", cert_file, "--key", key_file]);
    let endpoint = format!("tls://127.0.0.1:{}", server.addr(0).port());
    let output = run_with_input(
        &mut nc(&[&endpoint, "--ca", cert_file, "--sni", "localhost"]),
        b"bob\n",
        LIMIT,
    );
    expect_output(&output, GREETED_BOB);
    let output = run_with_timeout(&mut nc(&[&endpoint, "--ca", cert_file]), LIMIT);
    assert_eq!(
        one_line_error(&output),
        format!(
            "sockit: error: {endpoint}: certificate not trusted: certificate not valid for name \"127.0.0.1\"; \
             certificate is only valid for DnsName(\"localhost\") (connect by a name the certificate is valid \
             for, or give one with --sni NAME; or --insecure for a test)\n"
        )
    );
    let output = run_with_timeout(
        &mut nc(&[&endpoint, "--ca", cert_file, "--sni", "example.org"]),
        LIMIT,
    );
    assert!(
        one_line_error(&output).contains("certificate not valid for name \"example.org\""),
        "{output:?}"
    );
    assert!(server.terminate(Duration::from_secs(5)).success());
}

#[test]
fn nc_listens_on_tls_for_openssl_s_client() {
    let Some(openssl) = peer("openssl", "the TLS listener's interoperability client") else {
        return;
    };
    let pki = Pki::new("nc-tls-s-client");
    let (mut listener, port) = listen_tls(&pki.file("cert.pem"), &pki.file("key.pem"), &[]);
    let to_listener = [&b"from s_client \x00\xff\r\n"[..], &noise(100_000, 0x2545_f491)].concat();
    let to_client = [&b"from nc -l \x00\xff\n"[..], &noise(100_000, 0x2545_f491)].concat();
    // -quiet: only the data on stdout; and it waits for the server's
    // close_notify after its stdin ends.
    let mut client = Talking::start(Command::new(openssl).args([
        "s_client",
        "-quiet",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-verify_return_error",
        "-CAfile",
        &pki.file("ca.pem"),
        "-servername",
        "localhost",
    ]));
    client.send(&to_listener);
    listener.expect_stdout(&to_listener);
    listener.send(&to_client);
    client.expect_stdout(&to_client);
    // The listener's stdin ends: it closes (close_notify), and so does s_client.
    listener.close_stdin();
    let (status, stdout, stderr) = client.finish();
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stdout, to_client);
    let (status, stdout, stderr) = listener.finish();
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stdout, to_listener);
    let mut lines = stderr.lines();
    assert_eq!(
        lines.next(),
        Some(format!("sockit nc: listening on tls://127.0.0.1:{port}").as_str())
    );
    assert!(
        lines
            .next()
            .is_some_and(|line| line.starts_with("sockit nc: connection from 127.0.0.1:")),
        "{stderr}"
    );
    assert_eq!(lines.next(), None, "{stderr}");
}

#[test]
fn nc_listens_on_tls_for_nc() {
    let pki = Pki::new("nc-tls-nc");
    let (mut listener, port) = listen_tls(&pki.file("cert.pem"), &pki.file("key.pem"), &[]);
    let to_listener = [&b"from nc \x00\xff\r\n"[..], &noise(1 << 20, 0x2545_f491)].concat();
    let to_client = b"from nc -l \x00\xff\n";
    listener.send(to_client);
    listener.close_stdin();
    // Both inputs end: each half-closes, and both finish when the other has.
    let endpoint = format!("tls://localhost:{port}");
    let output = run_with_input(
        &mut nc(&[&endpoint, "--ca", &pki.file("ca.pem")]),
        &to_listener,
        LIMIT,
    );
    expect_output(&output, to_client);
    let (status, stdout, stderr) = listener.finish();
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stdout == to_listener,
        "{} bytes of {} arrived, or others",
        stdout.len(),
        to_listener.len()
    );

    // --insecure, to a listener whose certificate nobody here trusts.
    let (mut listener, port) = listen_tls(&pki.file("cert.pem"), &pki.file("key.pem"), &[]);
    listener.send(b"hi\n");
    listener.close_stdin();
    let endpoint = format!("tls://127.0.0.1:{port}");
    let output = run_with_input(&mut nc(&[&endpoint, "--insecure"]), b"hello\n", LIMIT);
    expect_output(&output, b"hi\n");
    let (status, stdout, stderr) = listener.finish();
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stdout, b"hello\n");
}

/// What a plain TCP client sending HTTP to a TLS listener gets back: the
/// TLS alert decode_error (fatal), then the end.
fn send_plain_text(port: u16) -> Vec<u8> {
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain.set_read_timeout(Some(LIMIT)).unwrap();
    plain.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut got = Vec::new();
    plain.read_to_end(&mut got).unwrap();
    got
}

const DECODE_ERROR_ALERT: &[u8] = b"\x15\x03\x03\x00\x02\x02\x32";

#[test]
fn a_plain_tcp_client_is_dropped_in_one_line_and_keep_open_serves_the_next() {
    let pki = Pki::new("nc-tls-plain");
    let (cert, key) = (pki.file("cert.pem"), pki.file("key.pem"));

    // Without -k, the listener ends with it, in one line.
    let (listener, port) = listen_tls(&cert, &key, &[]);
    assert_eq!(send_plain_text(port), DECODE_ERROR_ALERT);
    let (status, stdout, stderr) = listener.finish();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty());
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last, "sockit: error: TLS handshake: received corrupt message of type InvalidContentType",
        "{stderr}"
    );

    // With -k, it says so and serves the next client.
    let (mut listener, port) = listen_tls(&cert, &key, &["-k"]);
    assert_eq!(send_plain_text(port), DECODE_ERROR_ALERT);
    let said = listener.stderr_lines(3);
    let lines: Vec<&str> = said.lines().collect();
    let peer = lines[1]
        .strip_prefix("sockit nc: connection from ")
        .unwrap_or_else(|| panic!("{said:?}"));
    assert_eq!(
        lines[2],
        format!("sockit nc: {peer}: TLS handshake: received corrupt message of type InvalidContentType")
    );
    let endpoint = format!("tls://localhost:{port}");
    let mut client = Talking::start(&mut nc(&[&endpoint, "--ca", &pki.file("ca.pem")]));
    client.send(b"from the client\n");
    listener.expect_stdout(b"from the client\n");
    // -k: the listener's stdin goes to everyone connected.
    listener.send(b"to everyone\n");
    client.expect_stdout(b"to everyone\n");
    client.close_stdin();
    let (status, stdout, stderr) = client.finish();
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stdout, b"to everyone\n");
    assert!(listener.child.try_wait().unwrap().is_none(), "-k listens on");
    let said = listener.stderr_lines(5);
    assert!(
        said.lines().nth(4).is_some_and(|line| line.ends_with(" closed")),
        "{said}"
    );
}

/// A `-k` listener's session ends when the client closes; over TLS it
/// must close with close_notify too, or the client (which reads until the
/// listener closes) fails on a truncated stream.
#[test]
fn a_keep_open_session_over_tls_ends_with_close_notify() {
    let pki = Pki::new("nc-tls-k-close");
    let (mut listener, port) = listen_tls(&pki.file("cert.pem"), &pki.file("key.pem"), &["-k"]);
    let endpoint = format!("tls://localhost:{port}");
    let output = run_with_input(
        &mut nc(&[&endpoint, "--ca", &pki.file("ca.pem")]),
        b"hello\n",
        LIMIT,
    );
    expect_output(&output, b"");
    listener.expect_stdout(b"hello\n");
    listener.close_stdin();
}
