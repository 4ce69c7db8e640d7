//! `sockit nc`: netcat's habits on every sockit endpoint. Raw bytes both
//! ways between stdin/stdout (or a program) and a socket, dialled or
//! listened for; port checks.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Parser;
use sockit::Endpoint;
use sockit::net::SocketOptions;
use sockit::pipe::{self, Acceptor, DumpTo, Ends, Family, Link, Program, Session};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use crate::options::{self, CertFlags, SocketFlags, TlsFlags, untrusted_hint};
use crate::serve::parse_duration;

/// How long a connection may take without -w.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a UDP client waits for answers after stdin ends, without -q.
const DATAGRAM_LINGER: Duration = Duration::from_secs(1);
/// Ports checked at once by -z.
const SCAN_AT_ONCE: usize = 64;

/// Netcat's habits on every sockit endpoint: raw bytes both ways, listen,
/// keep listening, run a program per connection, check ports.
///
/// Connects to HOST PORT (or any sockit ENDPOINT), sends stdin and prints
/// what comes back, byte for byte, both at once. When stdin ends it
/// half-closes the connection and keeps printing until the peer closes.
#[derive(Debug, Parser)]
#[command(
    name = "sockit nc",
    version,
    disable_help_flag = true,
    after_help = "Examples:\n  \
    printf 'GET / HTTP/1.0\\r\\n\\r\\n' | sockit nc example.com 80\n  \
    sockit nc -l 9000 > received.bin             receive a file (sender: sockit nc HOST 9000 < file)\n  \
    sockit nc -lk 127.0.0.1 8000 -e /bin/cat      an echo server, a cat per connection\n  \
    sockit nc -z -v 127.0.0.1 20-25 80           which ports are open\n  \
    sockit nc -u 127.0.0.1 9000                  UDP: each line a datagram\n  \
    sockit nc -U /tmp/app.sock                   a Unix socket\n  \
    sockit nc tls://localhost:8443 --ca cert.pem\n  \
    sockit nc -l tls://127.0.0.1:8443 --cert cert.pem --key key.pem\n\n\
Endpoints: tcp://HOST:PORT, udp://HOST:PORT, tls://HOST:PORT, unix:PATH, unix-dgram:PATH,\n\
seqpacket:PATH (PATH may be @NAME, a Linux abstract name), or HOST PORT as nc takes them."
)]
pub struct Args {
    /// HOST PORT, or one ENDPOINT; listening, PORT alone (all addresses) or
    /// HOST PORT; checking (-z), HOST and ports or ranges (20-25).
    #[arg(value_name = "TARGET", required = true)]
    target: Vec<String>,

    /// Listen, and converse with whoever connects.
    #[arg(short, long)]
    listen: bool,

    /// Keep listening after the first connection; serve several at once
    /// (stdin goes to all of them; on UDP, answer whoever sent last).
    #[arg(short, long, requires = "listen")]
    keep_open: bool,

    /// UDP (or, with -U, Unix datagrams).
    #[arg(short, long)]
    udp: bool,

    /// TARGET is a Unix socket path.
    #[arg(short = 'U', long)]
    unixsock: bool,

    /// Check only: exit 0 if every port given is open, 1 if any is not
    /// (with -v, a line for each).
    #[arg(short = 'z', conflicts_with_all = ["listen", "exec", "sh_exec"])]
    zero_io: bool,

    /// Connect timeout, and end when nothing moves either way for this long
    /// (seconds, or 500ms, 2m ...).
    #[arg(short, long, value_name = "SECS", value_parser = parse_duration)]
    wait: Option<Duration>,

    /// Run a program per connection, its stdin and stdout the socket (split
    /// on spaces: -e 'grep -i x').
    #[arg(short, long, value_name = "CMD", conflicts_with = "sh_exec")]
    exec: Option<String>,

    /// Run a shell command per connection with /bin/sh -c, its stdin and
    /// stdout the socket.
    #[arg(short = 'c', long, value_name = "SHELLCMD")]
    sh_exec: Option<String>,

    /// Say what happens on stderr (connected, listening, connection from);
    /// -vv logs more.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,

    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,

    /// IPv6 only.
    #[arg(short = '6')]
    ipv6: bool,

    /// Send line endings as CRLF.
    #[arg(short = 'C', long)]
    crlf: bool,

