//! `sockit serve --config FILE`: a TOML file says what the command line can,
//! for several listeners, each with its own service, framing and limits.

mod common;

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{Server, TestDir, greeted_within, read_exactly, run_with_timeout, sockit, tcp_client};

const GREETING: &[u8] = b"Hello, I am server\n";

#[test]
fn each_listener_table_is_served_as_it_says() {
    let dir = TestDir::new("config-listeners");
    let socket = dir.socket("echo.sock");
    let config = dir.path().join("sockit.toml");
    std::fs::write(
        &config,
        format!(
            "# Defaults for every listener.\n\
             max_connections = 100\n\
             \n\
             [[listener]]\n\
             endpoint = \"tcp://127.0.0.1:0\"\n\
             framing = \"line\"\n\
             max_connections = 1\n\
             \n\
             [[listener]]\n\
             endpoints = [\"udp://127.0.0.1:0\", \"unix:{socket}\"]\n\
             service = \"echo\"\n\
             \n\
             [[listener]]\n\
             endpoint = \"tcp://127.0.0.1:0\"\n\
             framing = \"line\"\n"
        ),
    )
    .unwrap();
    let server = Server::start_listening(&[], &["--config", config.to_str().unwrap()], 4);
    let log = server.log();
    for line in [
        "(greet service, line framing)",
        "(echo service)",
        "(echo service, raw framing)",
        "(greet service, line framing)",
    ] {
        assert!(log.contains(line), "{line:?} not in:\n{log}");
    }

    // The first listener: greet, line framing, one connection at a time.
    let mut first = tcp_client(server.addr(0));
    assert!(greeted_within(&mut first, GREETING, Duration::from_secs(10)));
    first.write_all(b"bob\n").unwrap();
    assert_eq!(read_exactly(&mut first, 12), b"Hello, bob!\n");
    let mut waiting = tcp_client(server.addr(0));
    assert!(
        !greeted_within(&mut waiting, GREETING, Duration::from_millis(300)),
        "past the first listener's max_connections = 1"
    );

    // The second: echo over UDP and Unix, bytes unchanged.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    udp.send_to(b"ping \xff", server.addr(1)).unwrap();
    let mut buf = [0; 64];
    let (len, _) = udp.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"ping \xff");
    let mut unix = UnixStream::connect(&socket).unwrap();
    unix.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    unix.write_all(b"no newline").unwrap();
    assert_eq!(read_exactly(&mut unix, 10), b"no newline");

    // The third has a limit of its own (the default from the top): the first
    // listener's full house does not hold it up.
    let mut thirds: Vec<TcpStream> = (0..3).map(|_| tcp_client(server.addr(3))).collect();
    for third in &mut thirds {
        assert!(greeted_within(third, GREETING, Duration::from_secs(10)));
    }

    // The first listener's one connection closes; the waiting peer is let in.
    first.write_all(b"exit\n").unwrap();
    assert!(greeted_within(&mut waiting, GREETING, Duration::from_secs(10)));
}

#[test]
fn process_wide_keys_at_the_top_set_the_log() {
    let dir = TestDir::new("config-log");
    let config = dir.path().join("sockit.toml");
    std::fs::write(
        &config,
        "log_format = \"json\"\nendpoint = \"tcp://127.0.0.1:0\"\n",
    )
    .unwrap();
    let server = Server::start_listening(&[], &["--config", config.to_str().unwrap()], 1);
    let log = server.log();
    let listening = log.lines().find(|line| line.contains("listening on")).unwrap();
    assert!(listening.starts_with('{') && listening.ends_with('}'), "{log}");
}

/// `sockit serve --config FILE`'s one line on stderr, and its exit status.
fn refused(text: &str) -> (String, Option<i32>) {
    let dir = TestDir::new("config-refused");
    let config = dir.path().join("sockit.toml");
    std::fs::write(&config, text).unwrap();
    let output = run_with_timeout(
        sockit().args(["serve", "--config", config.to_str().unwrap()]),
        Duration::from_secs(10),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let name = config.display().to_string();
    (stderr.replace(&name, "FILE"), output.status.code())
}

#[test]
fn mistakes_are_one_line_naming_the_key_and_its_line() {
    assert_eq!(
        refused("[[listener]]\nendpoint = \"tcp://127.0.0.1:0\"\nservise = \"echo\"\n"),
        (
            "sockit: error: FILE:3: unknown key `servise` (did you mean `service`?)\n".to_owned(),
            Some(2)
        )
    );
    assert_eq!(
        refused("[[listener]]\nendpoint = \"tcp://127.0.0.1:0\"\n\n[[listener]]\nidle_timeout = \"soon\"\n"),
        (
            "sockit: error: FILE:5: invalid value 'soon' for idle_timeout: \"soon\" is not a duration \
             such as 10s or 500ms: expected number at 0\n"
                .to_owned(),
            Some(2)
        )
    );
    assert_eq!(
        refused("framing = \"line\"\nframing = \"raw\"\n"),
        ("sockit: error: FILE:2: duplicate key\n".to_owned(), Some(2))
    );
}

#[test]
fn sighup_applies_each_listeners_limits_and_says_what_waits_for_a_restart() {
    let dir = TestDir::new("config-reload");
    let config = dir.path().join("sockit.toml");
    let file = |second_limit: usize, backlog: u32| {
        format!(
            "framing = \"line\"\n\
             [[listener]]\nendpoint = \"tcp://127.0.0.1:0\"\n\n\
             [[listener]]\nendpoint = \"tcp://127.0.0.1:0\"\nmax_connections = {second_limit}\n\
             backlog = {backlog}\n"
        )
    };
    std::fs::write(&config, file(1, 128)).unwrap();
    let server = Server::start_listening(&[], &["--config", config.to_str().unwrap()], 2);
    let mut a = tcp_client(server.addr(1));
    assert!(greeted_within(&mut a, GREETING, Duration::from_secs(10)));
    let mut b = tcp_client(server.addr(1));
    assert!(!greeted_within(&mut b, GREETING, Duration::from_millis(300)));

    std::fs::write(&config, file(2, 64)).unwrap();
    server.process.signal("HUP");
    let start = Instant::now();
    while server.process.count_log("SIGHUP: limits read again") < 2 {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", server.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(greeted_within(&mut b, GREETING, Duration::from_secs(10)));
    let log = server.log();
    assert_eq!(
        log.matches("changes more than limits and certificates; only those apply until a restart")
            .count(),
        1,
        "{log}"
    );
    assert!(log.contains("listener=2"), "{log}");
}
