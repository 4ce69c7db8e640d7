//! Soak and chaos: many clients at once on TCP, Unix stream, seqpacket and
//! UDP against `sockit serve`, each request carrying its client's id, a
//! sequence number and a random payload (multi-byte UTF-8 and binary), while
//! clients are SIGKILLed mid-message, reset (SO_LINGER 0) with replies owed,
//! write one byte at a time or never read, and UDP goes through `sockit
//! relay` with seeded loss, delay, reordering and duplication.
//!
//! The oracle: no wrong or duplicated reply; on streams every request a
//! client saw answered was received exactly once by the server (its `-v`
//! log, parsed as it comes) and no request of a client that waits for its
//! replies goes unanswered; on UDP, losses within what the relay dropped and
//! duplicates within what it duplicated; afterwards the servers' open
//! descriptors, threads and connection tasks (accepted minus closed, from
//! the log) are back to where they started and RSS near it.
//!
//! About 40 s by default; `SOAK_SECONDS` sets the length of the main phase
//! and `SOAK_SEED` the seed (printed, with every count, on stderr: run with
//! `--nocapture` to see them).

mod common;

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use common::{Running, TestDir, peer, sockit};

/// The greeting every stream connection starts with.
const GREETING: &[u8] = b"Hello, I am server";
/// How long a client waits for any one reply before calling it lost.
const REPLY_WAIT: Duration = Duration::from_secs(10);
/// How long the servers have to get back to their starting state once
/// every client is gone (a closing connection lingers up to 2 s).
const SETTLE: Duration = Duration::from_secs(20);
/// The warm-up before RSS is first measured: long enough for every kind of
/// client to have run, so that allocator arenas and per-thread buffers
/// exist before the baseline is taken.
const WARM_UP: Duration = Duration::from_secs(3);
/// The relay's faults on UDP, with the seed added.
const RELAY_FAULTS: &[&str] = &[
    "--drop",
    "0.05",
    "--duplicate",
    "0.05",
    "--reorder",
    "0.05",
    "--delay",
    "2ms",
    "--jitter",
    "2ms",
];
/// Multi-byte UTF-8 that payloads are made of, among ASCII and binary.
const UTF8: &[&str] = &["é", "ß", "Ω", "你好", "中文", "🦀", "𝄞", "ünïcödé"];

// The servers -------------------------------------------------------------

/// What a server's `-v` log said, read as it comes (the full log would be
/// hundreds of megabytes): per request, how many times it was received.
#[derive(Default)]
struct ServerLog {
    /// Times each `(client, seq)` was logged `received`.
    received: HashMap<(u32, u32), u32>,
    /// `Accept new connection from` lines.
    accepted: u64,
    /// `Connection from … closed.` lines.
    closed: u64,
    /// `connection failed` lines (resets, mostly).
    failed: u64,
    /// `listening on` endpoints, in order.
    listening: Vec<String>,
    /// Warnings that a client ended its stream inside a frame.
    cut_frames: u64,
    /// Other warnings and errors: how many, and the first few.
    notable: u64,
    notable_lines: Vec<String>,
    /// Whether anything panicked.
    panicked: bool,
    /// Whether the server said it shut down cleanly.
    clean: bool,
}

impl ServerLog {
    fn take(&mut self, line: &str) {
        if let Some(rest) = line.split(" data=\"").nth(1) {
            if let Some(key) = parse_key(rest.as_bytes()) {
                *self.received.entry(key).or_default() += 1;
            }
        } else if line.contains("Accept new connection from") {
            self.accepted += 1;
        } else if line.contains("Connection from ") && line.ends_with(" closed.") {
            self.closed += 1;
        } else if line.contains("not logged one by one") {
            // A flood's lines, counted: "… and N more connections opened, M closed and …".
            let count = |before: &str| -> u64 {
                line.split(before)
                    .next()
                    .and_then(|head| head.rsplit(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_default()
            };
            self.accepted += count(" more connections opened");
            self.closed += count(" closed and");
        } else if line.contains("listening on ") {
            let rest = line.split("listening on ").nth(1).unwrap_or_default();
            self.listening
                .push(rest.split_whitespace().next().unwrap_or_default().to_owned());
        } else if line.contains("shut down cleanly") {
            self.clean = true;
        }
        if line.contains("connection failed") {
            self.failed += 1;
        }
        if line.contains("panicked") {
            self.panicked = true;
        }
        if line.contains("the stream ended inside a frame") {
            // A Unix stream client that left half a frame behind (closing a
            // Unix socket is an end of stream, never a reset): expected.
            self.cut_frames += 1;
        } else if line.contains(" WARN ") || line.contains(" ERROR ") || self.panicked {
            self.notable += 1;
            if self.notable_lines.len() < 20 {
                self.notable_lines.push(line.chars().take(300).collect());
            }
        }
    }
}

/// `(client, seq)` from the start of a message, `c<client>:<seq>:…`.
fn parse_key(message: &[u8]) -> Option<(u32, u32)> {
    let rest = message.strip_prefix(b"c")?;
    let mut fields = rest.splitn(3, |&b| b == b':');
    let client = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    let seq = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    fields.next()?;
    Some((client, seq))
}

/// `sockit serve -v ARGS`, its log parsed line by line as it comes.
struct Served {
    child: Child,
    log: Arc<Mutex<ServerLog>>,
    name: &'static str,
}

impl Served {
    fn start(name: &'static str, args: &[&str]) -> Served {
        let expected = args.iter().filter(|a| a.contains(':')).count();
        let mut child = sockit()
            .args(["serve", "-v"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sockit serve");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(ServerLog::default()));
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            // Lines as bytes: a payload is logged escaped, but never trust that.
            let mut reader = BufReader::with_capacity(1 << 16, stderr);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let text = String::from_utf8_lossy(&line);
                sink.lock().unwrap().take(text.trim_end());
                line.clear();
            }
        });
        let served = Served { child, log, name };
        let start = Instant::now();
        while served.log.lock().unwrap().listening.len() < expected {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{name}: sockit serve {args:?} did not start"
            );
            thread::sleep(Duration::from_millis(10));
        }
        served
    }

