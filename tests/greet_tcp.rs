//! The greeting protocol over TCP, end to end against `sockit serve`: plain
//! clients (Python, nc, std), binary messages, the message size limit, many
//! concurrent clients, clients that die or reset, every framing, IPv6,
//! `sockit connect`, and the echo and discard services.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{
    Running, Server, expect, peer, read_to_close, run_with_input, run_with_timeout, sockit, stdout_of,
    tcp_client,
};

/// What every stream connection is greeted with in `auto` and `raw` framing.
const GREETING: &[u8] = b"Hello, I am server";
/// The greeting in `line` framing.
const GREETING_LINE: &[u8] = b"Hello, I am server\n";
/// How long any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(10);

/// Connects and reads `greeting`.
fn greeted(addr: SocketAddr, greeting: &[u8]) -> TcpStream {
    let mut stream = tcp_client(addr);
    expect(&mut stream, greeting);
    stream
}

/// Sends `message` and expects exactly `reply` back.
fn ask(stream: &mut TcpStream, message: &[u8], reply: &[u8]) {
    stream.write_all(message).expect("send");
    expect(stream, reply);
}

/// A `len32` frame around `payload`.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// Waits until the server logged that the connection from `client` closed.
fn wait_closed(server: &Server, client: SocketAddr) {
    server
        .process
        .wait_for_log(&format!("Connection from {client} closed."), WAIT);
}

/// Closes `client` and waits for the server to log it closed. (After `exit`
/// or an error the server drains what the client may still send until the
/// client closes too, so this is also what lets its log line come at once.)
fn close_and_wait(server: &Server, client: TcpStream) {
    let local = client.local_addr().unwrap();
    drop(client);
    wait_closed(server, local);
}

