//! The server: binds endpoints, accepts under a connection limit, runs one
//! task per stream connection and one receive loop per datagram socket, and
//! stops on a shutdown future passed in by the caller.
//!
//! # Examples
//!
//! The seed's UDP server, answered by a client and stopped:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sockit::Error> {
//! use std::time::Duration;
//! use tokio::sync::oneshot;
//! use sockit::{DatagramClient, Endpoint, Greet, Server};
//!
//! let listener = Server::new(Greet).bind(&"udp://127.0.0.1:0".parse()?).await?;
//! let endpoint = listener.local_endpoint().clone();
//! let (stop, stopped) = oneshot::channel::<()>();
//! let serving = tokio::spawn(listener.serve(async { stopped.await.unwrap_or(()) }));
//!
//! let client = DatagramClient::connect(&endpoint, Duration::from_secs(5), 0).await?;
//! assert_eq!(client.request(b"client").await?, "Hello, client");
//! stop.send(()).unwrap();
//! serving.await.unwrap()
//! # }
//! ```

use std::fmt;
use std::fs::File;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use socket2::SockRef;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_seqpacket::{UnixSeqpacket, UnixSeqpacketListener};
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

pub use crate::answer::Answer;
use crate::answer::{Accepted, DatagramServing};
use crate::connection::{self, Settings, Stop};
use crate::datagram::DatagramSocket;
use crate::deadline::Timeouts;
use crate::framing::DEFAULT_MAX_MESSAGE;
use crate::handler::{DEFAULT_SEND_QUEUE, Handled, Handler};
use crate::limit::{LogGate, RateLimit, ReplyCap};
use crate::metrics::{ErrorKind, ListenerMetrics, Metrics};
use crate::net::inherited::{self, Inherited};
use crate::net::unix::SocketFile;
use crate::net::{self, SocketOptions, seqpacket, tcp, udp, unix, unix_datagram};
use crate::proxied;
use crate::proxy::ProxyProtocol;
use crate::{Endpoint, Error, Framing, Peer, datagram};

/// The default limit on open connections, across all of a server's listeners.
///
/// # Examples
///
/// ```
/// use sockit::server::DEFAULT_MAX_CONNECTIONS;
/// use sockit::{Greet, Server};
///
/// assert_eq!(DEFAULT_MAX_CONNECTIONS, 10_000);
/// let handle = Server::new(Greet).limits_handle();
/// assert_eq!(handle.get().max_connections, DEFAULT_MAX_CONNECTIONS);
/// ```
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// How many datagrams a datagram listener takes per system call unless told.
///
/// # Examples
///
/// ```
/// use sockit::server::DEFAULT_DATAGRAM_BATCH;
/// use sockit::{Echo, Server};
///
/// assert_eq!(DEFAULT_DATAGRAM_BATCH, 64);
/// // One datagram per system call instead:
/// let server = Server::new(Echo).datagram_batch(1);
/// # drop(server);
/// ```
pub const DEFAULT_DATAGRAM_BATCH: usize = 64;
/// How long shutdown waits for open connections by default.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sockit::server::DEFAULT_SHUTDOWN_TIMEOUT;
/// use sockit::{Echo, Server};
///
/// assert_eq!(DEFAULT_SHUTDOWN_TIMEOUT, Duration::from_secs(10));
/// let server = Server::new(Echo).shutdown_timeout(Duration::from_secs(2));
/// # drop(server);
/// ```
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// The shortest and longest pause after an accept error that may repeat
/// (out of descriptors, out of memory).
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// What a stream listener does with a new peer while every connection
/// permit is taken ([`Server::max_connections`]).
///
/// # Examples
///
/// ```
/// use sockit::{Greet, Server, WhenFull};
///
/// assert_eq!(WhenFull::default(), WhenFull::Wait);
/// assert_eq!("refuse".parse::<WhenFull>(), Ok(WhenFull::Refuse));
/// assert!("drop".parse::<WhenFull>().is_err());
/// let server = Server::new(Greet).max_connections(2).when_full(WhenFull::Refuse);
/// # drop(server);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Leave it in the listen backlog until a connection closes (the
    /// default): it is served late rather than not at all.
    #[default]
    Wait,
    /// Accept it and close it at once, before the greeting, so it learns
    /// now rather than when its connect times out. No message is sent: in a
    /// protocol whose first bytes are the greeting (or an echo) an error
    /// text could pass for them, while an end of stream before the greeting
    /// cannot.
    Refuse,
}

impl WhenFull {
    /// The name on the command line.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::WhenFull;
    ///
    /// assert_eq!(WhenFull::Refuse.name(), "refuse");
    /// assert_eq!(WhenFull::Wait.to_string(), "wait");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            WhenFull::Wait => "wait",
            WhenFull::Refuse => "refuse",
        }
    }
}

impl fmt::Display for WhenFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for WhenFull {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [WhenFull::Wait, WhenFull::Refuse]
            .into_iter()
            .find(|when| when.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| format!("{text:?}: expected wait or refuse"))
    }
}

/// A service with its limits, ready to be bound to endpoints: the seed's
/// "SocketServer", done properly.
///
/// Every listener bound from one `Server` shares its connection limit.
///
/// # Examples
///
/// Serve the greeting protocol until Ctrl-C:
///
/// ```no_run
/// # async fn run() -> Result<(), sockit::Error> {
/// use sockit::{Endpoint, Framing, Greet, Server};
///
/// let endpoint: Endpoint = "tcp://127.0.0.1:8000".parse()?;
/// let listener = Server::new(Greet)
///     .framing(Framing::Line)
///     .max_connections(100)
///     .bind(&endpoint)
///     .await?;
/// listener.serve(async { tokio::signal::ctrl_c().await.unwrap() }).await
/// # }
/// ```
///
/// Every setting, chained (each has its own page below); the limits among
/// them read back through a [`LimitsHandle`]:
///
/// ```
/// use std::time::Duration;
/// use sockit::limit::{RateLimit, ReplyCap};
/// use sockit::net::SocketOptions;
/// use sockit::{Echo, Framing, Limits, Server, WhenFull};
///
/// let server = Server::new(Echo)
///     .framing(Framing::Line)
///     .max_message(1024)
///     .max_connections(100)
///     .when_full(WhenFull::Refuse)
///     .idle_timeout(Duration::from_secs(60))
///     .read_timeout(Duration::from_secs(10))
///     .shutdown_timeout(Duration::from_secs(2))
///     .backlog(128)
///     .unix_mode(0o660)
///     .options(SocketOptions::default())
///     .datagram_batch(16)
///     .datagram_rate_limit(RateLimit::per_second(100))
///     .reply_cap(ReplyCap::none());
/// assert_eq!(server.framing_in_use(), Framing::Line);
/// assert_eq!(
///     server.limits_handle().get(),
///     Limits {
///         max_connections: 100,
///         max_message: 1024,
///         idle_timeout: Some(Duration::from_secs(60)),
///         read_timeout: Some(Duration::from_secs(10)),
///         rate_limit: Some(RateLimit::per_second(100)),
///         reply_cap: ReplyCap::none(),
///     }
/// );
/// ```
#[derive(Debug)]
pub struct Server<S> {
    service: Arc<S>,
    framing: Option<Framing>,
    max_message: usize,
    shutdown_timeout: Duration,
    backlog: u32,
    unix_mode: Option<u32>,
    options: SocketOptions,
    permits: Arc<Semaphore>,
    max_connections: usize,
    when_full: WhenFull,
    datagram_batch: usize,
    rate_limit: Option<RateLimit>,
    reply_cap: ReplyCap,
    timeouts: Timeouts,
    /// Headers to take from trusted load balancers (off: `None`).
    proxy: Option<Arc<ProxyProtocol>>,
    /// Limits set after the listeners were bound, through a [`LimitsHandle`].
    live: tokio::sync::watch::Sender<Option<Limits>>,
    /// The certificate and key `tls://` listeners serve with, changed
    /// while they serve through a [`TlsHandle`].
    tls: tokio::sync::watch::Sender<Option<Arc<rustls::ServerConfig>>>,
    /// Where listeners count what they do, if anywhere.
    metrics: Option<Metrics>,
    /// The bytes a handler's connection queues before its senders wait.
    send_queue: usize,
}

