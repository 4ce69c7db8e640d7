//! Graceful shutdown of `sockit serve`: SIGTERM while clients are
//! mid-conversation, the shutdown deadline, the closed listener, and a second
//! SIGTERM that stops at once.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, jam};

const GREETING: &[u8] = b"Hello, I am server\n";
const CLIENTS: usize = 100;
/// Round trips every client completes before SIGTERM is sent.
const WARM_UP: u64 = 3;

/// What one client saw: requests `0..answered` were answered, and the next
/// one met a clean close instead of its reply.
struct Conversation {
    client: usize,
    answered: u64,
}

/// Reads the reply to one request: `Some(())` when it is exactly `expected`,
/// `None` when the server closed cleanly before any byte of it. Anything else
/// (a wrong or partial reply, a reset, a timeout) fails.
fn read_reply(stream: &mut TcpStream, expected: &[u8], what: &str) -> Option<()> {
    let mut got = vec![0; expected.len()];
    let mut filled = 0;
    while filled < got.len() {
        match stream.read(&mut got[filled..]) {
            Ok(0) if filled == 0 => return None,
            Ok(0) => panic!(
                "{what}: closed after a partial reply {:?}",
                String::from_utf8_lossy(&got[..filled])
            ),
            Ok(read) => filled += read,
            Err(error) => panic!("{what}: {error} (a clean close was due)"),
        }
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected),
        "{what}"
    );
    Some(())
}

/// One client: greeting, then `c<client>-<seq>` after `c<client>-<seq>` with
/// each reply checked, saying `ready` after [`WARM_UP`] round trips, until the
/// server closes the connection.
fn converse(addr: SocketAddr, client: usize, ready: mpsc::Sender<usize>) -> Conversation {
    let mut stream = common::tcp_client(addr);
    let greeting = read_reply(&mut stream, GREETING, &format!("client {client} greeting"));
    assert!(greeting.is_some(), "client {client}: closed before the greeting");
    for seq in 0.. {
        if seq == WARM_UP {
            ready.send(client).unwrap();
        }
        let message = format!("c{client}-{seq}");
        if let Err(error) = stream.write_all(format!("{message}\n").as_bytes()) {
            panic!("client {client}: sending {message}: {error} (a clean close was due)");
        }
        let reply = format!("Hello, {message}!\n");
        if read_reply(&mut stream, reply.as_bytes(), &format!("reply to {message}")).is_none() {
            assert!(seq >= WARM_UP, "client {client}: closed during the warm-up");
            return Conversation {
                client,
                answered: seq,
            };
        }
    }
    unreachable!()
}

/// The messages the server logged as received (with `-v`), by client: the
/// `c<client>-<seq>` words of each `received` line.
fn received_by_client(log: &str) -> Vec<BTreeSet<u64>> {
    let mut received = vec![BTreeSet::new(); CLIENTS];
    for line in log.lines().filter(|line| line.contains("received")) {
        let words = line.split(|c: char| !c.is_ascii_alphanumeric() && c != '-');
        for word in words {
            let Some((client, seq)) = word.strip_prefix('c').and_then(|rest| rest.split_once('-')) else {
                continue;
            };
            if let (Ok(client), Ok(seq)) = (client.parse::<usize>(), seq.parse::<u64>()) {
                assert!(
                    received[client].insert(seq),
                    "c{client}-{seq} received twice: {line}"
                );
            }
        }
    }
    received
}

#[test]
fn sigterm_mid_conversation_answers_what_was_read_then_closes_cleanly() {
    let mut server = Server::start(&[
        "-v",
        "tcp://127.0.0.1:0",
        "--framing",
        "line",
        "--shutdown-timeout",
        "5s",
    ]);
    let addr = server.addr(0);
    let (ready, warmed_up) = mpsc::channel();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let ready = ready.clone();
            thread::spawn(move || converse(addr, client, ready))
        })
        .collect();
    drop(ready);
    let deadline = Instant::now() + Duration::from_secs(20);
    for _ in 0..CLIENTS {
        let left = deadline.saturating_duration_since(Instant::now());
        warmed_up
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("not every client warmed up ({e}); log:\n{}", server.log()));
    }

    // Every client is now sending and reading as fast as it can.
    let term = Instant::now();
    server.process.signal("TERM");
    let conversations: Vec<Conversation> = clients
        .into_iter()
        .map(|client| client.join().expect("a client failed"))
        .collect();
    let status = server.process.wait(Duration::from_secs(7));
    let elapsed = term.elapsed();

    assert!(status.success(), "exit status {status}; log:\n{}", server.log());
    assert!(
        elapsed < Duration::from_secs(6),
        "exited {elapsed:?} after SIGTERM, past the 5 s deadline"
    );
    server
        .process
        .wait_for_log("shut down cleanly", Duration::from_secs(5));
    let log = server.log();
    assert!(log.contains("SIGTERM"), "{log}");
    assert_eq!(
        server.process.count_log("shutdown timeout passed"),
        0,
        "every conversation should have ended before the deadline:\n{log}"
    );

    // Every request the server read got its reply; every other met a clean close.
    let received = received_by_client(&log);
    for conversation in &conversations {
        let Conversation { client, answered } = *conversation;
        let want: BTreeSet<u64> = (0..answered).collect();
        assert_eq!(
            received[client], want,
            "client {client}: the server read these, the client had answers to 0..{answered}"
        );
    }
}

