//! Connection timeouts, end to end: `--idle-timeout` closes connections with
//! no traffic (and peers that stop reading), `--read-timeout` closes a peer
//! trickling one message (slowloris); real clients are served meanwhile,
//! and with both off (the default) nothing is closed.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use common::{Server, TestDir, read_exactly, read_to_close, tcp_client};

const GREETING: &[u8] = b"Hello, I am server\n";

/// Talks to `addr` every `every` until `done`, asserting each exact reply;
/// returns how many it was answered.
fn talk_until(
    addr: std::net::SocketAddr,
    every: Duration,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut client = tcp_client(addr);
        assert_eq!(read_exactly(&mut client, GREETING.len()), GREETING);
        let mut answered = 0;
        while !done.load(Ordering::Relaxed) {
            let message = format!("ping {answered}\n");
            client.write_all(message.as_bytes()).unwrap();
            let reply = format!("Hello, ping {answered}!\n");
            assert_eq!(read_exactly(&mut client, reply.len()), reply.as_bytes());
            answered += 1;
            std::thread::sleep(every);
        }
        answered
    })
}

#[test]
fn a_thousand_silent_connections_are_closed_at_the_idle_timeout() {
    let server = Server::start(&["tcp://127.0.0.1:0", "--framing", "line", "--idle-timeout", "1s"]);
    let addr = server.addr(0);
    let done = Arc::new(AtomicBool::new(false));
    let talker = talk_until(addr, Duration::from_millis(200), Arc::clone(&done));

    let start = Instant::now();
    let mut silent: Vec<(TcpStream, Instant)> = (0..1000)
        .map(|_| {
            let connected = Instant::now();
            (tcp_client(addr), connected)
        })
        .collect();
    for (client, connected) in &mut silent {
        let mut got = Vec::new();
        client.read_to_end(&mut got).expect("closed cleanly");
        assert_eq!(got, GREETING);
        // Not before the timeout: it counts from the accept, after the connect.
        let lived = connected.elapsed();
        assert!(lived >= Duration::from_millis(950), "closed after {lived:?}");
    }
    let all_closed = start.elapsed();
    assert!(
        all_closed < Duration::from_secs(8),
        "the last closed after {all_closed:?}"
    );

    // The talker, idle never longer than 200 ms, was served throughout.
    done.store(true, Ordering::Relaxed);
    let answered = talker.join().expect("the talker got every reply");
    assert!(answered >= 5, "answered {answered}");
    common::wait_for_count(
        &server.process,
        "closing the connection: idle for 1s",
        1000,
        Duration::from_secs(10),
    );
    assert_eq!(
        server.process.count_log("closing the connection: idle for 1s"),
        1000
    );
}

#[test]
fn a_message_trickling_in_is_cut_off_at_the_read_timeout() {
    let server = Server::start(&["tcp://127.0.0.1:0", "--framing", "line", "--read-timeout", "1s"]);
    let addr = server.addr(0);

    // Whole messages, slowly: each arrives in one piece, and is answered.
    let slow_but_whole = std::thread::spawn(move || {
        let mut client = tcp_client(addr);
        assert_eq!(read_exactly(&mut client, GREETING.len()), GREETING);
        for n in 0..5 {
            std::thread::sleep(Duration::from_millis(700));
            client.write_all(format!("line {n}\n").as_bytes()).unwrap();
            let reply = format!("Hello, line {n}!\n");
            assert_eq!(read_exactly(&mut client, reply.len()), reply.as_bytes());
        }
    });

    // One message, a byte at a time: never answered, closed at ~1 s.
    let mut slowloris = tcp_client(addr);
    assert_eq!(read_exactly(&mut slowloris, GREETING.len()), GREETING);
    slowloris.write_all(b"bob").unwrap();
    let started = Instant::now();
    let mut trickle = slowloris.try_clone().unwrap();
    let closed = Arc::new(AtomicBool::new(false));
    let trickling = {
        let closed = Arc::clone(&closed);
        std::thread::spawn(move || {
            while !closed.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(300));
                if trickle.write_all(b"b").is_err() {
                    break;
                }
            }
        })
    };
    assert_eq!(read_to_close(&mut slowloris), b"");
    let took = started.elapsed();
    closed.store(true, Ordering::Relaxed);
    trickling.join().unwrap();
    assert!(took >= Duration::from_millis(950), "closed after {took:?}");
    assert!(took < Duration::from_secs(6), "closed after {took:?}");
    server
        .process
        .wait_for_log("a message took longer than 1s to arrive", Duration::from_secs(10));

    slow_but_whole.join().expect("the slow client got every reply");
    assert_eq!(server.process.count_log("a message took longer than"), 1);
}

#[test]
fn a_peer_that_never_reads_is_closed_at_the_idle_timeout() {
    let server = Server::start(&["tcp://127.0.0.1:0", "--framing", "line", "--idle-timeout", "2s"]);
    let mut client = tcp_client(server.addr(0));
    client
        .set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // Requests until the server, owed replies the client does not take,
    // stops reading and the client's writes block (a write cut short, or
    // one that takes nothing); then nothing more, so that the server's
    // draining after the close does not keep the client writing.
    let chunk = b"x\n".repeat(32 * 1024);
    let mut sent = 0;
    loop {
        match client.write(&chunk) {
            Ok(written) if written == chunk.len() => sent += written,
            Ok(written) => {
                sent += written;
                break;
            }
            Err(error) => {
                assert!(
                    matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    "{error:?}"
                );
                break;
            }
        }
        assert!(sent < 1 << 30, "the server kept reading");
    }
    let blocked = Instant::now();
    server
        .process
        .wait_for_log("closing the connection: idle for 2s", Duration::from_secs(10));
    // No write progress for the 2 s: its writes blocked a moment after the server's.
    let waited = blocked.elapsed();
    assert!(waited >= Duration::from_millis(1500), "closed after {waited:?}");

    // What it got: the greeting and a prefix of the replies owed, exact,
    // then the end of the stream; far from all of them.
    let got = read_to_close(&mut client);
    assert!(got.starts_with(GREETING));
    let replies = &got[GREETING.len()..];
    let reply = b"Hello, x!\n";
    // The last reply may be cut: the socket took only part of it.
    assert!(
        replies.chunks(reply.len()).all(|r| reply.starts_with(r)),
        "{} bytes of replies, not all of them {reply:?}",
        replies.len()
    );
    let requests = sent / 2;
    assert!(replies.len() / reply.len() < requests, "every reply came");
}