/// The limits that a running server can change (through a
/// [`LimitsHandle`]): the connection limit at once, the other limits of
/// stream connections for the connections accepted after the change, the
/// datagram limits from the next datagram. Connections already open keep
/// the limits they started with, and none is closed by a change. (The
/// longest datagram a datagram listener takes is fixed when it is bound.)
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sockit::{Greet, Limits, Server};
///
/// let limits = Limits {
///     max_connections: 100,
///     idle_timeout: Some(Duration::from_secs(60)),
///     ..Limits::default()
/// };
/// assert_eq!(Limits::default().max_connections, 10_000);
/// assert_eq!(Server::new(Greet).limits(limits).limits_handle().get(), limits);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most stream connections open at once.
    pub max_connections: usize,
    /// The longest message on a stream connection.
    pub max_message: usize,
    /// Close a connection without progress for this long (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Close a connection whose message takes longer to arrive (`None`: never).
    pub read_timeout: Option<Duration>,
    /// Each datagram source's rate (`None`: unlimited). A change starts
    /// every source's budget afresh.
    pub rate_limit: Option<RateLimit>,
    /// The cap on a datagram reply against its request.
    pub reply_cap: ReplyCap,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_message: DEFAULT_MAX_MESSAGE,
            idle_timeout: None,
            read_timeout: None,
            rate_limit: None,
            reply_cap: ReplyCap::default(),
        }
    }
}

/// Changes the [`Limits`] of a server while it serves (`sockit serve` does
/// on SIGHUP). Made by [`Server::limits_handle`]; cheap to clone.
///
/// # Examples
///
/// Lower the longest message of a serving listener: a connection accepted
/// after the change is held to it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sockit::Error> {
/// use std::time::Duration;
/// use tokio::sync::oneshot;
/// use sockit::{Framing, Greet, Limits, Server, StreamClient};
///
/// let server = Server::new(Greet);
/// let handle = server.limits_handle();
/// let listener = server.bind(&"tcp://127.0.0.1:0".parse()?).await?;
/// let endpoint = listener.local_endpoint().clone();
/// let (stop, stopped) = oneshot::channel::<()>();
/// let serving = tokio::spawn(listener.serve(async { stopped.await.unwrap_or(()) }));
///
/// handle.set(Limits { max_message: 8, ..handle.get() });
/// assert_eq!(handle.get().max_message, 8);
///
/// let mut client = StreamClient::connect(&endpoint, Framing::Line, Duration::from_secs(5)).await?;
/// assert_eq!(client.receive_greeting().await?.unwrap(), "Hello, I am server");
/// client.send(b"short").await?;
/// assert_eq!(client.receive().await?.unwrap(), "Hello, short!");
/// client.send(b"far too long").await?;
/// assert_eq!(client.receive().await?.unwrap(), "ERR message too long");
/// drop(client);
/// stop.send(()).unwrap();
/// serving.await.unwrap()
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LimitsHandle {
    live: tokio::sync::watch::Sender<Option<Limits>>,
    permits: Arc<Semaphore>,
}

impl LimitsHandle {
    /// The limits in force.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::{Greet, Server};
    ///
    /// let handle = Server::new(Greet).max_connections(5).limits_handle();
    /// assert_eq!(handle.get().max_connections, 5);
    /// ```
    pub fn get(&self) -> Limits {
        self.live.borrow().expect("a handle's server always has limits")
    }

    /// Applies `limits`. A lower connection limit takes effect as open
    /// connections close (none is closed for it); a higher one at once.
    /// Call it within the runtime that serves (a lower limit waits there
    /// for the permits it takes back).
    ///
    /// A connection limit of 0 is taken as 1, a longest message of 0 as 1,
    /// and a zero timeout as none.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use sockit::{Greet, Limits, Server};
    ///
    /// let handle = Server::new(Greet).limits_handle();
    /// handle.set(Limits {
    ///     max_connections: 0,
    ///     read_timeout: Some(Duration::ZERO),
    ///     ..Limits::default()
    /// });
    /// assert_eq!(handle.get().max_connections, 1);
    /// assert_eq!(handle.get().read_timeout, None);
    /// # }
    /// ```
    pub fn set(&self, limits: Limits) {
        let old = self.get();
        let new_max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        match new_max.cmp(&old.max_connections) {
            std::cmp::Ordering::Greater => self.permits.add_permits(new_max - old.max_connections),
            std::cmp::Ordering::Less => {
                let excess = old.max_connections - new_max;
                let taken = self.permits.forget_permits(excess);
                if taken < excess {
                    // The rest as connections close: wait for them, then forget them.
                    let permits = Arc::clone(&self.permits);
                    let rest = u32::try_from(excess - taken).unwrap_or(u32::MAX);
                    tokio::spawn(async move {
                        if let Ok(permits) = permits.acquire_many_owned(rest).await {
                            permits.forget();
                        }
                    });
                }
            }
            std::cmp::Ordering::Equal => {}
        }
        let limits = Limits {
            max_connections: new_max,
            max_message: limits.max_message.max(1),
            idle_timeout: limits.idle_timeout.filter(|t| !t.is_zero()),
            read_timeout: limits.read_timeout.filter(|t| !t.is_zero()),
            ..limits
        };
        self.live.send_replace(Some(limits));
    }
}

impl<H: Handler> Server<Handled<H>> {
    /// A server whose connections are each served by `handler`, with the
    /// default limits; see [`handler`](crate::handler) for when to write a
    /// handler rather than a [`Service`](crate::Service).
    ///
    /// # Examples
    ///
    /// A greeting, then every line back in capitals, served on TCP:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::time::Duration;
    /// use sockit::handler::Connection;
    /// use sockit::{Framing, Server, StreamClient};
    ///
    /// let server = Server::handler(|mut connection: Connection| async move {
    ///     connection.send("hi").await?;
    ///     while let Some(line) = connection.receive().await {
    ///         connection.send(line.to_ascii_uppercase()).await?;
    ///     }
    ///     Ok(())
    /// });
    /// assert_eq!(server.framing_in_use(), Framing::Line);
    /// let listener = server.bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// let endpoint = listener.local_endpoint().clone();
    /// tokio::spawn(listener.serve(std::future::pending()));
    ///
    /// let mut client = StreamClient::connect(&endpoint, Framing::Line, Duration::from_secs(5)).await?;
    /// assert_eq!(client.receive_greeting().await?.unwrap(), "hi");
    /// client.send(b"shout").await?;
    /// assert_eq!(client.receive().await?.unwrap(), "SHOUT");
    /// # Ok(())
    /// # }
    /// ```
    pub fn handler(handler: H) -> Self {
        Server::new(Handled(handler))
    }
}

impl<S: Answer> Server<S> {
    /// A server for `service`, with the default limits.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::{Echo, Framing, Limits, Server};
    ///
    /// let server = Server::new(Echo);
    /// assert_eq!(server.framing_in_use(), Framing::Raw);
    /// assert_eq!(server.limits_handle().get(), Limits::default());
    /// ```
    pub fn new(service: S) -> Self {
        Server {
            service: Arc::new(service),
            framing: None,
            max_message: DEFAULT_MAX_MESSAGE,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            backlog: net::DEFAULT_BACKLOG,
            unix_mode: None,
            options: SocketOptions::default(),
            permits: Arc::new(Semaphore::new(DEFAULT_MAX_CONNECTIONS)),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            when_full: WhenFull::Wait,
            datagram_batch: DEFAULT_DATAGRAM_BATCH,
            rate_limit: None,
            reply_cap: ReplyCap::default(),
            timeouts: Timeouts::default(),
            proxy: None,
            live: tokio::sync::watch::Sender::new(None),
            tls: tokio::sync::watch::Sender::new(None),
            metrics: None,
            send_queue: DEFAULT_SEND_QUEUE,
        }
    }

    /// The TLS setting (certificate and key) that `tls://` listeners serve
    /// with; other listeners do not use it. Make one from PEM files with
    /// [`net::tls::server_config`].
    ///
    /// Each TLS connection's handshake must end within
    /// [`HANDSHAKE_TIMEOUT`](net::tls::HANDSHAKE_TIMEOUT), holding its
    /// connection permit meanwhile; a failed handshake is logged and closes
    /// that connection only. Then it is served as on TCP, through a loop of
    /// its own (TLS keeps its own buffers, so the idle-connection savings of
    /// plain connections do not apply), and closed with TLS's
    /// `close_notify`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use sockit::{Endpoint, Greet, Server};
    ///
    /// let tls = sockit::net::tls::server_config("cert.pem".as_ref(), "key.pem".as_ref())?;
    /// let endpoint: Endpoint = "tls://127.0.0.1:8443".parse()?;
    /// let listener = Server::new(Greet).tls(tls).bind(&endpoint).await?;
    /// listener.serve(async { tokio::signal::ctrl_c().await.unwrap() }).await?;
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn tls(self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls.send_replace(Some(config));
        self
    }

