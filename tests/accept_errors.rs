//! Accept errors, handled as the best servers do: out of file descriptors
//! (`prlimit --nofile=64`) under a flood of 200 clients, `sockit serve`
//! serves as many as it can, closes queued peers it cannot take, stays
//! nearly idle rather than retrying in a busy loop, never exits, and serves
//! new clients normally once the flood ends.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::{Server, read_exactly, tcp_client};

const GREETING: &[u8] = b"Hello, I am server\n";
const WAIT: Duration = Duration::from_secs(10);

/// The CPU time `pid` has used (user and system), from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("a command name") + 2..]
        .split(' ')
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// What a flood client has seen: the greeting, the server's close, or nothing yet.
#[derive(Debug, PartialEq)]
enum Seen {
    Greeted,
    Closed,
    Waiting,
}

fn seen(stream: &mut TcpStream) -> Seen {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0; 64];
    let seen = match stream.read(&mut buf) {
        Ok(0) => Seen::Closed,
        Ok(len) => {
            assert_eq!(&buf[..len], GREETING);
            Seen::Greeted
        }
        Err(error) if error.kind() == ErrorKind::WouldBlock => Seen::Waiting,
        Err(error) if error.kind() == ErrorKind::ConnectionReset => Seen::Closed,
        Err(error) => panic!("{error}"),
    };
    stream.set_nonblocking(false).unwrap();
    seen
}

#[test]
fn out_of_descriptors_the_server_sheds_without_spinning_and_recovers() {
    let Some(prlimit) = common::peer("prlimit", "runs the server under a descriptor limit (util-linux)")
    else {
        return;
    };
    let mut server = Server::start_under(
        &[&prlimit, "--nofile=64:64"],
        &["tcp://127.0.0.1:0", "--framing", "line"],
    );
    let addr = server.addr(0);
    let pid = server.process.pid();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(
        limits
            .lines()
            .any(|line| line.starts_with("Max open files") && line.contains(" 64 ")),
        "prlimit did not exec the server with the limit:\n{limits}"
    );

    // 200 clients connect and stay: the kernel completes every handshake
    // (the backlog is 1024), and the server runs out of descriptors.
    let mut flood: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    server.process.wait_for_log("out of file descriptors", WAIT);

    // Saturated, it waits rather than spins: well under a tenth of a core.
    let before = cpu_time(pid);
    let measured = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_time(pid) - before;
    let share = used.as_secs_f64() / measured.elapsed().as_secs_f64();
    assert!(
        share < 0.1,
        "the server used {used:?} of CPU in {:?}",
        measured.elapsed()
    );

    // It serves as many as its descriptors allow, and closes some of the
    // queued peers it cannot take rather than leave them all waiting.
    let seen: Vec<Seen> = flood.iter_mut().map(seen).collect();
    let greeted = seen.iter().filter(|s| **s == Seen::Greeted).count();
    let closed = seen.iter().filter(|s| **s == Seen::Closed).count();
    eprintln!(
        "CPU {used:?} in {:?}; of 200 clients {greeted} greeted, {closed} closed",
        measured.elapsed()
    );
    assert!((40..64).contains(&greeted), "{greeted} greeted");
    assert!(closed >= 1, "none of the queued peers was closed");
    assert_eq!(
        server.process.count_log("Accept new connection"),
        greeted,
        "{}",
        server.log()
    );
    // Those it took are served normally.
    let served = seen.iter().position(|s| *s == Seen::Greeted).unwrap();
    flood[served].set_read_timeout(Some(WAIT)).unwrap();
    flood[served].write_all(b"still here\n").unwrap();
    assert_eq!(read_exactly(&mut flood[served], 19), b"Hello, still here!\n");
    let warnings = server.process.count_log("out of file descriptors");
    assert!(
        warnings <= 5,
        "{warnings} warnings in about 3 s:\n{}",
        server.log()
    );

    // The flood ends; a new client is served normally.
    drop(flood);
    let mut client = tcp_client(addr);
    assert_eq!(read_exactly(&mut client, GREETING.len()), GREETING);
    client.write_all(b"client1\n").unwrap();
    assert_eq!(read_exactly(&mut client, 16), b"Hello, client1!\n");
    assert!(server.process.is_running(), "{}", server.log());
    drop(client);
    assert!(server.terminate(WAIT).success());
}
