//! `sockit serve`: serve a built-in service on one or more endpoints until
//! SIGINT or SIGTERM, then shut down gracefully.

use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, bail};
use sd_notify::NotifyState;
use socket2::SockRef;
use sockit::limit::{DEFAULT_MAX_AMPLIFICATION, RateLimit};
use sockit::metrics::{Metrics, Readiness};
use sockit::net::SocketOptions;
use sockit::net::systemd::{self, NotPassed, PassedSocket};
use sockit::proxy::{ProxyProtocol, TrustedProxy};
use sockit::server::{DEFAULT_MAX_CONNECTIONS, Drain};
use sockit::{Builtin, Endpoint, Framing, Limits, Server, Transport, WhenFull};
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{self, Listener};
use crate::options::{self, SocketFlags};
use crate::upgrade::{self, Handed, Upgraded};

/// Serve a service (the tutorial's greeting by default) on endpoints.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sockit serve                                   the tutorial's TCP server on 127.0.0.1:8000\n  \
    sockit serve udp://127.0.0.1:9000              the tutorial's UDP server\n  \
    sockit serve tcp://[::1]:7000 --service echo   an echo server on IPv6\n  \
    sockit serve unix:/tmp/greet.sock --mode 0660  on a Unix socket file\n  \
    sockit serve seqpacket:@greet                  on a Linux abstract seqpacket socket\n  \
    sockit serve tls://127.0.0.1:8443 --cert cert.pem --key key.pem   over TLS\n  \
    sockit serve 127.0.0.1:8000 --framing line -v  lines only, logging every message\n  \
    sockit serve udp://[::]:9000 --rate-limit 20/s  a UDP service others can reach\n  \
    sockit serve 0.0.0.0:8000 --idle-timeout 5m --read-timeout 30s  open to others\n  \
    sockit serve 0.0.0.0:8000 --proxy-protocol --trusted-proxy 10.0.0.2  behind HAProxy\n  \
    sockit serve 127.0.0.1:8000 --reuseport  run twice: two processes share the port\n  \
    sockit serve 127.0.0.1:8000 --metrics 127.0.0.1:9100  Prometheus metrics on :9100/metrics\n  \
    systemd-socket-activate -l 8000 sockit serve --systemd   a socket systemd passes")]
pub struct Args {
    /// Where to listen: tcp://HOST:PORT, udp://HOST:PORT, tls://HOST:PORT, HOST:PORT (TCP), unix:PATH,
    /// unix-dgram:PATH or seqpacket:PATH (PATH may be @NAME, a Linux abstract name).
    #[arg(value_name = "ENDPOINT", default_value = "tcp://127.0.0.1:8000")]
    pub endpoints: Vec<Endpoint>,

    /// Serve the sockets systemd passes (socket activation: LISTEN_FDS, from a .socket
    /// unit or systemd-socket-activate) instead of binding ENDPOINTs, which it excludes:
    /// the unit says where to listen. See deploy/ for a sample unit.
    #[arg(long, conflicts_with = "endpoints")]
    pub systemd: bool,

    /// What to answer: greet (the tutorial's protocol), echo or discard.
    #[arg(short, long, default_value_t = Builtin::Greet)]
    pub service: Builtin,

    /// How stream messages are cut: auto, raw, line or len32
    /// [default: auto for greet, raw for echo and discard].
    #[arg(short, long)]
    pub framing: Option<Framing>,

    /// Read more settings from this TOML file: any flag as a key (max_connections = 100),
    /// at the top for every listener, or in [[listener]] tables, one per listener with
    /// its own endpoints, service, framing and limits. On SIGHUP the file is read again
    /// and its limits applied: the connection limit at once, the datagram limits from
    /// the next datagram, the rest to new connections; none is closed. Certificates are
    /// read again too.
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,

