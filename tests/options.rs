//! Socket options set on the command line, read back from the sockets with
//! `getsockopt`: `sockit serve` shows what its listeners hold on its
//! `listening on` line (and each connection's options with `-v`); `sockit
//! connect -v` shows its own socket's. Each test first asserts that the value
//! it sets differs from the default of a fresh socket of the same kind.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{Server, run_with_timeout, sockit, stdout_of};
use socket2::{Domain, Socket, Type};

const WAIT: Duration = Duration::from_secs(10);

/// The `NAME=value` words of the `listening on ENDPOINT (...)` line for
/// endpoint `index`.
fn listening_options(server: &Server, index: usize) -> String {
    let endpoint = &server.endpoints[index];
    let line = server
        .process
        .wait_for_log(&format!("listening on {endpoint} "), WAIT);
    line.rsplit_once('(').unwrap().1.trim_end_matches(')').to_owned()
}

/// Asserts `words` (space-separated `NAME=value`) holds `NAME=value`.
fn assert_has(words: &str, name_value: &str) {
    assert!(
        words.split([' ', '"', ',']).any(|word| word == name_value),
        "{name_value} is not in {words:?}"
    );
}

fn fresh(domain: Domain, kind: Type) -> Socket {
    Socket::new(domain, kind, None).unwrap()
}

#[test]
fn receive_and_send_buffers_on_tcp_udp_and_unix_listeners() {
    // Linux doubles the size asked for, to allow for bookkeeping.
    let default = fresh(Domain::IPV4, Type::STREAM);
    assert_ne!(default.recv_buffer_size().unwrap(), 100_000);
    assert_ne!(default.send_buffer_size().unwrap(), 60_000);
    let name = format!("unix:@sockit-options-{}", std::process::id());
    let server = Server::start(&[
        "tcp://127.0.0.1:0",
        "udp://127.0.0.1:0",
        &name,
        "--rcvbuf",
        "50000",
        "--sndbuf",
        "30000",
    ]);
    for index in 0..3 {
        let words = listening_options(&server, index);
        assert_has(&words, "SO_RCVBUF=100000");
        assert_has(&words, "SO_SNDBUF=60000");
    }
}

#[test]
fn buffer_sizes_take_k_and_m() {
    let server = Server::start(&["udp://127.0.0.1:0", "--rcvbuf", "64K", "--sndbuf", "1M"]);
    let words = listening_options(&server, 0);
    assert_has(&words, "SO_RCVBUF=131072");
    assert_has(&words, "SO_SNDBUF=2097152");
}

#[test]
fn ttl_on_ipv4_and_hops_on_ipv6() {
    assert_eq!(fresh(Domain::IPV4, Type::DGRAM).ttl_v4().unwrap(), 64);
    let server = Server::start(&["udp://127.0.0.1:0", "tcp://[::1]:0", "--ttl", "9"]);
    assert_has(&listening_options(&server, 0), "IP_TTL=9");
    assert_has(&listening_options(&server, 1), "IPV6_UNICAST_HOPS=9");
}

#[test]
fn reuseport_and_no_reuseaddr() {
    let default = fresh(Domain::IPV4, Type::STREAM);
    assert!(!default.reuse_port().unwrap());
    let server = Server::start(&["tcp://127.0.0.1:0", "--reuseport"]);
    let words = listening_options(&server, 0);
    assert_has(&words, "SO_REUSEPORT=1");
    // sockit's listeners default to SO_REUSEADDR on.
    assert_has(&words, "SO_REUSEADDR=1");

    // With SO_REUSEPORT a second server shares the port.
    let port = server.addr(0).port().to_string();
    let second = Server::start(&[&format!("tcp://127.0.0.1:{port}"), "--reuseport"]);
    assert_eq!(second.addr(0), server.addr(0));

    let off = Server::start(&["tcp://127.0.0.1:0", "--no-reuseaddr", "--rcvbuf", "50000"]);
    assert_has(&listening_options(&off, 0), "SO_REUSEADDR=0");
}

#[test]
fn broadcast_on_udp() {
    assert!(!fresh(Domain::IPV4, Type::DGRAM).broadcast().unwrap());
    let server = Server::start(&["udp://127.0.0.1:0", "--broadcast"]);
    assert_has(&listening_options(&server, 0), "SO_BROADCAST=1");
}

