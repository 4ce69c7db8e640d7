//! The greeting protocol over Unix seqpacket sockets, end to end: Python's
//! `socket` module against `sockit serve seqpacket:…` (paths and abstract
//! names), one message per packet with boundaries kept, `sockit connect
//! seqpacket:…` against a Python server, the message size limit, peer
//! credentials in the log, and stale, live and regular files.

mod common;

use std::io::Read;
use std::process::Command;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use common::{
    PeerServer, Server, TestDir, abstract_name, effective_ids, is_socket, peer, run_with_input,
    run_with_timeout, serve_fails, sockit, stdout_of, wait_for_count,
};

/// The greeting packet.
const GREETING: &[u8] = b"Hello, I am server";
/// How long any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(10);

/// Connects to argv[1] (`@NAME` is an abstract name) and prints its pid,
/// uid and gid; then prints every packet it receives as a Python bytes
/// literal: the greeting, the reply to `client1`, the replies to `a` and `b`
/// sent back to back, and what comes after `exit`.
const PYTHON_CLIENT: &str = r#"
import os, socket, sys
address = lambda text: "\0" + text[1:] if text.startswith("@") else text
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.settimeout(10)
s.connect(address(sys.argv[1]))
print(os.getpid(), os.geteuid(), os.getegid())
print(repr(s.recv(65536)))
s.send(b"client1")
print(repr(s.recv(65536)))
s.send(b"a")
s.send(b"b")
print(repr(s.recv(65536)))
print(repr(s.recv(65536)))
s.send(b"exit")
print(repr(s.recv(65536)))
"#;

/// Binds argv[1] (`@NAME` is an abstract name), says `ready`, accepts one
/// connection, sends the greeting packet, and answers each packet with a
/// `Hello, M!` packet until `exit` or end of stream; prints each packet
/// received as a Python bytes literal.
const PYTHON_SERVER: &str = r#"
import socket, sys
address = lambda text: "\0" + text[1:] if text.startswith("@") else text
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(address(sys.argv[1]))
s.listen(1)
s.settimeout(10)
print("ready", flush=True)
conn, _ = s.accept()
conn.settimeout(10)
conn.send(b"Hello, I am server")
while True:
    data = conn.recv(65536)
    if not data or data == b"exit":
        break
    print(repr(data), flush=True)
    conn.send(b"Hello, " + data + b"!")
conn.close()
"#;

/// A seqpacket socket connected to the socket file at `path`.
fn connect(path: &str) -> Socket {
    let socket = Socket::new(Domain::UNIX, Type::SEQPACKET, None).expect("a seqpacket socket");
    socket.connect(&SockAddr::unix(path).unwrap()).expect("connect");
    socket.set_read_timeout(Some(WAIT)).unwrap();
    socket
}

/// The next packet; empty at end of stream.
fn receive(socket: &Socket) -> Vec<u8> {
    let mut buf = vec![0; 1 << 16];
    loop {
        match (&*socket).read(&mut buf) {
            Ok(len) => {
                buf.truncate(len);
                return buf;
            }
            // A read with a timeout is not restarted after a signal handler
            // runs in this process (signal(7)): read again.
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => panic!("no packet within the timeout: {error}"),
        }
    }
}

/// Sends `packet` whole.
fn send(socket: &Socket, packet: &[u8]) {
    assert_eq!(socket.send(packet).expect("send"), packet.len());
}

/// Connected to `path`, with the greeting packet read.
fn greeted(path: &str) -> Socket {
    let socket = connect(path);
    assert_eq!(receive(&socket), GREETING);
    socket
}

/// Sends `message` as one packet and expects exactly the packet `reply` back.
fn ask(socket: &Socket, message: &[u8], reply: &[u8]) {
    send(socket, message);
    let got = receive(socket);
    assert_eq!(
        got,
        reply,
        "got {:?}, want {:?}",
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(reply)
    );
}

// Python's socket module against sockit serve ---------------------------

/// Runs [`PYTHON_CLIENT`] against `endpoint`: asserts every packet it got
/// and returns its first line (`PID UID GID`).
fn python_client_gets_the_protocol(python: &str, endpoint: &str) -> String {
    let address = endpoint
        .strip_prefix("seqpacket:")
        .expect("a seqpacket: endpoint");
    let output = run_with_timeout(Command::new(python).args(["-c", PYTHON_CLIENT, address]), WAIT);
    let printed = stdout_of(&output);
    let (ids, packets) = printed.split_once('\n').expect("two lines or more");
    assert_eq!(
        packets,
        "b'Hello, I am server'\nb'Hello, client1!'\nb'Hello, a!'\nb'Hello, b!'\nb''\n"
    );
    ids.to_owned()
}