    /// A handle that changes the certificate and key this server's `tls://`
    /// listeners serve with, while they serve: a renewed certificate is
    /// taken without a restart (`sockit serve` reads its files again on
    /// SIGHUP).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use sockit::{Endpoint, Greet, Server};
    ///
    /// let read = || sockit::net::tls::server_config("cert.pem".as_ref(), "key.pem".as_ref());
    /// let server = Server::new(Greet).tls(read()?);
    /// let renew = server.tls_handle();
    /// let listener = server.bind(&"tls://127.0.0.1:8443".parse::<Endpoint>()?).await?;
    /// tokio::spawn(async move {
    ///     let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).unwrap();
    ///     while hangup.recv().await.is_some() {
    ///         if let Ok(config) = read() {
    ///             renew.set(config);
    ///         }
    ///     }
    /// });
    /// listener.serve(async { tokio::signal::ctrl_c().await.unwrap() }).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn tls_handle(&self) -> TlsHandle {
        TlsHandle {
            live: self.tls.clone(),
        }
    }

    /// Sets every limit in `limits` at once: the connection limit, the
    /// longest message, the idle and read timeouts, the datagram rate limit
    /// and reply cap (the same as their own setters).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::{Greet, Limits, Server};
    ///
    /// let limits = Limits { max_connections: 2, max_message: 512, ..Limits::default() };
    /// let server = Server::new(Greet).limits(limits);
    /// assert_eq!(server.limits_handle().get(), limits);
    /// ```
    #[must_use]
    pub fn limits(self, limits: Limits) -> Self {
        let server = self
            .max_connections(limits.max_connections)
            .max_message(limits.max_message)
            .idle_timeout(limits.idle_timeout.unwrap_or_default())
            .read_timeout(limits.read_timeout.unwrap_or_default())
            .reply_cap(limits.reply_cap);
        Server {
            rate_limit: limits.rate_limit,
            ..server
        }
    }

    /// A handle that changes this server's [`Limits`] while its listeners
    /// serve, starting from the limits set so far. Listeners bound before or
    /// after all follow it. See [`LimitsHandle`] for one changing a serving
    /// listener's limits.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::{Greet, Server};
    ///
    /// let server = Server::new(Greet).max_message(100);
    /// let handle = server.limits_handle();
    /// assert_eq!(handle.get().max_message, 100);
    /// // Every handle of a server is the same handle.
    /// assert_eq!(server.limits_handle().get(), handle.get());
    /// ```
    pub fn limits_handle(&self) -> LimitsHandle {
        let max_connections = self.max_connections;
        self.live.send_if_modified(|live| {
            let first = live.is_none();
            if first {
                *live = Some(Limits {
                    max_connections,
                    max_message: self.max_message,
                    idle_timeout: self.timeouts.idle,
                    read_timeout: self.timeouts.read,
                    rate_limit: self.rate_limit,
                    reply_cap: self.reply_cap,
                });
            }
            first
        });
        LimitsHandle {
            live: self.live.clone(),
            permits: Arc::clone(&self.permits),
        }
    }

    /// How stream listeners cut messages; by default the choice of what
    /// answers ([`Service::default_framing`](crate::Service::default_framing)
    /// or [`Handler::default_framing`]).
    /// Datagrams need no framing.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::{Echo, Framing, Server};
    ///
    /// // Echo is raw by default: every byte back. Line by line instead:
    /// let server = Server::new(Echo).framing(Framing::Line);
    /// assert_eq!(server.framing_in_use(), Framing::Line);
    /// ```
    #[must_use]
    pub fn framing(mut self, framing: Framing) -> Self {
        self.framing = Some(framing);
        self
    }

    /// The most stream connections open at once (default 10,000). Past it,
    /// new peers wait in the listen backlog until a connection closes, or
    /// are refused ([`when_full`](Self::when_full)).
    ///
    /// # Examples
    ///
    /// See [`when_full`](Self::when_full) for a server full at one
    /// connection.
    ///
    /// ```
    /// use sockit::{Greet, Server};
    ///
    /// let server = Server::new(Greet).max_connections(0); // taken as 1
    /// assert_eq!(server.limits_handle().get().max_connections, 1);
    /// ```
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.clamp(1, Semaphore::MAX_PERMITS);
        self.permits = Arc::new(Semaphore::new(self.max_connections));
        self
    }

    /// What becomes of new peers past [`max_connections`](Self::max_connections):
    /// they wait in the backlog (the default) or are closed at once.
    ///
    /// # Examples
    ///
    /// A server full at one connection closes the second at once:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::time::Duration;
    /// use sockit::{Framing, Greet, Server, StreamClient, WhenFull};
    ///
    /// let server = Server::new(Greet).max_connections(1).when_full(WhenFull::Refuse);
    /// let listener = server.bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// let endpoint = listener.local_endpoint().clone();
    /// tokio::spawn(listener.serve(std::future::pending()));
    ///
    /// let timeout = Duration::from_secs(5);
    /// let mut first = StreamClient::connect(&endpoint, Framing::Auto, timeout).await?;
    /// assert_eq!(first.receive_greeting().await?.unwrap(), "Hello, I am server");
    /// let mut second = StreamClient::connect(&endpoint, Framing::Auto, timeout).await?;
    /// assert_eq!(second.receive_greeting().await?, None);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn when_full(mut self, when_full: WhenFull) -> Self {
        self.when_full = when_full;
        self
    }

    /// Holds every datagram source to `limit` (off by default): past it, a
    /// source's datagrams are dropped unanswered, counted, and logged once
    /// in a while. A source is an IPv4 address, an IPv6 /64 or a Unix
    /// address ([`IpSource`](crate::limit::IpSource)); up to 65,536 of them
    /// are remembered at once, those closest to a full bucket forgotten
    /// first.
    ///
    /// Set it on a UDP service others can reach: a forger can make a UDP
    /// server send its replies to any address. It is off by default because
    /// sockit is mostly a test server on loopback, where one client sending
    /// as fast as it can is the point.
    ///
    /// # Examples
    ///
    /// Each source gets 100 datagrams a second, in bursts of 20 (see
    /// [`RateLimit`] for one served):
    ///
    /// ```
    /// use sockit::limit::RateLimit;
    /// use sockit::{Echo, Server};
    ///
    /// let server = Server::new(Echo).datagram_rate_limit(RateLimit::per_second(100).burst(20));
    /// assert_eq!(server.limits_handle().get().rate_limit.unwrap().to_string(), "100/s (bursts of 20)");
    /// ```
    #[must_use]
    pub fn datagram_rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// The cap on a datagram's reply against its request (by default at
    /// most three times it, or 64 bytes: see [`ReplyCap`]). A reply past it
    /// is not sent; that is counted and logged.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::limit::ReplyCap;
    /// use sockit::{Greet, Server};
    ///
    /// // Replies of at most 512 bytes, whatever the request.
    /// let cap = ReplyCap::none().max_reply(Some(512));
    /// let server = Server::new(Greet).reply_cap(cap);
    /// assert_eq!(server.limits_handle().get().reply_cap.limit(1), 512);
    /// ```
    #[must_use]
    pub fn reply_cap(mut self, cap: ReplyCap) -> Self {
        self.reply_cap = cap;
        self
    }

    /// How many bytes a handler's connection may have queued, unwritten,
    /// before [`Connection::send`](crate::handler::Connection::send) and
    /// [`Sender::send`](crate::handler::Sender::send) wait, and a
    /// [`Group`](crate::handler::Group) broadcast lets the connection go;
    /// [`DEFAULT_SEND_QUEUE`] by default. Services do not use it: their
    /// replies are written before the next message is read.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::Server;
    /// use sockit::handler::{Connection, DEFAULT_SEND_QUEUE};
    ///
    /// let server = Server::handler(|_: Connection| async { Ok(()) });
    /// assert_ne!(DEFAULT_SEND_QUEUE, 4096);
    /// assert_eq!(server.send_queue(4096).send_queue_in_use(), 4096);
    /// ```
    #[must_use]
    pub fn send_queue(mut self, bytes: usize) -> Self {
        self.send_queue = bytes.max(1);
        self
    }

    /// The send queue handlers' connections get; see [`send_queue`](Self::send_queue).
    pub fn send_queue_in_use(&self) -> usize {
        self.send_queue
    }

    /// The longest message accepted (default 64 KiB). On a connection a
    /// longer one gets an error reply and the connection is closed; a longer
    /// datagram is dropped, logged and counted.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::time::Duration;
    /// use sockit::{Framing, Greet, Server, StreamClient};
    ///
    /// let listener = Server::new(Greet).max_message(5).bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// let endpoint = listener.local_endpoint().clone();
    /// tokio::spawn(listener.serve(std::future::pending()));
    ///
    /// let mut client = StreamClient::connect(&endpoint, Framing::Line, Duration::from_secs(5)).await?;
    /// client.receive_greeting().await?;
    /// client.send(b"12345").await?;
    /// assert_eq!(client.receive().await?.unwrap(), "Hello, 12345!");
    /// client.send(b"123456").await?;
    /// assert_eq!(client.receive().await?.unwrap(), "ERR message too long");
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes.max(1);
        self
    }

    /// How many datagrams a datagram listener takes in one system call
    /// (`recvmmsg`), answering them all with one more (`sendmmsg`); default
    /// 64. At 1 it reads and answers one datagram per call.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::time::Duration;
    /// use sockit::{DatagramClient, Echo, Server};
    ///
    /// let listener = Server::new(Echo).datagram_batch(1).bind(&"udp://127.0.0.1:0".parse()?).await?;
    /// let endpoint = listener.local_endpoint().clone();
    /// tokio::spawn(listener.serve(std::future::pending()));
    ///
    /// let client = DatagramClient::connect(&endpoint, Duration::from_secs(5), 0).await?;
    /// assert_eq!(client.request(b"one at a time").await?, "one at a time");
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn datagram_batch(mut self, datagrams: usize) -> Self {
        self.datagram_batch = datagrams.max(1);
        self
    }

    /// Closes a stream connection (TCP, Unix, seqpacket) with no progress
    /// either way for `timeout`: nothing read, and nothing of the replies it
    /// owes written, so a peer that stops reading is closed too. Off by
    /// default, and with [`Duration::ZERO`].
    ///
    /// Set it on a service others can reach, where idle connections would
    /// otherwise hold their permits ([`max_connections`](Self::max_connections))
    /// for ever. It is off by default because sockit is mostly a test tool:
    /// a learner's `nc` left open must not be closed under them. With it
    /// set, a connection holds a timer of its own (one allocation of 176
    /// bytes); without it, nothing.
    ///
    /// The connection is closed as at other endings (end of stream sent,
    /// what still arrives read and dropped for a moment), with no error text:
    /// one info line says why.
    ///
    /// # Examples
    ///
    /// A client that says nothing for 100 ms is closed:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::time::Duration;
    /// use sockit::{Framing, Greet, Server, StreamClient};
    ///
    /// let server = Server::new(Greet).idle_timeout(Duration::from_millis(100));
    /// let listener = server.bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// let endpoint = listener.local_endpoint().clone();
    /// tokio::spawn(listener.serve(std::future::pending()));
    ///
    /// let mut client = StreamClient::connect(&endpoint, Framing::Auto, Duration::from_secs(5)).await?;
    /// assert_eq!(client.receive_greeting().await?.unwrap(), "Hello, I am server");
    /// assert_eq!(client.receive().await?, None); // closed, after 100 ms
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.idle = Some(timeout).filter(|t| !t.is_zero());
        self
    }

    /// Closes a stream connection when a message takes longer than
    /// `timeout` to arrive whole, counted from its first byte: a peer
    /// trickling bytes (slowloris) cannot hold a connection for ever. Off by
    /// default, and with [`Duration::ZERO`]; it does not apply to seqpacket
    /// connections, whose packets arrive whole.
    ///
    /// Off by default for the reasons of [`idle_timeout`](Self::idle_timeout);
    /// on a service others can reach, tens of seconds is generous for any
    /// real client. A connection pays for the timer only from its first
    /// message that does not arrive in one read.
    ///
    /// # Examples
    ///
    /// A line that does not end within 100 ms closes its connection:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// use tokio::net::TcpStream;
    /// use sockit::{Framing, Greet, Server};
    ///
    /// let server = Server::new(Greet).framing(Framing::Line).read_timeout(Duration::from_millis(100));
    /// let listener = server.bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// let address = listener.local_endpoint().host_port().unwrap().socket_addr().unwrap();
    /// tokio::spawn(listener.serve(std::future::pending()));
    ///
    /// let mut slow = TcpStream::connect(address).await?;
    /// slow.write_all(b"hel").await?; // and no more
    /// let mut got = Vec::new();
    /// slow.read_to_end(&mut got).await?;
    /// assert_eq!(got, b"Hello, I am server\n");
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.read = Some(timeout).filter(|t| !t.is_zero());
        self
    }

    /// Takes the PROXY protocol (v1 and v2) on TCP, TLS and Unix stream
    /// listeners (on TLS the header comes first, in the clear, then the
    /// handshake, as HAProxy sends it to a TLS server behind it in `mode
    /// tcp`): behind a load balancer (HAProxy's `send-proxy-v2`, nginx's
    /// `proxy_protocol on`), every connection starts with a header naming
    /// the client, and the client is the [`Peer`] the service and the logs
    /// see. Off by default.
    ///
    /// A peer that `proxy` does not trust is closed at once, before the
    /// greeting (logged once a second at most). A trusted one must send a
    /// whole, valid header within its timeout, or is closed with one log
    /// line saying why; a `LOCAL` header (the proxy's health check) keeps
    /// the proxy's own address. What follows the header in the same packet
    /// is served as usual.
    ///
    /// [`bind`](Self::bind) refuses datagram and seqpacket endpoints with it
    /// set. Connections pay for it only with it set: the header is read in
    /// a task of their own, larger than the plain one.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::proxy::ProxyProtocol;
    /// use sockit::{Greet, Server};
    ///
    /// let server = Server::new(Greet).proxy_protocol(ProxyProtocol::new(["10.0.0.0/8".parse()?]));
    /// # Ok::<(), sockit::proxy::TrustedProxyError>(())
    /// ```
    #[must_use]
    pub fn proxy_protocol(mut self, proxy: ProxyProtocol) -> Self {
        self.proxy = Some(Arc::new(proxy));
        self
    }

    /// How long shutdown lets open connections finish before closing them
    /// (default 10 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::{Echo, Server};
    ///
    /// let server = Server::new(Echo).shutdown_timeout(Duration::from_secs(1));
    /// # drop(server);
    /// ```
    #[must_use]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Counts what the listeners bound from now on do in `metrics`, each
    /// under its own `listener` label (off by default). See
    /// [`crate::metrics`] for what is counted, and what it costs.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use sockit::metrics::Metrics;
    /// use sockit::{Echo, Server};
    ///
    /// let metrics = Metrics::new();
    /// let listener = Server::new(Echo).metrics(&metrics).bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// let label = format!("{{listener=\"{}\"}}", listener.local_endpoint());
    /// assert!(metrics.encode().contains(&format!("sockit_connections_total{label} 0\n")));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn metrics(mut self, metrics: &Metrics) -> Self {
        self.metrics = Some(metrics.clone());
        self
    }

    /// The listen backlog for stream listeners (default 1024).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::{Echo, Server};
    ///
    /// let server = Server::new(Echo).backlog(4096);
    /// # drop(server);
    /// ```
    #[must_use]
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// The framing stream listeners use: the one set with
    /// [`framing`](Self::framing), or else the service's.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::{Framing, Greet, Server};
    ///
    /// assert_eq!(Server::new(Greet).framing_in_use(), Framing::Auto);
    /// assert_eq!(Server::new(Greet).framing(Framing::Raw).framing_in_use(), Framing::Raw);
    /// ```
    pub fn framing_in_use(&self) -> Framing {
        self.framing
            .unwrap_or_else(|| Answer::default_framing(&*self.service))
    }

    /// The permissions of the socket files of Unix listeners, such as
    /// `0o660` (by default the process's umask decides).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::os::unix::fs::PermissionsExt;
    /// use sockit::{Echo, Endpoint, Server};
    ///
    /// let path = std::env::temp_dir().join(format!("sockit-doc-mode-{}.sock", std::process::id()));
    /// let endpoint: Endpoint = format!("unix:{}", path.display()).parse()?;
    /// let listener = Server::new(Echo).unix_mode(0o600).bind(&endpoint).await?;
    /// let mode = std::fs::metadata(&path).expect("the socket file").permissions().mode();
    /// assert_eq!(mode & 0o777, 0o600);
    /// drop(listener); // and the socket file with it
    /// assert!(!path.exists());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn unix_mode(mut self, mode: u32) -> Self {
        self.unix_mode = Some(mode);
        self
    }

    /// The socket options of listeners and their connections, each where it
    /// applies (see [`SocketOptions::not_applying_to`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::net::SocketOptions;
    /// use sockit::{Echo, Server};
    ///
    /// let server = Server::new(Echo).options(SocketOptions::default().recv_buffer(1 << 20));
    /// # drop(server);
    /// ```
    #[must_use]
    pub fn options(mut self, options: SocketOptions) -> Self {
        self.options = options;
        self
    }

    /// Binds `endpoint`, ready to serve.
    ///
    /// A Unix socket file left behind by a server that is gone is replaced;
    /// one a live server listens on, or a path that is not a socket, is not.
    /// The socket file is removed when the listener stops.
    ///
    /// # Errors
    ///
    /// [`Error::Resolve`] when its host name does not resolve, [`Error::Bind`]
    /// when it cannot be bound (in use, not local, not permitted), or when it
    /// is a `tls://` endpoint and no [`tls`](Self::tls) setting was given.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is bound until the future completes.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use sockit::{Echo, Endpoint, Error, Server};
    ///
    /// let server = Server::new(Echo);
    /// let listener = server.bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// assert_ne!(listener.local_endpoint().to_string(), "tcp://127.0.0.1:0");
    /// // The same address again: in use.
    /// let taken: Endpoint = listener.local_endpoint().clone();
    /// assert!(matches!(server.bind(&taken).await, Err(Error::Bind { .. })));
    /// // TLS without a certificate.
    /// assert!(matches!(server.bind(&"tls://127.0.0.1:0".parse()?).await, Err(Error::Bind { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bind(&self, endpoint: &Endpoint) -> Result<Listener<S>, Error> {
        if let Some(source) = self.proxy_unsupported(endpoint) {
            return Err(Error::Bind {
                endpoint: endpoint.clone(),
                source,
            });
        }
        let has_tls = self.tls.borrow().is_some();
        let tls = match (endpoint, has_tls) {
            (Endpoint::Tls(_), true) => Some(self.tls.subscribe()),
            (Endpoint::Tls(_), false) => {
                return Err(Error::Bind {
                    endpoint: endpoint.clone(),
                    source: io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "no certificate and key to serve TLS with (Server::tls)",
                    ),
                });
            }
            _ => None,
        };
        let bound = Bound::bind(endpoint, self.backlog, self.unix_mode, &self.options).await?;
        Ok(self.listener(bound, tls))
    }

    /// Serves a socket opened elsewhere and handed over: one that systemd
    /// passed ([`net::systemd::take`]), or a parent process, or a test. It is
    /// not bound again: it is served as it is, of whichever kind it is (a
    /// listening TCP, Unix stream or seqpacket socket, a bound UDP or Unix
    /// datagram socket), found with `getsockopt`.
    ///
    /// The socket keeps the options it was made with (address reuse, backlog,
    /// IPv6-only: a .socket unit's `ReusePort=`, `Backlog=`…); of this
    /// server's [`options`](Self::options), the buffer sizes and the UDP
    /// broadcast and multicast groups are applied to it, and the options of
    /// connections to each connection. A Unix socket file is left where it is
    /// when the listener stops (systemd removes its own).
    ///
    /// # Errors
    ///
    /// [`Error::Adopt`], saying what the socket is, when it is not a socket,
    /// is a stream socket that is not listening (a connection, as systemd's
    /// `Accept=yes` passes), is a datagram socket not bound, or is of a kind
    /// sockit does not serve (raw, netlink…); or when this server takes the
    /// PROXY protocol and the socket is not a TCP or Unix stream one.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// Serve a listener made with the standard library, where it is:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::os::fd::OwnedFd;
    /// use std::time::Duration;
    /// use sockit::{Framing, Greet, Server, StreamClient};
    ///
    /// let made = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    /// let addr = made.local_addr().expect("bound");
    /// let listener = Server::new(Greet).adopt(OwnedFd::from(made))?;
    /// let endpoint = listener.local_endpoint().clone();
    /// assert_eq!(endpoint.to_string(), format!("tcp://{addr}"));
    /// tokio::spawn(listener.serve(std::future::pending()));
    ///
    /// let mut client = StreamClient::connect(&endpoint, Framing::Auto, Duration::from_secs(5)).await?;
    /// assert_eq!(client.receive().await?.unwrap(), "Hello, I am server");
    /// # Ok(())
    /// # }
    /// ```
    pub fn adopt(&self, socket: OwnedFd) -> Result<Listener<S>, Error> {
        let fd = socket.as_raw_fd();
        let bound = Bound::adopt(socket, &self.options)?;
        if let Some(source) = self.proxy_unsupported(&bound.local) {
            return Err(Error::Adopt { fd, source });
        }
        // Served as it is: a TCP socket handed over is plain TCP.
        Ok(self.listener(bound, None))
    }

    /// Why `endpoint` cannot take the PROXY protocol, when it is set.
    fn proxy_unsupported(&self, endpoint: &Endpoint) -> Option<io::Error> {
        let stream = matches!(endpoint, Endpoint::Tcp(_) | Endpoint::Tls(_) | Endpoint::Unix(_));
        (self.proxy.is_some() && !stream).then(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "the PROXY protocol is for tcp://, tls:// and unix: stream listeners only; serve this endpoint without it",
            )
        })
    }

    /// A listener for `bound`, with this server's settings; `tls` for a
    /// `tls://` one.
    fn listener(&self, bound: Bound, tls: Option<LiveConfig>) -> Listener<S> {
        let Bound {
            socket,
            local,
            socket_file,
        } = bound;
        let metrics = self
            .metrics
            .as_ref()
            .map(|metrics| Arc::new(metrics.listener(&local)));
        Listener {
            socket,
            local,
            socket_file,
            options: self.options.clone(),
            service: Arc::clone(&self.service),
            settings: Settings {
                framing: self.framing_in_use(),
                max_message: self.max_message,
                send_queue: self.send_queue,
            },
            shutdown_timeout: self.shutdown_timeout,
            timeouts: self.timeouts,
            permits: Arc::clone(&self.permits),
            live: self.live.subscribe(),
            when_full: self.when_full,
            proxy: self.proxy.clone(),
            datagram: datagram::Limits {
                max_message: self.max_message,
                batch: self.datagram_batch,
                rate_limit: self.rate_limit,
                reply_cap: self.reply_cap,
            },
            tls,
            metrics,
        }
    }
}

