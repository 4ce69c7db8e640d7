//! The datagram limits against reflection and amplification, end to end: a
//! source past `--rate-limit` gets its burst and then silence until a token
//! comes back, while other sources are served; over UDP a source is the IP
//! address, over Unix datagram sockets the address; a reply past the reply
//! cap (`--max-amplification`, `--max-reply`, or the library's default) is
//! not sent, and the next datagram is answered.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::{Server, TestDir};
use sockit::limit::{RateLimit, ReplyCap};
use sockit::{Flow, Replies, Service};
use tokio_util::sync::CancellationToken;

/// How long any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(10);
/// How long silence must last to count as no reply.
const QUIET: Duration = Duration::from_millis(300);

/// A UDP socket on `local` (any port), talking only to `server`.
fn client_on(local: &str, server: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind((local, 0)).expect("bind a client socket");
    socket.connect(server).expect("connect the client socket");
    socket
}

/// The next datagram within `timeout`, or `None`.
fn receive(socket: &UdpSocket, timeout: Duration) -> Option<Vec<u8>> {
    socket.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = vec![0; 1 << 16];
    match socket.recv(&mut buf) {
        Ok(len) => Some(buf[..len].to_vec()),
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(error) => panic!("recv: {error}"),
    }
}

fn hello(message: &[u8]) -> Vec<u8> {
    [b"Hello, ", message].concat()
}

#[test]
fn a_source_over_its_rate_gets_its_burst_then_silence_until_a_token_comes_back() {
    // One token every 2 s, bursts of 3.
    let server = Server::start(&["udp://127.0.0.1:0", "--rate-limit", "30/m", "--rate-burst", "3"]);
    assert!(
        server.log().contains("30/m (bursts of 3) a source"),
        "{}",
        server.log()
    );
    let addr = server.addr(0);
    let flooder = client_on("127.0.0.1", addr);
    let same_host = client_on("127.0.0.1", addr);
    let other_host = client_on("127.0.0.2", addr);

    let start = Instant::now();
    for n in 0..5 {
        flooder.send(format!("a{n}").as_bytes()).unwrap();
    }
    for n in 0..3 {
        assert_eq!(receive(&flooder, WAIT), Some(hello(format!("a{n}").as_bytes())));
    }
    assert_eq!(receive(&flooder, QUIET), None, "past the burst: no reply");
    // Another port of the same address is the same source: a forger picks
    // ports freely.
    same_host.send(b"c0").unwrap();
    assert_eq!(receive(&same_host, QUIET), None);
    // Another address is served as if nothing happened.
    for n in 0..3 {
        other_host.send(format!("b{n}").as_bytes()).unwrap();
        assert_eq!(
            receive(&other_host, WAIT),
            Some(hello(format!("b{n}").as_bytes()))
        );
    }
    // Two seconds after the burst, one token is back: one reply, not two.
    std::thread::sleep(Duration::from_millis(2200).saturating_sub(start.elapsed()));
    flooder.send(b"a5").unwrap();
    flooder.send(b"a6").unwrap();
    assert_eq!(receive(&flooder, WAIT), Some(hello(b"a5")));
    assert_eq!(receive(&flooder, QUIET), None);
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "too slow to tell one token from two"
    );

    // Four drops from one source, in one log line.
    let line = server.process.wait_for_log("over its rate limit", WAIT);
    assert!(line.contains("dropped=1 datagrams_rate_limited=1"), "{line}");
    assert_eq!(
        server.process.count_log("over its rate limit"),
        1,
        "{}",
        server.log()
    );
    let mut server = server;
    server.process.signal("TERM");
    assert!(server.process.wait(WAIT).success());
    let summary = server.process.wait_for_log("datagrams not answered", WAIT);
    assert!(
        summary.contains("datagrams_rate_limited=4 datagrams_too_long=0"),
        "{summary}"
    );
}

#[test]
fn unix_datagram_sources_are_counted_by_address() {
    let dir = TestDir::new("dgram-rate");
    let path = dir.socket("server.sock");
    let server = Server::start(&[
        &format!("unix-dgram:{path}"),
        "--rate-limit",
        "1/h",
        "--rate-burst",
        "2",
    ]);
    let clients: Vec<UnixDatagram> = ["one.sock", "two.sock"]
        .iter()
        .map(|name| {
            let client = UnixDatagram::bind(dir.socket(name)).unwrap();
            client.set_read_timeout(Some(WAIT)).unwrap();
            client
        })
        .collect();
    let mut buf = [0; 64];
    for client in &clients {
        for n in 0..2 {
            client.send_to(format!("m{n}").as_bytes(), &path).unwrap();
            let len = client.recv(&mut buf).expect("a reply within the burst");
            assert_eq!(&buf[..len], format!("Hello, m{n}").as_bytes());
        }
    }
    clients[0].send_to(b"m2", &path).unwrap();
    clients[0].set_read_timeout(Some(QUIET)).unwrap();
    assert!(clients[0].recv(&mut buf).is_err(), "past the burst: no reply");
    server.process.wait_for_log("over its rate limit", WAIT);
}