    /// The most connections open at once; more wait or are refused (--when-full).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS,
          value_parser = parse_count)]
    pub max_connections: usize,

    /// Past --max-connections, new peers wait in the backlog until a connection closes
    /// (wait), or are closed at once, before the greeting, without a word (refuse).
    #[arg(long, value_name = "WHAT", default_value_t = WhenFull::Wait)]
    pub when_full: WhenFull,

    /// The longest message in bytes (or with K, M: 64K); a longer one gets an error and
    /// its connection is closed (a longer datagram is dropped).
    #[arg(long, value_name = "BYTES", default_value = "64K", value_parser = parse_message_size)]
    pub max_message: usize,

    /// How long to let open connections finish after SIGINT/SIGTERM (e.g. 10s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Close a stream connection with no traffic either way for this long (nothing read,
    /// none of the replies it owes written: a peer that stops reading is closed too),
    /// e.g. 5m; 0: never. Off by default on loopback and Unix sockets (a learner's `nc` left
    /// open is not closed under them); 5m on a TCP or TLS listener other hosts can reach.
    /// [default: 0 on loopback, 5m on other addresses]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,

    /// Close a stream connection whose message takes longer than this to arrive whole,
    /// from its first byte (slowloris), e.g. 30s; 0: never. Off by default on loopback
    /// and Unix sockets, 30s on a TCP or TLS listener other hosts can reach; seqpacket
    /// packets arrive whole and need none. [default: 0 on loopback, 30s on other addresses]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub read_timeout: Option<Duration>,

    /// Permissions of Unix socket files, in octal (e.g. 0660); by default the umask decides.
    #[arg(long, value_name = "OCTAL", value_parser = parse_mode)]
    pub mode: Option<u32>,

    /// The listen backlog of stream listeners.
    #[arg(long, value_name = "N", default_value_t = sockit::net::DEFAULT_BACKLOG)]
    pub backlog: u32,

    /// Datagrams read (recvmmsg) and answered (sendmmsg) per system call on datagram
    /// listeners; 1 reads and answers one at a time.
    #[arg(long, value_name = "N", default_value_t = sockit::server::DEFAULT_DATAGRAM_BATCH,
          value_parser = parse_count)]
    pub batch: usize,

    /// Answer at most RATE datagrams from each source (an IPv4 address, an IPv6 /64, a
    /// Unix address), e.g. 100/s, 600/m or 10/h; past it, its datagrams are dropped
    /// unanswered and counted. Off by default, for tests on loopback, where one client
    /// sending at full speed is the point: set it on a UDP service others can reach, so
    /// that it cannot be made to flood a forged address with replies.
    #[arg(long, value_name = "RATE", help_heading = "Datagram limits")]
    pub rate_limit: Option<RateLimit>,

    /// The most datagrams a source may send at once under --rate-limit, after a quiet
    /// spell [default: the rate's count, 100 for 100/s].
    #[arg(long, value_name = "N", requires = "rate_limit", help_heading = "Datagram limits",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_burst: Option<u32>,

    /// Send no reply larger than K times its datagram (or 64 bytes, whichever is more);
    /// 0: no cap. The default is QUIC's limit for an unverified address; greet's and
    /// echo's replies always pass it.
    #[arg(long, value_name = "K", default_value_t = DEFAULT_MAX_AMPLIFICATION,
          help_heading = "Datagram limits")]
    pub max_amplification: u32,

    /// Send no reply larger than BYTES (or with K, M: 1K) to a datagram [default: no cap].
    #[arg(long, value_name = "BYTES", value_parser = options::parse_bytes,
          help_heading = "Datagram limits")]
    pub max_reply: Option<usize>,

    /// Take the PROXY protocol (v1 and v2: HAProxy's send-proxy and send-proxy-v2, nginx's
    /// proxy_protocol on) on stream listeners: each connection starts with a header naming
    /// the client, and the logs and the service see that client, not the load balancer.
    /// Peers not in --trusted-proxy are closed at once; a trusted peer's header must come
    /// within --proxy-timeout. Only tcp://, tls:// and unix: endpoints take it (on tls://
    /// the header comes before the handshake, as HAProxy sends it).
    #[arg(long, requires = "trusted_proxy", help_heading = "Behind a load balancer")]
    pub proxy_protocol: bool,

    /// A load balancer allowed to send PROXY headers: an address (127.0.0.1, ::1), a network
    /// (10.0.0.0/8, fd00::/8), or unix (any peer of a unix: listener). Repeatable; required
    /// with --proxy-protocol.
    #[arg(
        long,
        value_name = "ADDR[/PREFIX]",
        requires = "proxy_protocol",
        help_heading = "Behind a load balancer"
    )]
    pub trusted_proxy: Vec<TrustedProxy>,

    /// How long a trusted load balancer has to send its whole PROXY header after connecting.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration,
          help_heading = "Behind a load balancer")]
    pub proxy_timeout: Duration,

    /// The certificate of tls:// listeners: a PEM file, the server's certificate first,
    /// then any intermediates. Needs --key. Read again on SIGHUP, for new connections.
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub cert: Option<std::path::PathBuf>,

    /// The private key of --cert: a PEM file (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub key: Option<std::path::PathBuf>,

    /// Accept this application protocol (ALPN) on tls:// listeners, e.g. greet; repeat for
    /// more, most preferred first. A client that offers only others is refused in its
    /// handshake; one that offers none is served [default: no ALPN].
    #[arg(long, value_name = "PROTO", help_heading = "TLS")]
    pub alpn: Vec<String>,

    /// Close a tls:// connection whose TLS handshake is not done this long after its
    /// accept (or its PROXY header), logged in one line: a peer that connects and says
    /// nothing holds a connection no longer.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration,
          help_heading = "TLS")]
    pub tls_handshake_timeout: Duration,

    /// Serve Prometheus metrics on http://ADDR/metrics (e.g. 127.0.0.1:9100; port 0 picks
    /// one, logged): connections open and in all, messages, replies, bytes, errors by
    /// kind and reply latency, per listener. Off by default.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,

    /// Write this process's id to FILE once it serves (and, after an upgrade in
    /// place, the new process's); removed at exit if it still holds this one's.
    #[arg(long, value_name = "FILE", help_heading = "Upgrade in place (SIGUSR2)")]
    pub pid_file: Option<std::path::PathBuf>,

    /// On SIGUSR2, sockit starts its binary again with every listening socket; this long
    /// at most for the new process to serve, or the upgrade fails and this one serves on.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration,
          help_heading = "Upgrade in place (SIGUSR2)")]
    pub upgrade_timeout: Duration,

    /// Join this multicast group on UDP listeners (repeatable).
    #[arg(long, value_name = "GROUP", help_heading = "Socket options")]
    pub multicast: Vec<IpAddr>,

    #[command(flatten)]
    pub socket: SocketFlags,
}

