//! The PROXY protocol behind a real HAProxy (`send-proxy-v2` and
//! `send-proxy`) in front of two `sockit serve` instances, and by hand: an
//! untrusted peer refused, a header that is late, malformed or cut short,
//! the bytes after a header served as sent, a Unix stream listener, the
//! library API, and two `sockit serve` processes sharing one port.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Running, Server, TestDir, expect, peer, read_to_close, sockit, wait_for_count};
use socket2::{Domain, Socket, Type};
use sockit::proxy::{ProxyHeader, ProxyProtocol};
use sockit::{Flow, Framing, Replies, Service};

/// What every connection is greeted with (`auto` framing).
const GREETING: &[u8] = b"Hello, I am server";
/// How long any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(10);

/// A TCP connection to `to` from `from` (port 0: any), with a read timeout.
fn connect_from(from: SocketAddr, to: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket
        .bind(&from.into())
        .expect("bind the client's source address");
    socket.connect(&to.into()).expect("connect");
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Reads until the server closes (an end of stream, or a reset when it
/// closed with our bytes unread), and asserts that nothing came first.
fn expect_closed_without_a_word(stream: &mut TcpStream) {
    let mut buf = [0; 64];
    match stream.read(&mut buf) {
        Ok(read) => assert_eq!(
            read,
            0,
            "got {:?} before the close",
            String::from_utf8_lossy(&buf[..read])
        ),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "not closed: {e}"
        ),
    }
}

/// `sockit serve` on a port of its choosing with the PROXY protocol on,
/// trusting `trusted`, and more `args`.
fn serve_behind(trusted: &str, args: &[&str]) -> Server {
    let mut all = vec![
        "tcp://127.0.0.1:0",
        "--proxy-protocol",
        "--trusted-proxy",
        trusted,
    ];
    all.extend_from_slice(args);
    Server::start(&all)
}

/// A port free on 127.0.0.1 just now, for HAProxy's frontend.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// HAProxy in `mode tcp` on a free port, balancing round robin over
/// `backends` with `send_proxy` (`send-proxy` or `send-proxy-v2`); killed
/// when dropped.
struct Haproxy {
    _process: Running,
    _dir: TestDir,
    front: SocketAddr,
}

impl Haproxy {
    fn start(program: &str, send_proxy: &str, backends: &[SocketAddr]) -> Haproxy {
        let dir = TestDir::new(&format!("haproxy-{send_proxy}"));
        let front = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let mut config = format!(
            "global\n    maxconn 100\n\
             defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
             frontend front\n    bind {front}\n    default_backend sockits\n\
             backend sockits\n    balance roundrobin\n"
        );
        for (index, backend) in backends.iter().enumerate() {
            config.push_str(&format!("    server s{index} {backend} {send_proxy}\n"));
        }
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).expect("write the HAProxy configuration");
        let process = Running::start(Command::new(program).arg("-f").arg(&path).arg("-db"));
        // Ready once its frontend takes a connection.
        let start = Instant::now();
        let probe = || {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
            socket.bind(&SocketAddr::from(([127, 0, 0, 5], 0)).into()).ok()?;
            socket.connect(&front.into()).ok()
        };
        // From 127.0.0.5, so that no instance logs a client from 127.0.0.1.
        while probe().is_none() {
            assert!(
                start.elapsed() < WAIT,
                "HAProxy did not listen on {front}; log:\n{}",
                process.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Haproxy {
            _process: process,
            _dir: dir,
            front,
        }
    }
}

/// Four clients from 127.0.0.2 through HAProxy to two instances: each is
/// greeted and answered, each instance logs its clients' own address and
/// port, and both get some.
fn through_haproxy(send_proxy: &str) {
    let Some(haproxy) = peer("haproxy", "the load balancer in front of sockit serve") else {
        return;
    };
    let servers = [serve_behind("127.0.0.1", &[]), serve_behind("127.0.0.1", &[])];
    let proxy = Haproxy::start(&haproxy, send_proxy, &[servers[0].addr(0), servers[1].addr(0)]);
    let mut served = [0, 0];
    for round in 0..4 {
        let mut client = connect_from("127.0.0.2:0".parse().unwrap(), proxy.front);
        let local = client.local_addr().unwrap();
        expect(&mut client, GREETING);
        let name = format!("client{round}\n");
        client.write_all(name.as_bytes()).unwrap();
        expect(&mut client, format!("Hello, client{round}!\n").as_bytes());
        client.write_all(b"exit\n").unwrap();
        assert_eq!(read_to_close(&mut client), b"");
        // Closed here too, so the server need not wait for it to log.
        drop(client);
        let accepted = format!("Accept new connection from {local} via 127.0.0.1:");
        let closed = format!("Connection from {local} closed.");
        let start = Instant::now();
        let which = loop {
            if let Some(which) = (0..2).find(|&i| servers[i].process.count_log(&closed) == 1) {
                break which;
            }
            assert!(
                start.elapsed() < WAIT,
                "no server logged {closed:?}; logs:\n{}\n---\n{}",
                servers[0].log(),
                servers[1].log()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(
            servers[which].process.count_log(&accepted),
            1,
            "{}",
            servers[which].log()
        );
        assert_eq!(servers[1 - which].process.count_log(&local.to_string()), 0);
        served[which] += 1;
    }
    assert!(served[0] > 0 && served[1] > 0, "round robin served {served:?}");
    for server in &servers {
        // HAProxy's own address is never taken for a client's.
        assert_eq!(
            server.process.count_log("Accept new connection from 127.0.0.1:"),
            0,
            "{}",
            server.log()
        );
    }
}

#[test]
fn haproxy_send_proxy_v2_passes_the_clients_address() {
    through_haproxy("send-proxy-v2");
}

#[test]
fn haproxy_send_proxy_v1_passes_the_clients_address() {
    through_haproxy("send-proxy");
}

#[test]
fn an_untrusted_peer_is_closed_before_the_greeting() {
    let server = serve_behind("127.0.0.9", &[]);
    let header = b"PROXY TCP4 192.0.2.1 127.0.0.1 5000 8000\r\n";
    let mut stranger = connect_from("127.0.0.1:0".parse().unwrap(), server.addr(0));
    let stranger_addr = stranger.local_addr().unwrap();
    stranger.write_all(header).unwrap();
    expect_closed_without_a_word(&mut stranger);
    let line = server.process.wait_for_log("not a trusted proxy", WAIT);
    assert!(line.contains(&format!("peer={stranger_addr}")), "{line}");
    assert_eq!(server.process.count_log("192.0.2.1"), 0, "{}", server.log());

    let mut trusted = connect_from("127.0.0.9:0".parse().unwrap(), server.addr(0));
    let via = trusted.local_addr().unwrap();
    trusted.write_all(header).unwrap();
    expect(&mut trusted, GREETING);
    server.process.wait_for_log(
        &format!("Accept new connection from 192.0.2.1:5000 via {via}"),
        WAIT,
    );
    trusted.write_all(b"alice\n").unwrap();
    expect(&mut trusted, b"Hello, alice!\n");
}

#[test]
fn a_trusted_peer_that_sends_no_header_is_closed_at_the_timeout() {
    let server = serve_behind("127.0.0.1", &["--proxy-timeout", "300ms"]);
    let start = Instant::now();
    let mut silent = connect_from("127.0.0.1:0".parse().unwrap(), server.addr(0));
    let addr = silent.local_addr().unwrap();
    assert_eq!(read_to_close(&mut silent), b"");
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(300), "closed after {waited:?}");
    let line = server
        .process
        .wait_for_log("no whole PROXY header within the header timeout of 300ms", WAIT);
    assert!(line.contains(&format!("peer={addr}")), "{line}");

    // Half a header, then silence: the same.
    let mut slow = connect_from("127.0.0.1:0".parse().unwrap(), server.addr(0));
    slow.write_all(b"PROXY TCP4 192.0.2.1").unwrap();
    assert_eq!(read_to_close(&mut slow), b"");
    wait_for_count(&server.process, "within the header timeout", 2, WAIT);
    assert_eq!(
        server.process.count_log("Accept new connection"),
        0,
        "{}",
        server.log()
    );
}

#[test]
fn a_malformed_header_closes_the_connection_with_its_reason() {
    let server = serve_behind("127.0.0.1", &[]);
    let cases: [(&[u8], &str); 3] = [
        (b"GET / HTTP/1.0\r\n\r\n", "not a PROXY protocol header"),
        (b"PROXY TCP4 192.0.2.1 x\r\n", "malformed PROXY v1 header"),
        // A v2 header claiming 64 KiB of addresses.
        (
            b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff",
            "PROXY v2 header of 65551 bytes",
        ),
    ];
    for (sent, why) in cases {
        let mut client = connect_from("127.0.0.1:0".parse().unwrap(), server.addr(0));
        let addr = client.local_addr().unwrap();
        client.write_all(sent).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(read_to_close(&mut client), b"", "after {sent:?}");
        let line = server.process.wait_for_log(why, WAIT);
        assert!(line.contains(&format!("peer={addr}")), "{line}");
    }
    // Cut short: the peer closes halfway through its header.
    let mut client = connect_from("127.0.0.1:0".parse().unwrap(), server.addr(0));
    client.write_all(b"PROXY TCP6 ::1 ").unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut client), b"");
    server
        .process
        .wait_for_log("the peer closed before its PROXY header was whole", WAIT);
    assert_eq!(
        server.process.count_log("Accept new connection"),
        0,
        "{}",
        server.log()
    );
}

#[test]
fn the_bytes_after_the_header_are_served_as_sent() {
    let server = serve_behind("127.0.0.0/8", &[]);
    let source: SocketAddr = "[2001:db8::7]:40000".parse().unwrap();
    let header = ProxyHeader::Proxied {
        source,
        destination: "[2001:db8::1]:8000".parse().unwrap(),
    };
    // v2, then three messages, the last cut short, all in one write.
    let mut client = connect_from("127.0.0.3:0".parse().unwrap(), server.addr(0));
    let mut sent = header.encode_v2();
    sent.extend_from_slice(b"one\ntwo\nthr");
    client.write_all(&sent).unwrap();
    expect(&mut client, b"Hello, I am serverHello, one!\nHello, two!\n");
    client.write_all(b"ee\n").unwrap();
    expect(&mut client, b"Hello, three!\n");
    server.process.wait_for_log(
        &format!("Accept new connection from {source} via 127.0.0.3:"),
        WAIT,
    );

    // v1 arriving a few bytes at a time, then a message in the same write
    // as its last bytes.
    let mut client = connect_from("127.0.0.3:0".parse().unwrap(), server.addr(0));
    let v1 = header.encode_v1();
    for piece in v1[..v1.len() - 2].chunks(9) {
        client.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    client.write_all(b"\r\nfour\n").unwrap();
    expect(&mut client, b"Hello, I am serverHello, four!\n");
    wait_for_count(
        &server.process,
        &format!("Accept new connection from {source} via"),
        2,
        WAIT,
    );

    // LOCAL (a health check): the connection keeps its own address.
    let mut check = connect_from("127.0.0.4:0".parse().unwrap(), server.addr(0));
    let own = check.local_addr().unwrap();
    check
        .write_all(&[ProxyHeader::Local.encode_v2(), b"five\n".to_vec()].concat())
        .unwrap();
    expect(&mut check, b"Hello, I am serverHello, five!\n");
    server
        .process
        .wait_for_log(&format!("Accept new connection from {own} (PROXY LOCAL"), WAIT);
}

#[test]
fn serve_asks_for_trusted_proxies_and_refuses_datagram_endpoints() {
    let output = common::run_with_timeout(sockit().args(["serve", "--proxy-protocol"]), WAIT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--trusted-proxy"), "{stderr}");

    let output = common::run_with_timeout(
        sockit().args(["serve", "--proxy-protocol", "--trusted-proxy", "10.0.0.1/8"]),
        WAIT,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("\"10.0.0.1/8\" is not a trusted proxy"),
        "{stderr}"
    );

    let output = common::run_with_timeout(
        sockit().args([
            "serve",
            "udp://127.0.0.1:0",
            "--proxy-protocol",
            "--trusted-proxy",
            "::1",
        ]),
        WAIT,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("the PROXY protocol is for tcp://, tls:// and unix: stream listeners only"),
        "{stderr}"
    );
}

/// The address of a bound TCP endpoint.
fn socket_addr(endpoint: &sockit::Endpoint) -> SocketAddr {
    let text = endpoint.to_string();
    text.strip_prefix("tcp://")
        .expect("a TCP endpoint")
        .parse()
        .expect("an address")
}

/// Answers every message with the peer it sees.
struct WhoAmI;

impl Service for WhoAmI {
    fn message(&self, _message: &[u8], replies: &mut Replies<'_>) -> Flow {
        let peer = replies.peer().to_string();
        replies.send(peer.as_bytes());
        Flow::Continue
    }
}

#[tokio::test]
async fn the_library_gives_the_service_the_client_from_the_header() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = TestDir::new("proxy-unix");
    let server = sockit::Server::new(WhoAmI)
        .framing(Framing::Line)
        .proxy_protocol(ProxyProtocol::new([
            "127.0.0.1".parse().unwrap(),
            "unix".parse().unwrap(),
        ]));
    let tcp = server.bind(&"tcp://127.0.0.1:0".parse().unwrap()).await.unwrap();
    let path = dir.socket("s.sock");
    let unix = server
        .bind(&format!("unix:{path}").parse().unwrap())
        .await
        .unwrap();
    let addr = socket_addr(tcp.local_endpoint());
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = [
        tokio::spawn(tcp.serve(stop.clone().cancelled_owned())),
        tokio::spawn(unix.serve(stop.clone().cancelled_owned())),
    ];

    let header = ProxyHeader::Proxied {
        source: "198.51.100.7:1234".parse().unwrap(),
        destination: "203.0.113.1:80".parse().unwrap(),
    };
    let mut tcp_client = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp_client.write_all(&header.encode_v1()).await.unwrap();
    tcp_client.write_all(b"who?\n").await.unwrap();
    let mut unix_client = tokio::net::UnixStream::connect(&path).await.unwrap();
    unix_client
        .write_all(&[header.encode_v2(), b"who?\n".to_vec()].concat())
        .await
        .unwrap();
    let want = b"198.51.100.7:1234\n";
    for client in [
        &mut tcp_client as &mut (dyn tokio::io::AsyncRead + Unpin),
        &mut unix_client,
    ] {
        let mut got = [0; 18];
        tokio::time::timeout(WAIT, client.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, want, "{:?}", String::from_utf8_lossy(&got));
    }
    drop((tcp_client, unix_client));
    // From an untrusted address (::1 is not 127.0.0.1): closed at once.
    let ipv6 = sockit::Server::new(WhoAmI).proxy_protocol(ProxyProtocol::new(["127.0.0.1".parse().unwrap()]));
    if let Ok(listener) = ipv6.bind(&"tcp://[::1]:0".parse().unwrap()).await {
        let addr = socket_addr(listener.local_endpoint());
        let served = tokio::spawn(listener.serve(stop.clone().cancelled_owned()));
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client.write_all(&header.encode_v1()).await.unwrap();
        client.write_all(b"who?\n").await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(WAIT, client.read_to_end(&mut got))
            .await
            .unwrap();
        assert!(read.is_err() || got.is_empty(), "{got:?}");
        stop.cancel();
        served.await.unwrap().unwrap();
    }
    stop.cancel();
    for serving in serving {
        serving.await.unwrap().unwrap();
    }
}

#[test]
fn two_serve_processes_share_one_port_with_reuseport() {
    let first = Server::start(&["tcp://127.0.0.1:0", "--reuseport"]);
    let addr = first.addr(0);
    let second = Server::start(&[&format!("tcp://{addr}"), "--reuseport"]);
    assert_eq!(second.addr(0), addr);
    // Both serve: connect until each has greeted someone (the kernel
    // spreads connections over the two by a hash of their addresses).
    let start = Instant::now();
    let mut clients = 0;
    while first.process.count_log("Accept new connection") == 0
        || second.process.count_log("Accept new connection") == 0
    {
        assert!(
            start.elapsed() < WAIT,
            "{clients} clients all went to one process"
        );
        let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 0);
        let mut client = connect_from(from, addr);
        expect(&mut client, GREETING);
        clients += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    // Without SO_REUSEPORT the port is taken.
    let output = common::run_with_timeout(sockit().args(["serve", &format!("tcp://{addr}")]), WAIT);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A TLS server behind HAProxy in `mode tcp` (TLS passed through): the
/// PROXY header comes first, in the clear, then the client's handshake;
/// the server logs the client's own address.
#[test]
fn haproxy_passes_tls_through_with_the_clients_address() {
    let Some(haproxy) = peer("haproxy", "the load balancer in front of sockit serve") else {
        return;
    };
    let dir = TestDir::new("proxy-tls");
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let server = Server::start(&[
        "tls://127.0.0.1:0",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--proxy-protocol",
        "--trusted-proxy",
        "127.0.0.1",
    ]);
    assert!(
        server.log().contains("PROXY protocol from 127.0.0.1"),
        "{}",
        server.log()
    );
    let proxy = Haproxy::start(&haproxy, "send-proxy-v2", &[server.addr(0)]);
    let output = common::run_with_timeout(
        sockit().args([
            "connect",
            &format!("tls://{}", proxy.front),
            "--ca",
            cert.to_str().unwrap(),
            "--bind",
            "127.0.0.2:0",
            "client1",
        ]),
        WAIT,
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "Hello, I am server\nHello, client1!\n",
        "stderr: {}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    // (HAProxy's readiness probes come from 127.0.0.5.)
    let line = server
        .process
        .wait_for_log("Accept new connection from 127.0.0.2:", WAIT);
    assert!(line.contains(" via 127.0.0.1:"), "{line}");
}

/// With metrics on, an untrusted peer and a trusted one without a header
/// are counted by kind, and neither stays counted as open.
#[test]
fn refused_and_headerless_peers_are_counted_in_the_metrics() {
    let server = Server::start_listening(
        &[],
        &[
            "tcp://127.0.0.1:0",
            "--proxy-protocol",
            "--trusted-proxy",
            "127.0.0.1",
            "--proxy-timeout",
            "200ms",
            "--metrics",
            "127.0.0.1:0",
        ],
        1,
    );
    let metrics = server.metrics_addr();
    let addr = server.addr(0);
    let mut untrusted = connect_from("127.0.0.3:0".parse().unwrap(), addr);
    expect_closed_without_a_word(&mut untrusted);
    let mut silent = connect_from("127.0.0.1:0".parse().unwrap(), addr);
    assert_eq!(read_to_close(&mut silent), b"");
    drop(silent);

    let label = format!("listener=\"tcp://{addr}\"");
    let wanted = [
        format!("sockit_errors_total{{{label},kind=\"untrusted_proxy\"}} 1"),
        format!("sockit_errors_total{{{label},kind=\"proxy_header\"}} 1"),
        format!("sockit_connections_total{{{label}}} 1"),
        format!("sockit_connections_open{{{label}}} 0"),
    ];
    // The closing connection lingers a moment: ask until it is counted closed.
    let start = Instant::now();
    loop {
        let (_, _, answer) = common::http(metrics, "GET", "/metrics", WAIT);
        if wanted.iter().all(|line| answer.lines().any(|l| l == line)) {
            break;
        }
        assert!(start.elapsed() < WAIT, "not all of {wanted:?} in:\n{answer}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
