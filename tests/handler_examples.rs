//! The handler examples as their users meet them: each one a process of its
//! own on a real socket, talked to by plain clients, its protocol checked
//! byte for byte. Each example prints "NAME listening on ENDPOINT" once its
//! socket accepts, which is what these tests wait for.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Running, TestDir};

const WAIT: Duration = Duration::from_secs(10);

/// An example binary, built by `cargo test` beside the `sockit` binary.
fn example(name: &str) -> PathBuf {
    let sockit = PathBuf::from(env!("CARGO_BIN_EXE_sockit"));
    sockit.parent().expect("target dir").join("examples").join(name)
}

/// Starts example `name` with `args`; returns it and the endpoint it says
/// it listens on.
fn start(name: &str, args: &[&str]) -> (Running, String) {
    let running = Running::start_merged(example(name), args);
    let line = running.wait_for_log(" listening on ", WAIT);
    let endpoint = line
        .split(" listening on ")
        .nth(1)
        .expect("an endpoint")
        .to_owned();
    (running, endpoint)
}

/// A byte stream to an example: TCP or Unix.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A client that reads what it is sent a line at a time.
struct Client(BufReader<Box<dyn Stream>>);

impl Client {
    fn connect(endpoint: &str) -> Client {
        let stream: Box<dyn Stream> = if let Some(addr) = endpoint.strip_prefix("tcp://") {
            let stream = TcpStream::connect(addr).expect("connect over TCP");
            stream.set_read_timeout(Some(WAIT)).unwrap();
            Box::new(stream)
        } else if let Some(path) = endpoint.strip_prefix("unix:") {
            let stream = UnixStream::connect(path).expect("connect over a Unix socket");
            stream.set_read_timeout(Some(WAIT)).unwrap();
            Box::new(stream)
        } else {
            panic!("no client here for {endpoint}")
        };
        Client(BufReader::new(stream))
    }

    fn send(&mut self, bytes: &str) {
        self.0.get_mut().write_all(bytes.as_bytes()).expect("send");
    }

    /// The next line, its `\n` included.
    fn line(&mut self) -> String {
        let mut line = Vec::new();
        self.0.read_until(b'\n', &mut line).expect("read a line");
        String::from_utf8(line).expect("a UTF-8 line")
    }

    /// Asserts the next bytes received are exactly `want`.
    fn expect(&mut self, want: &str) {
        let mut got = vec![0; want.len()];
        self.0.read_exact(&mut got).unwrap_or_else(|error| {
            panic!("expected {want:?}: {error}");
        });
        assert_eq!(String::from_utf8_lossy(&got), want);
    }
}

#[test]
fn chat_sends_each_line_to_everyone_else_and_says_who_comes_and_goes() {
    let (_chat, at) = start("chat", &["tcp://127.0.0.1:0"]);
    let mut ming = Client::connect(&at);
    ming.send("小明\n");
    // Nothing tells a client that it has joined; give the first one's
    // handler a moment to read its name. Every later step waits on what
    // the earlier clients receive.
    std::thread::sleep(Duration::from_millis(500));
    let mut bob = Client::connect(&at);
    bob.send("bob\n");
    ming.expect("* bob joined\n");
    let mut carol = Client::connect(&at);
    carol.send("carol\n");
    ming.expect("* carol joined\n");
    bob.expect("* carol joined\n");

    ming.send("你好，世界 ✓ with spaces\n");
    bob.expect("小明: 你好，世界 ✓ with spaces\n");
    carol.expect("小明: 你好，世界 ✓ with spaces\n");
    bob.send("hi 小明\n");
    // 小明 hears bob, and never its own line (which came first).
    ming.expect("bob: hi 小明\n");
    carol.expect("bob: hi 小明\n");

    drop(carol);
    ming.expect("* carol left\n");
    bob.expect("* carol left\n");
    drop(bob);
    ming.expect("* bob left\n");
}

#[test]
fn kv_is_one_store_for_every_connection_and_answers_errors_without_closing() {
    let dir = TestDir::new("kv-example");
    let (_kv, at) = start("kv", &[&format!("unix:{}", dir.socket("kv.sock"))]);
    let mut one = Client::connect(&at);
    let mut two = Client::connect(&at);
    one.send("SET greeting hello, big world\n");
    one.expect("OK\n");
    two.send("GET greeting\n");
    two.expect("hello, big world\n");
    two.send("GET nobody\n");
    two.expect("NIL\n");
    one.send("FLY me\n");
    one.expect("ERR unknown command: use SET, GET or DEL\n");
    one.send("SET lonely\n");
    one.expect("ERR usage: SET key value\n");
    one.send("GET\n");
    one.expect("ERR usage: GET key\n");
    one.send("DEL greeting\n");
    one.expect("OK\n");
    two.send("GET greeting\n");
    two.expect("NIL\n");
    two.send("SET 名字 小明\nGET 名字\n");
    two.expect("OK\n小明\n");
}

#[test]
fn ticker_ticks_each_connection_from_one_and_echoes_what_it_is_sent() {
    let (_ticker, at) = start("ticker", &["tcp://127.0.0.1:0"]);
    let mut first = Client::connect(&at);
    let started = Instant::now();
    first.send("hello\n");
    assert_eq!(first.line(), "hello\n");
    assert_eq!(first.line(), "tick 1\n");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "tick 1 after {waited:?}");
    let mut second = Client::connect(&at);
    assert_eq!(first.line(), "tick 2\n");
    // The second connection counts on its own, from 1.
    assert_eq!(second.line(), "tick 1\n");
    second.send("echo me\n");
    let mut heard = [second.line(), second.line()];
    heard.sort();
    assert_eq!(heard, ["echo me\n", "tick 2\n"]);
    assert_eq!(first.line(), "tick 3\n");
}

