//! The greeting protocol over Unix stream sockets, end to end: Python's
//! `socket` module against `sockit serve unix:…` (paths and abstract names),
//! `sockit connect unix:…` against a Python server, stale and live socket
//! files, a regular file in the way, `--mode`, peer credentials in the log,
//! the socket file removed at shutdown, and `exit`.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Command;
use std::time::Duration;

use common::{
    PeerServer, Server, TestDir, abstract_name, effective_ids, expect, is_socket, peer, read_exactly,
    read_to_close, run_with_timeout, serve_fails, sockit, stdout_of, wait_for_count,
};

/// What every stream connection is greeted with in `auto` framing.
const GREETING: &[u8] = b"Hello, I am server";
/// How long any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(10);

/// Connects to argv[1] (`@NAME` is an abstract name), reads a greeting of
/// argv[2] bytes, then for each pair MESSAGE LENGTH after it sends MESSAGE
/// and reads exactly LENGTH bytes; then ends its side and reads until the
/// server closes. Prints each read as a Python bytes literal, one a line.
const PYTHON_CLIENT: &str = r#"
import socket, sys
address = lambda text: "\0" + text[1:] if text.startswith("@") else text
def receive(s, length):
    data = b""
    while len(data) < length:
        chunk = s.recv(length - len(data))
        if not chunk:
            break
        data += chunk
    return data
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(address(sys.argv[1]))
print(repr(receive(s, int(sys.argv[2]))))
steps = sys.argv[3:]
for message, length in zip(steps[::2], steps[1::2]):
    s.sendall(message.encode())
    print(repr(receive(s, int(length))))
s.shutdown(socket.SHUT_WR)
rest = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    rest += chunk
print(repr(rest))
"#;

/// Binds argv[1] (`@NAME` is an abstract name), says `ready`, accepts one
/// connection, greets it, and answers each read with `Hello, M!` until `exit`
/// or end of stream; prints each message as a Python bytes literal.
const PYTHON_SERVER: &str = r#"
import socket, sys
address = lambda text: "\0" + text[1:] if text.startswith("@") else text
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(address(sys.argv[1]))
s.listen(1)
s.settimeout(10)
print("ready", flush=True)
conn, _ = s.accept()
conn.settimeout(10)
conn.sendall(b"Hello, I am server")
while True:
    data = conn.recv(1024)
    if not data or data == b"exit":
        break
    print(repr(data), flush=True)
    conn.sendall(b"Hello, " + data + b"!")
conn.close()
"#;

/// Runs [`PYTHON_CLIENT`] against `address` with its arguments; returns its stdout.
fn python_client(python: &str, address: &str, args: &[&str]) -> String {
    stdout_of(&run_with_timeout(
        Command::new(python)
            .args(["-c", PYTHON_CLIENT, address])
            .args(args),
        WAIT,
    ))
}

/// The path or `@NAME` of a `unix:` endpoint.
fn address(endpoint: &str) -> &str {
    endpoint.strip_prefix("unix:").expect("a unix: endpoint")
}

/// A std client connected to `path` that has read the greeting.
fn greeted(path: &str) -> UnixStream {
    let mut stream = UnixStream::connect(path).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    assert_eq!(read_exactly(&mut stream, GREETING.len()), GREETING);
    stream
}

/// Sends `message` and expects exactly `reply` back.
fn ask(stream: &mut UnixStream, message: &[u8], reply: &[u8]) {
    stream.write_all(message).expect("send");
    expect(stream, reply);
}

/// Asserts the server at `path` greets a new client and answers it.
fn serves(path: &str) {
    let mut client = greeted(path);
    ask(&mut client, b"client1", b"Hello, client1!");
}

// Python's socket module against sockit serve ---------------------------

/// The exact bytes a Python client reads from `endpoint`, one message and
/// then two lines at once.
fn python_client_gets_the_protocol(python: &str, endpoint: &str) {
    let server = Server::start(&[endpoint]);
    assert_eq!(server.endpoints, [endpoint]);
    assert_eq!(
        python_client(python, address(endpoint), &["18", "client1", "15"]),
        "b'Hello, I am server'\nb'Hello, client1!'\nb''\n"
    );
    assert_eq!(
        python_client(python, address(endpoint), &["18", "bob\nalice\n", "26"]),
        "b'Hello, I am server'\nb'Hello, bob!\\nHello, alice!\\n'\nb''\n"
    );
    // Both were accepted as unnamed peers, and both connections closed.
    for text in ["Accept new connection from unix:unnamed (pid ", "closed."] {
        wait_for_count(&server.process, text, 2, WAIT);
    }
}