#[test]
fn ipv6_listeners_are_dual_stack_unless_ipv6_only() {
    assert!(!fresh(Domain::IPV6, Type::STREAM).only_v6().unwrap());
    let dual = Server::start(&["tcp://[::]:0", "--framing", "line", "--ttl", "64"]);
    assert_has(&listening_options(&dual, 0), "IPV6_V6ONLY=0");
    let v4: SocketAddr = (std::net::Ipv4Addr::LOCALHOST, dual.addr(0).port()).into();
    let mut stream = common::tcp_client(v4);
    stream.write_all(b"v4\n").unwrap();
    let local = stream.local_addr().unwrap();
    let want = b"Hello, I am server\nHello, v4!\n";
    assert_eq!(common::read_exactly(&mut stream, want.len()), want);
    // The IPv4-mapped peer is shown as plain IPv4.
    dual.process
        .wait_for_log(&format!("Accept new connection from {local}"), WAIT);

    let only = Server::start(&["tcp://[::]:0", "--ipv6-only"]);
    assert_has(&listening_options(&only, 0), "IPV6_V6ONLY=1");
    let v4: SocketAddr = (std::net::Ipv4Addr::LOCALHOST, only.addr(0).port()).into();
    let refused = TcpStream::connect_timeout(&v4, WAIT).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn connection_options_nodelay_and_keepalive() {
    let default = fresh(Domain::IPV4, Type::STREAM);
    assert!(!default.keepalive().unwrap());
    let server = Server::start(&["-v", "tcp://127.0.0.1:0", "--no-nodelay", "--keepalive", "30s"]);
    let mut stream = common::tcp_client(server.addr(0));
    let mut greeting = [0; 18];
    stream.read_exact(&mut greeting).unwrap();
    let line = server.process.wait_for_log("connection options", WAIT);
    for word in ["TCP_NODELAY=0", "SO_KEEPALIVE=1", "TCP_KEEPIDLE=30"] {
        assert_has(&line, word);
    }

    // By default sockit turns TCP_NODELAY on.
    let default_server = Server::start(&["-v", "tcp://127.0.0.1:0", "--keepalive", "5s"]);
    let _stream = common::tcp_client(default_server.addr(0));
    let line = default_server.process.wait_for_log("connection options", WAIT);
    assert_has(&line, "TCP_NODELAY=1");
    assert_has(&line, "TCP_KEEPIDLE=5");
}

#[test]
fn connect_reads_back_its_own_options() {
    let server = Server::start(&["tcp://127.0.0.1:0"]);
    let endpoint = format!("tcp://{}", server.addr(0));
    let output = run_with_timeout(
        sockit().args([
            "connect",
            &endpoint,
            "hi",
            "-v",
            "--ttl",
            "3",
            "--rcvbuf",
            "40000",
            "--sndbuf",
            "20000",
            "--no-nodelay",
            "--keepalive",
            "45s",
            "--reuseaddr",
        ]),
        WAIT,
    );
    assert_eq!(stdout_of(&output), "Hello, I am server\nHello, hi!\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("socket options"))
        .expect("a socket options line");
    for word in [
        "IP_TTL=3",
        "SO_RCVBUF=80000",
        "SO_SNDBUF=40000",
        "TCP_NODELAY=0",
        "SO_KEEPALIVE=1",
        "TCP_KEEPIDLE=45",
        "SO_REUSEADDR=1",
    ] {
        assert_has(line, word);
    }
}

#[test]
fn connect_binds_the_source_address_it_is_given() {
    let server = Server::start(&["-v", "tcp://127.0.0.1:0", "udp://127.0.0.1:0"]);
    for (index, source, seen) in [
        (0, "127.0.0.7", "Accept new connection from"),
        (1, "127.0.0.8", "peer="),
    ] {
        let endpoint = &server.endpoints[index];
        let output = run_with_timeout(
            sockit().args(["connect", endpoint, "x", "--bind", &format!("{source}:0")]),
            WAIT,
        );
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        server.process.wait_for_log(
            &format!("{seen}{}{source}:", if index == 0 { " " } else { "" }),
            WAIT,
        );
    }
}

/// A Python UDP server that reports the TTL of the datagram it receives
/// (`IP_RECVTTL`), as seen on arrival: what the sender set, read back at the
/// other end of the wire.
const TTL_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
# Linux numbers, for Pythons that lack the names.
s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVTTL", 12), 1)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
s.settimeout(10)
data, ancillary, _, peer = s.recvmsg(1024, socket.CMSG_SPACE(4))
ttl = next(int.from_bytes(d[:4], sys.byteorder) for level, kind, d in ancillary if kind == socket.IP_TTL)
s.sendto(b"ttl=%d" % ttl, peer)
"#;

#[test]
fn connect_ttl_is_what_the_peer_receives() {
    let Some(python) = common::peer("python3", "a UDP server that reads the TTL of what arrives") else {
        return;
    };
    let mut server = std::process::Command::new(python)
        .args(["-u", "-c", TTL_SERVER])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.as_mut().unwrap()),
        &mut port,
    )
    .unwrap();
    let output = run_with_timeout(
        sockit().args([
            "connect",
            &format!("udp://127.0.0.1:{}", port.trim()),
            "x",
            "--ttl",
            "17",
        ]),
        WAIT,
    );
    let _ = server.wait();
    assert_eq!(stdout_of(&output), "ttl=17\n");
}