/// What is wrong with --cert, --key and --alpn on this command line, if
/// anything: a tls:// endpoint needs a certificate and key, and they are for
/// tls:// endpoints only.
fn misused_tls_flags(args: &Args) -> Option<&'static str> {
    let tls_endpoint = args.serves_tls();
    match (args.cert.is_some(), args.key.is_some()) {
        (true, true) if !tls_endpoint => Some("--cert and --key are for tls:// endpoints, and none is given"),
        (false, false) if tls_endpoint => Some("a tls:// endpoint needs --cert FILE and --key FILE"),
        (true, false) => Some("--cert needs --key, the certificate's private key"),
        (false, true) => Some("--key needs --cert, the certificate it is the key of"),
        _ if !tls_endpoint && !args.alpn.is_empty() => {
            Some("--alpn is for tls:// endpoints, and none is given")
        }
        _ => None,
    }
}

/// Parses a count that must be at least 1.
fn parse_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(count) => Ok(count),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

/// Parses a message size: at least one byte.
fn parse_message_size(text: &str) -> Result<usize, String> {
    match options::parse_bytes(text)? {
        0 => Err("must be at least 1".to_owned()),
        bytes => Ok(bytes),
    }
}

/// Parses file permissions in octal: `0660`, `660`, `0o660`.
fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o7777 => Ok(mode),
        _ => Err(format!("{text:?} is not a file mode in octal such as 0660")),
    }
}

/// Parses `10s`, `500ms`, `1m`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration such as 10s or 500ms: {e}"))
}

