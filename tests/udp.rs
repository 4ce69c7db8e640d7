//! The greeting protocol over UDP, end to end against `sockit serve`: one
//! `Hello, M` datagram per datagram, any bytes, IPv6, many senders, the
//! datagram size limit, echo, `sockit connect`, TCP and UDP in one process,
//! and a Python client.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::{Server, peer, run_with_timeout, sockit, stdout_of};

/// How long any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(10);

/// A socket on an ephemeral port of the same family as `server`, talking
/// only to it, that waits at most `timeout` for each datagram.
fn client_for(server: SocketAddr, timeout: Duration) -> UdpSocket {
    let local = if server.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let socket = UdpSocket::bind(local).expect("bind a client socket");
    socket.connect(server).expect("connect the client socket");
    socket.set_read_timeout(Some(timeout)).unwrap();
    socket
}

/// Sends `message` as one datagram and returns the one datagram that comes back.
fn request(socket: &UdpSocket, message: &[u8]) -> Vec<u8> {
    socket.send(message).expect("send");
    let mut buf = vec![0; 1 << 16];
    let len = socket.recv(&mut buf).expect("a reply within the timeout");
    buf.truncate(len);
    buf
}

/// `Hello, ` followed by `message`: the greet service's reply to a datagram.
fn hello(message: &[u8]) -> Vec<u8> {
    [b"Hello, ", message].concat()
}

/// The greet service's replies, checked byte for byte on `server`.
fn assert_greets(server: SocketAddr) {
    let client = client_for(server, WAIT);
    assert_eq!(request(&client, b"client1"), b"Hello, client1");
    assert_eq!(request(&client, b"\xff\x00"), b"Hello, \xff\x00");
    assert_eq!(request(&client, b""), b"Hello, ");
    // `exit` means nothing special to a datagram server.
    assert_eq!(request(&client, b"exit"), b"Hello, exit");
    assert_eq!(request(&client, b"client2"), b"Hello, client2");
    // A newline is a byte like any other.
    assert_eq!(request(&client, b"bob\n"), b"Hello, bob\n");
}

#[test]
fn each_datagram_gets_hello_m_without_bang() {
    let server = Server::start(&["udp://127.0.0.1:0"]);
    assert!(
        server.endpoints[0].starts_with("udp://127.0.0.1:"),
        "{:?}",
        server.endpoints
    );
    assert_greets(server.addr(0));
}

#[test]
fn ipv6_loopback() {
    if let Err(error) = UdpSocket::bind("[::1]:0") {
        common::skip(&format!("cannot bind [::1] ({error})"));
        return;
    }
    let server = Server::start(&["udp://[::1]:0"]);
    assert!(
        server.endpoints[0].starts_with("udp://[::1]:"),
        "{:?}",
        server.endpoints
    );
    assert!(server.addr(0).is_ipv6());
    assert_greets(server.addr(0));
}

#[test]
fn fifty_senders_two_hundred_requests_each() {
    const SENDERS: usize = 50;
    const REQUESTS: usize = 200;
    /// Sends of one request before giving up: UDP may lose a datagram.
    const TRIES: usize = 5;
    let server = Server::start(&["udp://127.0.0.1:0"]);
    let addr = server.addr(0);
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            std::thread::spawn(move || {
                let socket = client_for(addr, Duration::from_millis(500));
                let mut buf = vec![0; 2048];
                let mut resent = 0;
                for i in 0..REQUESTS {
                    let message = format!("s{sender}-{i}");
                    let want = hello(message.as_bytes());
                    let answered = (0..TRIES).any(|try_| {
                        resent += usize::from(try_ > 0);
                        socket.send(message.as_bytes()).expect("send");
                        // Read until this request's reply; after a resend the
                        // reply to an earlier try of this or an earlier request
                        // may still come, and is skipped.
                        loop {
                            let len = match socket.recv(&mut buf) {
                                Ok(len) => len,
                                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return false,
                                Err(error) if error.kind() == std::io::ErrorKind::TimedOut => return false,
                                Err(error) => panic!("recv: {error}"),
                            };
                            let got = &buf[..len];
                            if got == want {
                                return true;
                            }
                            let earlier = (0..=i).any(|j| got == hello(format!("s{sender}-{j}").as_bytes()));
                            assert!(
                                resent > 0 && earlier,
                                "sender {sender} request {i}: got {:?}",
                                String::from_utf8_lossy(got)
                            );
                        }
                    });
                    assert!(
                        answered,
                        "sender {sender}: no reply to {message} after {TRIES} tries"
                    );
                }
                resent
            })
        })
        .collect();
    let resent: usize = senders
        .into_iter()
        .map(|s| s.join().expect("a sender failed"))
        .sum();
    // Loss on loopback is rare; most requests must be answered at the first try.
    assert!(
        resent < SENDERS * REQUESTS / 10,
        "{resent} requests were sent again"
    );
}

