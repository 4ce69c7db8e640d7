//! `sockit relay` with sides that are not plain sockets, end to end with
//! real processes: stdin and stdout (`-`) on either side, a program on
//! either side (`exec:CMD`, `sh:CMD`), TLS terminated on the listening side
//! and originated to the target; faults through them; the combinations that
//! cannot be relayed refused in one line.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::pki::Pki;
use common::{
    Running, Server, TestDir, expect, read_to_close, run_with_input, sockit, stdout_of, tcp_client,
};

/// How long any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(10);

/// `sockit relay LISTEN TARGET ARGS…`, started, and the address it listens
/// on (from its `relaying tcp://… -> …` line).
fn relay(listen: &str, target: &str, args: &[&str]) -> (Running, SocketAddr) {
    let process = Running::start(sockit().args(["relay", listen, target]).args(args));
    let line = process.wait_for_log("relaying ", WAIT);
    let endpoint = line
        .split("relaying ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the relaying line");
    let (_, addr) = endpoint.split_once("://").expect("a network endpoint");
    (process, addr.parse().expect("a socket address"))
}

/// The greeting server on TCP, port chosen by the system.
fn greeter() -> Server {
    Server::start(&["tcp://127.0.0.1:0"])
}

#[test]
fn stdin_and_stdout_to_a_server() {
    let server = greeter();
    let out = run_with_input(
        sockit().args(["relay", "-", &server.endpoints[0]]),
        b"bob\nexit\n",
        WAIT,
    );
    assert_eq!(stdout_of(&out), "Hello, I am serverHello, bob!\n");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("relay stopped: connections=1 "), "{log}");
    assert!(log.contains(" to_target.bytes_out=9 "), "{log}");
}

#[test]
fn a_program_per_client_with_faults_on_the_way() {
    let (mut relay, addr) = relay("tcp://127.0.0.1:0", "exec:cat", &["--slice", "3", "--seed", "1"]);
    let clients: Vec<_> = (0..3)
        .map(|n| {
            std::thread::spawn(move || {
                let mut client = tcp_client(addr);
                let sent: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + n) as u8).collect();
                client.write_all(&sent).unwrap();
                client.shutdown(Shutdown::Write).unwrap();
                assert_eq!(read_to_close(&mut client), sent, "client {n}");
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    relay.signal("TERM");
    assert!(relay.wait(WAIT).success(), "{}", relay.log());
    let summary = relay.wait_for_log("relay stopped: ", WAIT);
    assert!(summary.contains(" connections=3 "), "{summary}");
    assert!(summary.contains(" to_target.bytes_out=30000 "), "{summary}");
    // Pieces of at most 3 bytes: at least 10,000 writes for each client's 10,000 bytes.
    let forwarded: u64 = summary
        .split(" to_target.forwarded=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("to_target.forwarded");
    assert!(forwarded >= 10_000, "{summary}");
}

#[test]
fn a_program_that_reads_to_the_end_answers_after_it() {
    let (_relay, addr) = relay("tcp://127.0.0.1:0", "sh:wc -c | tr -d ' '", &[]);
    let mut client = tcp_client(addr);
    client.write_all(&[0u8; 1000]).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut client), b"1000\n");
}

#[test]
fn a_program_as_the_client_of_a_server() {
    let server = greeter();
    let dir = TestDir::new("relay-program-client");
    let heard = dir.path().join("heard");
    let program = format!("sh:printf 'bob\\nexit\\n'; cat > {}", heard.display());
    let out = run_with_input(
        sockit().args(["relay", &program, &server.endpoints[0]]),
        b"",
        WAIT,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&heard).unwrap(), b"Hello, I am serverHello, bob!\n");
}

#[test]
fn listening_for_one_client_on_stdin_and_stdout() {
    let mut child = sockit()
        .args(["relay", "tcp://127.0.0.1:0", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let addr: SocketAddr = loop {
        let mut line = String::new();
        assert_ne!(
            std::io::BufRead::read_line(&mut stderr, &mut line).unwrap(),
            0,
            "no relaying line"
        );
        if let Some(rest) = line.split("relaying tcp://").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    let mut client = tcp_client(addr);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"from stdin\n").unwrap();
    drop(stdin);
    expect(&mut client, b"from stdin\n");
    client.write_all(b"to stdout\0\xff").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut client), b"");
    let mut stdout = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut stdout).unwrap();
    assert_eq!(stdout, b"to stdout\0\xff");
    // It took one client, and ends with it.
    let status = common::exit_within(&mut child, WAIT).expect("the relay did not end after its one client");
    assert!(status.success());
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no second client is taken"
    );
}