#[test]
fn python_client_on_a_path() {
    let Some(python) = peer("python3", "the outside seqpacket client") else {
        return;
    };
    let dir = TestDir::new("sp-pyc");
    let endpoint = format!("seqpacket:{}", dir.socket("s.sock"));
    let server = Server::start(&[&endpoint, "-v"]);
    assert_eq!(server.endpoints, [endpoint.as_str()]);
    python_client_gets_the_protocol(&python, &endpoint);
    // Each packet was one message: `a` and `b` were not merged.
    for data in [r#"data="a""#, r#"data="b""#, r#"data="exit""#] {
        server.process.wait_for_log(data, WAIT);
    }
    server.process.wait_for_log("closed.", WAIT);
}

#[test]
fn python_client_on_an_abstract_name() {
    let Some(python) = peer("python3", "the outside seqpacket client") else {
        return;
    };
    let endpoint = format!("seqpacket:@{}", abstract_name("sp-pyc"));
    let _server = Server::start(&[&endpoint]);
    python_client_gets_the_protocol(&python, &endpoint);
}

#[test]
fn the_log_names_the_connecting_process() {
    let Some(python) = peer("python3", "a client process to name") else {
        return;
    };
    let dir = TestDir::new("sp-cred");
    let endpoint = format!("seqpacket:{}", dir.socket("s.sock"));
    let server = Server::start(&[&endpoint]);
    let ids = python_client_gets_the_protocol(&python, &endpoint);
    let [pid, uid, gid] = ids
        .split(' ')
        .collect::<Vec<_>>()
        .try_into()
        .unwrap_or_else(|_| panic!("{ids:?} is not PID UID GID"));
    let (own_uid, own_gid) = effective_ids();
    assert_eq!(
        (uid, gid),
        (own_uid.to_string().as_str(), own_gid.to_string().as_str())
    );
    server.process.wait_for_log(
        &format!("Accept new connection from unix:unnamed (pid {pid}, uid {uid}, gid {gid})"),
        WAIT,
    );
}

// sockit connect --------------------------------------------------------

/// `sockit connect` prints exactly the Python server's greeting and replies,
/// and sent each message as one packet.
fn sockit_connect_to_python(python: &str, endpoint: &str) {
    let address = endpoint
        .strip_prefix("seqpacket:")
        .expect("a seqpacket: endpoint");
    let server = PeerServer::start(Command::new(python).args(["-u", "-c", PYTHON_SERVER, address]));
    let output = run_with_timeout(sockit().args(["connect", endpoint, "client1", "client2"]), WAIT);
    assert_eq!(
        stdout_of(&output),
        "Hello, I am server\nHello, client1!\nHello, client2!\n"
    );
    assert_eq!(server.finish(), "b'client1'\nb'client2'\n");
}

#[test]
fn sockit_connect_to_a_python_server_on_a_path() {
    let Some(python) = peer("python3", "the outside seqpacket server") else {
        return;
    };
    let dir = TestDir::new("sp-pys");
    sockit_connect_to_python(&python, &format!("seqpacket:{}", dir.socket("s.sock")));
}

#[test]
fn sockit_connect_to_a_python_server_on_an_abstract_name() {
    let Some(python) = peer("python3", "the outside seqpacket server") else {
        return;
    };
    sockit_connect_to_python(&python, &format!("seqpacket:@{}", abstract_name("sp-pys")));
}

#[test]
fn sockit_connect_to_sockit_serve() {
    let dir = TestDir::new("sp-self");
    let endpoint = format!("seqpacket:{}", dir.socket("s.sock"));
    let _server = Server::start(&[&endpoint]);
    let output = run_with_input(sockit().args(["connect", &endpoint]), b"a b\nc\n", WAIT);
    assert_eq!(stdout_of(&output), "Hello, I am server\nHello, a b!\nHello, c!\n");
    // A newline inside a packet is a byte like any other; nothing is sent after `exit`.
    let output = run_with_timeout(sockit().args(["connect", &endpoint, "a\nb", "exit", "c"]), WAIT);
    assert_eq!(stdout_of(&output), "Hello, I am server\nHello, a\nb!\n");
}