    fn endpoint(&self, index: usize) -> String {
        self.log.lock().unwrap().listening[index].clone()
    }

    fn usage(&self) -> Usage {
        Usage::of(self.child.id())
    }

    /// Connection tasks open: accepted minus closed.
    fn open_tasks(&self) -> i64 {
        let log = self.log.lock().unwrap();
        log.accepted as i64 - log.closed as i64
    }

    /// SIGTERM; it must shut down cleanly and exit 0.
    fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{}: still running 15 s after SIGTERM",
                self.name
            );
            thread::sleep(Duration::from_millis(10));
        };
        // The last lines may still be on their way through the pipe.
        thread::sleep(Duration::from_millis(200));
        assert!(status.success(), "{}: exit status {status}", self.name);
        assert!(
            self.log.lock().unwrap().clean,
            "{}: no `shut down cleanly` line",
            self.name
        );
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a process holds, from /proc.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Usage {
    fds: usize,
    rss_kib: u64,
    threads: u64,
}

impl Usage {
    fn of(pid: u32) -> Usage {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("read /proc/PID/fd")
            .count();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
        };
        Usage {
            fds,
            rss_kib: field("VmRSS:"),
            threads: field("Threads:"),
        }
    }
}

// Messages ----------------------------------------------------------------

/// Where a stream client connects, and how its messages are framed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Transport {
    TcpLine,
    UnixLine,
    TcpLen32,
    UnixLen32,
    Seqpacket,
}

use Transport::{Seqpacket, TcpLen32, TcpLine, UnixLen32, UnixLine};

impl Transport {
    const ALL: [Transport; 5] = [TcpLine, UnixLine, TcpLen32, UnixLen32, Seqpacket];

    fn line(self) -> bool {
        matches!(self, TcpLine | UnixLine)
    }

    /// `message` as it goes on the wire.
    fn request(self, message: &[u8]) -> Vec<u8> {
        match self {
            TcpLine | UnixLine => [message, b"\n"].concat(),
            TcpLen32 | UnixLen32 => len32(message),
            Seqpacket => message.to_vec(),
        }
    }

    /// The exact reply to `message`, as it comes off the wire.
    fn reply(self, message: &[u8]) -> Vec<u8> {
        let greeted = [b"Hello, ", message, b"!"].concat();
        match self {
            TcpLine | UnixLine => [&greeted[..], b"\n"].concat(),
            TcpLen32 | UnixLen32 => len32(&greeted),
            Seqpacket => greeted,
        }
    }

    fn greeting(self) -> Vec<u8> {
        match self {
            TcpLine | UnixLine => [GREETING, b"\n"].concat(),
            TcpLen32 | UnixLen32 => len32(GREETING),
            Seqpacket => GREETING.to_vec(),
        }
    }
}

fn len32(payload: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// `c<client>:<seq>:` and a random payload: ASCII, multi-byte UTF-8 and
/// binary bytes (all but `\n` and `\r` where messages are lines), usually
/// short, now and then up to `max` bytes.
fn message(rng: &mut fastrand::Rng, client: u32, seq: u32, line: bool, max: usize) -> Vec<u8> {
    let mut out = format!("c{client}:{seq}:").into_bytes();
    let len = if rng.u8(..32) == 0 {
        rng.usize(..max)
    } else {
        rng.usize(..200.min(max))
    };
    while out.len() < len {
        match rng.u8(..8) {
            0..5 => out.push(rng.alphanumeric() as u8),
            5 | 6 => out.extend_from_slice(rng.choice(UTF8).unwrap().as_bytes()),
            _ => {
                let byte = rng.u8(..);
                if !(line && (byte == b'\n' || byte == b'\r')) {
                    out.push(byte);
                }
            }
        }
    }
    out
}

// Stream clients ----------------------------------------------------------

/// A connected stream or seqpacket client socket.
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
    Packet(Socket),
}

/// The servers' addresses.
#[derive(Clone)]
struct Targets {
    tcp_line: String,
    unix_line: String,
    seqpacket: String,
    tcp_len32: String,
    unix_len32: String,
    /// The relay in front of the line server's UDP endpoint.
    udp_relay: String,
}

fn strip_scheme(endpoint: &str) -> &str {
    endpoint
        .split_once(':')
        .map_or(endpoint, |(_, rest)| rest.trim_start_matches("//"))
}