#[test]
fn python_client_on_a_path() {
    let Some(python) = peer("python3", "the outside Unix stream client") else {
        return;
    };
    let dir = TestDir::new("us-pyc");
    python_client_gets_the_protocol(&python, &format!("unix:{}", dir.socket("s.sock")));
}

#[test]
fn python_client_on_an_abstract_name() {
    let Some(python) = peer("python3", "the outside Unix stream client") else {
        return;
    };
    python_client_gets_the_protocol(&python, &format!("unix:@{}", abstract_name("us-pyc")));
}

#[test]
fn python_client_in_line_framing() {
    let Some(python) = peer("python3", "the outside Unix stream client") else {
        return;
    };
    let dir = TestDir::new("us-pyl");
    let endpoint = format!("unix:{}", dir.socket("s.sock"));
    let _server = Server::start(&[&endpoint, "--framing", "line"]);
    assert_eq!(
        python_client(
            python.as_str(),
            address(&endpoint),
            &["19", "bob\n", "12", "alice\n", "14"]
        ),
        "b'Hello, I am server\\n'\nb'Hello, bob!\\n'\nb'Hello, alice!\\n'\nb''\n"
    );
}

// sockit connect against a Python server ---------------------------------

/// `sockit connect` prints exactly the Python server's greeting and replies,
/// and sent the messages bare.
fn sockit_connect_to_python(python: &str, endpoint: &str) {
    let server = PeerServer::start(Command::new(python).args(["-u", "-c", PYTHON_SERVER, address(endpoint)]));
    let output = run_with_timeout(sockit().args(["connect", endpoint, "client1", "client2"]), WAIT);
    assert_eq!(
        stdout_of(&output),
        "Hello, I am server\nHello, client1!\nHello, client2!\n"
    );
    assert_eq!(server.finish(), "b'client1'\nb'client2'\n");
}

#[test]
fn sockit_connect_to_a_python_server_on_a_path() {
    let Some(python) = peer("python3", "the outside Unix stream server") else {
        return;
    };
    let dir = TestDir::new("us-pys");
    sockit_connect_to_python(&python, &format!("unix:{}", dir.socket("s.sock")));
}

#[test]
fn sockit_connect_to_a_python_server_on_an_abstract_name() {
    let Some(python) = peer("python3", "the outside Unix stream server") else {
        return;
    };
    sockit_connect_to_python(&python, &format!("unix:@{}", abstract_name("us-pys")));
}

#[test]
fn sockit_connect_to_sockit_serve() {
    let dir = TestDir::new("us-self");
    let endpoint = format!("unix:{}", dir.socket("s.sock"));
    let _server = Server::start(&[&endpoint]);
    let output = run_with_timeout(sockit().args(["connect", &endpoint, "a", "exit", "b"]), WAIT);
    assert_eq!(stdout_of(&output), "Hello, I am server\nHello, a!\n");
}

// Socket files: stale, live, not a socket --------------------------------

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = TestDir::new("us-stale");
    let path = dir.socket("s.sock");
    // A server that is gone: std's listener does not remove its file on drop.
    drop(UnixListener::bind(&path).expect("bind a listener"));
    assert!(is_socket(&path), "no stale socket file at {path}");
    // A child that another test is spawning may hold a copy of the listener
    // until its exec: wait until nothing answers.
    let start = std::time::Instant::now();
    while UnixStream::connect(&path).is_ok() {
        assert!(start.elapsed() < WAIT, "something still answers on {path}");
        std::thread::sleep(Duration::from_millis(1));
    }

    let server = Server::start(&[&format!("unix:{path}")]);
    let line = server.process.wait_for_log("stale", WAIT);
    assert!(line.contains(&path), "{line}");
    serves(&path);
}

#[test]
fn a_live_servers_socket_is_not_stolen() {
    let dir = TestDir::new("us-live");
    let path = dir.socket("s.sock");
    let endpoint = format!("unix:{path}");
    let mut first = Server::start(&[&endpoint]);

    let error = serve_fails(&endpoint);
    assert!(error.contains(&format!("cannot listen on {endpoint}")), "{error}");
    assert!(error.contains("already listening"), "{error}");

    assert!(first.process.is_running(), "{}", first.log());
    assert!(is_socket(&path));
    serves(&path);
}

#[test]
fn a_live_server_with_a_full_accept_queue_is_not_waited_for() {
    use socket2::{Domain, SockAddr, Socket, Type};
    let dir = TestDir::new("us-full");
    let path = dir.socket("s.sock");
    // A server that never accepts, with its queue filled.
    let listener = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
    listener.bind(&SockAddr::unix(&path).unwrap()).unwrap();
    listener.listen(0).unwrap();
    let mut queued = Vec::new();
    loop {
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        socket.set_nonblocking(true).unwrap();
        if socket.connect(&SockAddr::unix(&path).unwrap()).is_err() {
            break;
        }
        queued.push(socket);
        assert!(queued.len() < 100, "the accept queue never filled");
    }
    let error = serve_fails(&format!("unix:{path}"));
    assert!(error.contains("is in use"), "{error}");
    assert!(is_socket(&path));
}