#[test]
fn a_peer_that_never_reads_is_closed_at_the_shutdown_timeout() {
    let mut server = Server::start(&[
        "tcp://127.0.0.1:0",
        "--framing",
        "line",
        "--shutdown-timeout",
        "1s",
    ]);
    let addr = server.addr(0);
    let _jammed = jam(addr);

    let term = Instant::now();
    server.process.signal("TERM");
    let status = server.process.wait(Duration::from_secs(4));
    let elapsed = term.elapsed();

    // The connection cut still owed replies: the exit says so.
    assert_eq!(
        status.code(),
        Some(1),
        "exit status {status}; log:\n{}",
        server.log()
    );
    assert!(
        elapsed >= Duration::from_secs(1),
        "exited {elapsed:?} after SIGTERM, before the 1 s deadline"
    );
    server.process.wait_for_log(
        "shut down: 1 connection cut at the shutdown timeout (--shutdown-timeout 1s)",
        Duration::from_secs(5),
    );
    let log = server.log();
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("shutdown timeout passed"), "{log}");
    let listener = format!("1 connection to tcp://{addr} cut at the shutdown timeout (1s)");
    assert_eq!(server.process.count_log(&listener), 1, "{log}");
    assert_eq!(server.process.count_log("shut down cleanly"), 0, "{log}");
}

#[test]
fn requests_that_arrived_before_sigterm_are_answered_before_the_close() {
    let mut server = Server::start(&[
        "tcp://127.0.0.1:0",
        "--framing",
        "line",
        "--max-message",
        "16M",
        "--shutdown-timeout",
        "10s",
    ]);
    // A small receive buffer, so that the sockets between hold far less
    // than the reply to one long line.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.connect(&server.addr(0).into()).unwrap();
    let mut client = TcpStream::from(socket);
    client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(common::read_exactly(&mut client, GREETING.len()), GREETING);

    // The server reads the long line whole and owes most of its reply,
    // so it reads nothing more until the client takes it: the three
    // requests after it wait, unread, in the server's socket.
    let long = vec![b'y'; 8 << 20];
    client.write_all(&[&long[..], b"\n"].concat()).unwrap();
    assert_eq!(common::read_exactly(&mut client, 7), b"Hello, ");
    client.write_all(b"a\nb\nc\n").unwrap();
    server.process.signal("TERM");
    server
        .process
        .wait_for_log("stopped accepting", Duration::from_secs(5));

    // They are answered, after the reply owed, before the clean close.
    let rest = common::read_to_close(&mut client);
    common::assert_long_reply_then_abc(&rest, &long);
    drop(client);
    let status = server.process.wait(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}; log:\n{}", server.log());
    server
        .process
        .wait_for_log("shut down cleanly", Duration::from_secs(5));
}

#[test]
fn the_listener_closes_at_sigterm() {
    let mut server = Server::start(&[
        "tcp://127.0.0.1:0",
        "--framing",
        "line",
        "--shutdown-timeout",
        "5s",
    ]);
    let addr = server.addr(0);
    let mut client = common::tcp_client(addr);
    client.write_all(b"bob\n").unwrap();
    assert_eq!(
        common::read_exactly(&mut client, b"Hello, I am server\nHello, bob!\n".len()),
        b"Hello, I am server\nHello, bob!\n"
    );

    server.process.signal("TERM");
    server
        .process
        .wait_for_log("stopped accepting", Duration::from_secs(5));
    // Still draining: the open connection is not closed on the server's side yet.
    assert!(server.process.is_running(), "log:\n{}", server.log());
    common::assert_refused(addr, "while shutting down");

    // The open connection is closed cleanly, and the server then exits.
    assert_eq!(common::read_to_close(&mut client), b"");
    drop(client);
    let status = server.process.wait(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}; log:\n{}", server.log());
    common::assert_refused(addr, "after the exit");
}

#[test]
fn a_second_sigterm_stops_at_once() {
    let mut server = Server::start(&[
        "tcp://127.0.0.1:0",
        "--framing",
        "line",
        "--shutdown-timeout",
        "30s",
    ]);
    let _jammed = jam(server.addr(0));

    server.process.signal("TERM");
    server
        .process
        .wait_for_log("stopped accepting", Duration::from_secs(5));
    // The jammed connection holds the drain open (for up to 30 s).
    assert!(server.process.is_running(), "log:\n{}", server.log());

    let term = Instant::now();
    server.process.signal("TERM");
    let status = server.process.wait(Duration::from_secs(3));
    let elapsed = term.elapsed();

    assert_eq!(
        status.code(),
        Some(1),
        "exit status {status}; log:\n{}",
        server.log()
    );
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    server
        .process
        .wait_for_log("stopped at once", Duration::from_secs(5));
    assert_eq!(
        server.process.count_log("shut down cleanly"),
        0,
        "{}",
        server.log()
    );
}