impl Args {
    /// The limits these flags set.
    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections,
            max_message: self.max_message,
            idle_timeout: self.idle_timeout.filter(|t| !t.is_zero()),
            read_timeout: self.read_timeout.filter(|t| !t.is_zero()),
            rate_limit: self
                .rate_limit
                .map(|limit| self.rate_burst.map_or(limit, |burst| limit.burst(burst))),
            reply_cap: options::reply_cap(self.max_amplification, self.max_reply),
        }
    }

    /// The limits for a listener other hosts can reach: a timeout left
    /// unset gets its protective default ([`EXPOSED_IDLE_TIMEOUT`],
    /// [`EXPOSED_READ_TIMEOUT`]); and the flags of the defaults applied.
    pub fn exposed_limits(&self) -> (Limits, Vec<String>) {
        let mut limits = self.limits();
        let mut applied = Vec::new();
        if self.idle_timeout.is_none() {
            limits.idle_timeout = Some(EXPOSED_IDLE_TIMEOUT);
            applied.push(format!(
                "--idle-timeout {}",
                humantime::format_duration(EXPOSED_IDLE_TIMEOUT)
            ));
        }
        if self.read_timeout.is_none() {
            limits.read_timeout = Some(EXPOSED_READ_TIMEOUT);
            applied.push(format!(
                "--read-timeout {}",
                humantime::format_duration(EXPOSED_READ_TIMEOUT)
            ));
        }
        (limits, applied)
    }

    /// The server these flags describe, before it is bound.
    fn server(&self) -> Server<Builtin> {
        let server = Server::new(self.service)
            .options(self.options())
            .limits(self.limits())
            .when_full(self.when_full)
            .shutdown_timeout(self.shutdown_timeout)
            .tls_handshake_timeout(self.tls_handshake_timeout)
            .backlog(self.backlog)
            .datagram_batch(self.batch);
        let server = match self.mode {
            Some(mode) => server.unix_mode(mode),
            None => server,
        };
        let server = if self.proxy_protocol {
            server.proxy_protocol(
                ProxyProtocol::new(self.trusted_proxy.iter().copied()).header_timeout(self.proxy_timeout),
            )
        } else {
            server
        };
        match self.framing {
            Some(framing) => server.framing(framing),
            None => server,
        }
    }

    /// Whether any of its endpoints is tls://.
    fn serves_tls(&self) -> bool {
        self.endpoints
            .iter()
            .any(|endpoint| matches!(endpoint, Endpoint::Tls(_)))
    }

    /// The TLS setting of the tls:// endpoints, from --cert, --key and --alpn.
    fn tls(&self) -> anyhow::Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
            return Ok(None);
        };
        let mut config = sockit::net::tls::server_config(cert, key).map_err(options::tls_error)?;
        std::sync::Arc::make_mut(&mut config).alpn_protocols =
            self.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(Some(config))
    }

    /// The socket options of the listeners.
    fn options(&self) -> SocketOptions {
        options::with_multicast(self.socket.options(), &self.multicast)
    }
}

/// What SIGHUP changes in a listener while it serves.
struct Live {
    limits: sockit::LimitsHandle,
    tls: sockit::TlsHandle,
    /// Whether one of its stream listeners can be reached from other
    /// hosts: its unset timeouts take their protective defaults.
    exposed: bool,
}

/// The idle timeout of a stream listener other hosts can reach, unless set.
pub const EXPOSED_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The read timeout of a stream listener other hosts can reach, unless set.
pub const EXPOSED_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether `endpoint` is a stream listener that hosts other than this one
/// can reach: TCP or TLS on an address that is not loopback (a wildcard
/// address included).
fn reachable_from_other_hosts(endpoint: &Endpoint) -> bool {
    match endpoint {
        Endpoint::Tcp(_) | Endpoint::Tls(_) => endpoint
            .host_port()
            .and_then(|host_port| host_port.socket_addr())
            .is_some_and(|addr| !addr.ip().to_canonical().is_loopback()),
        _ => false,
    }
}

/// On SIGHUP: reads the --config file again and applies each listener
/// table's limits to its server, and reads the certificate and key files of
/// TLS listeners again (also without a config file). A file that cannot be
/// read or is wrong changes nothing, and changes other than limits and
/// certificates wait for a restart.
fn reload(listeners: &[Listener], live: &[Live]) {
    let Some(path) = listeners
        .first()
        .and_then(|listener| listener.args.config.as_deref())
    else {
        let mut renewed = false;
        for (listener, live) in listeners.iter().zip(live) {
            renewed |= renew_tls(&listener.args, &live.tls, 1);
        }
        if !renewed {
            info!("SIGHUP: there is no --config file or certificate to read again; nothing changes");
        }
        return;
    };
    let argv: Vec<_> = std::env::args_os().collect();
    let again = match config::load(&argv, path) {
        Ok(again) => again.listeners,
        Err(error) => {
            warn!("SIGHUP: {error:#}; the limits stay as they were");
            return;
        }
    };
    if again.len() != listeners.len() {
        warn!(
            "SIGHUP: {} now has {} listeners instead of {}: restart sockit to change them; \
             the limits stay as they were",
            path.display(),
            again.len(),
            listeners.len()
        );
        return;
    }
    for (index, ((old, new), live)) in listeners.iter().zip(&again).zip(live).enumerate() {
        if old.fixed != new.fixed {
            warn!(
                listener = index + 1,
                "SIGHUP: {} changes more than limits and certificates; only those apply until a restart",
                path.display()
            );
        }
        let limits = if live.exposed {
            new.args.exposed_limits().0
        } else {
            new.args.limits()
        };
        live.limits.set(limits);
        let off = |timeout: Option<Duration>| timeout.map_or("off".to_owned(), |t| format!("{t:?}"));
        info!(
            listener = index + 1,
            max_connections = limits.max_connections,
            max_message = limits.max_message,
            idle_timeout = off(limits.idle_timeout),
            read_timeout = off(limits.read_timeout),
            "SIGHUP: limits read again from {}",
            path.display()
        );
        renew_tls(&new.args, &live.tls, index + 1);
    }
}

