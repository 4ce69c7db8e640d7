//! Shared test helpers: run `sockit` and the seed's programs as real processes.
//!
//! Peers that may be missing (python3, nc, the seed) are looked up with
//! [`peer`]: a missing one is a SKIP with the reason locally, and a failure
//! under `CI=true`, where `.ci/run` installs them.

#![allow(dead_code)]

pub mod pki;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `sockit` binary under test.
pub fn sockit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sockit"))
}

/// `sockit nc ARGS`.
pub fn nc(args: &[&str]) -> Command {
    let mut command = sockit();
    command.arg("nc").args(args);
    command
}

/// `len` bytes that are not text: every value, in an order that does not
/// repeat soon (xorshift from `seed`); another seed, other bytes.
pub fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// Whether a missing peer must fail the test rather than skip it.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Returns the program if it can run, or says SKIP (failing under `CI=true`).
pub fn peer(program: &str, why: &str) -> Option<String> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|out| out.status.success());
    if found {
        return Some(program.to_owned());
    }
    skip(&format!("{program} is not installed ({why})"));
    None
}

/// Says SKIP with the reason, or fails under `CI=true`.
pub fn skip(reason: &str) {
    assert!(!in_ci(), "CI=true but {reason}");
    eprintln!("SKIP: {reason}");
}

/// The seed's programs: `$SOCKIT_SEED_DIR` or `../shared/seed`.
pub fn seed_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SOCKIT_SEED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/seed"));
    if dir.join("tcp_server.py").is_file() {
        return Some(dir);
    }
    skip(&format!(
        "the seed's programs are not at {} (set SOCKIT_SEED_DIR)",
        dir.display()
    ));
    None
}

/// Runs a seed program unchanged, but with `SO_REUSEADDR` set before its
/// `bind` so a port left in `TIME_WAIT` by an earlier test does not fail it.
const REUSEADDR_WRAPPER: &str = r#"
import runpy, socket, sys
_bind = socket.socket.bind
def bind(self, address):
    self.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return _bind(self, address)
socket.socket.bind = bind
path = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(path, run_name="__main__")
"#;

/// The arguments that make python3 run the seed's `script`, unbuffered.
pub fn seed_args(seed: &std::path::Path, script: &str) -> Vec<std::ffi::OsString> {
    vec![
        "-u".into(),
        "-c".into(),
        REUSEADDR_WRAPPER.into(),
        seed.join(script).into(),
    ]
}

/// A command running the seed's `script` with python3, unbuffered.
pub fn seed_program(seed: &std::path::Path, script: &str) -> Command {
    let mut command = Command::new("python3");
    command.args(seed_args(seed, script));
    command
}

/// Starts one of the seed's servers and waits until it says it is ready.
pub fn seed_server(seed: &std::path::Path, script: &str) -> Running {
    let server = Running::start_merged("python3", seed_args(seed, script));
    let ready = if script.starts_with("udp") {
        "Bind udp on 9000"
    } else {
        "Waiting for connection"
    };
    server.wait_for_log(ready, Duration::from_secs(10));
    server
}

/// Holds the seed's fixed ports (8000, 9000) for one test at a time, across
/// test processes.
pub fn seed_ports() -> File {
    // Machine-wide, not per build directory: two checkouts may test at once.
    let path = std::env::temp_dir().join("sockit-seed-ports.lock");
    let file = File::create(path).expect("create the seed ports lock");
    file.lock().expect("lock the seed ports");
    file
}

/// Runs `command` to completion within `limit`, with stdin empty; kills it
/// and fails past the limit.
pub fn run_with_timeout(command: &mut Command, limit: Duration) -> Output {
    run_with_stdin(command, Stdio::null(), limit)
}

/// Runs `command` with `stdin` (a file, say), its output captured, within `limit`.
pub fn run_with_stdin(command: &mut Command, stdin: Stdio, limit: Duration) -> Output {
    let child = command
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_within(child, limit)
}

/// Runs `command` with `input` on its stdin (then closed), within `limit`.
pub fn run_with_input(command: &mut Command, input: &[u8], limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input)
        .expect("write stdin");
    wait_within(child, limit)
}

/// Waits for `child` within `limit`, reading its stdout and stderr as they
/// come (a command that prints a lot never blocks on a full pipe).
fn wait_within(mut child: Child, limit: Duration) -> Output {
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut pipe) = pipe {
                pipe.read_to_end(&mut out).expect("read the child's output");
            }
            out
        })
    }
    let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let (stdout, stderr) = (stdout.join().expect("reader"), stderr.join().expect("reader"));
            let head = |bytes: &[u8]| String::from_utf8_lossy(&bytes[..bytes.len().min(2000)]).into_owned();
            panic!(
                "timed out after {limit:?}: stdout ({} bytes) {:?} stderr {:?}",
                stdout.len(),
                head(&stdout),
                head(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("reader"),
        stderr: stderr.join().expect("reader"),
    }
}

