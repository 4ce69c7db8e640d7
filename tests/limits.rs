//! The connection limit: past `--max-connections`, new peers wait in the
//! backlog, unserved, until a connection closes (`--when-full wait`, the
//! default), or are closed at once (`--when-full refuse`).

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{Server, read_exactly, read_to_close, tcp_client};

const GREETING: &[u8] = b"Hello, I am server\n";

#[test]
fn a_peer_past_the_limit_waits_until_a_connection_closes() {
    a_peer_past_the_limit_waits(&[]);
}

#[test]
fn when_full_wait_is_the_default() {
    a_peer_past_the_limit_waits(&["--when-full", "wait"]);
}

fn a_peer_past_the_limit_waits(when_full: &[&str]) {
    let args = [
        &["tcp://127.0.0.1:0", "--framing", "line", "--max-connections", "2"][..],
        when_full,
    ]
    .concat();
    let server = Server::start(&args);
    let addr = server.addr(0);
    let mut first = tcp_client(addr);
    let mut second = tcp_client(addr);
    assert_eq!(read_exactly(&mut first, GREETING.len()), GREETING);
    assert_eq!(read_exactly(&mut second, GREETING.len()), GREETING);

    // The kernel completes the handshake, but sockit does not accept it yet.
    let mut third = tcp_client(addr);
    third.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut byte = [0; 1];
    let waiting = third.read(&mut byte).expect_err("no greeting while at the limit");
    assert!(
        matches!(
            waiting.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{waiting:?}"
    );
    common::wait_for_count(
        &server.process,
        "Accept new connection",
        2,
        Duration::from_secs(10),
    );
    assert_eq!(
        server.process.count_log("Accept new connection"),
        2,
        "{}",
        server.log()
    );

    // The two served peers are still served normally.
    second.write_all(b"still here\n").unwrap();
    assert_eq!(read_exactly(&mut second, 19), b"Hello, still here!\n");

    first.write_all(b"exit\n").unwrap();
    assert_eq!(read_to_close(&mut first), b"");
    drop(first);
    third.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(read_exactly(&mut third, GREETING.len()), GREETING);
    third.write_all(b"third\n").unwrap();
    assert_eq!(read_exactly(&mut third, 14), b"Hello, third!\n");
    // The log is read by another thread: wait for the line rather than race it.
    common::wait_for_count(
        &server.process,
        "Accept new connection",
        3,
        Duration::from_secs(10),
    );
    assert_eq!(server.process.count_log("Accept new connection"), 3);
}

#[test]
fn when_full_refuse_closes_a_peer_past_the_limit_at_once() {
    let server = Server::start(&[
        "tcp://127.0.0.1:0",
        "--framing",
        "line",
        "--max-connections",
        "2",
        "--when-full",
        "refuse",
    ]);
    let addr = server.addr(0);
    let mut first = tcp_client(addr);
    let mut second = tcp_client(addr);
    assert_eq!(read_exactly(&mut first, GREETING.len()), GREETING);
    assert_eq!(read_exactly(&mut second, GREETING.len()), GREETING);

    // Closed before the greeting, without a word.
    for _ in 0..3 {
        let mut refused = tcp_client(addr);
        assert_eq!(read_to_close(&mut refused), b"");
    }
    let line = server
        .process
        .wait_for_log("at the connection limit", Duration::from_secs(10));
    assert!(line.contains("refused=1"), "{line}");
    // Logged once a second at most, not once a peer.
    assert_eq!(server.process.count_log("at the connection limit"), 1);

    // The two served peers are still served normally.
    second.write_all(b"still here\n").unwrap();
    assert_eq!(read_exactly(&mut second, 19), b"Hello, still here!\n");

    // Once a connection closes, a new peer is served.
    first.write_all(b"exit\n").unwrap();
    assert_eq!(read_to_close(&mut first), b"");
    drop(first);
    let start = std::time::Instant::now();
    let mut fourth = loop {
        // The permit comes back as the connection's task ends, a moment
        // after the peer sees the close.
        let mut peer = tcp_client(addr);
        let mut greeting = vec![0; GREETING.len()];
        match peer.read_exact(&mut greeting) {
            Ok(()) => {
                assert_eq!(greeting, GREETING);
                break peer;
            }
            Err(error) => assert!(
                start.elapsed() < Duration::from_secs(10),
                "still refused: {error}"
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    fourth.write_all(b"fourth\n").unwrap();
    assert_eq!(read_exactly(&mut fourth, 15), b"Hello, fourth!\n");
}

/// The server's resident memory, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server's status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// The server's CPU time so far, in clock ticks (utime + stime).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the server's stat");
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Clients that send requests as fast as the kernel takes them and never
/// read: each connection stops being read while the replies it owes wait
/// (at most one read's worth), so the server's memory stays bounded however
/// long they go on, and everyone else is served.
#[test]
fn clients_that_send_forever_and_never_read_cannot_grow_the_servers_memory() {
    const CLIENTS: usize = 20;
    // Small kernel buffers, so the backlog the server works through before
    // it stops reading is small too.
    let server = Server::start(&[
        "tcp://127.0.0.1:0",
        "--framing",
        "line",
        "--rcvbuf",
        "64K",
        "--sndbuf",
        "64K",
    ]);
    let pid = server.process.pid();
    let mut bystander = tcp_client(server.addr(0));
    assert_eq!(read_exactly(&mut bystander, GREETING.len()), GREETING);
    let before = rss_bytes(pid);
    let lines = b"ab\n".repeat(20_000);
    let mut floods = Vec::new();
    let mut sent = 0;
    for _ in 0..CLIENTS {
        let flood = std::net::TcpStream::connect(server.addr(0)).unwrap();
        socket2::SockRef::from(&flood)
            .set_send_buffer_size(64 * 1024)
            .unwrap();
        flood.set_nonblocking(true).unwrap();
        floods.push(flood);
    }
    // Send until the kernel takes nothing more for a second: the server has
    // stopped reading every one of them.
    let mut stalled_since = std::time::Instant::now();
    while stalled_since.elapsed() < Duration::from_secs(1) {
        let mut progress = false;
        for flood in &mut floods {
            match flood.write(&lines) {
                Ok(n) => {
                    sent += n;
                    progress = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("flood: {e}"),
            }
        }
        if progress {
            stalled_since = std::time::Instant::now();
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Then until the server has worked through what it had taken in.
    let mut cpu = cpu_ticks(pid);
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(200));
        let now = cpu_ticks(pid);
        if now == cpu {
            break;
        }
        cpu = now;
    }
    let grown = rss_bytes(pid).saturating_sub(before);
    eprintln!("{CLIENTS} clients sent {sent} bytes unread; server RSS grew {grown} bytes");
    assert!(sent > CLIENTS * 200_000, "the floods sent only {sent} bytes");
    // One read's replies per connection at most (16 KiB of `ab` lines makes
    // about 60 KiB of replies), with room for the allocator.
    assert!(
        grown < (CLIENTS as u64) * 256 * 1024,
        "RSS grew {grown} bytes for {sent} sent"
    );
    bystander.write_all(b"still served\n").unwrap();
    let want = b"Hello, still served!\n";
    assert_eq!(read_exactly(&mut bystander, want.len()), want);
}

/// The number before `word` in `line` (`… 812 closed and …`).
fn count_before(line: &str, word: &str) -> usize {
    line.split(word)
        .next()
        .and_then(|before| before.rsplit(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no count before {word:?} in {line:?}"))
}

#[test]
fn a_flood_of_connections_is_logged_in_a_bounded_number_of_lines_that_count_them_all() {
    const FLOOD: usize = 1000;
    let mut server = Server::start(&["tcp://127.0.0.1:0"]);
    let addr = server.addr(0);
    for _ in 0..FLOOD {
        let mut client = tcp_client(addr);
        client.write_all(b"x\nexit\n").unwrap();
        assert_eq!(read_to_close(&mut client), b"Hello, I am serverHello, x!\n");
    }
    server.process.signal("TERM");
    assert!(server.process.wait(Duration::from_secs(10)).success());
    let log = server.log();
    let opened_lines = server.process.count_log("Accept new connection from");
    let closed_lines = server.process.count_log(" closed.");
    let summaries: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("not logged one by one"))
        .collect();
    assert!(!summaries.is_empty(), "{log}");
    // Every connection is counted, one by one or in a summary line.
    let opened: usize = summaries
        .iter()
        .map(|line| count_before(line, " more connections opened"))
        .sum();
    let closed: usize = summaries
        .iter()
        .map(|line| count_before(line, " closed and"))
        .sum();
    assert_eq!(opened_lines + opened, FLOOD, "{log}");
    assert_eq!(closed_lines + closed, FLOOD, "{log}");
    // A burst of 200, then 20 lines a second, and a summary at most per
    // line written: far fewer than the 2,000 lines of old.
    let lines = log.lines().count();
    assert!(lines < 600, "{lines} lines for {FLOOD} connections");
    assert!(
        summaries[0].ends_with(
            "not logged one by one (at most 20 such lines a second per listener, after a burst of 200)"
        ),
        "{}",
        summaries[0]
    );
}

/// The server's resident memory, from /proc.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn the_memory_a_huge_line_took_is_given_back_after_it() {
    // The 64 MB: past glibc's largest mmap threshold (32 MiB), so what is
    // freed goes back to the system, not to the allocator's heap for reuse.
    const LINE: usize = 64 << 20;
    let server = Server::start(&["tcp://127.0.0.1:0", "--framing", "line", "--max-message", "256M"]);
    let pid = server.process.pid();
    let before = rss_kib(pid);
    for _ in 0..2 {
        let mut client = tcp_client(server.addr(0));
        assert_eq!(read_exactly(&mut client, GREETING.len()), GREETING);
        let mut line = vec![b'y'; LINE];
        line.push(b'\n');
        let writer = {
            let mut client = client.try_clone().unwrap();
            std::thread::spawn(move || client.write_all(&line).unwrap())
        };
        let reply = read_exactly(&mut client, LINE + 9);
        assert!(reply.starts_with(b"Hello, yyy") && reply.ends_with(b"yyy!\n"));
        writer.join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_kib(pid);
    // Each line took more than 128 MiB while it was read and answered.
    assert!(
        after < before + 16 * 1024,
        "RSS {before} KiB before, {after} KiB after"
    );
}