/// Reads the certificate and key of `args` again for its TLS listeners;
/// whether it had any to read. One that cannot be read is logged, and the
/// one in use stays.
fn renew_tls(args: &Args, tls: &sockit::TlsHandle, listener: usize) -> bool {
    if !args.serves_tls() {
        return false;
    }
    match args.tls() {
        Ok(Some(config)) => {
            tls.set(config);
            let cert = args.cert.as_deref().unwrap_or(std::path::Path::new("")).display();
            info!(
                listener,
                "SIGHUP: certificate read again from {cert}; new connections use it"
            );
        }
        Ok(None) => return false,
        Err(error) => warn!(listener, "SIGHUP: {error:#}; the certificate in use stays"),
    }
    true
}

/// With `--systemd` set for one of `listeners`, takes the sockets systemd
/// passed. Call it before the runtime starts its threads: it unsets
/// `LISTEN_FDS` and `LISTEN_PID` (see [`systemd::take`]).
pub fn take_passed<'a>(
    mut listeners: impl Iterator<Item = &'a Args>,
) -> Option<Result<Vec<PassedSocket>, NotPassed>> {
    listeners.any(|args| args.systemd).then(systemd::take)
}

/// Serves each listener (the command line's, or each table of its config
/// file) with a server of its own, until SIGINT or SIGTERM.
///
/// The sockets systemd `passed` ([`take_passed`]) are all served by the
/// one listener with `--systemd` (`systemd = true` in a config file).
///
/// In four steps: everything is bound (or taken over) first, so that a bad
/// endpoint fails before anything is served; the listeners start; signals
/// reload, upgrade and finally stop them; the open connections drain.
pub async fn run(
    listeners: Vec<Listener>,
    passed: Option<Result<Vec<PassedSocket>, NotPassed>>,
    mut handed: Option<Handed>,
) -> anyhow::Result<ExitCode> {
    // The binary to start again on an upgrade: its path now, before a new
    // build replaces the file.
    let exe = std::env::current_exe().context("cannot tell this program's path")?;
    let passed = match (passed, &mut handed) {
        // An upgrade hands over what systemd passed to the first process.
        (Some(Err(NotPassed::NotSet)), Some(handed)) => handed.passed(),
        (Some(passed), _) => passed.context("--systemd")?,
        (None, _) => Vec::new(),
    };
    let activated = listeners.iter().filter(|listener| listener.args.systemd).count();
    if activated > 1 {
        bail!(
            "systemd is set for {activated} listeners: the sockets systemd passes are served by one \
             (its unit says where they listen)"
        );
    }
    let first = listeners.first().map(|listener| &listener.args);
    let Bound {
        metrics,
        listening,
        live,
        sockets,
    } = match Bound::new(&listeners, passed, handed.as_mut()).await? {
        Ok(bound) => bound,
        Err(usage) => return Ok(usage),
    };
    // How the listeners stop: set once, when they are to.
    let (stop, stopping) = tokio::sync::watch::channel(None::<Drain>);
    // What the metrics endpoint's /readyz says: 503 from the moment the drain begins.
    let readiness = metrics
        .as_ref()
        .map_or_else(Readiness::new, |(registry, ..)| registry.readiness().clone());
    // The metrics endpoint answers through a drain (so that /readyz can say
    // so), and stops early only when another process takes its socket over.
    let metrics_stop = CancellationToken::new();
    if let Some((registry, http, local)) = metrics {
        info!("metrics on http://{local}/metrics");
        tokio::spawn(registry.serve(http, metrics_stop.clone().cancelled_owned()));
    }
    let (serving, keepers) = listen(listening, &stopping);

    let mut signals = Signals::new()?;
    match handed {
        Some(handed) => {
            // The old process takes it from here: it tells the service manager.
            for unused in handed
                .ready()
                .context("telling the old process that this one serves")?
            {
                info!("upgrade: {unused} was handed over and is no longer configured: closed");
            }
            info!("upgrade: serving; the old process stops accepting now");
        }
        None => notify(NotifyState::Ready),
    }
    let pid_file = first.and_then(|args| args.pid_file.clone());
    if let Some(path) = &pid_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write --pid-file {}", path.display()))?;
    }
    let upgrades = Upgrades {
        exe,
        sockets: std::sync::Arc::new(sockets),
        timeout: first.map_or(Duration::from_secs(30), |args| args.upgrade_timeout),
        keepers,
    };
    let handed_over = signals.serve_until_stopped(upgrades, &listeners, &live).await;
    // Not ready from here on: /readyz answers 503 while the connections
    // drain, unless the new process of an upgrade answers on the socket now.
    readiness.set_draining();
    if handed_over.is_none() {
        notify(NotifyState::Stopping);
    } else {
        metrics_stop.cancel();
    }
    // After an upgrade, the conversations under way finish here; the new
    // process takes the new peers.
    stop.send_replace(Some(if handed_over.is_some() {
        Drain::ServeOn
    } else {
        Drain::Finish
    }));
    drain(serving, &mut signals, pid_file.as_deref(), handed_over).await
}