/// The stdout of a command that must have succeeded, as text.
pub fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}; stdout {:?}; stderr {:?}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

/// A running process whose stderr is collected line by line.
pub struct Running {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Starts `command` with stderr collected and stdout discarded.
    pub fn start(command: &mut Command) -> Running {
        Self::start_with_stdout(command, Stdio::null())
    }

    /// Starts `command` with stderr collected.
    pub fn start_with_stdout(command: &mut Command, stdout: Stdio) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Running { child, log }
    }

    /// Starts `program ARGS` with its stdout sent to stderr, so that both
    /// are collected (for the seed's servers and the examples, which print).
    pub fn start_merged<I, S>(program: impl AsRef<std::ffi::OsStr>, args: I) -> Running
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Self::start(
            Command::new("sh")
                .args(["-c", "exec \"$0\" \"$@\" 1>&2"])
                .arg(program)
                .args(args),
        )
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until a logged line contains `text`; returns that line.
    pub fn wait_for_log(&self, text: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(text)) {
                return line.clone();
            }
            assert!(
                start.elapsed() < limit,
                "no log line containing {text:?} within {limit:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many logged lines contain `text`.
    pub fn count_log(&self, text: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (for example "TERM").
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits for the process to exit within `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        exit_within(&mut self.child, limit)
            .unwrap_or_else(|| panic!("still running after {limit:?}; log:\n{}", self.log()))
    }

    /// The child, for its stdout.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sockit serve ARGS` on its way: started and listening.
pub struct Server {
    pub process: Running,
    /// The endpoints it listens on, in order, as logged (`tcp://127.0.0.1:PORT`).
    pub endpoints: Vec<String>,
}

impl Server {
    /// Starts `sockit serve` with `args` and waits until each of its
    /// `listening` endpoints is logged. Use port 0 to let the system choose.
    pub fn start(args: &[&str]) -> Server {
        Server::start_under(&[], args)
    }

    /// Starts `sockit serve` with `args` as the argument of `wrapper` (such
    /// as `prlimit --nofile=64:64`), which must exec it.
    pub fn start_under(wrapper: &[&str], args: &[&str]) -> Server {
        let expected = args
            .iter()
            .filter(|a| a.contains("://") || a.contains(':') && !a.starts_with('-'))
            .count()
            .max(1);
        Server::start_listening(wrapper, args, expected)
    }

    /// Starts `sockit serve` with `args` (under `wrapper`, if any) and waits
    /// until it logs `expected` endpoints: for endpoints that come from a
    /// config file.
    pub fn start_listening(wrapper: &[&str], args: &[&str], expected: usize) -> Server {
        let mut command = match wrapper {
            [] => sockit(),
            [program, wrapper_args @ ..] => {
                let mut command = Command::new(program);
                command.args(wrapper_args).arg(env!("CARGO_BIN_EXE_sockit"));
                command
            }
        };
        let process = Running::start(command.arg("serve").args(args));
        let start = Instant::now();
        loop {
            let endpoints: Vec<String> = process
                .log
                .lock()
                .unwrap()
                .iter()
                .filter_map(|line| line.split("listening on ").nth(1))
                .map(|rest| rest.split_whitespace().next().unwrap_or_default().to_owned())
                .collect();
            if endpoints.len() >= expected {
                return Server { process, endpoints };
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "sockit serve {args:?} did not start; log:\n{}",
                process.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The socket address of endpoint `index`.
    pub fn addr(&self, index: usize) -> SocketAddr {
        let endpoint = &self.endpoints[index];
        let (_, addr) = endpoint.split_once("://").expect("a scheme");
        addr.parse().expect("a socket address")
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Sends SIGTERM and waits for a clean exit within `limit`.
    pub fn terminate(mut self, limit: Duration) -> ExitStatus {
        self.process.signal("TERM");
        self.process.wait(limit)
    }
}

/// A TCP client that reads exactly what it expects, with a timeout.
pub fn tcp_client(addr: SocketAddr) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Reads exactly `len` bytes.
pub fn read_exactly(stream: &mut impl std::io::Read, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    stream.read_exact(&mut buf).expect("read the expected bytes");
    buf
}

/// Reads until the peer closes.
pub fn read_to_close(stream: &mut impl std::io::Read) -> Vec<u8> {
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).expect("read until close");
    buf
}

// Unix sockets ------------------------------------------------------------

/// A directory of one test's own for socket files, removed when dropped.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// Creates `$TMPDIR/sockit-PID-TEST`, short enough for socket paths.
    pub fn new(test: &str) -> TestDir {
        let path = std::env::temp_dir().join(format!("sockit-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create the test directory");
        TestDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// A path in the directory, as text, checked to fit a socket address.
    pub fn socket(&self, name: &str) -> String {
        let path = self
            .path
            .join(name)
            .into_os_string()
            .into_string()
            .expect("a UTF-8 path");
        assert!(path.len() < 100, "{path} is too long for a socket address");
        path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A name in the abstract namespace that no other test uses.
pub fn abstract_name(test: &str) -> String {
    format!("sockit-{}-{test}", std::process::id())
}

/// Whether `path` is a socket file (not following a symbolic link).
pub fn is_socket(path: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_socket())
}

/// The effective user and group ids of this process.
pub fn effective_ids() -> (u32, u32) {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    // `Uid:` and `Gid:` list the real, effective, saved and file-system ids.
    let effective = |field: &str| -> u32 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
    };
    (effective("Uid:"), effective("Gid:"))
}

/// A server sockit did not write, that prints `ready` on stdout once it
/// listens, and may print more after.
pub struct PeerServer {
    pub process: Running,
    stdout: BufReader<std::process::ChildStdout>,
}

impl PeerServer {
    /// Starts `command` and waits for its `ready` line.
    pub fn start(command: &mut Command) -> PeerServer {
        let mut process = Running::start_with_stdout(command, Stdio::piped());
        let mut stdout = BufReader::new(process.child().stdout.take().expect("stdout is piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the server's stdout");
        if line != "ready\n" {
            let _ = process.wait(Duration::from_secs(10));
            panic!("the server said {line:?}, not ready; stderr:\n{}", process.log());
        }
        PeerServer { process, stdout }
    }

    /// Waits for the server to exit successfully; returns what it printed
    /// after `ready`.
    pub fn finish(mut self) -> String {
        let status = self.process.wait(Duration::from_secs(15));
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stdout, &mut rest).expect("read the server's stdout");
        assert!(
            status.success(),
            "the server failed ({status}); stdout {rest:?}; stderr:\n{}",
            self.process.log()
        );
        rest
    }
}

/// Waits until at least `count` lines `process` logged contain `text`.
pub fn wait_for_count(process: &Running, text: &str, count: usize, limit: Duration) {
    let start = Instant::now();
    while process.count_log(text) < count {
        assert!(
            start.elapsed() < limit,
            "fewer than {count} lines with {text:?} within {limit:?}; log:\n{}",
            process.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `sockit serve ENDPOINT` failing at once: asserts exit status 1 and one
/// line on stderr, and returns that line.
pub fn serve_fails(endpoint: &str) -> String {
    let output = run_with_timeout(sockit().args(["serve", endpoint]), Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "stderr {stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    stderr
}

// Network namespaces --------------------------------------------------------

/// The effective capabilities of this process, from /proc.
pub fn capabilities() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0)
}

pub const CAP_SYS_ADMIN: u64 = 1 << 21;

/// Only one `ip netns add` or `del` at a time: the first one sets up
/// `/run/netns`, which two at once can trip over.
static NETNS: Mutex<()> = Mutex::new(());

/// A network namespace of this test's own, with `lo` up; deleted on drop,
/// however the test ends.
pub struct Namespace {
    name: String,
}

impl Namespace {
    /// Creates `sockit-PID-TAG`; `None`, saying SKIP (a failure under
    /// `CI=true`), without root or `ip`.
    pub fn new(tag: &str) -> Option<Namespace> {
        if capabilities() & CAP_SYS_ADMIN == 0 {
            skip("creating a network namespace needs root (CAP_SYS_ADMIN)");
            return None;
        }
        peer("ip", "creates the network namespace (iproute2)")?;
        let name = format!("sockit-{}-{tag}", std::process::id());
        {
            let _one_at_a_time = NETNS.lock().unwrap_or_else(|e| e.into_inner());
            // Left over from a run that was killed: start afresh.
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
            run_ok(Command::new("ip").args(["netns", "add", &name]));
        }
        let namespace = Namespace { name };
        run_ok(namespace.exec("ip").args(["link", "set", "lo", "up"]));
        Some(namespace)
    }

    /// `program` run inside the namespace.
    pub fn exec(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// `sockit ARGS` run inside the namespace.
    pub fn sockit(&self, args: &[&str]) -> Command {
        let mut command = self.exec(env!("CARGO_BIN_EXE_sockit"));
        command.args(args);
        command
    }

    /// Sets the sysctl `key` (`net.ipv4.icmp_echo_ignore_all`) inside the
    /// namespace, by writing its file under /proc/sys, as `sysctl -w` does.
    pub fn sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        run_ok(
            self.exec("sh")
                .args(["-c", "echo \"$1\" > \"$2\"", "sh", value, &path]),
        );
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _one_at_a_time = NETNS.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// Runs `command`, which must succeed within a few seconds.
pub fn run_ok(command: &mut Command) {
    let output = run_with_timeout(command, Duration::from_secs(20));
    assert!(
        output.status.success(),
        "{command:?}: {:?}; stderr {:?}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Reads exactly as many bytes as `want` holds and asserts they are `want`,
/// showing both as text when they differ.
pub fn expect(stream: &mut impl std::io::Read, want: &[u8]) {
    let got = read_exactly(stream, want.len());
    assert_eq!(
        got,
        want,
        "got {:?}, want {:?}",
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(want)
    );
}

/// Whether `stream` receives `greeting` within `wait` (its read timeout is
/// 10 s again afterwards).
pub fn greeted_within(stream: &mut std::net::TcpStream, greeting: &[u8], wait: Duration) -> bool {
    use std::io::Read;
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut got = vec![0; greeting.len()];
    let greeted = stream.read_exact(&mut got).is_ok();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    greeted && got == greeting
}

impl Server {
    /// The address of its `--metrics` endpoint, as it logged it.
    pub fn metrics_addr(&self) -> SocketAddr {
        let logged = self
            .process
            .wait_for_log("metrics on http://", Duration::from_secs(10));
        logged
            .split("metrics on http://")
            .nth(1)
            .and_then(|rest| rest.trim().strip_suffix("/metrics"))
            .expect("metrics on http://ADDR/metrics")
            .parse()
            .expect("a socket address")
    }
}

/// Binds `server` on `endpoint` (a port-0 network endpoint) and serves it
/// in the background until the token is cancelled; the address it listens
/// on.
pub async fn serve_in_background<S: sockit::Answer>(
    server: &sockit::Server<S>,
    endpoint: &str,
) -> (SocketAddr, tokio_util::sync::CancellationToken) {
    let listener = server.bind(&endpoint.parse().unwrap()).await.unwrap();
    let addr = listener
        .local_endpoint()
        .host_port()
        .unwrap()
        .socket_addr()
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(listener.serve(stop.clone().cancelled_owned()));
    (addr, stop)
}

/// A connection to a `--framing line` greet server that sends `x\n` lines
/// without ever reading the replies, until the server stops reading
/// because it cannot write them (a write waits 500 ms): one that holds a
/// drain open. Returns it, still open.
pub fn jam(addr: SocketAddr) -> std::net::TcpStream {
    let mut stream = tcp_client(addr);
    assert_eq!(read_exactly(&mut stream, 19), b"Hello, I am server\n");
    stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let lines = b"x\n".repeat(32 * 1024);
    let mut sent = 0;
    loop {
        match stream.write(&lines) {
            Ok(written) => sent += written,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return stream;
            }
            Err(error) => panic!("sending after {sent} bytes: {error}"),
        }
        assert!(sent < 256 << 20, "the server read {sent} bytes and never blocked");
    }
}

/// One HTTP/1.1 request with a plain client, answered whole within
/// `limit` (to connect, and per read): the status line, the headers
/// (lowercased names) and the body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    limit: Duration,
) -> (String, Vec<(String, String)>, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, limit).expect("connect");
    stream.set_read_timeout(Some(limit)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .unwrap_or_else(|error| panic!("{method} {path}: no whole answer within {limit:?}: {error}"));
    http_response(&response)
}

/// An HTTP/1.1 response's status line, headers (lowercased names) and body.
pub fn http_response(response: &[u8]) -> (String, Vec<(String, String)>, String) {
    let response = String::from_utf8_lossy(response);
    let (head, body) = response.split_once("\r\n\r\n").expect("a header and a body");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(": ").expect("a header line");
            (name.to_ascii_lowercase(), value.to_owned())
        })
        .collect();
    (status, headers, body.to_owned())
}

/// `child`'s exit status, once it exits within `limit`; `None` if it is
/// still running then.
pub fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts that `got` is the rest of the reply to the long line `long`
/// (its `Hello, ` already read), then the replies to `a`, `b` and `c`: the
/// requests the drain tests leave waiting; says where it differs.
pub fn assert_long_reply_then_abc(got: &[u8], long: &[u8]) {
    let want = [long, b"!\nHello, a!\nHello, b!\nHello, c!\n"].concat();
    assert!(
        got == want,
        "{} bytes, want {}; the last: {:?}",
        got.len(),
        want.len(),
        String::from_utf8_lossy(&got[got.len().saturating_sub(40)..])
    );
}

/// Asserts that nothing listens on `addr` any more: a connection to it is
/// refused. `when` says when, for the failure message.
pub fn assert_refused(addr: SocketAddr, when: &str) {
    match std::net::TcpStream::connect(addr) {
        Ok(_) => panic!("{addr}: connected {when}"),
        Err(refused) => assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "{refused}"),
    }
}
