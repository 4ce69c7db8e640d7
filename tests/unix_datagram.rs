//! The greeting protocol over Unix datagram sockets, end to end: Python's
//! `socket` module against `sockit serve unix-dgram:…` (paths and abstract
//! names on both sides), replies going to each sender's own address, an
//! unbound sender, `sockit connect unix-dgram:…` against a Python server and
//! the temporary socket file it binds, and stale, live and regular files.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::process::Command;
use std::time::Duration;

use common::{
    PeerServer, Server, TestDir, abstract_name, is_socket, peer, run_with_timeout, serve_fails, sockit,
    stdout_of,
};

/// How long any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(10);

/// Binds argv[2] (`@NAME` is an abstract name) and sends each argument after
/// it as one datagram to argv[1], printing each reply and who sent it as
/// Python literals.
const PYTHON_CLIENT: &str = r#"
import os, socket, sys
address = lambda text: "\0" + text[1:] if text.startswith("@") else text
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.settimeout(10)
s.bind(address(sys.argv[2]))
for message in sys.argv[3:]:
    s.sendto(os.fsencode(message), address(sys.argv[1]))
    data, sender = s.recvfrom(65536)
    print(repr(data), repr(sender))
"#;

/// Sends one datagram to argv[1] from a socket it never binds, and prints
/// the socket's own address.
const PYTHON_UNBOUND_SENDER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"unbound", sys.argv[1])
print(repr(s.getsockname()))
"#;

/// Binds argv[1] (`@NAME` is an abstract name), says `ready`, then receives
/// argv[2] datagrams, printing each and who sent it, and answering each with
/// `Hello, M` when argv[3] is `answer`.
const PYTHON_SERVER: &str = r#"
import socket, sys
address = lambda text: "\0" + text[1:] if text.startswith("@") else text
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(address(sys.argv[1]))
s.settimeout(10)
print("ready", flush=True)
for _ in range(int(sys.argv[2])):
    data, sender = s.recvfrom(65536)
    print(repr(data), sender, flush=True)
    if sys.argv[3] == "answer":
        s.sendto(b"Hello, " + data, sender)
"#;

/// A std client bound to `own`, talking only to the server at `server`.
fn client(own: &str, server: &str) -> UnixDatagram {
    let socket = UnixDatagram::bind(own).expect("bind the client");
    socket.connect(server).expect("connect the client");
    socket.set_read_timeout(Some(WAIT)).unwrap();
    socket
}

/// Sends `message` as one datagram and returns the one datagram that comes back.
fn request(socket: &UnixDatagram, message: &[u8]) -> Vec<u8> {
    socket.send(message).expect("send");
    receive(socket)
}

/// The next datagram.
fn receive(socket: &UnixDatagram) -> Vec<u8> {
    let mut buf = vec![0; 1 << 16];
    loop {
        match socket.recv(&mut buf) {
            Ok(len) => {
                buf.truncate(len);
                return buf;
            }
            // A read with a timeout is not restarted after a signal handler
            // runs in this process (signal(7)): read again.
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => panic!("no reply within the timeout: {error}"),
        }
    }
}