#[test]
fn the_library_sets_options_that_getsockopt_reads_back() {
    use socket2::SockRef;
    use sockit::net::SocketOptions;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let options = SocketOptions::default()
            .recv_buffer(50_000)
            .ttl(11)
            .reuse_port(true);
        let server = sockit::Server::new(sockit::Echo).options(options);
        let tcp = server.bind(&"tcp://127.0.0.1:0".parse().unwrap()).await.unwrap();
        let socket = SockRef::from(&tcp);
        assert_eq!(socket.recv_buffer_size().unwrap(), 100_000);
        assert_eq!(socket.ttl_v4().unwrap(), 11);
        assert!(socket.reuse_port().unwrap());
        assert!(socket.reuse_address().unwrap());
    });
}

#[test]
fn backlog_is_what_the_listening_socket_holds() {
    let Some(ss) = common::peer("ss", "reads a listening socket's backlog (iproute2)") else {
        return;
    };
    assert_ne!(sockit::net::DEFAULT_BACKLOG, 7);
    let server = Server::start(&["tcp://127.0.0.1:0", "--backlog", "7"]);
    let port = server.addr(0).port();
    // For a listening socket, ss shows the backlog as Send-Q.
    let output = run_with_timeout(
        std::process::Command::new(ss).args(["-Hltn", &format!("sport = :{port}")]),
        WAIT,
    );
    let line = stdout_of(&output);
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(columns.get(2), Some(&"7"), "{line:?}");
}

/// Sends a datagram to a multicast group from inside the namespace, on `lo`,
/// and prints the reply.
const MULTICAST_SENDER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
s.settimeout(10)
s.sendto(b"group", (sys.argv[1], int(sys.argv[2])))
sys.stdout.buffer.write(s.recv(1024))
"#;

#[test]
fn a_udp_listener_joins_its_multicast_group() {
    let Some(python) = common::peer("python3", "sends to the multicast group") else {
        return;
    };
    // In a namespace of the test's own, so the group's traffic (and the
    // kernel's IGMP reports) stay on its loopback.
    let Some(namespace) = common::Namespace::new("multicast") else {
        return;
    };
    common::run_ok(
        namespace
            .exec("ip")
            .args(["link", "set", "lo", "multicast", "on"]),
    );
    common::run_ok(
        namespace
            .exec("ip")
            .args(["route", "add", "224.0.0.0/4", "dev", "lo"]),
    );
    let server = common::Running::start(&mut namespace.sockit(&[
        "serve",
        "udp://0.0.0.0:9999",
        "--multicast",
        "239.1.2.3",
    ]));
    server.wait_for_log("listening on udp://0.0.0.0:9999", WAIT);

    // 239.1.2.3 as /proc/net/igmp writes it: the address's bytes, little-endian, in hex.
    let igmp = stdout_of(&run_with_timeout(
        namespace.exec("cat").arg("/proc/net/igmp"),
        WAIT,
    ));
    assert!(igmp.contains("030201EF"), "not a member of 239.1.2.3:\n{igmp}");

    let output = run_with_timeout(
        namespace
            .exec(python)
            .args(["-c", MULTICAST_SENDER, "239.1.2.3", "9999"]),
        WAIT,
    );
    assert_eq!(stdout_of(&output), "Hello, group");
}