fn idle_connections_are_served_afterwards(flags: &[&str]) {
    let args = [&["tcp://127.0.0.1:0", "--framing", "line"][..], flags].concat();
    let server = Server::start(&args);
    let mut client = tcp_client(server.addr(0));
    assert_eq!(read_exactly(&mut client, GREETING.len()), GREETING);
    client.write_all(b"bo").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    client.write_all(b"b\n").unwrap();
    assert_eq!(read_exactly(&mut client, 12), b"Hello, bob!\n");
    std::thread::sleep(Duration::from_secs(2));
    client.write_all(b"still\n").unwrap();
    assert_eq!(read_exactly(&mut client, 14), b"Hello, still!\n");
    assert_eq!(server.process.count_log("closing the connection"), 0);
}

#[test]
fn timeouts_are_off_by_default() {
    idle_connections_are_served_afterwards(&[]);
}

#[test]
fn timeouts_of_zero_are_off() {
    idle_connections_are_served_afterwards(&["--idle-timeout", "0", "--read-timeout", "0"]);
}

#[test]
fn an_idle_seqpacket_connection_is_closed() {
    let dir = TestDir::new("timeouts-seqpacket");
    let path = dir.socket("s.sock");
    let server = Server::start(&[&format!("seqpacket:{path}"), "--idle-timeout", "1s"]);
    let socket = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
    socket.connect(&SockAddr::unix(&path).unwrap()).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = vec![0; 1024];
    let len = (&socket).read(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"Hello, I am server");
    // Traffic keeps it open past the timeout.
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(socket.send(b"bob").unwrap(), 3);
        let len = (&socket).read(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"Hello, bob!");
    }
    let quiet = Instant::now();
    let len = (&socket).read(&mut buf).unwrap();
    assert_eq!(len, 0, "end of stream");
    let took = quiet.elapsed();
    assert!(took >= Duration::from_millis(950), "closed after {took:?}");
    assert!(took < Duration::from_secs(6), "closed after {took:?}");
    server
        .process
        .wait_for_log("closing the connection: idle for 1s", Duration::from_secs(10));
}

/// The line `sockit serve` logs for a listener other hosts can reach.
fn exposed_line(server: &Server, applied: &str) -> String {
    let endpoint = &server.endpoints[0];
    format!(
        "{endpoint} can be reached from other hosts: {applied} apply, as for any listener not on \
         loopback (set them to change this, 0 turns one off)"
    )
}

#[test]
fn a_listener_other_hosts_can_reach_gets_protective_timeouts_unless_set() {
    let server = Server::start(&["tcp://0.0.0.0:0"]);
    let want = exposed_line(&server, "--idle-timeout 5m and --read-timeout 30s");
    assert_eq!(
        server.process.count_log(&want),
        1,
        "{want:?} in the log:\n{}",
        server.log()
    );

    // A timeout given keeps its value (here 1 s, which cuts a trickle off),
    // and only the other takes its default.
    let server = Server::start(&["tcp://0.0.0.0:0", "--read-timeout", "1s", "--framing", "line"]);
    let want = exposed_line(&server, "--idle-timeout 5m");
    assert_eq!(server.process.count_log(&want), 1, "{}", server.log());
    let mut client = tcp_client(format!("127.0.0.1:{}", server.addr(0).port()).parse().unwrap());
    assert_eq!(read_exactly(&mut client, GREETING.len()), GREETING);
    client.write_all(b"slow").unwrap();
    let start = Instant::now();
    assert_eq!(read_to_close(&mut client), b"");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "cut off after {:?}",
        start.elapsed()
    );

    // Both given (0 is off): nothing to say.
    let server = Server::start(&["tcp://0.0.0.0:0", "--read-timeout", "0", "--idle-timeout", "0"]);
    assert_eq!(server.process.count_log("can be reached from other hosts"), 0);
}

#[test]
fn loopback_and_unix_listeners_keep_their_timeouts_off() {
    let dir = TestDir::new("timeouts-local");
    let server = Server::start(&["tcp://127.0.0.1:0", &format!("unix:{}", dir.socket("s.sock"))]);
    assert_eq!(server.process.count_log("can be reached from other hosts"), 0);
    idle_connections_are_served_afterwards(&[]);
}

#[test]
fn a_reload_keeps_the_protective_defaults_of_an_exposed_listener() {
    let dir = TestDir::new("timeouts-reload");
    let config = dir.path().join("sockit.toml");
    std::fs::write(&config, "endpoint = \"tcp://0.0.0.0:0\"\nmax_connections = 5\n").unwrap();
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    std::fs::write(&config, "endpoint = \"tcp://0.0.0.0:0\"\nmax_connections = 6\n").unwrap();
    server.process.signal("HUP");
    let line = server
        .process
        .wait_for_log("SIGHUP: limits read again", Duration::from_secs(10));
    for field in [
        "max_connections=6",
        "idle_timeout=\"300s\"",
        "read_timeout=\"30s\"",
    ] {
        assert!(line.contains(field), "{field} in {line:?}");
    }
}