    /// Write the traffic both ways as a hex dump, to stderr or (--hex-dump=FILE) to FILE.
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true, default_missing_value = "-")]
    hex_dump: Option<PathBuf>,

    /// Quit SECS after stdin ends, even if the peer has not closed (0: at
    /// once) [default: wait for the peer; UDP clients 1s].
    #[arg(short, value_name = "SECS", value_parser = parse_duration)]
    quit: Option<Duration>,

    #[command(flatten)]
    cert: CertFlags,

    #[command(flatten)]
    tls: TlsFlags,

    #[command(flatten)]
    socket: SocketFlags,

    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
}

/// Parses `sockit nc`'s own command line: its `-q` and `-v` are netcat's,
/// not sockit's logging flags.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, clap::Error> {
    Args::try_parse_from(std::iter::once(OsString::from("sockit nc")).chain(args))
}

/// The log level `-v` asks for: quiet unless -vv.
pub fn log_level(args: &Args) -> &'static str {
    match args.verbose {
        0 | 1 => "warn",
        2 => "debug",
        _ => "trace",
    }
}

impl Args {
    fn family(&self) -> Family {
        match (self.ipv4, self.ipv6) {
            (true, _) => Family::V4,
            (_, true) => Family::V6,
            _ => Family::Any,
        }
    }

    fn program(&self) -> Option<Program> {
        match (&self.exec, &self.sh_exec) {
            (Some(command), _) => Some(Program::Exec(command.clone())),
            (_, Some(command)) => Some(Program::Shell(command.clone())),
            _ => None,
        }
    }

    /// Says what happens, with -v.
    fn say(&self, what: std::fmt::Arguments<'_>) {
        if self.verbose > 0 {
            eprintln!("sockit nc: {what}");
        }
    }

    /// The endpoint TARGET names; for -z, one for each port to check.
    fn endpoint(&self) -> anyhow::Result<(Endpoint, Vec<Endpoint>)> {
        let (first, rest) = self.target.split_first().expect("clap requires a target");
        let datagram = self.udp;
        if self.unixsock {
            if !rest.is_empty() {
                bail!("-U takes one path, not {}", self.target.join(" "));
            }
            let scheme = if datagram { "unix-dgram" } else { "unix" };
            return Ok((format!("{scheme}:{first}").parse()?, Vec::new()));
        }
        let host_port = |host: &str, port: &str| -> anyhow::Result<Endpoint> {
            let scheme = if datagram { "udp" } else { "tcp" };
            let host = if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]")
            } else {
                host.to_owned()
            };
            Ok(format!("{scheme}://{host}:{port}").parse()?)
        };
        if self.zero_io {
            if rest.is_empty() {
                bail!("-z needs a host and the ports to check: sockit nc -z HOST PORT...");
            }
            let mut all = Vec::new();
            for ports in rest {
                for port in parse_ports(ports)? {
                    all.push(host_port(first, &port.to_string())?);
                }
            }
            return Ok((all[0].clone(), all));
        }
        match rest {
            [] if self.listen && first.parse::<u16>().is_ok() => {
                let any = if self.ipv6 { "::" } else { "0.0.0.0" };
                Ok((host_port(any, first)?, Vec::new()))
            }
            [] => {
                let endpoint: Endpoint = first.parse()?;
                Ok((
                    match (&endpoint, datagram) {
                        (Endpoint::Tcp(hp), true) => Endpoint::Udp(hp.clone()),
                        _ => endpoint,
                    },
                    Vec::new(),
                ))
            }
            [port] => Ok((host_port(first, port)?, Vec::new())),
            _ => bail!(
                "expected HOST PORT or one ENDPOINT, not {} (only -z takes several ports)",
                self.target.join(" ")
            ),
        }
    }

    fn session(&self, datagram_client: bool) -> anyhow::Result<Session> {
        let dump: Option<DumpTo> = match &self.hex_dump {
            None => None,
            Some(path) if path.as_os_str() == "-" => Some(Arc::new(Mutex::new(Box::new(std::io::stderr())))),
            Some(path) => {
                let file =
                    std::fs::File::create(path).with_context(|| format!("--hex-dump {}", path.display()))?;
                Some(Arc::new(Mutex::new(Box::new(file))))
            }
        };
        // A peer that half-closes ends a conversation with a terminal; one
        // fed from a file or a pipe goes on until all of it is sent (or the
        // peer stops taking it): `nc -l > file` must not cut a file short
        // because the listener's stdin ended first.
        let ends = if std::io::stdin().is_terminal() {
            Ends::PeerCloses
        } else {
            Ends::BothClose
        };
        Ok(Session {
            idle_timeout: self.wait,
            quit_after_input: self.quit.or(datagram_client.then_some(DATAGRAM_LINGER)),
            crlf: self.crlf,
            dump,
            ends,
        })
    }
}