/// The names in `dir`, sorted.
fn names_in(dir: &TestDir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read the test directory")
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

// Python's socket module against sockit serve ---------------------------

#[test]
fn python_client_bound_to_a_path() {
    let Some(python) = peer("python3", "the outside Unix datagram client") else {
        return;
    };
    let dir = TestDir::new("ud-pyc");
    let path = dir.socket("s.sock");
    let own = dir.socket("c.sock");
    let server = Server::start(&[&format!("unix-dgram:{path}"), "-v"]);
    let output = run_with_timeout(
        Command::new(&python)
            .args(["-c", PYTHON_CLIENT, &path, &own, "client1", "client2"])
            .arg(OsStr::from_bytes(b"\xff\xfebin\x80")),
        WAIT,
    );
    assert_eq!(
        stdout_of(&output),
        format!(
            "b'Hello, client1' '{path}'\nb'Hello, client2' '{path}'\nb'Hello, \\xff\\xfebin\\x80' '{path}'\n"
        )
    );
    // The server saw the client's address, and logged the bytes escaped.
    server
        .process
        .wait_for_log(&format!(r#"received peer=unix:{own} data="client1""#), WAIT);
    server.process.wait_for_log(
        &format!(r#"received peer=unix:{own} data="\xff\xfebin\x80""#),
        WAIT,
    );
}

#[test]
fn python_client_and_server_on_abstract_names() {
    let Some(python) = peer("python3", "the outside Unix datagram client") else {
        return;
    };
    let name = abstract_name("ud-pys");
    let own = abstract_name("ud-pyc");
    let server = Server::start(&[&format!("unix-dgram:@{name}"), "-v"]);
    assert_eq!(server.endpoints, [format!("unix-dgram:@{name}")]);
    let output = run_with_timeout(
        Command::new(&python).args([
            "-c",
            PYTHON_CLIENT,
            &format!("@{name}"),
            &format!("@{own}"),
            "client1",
        ]),
        WAIT,
    );
    // Python gives an abstract address as bytes, with its leading zero byte.
    assert_eq!(stdout_of(&output), format!("b'Hello, client1' b'\\x00{name}'\n"));
    server
        .process
        .wait_for_log(&format!(r#"received peer=unix:@{own} data="client1""#), WAIT);
}

// Any bytes, and replies to each sender's own address --------------------

#[test]
fn any_bytes_come_back_after_hello_without_bang() {
    let dir = TestDir::new("ud-bytes");
    let path = dir.socket("s.sock");
    let _server = Server::start(&[&format!("unix-dgram:{path}")]);
    let client = client(&dir.socket("c.sock"), &path);
    assert_eq!(request(&client, b"client1"), b"Hello, client1");
    assert_eq!(request(&client, b"\xff\x00\xfe"), b"Hello, \xff\x00\xfe");
    assert_eq!(request(&client, b""), b"Hello, ");
    // `exit` and newlines mean nothing special to a datagram server.
    assert_eq!(request(&client, b"exit"), b"Hello, exit");
    assert_eq!(request(&client, b"bob\nalice\n"), b"Hello, bob\nalice\n");
    let big = vec![b'b'; 60_000];
    assert_eq!(request(&client, &big), [&b"Hello, "[..], &big].concat());
}

#[test]
fn a_datagram_over_the_maximum_is_dropped_not_cut_short() {
    let dir = TestDir::new("ud-big");
    let path = dir.socket("s.sock");
    let server = Server::start(&[&format!("unix-dgram:{path}")]);
    let client = client(&dir.socket("c.sock"), &path);
    // Over the default 64 KiB maximum: once it was answered with its first 64 KiB.
    client.send(&vec![b'x'; 100_000]).unwrap();
    server.process.wait_for_log("datagram too long; dropped", WAIT);
    assert_eq!(request(&client, b"next"), b"Hello, next");
}

#[test]
fn each_reply_goes_to_its_senders_address() {
    let dir = TestDir::new("ud-two");
    let path = dir.socket("s.sock");
    let _server = Server::start(&[&format!("unix-dgram:{path}")]);
    let a = client(&dir.socket("a.sock"), &path);
    let b = client(&dir.socket("b.sock"), &path);
    a.send(b"from a").unwrap();
    b.send(b"from b").unwrap();
    assert_eq!(receive(&b), b"Hello, from b");
    assert_eq!(receive(&a), b"Hello, from a");
}

#[test]
fn an_unbound_sender_costs_a_log_line_not_the_server() {
    let Some(python) = peer("python3", "a sender that never binds its socket") else {
        return;
    };
    let dir = TestDir::new("ud-unb");
    let path = dir.socket("s.sock");
    let mut server = Server::start(&[&format!("unix-dgram:{path}"), "-v"]);
    let output = run_with_timeout(
        Command::new(&python).args(["-c", PYTHON_UNBOUND_SENDER, &path]),
        WAIT,
    );
    assert_eq!(stdout_of(&output), "''\n", "the sender is not unnamed");
    server
        .process
        .wait_for_log(r#"received peer=unix:unnamed data="unbound""#, WAIT);
    let line = server.process.wait_for_log("no address to reply to", WAIT);
    assert!(line.contains("peer=unix:unnamed"), "{line}");

    assert!(server.process.is_running(), "{}", server.log());
    let client = client(&dir.socket("c.sock"), &path);
    assert_eq!(request(&client, b"client1"), b"Hello, client1");
}

// sockit connect --------------------------------------------------------

/// Where `sockit connect` binds its own socket when `$TMPDIR` is `dir`:
/// asserts `sender` is such a path.
fn assert_temporary(dir: &TestDir, sender: &str) {
    let prefix = format!("{}/sockit-client-", dir.path().display());
    let digits = sender
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix("-0.sock"))
        .unwrap_or_else(|| panic!("{sender:?} is not {prefix}PID-0.sock"));
    assert!(
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
        "{sender}"
    );
}

#[test]
fn sockit_connect_to_a_python_server() {
    let Some(python) = peer("python3", "the outside Unix datagram server") else {
        return;
    };
    let dir = TestDir::new("ud-con");
    let path = dir.socket("s.sock");
    let server =
        PeerServer::start(Command::new(&python).args(["-u", "-c", PYTHON_SERVER, &path, "2", "answer"]));
    let output = run_with_timeout(
        sockit()
            .args(["connect", &format!("unix-dgram:{path}"), "client1", "client2"])
            .env("TMPDIR", dir.path()),
        WAIT,
    );
    assert_eq!(stdout_of(&output), "Hello, client1\nHello, client2\n");

    // Both came from the client's own temporary socket file, in $TMPDIR...
    let printed = server.finish();
    let senders: Vec<&str> = printed
        .lines()
        .map(|line| {
            let (data, sender) = line.split_once(' ').expect("DATA SENDER");
            assert!(data == "b'client1'" || data == "b'client2'", "{line}");
            sender
        })
        .collect();
    assert_eq!(senders.len(), 2, "{printed}");
    assert_eq!(senders[0], senders[1]);
    assert_temporary(&dir, senders[0]);
    assert!(printed.starts_with("b'client1' "), "{printed}");
    // ...which is gone now.
    assert!(
        !std::path::Path::new(senders[0]).exists(),
        "{} is left",
        senders[0]
    );
    assert_eq!(names_in(&dir), ["s.sock"]);
}

#[test]
fn sockit_connect_removes_its_socket_file_when_no_reply_comes() {
    let Some(python) = peer("python3", "a Unix datagram server that does not answer") else {
        return;
    };
    let dir = TestDir::new("ud-none");
    let path = dir.socket("s.sock");
    let server =
        PeerServer::start(Command::new(&python).args(["-u", "-c", PYTHON_SERVER, &path, "1", "silent"]));
    let output = run_with_timeout(
        sockit()
            .args([
                "connect",
                &format!("unix-dgram:{path}"),
                "--timeout",
                "200ms",
                "--retries",
                "0",
                "client1",
            ])
            .env("TMPDIR", dir.path()),
        WAIT,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr {stderr:?}");
    assert!(stderr.contains("did not answer"), "{stderr}");
    assert_eq!(output.stdout, b"");

    let printed = server.finish();
    let sender = printed
        .strip_prefix("b'client1' ")
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{printed:?}"));
    assert_temporary(&dir, sender);
    assert_eq!(names_in(&dir), ["s.sock"]);
}

#[test]
fn sockit_connect_removes_its_socket_file_when_nothing_is_there() {
    let dir = TestDir::new("ud-gone");
    let output = run_with_timeout(
        sockit()
            .args(["connect", &format!("unix-dgram:{}", dir.socket("none.sock")), "a"])
            .env("TMPDIR", dir.path()),
        WAIT,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr {stderr:?}");
    assert!(stderr.contains("cannot connect to unix-dgram:"), "{stderr}");
    assert_eq!(names_in(&dir), Vec::<String>::new());
}

#[test]
fn sockit_connect_to_sockit_serve_on_an_abstract_name() {
    let dir = TestDir::new("ud-self");
    let endpoint = format!("unix-dgram:@{}", abstract_name("ud-self"));
    let server = Server::start(&[&endpoint, "-v"]);
    let output = run_with_timeout(
        sockit()
            .args(["connect", &endpoint, "client1", "client2"])
            .env("TMPDIR", dir.path()),
        WAIT,
    );
    assert_eq!(stdout_of(&output), "Hello, client1\nHello, client2\n");
    let line = server.process.wait_for_log(r#"data="client2""#, WAIT);
    assert!(
        line.contains(&format!("peer=unix:{}/sockit-client-", dir.path().display())),
        "{line}"
    );
    assert_eq!(names_in(&dir), Vec::<String>::new());
}

// Socket files: stale, live, not a socket, removed at shutdown -----------

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = TestDir::new("ud-stale");
    let path = dir.socket("s.sock");
    // A server that is gone: std's socket does not remove its file on drop.
    drop(UnixDatagram::bind(&path).expect("bind a socket"));
    assert!(is_socket(&path), "no stale socket file at {path}");
    // A child that another test is spawning may hold a copy of the socket
    // until its exec: wait until nothing answers.
    let probe = UnixDatagram::unbound().unwrap();
    let start = std::time::Instant::now();
    while probe.connect(&path).is_ok() {
        assert!(start.elapsed() < WAIT, "something still answers on {path}");
        std::thread::sleep(Duration::from_millis(1));
    }

    let server = Server::start(&[&format!("unix-dgram:{path}")]);
    let line = server.process.wait_for_log("stale", WAIT);
    assert!(line.contains(&path), "{line}");
    let client = client(&dir.socket("c.sock"), &path);
    assert_eq!(request(&client, b"client1"), b"Hello, client1");
}

#[test]
fn a_live_servers_socket_is_not_stolen() {
    let dir = TestDir::new("ud-live");
    let path = dir.socket("s.sock");
    let endpoint = format!("unix-dgram:{path}");
    let mut first = Server::start(&[&endpoint]);

    let error = serve_fails(&endpoint);
    assert!(error.contains(&format!("cannot listen on {endpoint}")), "{error}");
    assert!(error.contains("already listening"), "{error}");

    assert!(first.process.is_running(), "{}", first.log());
    let client = client(&dir.socket("c.sock"), &path);
    assert_eq!(request(&client, b"client1"), b"Hello, client1");
}

#[test]
fn a_live_stream_socket_is_not_stolen_either() {
    let dir = TestDir::new("ud-other");
    let path = dir.socket("s.sock");
    let listener = UnixListener::bind(&path).expect("bind a stream listener");

    let error = serve_fails(&format!("unix-dgram:{path}"));
    assert!(
        error.contains(&format!("cannot listen on unix-dgram:{path}")),
        "{error}"
    );
    assert!(error.contains("in use"), "{error}");

    // The listener still has its file: a client reaches it.
    let _client = std::os::unix::net::UnixStream::connect(&path).expect("connect to the listener");
    listener.accept().expect("accept");
}

#[test]
fn a_regular_file_is_never_deleted() {
    let dir = TestDir::new("ud-file");
    let path = dir.socket("s.sock");
    std::fs::write(&path, b"precious data\n").unwrap();

    let error = serve_fails(&format!("unix-dgram:{path}"));
    assert!(
        error.contains(&format!("cannot listen on unix-dgram:{path}")),
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
    let dir = TestDir::new("ud-stop");
    let path = dir.socket("s.sock");
    let server = Server::start(&[&format!("unix-dgram:{path}")]);
    assert!(is_socket(&path));
    let client = client(&dir.socket("c.sock"), &path);
    assert_eq!(request(&client, b"client1"), b"Hello, client1");
    assert!(server.terminate(WAIT).success());
    assert!(!std::path::Path::new(&path).exists(), "{path} is still there");
}