impl Conn {
    fn connect(transport: Transport, targets: &Targets) -> io::Result<Conn> {
        let conn = match transport {
            TcpLine => Conn::Tcp(TcpStream::connect(strip_scheme(&targets.tcp_line))?),
            TcpLen32 => Conn::Tcp(TcpStream::connect(strip_scheme(&targets.tcp_len32))?),
            UnixLine => Conn::Unix(UnixStream::connect(strip_scheme(&targets.unix_line))?),
            UnixLen32 => Conn::Unix(UnixStream::connect(strip_scheme(&targets.unix_len32))?),
            Seqpacket => {
                let socket = Socket::new(Domain::UNIX, Type::SEQPACKET, None)?;
                socket.connect(&SockAddr::unix(strip_scheme(&targets.seqpacket))?)?;
                Conn::Packet(socket)
            }
        };
        let socket = conn.sock();
        socket.set_read_timeout(Some(REPLY_WAIT))?;
        socket.set_write_timeout(Some(REPLY_WAIT))?;
        if let Conn::Tcp(stream) = &conn {
            stream.set_nodelay(true)?;
        }
        Ok(conn)
    }

    fn sock(&self) -> SockRef<'_> {
        match self {
            Conn::Tcp(s) => SockRef::from(s),
            Conn::Unix(s) => SockRef::from(s),
            Conn::Packet(s) => SockRef::from(s),
        }
    }

    /// Sends one request: one packet on seqpacket, all bytes otherwise.
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.write_all(bytes),
            Conn::Unix(s) => s.write_all(bytes),
            Conn::Packet(s) => {
                let sent = s.send(bytes)?;
                assert_eq!(sent, bytes.len(), "a packet sent whole");
                Ok(())
            }
        }
    }

    /// Reads one reply the length of `want` (one packet on seqpacket):
    /// `Ok(None)` when it is exactly `want`, `Ok(Some(got))` when not.
    fn expect(&mut self, want: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let got = match self {
            Conn::Tcp(s) => read_exact_or_short(s, want.len())?,
            Conn::Unix(s) => read_exact_or_short(s, want.len())?,
            Conn::Packet(s) => {
                let mut buf = vec![0; 128 * 1024];
                let len = s.read(&mut buf)?;
                buf.truncate(len);
                buf
            }
        };
        Ok((got != want).then_some(got))
    }

    /// Ends the sending side and reads what comes until the server closes:
    /// nothing is due.
    fn finish(mut self) -> io::Result<Vec<u8>> {
        self.sock().shutdown(Shutdown::Write)?;
        let mut rest = Vec::new();
        match &mut self {
            Conn::Tcp(s) => s.read_to_end(&mut rest)?,
            Conn::Unix(s) => s.read_to_end(&mut rest)?,
            Conn::Packet(s) => {
                let mut buf = vec![0; 128 * 1024];
                loop {
                    let len = s.read(&mut buf)?;
                    if len == 0 {
                        break;
                    }
                    rest.extend_from_slice(&buf[..len]);
                }
                0
            }
        };
        Ok(rest)
    }

    /// Closes with a reset (SO_LINGER 0; on Unix sockets unread data makes
    /// the peer see a reset too).
    fn reset(self) {
        let _ = self.sock().set_linger(Some(Duration::ZERO));
    }
}

