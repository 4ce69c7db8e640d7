//! The connection limit: past `--max-connections`, new peers wait in the
//! backlog, unserved, until a connection closes (`--when-full wait`, the
//! default), or are closed at once (`--when-full refuse`).

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{Server, read_exactly, read_to_close, tcp_client};

const GREETING: &[u8] = b"Hello, I am server\n";

#[test]
fn a_peer_past_the_limit_waits_until_a_connection_closes() {
    a_peer_past_the_limit_waits(&[]);
}

#[test]
fn when_full_wait_is_the_default() {
    a_peer_past_the_limit_waits(&["--when-full", "wait"]);
}

fn a_peer_past_the_limit_waits(when_full: &[&str]) {
    let args = [
        &["tcp://127.0.0.1:0", "--framing", "line", "--max-connections", "2"][..],
        when_full,
    ]
    .concat();
    let server = Server::start(&args);
    let addr = server.addr(0);
    let mut first = tcp_client(addr);
    let mut second = tcp_client(addr);
    assert_eq!(read_exactly(&mut first, GREETING.len()), GREETING);
    assert_eq!(read_exactly(&mut second, GREETING.len()), GREETING);

    // The kernel completes the handshake, but sockit does not accept it yet.
    let mut third = tcp_client(addr);
    third.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut byte = [0; 1];
    let waiting = third.read(&mut byte).expect_err("no greeting while at the limit");
    assert!(
        matches!(
            waiting.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{waiting:?}"
    );
    common::wait_for_count(
        &server.process,
        "Accept new connection",
        2,
        Duration::from_secs(10),
    );
    assert_eq!(
        server.process.count_log("Accept new connection"),
        2,
        "{}",
        server.log()
    );

    // The two served peers are still served normally.
    second.write_all(b"still here\n").unwrap();
    assert_eq!(read_exactly(&mut second, 19), b"Hello, still here!\n");

    first.write_all(b"exit\n").unwrap();
    assert_eq!(read_to_close(&mut first), b"");
    drop(first);
    third.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(read_exactly(&mut third, GREETING.len()), GREETING);
    third.write_all(b"third\n").unwrap();
    assert_eq!(read_exactly(&mut third, 14), b"Hello, third!\n");
    // The log is read by another thread: wait for the line rather than race it.
    common::wait_for_count(
        &server.process,
        "Accept new connection",
        3,
        Duration::from_secs(10),
    );
    assert_eq!(server.process.count_log("Accept new connection"), 3);
}

#[test]
fn when_full_refuse_closes_a_peer_past_the_limit_at_once() {
    let server = Server::start(&[
        "tcp://127.0.0.1:0",
        "--framing",
        "line",
        "--max-connections",
        "2",
        "--when-full",
        "refuse",
    ]);
    let addr = server.addr(0);
    let mut first = tcp_client(addr);
    let mut second = tcp_client(addr);
    assert_eq!(read_exactly(&mut first, GREETING.len()), GREETING);
    assert_eq!(read_exactly(&mut second, GREETING.len()), GREETING);

    // Closed before the greeting, without a word.
    for _ in 0..3 {
        let mut refused = tcp_client(addr);
        assert_eq!(read_to_close(&mut refused), b"");
    }
    let line = server
        .process
        .wait_for_log("at the connection limit", Duration::from_secs(10));
    assert!(line.contains("refused=1"), "{line}");
    // Logged once a second at most, not once a peer.
    assert_eq!(server.process.count_log("at the connection limit"), 1);

    // The two served peers are still served normally.
    second.write_all(b"still here\n").unwrap();
    assert_eq!(read_exactly(&mut second, 19), b"Hello, still here!\n");

    // Once a connection closes, a new peer is served.
    first.write_all(b"exit\n").unwrap();
    assert_eq!(read_to_close(&mut first), b"");
    drop(first);
    let start = std::time::Instant::now();
    let mut fourth = loop {
        // The permit comes back as the connection's task ends, a moment
        // after the peer sees the close.
        let mut peer = tcp_client(addr);
        let mut greeting = vec![0; GREETING.len()];
        match peer.read_exact(&mut greeting) {
            Ok(()) => {
                assert_eq!(greeting, GREETING);
                break peer;
            }
            Err(error) => assert!(
                start.elapsed() < Duration::from_secs(10),
                "still refused: {error}"
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    fourth.write_all(b"fourth\n").unwrap();
    assert_eq!(read_exactly(&mut fourth, 15), b"Hello, fourth!\n");
}
