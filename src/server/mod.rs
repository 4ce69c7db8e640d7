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

mod accept;
mod listener;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use tokio::sync::Semaphore;

pub use crate::answer::Answer;
use crate::connection::Settings;
use crate::deadline::Timeouts;
use crate::framing::DEFAULT_MAX_MESSAGE;
use crate::handler::{DEFAULT_SEND_QUEUE, Handled, Handler};
use crate::limit::{RateLimit, ReplyCap};
use crate::live::LiveConfig;
pub use crate::live::{DEFAULT_MAX_CONNECTIONS, Limits, LimitsHandle, TlsHandle};
use crate::metrics::Metrics;
use crate::net::listen::Bound;
use crate::net::{self, SocketOptions};
use crate::proxy::ProxyProtocol;
use crate::{Endpoint, Error, Framing, datagram};
pub use listener::{Drain, Listener};

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
    /// How long a TLS connection's handshake may take.
    tls_handshake_timeout: Duration,
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
            tls_handshake_timeout: net::tls::HANDSHAKE_TIMEOUT,
        }
    }

    /// The TLS setting (certificate and key) that `tls://` listeners serve
    /// with; other listeners do not use it. Make one from PEM files with
    /// [`net::tls::server_config`].
    ///
    /// Each TLS connection's handshake must end within
    /// [`tls_handshake_timeout`](Self::tls_handshake_timeout) (by default
    /// [`HANDSHAKE_TIMEOUT`](net::tls::HANDSHAKE_TIMEOUT)), holding its
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

    /// How long a `tls://` connection's handshake may take (by default
    /// [`HANDSHAKE_TIMEOUT`](net::tls::HANDSHAKE_TIMEOUT), 10 s), counted
    /// from its accept, or from its PROXY header when it has one. A peer
    /// that has not finished it by then is closed, with one log line: one
    /// that connects and says nothing holds its connection permit no
    /// longer. [`Duration::ZERO`] is taken as 1 ms.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::{Greet, Server};
    ///
    /// let server = Server::new(Greet).tls_handshake_timeout(Duration::from_secs(2));
    /// assert_eq!(server.tls_handshake_timeout_in_use(), Duration::from_secs(2));
    /// assert_eq!(Server::new(Greet).tls_handshake_timeout_in_use(), sockit::net::tls::HANDSHAKE_TIMEOUT);
    /// ```
    #[must_use]
    pub fn tls_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.tls_handshake_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The TLS handshake timeout; see [`tls_handshake_timeout`](Self::tls_handshake_timeout).
    pub fn tls_handshake_timeout_in_use(&self) -> Duration {
        self.tls_handshake_timeout
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
    /// the client, and the client is the [`Peer`](crate::Peer) the service and the logs
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

    /// Serves a socket that an earlier sockit served as `endpoint` and
    /// handed over (an upgrade in place): as [`adopt`](Self::adopt), but a
    /// `tls://` endpoint is served with TLS, and the Unix socket file at
    /// its path becomes this listener's, to remove when it stops.
    ///
    /// # Errors
    ///
    /// As [`adopt`](Self::adopt); and [`Error::Adopt`] for a `tls://`
    /// endpoint without a [`tls`](Self::tls) setting.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::os::fd::OwnedFd;
    /// use sockit::{Greet, Server};
    ///
    /// let made = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    /// let endpoint = "tcp://127.0.0.1:0".parse()?;
    /// let listener = Server::new(Greet).adopt_as(OwnedFd::from(made), &endpoint)?;
    /// assert!(listener.local_endpoint().to_string().starts_with("tcp://127.0.0.1:"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn adopt_as(&self, socket: OwnedFd, endpoint: &Endpoint) -> Result<Listener<S>, Error> {
        let fd = socket.as_raw_fd();
        let mut bound = Bound::adopt(socket, &self.options)?;
        if let Some(source) = self.proxy_unsupported(&bound.local) {
            return Err(Error::Adopt { fd, source });
        }
        let tls = match (endpoint, &bound.local) {
            (Endpoint::Tls(_), Endpoint::Tcp(addr)) => {
                if self.tls.borrow().is_none() {
                    return Err(Error::Adopt {
                        fd,
                        source: io::Error::new(
                            io::ErrorKind::InvalidInput,
                            "no certificate and key to serve TLS with (Server::tls)",
                        ),
                    });
                }
                bound.local = Endpoint::Tls(addr.clone());
                Some(self.tls.subscribe())
            }
            _ => None,
        };
        if let Endpoint::Unix(addr) | Endpoint::UnixDatagram(addr) | Endpoint::Seqpacket(addr) = &bound.local
            && let Some(path) = addr.path()
        {
            bound.socket_file = crate::net::unix::SocketFile::existing(path).ok();
        }
        Ok(self.listener(bound, tls))
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
            tls_handshake_timeout: self.tls_handshake_timeout,
            metrics,
        }
    }
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
}