/// A socket bound to an endpoint, ready to accept or receive.
#[derive(Debug)]
pub(crate) struct Bound {
    pub socket: Socket,
    /// The endpoint actually bound (with the port the system chose for port 0).
    pub local: Endpoint,
    /// The Unix socket file, removed when dropped.
    pub socket_file: Option<SocketFile>,
}

impl Bound {
    /// Binds `endpoint` with `options`: listens on a stream endpoint with
    /// `backlog`, gives a new Unix socket file `unix_mode`.
    pub(crate) async fn bind(
        endpoint: &Endpoint,
        backlog: u32,
        unix_mode: Option<u32>,
        options: &SocketOptions,
    ) -> Result<Bound, Error> {
        let bind_error = |source| Error::Bind {
            endpoint: endpoint.clone(),
            source,
        };
        let mut socket_file = None;
        let (socket, local) = match endpoint {
            Endpoint::Tcp(_) | Endpoint::Tls(_) => {
                let addrs = net::resolve(endpoint).await?;
                let listener =
                    net::first_success(&addrs, |addr| async move { tcp::listen(addr, backlog, options) })
                        .await
                        .map_err(bind_error)?;
                let addr = listener.local_addr().map_err(bind_error)?;
                let local = match endpoint {
                    Endpoint::Tls(_) => Endpoint::Tls(addr.into()),
                    _ => Endpoint::tcp(addr),
                };
                (Socket::Stream(StreamListener::Tcp(listener)), local)
            }
            Endpoint::Udp(_) => {
                let addrs = net::resolve(endpoint).await?;
                let socket = net::first_success(&addrs, |addr| async move { udp::bind(addr, options) })
                    .await
                    .map_err(bind_error)?;
                let local = Endpoint::udp(socket.local_addr().map_err(bind_error)?);
                (Socket::Datagram(DatagramSocket::Udp(socket)), local)
            }
            Endpoint::Unix(addr) => {
                let (listener, file) = unix::listen(addr, backlog, unix_mode, options).map_err(bind_error)?;
                socket_file = file;
                (Socket::Stream(StreamListener::Unix(listener)), endpoint.clone())
            }
            Endpoint::UnixDatagram(addr) => {
                let (socket, file) = unix_datagram::bind(addr, unix_mode, options).map_err(bind_error)?;
                socket_file = file;
                (Socket::Datagram(DatagramSocket::Unix(socket)), endpoint.clone())
            }
            Endpoint::Seqpacket(addr) => {
                let (listener, file) =
                    seqpacket::listen(addr, backlog, unix_mode, options).map_err(bind_error)?;
                socket_file = file;
                (
                    Socket::Stream(StreamListener::Seqpacket(listener)),
                    endpoint.clone(),
                )
            }
        };
        Ok(Bound {
            socket,
            local,
            socket_file,
        })
    }
}