// Packets: binary, and over the limit ------------------------------------

#[test]
fn binary_packets_come_back_whole() {
    let dir = TestDir::new("sp-bin");
    let path = dir.socket("s.sock");
    let _server = Server::start(&[&format!("seqpacket:{path}")]);
    let client = greeted(&path);
    ask(&client, b"\xff\x00\xfe", b"Hello, \xff\x00\xfe!");
    ask(&client, b"bob\nalice\n", b"Hello, bob\nalice\n!");
    let big = vec![b'b'; 60_000];
    ask(&client, &big, &[&b"Hello, "[..], &big, b"!"].concat());
    send(&client, b"exit");
    assert_eq!(receive(&client), b"");
}

#[test]
fn a_packet_over_the_limit_gets_an_error_and_only_its_connection_closes() {
    let dir = TestDir::new("sp-long");
    let path = dir.socket("s.sock");
    let mut server = Server::start(&[&format!("seqpacket:{path}"), "--max-message", "16"]);
    let other = greeted(&path);
    ask(&other, b"before", b"Hello, before!");

    for too_long in [&[b'a'; 17][..], &[b'z'; 100]] {
        let client = greeted(&path);
        send(&client, too_long);
        assert_eq!(receive(&client), b"ERR message too long");
        assert_eq!(receive(&client), b"", "the connection is not closed");
    }
    wait_for_count(&server.process, "message too long", 2, WAIT);

    ask(&other, b"after", b"Hello, after!");
    // A packet of exactly the limit is fine.
    ask(&other, b"0123456789abcdef", b"Hello, 0123456789abcdef!");
    assert!(server.process.is_running(), "{}", server.log());
    let fresh = greeted(&path);
    ask(&fresh, b"new", b"Hello, new!");
}

// Socket files: stale, live, not a socket, removed at shutdown -----------

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = TestDir::new("sp-stale");
    let path = dir.socket("s.sock");
    // A server that is gone, which left its socket file. It never listens,
    // so nothing answers even while a child that another test is spawning
    // holds a copy of it until its exec.
    let gone = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
    gone.bind(&SockAddr::unix(&path).unwrap()).expect("bind");
    drop(gone);
    assert!(is_socket(&path), "no stale socket file at {path}");

    let server = Server::start(&[&format!("seqpacket:{path}")]);
    let line = server.process.wait_for_log("stale", WAIT);
    assert!(line.contains(&path), "{line}");
    let client = greeted(&path);
    ask(&client, b"client1", b"Hello, client1!");
}

#[test]
fn a_live_servers_socket_is_not_stolen() {
    let dir = TestDir::new("sp-live");
    let path = dir.socket("s.sock");
    let endpoint = format!("seqpacket:{path}");
    let mut first = Server::start(&[&endpoint]);

    let error = serve_fails(&endpoint);
    assert!(error.contains(&format!("cannot listen on {endpoint}")), "{error}");
    assert!(error.contains("already listening"), "{error}");

    assert!(first.process.is_running(), "{}", first.log());
    let client = greeted(&path);
    ask(&client, b"client1", b"Hello, client1!");
}

#[test]
fn a_regular_file_is_never_deleted() {
    let dir = TestDir::new("sp-file");
    let path = dir.socket("s.sock");
    std::fs::write(&path, b"precious data\n").unwrap();

    let error = serve_fails(&format!("seqpacket:{path}"));
    assert!(
        error.contains(&format!("cannot listen on seqpacket:{path}")),
        "{error}"
    );
    assert!(error.contains("not a socket"), "{error}");
    assert_eq!(
        std::fs::read(&path).expect("the file is still there"),
        b"precious data\n"
    );
}

#[test]
fn the_socket_file_is_removed_on_clean_shutdown() {
    let dir = TestDir::new("sp-stop");
    let path = dir.socket("s.sock");
    let server = Server::start(&[&format!("seqpacket:{path}")]);
    assert!(is_socket(&path));
    let client = greeted(&path);
    ask(&client, b"client1", b"Hello, client1!");
    drop(client);
    assert!(server.terminate(WAIT).success());
    assert!(!std::path::Path::new(&path).exists(), "{path} is still there");
}