#[test]
fn a_reply_past_the_amplification_cap_is_not_sent_and_the_next_is() {
    let server = Server::start(&["udp://127.0.0.1:0", "--max-amplification", "1"]);
    let client = client_on("127.0.0.1", server.addr(0));
    // `Hello, ` and 57 bytes is 64, the floor every request may have.
    let request = vec![b'x'; 57];
    client.send(&request).unwrap();
    assert_eq!(receive(&client, WAIT), Some(hello(&request)));
    client.send(&[b'y'; 58]).unwrap();
    assert_eq!(receive(&client, QUIET), None, "65 bytes for 58");
    let line = server.process.wait_for_log("the reply cap", WAIT);
    assert!(
        line.contains("request_bytes=58 reply_bytes=65 limit=64 replies_not_sent=1"),
        "{line}"
    );
    client.send(b"next").unwrap();
    assert_eq!(receive(&client, WAIT), Some(hello(b"next")));
    client.send(b"").unwrap();
    assert_eq!(receive(&client, WAIT), Some(b"Hello, ".to_vec()));

    // Echo is never larger than its request.
    let echo = Server::start(&[
        "udp://127.0.0.1:0",
        "--service",
        "echo",
        "--max-amplification",
        "1",
    ]);
    let client = client_on("127.0.0.1", echo.addr(0));
    for request in [vec![], vec![b'e'; 1000]] {
        client.send(&request).unwrap();
        assert_eq!(receive(&client, WAIT), Some(request));
    }
}

#[test]
fn a_reply_past_max_reply_is_not_sent_and_the_next_is() {
    let server = Server::start(&["udp://127.0.0.1:0", "--max-reply", "20"]);
    let client = client_on("127.0.0.1", server.addr(0));
    client.send(b"0123456789abc").unwrap();
    assert_eq!(receive(&client, WAIT), Some(hello(b"0123456789abc")));
    client.send(b"0123456789abcd").unwrap();
    assert_eq!(receive(&client, QUIET), None, "21 bytes");
    let line = server.process.wait_for_log("the reply cap", WAIT);
    assert!(line.contains("reply_bytes=21 limit=20"), "{line}");
    client.send(b"client1").unwrap();
    assert_eq!(receive(&client, WAIT), Some(hello(b"client1")));
}

#[test]
fn flags_that_make_no_sense_are_refused() {
    for args in [
        &["--rate-burst", "5"][..],
        &["--rate-limit", "0/s"],
        &["--rate-limit", "10/d"],
        &["--rate-limit", "10/s", "--rate-burst", "0"],
    ] {
        let output = common::run_with_timeout(
            common::sockit().args(["serve", "udp://127.0.0.1:0"]).args(args),
            WAIT,
        );
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
}

/// Answers every datagram with ten copies of it: an amplifier.
struct Tenfold;

impl Service for Tenfold {
    fn message(&self, message: &[u8], replies: &mut Replies<'_>) -> Flow {
        replies.send(&message.repeat(10));
        Flow::Continue
    }
}

/// Serves `server` on UDP loopback; returns its address and the token that stops it.
async fn serve_udp<S: Service>(server: sockit::Server<S>) -> (SocketAddr, CancellationToken) {
    common::serve_in_background(&server, "udp://127.0.0.1:0").await
}

/// Sends `request` and returns the reply, or `None` after [`QUIET`].
async fn ask(socket: &tokio::net::UdpSocket, request: &[u8]) -> Option<Vec<u8>> {
    socket.send(request).await.unwrap();
    let mut buf = vec![0; 1 << 16];
    let len = tokio::time::timeout(QUIET, socket.recv(&mut buf))
        .await
        .ok()?
        .unwrap();
    Some(buf[..len].to_vec())
}

#[tokio::test]
async fn the_library_caps_amplification_by_default() {
    let (addr, stop) = serve_udp(sockit::Server::new(Tenfold)).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(addr).await.unwrap();
    // Ten bytes for one: within the 64-byte floor.
    assert_eq!(ask(&socket, b"a").await, Some(b"aaaaaaaaaa".to_vec()));
    // A thousand for a hundred: past three times.
    assert_eq!(ask(&socket, &[b'b'; 100]).await, None);
    assert_eq!(ask(&socket, b"cd").await, Some(b"cd".repeat(10)));
    stop.cancel();

    let (addr, stop) = serve_udp(sockit::Server::new(Tenfold).reply_cap(ReplyCap::none())).await;
    socket.connect(addr).await.unwrap();
    assert_eq!(ask(&socket, &[b'b'; 100]).await, Some(vec![b'b'; 1000]));
    stop.cancel();
}

#[tokio::test]
async fn the_library_limits_each_source_when_asked() {
    let limited = sockit::Server::new(sockit::Greet).datagram_rate_limit(RateLimit::per_second(1).burst(2));
    let (addr, stop) = serve_udp(limited).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(addr).await.unwrap();
    assert_eq!(ask(&socket, b"1").await, Some(b"Hello, 1".to_vec()));
    assert_eq!(ask(&socket, b"2").await, Some(b"Hello, 2".to_vec()));
    assert_eq!(ask(&socket, b"3").await, None);
    stop.cancel();
}
