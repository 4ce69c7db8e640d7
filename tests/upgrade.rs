//! Upgrade in place (SIGUSR2), with real processes: every listener handed
//! to the new process (TCP, UDP, Unix stream, the metrics endpoint), no
//! client refused or reset while clients connect all through it, a
//! conversation under way finished by the old process, the pid file
//! handed on; and failed upgrades (a binary that exits at once, one that
//! is never ready, a config that became invalid) leave the old process
//! serving, and say so.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Running, TestDir, read_to_close};

const WAIT: Duration = Duration::from_secs(15);

/// `sockit serve ARGS` started from `binary`, with its log, and the
/// address of its first listener.
fn serve(binary: &Path, args: &[&str]) -> (Running, SocketAddr) {
    let process = Running::start(Command::new(binary).arg("serve").args(args));
    let line = process.wait_for_log("listening on tcp://", WAIT);
    let addr = line
        .split("listening on tcp://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (process, addr)
}

/// A whole greeting conversation on a new connection: `Ok` with exactly
/// what the server must say, or what went wrong.
fn greet(addr: SocketAddr, name: &str) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).map_err(|error| format!("connect: {error}"))?;
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
        .write_all(format!("{name}\nexit\n").as_bytes())
        .map_err(|error| format!("write: {error}"))?;
    let mut got = Vec::new();
    stream
        .read_to_end(&mut got)
        .map_err(|error| format!("read: {error}"))?;
    let want = format!("Hello, I am serverHello, {name}!\n");
    if got == want.as_bytes() {
        Ok(())
    } else {
        Err(format!("got {:?}", String::from_utf8_lossy(&got)))
    }
}

/// The pid in `path`, once it is written and differs from `not`.
fn pid_in(path: &Path, not: Option<u32>) -> u32 {
    let start = Instant::now();
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
            .filter(|pid| Some(*pid) != not)
        {
            return pid;
        }
        assert!(start.elapsed() < WAIT, "no new pid in {}", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| stat.contains(") Z "))
}

/// Kills the process in a pid file when dropped: the new process outlives
/// the old one, and the test.
struct Reaper(PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
        {
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
        }
    }
}

