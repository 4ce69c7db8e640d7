//! Socket activation end to end: `sockit serve --systemd` serves the sockets
//! handed over in `LISTEN_FDS`, by a launcher of the test's own (every kind
//! of socket) and by the real `systemd-socket-activate`; it refuses sockets
//! meant for another process, and says so when none were passed; and
//! `Server::adopt` says what it cannot serve.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Running, TestDir, peer, read_exactly, run_with_timeout, sockit, tcp_client};
use socket2::{Domain, SockAddr, Socket, Type};
use sockit::proxy::{ProxyProtocol, TrustedProxy};
use sockit::{Greet, Server};

/// How long any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(10);
/// What every stream connection is greeted with.
const GREETING: &[u8] = b"Hello, I am server";

/// Binds a socket of every kind sockit serves, as systemd would for a
/// .socket unit, and passes them to `sockit serve --systemd` as systemd
/// does: moved to descriptors 3 to 7 in a child process, which sets
/// `LISTEN_FDS`, `LISTEN_PID` (its own id, or with `parent` its parent's, as
/// a stale variable would) and `LISTEN_FDNAMES` and becomes sockit (`serve
/// --systemd`, or the arguments after the first three). Prints
/// the child's id and the ports as one JSON line, says how sockit exited, and
/// holds the sockets until killed: they are this process's, not sockit's.
const LAUNCHER: &str = r#"
import fcntl, json, os, socket, sys, time
sockit, directory, listen_pid = sys.argv[1:4]
args = sys.argv[4:] or ["serve", "--systemd"]
def unix(kind, name):
    s = socket.socket(socket.AF_UNIX, kind)
    s.bind(os.path.join(directory, name))
    return s
tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.bind(("127.0.0.1", 0))
tcp.listen(16)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 0))
stream = unix(socket.SOCK_STREAM, "stream.sock")
stream.listen(16)
dgram = unix(socket.SOCK_DGRAM, "dgram.sock")
seqpacket = unix(socket.SOCK_SEQPACKET, "seqpacket.sock")
seqpacket.listen(16)
made = [tcp, udp, stream, dgram, seqpacket]
# Out of the way first, so that moving one to 3.. never overwrites another.
high = [fcntl.fcntl(s.fileno(), fcntl.F_DUPFD_CLOEXEC, 100) for s in made]
pid = os.fork()
if pid == 0:
    for i, fd in enumerate(high):
        os.dup2(fd, 3 + i)
    os.environ["LISTEN_FDS"] = str(len(made))
    os.environ["LISTEN_PID"] = str(os.getpid() if listen_pid == "own" else os.getppid())
    os.environ["LISTEN_FDNAMES"] = "web:dns:local:local-dgram:local-seqpacket"
    os.execv(sockit, [sockit] + args)
print(json.dumps({"pid": pid, "tcp": tcp.getsockname()[1], "udp": udp.getsockname()[1]}), flush=True)
_, status = os.waitpid(pid, 0)
print("launcher: sockit exited with %d" % os.waitstatus_to_exitcode(status), file=sys.stderr, flush=True)
while True:
    time.sleep(60)
"#;

/// The launcher, running; its stderr and sockit's are collected.
struct Launched {
    launcher: Running,
    /// sockit's process id.
    pid: u32,
    tcp: SocketAddr,
    udp: SocketAddr,
}

/// Starts [`LAUNCHER`] with sockets in `dir`, and `NOTIFY_SOCKET` set to
/// `notify` if given.
fn launch(dir: &TestDir, listen_pid: &str, notify: Option<&str>) -> Launched {
    launch_with(dir, listen_pid, notify, &[])
}