/// A port or a range of them (`80`, `20-25`).
fn parse_ports(text: &str) -> anyhow::Result<Vec<u16>> {
    let port = |text: &str| -> anyhow::Result<u16> {
        match text.parse::<u16>() {
            Ok(0) | Err(_) => bail!("{text:?} is not a port (1 to 65535)"),
            Ok(port) => Ok(port),
        }
    };
    match text.split_once('-') {
        Some((low, high)) => {
            let (low, high) = (port(low)?, port(high)?);
            if low > high {
                bail!("{text:?}: the range runs backwards");
            }
            Ok((low..=high).collect())
        }
        None => Ok(vec![port(text)?]),
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (endpoint, ports) = args.endpoint()?;
    if args.program().is_some() && endpoint.is_datagram() {
        bail!(
            "-e and -c run a program per connection: {endpoint} has no connections (use a stream endpoint)"
        );
    }
    let options = args.socket.options();
    options::warn_unused(&options, &endpoint);
    if args.zero_io {
        return scan(&args, &endpoint, &ports, &options).await;
    }
    if args.listen {
        listen(&args, &endpoint, &options).await
    } else {
        dial(&args, &endpoint, &options).await
    }
}

async fn dial(args: &Args, endpoint: &Endpoint, options: &SocketOptions) -> anyhow::Result<ExitCode> {
    if args.cert.any() {
        bail!("--cert and --key are for listening (-l); a client trusts with --ca or --insecure");
    }
    let tls = args.tls.client(endpoint)?;
    let timeout = args.wait.unwrap_or(CONNECT_TIMEOUT);
    let link = pipe::connect(endpoint, timeout, options, tls.as_ref(), args.family())
        .await
        .map_err(untrusted_hint)?;
    args.say(format_args!("connected to {endpoint}"));
    let session = args.session(endpoint.is_datagram())?;
    converse(args, link, &session).await?;
    Ok(ExitCode::SUCCESS)
}

/// One conversation on `link`: with the program, or with stdin and stdout.
async fn converse(args: &Args, link: Link, session: &Session) -> anyhow::Result<()> {
    match args.program() {
        Some(program) => {
            let status = program.run(link, session).await?;
            args.say(format_args!("{program} exited: {status}"));
        }
        None => {
            session.run(link, tokio::io::stdin(), pipe::stdout()?).await?;
        }
    }
    Ok(())
}

async fn listen(args: &Args, endpoint: &Endpoint, options: &SocketOptions) -> anyhow::Result<ExitCode> {
    let tls = args
        .cert
        .server_config(matches!(endpoint, Endpoint::Tls(_)), endpoint)?;
    let mut acceptor = Acceptor::bind(endpoint, options, tls, args.family()).await?;
    args.say(format_args!("listening on {}", acceptor.local_endpoint()));
    let session = args.session(false)?;
    if acceptor.is_datagram() {
        let link = acceptor.datagrams(args.keep_open)?;
        session.run(link, tokio::io::stdin(), pipe::stdout()?).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let handshake = args.wait.unwrap_or(CONNECT_TIMEOUT);
    if !args.keep_open {
        let accepted = acceptor.accept(options).await?;
        // One conversation: nobody else is let in meanwhile.
        drop(acceptor);
        args.say(format_args!("connection from {}", accepted.peer()));
        let link = accepted.link(handshake).await.context("TLS handshake")?;
        converse(args, link, &session).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let program = args.program();
    let hub = Hub::start(program.is_none());
    loop {
        let accepted = acceptor.accept(options).await?;
        let peer = accepted.peer().clone();
        args.say(format_args!("connection from {peer}"));
        let (session, program, hub, verbose) =
            (session.clone(), program.clone(), hub.clone(), args.verbose > 0);
        tokio::spawn(async move {
            let served = async {
                let link = accepted.link(handshake).await.context("TLS handshake")?;
                match (&program, hub) {
                    (Some(program), _) => {
                        program.run(link, &session).await?;
                    }
                    (None, Some(hub)) => {
                        // Its input never ends: the peer closing ends it.
                        let (input, output) = hub.join();
                        let session = Session {
                            ends: Ends::PeerCloses,
                            ..session
                        };
                        session.run(link, input, output).await?;
                    }
                    (None, None) => unreachable!("a hub when there is no program"),
                }
                anyhow::Ok(())
            };
            match served.await {
                Ok(()) if verbose => eprintln!("sockit nc: {peer} closed"),
                Ok(()) => {}
                Err(error) => eprintln!("sockit nc: {peer}: {error:#}"),
            }
        });
    }
}

/// Listening with -k and no program: stdin goes to every connection open,
/// and what each sends goes to stdout, a read at a time.
#[derive(Clone)]
struct Hub {
    to_all: Arc<Mutex<Vec<mpsc::Sender<Bytes>>>>,
    to_stdout: mpsc::Sender<Bytes>,
}

impl Hub {
    fn start(wanted: bool) -> Option<Self> {
        if !wanted {
            return None;
        }
        let to_all: Arc<Mutex<Vec<mpsc::Sender<Bytes>>>> = Arc::default();
        let (to_stdout, mut printing) = mpsc::channel::<Bytes>(64);
        tokio::spawn(async move {
            let Ok(mut stdout) = pipe::stdout() else { return };
            while let Some(bytes) = printing.recv().await {
                if tokio::io::AsyncWriteExt::write_all(&mut stdout, &bytes)
                    .await
                    .is_err()
                {
                    break;
                }
                let _ = tokio::io::AsyncWriteExt::flush(&mut stdout).await;
            }
        });
        let everyone = Arc::clone(&to_all);
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0; 64 * 1024];
            while let Ok(read) = stdin.read(&mut buf).await {
                if read == 0 {
                    break;
                }
                let chunk = Bytes::copy_from_slice(&buf[..read]);
                let senders = everyone.lock().unwrap_or_else(|p| p.into_inner()).clone();
                for sender in senders {
                    // A slow connection slows stdin, and loses nothing.
                    let _ = sender.send(chunk.clone()).await;
                }
                everyone
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|sender| !sender.is_closed());
            }
        });
        Some(Hub { to_all, to_stdout })
    }

    /// A new connection's input (what stdin brings from now on; it never
    /// ends, stdin's end included) and output.
    fn join(&self) -> (Inbox, Outbox) {
        let (sender, receiver) = mpsc::channel(16);
        self.to_all.lock().unwrap_or_else(|p| p.into_inner()).push(sender);
        (
            Inbox {
                receiver,
                rest: Bytes::new(),
            },
            Outbox {
                sender: PollSender::new(self.to_stdout.clone()),
            },
        )
    }
}