/// Ten senders each send a window of 16 datagrams before reading: the server
/// takes many per system call (recvmmsg) and answers them together (sendmmsg),
/// or one at a time with `--batch 1`; either way each sender gets its own
/// replies, byte for byte, in order.
#[test]
fn windows_of_datagrams_batched_and_one_at_a_time() {
    const SENDERS: usize = 10;
    const WINDOW: usize = 16;
    for batch in ["64", "1"] {
        let server = Server::start(&["udp://127.0.0.1:0", "--batch", batch]);
        let addr = server.addr(0);
        let clients: Vec<UdpSocket> = (0..SENDERS).map(|_| client_for(addr, WAIT)).collect();
        for round in 0..3 {
            for (sender, client) in clients.iter().enumerate() {
                for i in 0..WINDOW {
                    client
                        .send(format!("{round}-{sender}-{i}").as_bytes())
                        .expect("send");
                }
            }
            for (sender, client) in clients.iter().enumerate() {
                let mut buf = [0; 64];
                for i in 0..WINDOW {
                    let len = client.recv(&mut buf).expect("every reply within the timeout");
                    assert_eq!(
                        String::from_utf8_lossy(&buf[..len]),
                        format!("Hello, {round}-{sender}-{i}"),
                        "--batch {batch}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_reply_too_big_for_one_datagram_is_logged_not_sent() {
    let server = Server::start(&["udp://127.0.0.1:0"]);
    let client = client_for(server.addr(0), WAIT);
    // The largest IPv4 UDP payload is 65,507 bytes: `Hello, ` (7) and 65,500
    // bytes is exactly that, and is sent.
    let fits = vec![b'f'; 65_500];
    let reply = request(&client, &fits);
    assert_eq!(reply.len(), 65_507);
    assert_eq!(reply, hello(&fits));
    // One byte more and the reply cannot be sent.
    let too_big = vec![b't'; 65_501];
    client.send(&too_big).expect("send");
    let line = server.process.wait_for_log("would not fit in one datagram", WAIT);
    assert!(line.contains("reply_bytes=65508"), "{line}");
    // The next datagram's reply is the next thing received: none came for the big one.
    assert_eq!(request(&client, b"next"), b"Hello, next");
    // The largest datagram there is gets no reply either.
    client.send(&vec![b'm'; 65_507]).expect("send");
    assert_eq!(request(&client, b"again"), b"Hello, again");
    let start = std::time::Instant::now();
    while server.process.count_log("would not fit in one datagram") < 2 {
        assert!(start.elapsed() < WAIT, "not logged twice:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    let log = server.log();
    assert!(log.contains("reply_bytes=65514 replies_not_sent=2"), "{log}");
}

#[test]
fn echo_returns_each_datagram_unchanged() {
    let server = Server::start(&["udp://127.0.0.1:0", "--service", "echo"]);
    let client = client_for(server.addr(0), WAIT);
    for datagram in [&b"client1"[..], b"\xff\x00exit\n", b"\n", b"", &[b'e'; 65_507]] {
        assert_eq!(request(&client, datagram), datagram);
    }
}

#[test]
fn sockit_connect_prints_each_reply() {
    let server = Server::start(&["udp://127.0.0.1:0"]);
    let output = run_with_timeout(
        sockit().args([
            "connect",
            &format!("udp://{}", server.addr(0)),
            "client1",
            "client2",
        ]),
        WAIT,
    );
    assert_eq!(stdout_of(&output), "Hello, client1\nHello, client2\n");
}

#[test]
fn one_process_serves_tcp_and_udp() {
    let server = Server::start(&["tcp://127.0.0.1:0", "udp://127.0.0.1:0"]);
    assert_eq!(server.endpoints.len(), 2, "{:?}", server.endpoints);
    assert!(
        server.endpoints[0].starts_with("tcp://"),
        "{:?}",
        server.endpoints
    );
    assert!(
        server.endpoints[1].starts_with("udp://"),
        "{:?}",
        server.endpoints
    );

    let mut tcp = common::tcp_client(server.addr(0));
    assert_eq!(common::read_exactly(&mut tcp, 18), b"Hello, I am server");
    std::io::Write::write_all(&mut tcp, b"client1").unwrap();
    assert_eq!(common::read_exactly(&mut tcp, 15), b"Hello, client1!");

    let udp = client_for(server.addr(1), WAIT);
    assert_eq!(request(&udp, b"client1"), b"Hello, client1");

    // And sockit connect talks to both.
    let output = run_with_timeout(
        sockit().args(["connect", &format!("tcp://{}", server.addr(0)), "a"]),
        WAIT,
    );
    assert_eq!(stdout_of(&output), "Hello, I am server\nHello, a!\n");
    let output = run_with_timeout(
        sockit().args(["connect", &format!("udp://{}", server.addr(1)), "a"]),
        WAIT,
    );
    assert_eq!(stdout_of(&output), "Hello, a\n");
}

/// Sends argv[2] as one datagram to 127.0.0.1:argv[1] and prints the reply.
const PYTHON_CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(sys.argv[2].encode(), ("127.0.0.1", int(sys.argv[1])))
data, _ = s.recvfrom(65536)
sys.stdout.buffer.write(data)
"#;

#[test]
fn python_udp_client() {
    let Some(python) = peer("python3", "the outside UDP client") else {
        return;
    };
    let server = Server::start(&["udp://127.0.0.1:0"]);
    let port = server.addr(0).port().to_string();
    let output = run_with_timeout(
        Command::new(python).args(["-c", PYTHON_CLIENT, &port, "client1"]),
        WAIT,
    );
    assert_eq!(stdout_of(&output), "Hello, client1");
}

#[test]
fn a_datagram_over_the_maximum_is_dropped_and_logged() {
    let server = Server::start(&["udp://127.0.0.1:0", "--max-message", "16"]);
    let client = client_for(server.addr(0), Duration::from_millis(300));
    client.send(&[b'x'; 17]).unwrap();
    let mut buf = [0; 64];
    let silence = client.recv(&mut buf).unwrap_err();
    assert!(
        matches!(
            silence.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{silence:?}"
    );
    server.process.wait_for_log("datagram too long; dropped", WAIT);
    client.set_read_timeout(Some(WAIT)).unwrap();
    assert_eq!(request(&client, &[b'y'; 16]), hello(&[b'y'; 16]));
}