impl Bound {
    /// Takes `socket`, opened elsewhere, as it is; see [`Server::adopt`].
    pub(crate) fn adopt(socket: OwnedFd, options: &SocketOptions) -> Result<Bound, Error> {
        let fd = socket.as_raw_fd();
        let (inherited, local) =
            inherited::adopt(socket, options).map_err(|source| Error::Adopt { fd, source })?;
        let socket = match inherited {
            Inherited::Tcp(listener) => Socket::Stream(StreamListener::Tcp(listener)),
            Inherited::Unix(listener) => Socket::Stream(StreamListener::Unix(listener)),
            Inherited::Seqpacket(listener) => Socket::Stream(StreamListener::Seqpacket(listener)),
            Inherited::Udp(socket) => Socket::Datagram(DatagramSocket::Udp(socket)),
            Inherited::UnixDatagram(socket) => Socket::Datagram(DatagramSocket::Unix(socket)),
        };
        Ok(Bound {
            socket,
            local,
            socket_file: None,
        })
    }
}

/// A bound socket of any kind.
#[derive(Debug)]
pub(crate) enum Socket {
    Stream(StreamListener),
    Datagram(DatagramSocket),
}

/// A listening socket of a connection-oriented kind.
#[derive(Debug)]
pub(crate) enum StreamListener {
    Tcp(TcpListener),
    Unix(UnixListener),
    Seqpacket(UnixSeqpacketListener),
}