#[test]
fn tls_terminated_in_front_of_a_plain_server() {
    let pki = Pki::new("relay-tls-listen");
    let server = greeter();
    let (_relay, addr) = relay(
        "tls://127.0.0.1:0",
        &server.endpoints[0],
        &["--cert", &pki.file("cert.pem"), "--key", &pki.file("key.pem")],
    );
    let out = run_with_input(
        sockit().args([
            "connect",
            &format!("tls://localhost:{}", addr.port()),
            "--ca",
            &pki.file("ca.pem"),
            "bob",
            "alice",
        ]),
        b"",
        WAIT,
    );
    assert_eq!(
        stdout_of(&out),
        "Hello, I am server\nHello, bob!\nHello, alice!\n"
    );
    // A plain client speaking no TLS is closed, and the relay goes on.
    let mut plain = tcp_client(addr);
    plain.write_all(b"bob\n").unwrap();
    let _ = read_to_close(&mut plain);
    let again = run_with_input(
        sockit().args([
            "connect",
            &format!("tls://localhost:{}", addr.port()),
            "--ca",
            &pki.file("ca.pem"),
            "x",
        ]),
        b"",
        WAIT,
    );
    assert_eq!(stdout_of(&again), "Hello, I am server\nHello, x!\n");
}

#[test]
fn tls_originated_to_a_tls_server() {
    let pki = Pki::new("relay-tls-target");
    let server = Server::start(&[
        "tls://127.0.0.1:0",
        "--cert",
        &pki.file("cert.pem"),
        "--key",
        &pki.file("key.pem"),
    ]);
    let target = format!("tls://localhost:{}", server.addr(0).port());
    let (_relay, addr) = relay("tcp://127.0.0.1:0", &target, &["--ca", &pki.file("ca.pem")]);
    let mut client = tcp_client(addr);
    client.write_all(b"bob\nexit\n").unwrap();
    assert_eq!(read_to_close(&mut client), b"Hello, I am serverHello, bob!\n");

    // A target whose certificate is not trusted: the client is closed, and the log says why.
    let (untrusting, addr) = relay("tcp://127.0.0.1:0", &target, &["--ca", &pki.file("other-ca.pem")]);
    let mut client = tcp_client(addr);
    let _ = client.write_all(b"bob\n");
    let mut buf = [0; 64];
    assert!(matches!(client.read(&mut buf), Ok(0) | Err(_)), "nothing relayed");
    let line = untrusting.wait_for_log("cannot reach the target", WAIT);
    assert!(line.contains("certificate not trusted"), "{line}");
    // And what to do about it, as the command line says it.
    assert!(
        line.contains("give --ca the server's certificate or its CA; or --insecure for a test"),
        "{line}"
    );
}

#[test]
fn what_cannot_be_relayed_is_refused_in_one_line() {
    for (listen, target, want) in [
        (
            "-",
            "-",
            "cannot relay - to -: stdin and stdout cannot be relayed to themselves",
        ),
        (
            "udp://127.0.0.1:0",
            "exec:cat",
            "cannot relay udp://127.0.0.1:0 to exec:cat: stdin and stdout, and programs, are streams: \
             relay them to stream endpoints (tcp, tls, unix); for datagrams, use sockit nc -u",
        ),
        (
            "tls://127.0.0.1:0",
            "exec:cat",
            "cannot relay tls://127.0.0.1:0 to exec:cat: a tls:// listening side needs a certificate \
             and its key (--cert, --key)",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sockit"))
            .args(["relay", listen, target])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{listen} {target}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("sockit: error: {want} (see 'sockit relay --help')\n"),
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_sockit"))
        .args(["relay", "tcp://127.0.0.1:0", "exec:"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"exec:\" names no program: write exec:CMD (CMD split on spaces) or sh:CMD"),
        "{stderr}"
    );
}
