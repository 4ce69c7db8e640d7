//! The connection limit: past `--max-connections`, new peers wait in the
//! backlog, unserved, until a connection closes.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{Server, read_exactly, read_to_close, tcp_client};

const GREETING: &[u8] = b"Hello, I am server\n";

#[test]
fn a_peer_past_the_limit_waits_until_a_connection_closes() {
    let server = Server::start(&["tcp://127.0.0.1:0", "--framing", "line", "--max-connections", "2"]);
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