/// Everything `serve` listens on, bound or taken over, not yet served.
struct Bound<'a> {
    /// The metrics endpoint's registry, socket and address, with `--metrics`.
    metrics: Option<(Metrics, tokio::net::TcpListener, SocketAddr)>,
    /// Each listening socket, the arguments of the listener it belongs to,
    /// and where it came from ("handed over, ", …) for its first line.
    listening: Vec<(sockit::Listener<Builtin>, &'a Args, String)>,
    /// What a reload changes in each listener.
    live: Vec<Live>,
    /// A copy of every socket, to hand over on an upgrade.
    sockets: upgrade::Sockets,
}

impl<'a> Bound<'a> {
    /// Binds (or takes from `handed`, or from what systemd `passed`) the
    /// metrics endpoint, then every listener's sockets; `Err` with the
    /// usage error's exit code when a listener's flags do not go together.
    async fn new(
        listeners: &'a [Listener],
        mut passed: Vec<PassedSocket>,
        mut handed: Option<&mut Handed>,
    ) -> anyhow::Result<Result<Bound<'a>, ExitCode>> {
        // Bound before the listeners, so that a port in use fails before anything is served.
        let first = listeners.first().map(|listener| &listener.args);
        let mut sockets = upgrade::Sockets::default();
        let metrics = match first.and_then(|args| args.metrics) {
            Some(addr) => {
                let name = upgrade::metrics_name(addr);
                let http = match handed.as_mut().and_then(|handed| handed.socket(&name)) {
                    Some(socket) => {
                        let socket = std::net::TcpListener::from(socket);
                        socket.set_nonblocking(true)?;
                        tokio::net::TcpListener::from_std(socket)
                    }
                    None => tokio::net::TcpListener::bind(addr).await,
                }
                .with_context(|| format!("cannot serve the metrics on {addr} (--metrics)"))?;
                sockets.add(name, http.as_fd())?;
                let local = http.local_addr().context("the metrics endpoint's address")?;
                Some((Metrics::new(), http, local))
            }
            None => None,
        };
        let mut listening = Vec::new();
        let mut live = Vec::with_capacity(listeners.len());
        for listener in listeners {
            let args = &listener.args;
            if let Some(what) = misused_tls_flags(args) {
                return Ok(Err(crate::usage(what, "serve")));
            }
            let server = match &metrics {
                Some((registry, ..)) => args.server().metrics(registry),
                None => args.server(),
            };
            let server = match args.tls()? {
                Some(config) => server.tls(config),
                None => server,
            };
            let options = args.options();
            if args.systemd {
                for (index, PassedSocket { socket, fd, name }) in
                    std::mem::take(&mut passed).into_iter().enumerate()
                {
                    let listener = server.adopt(socket)?;
                    options::warn_unused(&options, listener.local_endpoint());
                    sockets.add(upgrade::passed_name(index, name.as_deref()), listener.as_fd())?;
                    let name = name.map(|name| format!(" {name:?}")).unwrap_or_default();
                    listening.push((listener, args, format!("passed by systemd as fd {fd}{name}, ")));
                }
            } else {
                for endpoint in &args.endpoints {
                    options::warn_unused(&options, endpoint);
                    let name = upgrade::endpoint_name(endpoint);
                    let (listener, origin) = match handed.as_mut().and_then(|handed| handed.socket(&name)) {
                        Some(socket) => (server.adopt_as(socket, endpoint)?, "handed over, "),
                        None => (server.bind(endpoint).await?, ""),
                    };
                    sockets.add(name, listener.as_fd())?;
                    listening.push((listener, args, origin.to_owned()));
                }
            }
            let exposed = listening
                .iter()
                .filter(|(_, of, _)| std::ptr::eq(*of, args))
                .map(|(listener, ..)| listener.local_endpoint())
                .find(|endpoint| reachable_from_other_hosts(endpoint));
            if let Some(endpoint) = exposed {
                let (limits, applied) = args.exposed_limits();
                if !applied.is_empty() {
                    server.limits_handle().set(limits);
                    info!(
                        "{endpoint} can be reached from other hosts: {} apply, as for any listener not on \
                         loopback (set them to change this, 0 turns one off)",
                        applied.join(" and ")
                    );
                }
            }
            live.push(Live {
                limits: server.limits_handle(),
                tls: server.tls_handle(),
                exposed: exposed.is_some(),
            });
        }
        Ok(Ok(Bound {
            metrics,
            listening,
            live,
            sockets,
        }))
    }
}