#[test]
fn an_upgrade_hands_every_listener_over_and_refuses_no_one() {
    let dir = TestDir::new("upgrade-all");
    let pid_file = dir.path().join("sockit.pid");
    let _reaper = Reaper(pid_file.clone());
    let unix = dir.socket("greet.sock");
    let (mut old, addr) = serve(
        Path::new(env!("CARGO_BIN_EXE_sockit")),
        &[
            "tcp://127.0.0.1:0",
            "udp://127.0.0.1:0",
            &format!("unix:{unix}"),
            "--metrics",
            "127.0.0.1:0",
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
    );
    let old_pid = pid_in(&pid_file, None);
    assert_eq!(old_pid, old.pid());
    let udp: SocketAddr = old
        .wait_for_log("listening on udp://", WAIT)
        .split("listening on udp://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .expect("the UDP address");
    let metrics: SocketAddr = old
        .wait_for_log("metrics on http://", WAIT)
        .split("metrics on http://")
        .nth(1)
        .and_then(|rest| rest.trim().strip_suffix("/metrics"))
        .and_then(|addr| addr.parse().ok())
        .expect("the metrics address");

    // Clients connect one after another all through the upgrade.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..2)
        .map(|n| {
            let (stop, served) = (Arc::clone(&stop), Arc::clone(&served));
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    match greet(addr, &format!("c{n}-{i}")) {
                        Ok(()) => {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => failures.push(format!("c{n}-{i}: {error}")),
                    }
                    i += 1;
                }
                failures
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    signal(old_pid, "USR2");
    let new_pid = pid_in(&pid_file, Some(old_pid));
    assert_ne!(new_pid, old_pid);
    let status = old.wait(WAIT);
    assert!(status.success(), "{status}; log:\n{}", old.log());
    let before = served.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let failures = client.join().unwrap();
        assert!(failures.is_empty(), "{failures:?}; log:\n{}", old.log());
    }
    assert!(
        served.load(Ordering::Relaxed) > before,
        "the new process served the clients after"
    );

    let log = old.log();
    for line in [
        "SIGUSR2: upgrading: starting ",
        &format!("upgrade: pid {new_pid} serves; this process stops accepting and drains"),
        "upgrade: serving; the old process stops accepting now",
        &format!("shut down cleanly; pid {new_pid} serves on"),
        "listening on tcp://127.0.0.1:",
    ] {
        assert!(log.contains(line), "{line:?} in:\n{log}");
    }
    assert_eq!(old.count_log("(handed over, greet service"), 3, "{log}");

    // The new process serves every listener the old one had.
    greet(addr, "after").unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    client.send_to(b"udp", udp).unwrap();
    let mut buf = [0; 64];
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"Hello, udp");
    let mut stream = std::os::unix::net::UnixStream::connect(&unix).unwrap();
    stream.write_all(b"unix\nexit\n").unwrap();
    assert_eq!(read_to_close(&mut stream), b"Hello, I am serverHello, unix!\n");
    let (status, _, _) = common::http(metrics, "GET", "/metrics", WAIT);
    assert_eq!(status, "HTTP/1.1 200 OK");

    // Its own clean shutdown removes the pid file and the socket file.
    signal(new_pid, "TERM");
    let start = Instant::now();
    while alive(new_pid) {
        assert!(start.elapsed() < WAIT, "pid {new_pid} did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!pid_file.exists(), "the pid file is removed");
    assert!(!Path::new(&unix).exists(), "the socket file is removed");
}

#[test]
fn a_conversation_under_way_is_finished_by_the_old_process() {
    let dir = TestDir::new("upgrade-conversation");
    let pid_file = dir.path().join("sockit.pid");
    let _reaper = Reaper(pid_file.clone());
    let (mut old, addr) = serve(
        Path::new(env!("CARGO_BIN_EXE_sockit")),
        &[
            "tcp://127.0.0.1:0",
            "--framing",
            "line",
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
    );
    let old_pid = pid_in(&pid_file, None);
    let mut talking = common::tcp_client(addr);
    common::expect(&mut talking, b"Hello, I am server\n");
    talking.write_all(b"before\n").unwrap();
    common::expect(&mut talking, b"Hello, before!\n");
    signal(old_pid, "USR2");
    let new_pid = pid_in(&pid_file, Some(old_pid));
    old.wait_for_log("this process stops accepting and drains", WAIT);
    // The old process is still there for this conversation, and answers it whole.
    for word in ["during", "still"] {
        std::thread::sleep(Duration::from_millis(200));
        talking.write_all(format!("{word}\n").as_bytes()).unwrap();
        common::expect(&mut talking, format!("Hello, {word}!\n").as_bytes());
    }
    assert!(alive(old_pid), "the old process waits for its conversation");
    talking.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut talking), b"");
    assert!(old.wait(WAIT).success(), "{}", old.log());
    let mut new = common::tcp_client(addr);
    new.write_all(b"new\nexit\n").unwrap();
    assert_eq!(read_to_close(&mut new), b"Hello, I am server\nHello, new!\n");
    signal(new_pid, "TERM");
}

/// A copy of the sockit binary in `dir`, to run from there and replace.
fn own_copy(dir: &TestDir) -> PathBuf {
    let copy = dir.path().join("sockit");
    std::fs::copy(env!("CARGO_BIN_EXE_sockit"), &copy).unwrap();
    copy
}

/// Replaces the file at `path` with a shell script (by rename: the running
/// binary's file cannot be written).
fn replace_with_script(path: &Path, script: &str) {
    let new = path.with_extension("new");
    std::fs::write(&new, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&new, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::rename(&new, path).unwrap();
}

#[test]
fn a_new_binary_that_exits_or_is_never_ready_leaves_the_old_one_serving() {
    let dir = TestDir::new("upgrade-failed");
    let binary = own_copy(&dir);
    let (old, addr) = serve(&binary, &["tcp://127.0.0.1:0", "--upgrade-timeout", "1s"]);

    replace_with_script(&binary, "exit 3");
    signal(old.pid(), "USR2");
    let line = old.wait_for_log("upgrade failed: ", WAIT);
    assert!(
        line.contains(": it exited (exit status: 3) before it was ready; this process serves on"),
        "{line}"
    );
    greet(addr, "still").unwrap();

    replace_with_script(&binary, "sleep 30");
    signal(old.pid(), "USR2");
    std::thread::sleep(Duration::from_millis(200));
    // One upgrade at a time.
    signal(old.pid(), "USR2");
    old.wait_for_log(
        "SIGUSR2: an upgrade is already under way; this one is ignored",
        WAIT,
    );
    let line = old.wait_for_log("it was not ready within 1s", WAIT);
    assert!(
        line.ends_with("it was not ready within 1s; this process serves on"),
        "{line}"
    );
    greet(addr, "again").unwrap();
    // The script that was never ready was stopped.
    let pid: u32 = line
        .split("upgrade failed: pid ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|pid| pid.parse().ok())
        .expect("the new process's pid");
    let start = Instant::now();
    while alive(pid) {
        assert!(start.elapsed() < WAIT, "pid {pid} was left running");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_config_that_became_invalid_fails_the_upgrade() {
    let dir = TestDir::new("upgrade-config");
    let config = dir.path().join("sockit.toml");
    std::fs::write(&config, "endpoint = \"tcp://127.0.0.1:0\"\n").unwrap();
    let (old, addr) = serve(
        Path::new(env!("CARGO_BIN_EXE_sockit")),
        &["--config", config.to_str().unwrap()],
    );
    std::fs::write(
        &config,
        "endpoint = \"tcp://127.0.0.1:0\"\nmax_connections = \"many\"\n",
    )
    .unwrap();
    signal(old.pid(), "USR2");
    let line = old.wait_for_log("upgrade failed: ", WAIT);
    assert!(
        line.contains("it exited (exit status: 2) before it was ready"),
        "{line}"
    );
    // The new process said why, in the same log.
    old.wait_for_log("max_connections", WAIT);
    greet(addr, "served").unwrap();
}

#[test]
fn a_tls_listener_and_an_abstract_name_are_handed_over_as_they_are() {
    let pki = common::pki::Pki::new("upgrade-tls-pki");
    let dir = TestDir::new("upgrade-tls");
    let pid_file = dir.path().join("sockit.pid");
    let _reaper = Reaper(pid_file.clone());
    let name = common::abstract_name("upgrade-tls");
    let (old, addr) = serve(
        Path::new(env!("CARGO_BIN_EXE_sockit")),
        &[
            "tcp://127.0.0.1:0",
            "tls://127.0.0.1:0",
            &format!("unix:@{name}"),
            "--cert",
            &pki.file("cert.pem"),
            "--key",
            &pki.file("key.pem"),
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
    );
    let tls_port = old
        .wait_for_log("listening on tls://", WAIT)
        .split("listening on tls://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .expect("the TLS port");
    let old_pid = pid_in(&pid_file, None);
    signal(old_pid, "USR2");
    let new_pid = pid_in(&pid_file, Some(old_pid));
    old.wait_for_log(&format!("shut down cleanly; pid {new_pid} serves on"), WAIT);
    assert_eq!(
        old.count_log(&format!(
            "listening on tls://127.0.0.1:{tls_port} (handed over, greet service"
        )),
        1,
        "{}",
        old.log()
    );
    // The new process speaks TLS on the socket handed over, with the
    // certificate it read itself.
    let out = common::run_with_timeout(
        common::sockit().args([
            "connect",
            &format!("tls://localhost:{tls_port}"),
            "--ca",
            &pki.file("ca.pem"),
            "bob",
        ]),
        WAIT,
    );
    assert_eq!(common::stdout_of(&out), "Hello, I am server\nHello, bob!\n");
    let out = common::run_with_timeout(
        common::sockit().args(["connect", &format!("unix:@{name}"), "alice"]),
        WAIT,
    );
    assert_eq!(common::stdout_of(&out), "Hello, I am server\nHello, alice!\n");
    greet(addr, "plain").unwrap();
    signal(new_pid, "TERM");
}