/// Reads what the hub sends to one connection.
struct Inbox {
    receiver: mpsc::Receiver<Bytes>,
    rest: Bytes,
}

impl AsyncRead for Inbox {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        while self.rest.is_empty() {
            match ready!(self.receiver.poll_recv(cx)) {
                Some(bytes) => self.rest = bytes,
                // Stdin ended: the connection stays open all the same.
                None => return Poll::Pending,
            }
        }
        let n = self.rest.len().min(buf.remaining());
        buf.put_slice(&self.rest.split_to(n));
        Poll::Ready(Ok(()))
    }
}

/// Writes one connection's bytes to the hub's stdout, each write whole.
struct Outbox {
    sender: PollSender<Bytes>,
}

impl AsyncWrite for Outbox {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let closed = || std::io::Error::new(std::io::ErrorKind::BrokenPipe, "stdout is closed");
        ready!(self.sender.poll_reserve(cx)).map_err(|_| closed())?;
        self.sender
            .send_item(Bytes::copy_from_slice(buf))
            .map_err(|_| closed())?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// -z: whether each port of `endpoint`'s host is open; exit 0 if all are.
async fn scan(
    args: &Args,
    endpoint: &Endpoint,
    ports: &[Endpoint],
    options: &SocketOptions,
) -> anyhow::Result<ExitCode> {
    if endpoint.host_port().is_none() {
        bail!("-z checks TCP or UDP ports, not {endpoint}");
    }
    let timeout = args.wait.unwrap_or(Duration::from_secs(2));
    let limit = Arc::new(tokio::sync::Semaphore::new(SCAN_AT_ONCE));
    let mut checks = tokio::task::JoinSet::new();
    for (index, target) in ports.iter().cloned().enumerate() {
        let (limit, options, family) = (Arc::clone(&limit), options.clone(), args.family());
        checks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            (index, check(&target, timeout, &options, family).await, target)
        });
    }
    let mut results = Vec::new();
    while let Some(done) = checks.join_next().await {
        results.push(done.context("a port check failed")?);
    }
    results.sort_by_key(|(index, ..)| *index);
    let mut all_open = true;
    for (_, open, target) in results {
        match open {
            Ok(()) => args.say(format_args!("{target} open")),
            Err(why) => {
                all_open = false;
                args.say(format_args!("{target} closed: {why}"));
            }
        }
    }
    Ok(if all_open {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Whether one port takes a connection (TCP), or does not refuse a
/// datagram within `timeout` (UDP: silence counts as open, as nc has it).
async fn check(
    target: &Endpoint,
    timeout: Duration,
    options: &SocketOptions,
    family: Family,
) -> Result<(), String> {
    let link = pipe::connect(target, timeout, options, None, family)
        .await
        .map_err(|error| error_reason(&error))?;
    if !target.is_datagram() {
        return Ok(());
    }
    let session = Session {
        quit_after_input: Some(timeout),
        ..Session::default()
    };
    match session.run(link, &b"\0"[..], tokio::io::sink()).await {
        Ok(_) => Ok(()),
        Err(error) => Err(error.to_string()),
    }
}

/// The innermost reason of a connect error, for a -z line.
fn error_reason(error: &sockit::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(inner) = source.source() {
        source = inner;
    }
    source.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_ranges() {
        assert_eq!(parse_ports("80").unwrap(), [80]);
        assert_eq!(parse_ports("20-23").unwrap(), [20, 21, 22, 23]);
        assert!(parse_ports("0").is_err());
        assert!(parse_ports("25-20").is_err());
        assert!(parse_ports("http").is_err());
        assert!(parse_ports("1-70000").is_err());
    }

    fn endpoint(line: &[&str]) -> anyhow::Result<(String, Vec<String>)> {
        let args = parse(line.iter().map(OsString::from))?;
        let (endpoint, ports) = args.endpoint()?;
        Ok((
            endpoint.to_string(),
            ports.iter().map(ToString::to_string).collect(),
        ))
    }

    #[test]
    fn targets_as_nc_takes_them() {
        assert_eq!(endpoint(&["127.0.0.1", "80"]).unwrap().0, "tcp://127.0.0.1:80");
        assert_eq!(
            endpoint(&["-u", "127.0.0.1", "9000"]).unwrap().0,
            "udp://127.0.0.1:9000"
        );
        assert_eq!(endpoint(&["::1", "80"]).unwrap().0, "tcp://[::1]:80");
        assert_eq!(endpoint(&["-l", "9000"]).unwrap().0, "tcp://0.0.0.0:9000");
        assert_eq!(endpoint(&["-l", "-6", "9000"]).unwrap().0, "tcp://[::]:9000");
        assert_eq!(endpoint(&["-U", "/tmp/s"]).unwrap().0, "unix:/tmp/s");
        assert_eq!(endpoint(&["-U", "-u", "/tmp/s"]).unwrap().0, "unix-dgram:/tmp/s");
        assert_eq!(endpoint(&["seqpacket:@x"]).unwrap().0, "seqpacket:@x");
        assert_eq!(
            endpoint(&["-u", "127.0.0.1:9000"]).unwrap().0,
            "udp://127.0.0.1:9000"
        );
        let (first, ports) = endpoint(&["-z", "localhost", "20-22", "80"]).unwrap();
        assert_eq!(first, "tcp://localhost:20");
        assert_eq!(
            ports,
            [
                "tcp://localhost:20",
                "tcp://localhost:21",
                "tcp://localhost:22",
                "tcp://localhost:80"
            ]
        );
        assert!(endpoint(&["a", "b", "c"]).is_err());
    }

    #[test]
    fn netcat_spellings_parse() {
        let args =
            parse(["-lkv", "-w", "2", "-q", "0", "-C", "--hex-dump", "9000"].map(OsString::from)).unwrap();
        assert!(args.listen && args.keep_open && args.crlf);
        assert_eq!(args.verbose, 1);
        assert_eq!(args.wait, Some(Duration::from_secs(2)));
        assert_eq!(args.quit, Some(Duration::ZERO));
        assert_eq!(args.hex_dump.as_deref(), Some(std::path::Path::new("-")));
        assert!(
            parse(["-k", "host", "1"].map(OsString::from)).is_err(),
            "-k needs -l"
        );
    }
}