/// [`launch`], running `sockit ARGS` instead of `sockit serve --systemd`.
fn launch_with(dir: &TestDir, listen_pid: &str, notify: Option<&str>, args: &[&str]) -> Launched {
    let mut command = Command::new("python3");
    command
        .args(["-c", LAUNCHER, env!("CARGO_BIN_EXE_sockit")])
        .arg(dir.path())
        .arg(listen_pid)
        .args(args)
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("NOTIFY_SOCKET");
    if let Some(notify) = notify {
        command.env("NOTIFY_SOCKET", notify);
    }
    let mut launcher = Running::start_with_stdout(&mut command, Stdio::piped());
    let stdout = launcher.child().stdout.take().expect("stdout is piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the launcher's line");
    let said: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("launcher said {line:?} ({e}); log:\n{}", launcher.log()));
    let port = |key: &str| u16::try_from(said[key].as_u64().expect("a port")).unwrap();
    Launched {
        pid: u32::try_from(said["pid"].as_u64().expect("a pid")).unwrap(),
        tcp: SocketAddr::from(([127, 0, 0, 1], port("tcp"))),
        udp: SocketAddr::from(([127, 0, 0, 1], port("udp"))),
        launcher,
    }
}

/// Sends `signal` to process `pid`.
fn kill(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Greets over a stream: the greeting, then `client1` answered.
fn greet_stream(stream: &mut (impl Read + Write)) {
    assert_eq!(read_exactly(stream, GREETING.len()), GREETING);
    stream.write_all(b"client1").unwrap();
    assert_eq!(read_exactly(stream, 15), b"Hello, client1!");
}

/// Sends `client1` in a datagram to `server` and expects the greet reply.
fn greet_udp(server: SocketAddr) {
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    client.send_to(b"client1", server).unwrap();
    let mut reply = [0; 64];
    let (len, from) = client.recv_from(&mut reply).expect("a reply");
    assert_eq!((&reply[..len], from), (&b"Hello, client1"[..], server));
}

/// The message of a log line, without its timestamp and level.
fn message(line: &str) -> &str {
    line.split_once("INFO ").map_or(line, |(_, message)| message)
}

#[test]
fn serves_every_kind_of_socket_passed_in_listen_fds_and_leaves_them_to_their_owner() {
    if peer("python3", "it hands sockets over as systemd does").is_none() {
        return;
    }
    let dir = TestDir::new("systemd-launcher");
    let notify = UnixDatagram::bind(dir.socket("notify.sock")).unwrap();
    notify.set_read_timeout(Some(WAIT)).unwrap();
    let launched = launch(&dir, "own", Some(&dir.socket("notify.sock")));
    let log = &launched.launcher;
    let path = |name: &str| dir.socket(name);
    let want = [
        format!(
            "tcp://{} (passed by systemd as fd 3 \"web\", greet service, auto framing)",
            launched.tcp
        ),
        format!(
            "udp://{} (passed by systemd as fd 4 \"dns\", greet service)",
            launched.udp
        ),
        format!(
            "unix:{} (passed by systemd as fd 5 \"local\", greet service, auto framing)",
            path("stream.sock")
        ),
        format!(
            "unix-dgram:{} (passed by systemd as fd 6 \"local-dgram\", greet service)",
            path("dgram.sock")
        ),
        format!(
            "seqpacket:{} (passed by systemd as fd 7 \"local-seqpacket\", greet service)",
            path("seqpacket.sock")
        ),
    ];
    for want in &want {
        let line = log.wait_for_log(&format!("listening on {want}"), WAIT);
        assert_eq!(message(&line), format!("listening on {want}"));
    }
    let mut ready = [0; 64];
    let len = notify.recv(&mut ready).expect("READY=1 on NOTIFY_SOCKET");
    assert_eq!(&ready[..len], b"READY=1\n");

    greet_stream(&mut tcp_client(launched.tcp));
    greet_udp(launched.udp);
    let mut unix = UnixStream::connect(path("stream.sock")).unwrap();
    unix.set_read_timeout(Some(WAIT)).unwrap();
    greet_stream(&mut unix);
    let client = UnixDatagram::bind(path("client.sock")).unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    client.send_to(b"client1", path("dgram.sock")).unwrap();
    let mut reply = [0; 64];
    let len = client.recv(&mut reply).expect("a Unix datagram reply");
    assert_eq!(&reply[..len], b"Hello, client1");
    let seqpacket = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
    seqpacket
        .connect(&SockAddr::unix(path("seqpacket.sock")).unwrap())
        .unwrap();
    seqpacket.set_read_timeout(Some(WAIT)).unwrap();
    let mut packet = [0; 64];
    let len = (&seqpacket).read(&mut packet).unwrap();
    assert_eq!(&packet[..len], GREETING);
    (&seqpacket).write_all(b"client1").unwrap();
    let len = (&seqpacket).read(&mut packet).unwrap();
    assert_eq!(&packet[..len], b"Hello, client1!");

    // A reload is bracketed for the service manager: RELOADING=1 with the
    // monotonic time it began, then READY=1.
    kill("HUP", launched.pid);
    let len = notify.recv(&mut ready).expect("RELOADING=1 on NOTIFY_SOCKET");
    let reloading = std::str::from_utf8(&ready[..len]).unwrap().to_owned();
    let usec = reloading
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{reloading:?}"));
    assert!(usec.parse::<u64>().is_ok_and(|usec| usec > 0), "{reloading:?}");
    let len = notify.recv(&mut ready).expect("READY=1 after the reload");
    assert_eq!(&ready[..len], b"READY=1\n");

    // Graceful shutdown, as for sockets it bound.
    kill("TERM", launched.pid);
    log.wait_for_log("launcher: sockit exited with 0", WAIT);
    assert!(log.log().contains("shut down cleanly"), "{}", log.log());
    let len = notify.recv(&mut ready).expect("STOPPING=1 on NOTIFY_SOCKET");
    assert_eq!(&ready[..len], b"STOPPING=1\n");
    // The sockets are still the launcher's, as a .socket unit's are
    // systemd's: a new peer waits in the backlog for the next sockit, and the
    // socket files stay.
    let mut waiting = TcpStream::connect(launched.tcp).expect("the backlog is still there");
    waiting
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let unanswered = waiting.read(&mut [0; 1]).unwrap_err();
    assert_eq!(unanswered.kind(), std::io::ErrorKind::WouldBlock, "{unanswered}");
    for name in ["stream.sock", "dgram.sock", "seqpacket.sock"] {
        assert!(common::is_socket(&path(name)), "{name} was removed");
    }
}

#[test]
fn a_config_file_listener_with_systemd_set_serves_the_passed_sockets() {
    if peer("python3", "it hands sockets over as systemd does").is_none() {
        return;
    }
    let dir = TestDir::new("systemd-config");
    let config = dir.path().join("sockit.toml");
    let bound = free_port("127.0.0.1", Type::STREAM);
    std::fs::write(
        &config,
        format!(
            "[[listener]]\nsystemd = true\nservice = \"echo\"\n\n\
             [[listener]]\nendpoint = \"tcp://127.0.0.1:{bound}\"\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let launched = launch_with(&dir, "own", None, &["serve", "--config", config]);
    let log = &launched.launcher;
    let line = log.wait_for_log(&format!("listening on tcp://{}", launched.tcp), WAIT);
    assert_eq!(
        message(&line),
        format!(
            "listening on tcp://{} (passed by systemd as fd 3 \"web\", echo service, raw framing)",
            launched.tcp
        )
    );
    log.wait_for_log(
        &format!("listening on tcp://127.0.0.1:{bound} (greet service"),
        WAIT,
    );
    let mut echo = tcp_client(launched.tcp);
    echo.write_all(b"client1").unwrap();
    assert_eq!(read_exactly(&mut echo, 7), b"client1");
    greet_stream(&mut tcp_client(SocketAddr::from(([127, 0, 0, 1], bound))));
    kill("TERM", launched.pid);
    log.wait_for_log("launcher: sockit exited with 0", WAIT);

    // One listener serves them all: two would have to share them out.
    let dir = TestDir::new("systemd-config-two");
    let two = dir.path().join("two.toml");
    std::fs::write(
        &two,
        "[[listener]]\nsystemd = true\n\n[[listener]]\nsystemd = true\n",
    )
    .unwrap();
    let launched = launch_with(&dir, "own", None, &["serve", "--config", two.to_str().unwrap()]);
    let log = &launched.launcher;
    log.wait_for_log("launcher: sockit exited with 1", WAIT);
    let want = "sockit: error: systemd is set for 2 listeners: the sockets systemd passes are \
                served by one (its unit says where they listen)";
    assert!(
        log.log().lines().any(|line| line == want),
        "want {want:?}; log:\n{}",
        log.log()
    );
}

#[test]
fn sockets_passed_to_another_process_are_not_taken() {
    if peer("python3", "it hands sockets over as systemd does").is_none() {
        return;
    }
    let dir = TestDir::new("systemd-other-pid");
    let launched = launch(&dir, "parent", None);
    let log = &launched.launcher;
    log.wait_for_log("launcher: sockit exited with 1", WAIT);
    let want = format!(
        "sockit: error: --systemd: the sockets were passed to process {} (LISTEN_PID), \
         not to this one ({}); they are not taken",
        log.pid(),
        launched.pid
    );
    assert!(
        log.log().lines().any(|line| line == want),
        "want {want:?}; log:\n{}",
        log.log()
    );
    assert!(!log.log().contains("listening on"), "{}", log.log());
}

#[test]
fn systemd_with_no_sockets_passed_says_how_to_pass_them() {
    let output = run_with_timeout(
        sockit()
            .args(["serve", "--systemd"])
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID"),
        WAIT,
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "sockit: error: --systemd: no sockets were passed (LISTEN_FDS is not set); \
         start sockit from a .socket unit or systemd-socket-activate\n"
    );
    assert_eq!(output.stdout, b"");
}

#[test]
fn systemd_and_endpoints_exclude_each_other() {
    let output = run_with_timeout(sockit().args(["serve", "--systemd", "tcp://127.0.0.1:0"]), WAIT);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "sockit: error: the argument '--systemd' cannot be used with '[ENDPOINT]...' \
         (see 'sockit serve --help')\n"
    );
}

/// A port free on `ip` a moment ago.
fn free_port(ip: &str, kind: Type) -> u16 {
    let addr = SocketAddr::new(ip.parse().unwrap(), 0);
    let socket = Socket::new(Domain::for_address(addr), kind, None).unwrap();
    socket.bind(&addr.into()).unwrap();
    socket.local_addr().unwrap().as_socket().unwrap().port()
}

/// `systemd-socket-activate ARGS sockit serve --systemd`, which becomes
/// sockit on the first peer; once it listens.
fn socket_activate(args: &[String]) -> Option<Running> {
    let program = peer("systemd-socket-activate", "Debian's systemd package has it")?;
    let activate = Running::start(
        Command::new(program)
            .args(args)
            .args([env!("CARGO_BIN_EXE_sockit"), "serve", "--systemd"])
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("NOTIFY_SOCKET"),
    );
    activate.wait_for_log("Listening on ", WAIT);
    Some(activate)
}

#[test]
fn systemd_socket_activate_hands_a_tcp_socket_to_sockit() {
    activate_tcp("127.0.0.1");
}

#[test]
fn systemd_socket_activate_hands_an_ipv6_tcp_socket_to_sockit() {
    if TcpListener::bind("[::1]:0").is_err() {
        common::skip("::1 cannot be bound here (IPv6 disabled)");
        return;
    }
    activate_tcp("::1");
}

/// `systemd-socket-activate` listening on TCP at `ip`, a free port.
fn activate_tcp(ip: &str) {
    let port = free_port(ip, Type::STREAM);
    let addr = SocketAddr::new(ip.parse().unwrap(), port);
    let Some(activate) = socket_activate(&["-l".into(), addr.to_string(), "--fdname=web".into()]) else {
        return;
    };
    // The first peer starts sockit, which greets it.
    let mut client = tcp_client(addr);
    greet_stream(&mut client);
    let line = activate.wait_for_log("listening on", WAIT);
    assert_eq!(
        message(&line),
        format!("listening on tcp://{addr} (passed by systemd as fd 3 \"web\", greet service, auto framing)")
    );
    greet_stream(&mut tcp_client(addr));
    drop(client);
    kill("TERM", activate.pid());
    let mut activate = activate;
    assert!(activate.wait(WAIT).success(), "{}", activate.log());
    assert!(activate.log().contains("shut down cleanly"), "{}", activate.log());
}

#[test]
fn systemd_socket_activate_hands_a_udp_socket_to_sockit() {
    let port = free_port("127.0.0.1", Type::DGRAM);
    let listen = format!("127.0.0.1:{port}");
    let Some(mut activate) = socket_activate(&["--datagram".into(), "-l".into(), listen.clone()]) else {
        return;
    };
    // The first datagram starts sockit, which answers it and the next.
    greet_udp(listen.parse().unwrap());
    let line = activate.wait_for_log("listening on", WAIT);
    assert!(
        message(&line).starts_with(&format!("listening on udp://{listen} (passed by systemd as fd 3")),
        "{line}"
    );
    greet_udp(listen.parse().unwrap());
    kill("TERM", activate.pid());
    assert!(activate.wait(WAIT).success(), "{}", activate.log());
}

/// What `Server::adopt` says of `socket`: its error and the cause.
async fn refusal(socket: OwnedFd) -> (String, String) {
    let fd = socket.as_raw_fd();
    let error = Server::new(Greet).adopt(socket).expect_err("not servable");
    let cause = std::error::Error::source(&error).expect("a cause").to_string();
    assert_eq!(error.to_string(), format!("cannot serve descriptor {fd}"));
    (error.to_string(), cause)
}

/// What sockit serves, as `Server::adopt` says when refusing a socket.
const SERVED: &str = "sockit serves listening TCP, Unix stream and seqpacket sockets, \
                      and bound UDP and Unix datagram sockets";

#[tokio::test]
async fn adopt_serves_a_listener_made_elsewhere_where_it_is() {
    let made = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = made.local_addr().unwrap();
    let listener = Server::new(Greet).adopt(OwnedFd::from(made)).unwrap();
    assert_eq!(listener.local_endpoint().to_string(), format!("tcp://{addr}"));
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = tokio::spawn(listener.serve(stop.clone().cancelled_owned()));
    let greeted = tokio::task::spawn_blocking(move || greet_stream(&mut tcp_client(addr)));
    greeted.await.unwrap();
    stop.cancel();
    tokio::time::timeout(WAIT, serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn adopt_says_what_it_cannot_serve() {
    // A connection, as systemd's Accept=yes would pass.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let connection = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (_, cause) = refusal(OwnedFd::from(connection)).await;
    assert_eq!(
        cause,
        format!(
            "it is a TCP socket that is not listening (a connection, such as systemd's \
             Accept=yes passes: use Accept=no); {SERVED}"
        )
    );
    let (connection, _peer) = UnixStream::pair().unwrap();
    let (_, cause) = refusal(OwnedFd::from(connection)).await;
    assert_eq!(
        cause,
        format!(
            "it is a Unix stream socket that is not listening (a connection, such as systemd's \
             Accept=yes passes: use Accept=no); {SERVED}"
        )
    );
    // A UDP socket bound nowhere.
    let unbound = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    let (_, cause) = refusal(OwnedFd::from(unbound)).await;
    assert_eq!(
        cause,
        format!("it is a datagram socket that is not bound to an address; {SERVED}")
    );
    // A netlink socket, which needs no privilege.
    let netlink = Socket::new(Domain::from(16), Type::DGRAM, None).unwrap();
    let (_, cause) = refusal(OwnedFd::from(netlink)).await;
    assert_eq!(
        cause,
        format!("it is a socket of family Netlink, type SOCK_DGRAM; {SERVED}")
    );
    // A UDP socket, for a server that takes the PROXY protocol.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let fd = udp.as_raw_fd();
    let trusted = "127.0.0.1".parse::<TrustedProxy>().unwrap();
    let proxied = Server::new(Greet).proxy_protocol(ProxyProtocol::new([trusted]));
    let error = proxied
        .adopt(OwnedFd::from(udp))
        .expect_err("no PROXY protocol on UDP");
    assert_eq!(
        (error.to_string(), std::error::Error::source(&error).unwrap().to_string()),
        (
            format!("cannot serve descriptor {fd}"),
            "the PROXY protocol is for tcp://, tls:// and unix: stream listeners only; serve this endpoint without it"
                .to_owned()
        )
    );
    // Not a socket at all.
    let file = std::fs::File::open("/dev/null").unwrap();
    let fd = file.as_raw_fd();
    let (_, cause) = refusal(OwnedFd::from(file)).await;
    assert_eq!(cause, format!("descriptor {fd} is not a socket; {SERVED}"));
}

#[test]
fn the_sample_units_in_deploy_are_valid() {
    let Some(analyze) = peer("systemd-analyze", "Debian's systemd package has it") else {
        return;
    };
    // As installed, but with this build's sockit (verify checks that it runs).
    let dir = TestDir::new("systemd-units");
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    for unit in ["sockit.socket", "sockit.service"] {
        let text = std::fs::read_to_string(deploy.join(unit)).unwrap();
        let text = text.replace("/usr/local/bin/sockit", env!("CARGO_BIN_EXE_sockit"));
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    let output = run_with_timeout(
        Command::new(analyze)
            .args(["verify", "sockit.socket", "sockit.service"])
            .current_dir(dir.path()),
        WAIT,
    );
    // Unknown keys and bad values are only warned about: none may be.
    assert_eq!(
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).as_ref()
        ),
        (Some(0), ""),
        "{output:?}"
    );
}

#[test]
fn an_upgrade_hands_the_passed_sockets_on_and_tells_systemd_the_new_main_pid() {
    if peer("python3", "it hands sockets over as systemd does").is_none() {
        return;
    }
    let dir = TestDir::new("systemd-upgrade");
    let notify = UnixDatagram::bind(dir.socket("notify.sock")).unwrap();
    notify.set_read_timeout(Some(WAIT)).unwrap();
    let launched = launch(&dir, "own", Some(&dir.socket("notify.sock")));
    let log = &launched.launcher;
    let mut said = [0; 128];
    let len = notify.recv(&mut said).expect("READY=1");
    assert_eq!(&said[..len], b"READY=1\n");

    kill("USR2", launched.pid);
    let len = notify
        .recv(&mut said)
        .expect("MAINPID= once the new process serves");
    let text = std::str::from_utf8(&said[..len]).unwrap().to_owned();
    let new_pid: u32 = text
        .strip_prefix("MAINPID=")
        .and_then(|rest| rest.strip_suffix("\nREADY=1\n"))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("{text:?}"));
    assert_ne!(new_pid, launched.pid);
    // The old process is gone cleanly, without STOPPING=1: systemd's main
    // process is the new one now.
    log.wait_for_log("launcher: sockit exited with 0", WAIT);
    assert_eq!(
        log.count_log("(handed over, "),
        0,
        "passed sockets are not endpoints"
    );
    assert!(
        log.log()
            .contains(&format!("shut down cleanly; pid {new_pid} serves on")),
        "{}",
        log.log()
    );
    greet_stream(&mut tcp_client(launched.tcp));
    greet_udp(launched.udp);
    kill("TERM", new_pid);
    let len = notify.recv(&mut said).expect("the new process's STOPPING=1");
    assert_eq!(&said[..len], b"STOPPING=1\n");
}