/// A listener's task: it serves until `stopping` says how it drains.
type Serving = JoinSet<Result<(), sockit::Error>>;

/// Starts serving every listening socket, each with a line saying how;
/// each stops as `stopping` says once it is set. Returns the listeners'
/// tasks, and the keepers of their Unix socket files (kept, not removed,
/// when an upgrade's new process serves them on).
fn listen(
    listening: Vec<(sockit::Listener<Builtin>, &Args, String)>,
    stopping: &tokio::sync::watch::Receiver<Option<Drain>>,
) -> (Serving, Vec<sockit::net::unix::SocketFileKeeper>) {
    let mut serving = JoinSet::new();
    let mut keepers = Vec::new();
    for (listener, args, origin) in listening {
        keepers.extend(listener.socket_file().map(sockit::net::unix::SocketFile::keeper));
        let endpoint = listener.local_endpoint();
        let mut details = format!("{origin}{} service", args.service);
        if endpoint.transport() == Transport::Stream {
            details.push_str(&format!(", {} framing", listener.framing()));
        } else if let Some(limit) = args.limits().rate_limit {
            details.push_str(&format!(", at most {limit} a source"));
        }
        if args.proxy_protocol && endpoint.transport() == Transport::Stream {
            let trusted: Vec<String> = args.trusted_proxy.iter().map(ToString::to_string).collect();
            details.push_str(&format!(", PROXY protocol from {}", trusted.join(", ")));
        }
        let options = args.options();
        if options != SocketOptions::default() {
            details.push_str(&format!(", {}", options.read_back(&SockRef::from(&listener))));
        }
        info!("listening on {endpoint} ({details})");
        let mut stopping = stopping.clone();
        serving.spawn(listener.serve_then(async move {
            match stopping.wait_for(Option::is_some).await {
                Ok(drain) => drain.unwrap_or_default(),
                Err(_) => Drain::Finish,
            }
        }));
    }
    (serving, keepers)
}

/// What an upgrade (SIGUSR2) needs: the binary to start, the sockets to
/// hand it, how long to wait for it, and the Unix socket files to keep.
struct Upgrades {
    exe: std::path::PathBuf,
    sockets: std::sync::Arc<upgrade::Sockets>,
    timeout: Duration,
    keepers: Vec<sockit::net::unix::SocketFileKeeper>,
}

