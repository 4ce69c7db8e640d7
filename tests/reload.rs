//! `sockit serve --config FILE`: the limits of stream connections come from
//! a TOML file, read again on SIGHUP; a reload changes the connection limit
//! at once and the other limits for new connections, and closes nothing.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Server, TestDir, greeted_within, read_exactly, run_with_timeout, sockit, tcp_client};

const GREETING: &[u8] = b"Hello, I am server\n";

fn ask(stream: &mut TcpStream, name: &str) {
    stream.write_all(format!("{name}\n").as_bytes()).unwrap();
    let want = format!("Hello, {name}!\n");
    assert_eq!(String::from_utf8(read_exactly(stream, want.len())).unwrap(), want);
}

/// Sends SIGHUP and waits for the server's `count`th answer to it.
fn hangup(server: &Server, count: usize, text: &str) {
    server.process.signal("HUP");
    let start = Instant::now();
    while server.process.count_log(text) < count {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {text:?}:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sighup_rereads_the_limits_and_closes_nothing() {
    let dir = TestDir::new("reload");
    let config = dir.path().join("limits.toml");
    std::fs::write(&config, "max_connections = 1\n").unwrap();
    let server = Server::start(&[
        "tcp://127.0.0.1:0",
        "--framing",
        "line",
        "--config",
        config.to_str().unwrap(),
    ]);
    let addr = server.addr(0);
    let mut a = tcp_client(addr);
    assert!(greeted_within(&mut a, GREETING, Duration::from_secs(10)));
    let mut b = tcp_client(addr);
    assert!(
        !greeted_within(&mut b, GREETING, Duration::from_millis(500)),
        "past max_connections = 1"
    );

    // A higher limit lets the waiting peer in at once.
    std::fs::write(&config, "max_connections = 2\n").unwrap();
    hangup(&server, 1, "SIGHUP: limits read again");
    assert!(greeted_within(&mut b, GREETING, Duration::from_secs(10)));
    ask(&mut a, "a");
    ask(&mut b, "b");

    // A file with a mistake changes nothing, and says why.
    std::fs::write(&config, "max_conections = 5\n").unwrap();
    hangup(&server, 1, "the limits stay as they were");
    assert!(
        server
            .log()
            .contains("limits.toml:1: unknown key `max_conections` (did you mean `max_connections`?)"),
        "{}",
        server.log()
    );
    let mut c = tcp_client(addr);
    assert!(
        !greeted_within(&mut c, GREETING, Duration::from_millis(500)),
        "still 2"
    );
    drop(c);

    // A lower limit closes no one; new peers wait until enough have left.
    // New connections also get the idle timeout; open ones keep theirs (none).
    std::fs::write(&config, "max_connections = 1\nidle_timeout = \"1s\"\n").unwrap();
    hangup(&server, 2, "SIGHUP: limits read again");
    std::thread::sleep(Duration::from_millis(1500));
    ask(&mut a, "a again");
    ask(&mut b, "b again");
    drop(b);
    let mut d = tcp_client(addr);
    assert!(
        !greeted_within(&mut d, GREETING, Duration::from_millis(500)),
        "a holds the only slot"
    );
    drop(a);
    assert!(greeted_within(&mut d, GREETING, Duration::from_secs(10)));
    // d is new: closed after a second of silence.
    let started = Instant::now();
    let mut rest = Vec::new();
    d.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed after {:?}",
        started.elapsed()
    );
}

#[test]
fn a_key_given_on_the_command_line_too_is_refused() {
    let dir = TestDir::new("reload-twice");
    let config = dir.path().join("limits.toml");
    std::fs::write(&config, "idle_timeout = \"5s\"\nmax_connections = 3\n").unwrap();
    let output = run_with_timeout(
        sockit().args([
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--max-connections",
            "3",
        ]),
        Duration::from_secs(10),
    );
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "sockit: error: {}:2: max_connections: also given on the command line: give it in one place\n",
            config.display()
        )
    );
}

#[test]
fn a_config_that_cannot_be_read_stops_the_start() {
    let output = run_with_timeout(
        sockit().args([
            "serve",
            "tcp://127.0.0.1:0",
            "--config",
            "/nonexistent/limits.toml",
        ]),
        Duration::from_secs(10),
    );
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "sockit: error: cannot read /nonexistent/limits.toml: No such file or directory (os error 2)\n"
    );
}

/// Datagrams answered of `count` sent at once from one socket.
fn answered(server: std::net::SocketAddr, count: usize) -> usize {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(server).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    for n in 0..count {
        socket.send(format!("d{n}").as_bytes()).unwrap();
    }
    let mut buf = [0; 64];
    let mut got = 0;
    while let Ok(len) = socket.recv(&mut buf) {
        assert_eq!(&buf[..len], format!("Hello, d{got}").as_bytes());
        got += 1;
    }
    got
}

#[test]
fn sighup_changes_the_datagram_rate_limit() {
    let dir = TestDir::new("reload-udp");
    let config = dir.path().join("limits.toml");
    std::fs::write(&config, "rate_limit = \"3/m\"\n").unwrap();
    let server = Server::start(&["udp://127.0.0.1:0", "--config", config.to_str().unwrap()]);
    let addr = server.addr(0);
    assert_eq!(answered(addr, 10), 3, "a burst of 3, then nothing for 20 s");
    std::fs::write(&config, "max_connections = 5\n").unwrap();
    hangup(&server, 1, "SIGHUP: limits read again");
    assert_eq!(answered(addr, 10), 10, "no rate limit any more");
}