/// An accepted connection of any kind.
pub(crate) enum Connection {
    Tcp(TcpStream),
    Unix(UnixStream),
    Seqpacket(UnixSeqpacket),
}

impl StreamListener {
    /// Accepts one connection and closes it at once.
    async fn accept_and_close(&mut self) -> io::Result<()> {
        match self {
            StreamListener::Tcp(listener) => listener.accept().await.map(drop),
            StreamListener::Unix(listener) => listener.accept().await.map(drop),
            StreamListener::Seqpacket(listener) => listener.accept().await.map(drop),
        }
    }

    /// Accepts one connection, applies the connection's socket options, and
    /// says who the peer is.
    pub(crate) async fn accept(&mut self, options: &SocketOptions) -> io::Result<(Connection, Peer)> {
        let (connection, peer) = match self {
            StreamListener::Tcp(listener) => {
                let (stream, addr) = listener.accept().await?;
                (Connection::Tcp(stream), Peer::from(addr))
            }
            StreamListener::Unix(listener) => {
                let (stream, _) = listener.accept().await?;
                let cred = unix::peer_credentials(&stream);
                (Connection::Unix(stream), Peer::Unix { addr: None, cred })
            }
            StreamListener::Seqpacket(listener) => {
                let socket = listener.accept().await?;
                let cred = seqpacket::peer_credentials(&socket);
                (Connection::Seqpacket(socket), Peer::Unix { addr: None, cred })
            }
        };
        let socket = SockRef::from(&connection);
        let applied = match connection {
            Connection::Tcp(_) => options.apply_tcp(&socket),
            _ => options.apply_buffers(&socket),
        };
        match applied {
            Ok(()) if options != &SocketOptions::default() => {
                debug!(%peer, options = options.read_back(&SockRef::from(&connection)), "connection options");
            }
            Ok(()) => {}
            Err(error) => debug!(%peer, %error, "could not set the connection's socket options"),
        }
        Ok((connection, peer))
    }
}

impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Connection::Tcp(stream) => stream.as_fd(),
            Connection::Unix(stream) => stream.as_fd(),
            Connection::Seqpacket(socket) => socket.as_fd(),
        }
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Socket::Stream(StreamListener::Tcp(listener)) => listener.as_fd(),
            Socket::Stream(StreamListener::Unix(listener)) => listener.as_fd(),
            Socket::Stream(StreamListener::Seqpacket(listener)) => listener.as_fd(),
            Socket::Datagram(DatagramSocket::Udp(socket)) => socket.as_fd(),
            Socket::Datagram(DatagramSocket::Unix(socket)) => socket.as_fd(),
        }
    }
}

impl Connection {
    /// Serves the connection until it ends. Not an `async fn`, which would
    /// keep a copy of its arguments beside the future it awaits: the future
    /// returned is just the conversation of the connection's kind.
    pub(crate) fn serve<A: Answer>(
        self,
        accepted: Accepted,
        answer: Arc<A>,
        settings: Settings,
        stop: Stop,
        permit: OwnedSemaphorePermit,
    ) -> impl Future<Output = ()> + Send + 'static {
        match self {
            Connection::Tcp(stream) => Either::Left(answer.stream(stream, accepted, settings, stop, permit)),
            Connection::Unix(stream) => Either::Right(Either::Left(
                answer.stream(stream, accepted, settings, stop, permit),
            )),
            // Boxed, so that TCP and Unix connections, the many, do not
            // carry the packet loop's larger state.
            Connection::Seqpacket(socket) => Either::Right(Either::Right(Box::pin(
                answer.packets(socket, accepted, settings, stop, permit),
            ))),
        }
    }
}

/// One bound endpoint of a [`Server`], ready to serve.
///
/// # Examples
///
/// Echo on a port the system chooses, answering a plain standard-library
/// client byte for byte, then shut down:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sockit::Error> {
/// use std::io::{Read, Write};
/// use std::net::{Shutdown, TcpStream};
/// use tokio::sync::oneshot;
/// use sockit::{Echo, Endpoint, Framing, Server};
///
/// let listener = Server::new(Echo).bind(&"tcp://127.0.0.1:0".parse()?).await?;
/// assert_eq!(listener.framing(), Framing::Raw);
/// let Endpoint::Tcp(address) = listener.local_endpoint() else { unreachable!() };
/// let address = address.socket_addr().expect("an IP address");
/// let (stop, stopped) = oneshot::channel::<()>();
/// let serving = tokio::spawn(listener.serve(async { stopped.await.unwrap_or(()) }));
///
/// // A blocking client, on a thread of its own.
/// let got = tokio::task::spawn_blocking(move || {
///     let mut stream = TcpStream::connect(address)?;
///     stream.write_all(b"\x00bytes\r\n")?;
///     stream.shutdown(Shutdown::Write)?;
///     let mut got = Vec::new();
///     stream.read_to_end(&mut got)?;
///     Ok::<_, std::io::Error>(got)
/// })
/// .await
/// .unwrap()
/// .expect("echoed");
/// assert_eq!(got, b"\x00bytes\r\n");
///
/// stop.send(()).unwrap();
/// serving.await.unwrap()
/// # }
/// ```
#[derive(Debug)]
pub struct Listener<S> {
    socket: Socket,
    local: Endpoint,
    /// The Unix socket file, removed when the listener is dropped.
    socket_file: Option<SocketFile>,
    options: SocketOptions,
    service: Arc<S>,
    settings: Settings,
    shutdown_timeout: Duration,
    timeouts: Timeouts,
    permits: Arc<Semaphore>,
    /// Limits changed while serving ([`LimitsHandle`]).
    live: tokio::sync::watch::Receiver<Option<Limits>>,
    when_full: WhenFull,
    proxy: Option<Arc<ProxyProtocol>>,
    datagram: datagram::Limits,
    /// The certificate and key of a `tls://` listener, as they change.
    tls: Option<LiveConfig>,
    metrics: Option<Arc<ListenerMetrics>>,
}