/// The signals `serve` answers.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
    upgrade: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            hangup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
            upgrade: signal(SignalKind::user_defined2()).context("cannot handle SIGUSR2")?,
        })
    }

    /// Reloads on SIGHUP and upgrades on SIGUSR2 until SIGINT, SIGTERM or
    /// an upgrade's new process serves: then the pid of that process, if
    /// it was an upgrade. An upgrade still under way is given up.
    async fn serve_until_stopped(
        &mut self,
        upgrades: Upgrades,
        listeners: &[Listener],
        live: &[Live],
    ) -> Option<u32> {
        let mut upgrading: Option<tokio::task::JoinHandle<Upgraded>> = None;
        let handed_over = loop {
            tokio::select! {
                _ = self.interrupt.recv() => { info!("SIGINT: shutting down (again to stop at once)"); break None }
                _ = self.terminate.recv() => { info!("SIGTERM: shutting down (again to stop at once)"); break None }
                _ = self.hangup.recv() => {
                    // systemd (Type=notify-reload, or ExecReload with Type=notify)
                    // waits for READY=1 after RELOADING=1 and the time it began.
                    match NotifyState::monotonic_usec_now() {
                        Ok(now) => notify_all(&[NotifyState::Reloading, now]),
                        Err(error) => warn!(%error, "cannot read the monotonic clock for RELOADING=1"),
                    }
                    reload(listeners, live);
                    notify(NotifyState::Ready);
                }
                _ = self.upgrade.recv() => {
                    if upgrading.is_some() {
                        warn!("SIGUSR2: an upgrade is already under way; this one is ignored");
                        continue;
                    }
                    info!("SIGUSR2: upgrading: starting {} with every listening socket", upgrades.exe.display());
                    let (exe, sockets) = (upgrades.exe.clone(), std::sync::Arc::clone(&upgrades.sockets));
                    let timeout = upgrades.timeout;
                    upgrading = Some(tokio::spawn(async move { upgrade::start(&exe, &sockets, timeout).await }));
                }
                Some(upgraded) = async { upgrading.as_mut()?.await.ok() }, if upgrading.is_some() => {
                    upgrading = None;
                    match upgraded {
                        Upgraded::Ready { pid } => {
                            info!("upgrade: pid {pid} serves; this process stops accepting and drains");
                            for keeper in &upgrades.keepers {
                                keeper.keep();
                            }
                            notify_all(&[NotifyState::MainPid(pid), NotifyState::Ready]);
                            break Some(pid);
                        }
                        Upgraded::Failed { why } => warn!("upgrade failed: {why}; this process serves on"),
                    }
                }
            }
        };
        // The copies kept for an upgrade go (dropped with `upgrades`): a
        // listener stopped is closed.
        if let Some(upgrade) = upgrading.take() {
            upgrade.abort();
        }
        handed_over
    }
}

/// Waits for every listener to drain (a second SIGINT or SIGTERM stops at
/// once), removes the pid file and says how it ended: failure if
/// connections were cut at a shutdown timeout.
async fn drain(
    mut serving: Serving,
    signals: &mut Signals,
    pid_file: Option<&std::path::Path>,
    handed_over: Option<u32>,
) -> anyhow::Result<ExitCode> {
    // Every listener is waited for; those that cut connections at their
    // shutdown timeout say so, and make the exit a failure.
    let finished = async {
        let (mut cut, mut timeout) = (0, Duration::ZERO);
        while let Some(served) = serving.join_next().await {
            match served.context("a listener panicked")? {
                Ok(()) => {}
                Err(
                    error @ sockit::Error::Cut {
                        connections,
                        timeout: waited,
                        ..
                    },
                ) => {
                    warn!("{error}");
                    cut += connections;
                    timeout = timeout.max(waited);
                }
                Err(error) => return Err(error.into()),
            }
        }
        anyhow::Ok((cut, timeout))
    };
    let (cut, timeout) = tokio::select! {
        finished = finished => finished?,
        _ = signals.interrupt.recv() => { warn!("stopped at once"); return Ok(ExitCode::FAILURE) }
        _ = signals.terminate.recv() => { warn!("stopped at once"); return Ok(ExitCode::FAILURE) }
    };
    if let Some(path) = pid_file
        && std::fs::read_to_string(path).is_ok_and(|text| text.trim() == std::process::id().to_string())
    {
        let _ = std::fs::remove_file(path);
    }
    let serves_on = handed_over
        .map(|pid| format!("; pid {pid} serves on"))
        .unwrap_or_default();
    if cut > 0 {
        warn!(
            "shut down: {cut} {} cut at the shutdown timeout (--shutdown-timeout {}){serves_on}",
            if cut == 1 { "connection" } else { "connections" },
            humantime::format_duration(timeout)
        );
        return Ok(ExitCode::FAILURE);
    }
    info!("shut down cleanly{serves_on}");
    Ok(ExitCode::SUCCESS)
}

/// Tells the service manager (systemd with `Type=notify`) that sockit is
/// ready or stopping, when it asked (`NOTIFY_SOCKET` is set); nothing otherwise.
fn notify(state: NotifyState<'_>) {
    notify_all(std::slice::from_ref(&state));
}

/// [`notify`] with several states in one message.
fn notify_all(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        let states: Vec<String> = states.iter().map(ToString::to_string).collect();
        warn!(%error, "cannot tell the service manager {}", states.join(", "));
    }
}