/// Reads `len` bytes, or fewer if the stream ends first (a short reply is
/// a wrong one).
fn read_exact_or_short(stream: &mut impl Read, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    let mut filled = 0;
    while filled < len {
        match stream.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// How a client behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    /// Sends batches of 1 to 8 requests in one write and reads every reply.
    Pipelining,
    /// Writes every byte with a system call of its own, reads every reply.
    ByteAtATime,
    /// A few exchanges, then requests (and half of one) sent unread, and a reset.
    Resetter,
    /// Writes requests until the server stops taking them and never reads.
    NeverReader,
    /// A child process, SIGKILLed with half a message sent or a reply owed.
    Killed,
    /// UDP through the faulty relay.
    Udp,
}

impl Role {
    /// Whether every request it sends is owed a reply it waits for.
    fn waits_for_every_reply(self) -> bool {
        matches!(self, Role::Pipelining | Role::ByteAtATime)
    }
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    /// Each client's id, role and transport (none for UDP).
    clients: Vec<(u32, Role, Option<Transport>)>,
    /// Requests sent whole.
    requests: u64,
    /// Right replies.
    replies: u64,
    /// Every `(client, seq)` answered rightly (on streams).
    acked: Vec<(u32, u32)>,
    /// Replies that were not exactly what their request was owed, or came
    /// when nothing was owed.
    wrong: u64,
    /// Replies owed to a client that waited for them, never received.
    lost: u64,
    /// Connections made.
    connections: u64,
    /// Connections reset with SO_LINGER 0.
    resets: u64,
    /// Child processes SIGKILLed.
    kills: u64,
    /// Requests sent whose replies were still owed when the client reset or
    /// was killed (not lost: the client left).
    abandoned: u64,
    /// UDP: datagrams sent, right replies, duplicates among them, requests
    /// never answered.
    udp_requests: u64,
    udp_replies: u64,
    udp_duplicates: u64,
    udp_lost: u64,
    /// Descriptions of what went wrong, the first few.
    problems: Vec<String>,
}

impl Tally {
    fn problem(&mut self, text: String) {
        if self.problems.len() < 30 {
            self.problems.push(text);
        }
    }

    fn add(&mut self, other: Tally) {
        self.clients.extend(other.clients);
        self.requests += other.requests;
        self.replies += other.replies;
        self.acked.extend(other.acked);
        self.wrong += other.wrong;
        self.lost += other.lost;
        self.connections += other.connections;
        self.resets += other.resets;
        self.kills += other.kills;
        self.abandoned += other.abandoned;
        self.udp_requests += other.udp_requests;
        self.udp_replies += other.udp_replies;
        self.udp_duplicates += other.udp_duplicates;
        self.udp_lost += other.udp_lost;
        for problem in other.problems {
            self.problem(problem);
        }
    }
}

/// What every client thread shares.
struct Ctx {
    targets: Targets,
    stop: AtomicBool,
    next_client: AtomicU32,
    seed: u64,
}

impl Ctx {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// A new client id and its own random generator.
    fn client(&self) -> (u32, fastrand::Rng) {
        let id = self.next_client.fetch_add(1, Ordering::Relaxed);
        let rng = fastrand::Rng::with_seed(self.seed ^ u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        (id, rng)
    }
}

/// Largest message on streams.
const STREAM_MAX: usize = 8 * 1024;
/// Largest message on UDP.
const UDP_MAX: usize = 1024;

/// A client with `role` (pipelining, byte at a time or resetting) on
/// `transport`: connection after connection until the test stops it.
fn stream_client(ctx: &Ctx, transport: Transport, role: Role) -> Tally {
    let (id, mut rng) = ctx.client();
    let mut tally = Tally {
        clients: vec![(id, role, Some(transport))],
        ..Tally::default()
    };
    let mut seq = 0u32;
    let what = |seq: u32| format!("{role:?} c{id} on {transport:?} at seq {seq}");
    while !ctx.stopping() {
        tally.connections += 1;
        let mut conn = match Conn::connect(transport, &ctx.targets) {
            Ok(conn) => conn,
            Err(error) => {
                tally.problem(format!("{}: connect: {error}", what(seq)));
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        match conn.expect(&transport.greeting()) {
            Ok(None) => {}
            Ok(Some(got)) => {
                tally.wrong += 1;
                tally.problem(format!(
                    "{}: greeting {:?}",
                    what(seq),
                    String::from_utf8_lossy(&got)
                ));
                conn.reset();
                continue;
            }
            Err(error) => {
                tally.problem(format!("{}: greeting: {error}", what(seq)));
                conn.reset();
                continue;
            }
        }
        let exchanges = match role {
            Role::Resetter => rng.u32(..8),
            _ => rng.u32(1..200),
        };
        let mut healthy = true;
        let mut done = 0;
        while done < exchanges && healthy && !ctx.stopping() {
            let batch = match role {
                Role::Pipelining => rng.u32(1..=8),
                _ => 1,
            };
            let messages: Vec<Vec<u8>> = (seq..seq + batch)
                .map(|s| message(&mut rng, id, s, transport.line(), STREAM_MAX))
                .collect();
            let first = seq;
            seq += batch;
            done += batch;
            let sent = if role == Role::ByteAtATime && transport != Seqpacket {
                let bytes = transport.request(&messages[0]);
                bytes.iter().enumerate().try_for_each(|(i, byte)| {
                    if i % 16 == 15 {
                        thread::sleep(Duration::from_micros(200));
                    }
                    conn.send(std::slice::from_ref(byte))
                })
            } else if transport == Seqpacket {
                messages.iter().try_for_each(|m| conn.send(m))
            } else {
                let bytes: Vec<u8> = messages.iter().flat_map(|m| transport.request(m)).collect();
                conn.send(&bytes)
            };
            if let Err(error) = sent {
                tally.lost += u64::from(batch);
                tally.problem(format!("{}: send: {error}", what(first)));
                healthy = false;
                break;
            }
            tally.requests += u64::from(batch);
            for (i, m) in messages.iter().enumerate() {
                let this = first + i as u32;
                match conn.expect(&transport.reply(m)) {
                    Ok(None) => {
                        tally.replies += 1;
                        tally.acked.push((id, this));
                    }
                    Ok(Some(got)) => {
                        tally.wrong += 1;
                        tally.lost += u64::from(batch) - i as u64 - 1;
                        let want = transport.reply(m);
                        tally.problem(format!(
                            "{}: reply {:?}, not {:?}",
                            what(this),
                            String::from_utf8_lossy(&got[..got.len().min(120)]),
                            String::from_utf8_lossy(&want[..want.len().min(120)])
                        ));
                        healthy = false;
                        break;
                    }
                    Err(error) => {
                        tally.lost += u64::from(batch) - i as u64;
                        tally.problem(format!("{}: reading the reply: {error}", what(this)));
                        healthy = false;
                        break;
                    }
                }
            }
        }
        if !healthy {
            conn.reset();
            continue;
        }
        if role == Role::Resetter {
            // Replies owed, and perhaps half a message, then a reset.
            let owed = rng.u32(..6);
            for _ in 0..owed {
                let m = message(&mut rng, id, seq, transport.line(), STREAM_MAX);
                seq += 1;
                if conn.send(&transport.request(&m)).is_err() {
                    break;
                }
                tally.requests += 1;
                tally.abandoned += 1;
            }
            if transport != Seqpacket && rng.bool() {
                let request = transport.request(&message(&mut rng, id, seq, transport.line(), STREAM_MAX));
                seq += 1;
                let _ = conn.send(&request[..request.len() / 2]);
            }
            if rng.bool() {
                thread::sleep(Duration::from_micros(rng.u64(..2000)));
            }
            tally.resets += 1;
            conn.reset();
            continue;
        }
        match conn.finish() {
            Ok(rest) if rest.is_empty() => {}
            Ok(rest) => {
                tally.wrong += 1;
                tally.problem(format!(
                    "{}: {} bytes after every reply: {:?}",
                    what(seq),
                    rest.len(),
                    String::from_utf8_lossy(&rest[..rest.len().min(120)])
                ));
            }
            Err(error) => tally.problem(format!("{}: closing: {error}", what(seq))),
        }
    }
    tally
}

/// Writes requests until the server stops taking them (its replies fill
/// both socket buffers), never reading; holds the connection until the
/// test stops, then closes it with everything unread.
fn never_reader(ctx: &Ctx, transport: Transport) -> Tally {
    let (id, mut rng) = ctx.client();
    let mut tally = Tally {
        clients: vec![(id, Role::NeverReader, Some(transport))],
        connections: 1,
        ..Tally::default()
    };
    let mut conn = match Conn::connect(transport, &ctx.targets) {
        Ok(conn) => conn,
        Err(error) => {
            tally.problem(format!("never-reader on {transport:?}: connect: {error}"));
            return tally;
        }
    };
    conn.sock()
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    for seq in 0.. {
        if ctx.stopping() {
            break;
        }
        let m = message(&mut rng, id, seq, transport.line(), STREAM_MAX);
        if conn.send(&transport.request(&m)).is_err() {
            // Blocked: the server is waiting for this client to read.
            break;
        }
        tally.requests += 1;
        tally.abandoned += 1;
    }
    while !ctx.stopping() {
        thread::sleep(Duration::from_millis(20));
    }
    drop(conn);
    tally
}

// Clients killed with SIGKILL ------------------------------------------------

/// A client process to kill: connects to argv[2] (`tcp`, `unix` or
/// `seqpacket` per argv[1]), does argv[4] exchanges as client argv[3],
/// printing `ack SEQ` (or `wrong SEQ …`) for each, then sends half a message
/// (a whole one, unread, on seqpacket), says `half`, and waits to be killed.
const PYTHON_VICTIM: &str = r#"
import random, socket, sys, time
kind, address, client, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if kind == "tcp":
    host, port = address.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
else:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM if kind == "unix" else socket.SOCK_SEQPACKET)
    s.connect(address)
s.settimeout(10)
packet = kind == "seqpacket"
end = b"" if packet else b"\n"
def receive(n):
    if packet:
        return s.recv(1 << 17)
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data
rng = random.Random(client)
pieces = ["é", "你好", "🦀", "ß", "Ω"]
def message(seq):
    out = b"c%d:%d:" % (client, seq)
    for _ in range(rng.randrange(120)):
        r = rng.randrange(4)
        if r == 0:
            out += rng.choice(pieces).encode()
        elif r == 1:
            out += bytes([rng.choice([b for b in range(256) if b not in (10, 13)])])
        else:
            out += bytes([rng.randrange(97, 123)])
    return out
greeting = b"Hello, I am server" + end
got = receive(len(greeting))
print("greeted" if got == greeting else "wrong greeting %r" % got, flush=True)
for seq in range(count):
    m = message(seq)
    s.sendall(m + end)
    want = b"Hello, " + m + b"!" + end
    got = receive(len(want))
    print(("ack %d" % seq) if got == want else ("wrong %d %r" % (seq, got[:100])), flush=True)
m = message(count)
s.sendall(m if packet else m[: len(m) // 2])
print("half", flush=True)
time.sleep(60)
"#;

/// Starts client processes on the line server's streams and SIGKILLs each
/// mid-message (now and then mid-conversation, after its first reply),
/// until the test stops.
fn killer(ctx: &Ctx, python: &str) -> Tally {
    let mut tally = Tally::default();
    let (_, mut rng) = ctx.client();
    let kinds = [
        ("tcp", TcpLine, strip_scheme(&ctx.targets.tcp_line).to_owned()),
        ("unix", UnixLine, strip_scheme(&ctx.targets.unix_line).to_owned()),
        (
            "seqpacket",
            Seqpacket,
            strip_scheme(&ctx.targets.seqpacket).to_owned(),
        ),
    ];
    let mut round = 0;
    while !ctx.stopping() {
        let (kind, transport, address) = &kinds[round % kinds.len()];
        round += 1;
        let (id, _) = ctx.client();
        tally.clients.push((id, Role::Killed, Some(*transport)));
        let count = rng.u32(..6);
        let early = rng.u8(..4) == 0 && count > 0;
        let mut child = Command::new(python)
            .args([
                "-u",
                "-c",
                PYTHON_VICTIM,
                kind,
                address,
                &id.to_string(),
                &count.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn python3");
        tally.connections += 1;
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut said = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            said.push(line.trim_end().to_owned());
            if line.starts_with("half") || (early && line.starts_with("ack")) {
                break;
            }
        }
        let exited_early = child.try_wait().ok().flatten();
        child.kill().expect("SIGKILL the client");
        child.wait().expect("reap the client");
        tally.kills += 1;
        let mut rest = String::new();
        let _ = stdout.read_to_string(&mut rest);
        said.extend(rest.lines().map(str::to_owned));
        let mut acks = 0;
        for word in &said {
            if let Some(seq) = word.strip_prefix("ack ") {
                tally.requests += 1;
                tally.replies += 1;
                tally.acked.push((id, seq.parse().expect("a seq")));
                acks += 1;
            } else if word.starts_with("wrong") {
                tally.requests += 1;
                tally.wrong += 1;
                tally.problem(format!("killed client c{id} on {kind}: {word}"));
            }
        }
        if said.iter().any(|w| w == "half") {
            // Half a message (a whole one, unread, on seqpacket).
            tally.requests += 1;
            tally.abandoned += 1;
        }
        if let Some(status) = exited_early {
            let mut stderr = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
            tally.problem(format!(
                "killed client c{id} on {kind} exited by itself ({status}) after {acks} acks: {stderr}"
            ));
        }
        thread::sleep(Duration::from_millis(rng.u64(50..250)));
    }
    tally
}

// UDP through the faulty relay ----------------------------------------------

/// Sends requests through the relay, up to four unanswered at a time, and
/// checks every datagram that comes back against the request it answers.
fn udp_client(ctx: &Ctx) -> Tally {
    const WINDOW: usize = 4;
    /// A request unanswered this long is taken for lost (its reply may still come).
    const GIVE_UP: Duration = Duration::from_millis(300);
    let (id, mut rng) = ctx.client();
    let mut tally = Tally {
        clients: vec![(id, Role::Udp, None)],
        ..Tally::default()
    };
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP client");
    socket.connect(strip_scheme(&ctx.targets.udp_relay)).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    // The exact reply owed to each seq, and how often it came.
    let mut owed: HashMap<u32, (Vec<u8>, u32)> = HashMap::new();
    let mut waiting: Vec<(u32, Instant)> = Vec::new();
    let mut seq = 0u32;
    let mut quiet_since: Option<Instant> = None;
    let mut buf = vec![0; 1 << 16];
    loop {
        let stopping = ctx.stopping();
        if stopping {
            // Wait for stragglers (delayed, held back) until a second of quiet.
            if quiet_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(1) {
                break;
            }
        }
        waiting.retain(|(_, sent)| sent.elapsed() < GIVE_UP);
        while !stopping && waiting.len() < WINDOW {
            let m = message(&mut rng, id, seq, false, UDP_MAX);
            socket.send(&m).expect("send a datagram");
            owed.insert(seq, ([b"Hello, ", &m[..]].concat(), 0));
            waiting.push((seq, Instant::now()));
            tally.udp_requests += 1;
            seq += 1;
        }
        let len = match socket.recv(&mut buf) {
            Ok(len) => len,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) => {
                tally.problem(format!("udp c{id}: receive: {e}"));
                continue;
            }
        };
        quiet_since = None;
        let got = &buf[..len];
        // The request it answers, by the id and seq it carries.
        let answers = got
            .strip_prefix(b"Hello, ")
            .and_then(parse_key)
            .filter(|&(client, _)| client == id)
            .and_then(|(_, s)| owed.get_mut(&s).map(|o| (s, o)));
        match answers {
            Some((s, (want, times))) if got == &want[..] => {
                *times += 1;
                tally.udp_replies += 1;
                if *times > 1 {
                    tally.udp_duplicates += 1;
                }
                waiting.retain(|(w, _)| *w != s);
            }
            _ => {
                tally.wrong += 1;
                tally.problem(format!(
                    "udp c{id}: reply {:?} answers nothing sent",
                    String::from_utf8_lossy(&got[..got.len().min(120)])
                ));
            }
        }
    }
    tally.udp_lost = owed.values().filter(|(_, times)| *times == 0).count() as u64;
    tally
}

// The run -------------------------------------------------------------------

/// Runs every kind of client for `length`; returns what they saw.
fn load(ctx: &Arc<Ctx>, length: Duration, python: Option<&str>) -> Tally {
    ctx.stop.store(false, Ordering::Relaxed);
    let mut workers: Vec<thread::JoinHandle<Tally>> = Vec::new();
    let mut spawn = |f: Box<dyn FnOnce(&Ctx) -> Tally + Send>| {
        let ctx = Arc::clone(ctx);
        workers.push(thread::spawn(move || f(&ctx)));
    };
    for transport in Transport::ALL {
        for _ in 0..2 {
            spawn(Box::new(move |ctx| {
                stream_client(ctx, transport, Role::Pipelining)
            }));
        }
        if transport != Seqpacket {
            spawn(Box::new(move |ctx| {
                stream_client(ctx, transport, Role::ByteAtATime)
            }));
        }
        spawn(Box::new(move |ctx| stream_client(ctx, transport, Role::Resetter)));
        spawn(Box::new(move |ctx| never_reader(ctx, transport)));
    }
    for _ in 0..4 {
        spawn(Box::new(udp_client));
    }
    if let Some(python) = python {
        let python = python.to_owned();
        spawn(Box::new(move |ctx| killer(ctx, &python)));
    }
    thread::sleep(length);
    ctx.stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for worker in workers {
        tally.add(worker.join().expect("a client thread panicked"));
    }
    tally
}

/// Waits until `server` has no connection open and its descriptors and
/// threads are back to `start`; returns what it holds then.
fn settle(server: &Served, start: Usage) -> Usage {
    let began = Instant::now();
    loop {
        let now = server.usage();
        if server.open_tasks() == 0 && now.fds == start.fds && now.threads == start.threads {
            return now;
        }
        if began.elapsed() > SETTLE {
            return now;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A relay's `relay stopped:` summary, as `NAME=COUNT`.
fn relay_summary(mut relay: Running) -> HashMap<String, u64> {
    relay.signal("TERM");
    let status = relay.wait(Duration::from_secs(10));
    assert!(status.success(), "relay: {status}; log:\n{}", relay.log());
    let line = relay.wait_for_log("relay stopped: ", Duration::from_secs(5));
    line.split("relay stopped: ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|word| {
            let (name, count) = word.split_once('=').expect("NAME=COUNT");
            (name.to_owned(), count.parse().expect("a count"))
        })
        .collect()
}

#[test]
fn soak_and_chaos() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .map(|s| s.parse().expect("SOAK_SECONDS is a number of seconds"))
        .unwrap_or(30);
    let seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .map(|s| s.parse().expect("SOAK_SEED is a number"))
        .unwrap_or(5);
    let python = peer("python3", "the clients that are SIGKILLed");
    let began = Instant::now();
    let dir = TestDir::new("soak");
    let unix_line = format!("unix:{}", dir.socket("line.sock"));
    let seqpacket = format!("seqpacket:{}", dir.socket("packet.sock"));
    let unix_len32 = format!("unix:{}", dir.socket("len32.sock"));
    let line_server = Served::start(
        "line server",
        &[
            "--framing",
            "line",
            "tcp://127.0.0.1:0",
            &unix_line,
            &seqpacket,
            "udp://127.0.0.1:0",
        ],
    );
    let len32_server = Served::start(
        "len32 server",
        &["--framing", "len32", "tcp://127.0.0.1:0", &unix_len32],
    );
    let started = [line_server.usage(), len32_server.usage()];
    let udp_target = line_server.endpoint(3);
    let mut relay_args = vec![
        "relay".to_owned(),
        "udp://127.0.0.1:0".to_owned(),
        udp_target.clone(),
        "--seed".to_owned(),
        seed.to_string(),
    ];
    relay_args.extend(RELAY_FAULTS.iter().map(|s| (*s).to_owned()));
    let relay = Running::start(sockit().args(&relay_args));
    let relaying = relay.wait_for_log("relaying ", Duration::from_secs(10));
    let udp_relay = relaying
        .split("relaying ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the relay's endpoint")
        .to_owned();
    let ctx = Arc::new(Ctx {
        targets: Targets {
            tcp_line: line_server.endpoint(0),
            unix_line: line_server.endpoint(1),
            seqpacket: line_server.endpoint(2),
            tcp_len32: len32_server.endpoint(0),
            unix_len32: len32_server.endpoint(1),
            udp_relay,
        },
        stop: AtomicBool::new(false),
        next_client: AtomicU32::new(0),
        seed,
    });
    eprintln!(
        "soak: seed {seed}, {WARM_UP:?} warm-up then {seconds} s; line server pid {}, len32 server pid {}",
        line_server.child.id(),
        len32_server.child.id()
    );

    // Warm up, settle, and take the baseline the end must come back to.
    let mut tally = load(&ctx, WARM_UP, python.as_deref());
    let warm = [
        settle(&line_server, started[0]),
        settle(&len32_server, started[1]),
    ];
    let soak_began = Instant::now();
    tally.add(load(&ctx, Duration::from_secs(seconds), python.as_deref()));
    let soaked = soak_began.elapsed();
    let ended = [
        settle(&line_server, started[0]),
        settle(&len32_server, started[1]),
    ];
    let relay = relay_summary(relay);

    // Both sides' counts of every stream request.
    let roles: HashMap<u32, Role> = tally.clients.iter().map(|&(id, role, _)| (id, role)).collect();
    let servers = [&line_server, &len32_server];
    let mut received: HashMap<(u32, u32), u32> = HashMap::new();
    for server in servers {
        for (&key, &times) in &server.log.lock().unwrap().received {
            *received.entry(key).or_default() += times;
        }
    }
    let mut acked_not_once = Vec::new();
    for key in &tally.acked {
        let times = received.get(key).copied().unwrap_or(0);
        if times != 1 {
            acked_not_once.push((*key, times));
        }
    }
    let mut received_twice = Vec::new();
    let mut received_unanswered = Vec::new();
    let acked: std::collections::HashSet<(u32, u32)> = tally.acked.iter().copied().collect();
    let mut udp_received = 0;
    for (&(client, seq), &times) in &received {
        match roles.get(&client) {
            Some(Role::Udp) => udp_received += u64::from(times),
            Some(role) => {
                if times > 1 {
                    received_twice.push(((client, seq), times));
                }
                if role.waits_for_every_reply() && !acked.contains(&(client, seq)) {
                    received_unanswered.push((client, seq));
                }
            }
            None => received_twice.push(((client, seq), times)),
        }
    }
    let lost_stream = tally.lost + received_unanswered.len() as u64 + acked_not_once.len() as u64;
    let relay_dropped = relay["to_target.dropped"] + relay["to_client.dropped"];
    let relay_duplicated = relay["to_target.duplicated"] + relay["to_client.duplicated"];
    let relay_reordered = relay["to_target.reordered"] + relay["to_client.reordered"];
    let by_role = |role: Role| roles.values().filter(|&&r| r == role).count();

    let mut report = String::new();
    let mut say = |text: String| {
        eprintln!("{text}");
        report.push_str(&text);
        report.push('\n');
    };
    say(format!(
        "soak: {:.1} s in all ({:.1} s of soak), seed {seed}",
        began.elapsed().as_secs_f64(),
        soaked.as_secs_f64()
    ));
    say(format!(
        "  requests: {} (streams {}: {} awaited by their clients, {} sent by clients that reset, were killed or never read; udp {})",
        tally.requests + tally.udp_requests,
        tally.requests,
        tally.requests - tally.abandoned,
        tally.abandoned,
        tally.udp_requests
    ));
    say(format!(
        "  replies: {} (streams {}, udp {} of which {} duplicates)",
        tally.replies + tally.udp_replies,
        tally.replies,
        tally.udp_replies,
        tally.udp_duplicates
    ));
    say(format!(
        "  clients: {} pipelining, {} byte-at-a-time, {} resetting, {} never reading, {} killed, {} udp; {} connections",
        by_role(Role::Pipelining),
        by_role(Role::ByteAtATime),
        by_role(Role::Resetter),
        by_role(Role::NeverReader),
        by_role(Role::Killed),
        by_role(Role::Udp),
        tally.connections
    ));
    say(format!(
        "  faults injected: {} SIGKILLs, {} resets (SO_LINGER 0), {} never-readers; relay dropped {relay_dropped}, duplicated {relay_duplicated}, reordered {relay_reordered}, delayed {}",
        tally.kills,
        tally.resets,
        by_role(Role::NeverReader),
        relay["to_target.delayed"] + relay["to_client.delayed"]
    ));
    say(format!(
        "  wrong replies: {} (udp duplicates {} ≤ relay duplicated {relay_duplicated})",
        tally.wrong, tally.udp_duplicates
    ));
    say(format!(
        "  lost stream replies: {lost_stream} (client side {}, received but unanswered {}, answered but not received once {}); stream requests received twice: {}",
        tally.lost,
        received_unanswered.len(),
        acked_not_once.len(),
        received_twice.len()
    ));
    say(format!(
        "  udp: lost {} ≤ relay dropped {relay_dropped}; server received {udp_received} ≤ relay forwarded {}",
        tally.udp_lost, relay["to_target.forwarded"]
    ));
    for (i, server) in servers.iter().enumerate() {
        let log = server.log.lock().unwrap();
        say(format!(
            "  {}: fds {} → {} (warm {}), threads {} → {}, rss {} KiB warm → {} KiB, connections {} accepted, {} closed ({} failed, {} cut inside a frame), {} other warnings",
            server.name,
            started[i].fds,
            ended[i].fds,
            warm[i].fds,
            started[i].threads,
            ended[i].threads,
            warm[i].rss_kib,
            ended[i].rss_kib,
            log.accepted,
            log.closed,
            log.failed,
            log.cut_frames,
            log.notable
        ));
    }
    for problem in &tally.problems {
        say(format!("  problem: {problem}"));
    }
    for server in servers {
        for line in &server.log.lock().unwrap().notable_lines {
            say(format!("  {}: {line}", server.name));
        }
    }

    // Kept for .ci/run to print: a passing test's output is not shown.
    let counts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("soak-counts.txt");
    std::fs::write(&counts, &report).expect("write the soak counts");
    assert_eq!(tally.wrong, 0, "wrong replies\n{report}");
    assert_eq!(
        lost_stream, 0,
        "lost stream replies: {acked_not_once:?} {received_unanswered:?}\n{report}"
    );
    assert!(
        received_twice.is_empty(),
        "received twice: {received_twice:?}\n{report}"
    );
    assert!(tally.problems.is_empty(), "problems\n{report}");
    assert!(tally.udp_lost <= relay_dropped, "udp losses\n{report}");
    assert!(
        tally.udp_duplicates <= relay_duplicated,
        "udp duplicates\n{report}"
    );
    assert!(
        udp_received <= relay["to_target.forwarded"],
        "udp received\n{report}"
    );
    assert!(
        tally.udp_replies <= relay["to_client.forwarded"],
        "udp replies\n{report}"
    );
    assert!(
        relay_dropped > 0 && relay_duplicated > 0 && relay_reordered > 0,
        "no faults\n{report}"
    );
    assert!(tally.resets > 0, "no client reset\n{report}");
    if python.is_some() {
        assert!(tally.kills > 0, "no client killed\n{report}");
    }
    // Every client that waits for its replies got some: the never-readers,
    // resets and kills did not stall the others.
    for (id, role, transport) in &tally.clients {
        if role.waits_for_every_reply() {
            assert!(
                tally.acked.iter().any(|(client, _)| client == id),
                "client c{id} ({role:?} on {transport:?}) got no reply\n{report}"
            );
        }
    }
    for (i, server) in servers.iter().enumerate() {
        let (panicked, notable) = {
            let log = server.log.lock().unwrap();
            (log.panicked, log.notable)
        };
        assert!(!panicked, "{} panicked\n{report}", server.name);
        assert_eq!(notable, 0, "{} warned\n{report}", server.name);
        assert_eq!(
            server.open_tasks(),
            0,
            "{}: connection tasks left\n{report}",
            server.name
        );
        assert_eq!(
            ended[i].fds, started[i].fds,
            "{}: descriptors\n{report}",
            server.name
        );
        assert_eq!(
            ended[i].threads, started[i].threads,
            "{}: threads\n{report}",
            server.name
        );
        // RSS: the same as after the warm-up, give or take what an allocator
        // keeps (4 MiB or a quarter).
        let allowed = warm[i].rss_kib + (warm[i].rss_kib / 4).max(4096);
        assert!(ended[i].rss_kib <= allowed, "{}: RSS\n{report}", server.name);
    }
    line_server.terminate();
    len32_server.terminate();
}