/// A TLS setting that a [`TlsHandle`] may change.
type LiveConfig = tokio::sync::watch::Receiver<Option<Arc<rustls::ServerConfig>>>;

/// Changes the certificate and key a server's `tls://` listeners serve
/// with, while they serve: connections accepted after the change are served
/// with the new one; those open keep theirs. Made by
/// [`Server::tls_handle`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct TlsHandle {
    live: tokio::sync::watch::Sender<Option<Arc<rustls::ServerConfig>>>,
}

impl TlsHandle {
    /// Serves the next TLS connections with `config` (see
    /// [`net::tls::server_config`]).
    pub fn set(&self, config: Arc<rustls::ServerConfig>) {
        self.live.send_replace(Some(config));
    }
}

/// A `tls://` listener's handshake, following its [`TlsHandle`].
struct LiveTls {
    live: LiveConfig,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl LiveTls {
    fn new(mut live: LiveConfig) -> Self {
        let config = live
            .borrow_and_update()
            .clone()
            .expect("a tls:// listener is bound with a TLS setting");
        LiveTls {
            live,
            acceptor: tokio_rustls::TlsAcceptor::from(config),
        }
    }

    /// The handshake for the next connection: with the newest setting.
    fn acceptor(&mut self) -> tokio_rustls::TlsAcceptor {
        if self.live.has_changed().unwrap_or(false)
            && let Some(config) = self.live.borrow_and_update().clone()
        {
            self.acceptor = tokio_rustls::TlsAcceptor::from(config);
        }
        self.acceptor.clone()
    }
}

/// The bound socket, for `getsockopt` and other system calls tokio does not wrap.
impl<S> AsFd for Listener<S> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl<S: Answer> Listener<S> {
    /// The endpoint actually bound: with port 0 asked for, the port the
    /// system chose.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use sockit::{Echo, Endpoint, Server};
    ///
    /// let listener = Server::new(Echo).bind(&"udp://127.0.0.1:0".parse()?).await?;
    /// let Endpoint::Udp(address) = listener.local_endpoint() else { unreachable!() };
    /// assert_ne!(address.port(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.local
    }

    /// The framing stream connections are served with.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use sockit::{Framing, Greet, Server};
    ///
    /// let server = Server::new(Greet).framing(Framing::Line);
    /// let listener = server.bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// assert_eq!(listener.framing(), Framing::Line);
    /// # Ok(())
    /// # }
    /// ```
    pub fn framing(&self) -> Framing {
        self.settings.framing
    }

    /// Serves until `shutdown` completes, then stops gracefully: stops
    /// accepting, lets every connection write the replies it owes and close,
    /// and after the shutdown timeout closes those still open.
    ///
    /// # Errors
    ///
    /// None yet: accept and receive errors are logged and served through. The
    /// `Result` leaves room for errors that must stop a listener.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future drops every open connection at
    /// once. Complete `shutdown` instead.
    ///
    /// # Examples
    ///
    /// A connection still open at shutdown is closed with an end of stream:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::time::Duration;
    /// use tokio::sync::oneshot;
    /// use sockit::{Framing, Greet, Server, StreamClient};
    ///
    /// let listener = Server::new(Greet).bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// let endpoint = listener.local_endpoint().clone();
    /// let (stop, stopped) = oneshot::channel::<()>();
    /// let serving = tokio::spawn(listener.serve(async { stopped.await.unwrap_or(()) }));
    ///
    /// let mut client = StreamClient::connect(&endpoint, Framing::Line, Duration::from_secs(5)).await?;
    /// assert_eq!(client.receive_greeting().await?.unwrap(), "Hello, I am server");
    /// client.send(b"bye").await?;
    /// assert_eq!(client.receive().await?.unwrap(), "Hello, bye!");
    /// stop.send(()).unwrap();
    /// assert!(client.receive().await?.is_none());
    /// serving.await.unwrap()
    /// # }
    /// ```
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let Listener {
            socket,
            local,
            socket_file,
            options,
            service,
            settings,
            shutdown_timeout,
            timeouts,
            permits,
            live,
            when_full,
            proxy,
            datagram,
            tls,
            metrics,
        } = self;
        match socket {
            Socket::Stream(listener) => {
                let tracker = TaskTracker::new();
                let finish = CancellationToken::new();
                let abort = CancellationToken::new();
                let accepting = Accepting {
                    listener,
                    options: &options,
                    service,
                    settings,
                    permits,
                    live,
                    when_full,
                    proxy,
                    tracker: &tracker,
                    stop: Stop::new(
                        finish.clone(),
                        abort.clone(),
                        timeouts,
                        metrics,
                        Some(local.clone()),
                    ),
                    tls: tls.map(LiveTls::new),
                };
                accepting.run(shutdown).await;
                info!(listener = %local, open = tracker.len(), "stopped accepting; finishing open connections");
                finish.cancel();
                tracker.close();
                if tokio::time::timeout(shutdown_timeout, tracker.wait())
                    .await
                    .is_err()
                {
                    warn!(listener = %local, open = tracker.len(), "shutdown timeout passed; closing the connections still open");
                    abort.cancel();
                    tracker.wait().await;
                }
            }
            Socket::Datagram(socket) => {
                let serving = DatagramServing {
                    local: local.clone(),
                    settings,
                    timeouts,
                    permits,
                    shutdown_timeout,
                    metrics,
                    limits: datagram,
                    live,
                };
                let stop = CancellationToken::new();
                let mut served = std::pin::pin!(service.datagrams(socket, serving, stop.clone()));
                tokio::select! {
                    () = &mut served => {}
                    () = shutdown => {
                        stop.cancel();
                        served.await;
                    }
                }
            }
        }
        drop(socket_file);
        info!(listener = %local, "stopped");
        Ok(())
    }
}

/// The accept loop of a stream listener.
struct Accepting<'a, S> {
    listener: StreamListener,
    options: &'a SocketOptions,
    service: Arc<S>,
    settings: Settings,
    permits: Arc<Semaphore>,
    live: tokio::sync::watch::Receiver<Option<Limits>>,
    when_full: WhenFull,
    /// Headers to take from trusted load balancers, if on.
    proxy: Option<Arc<ProxyProtocol>>,
    tracker: &'a TaskTracker,
    /// Asks connections to finish, then drops those that did not in time;
    /// and their timeouts.
    stop: Stop,
    /// A `tls://` listener's handshake.
    tls: Option<LiveTls>,
}

impl<S: Answer> Accepting<'_, S> {
    /// Accepts until `shutdown`. Waiting when full, it takes a connection
    /// permit before each accept; refusing, it takes one after, and closes
    /// the connection when none is free.
    async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut errors = AcceptErrors::new();
        let mut full = Refusals::new(ErrorKind::RefusedFull);
        let mut untrusted = Refusals::new(ErrorKind::UntrustedProxy);
        loop {
            let waited = match self.when_full {
                WhenFull::Wait => Some(tokio::select! {
                    biased;
                    () = &mut shutdown => return,
                    permit = Arc::clone(&self.permits).acquire_owned() => permit.expect("the permits are never closed"),
                }),
                WhenFull::Refuse => None,
            };
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => return,
                accepted = self.listener.accept(self.options) => accepted,
            };
            let (connection, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    if let Some(metrics) = &self.stop.metrics {
                        metrics.error(ErrorKind::Accept);
                    }
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = errors.failed(&error, &mut self.listener) => {}
                    }
                    continue;
                }
            };
            errors.accepted();
            let permit = match waited {
                Some(permit) => permit,
                None => match Arc::clone(&self.permits).try_acquire_owned() {
                    Ok(permit) => permit,
                    Err(_) => {
                        if let Some(refused) = full.refuse(&self.stop) {
                            warn!(%peer, refused, "at the connection limit: new connections are closed at once");
                        }
                        drop(connection);
                        continue;
                    }
                },
            };
            if let Some(proxy) = &self.proxy
                && !proxy.trusts(&peer)
            {
                if let Some(untrusted) = untrusted.refuse(&self.stop) {
                    warn!(%peer, untrusted, "not a trusted proxy, and the PROXY protocol is on: connection closed at once");
                }
                drop(connection);
                continue;
            }
            if self.live.has_changed().unwrap_or(false)
                && let Some(limits) = *self.live.borrow_and_update()
            {
                self.settings.max_message = limits.max_message;
                let timeouts = Timeouts {
                    idle: limits.idle_timeout,
                    read: limits.read_timeout,
                };
                self.stop = Stop::new(
                    self.stop.finish.clone(),
                    self.stop.abort.clone(),
                    timeouts,
                    self.stop.metrics.clone(),
                    self.stop.local.clone(),
                );
            }
            if let Some(metrics) = &self.stop.metrics {
                metrics.opened();
            }
            if let Some(proxy) = &self.proxy {
                // Its header is read in the connection's own task, never here.
                self.tracker.spawn(proxied::serve(
                    connection,
                    peer,
                    proxy.timeout(),
                    self.tls.as_mut().map(LiveTls::acceptor),
                    Arc::clone(&self.service),
                    self.settings,
                    self.stop.clone(),
                    permit,
                ));
                continue;
            }
            info!("Accept new connection from {peer}");
            if let Some(tls) = &mut self.tls {
                let Connection::Tcp(stream) = connection else {
                    unreachable!("a tls:// listener listens on TCP")
                };
                // A task of another type: plain connections' stay as small as they were.
                self.tracker.spawn(connection::tls::serve(
                    stream,
                    tls.acceptor(),
                    Accepted::new(peer, None),
                    Arc::clone(&self.service),
                    self.settings,
                    self.stop.clone(),
                    permit,
                ));
                continue;
            }
            // What every open connection costs, so it is kept small (tested).
            self.tracker.spawn(connection.serve(
                Accepted::new(peer, None),
                Arc::clone(&self.service),
                self.settings,
                self.stop.clone(),
                permit,
            ));
        }
    }
}