/// A backend that answers each line `slow: LINE` after a second, every
/// connection on a thread of its own.
fn slow_backend(listener: TcpListener) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().expect("clone the stream");
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    std::thread::sleep(Duration::from_secs(1));
                    if writer.write_all(format!("slow: {line}\n").as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
}

#[test]
fn backend_waits_for_a_slow_backend_for_fifty_clients_side_by_side() {
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend_at = format!("tcp://{}", backend.local_addr().unwrap());
    slow_backend(backend);
    let (_front, at) = start("backend", &["tcp://127.0.0.1:0", &backend_at]);
    let started = Instant::now();
    let clients: Vec<_> = (0..50)
        .map(|n| {
            let at = at.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(&at);
                client.send(&format!("client {n}\n"));
                client.expect(&format!("slow: client {n}\n"));
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client got its answer");
    }
    // One after the other, fifty one-second answers take 50 s.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "50 answers took {took:?}");
}

#[test]
fn backend_answers_err_while_its_backend_is_down_and_serves_once_it_is_up() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (_front, at) = start("backend", &["tcp://127.0.0.1:0", &format!("tcp://{port}")]);
    let mut alone = Client::connect(&at);
    alone.send("anyone?\n");
    let error = alone.line();
    assert!(
        error.starts_with("ERR ") && error.contains("refused") && error.ends_with('\n'),
        "{error:?}"
    );
    slow_backend(TcpListener::bind(port).expect("bind the backend's port again"));
    // The same connection, and a new one, are served once it is up.
    alone.send("now?\n");
    alone.expect("slow: now?\n");
    let mut later = Client::connect(&at);
    later.send("me too\n");
    later.expect("slow: me too\n");
}

/// A file of `mebibytes` MiB that a lost, doubled or reordered piece
/// would not match: each MiB a pseudo-random pattern stamped with its number.
fn test_file(mebibytes: u32) -> Vec<u8> {
    let pattern: Vec<u8> = (0..1u32 << 20)
        .map(|at| (at.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut file = Vec::with_capacity((mebibytes as usize) << 20);
    for number in 0..mebibytes {
        let start = file.len();
        file.extend_from_slice(&pattern);
        file[start..start + 4].copy_from_slice(&number.to_le_bytes());
    }
    file
}

/// The peak resident memory of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read its status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib * 1024
}

#[test]
fn file_server_streams_a_large_file_to_a_slow_reader_in_bounded_memory() {
    let content = test_file(200);
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("file-server-200M.bin");
    std::fs::write(&path, &content).expect("write the test file");
    let (server, at) = start("file_server", &["tcp://127.0.0.1:0", path.to_str().unwrap()]);
    let mut stream = TcpStream::connect(at.strip_prefix("tcp://").unwrap()).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut piece = vec![0; 64 * 1024];
    let mut received = 0;
    loop {
        // Slow for the first 16 MiB: a server that does not wait for its
        // reader would read the whole file into memory meanwhile.
        if received < 16 << 20 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let read = &mut piece[..if received < 16 << 20 { 16 * 1024 } else { 64 * 1024 }];
        let count = stream.read(read).expect("read the file");
        if count == 0 {
            break;
        }
        assert!(
            content.get(received..received + count) == Some(&read[..count]),
            "the {count} bytes at {received} differ from the file's"
        );
        received += count;
    }
    let _ = std::fs::remove_file(&path);
    assert_eq!(received, content.len(), "the whole file, then the close");
    let peak = peak_rss(server.pid());
    assert!(peak < 32 << 20, "the server's peak RSS was {} MiB", peak >> 20);
}

#[test]
fn udp_counter_counts_each_source_on_its_own() {
    let (_counter, at) = start("udp_counter", &["udp://127.0.0.1:0"]);
    let addr = at.strip_prefix("udp://").unwrap();
    let socket = || {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        socket.connect(addr).unwrap();
        socket
    };
    let (one, two) = (socket(), socket());
    let answer = |socket: &UdpSocket, datagram: &[u8]| {
        socket.send(datagram).unwrap();
        let mut buf = [0; 64];
        let len = socket.recv(&mut buf).expect("an answer");
        String::from_utf8_lossy(&buf[..len]).into_owned()
    };
    assert_eq!(answer(&one, b"a"), "1\n");
    assert_eq!(answer(&one, b"b"), "2\n");
    assert_eq!(answer(&two, b"anything at all"), "1\n");
    assert_eq!(answer(&one, b""), "3\n");
    assert_eq!(answer(&two, b"x"), "2\n");
}

#[test]
fn an_example_that_cannot_bind_says_why_and_prints_no_listening_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = format!("tcp://{}", taken.local_addr().unwrap());
    let mut kv = Running::start_merged(example("kv"), [&at]);
    let status = kv.wait(WAIT);
    assert!(!status.success());
    let log = kv.log();
    assert!(!log.contains("listening on"), "{log}");
    assert!(log.to_lowercase().contains("in use"), "{log}");
    drop(taken);
}