/// Waits until at least `count` logged lines contain `text`.
fn wait_for_count(server: &Server, text: &str, count: usize) {
    let start = Instant::now();
    while server.process.count_log(text) < count {
        assert!(
            start.elapsed() < WAIT,
            "fewer than {count} lines with {text:?}; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for the `-v` log line of a message received, shown as `escaped`.
fn wait_received(server: &Server, escaped: &str) {
    let line = server.process.wait_for_log(escaped, WAIT);
    assert!(line.contains("received"), "{line}");
}

/// Asserts the server is alive and a new client is greeted and answered.
fn still_serves(server: &mut Server, greeting: &[u8], message: &[u8], reply: &[u8]) {
    assert!(
        server.process.is_running(),
        "the server died; log:\n{}",
        server.log()
    );
    let mut fresh = greeted(server.addr(0), greeting);
    ask(&mut fresh, message, reply);
}

// A plain TCP client sending `bob\nalice\n` ------------------------------

/// Connects, sends the bytes of argv[2], ends its side, prints all it got.
const PYTHON_CLIENT: &str = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(sys.argv[2].encode())
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
sys.stdout.buffer.write(data)
"#;

#[test]
fn python_client_sending_two_lines_gets_greeting_and_two_replies() {
    let Some(python) = peer("python3", "the outside TCP client") else {
        return;
    };
    let server = Server::start(&["tcp://127.0.0.1:0"]);
    let port = server.addr(0).port().to_string();
    let output = run_with_timeout(
        Command::new(python).args(["-c", PYTHON_CLIENT, &port, "bob\nalice\n"]),
        WAIT,
    );
    assert_eq!(
        stdout_of(&output),
        "Hello, I am serverHello, bob!\nHello, alice!\n"
    );
    server.process.wait_for_log("closed.", WAIT);
    assert_eq!(
        server.process.count_log("Accept new connection from 127.0.0.1:"),
        1
    );
}

#[test]
fn nc_sending_two_lines_gets_greeting_and_two_replies() {
    let Some(nc) = peer("nc", "netcat-openbsd, the outside TCP client") else {
        return;
    };
    let server = Server::start(&["tcp://127.0.0.1:0"]);
    let port = server.addr(0).port();
    let output = run_with_timeout(
        Command::new("sh").args([
            "-c",
            &format!("printf 'bob\\nalice\\n' | {nc} -N 127.0.0.1 {port}"),
        ]),
        WAIT,
    );
    assert_eq!(
        stdout_of(&output),
        "Hello, I am serverHello, bob!\nHello, alice!\n"
    );
}

// Binary messages -------------------------------------------------------

#[test]
fn binary_messages_come_back_unchanged_and_are_logged_escaped() {
    let mut server = Server::start(&["tcp://127.0.0.1:0", "-v"]);
    let mut client = greeted(server.addr(0), GREETING);
    // No newline: one raw message.
    ask(
        &mut client,
        b"\xff\xfe\x00bin\xc3",
        b"Hello, \xff\xfe\x00bin\xc3!",
    );
    // A line that is not UTF-8.
    ask(&mut client, b"\x80abc\n", b"Hello, \x80abc!\n");
    // The same connection goes on.
    ask(&mut client, b"after\n", b"Hello, after!\n");
    ask(&mut client, b"client1", b"Hello, client1!");
    // And a new one works.
    still_serves(&mut server, GREETING, b"next\n", b"Hello, next!\n");

    // Logged escaped, as Rust escapes strings, with `\xNN` for invalid bytes.
    wait_received(&server, r#""\xff\xfe\0bin\xc3""#);
    wait_received(&server, r#""\x80abc""#);
    let log = server.log();
    assert!(!log.contains("panic"), "{log}");
    assert!(
        !log.contains('\u{fffd}'),
        "bytes were replaced, not escaped:\n{log}"
    );
}

// Messages over the limit ----------------------------------------------

/// With `--max-message 16`: a client mid-conversation before the oversized
/// message, to check it is unaffected after.
fn bystander(server: &Server, greeting: &[u8]) -> TcpStream {
    let mut client = greeted(server.addr(0), greeting);
    ask(&mut client, b"before\n", b"Hello, before!\n");
    client
}

#[test]
fn a_line_over_the_limit_gets_an_error_and_only_its_connection_closes() {
    let mut server = Server::start(&["tcp://127.0.0.1:0", "--max-message", "16", "--framing", "line"]);
    let mut other = bystander(&server, GREETING_LINE);

    let mut client = tcp_client(server.addr(0));
    let mut line = vec![b'a'; 100];
    line.push(b'\n');
    client.write_all(&line).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&read_to_close(&mut client)),
        "Hello, I am server\nERR message too long\n"
    );
    let logged = server.process.wait_for_log("message too long", WAIT);
    assert!(logged.contains("closing the connection"), "{logged}");
    close_and_wait(&server, client);

    ask(&mut other, b"after\n", b"Hello, after!\n");
    // A line of exactly the limit is still fine.
    ask(&mut other, b"0123456789abcdef\n", b"Hello, 0123456789abcdef!\n");
    still_serves(&mut server, GREETING_LINE, b"new\n", b"Hello, new!\n");
}

#[test]
fn a_len32_frame_over_the_limit_gets_an_error_frame_and_only_its_connection_closes() {
    let mut server = Server::start(&["tcp://127.0.0.1:0", "--max-message", "16", "--framing", "len32"]);
    let greeting = frame(GREETING);
    let mut other = greeted(server.addr(0), &greeting);
    ask(&mut other, &frame(b"before"), &frame(b"Hello, before!"));

    let mut client = tcp_client(server.addr(0));
    client.write_all(&frame(&[b'a'; 100])).unwrap();
    let mut want = greeting.clone();
    want.extend_from_slice(b"\x00\x00\x00\x14ERR message too long");
    assert_eq!(read_to_close(&mut client), want);
    server.process.wait_for_log("message too long", WAIT);
    close_and_wait(&server, client);

    ask(&mut other, &frame(b"after"), &frame(b"Hello, after!"));
    let mut fresh = greeted(server.addr(0), &greeting);
    ask(&mut fresh, &frame(b"new"), &frame(b"Hello, new!"));
    assert!(server.process.is_running());
}

#[test]
fn auto_refuses_a_partial_line_that_grows_past_the_limit() {
    let mut server = Server::start(&["tcp://127.0.0.1:0", "--max-message", "16"]);
    let mut other = bystander(&server, GREETING);

    let mut client = greeted(server.addr(0), GREETING);
    // A line, then 26 bytes of a line whose newline never comes.
    client.write_all(b"ok\nxxxxxxxxxxxxxxxxxxxxxxxxxx").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&read_to_close(&mut client)),
        "Hello, ok!\nERR message too long\n"
    );
    server.process.wait_for_log("message too long", WAIT);

    ask(&mut other, b"after\n", b"Hello, after!\n");
    still_serves(&mut server, GREETING, b"new\n", b"Hello, new!\n");
}

#[test]
fn auto_answers_a_line_longer_than_one_read_once() {
    let mut server = Server::start(&["tcp://127.0.0.1:0"]);
    let mut client = greeted(server.addr(0), GREETING);
    let long = vec![b'a'; 20_000];
    let mut line = long.clone();
    line.push(b'\n');
    let mut reply = b"Hello, ".to_vec();
    reply.extend_from_slice(&long);
    reply.extend_from_slice(b"!\n");
    ask(&mut client, &line, &reply);
    ask(&mut client, b"short", b"Hello, short!");
    still_serves(&mut server, GREETING, b"x\n", b"Hello, x!\n");
}

#[test]
fn auto_refuses_a_line_over_the_default_limit() {
    let mut server = Server::start(&["tcp://127.0.0.1:0"]);
    let mut other = bystander(&server, GREETING);
    let mut client = greeted(server.addr(0), GREETING);
    let mut line = vec![b'a'; 70_000];
    line.push(b'\n');
    // The server may close before reading all of it: ignore a failed write.
    let _ = client.write_all(&line);
    assert_eq!(
        String::from_utf8_lossy(&read_to_close(&mut client)),
        "ERR message too long\n"
    );
    ask(&mut other, b"after\n", b"Hello, after!\n");
    still_serves(&mut server, GREETING, b"new\n", b"Hello, new!\n");
}

// Many concurrent clients ----------------------------------------------

const CLIENTS: usize = 500;
const MESSAGES: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_clients_each_waiting_for_a_hundred_replies() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = Server::start(&["tcp://127.0.0.1:0", "--framing", "line"]);
    let addr = server.addr(0);
    let replies = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let replies = Arc::clone(&replies);
        tasks.spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).unwrap();
            let mut greeting = vec![0; GREETING_LINE.len()];
            stream.read_exact(&mut greeting).await.expect("greeting");
            assert_eq!(greeting, GREETING_LINE);
            for i in 0..MESSAGES {
                stream
                    .write_all(format!("c{client}-{i}\n").as_bytes())
                    .await
                    .expect("send");
                let want = format!("Hello, c{client}-{i}!\n");
                let mut got = vec![0; want.len()];
                stream.read_exact(&mut got).await.expect("reply");
                assert_eq!(String::from_utf8_lossy(&got), want);
                replies.fetch_add(1, Ordering::Relaxed);
            }
            // The server closes after our end of stream, with nothing more to say.
            stream.shutdown().await.unwrap();
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).await.unwrap();
            assert_eq!(rest, b"");
        });
    }
    let all = async {
        while let Some(done) = tasks.join_next().await {
            done.expect("a client failed");
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("500 clients finish within 60 s");
    assert_eq!(replies.load(Ordering::Relaxed), CLIENTS * MESSAGES);
    // A thousand lines in a few seconds are a flood: past a burst, the log
    // counts them in lines of their own, the last as the listener stops.
    let mut server = server;
    server.process.signal("TERM");
    assert!(server.process.wait(WAIT).success(), "{}", server.log());
    assert_eq!(logged_as_closed(&server), CLIENTS, "{}", server.log());
    assert!(
        server.process.count_log("not logged one by one") >= 1,
        "{}",
        server.log()
    );
}

/// Connections the server logged as closed: a line each, or counted in
/// the lines that sum up a flood.
fn logged_as_closed(server: &Server) -> usize {
    let log = server.log();
    let one_by_one = log.lines().filter(|line| line.contains(" closed.")).count();
    let summed: usize = log
        .lines()
        .filter(|line| line.contains("not logged one by one"))
        .filter_map(|line| {
            line.split(" closed and ")
                .next()?
                .rsplit(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    one_by_one + summed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_clients_each_pipelining_a_hundred_lines() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = Server::start(&["tcp://127.0.0.1:0", "--framing", "line"]);
    let addr = server.addr(0);
    let replies = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let replies = Arc::clone(&replies);
        tasks.spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let requests: String = (0..MESSAGES).map(|i| format!("c{client}-{i}\n")).collect();
            let want: String = (0..MESSAGES)
                .map(|i| format!("Hello, c{client}-{i}!\n"))
                .collect();
            stream.write_all(requests.as_bytes()).await.expect("send");
            let mut got = vec![0; GREETING_LINE.len() + want.len()];
            stream.read_exact(&mut got).await.expect("replies");
            assert_eq!(&got[..GREETING_LINE.len()], GREETING_LINE);
            assert_eq!(String::from_utf8_lossy(&got[GREETING_LINE.len()..]), want);
            replies.fetch_add(
                got[GREETING_LINE.len()..]
                    .split_inclusive(|&b| b == b'\n')
                    .count(),
                Ordering::Relaxed,
            );
        });
    }
    let all = async {
        while let Some(done) = tasks.join_next().await {
            done.expect("a client failed");
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("500 clients finish within 60 s");
    assert_eq!(replies.load(Ordering::Relaxed), CLIENTS * MESSAGES);
}

// Clients that die, reset or leave at once -----------------------------

/// Connects, sends `partial` (no newline), says `sent PORT` and sleeps.
const PYTHON_HALF_MESSAGE: &str = r#"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"partial")
print("sent", s.getsockname()[1], flush=True)
time.sleep(60)
"#;

#[test]
fn a_client_killed_mid_message_costs_the_server_a_log_line() {
    let Some(python) = peer("python3", "a client process to kill") else {
        return;
    };
    let mut server = Server::start(&["tcp://127.0.0.1:0", "--framing", "line"]);
    let port = server.addr(0).port().to_string();
    let mut client = Running::start_with_stdout(
        Command::new(python).args(["-u", "-c", PYTHON_HALF_MESSAGE, &port]),
        Stdio::piped(),
    );
    let mut said = String::new();
    BufReader::new(client.child().stdout.take().expect("stdout is piped"))
        .read_line(&mut said)
        .expect("read the client's stdout");
    let client_port = said
        .strip_prefix("sent ")
        .unwrap_or_else(|| panic!("the client said {said:?}; stderr:\n{}", client.log()))
        .trim()
        .to_owned();
    client.child().kill().expect("SIGKILL the client");
    client.child().wait().expect("reap the client");
    server
        .process
        .wait_for_log(&format!("Connection from 127.0.0.1:{client_port} closed."), WAIT);
    still_serves(&mut server, GREETING_LINE, b"fresh\n", b"Hello, fresh!\n");
}

/// Makes dropping `stream` send a reset instead of end-of-stream.
fn reset_on_drop(stream: &TcpStream) {
    socket2::SockRef::from(stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
}

#[test]
fn a_client_resetting_mid_message_costs_the_server_a_log_line() {
    let mut server = Server::start(&["tcp://127.0.0.1:0", "--framing", "line"]);
    let mut client = greeted(server.addr(0), GREETING_LINE);
    client.write_all(b"abc").unwrap();
    let local = client.local_addr().unwrap();
    reset_on_drop(&client);
    drop(client);
    wait_closed(&server, local);
    let failed = server.process.wait_for_log("connection failed", WAIT);
    assert!(
        failed.contains(&format!("peer={local}")) && failed.contains("reset"),
        "{failed}"
    );
    still_serves(&mut server, GREETING_LINE, b"fresh\n", b"Hello, fresh!\n");
}

#[test]
fn a_client_leaving_before_the_greeting_costs_the_server_a_log_line() {
    let mut server = Server::start(&["tcp://127.0.0.1:0", "--framing", "line"]);
    let client = TcpStream::connect(server.addr(0)).unwrap();
    let local = client.local_addr().unwrap();
    drop(client);
    wait_closed(&server, local);
    still_serves(&mut server, GREETING_LINE, b"fresh\n", b"Hello, fresh!\n");
}

#[test]
fn fifty_clients_resetting_while_owed_a_reply_cost_the_server_nothing() {
    const RESETS: usize = 50;
    let mut server = Server::start(&["tcp://127.0.0.1:0", "--framing", "line"]);
    for _ in 0..RESETS {
        let mut client = greeted(server.addr(0), GREETING_LINE);
        client.write_all(b"x\n").unwrap();
        reset_on_drop(&client);
    }
    wait_for_count(&server, "closed.", RESETS);
    assert_eq!(server.process.count_log("Accept new connection from"), RESETS);
    still_serves(&mut server, GREETING_LINE, b"fresh\n", b"Hello, fresh!\n");
    let log = server.log();
    assert!(!log.contains("panic"), "{log}");
}

// raw and len32 framing -------------------------------------------------

#[test]
fn raw_framing_end_to_end() {
    let mut server = Server::start(&["tcp://127.0.0.1:0", "--framing", "raw"]);
    let mut client = greeted(server.addr(0), GREETING);
    ask(&mut client, b"client1", b"Hello, client1!");
    // In raw a newline is just a byte of the message.
    ask(&mut client, b"bob\n", b"Hello, bob\n!");
    client.write_all(b"exit").unwrap();
    assert_eq!(read_to_close(&mut client), b"");
    close_and_wait(&server, client);
    still_serves(&mut server, GREETING, b"client2", b"Hello, client2!");
}

#[test]
fn len32_framing_end_to_end() {
    let mut server = Server::start(&["tcp://127.0.0.1:0", "--framing", "len32"]);
    let greeting = b"\x00\x00\x00\x12Hello, I am server";
    let mut client = greeted(server.addr(0), greeting);
    ask(&mut client, &frame(b"bob"), b"\x00\x00\x00\x0bHello, bob!");
    // An empty message, and one with a newline inside, are messages too.
    ask(&mut client, &frame(b""), &frame(b"Hello, !"));
    ask(&mut client, &frame(b"a\nb"), &frame(b"Hello, a\nb!"));
    client.write_all(&frame(b"exit")).unwrap();
    assert_eq!(read_to_close(&mut client), b"");
    close_and_wait(&server, client);
    still_serves(&mut server, greeting, &frame(b"alice"), &frame(b"Hello, alice!"));
}

#[test]
fn exit_in_line_framing_closes_without_a_reply() {
    let server = Server::start(&["tcp://127.0.0.1:0", "--framing", "line"]);
    let mut client = greeted(server.addr(0), GREETING_LINE);
    ask(&mut client, b"a\n", b"Hello, a!\n");
    client.write_all(b"exit\r\n").unwrap();
    assert_eq!(read_to_close(&mut client), b"");
}

// IPv6 --------------------------------------------------------------------

/// Whether `[::1]` can be bound here; says SKIP when not.
fn ipv6_loopback() -> bool {
    match std::net::TcpListener::bind("[::1]:0") {
        Ok(_) => true,
        Err(error) => {
            common::skip(&format!("cannot bind [::1] ({error})"));
            false
        }
    }
}

#[test]
fn ipv6_loopback_serves_std_clients_and_sockit_connect() {
    if !ipv6_loopback() {
        return;
    }
    let server = Server::start(&["tcp://[::1]:0"]);
    assert!(
        server.endpoints[0].starts_with("tcp://[::1]:"),
        "{:?}",
        server.endpoints
    );
    let addr = server.addr(0);
    assert!(addr.is_ipv6());
    let mut client = greeted(addr, GREETING);
    ask(&mut client, b"client1", b"Hello, client1!");
    ask(&mut client, b"bob\n", b"Hello, bob!\n");
    server
        .process
        .wait_for_log("Accept new connection from [::1]:", WAIT);

    let output = run_with_timeout(
        sockit().args(["connect", &format!("tcp://{addr}"), "a", "b"]),
        WAIT,
    );
    assert_eq!(stdout_of(&output), "Hello, I am server\nHello, a!\nHello, b!\n");
}

// sockit connect ---------------------------------------------------------

#[test]
fn sockit_connect_sends_each_stdin_line() {
    let server = Server::start(&["tcp://127.0.0.1:0"]);
    let output = run_with_input(
        sockit().args(["connect", &format!("tcp://{}", server.addr(0))]),
        b"bob\nalice\n",
        WAIT,
    );
    assert_eq!(
        stdout_of(&output),
        "Hello, I am server\nHello, bob!\nHello, alice!\n"
    );
}

#[test]
fn sockit_connect_skips_blank_stdin_lines_in_auto_framing() {
    let server = Server::start(&["tcp://127.0.0.1:0"]);
    let output = run_with_input(
        sockit().args(["connect", &format!("tcp://{}", server.addr(0)), "--timeout", "2s"]),
        b"bob\n\nalice\n",
        WAIT,
    );
    assert_eq!(
        stdout_of(&output),
        "Hello, I am server\nHello, bob!\nHello, alice!\n"
    );
}

#[test]
fn sockit_connect_in_line_framing_takes_a_bare_greeting_whole() {
    // The default server (auto framing) greets bare, before it sees lines.
    let server = Server::start(&["tcp://127.0.0.1:0"]);
    let output = run_with_timeout(
        sockit().args([
            "connect",
            &format!("tcp://{}", server.addr(0)),
            "--framing",
            "line",
            "a",
            "b",
        ]),
        WAIT,
    );
    assert_eq!(stdout_of(&output), "Hello, I am server\nHello, a!\nHello, b!\n");
}

#[test]
fn sockit_connect_in_line_framing() {
    let server = Server::start(&["tcp://127.0.0.1:0", "--framing", "line"]);
    let output = run_with_timeout(
        sockit().args([
            "connect",
            &format!("tcp://{}", server.addr(0)),
            "--framing",
            "line",
            "a",
            "b",
        ]),
        WAIT,
    );
    assert_eq!(stdout_of(&output), "Hello, I am server\nHello, a!\nHello, b!\n");
}

#[test]
fn sockit_connect_stops_at_exit() {
    let server = Server::start(&["tcp://127.0.0.1:0", "-v"]);
    let output = run_with_timeout(
        sockit().args(["connect", &format!("tcp://{}", server.addr(0)), "a", "exit", "b"]),
        WAIT,
    );
    assert_eq!(stdout_of(&output), "Hello, I am server\nHello, a!\n");
    server.process.wait_for_log("closed.", WAIT);
    wait_received(&server, r#""exit""#);
}

#[test]
fn sockit_connect_sends_nothing_after_exit() {
    // A stand-in server that records every byte the client sends.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let recorder = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.write_all(GREETING).unwrap();
        expect(&mut stream, b"a");
        stream.write_all(b"Hello, a!").unwrap();
        read_to_close(&mut stream)
    });
    let output = run_with_timeout(
        sockit().args(["connect", &format!("tcp://{addr}"), "a", "exit", "b"]),
        WAIT,
    );
    assert_eq!(stdout_of(&output), "Hello, I am server\nHello, a!\n");
    assert_eq!(recorder.join().expect("the recorder"), b"exit");
}

// echo and discard -------------------------------------------------------

#[test]
fn echo_returns_every_byte_without_a_greeting() {
    let server = Server::start(&["tcp://127.0.0.1:0", "--service", "echo"]);
    let mut client = tcp_client(server.addr(0));
    ask(&mut client, b"abc\ndef", b"abc\ndef");
    ask(&mut client, b"\xff\x00exit\n", b"\xff\x00exit\n");
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut client), b"");
}

#[test]
fn discard_answers_nothing_and_stays_open_until_the_client_closes() {
    let server = Server::start(&["tcp://127.0.0.1:0", "--service", "discard", "-v"]);
    let mut client = tcp_client(server.addr(0));
    let local = client.local_addr().unwrap();
    client.write_all(b"first").unwrap();
    wait_received(&server, r#""first""#);
    client.write_all(b"second\n").unwrap();
    wait_received(&server, r#""second\n""#);
    // Both were read and dropped, and the connection is still open.
    let closed = format!("Connection from {local} closed.");
    assert_eq!(server.process.count_log(&closed), 0, "{}", server.log());
    client.shutdown(Shutdown::Write).unwrap();
    // Nothing ever came back: not a greeting, not a reply.
    assert_eq!(read_to_close(&mut client), b"");
    server.process.wait_for_log(&closed, WAIT);
}