/// Peers an accept loop closes at once for one reason: counted (in the
/// metrics too) and logged once a second at most.
struct Refusals {
    kind: ErrorKind,
    count: u64,
    log: LogGate,
}

impl Refusals {
    fn new(kind: ErrorKind) -> Self {
        Refusals {
            kind,
            count: 0,
            log: LogGate::new(RateLimit::per_second(1)),
        }
    }

    /// Counts one more; the count so far when it is time to log it.
    fn refuse(&mut self, stop: &Stop) -> Option<u64> {
        self.count += 1;
        if let Some(metrics) = &stop.metrics {
            metrics.error(self.kind);
        }
        self.log
            .admit(tokio::time::Instant::now().into_std())
            .then_some(self.count)
    }
}

/// How an accept loop rides out failed accepts, never spinning and never
/// giving up: an error of one peer's (reset, aborted) is passed over at
/// once; any other is waited out, the wait doubling from 10 ms to 1 s until
/// an accept succeeds, and logged once a second at most.
///
/// Out of descriptors (`EMFILE`, `ENFILE`), the listener stays readable with
/// the peers queued on it, and they would wait unanswered; so a descriptor is
/// held in reserve (`/dev/null`), and given up for one accept: the peer at
/// the head of the queue is closed at once, and the reserve taken back.
pub(crate) struct AcceptErrors {
    backoff: Duration,
    /// Held open to be given up when the process has no descriptor left.
    spare: Option<File>,
    log: LogGate,
    /// Failures since the last log line.
    failed: u64,
    /// Connections closed for want of a descriptor, in all.
    shed: u64,
}

impl AcceptErrors {
    /// Takes the reserve descriptor.
    pub(crate) fn new() -> Self {
        AcceptErrors {
            backoff: ACCEPT_BACKOFF.0,
            spare: File::open("/dev/null").ok(),
            log: LogGate::new(RateLimit::per_second(1)),
            failed: 0,
            shed: 0,
        }
    }

    /// An accept succeeded: the next error starts the back-off afresh.
    pub(crate) fn accepted(&mut self) {
        self.backoff = ACCEPT_BACKOFF.0;
    }

    /// Handles a failed accept on `listener`, and returns when the next may
    /// be tried.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, for stopping the loop: at worst the reserve descriptor
    /// is not taken back until the next error.
    pub(crate) async fn failed(&mut self, error: &io::Error, listener: &mut StreamListener) {
        if is_one_peers_error(error) {
            debug!(%error, "a connection failed before it was accepted");
            return;
        }
        let out_of_descriptors = matches!(
            error.raw_os_error().map(Errno::from_raw),
            Some(Errno::EMFILE | Errno::ENFILE)
        );
        if out_of_descriptors && self.shed_one(listener).await {
            self.shed += 1;
        }
        self.failed += 1;
        if self.log.admit(tokio::time::Instant::now().into_std()) {
            let failed = std::mem::take(&mut self.failed);
            if out_of_descriptors {
                let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
                warn!(
                    %error,
                    failed,
                    connections_closed = self.shed,
                    descriptor_limit = limit.unwrap_or(u64::MAX),
                    retry_in = ?self.backoff,
                    "out of file descriptors: closing queued connections at once until some are free; \
                     set the connection limit below the descriptor limit"
                );
            } else {
                warn!(%error, failed, retry_in = ?self.backoff, "accept failed; waiting before the next");
            }
        }
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(ACCEPT_BACKOFF.1);
    }

    /// Gives up the reserve descriptor to accept the connection at the head
    /// of the queue and close it, then takes the reserve back. Whether one
    /// was closed.
    async fn shed_one(&mut self, listener: &mut StreamListener) -> bool {
        let Some(spare) = self.spare.take() else {
            // Lost the last time (another thread took the descriptor): try again.
            self.spare = File::open("/dev/null").ok();
            return false;
        };
        drop(spare);
        // Only what is queued already: never wait here.
        let closed = tokio::time::timeout(Duration::ZERO, listener.accept_and_close()).await;
        self.spare = File::open("/dev/null").ok();
        matches!(closed, Ok(Ok(())))
    }
}

/// Accept errors that concern one peer only and say nothing of the listener.
fn is_one_peers_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted, WouldBlock};
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Greet;

    #[test]
    fn limits_sets_each_limit_as_its_own_setter_does() {
        let limits = Limits {
            max_connections: 7,
            max_message: 99,
            idle_timeout: Some(Duration::from_secs(5)),
            read_timeout: Some(Duration::ZERO),
            rate_limit: Some(RateLimit::per_second(3)),
            reply_cap: ReplyCap::none(),
        };
        let server = Server::new(Greet).limits(limits);
        assert_eq!(server.permits.available_permits(), 7);
        assert_eq!(server.rate_limit, Some(RateLimit::per_second(3)));
        // A zero timeout is off, as with `read_timeout(Duration::ZERO)`.
        assert_eq!(
            server.limits_handle().get(),
            Limits {
                read_timeout: None,
                ..limits
            }
        );
    }

    #[test]
    fn timeouts_are_off_by_default_and_at_zero() {
        let five = Duration::from_secs(5);
        assert_eq!(Server::new(Greet).timeouts, Timeouts::default());
        let set = Server::new(Greet).idle_timeout(five).read_timeout(2 * five);
        assert_eq!(
            set.timeouts,
            Timeouts {
                idle: Some(five),
                read: Some(2 * five),
            }
        );
        let zero = set.idle_timeout(Duration::ZERO).read_timeout(Duration::ZERO);
        assert_eq!(zero.timeouts, Timeouts::default());
    }

    #[test]
    fn a_connection_task_is_small() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let (stream, _peer_end) = std::os::unix::net::UnixStream::pair().unwrap();
        stream.set_nonblocking(true).unwrap();
        let connection = Connection::Unix(UnixStream::from_std(stream).unwrap());
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let settings = Settings::new(Framing::Auto, 1024);
        let peer = Peer::Unix {
            addr: None,
            cred: None,
        };
        let task = connection.serve(
            Accepted::new(peer, None),
            Arc::new(Greet),
            settings,
            Stop::default(),
            permit,
        );
        let task = TaskTracker::new().track_future(task);
        // What is spawned for every open connection. tokio allocates it in a
        // task cell of 104 bytes more (header, scheduler, id, stage tag,
        // trailer; tokio 1.54), rounded up to its 128-byte alignment: up to
        // 280 bytes this is a 384-byte cell, which with the socket's
        // registration (256 bytes, also 128-aligned) and glibc's cost for
        // aligned blocks makes 1 KiB per idle connection (measured with
        // bench/idle_connections.py). One byte more is a 512-byte cell, and
        // 128 bytes more per connection. (280 bytes in a debug build and 272
        // in a release build when written; 792 before. Unchanged by the
        // timeouts: their timer is boxed behind 8 bytes, paid for by sharing
        // the listener's `Stop` behind one pointer instead of two tokens.)
        let size = std::mem::size_of_val(&task);
        assert!(size <= 280, "a connection task is {size} bytes");
    }
}