#[test]
fn a_live_abstract_name_is_not_stolen() {
    let endpoint = format!("unix:@{}", abstract_name("us-live"));
    let mut first = Server::start(&[&endpoint]);
    let error = serve_fails(&endpoint);
    assert!(error.contains(&format!("cannot listen on {endpoint}")), "{error}");
    assert!(error.contains("in use"), "{error}");
    assert!(first.process.is_running(), "{}", first.log());
    let output = run_with_timeout(sockit().args(["connect", &endpoint, "a"]), WAIT);
    assert_eq!(stdout_of(&output), "Hello, I am server\nHello, a!\n");
}

#[test]
fn a_regular_file_is_never_deleted() {
    let dir = TestDir::new("us-file");
    let path = dir.socket("s.sock");
    std::fs::write(&path, b"precious data\n").unwrap();

    let error = serve_fails(&format!("unix:{path}"));
    assert!(
        error.contains(&format!("cannot listen on unix:{path}")),
        "{error}"
    );
    assert!(error.contains("not a socket"), "{error}");
    assert_eq!(
        std::fs::read(&path).expect("the file is still there"),
        b"precious data\n"
    );
}

// --mode, credentials, shutdown, exit ------------------------------------

/// The permission bits of the file at `path`.
fn mode(path: &str) -> u32 {
    std::fs::metadata(path)
        .expect("the socket file")
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn mode_sets_the_socket_files_permissions() {
    let dir = TestDir::new("us-mode");
    let plain = dir.socket("plain.sock");
    let _plain = Server::start(&[&format!("unix:{plain}")]);
    assert_ne!(
        mode(&plain),
        0o660,
        "without --mode the file is 0660 already: cannot tell"
    );

    let set = dir.socket("set.sock");
    let _set = Server::start(&[&format!("unix:{set}"), "--mode", "0660"]);
    assert!(is_socket(&set));
    assert_eq!(mode(&set), 0o660, "{:o}", mode(&set));
    serves(&set);
}

#[test]
fn the_log_names_the_connecting_process() {
    let dir = TestDir::new("us-cred");
    let path = dir.socket("s.sock");
    let server = Server::start(&[&format!("unix:{path}")]);
    let _client = greeted(&path);
    let (uid, gid) = effective_ids();
    server.process.wait_for_log(
        &format!(
            "Accept new connection from unix:unnamed (pid {}, uid {uid}, gid {gid})",
            std::process::id()
        ),
        WAIT,
    );
}

#[test]
fn the_socket_file_is_removed_on_clean_shutdown() {
    let dir = TestDir::new("us-stop");
    let path = dir.socket("s.sock");
    let server = Server::start(&[&format!("unix:{path}")]);
    assert!(is_socket(&path));
    serves(&path);
    assert!(server.terminate(WAIT).success());
    assert!(!std::path::Path::new(&path).exists(), "{path} is still there");
}

#[test]
fn shutdown_leaves_a_socket_file_that_another_server_made() {
    let dir = TestDir::new("us-other");
    let path = dir.socket("s.sock");
    let endpoint = format!("unix:{path}");
    let first = Server::start(&[&endpoint]);
    // Someone removes the first server's file, and a second server binds the path.
    std::fs::remove_file(&path).unwrap();
    let second = Server::start(&[&endpoint]);
    assert!(first.terminate(WAIT).success());
    assert!(
        is_socket(&path),
        "the first server removed the second's socket file"
    );
    serves(&path);
    assert!(second.terminate(WAIT).success());
    assert!(!std::path::Path::new(&path).exists(), "{path} is still there");
}

#[test]
fn exit_closes_without_a_reply() {
    let dir = TestDir::new("us-exit");
    let path = dir.socket("s.sock");
    let _server = Server::start(&[&format!("unix:{path}")]);
    let mut client = greeted(&path);
    ask(&mut client, b"client1", b"Hello, client1!");
    client.write_all(b"exit").unwrap();
    assert_eq!(read_to_close(&mut client), b"");

    let line = dir.socket("line.sock");
    let _line = Server::start(&[&format!("unix:{line}"), "--framing", "line"]);
    let mut client = UnixStream::connect(&line).expect("connect");
    client.set_read_timeout(Some(WAIT)).unwrap();
    client.write_all(b"a\nexit\nb\n").unwrap();
    assert_eq!(read_to_close(&mut client), b"Hello, I am server\nHello, a!\n");
}
