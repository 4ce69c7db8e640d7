//! The relay: forwards what arrives on one endpoint to another, as socat
//! does, and injects seeded faults on the way (the engine of `sockit relay`).
//!
//! - [`faults`]: pure: the fault settings, and for a seed, the fate of each
//!   datagram and the pieces of each stream;
//! - `line`: pure: the delay line that holds datagrams back until they are due;
//! - `stream`: streams to streams (TCP, Unix stream, in any pairing): a
//!   connection to the target for each client, bytes copied both ways, a
//!   half-close passed on;
//! - `datagram`: datagrams to datagrams (UDP, Unix datagram, in any
//!   pairing): a socket to the target for each client address (a session),
//!   replies routed back to that client;
//! - `splice`: streams between plain sockets with no fault on the way,
//!   moved by `splice(2)` without entering the process;
//! - [`side`]: what a relay joins ([`Side`]): an endpoint, this process's
//!   stdin and stdout, or a program; and the streams they give.
//!
//! A stream endpoint is not relayed to a datagram one, nor either to
//! seqpacket: [`Relay::bind`] refuses them. TLS is a stream: terminated on
//! the listening side ([`Relay::server_tls`]), originated to the target
//! ([`Relay::client_tls`]), the bytes relayed are those inside it.
//!
//! # Examples
//!
//! An echo server behind a relay that forwards in pieces of two bytes:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sockit::Error> {
//! use std::num::NonZeroUsize;
//! use std::time::Duration;
//! use sockit::relay::{Faults, Relay};
//! use sockit::{Echo, Framing, Server, StreamClient};
//!
//! let server = Server::new(Echo).bind(&"tcp://127.0.0.1:0".parse()?).await?;
//! let relay = Relay::new(server.local_endpoint().clone())
//!     .faults(Faults::new(1).slice(NonZeroUsize::new(2).unwrap()))
//!     .bind(&"tcp://127.0.0.1:0".parse()?)
//!     .await?;
//! let through = relay.local_endpoint().clone();
//! tokio::spawn(server.serve(std::future::pending()));
//! tokio::spawn(relay.run(std::future::pending()));
//!
//! let mut client = StreamClient::connect(&through, Framing::Line, Duration::from_secs(5)).await?;
//! client.send(b"hello").await?;
//! assert_eq!(client.receive().await?.unwrap(), "hello");
//! # Ok(())
//! # }
//! ```

mod datagram;
pub mod faults;
mod line;
pub mod side;
mod splice;
mod stream;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::info;

pub use faults::{
    DatagramPlan, Direction, Directions, Fate, FaultError, Faults, Probability, REORDER_HOLD, Step,
    StreamPlan,
};
pub use side::{Side, SideError};

use crate::live::DEFAULT_MAX_CONNECTIONS;
use crate::net::listen::{Bound, Socket};
use crate::net::tls::ClientTls;
use crate::net::{self, SocketOptions};
use crate::{Endpoint, Error, Transport};

/// How long a target may take to accept a relayed connection, by default.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(sockit::relay::DEFAULT_CONNECT_TIMEOUT, Duration::from_secs(5));
/// ```
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a datagram session lives without traffic, by default.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(sockit::relay::DEFAULT_IDLE_TIMEOUT, Duration::from_secs(60));
/// ```
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A relay to a target endpoint, with the faults it injects, ready to be
/// bound to the endpoint it listens on.
///
/// Streams (TCP, Unix stream) relay to streams: each client accepted gets a
/// connection of its own to the target, bytes are copied both ways, and an
/// end of stream from one side is passed on as a half-close (`shutdown`) to
/// the other; the pair closes when both directions have ended. Datagrams
/// (UDP, Unix datagram) relay to datagrams: each client address gets a
/// socket of its own to the target (a session, closed after the idle
/// timeout), so the target's replies go back to the client that asked.
///
/// # Examples
///
/// Relay a UDP port to a Unix datagram socket, dropping a tenth of the
/// datagrams either way, until Ctrl-C:
///
/// ```no_run
/// # async fn run() -> Result<(), sockit::Error> {
/// use sockit::relay::{Faults, Probability, Relay};
///
/// let faults = Faults::new(1).drop(Probability::new(0.1).unwrap());
/// let relay = Relay::new("unix-dgram:/run/app.sock".parse()?)
///     .faults(faults)
///     .bind(&"udp://127.0.0.1:9001".parse()?)
///     .await?;
/// let stats = relay.run(async { tokio::signal::ctrl_c().await.unwrap() }).await?;
/// println!("{} datagrams dropped", stats.to_target.dropped + stats.to_client.dropped);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Relay {
    target: Side,
    client_tls: Option<ClientTls>,
    server_tls: Option<Arc<rustls::ServerConfig>>,
    faults: Faults,
    options: SocketOptions,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
}

impl Relay {
    /// A relay to the endpoint `target`, injecting no faults ([`Relay::to`]
    /// relays to any [`Side`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::net::SocketOptions;
    /// use sockit::relay::{Faults, Relay};
    ///
    /// let relay = Relay::new("tcp://127.0.0.1:8000".parse()?)
    ///     .faults(Faults::new(42).reset_after(1024))
    ///     .options(SocketOptions::default().nodelay(true))
    ///     .connect_timeout(Duration::from_secs(1))
    ///     .idle_timeout(Duration::from_secs(10))
    ///     .max_connections(100);
    /// assert_eq!(relay.target().to_string(), "tcp://127.0.0.1:8000");
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn new(target: Endpoint) -> Self {
        Relay::to(Side::Endpoint(target))
    }

    /// A relay to `target`: an endpoint, this process's stdin and stdout,
    /// or a program per client; injecting no faults.
    ///
    /// # Examples
    ///
    /// An echo server made of `cat`, a program per client:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use sockit::relay::{Relay, Side};
    /// use sockit::{Framing, StreamClient};
    ///
    /// let relay = Relay::to("exec:cat".parse::<Side>()?).bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// let through = relay.local_endpoint().clone();
    /// tokio::spawn(relay.run(std::future::pending()));
    ///
    /// let mut client = StreamClient::connect(&through, Framing::Line, Duration::from_secs(5)).await?;
    /// client.send(b"hello").await?;
    /// assert_eq!(client.receive().await?.unwrap(), "hello");
    /// # Ok(())
    /// # }
    /// ```
    pub fn to(target: Side) -> Self {
        Relay {
            target,
            client_tls: None,
            server_tls: None,
            faults: Faults::new(0),
            options: SocketOptions::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }

    /// The faults to inject, and their seed.
    ///
    /// # Examples
    ///
    /// Replies dropped on the way back, requests untouched:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::time::Duration;
    /// use sockit::relay::{Directions, Faults, Probability, Relay};
    /// use sockit::{DatagramClient, Echo, Error, Server};
    ///
    /// let server = Server::new(Echo).bind(&"udp://127.0.0.1:0".parse()?).await?;
    /// let faults = Faults::new(1).drop(Probability::ALWAYS).directions(Directions::ToClient);
    /// let relay = Relay::new(server.local_endpoint().clone())
    ///     .faults(faults)
    ///     .bind(&"udp://127.0.0.1:0".parse()?)
    ///     .await?;
    /// let (through, counters) = (relay.local_endpoint().clone(), relay.counters());
    /// tokio::spawn(server.serve(std::future::pending()));
    /// tokio::spawn(relay.run(std::future::pending()));
    ///
    /// let client = DatagramClient::connect(&through, Duration::from_millis(200), 0).await?;
    /// assert!(matches!(client.request(b"ping").await, Err(Error::Timeout { .. })));
    /// let stats = counters.snapshot();
    /// assert_eq!((stats.to_target.forwarded, stats.to_client.dropped), (1, 1));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// The socket options of the listening socket, of the connections and
    /// sockets to the target, each where it applies.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::net::SocketOptions;
    /// use sockit::relay::Relay;
    ///
    /// let options = SocketOptions::default().nodelay(true);
    /// let relay = Relay::new("tcp://127.0.0.1:8000".parse()?).options(options);
    /// # drop(relay);
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    #[must_use]
    pub fn options(mut self, options: SocketOptions) -> Self {
        self.options = options;
        self
    }

    /// How long a target may take to accept a relayed stream connection
    /// (default 5 s); a client whose target connection fails is reset.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::relay::Relay;
    ///
    /// let relay = Relay::new("tcp://127.0.0.1:8000".parse()?).connect_timeout(Duration::from_secs(1));
    /// # drop(relay);
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a datagram session lives without traffic either way
    /// (default 60 s); the next datagram from its client opens a new one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::relay::Relay;
    ///
    /// let relay = Relay::new("udp://127.0.0.1:9000".parse()?).idle_timeout(Duration::from_secs(10));
    /// # drop(relay);
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The most stream connections (or datagram sessions) relayed at once
    /// (default 10,000). Past it, stream clients wait in the listen backlog
    /// and datagrams from new clients are not forwarded.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::relay::Relay;
    ///
    /// let relay = Relay::new("tcp://127.0.0.1:8000".parse()?).max_connections(100);
    /// # drop(relay);
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// The target.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::relay::Relay;
    ///
    /// let relay = Relay::new("unix:/run/app.sock".parse()?);
    /// assert_eq!(relay.target().to_string(), "unix:/run/app.sock");
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn target(&self) -> &Side {
        &self.target
    }

    /// How to reach a `tls://` target: whom to trust, the name to ask for.
    /// A `tls://` target needs it.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::net::tls::ClientTls;
    /// use sockit::relay::Relay;
    ///
    /// let tls = ClientTls::new(None, true)?; // --insecure: a test server's own certificate
    /// let relay = Relay::new("tls://127.0.0.1:8443".parse()?).client_tls(tls);
    /// assert_eq!(relay.target().to_string(), "tls://127.0.0.1:8443");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn client_tls(mut self, tls: ClientTls) -> Self {
        self.client_tls = Some(tls);
        self
    }

    /// The certificate a `tls://` listening side presents: the relay
    /// terminates TLS and relays the bytes inside. A `tls://` listening side
    /// needs it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::path::Path;
    /// use sockit::net::tls::server_config;
    /// use sockit::relay::Relay;
    ///
    /// let config = server_config(Path::new("cert.pem"), Path::new("key.pem"))?;
    /// let relay = Relay::new("tcp://127.0.0.1:8000".parse()?).server_tls(config);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn server_tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.server_tls = Some(config);
        self
    }

    /// Binds `listen`, ready to relay to the target. The target's host name
    /// is resolved now; the target itself is reached only when a client comes.
    ///
    /// # Errors
    ///
    /// [`Error::Relay`] when the two sides are not both streams or both
    /// datagrams (or one is seqpacket, or a `tls://` side lacks its
    /// settings), [`Error::Resolve`] when a host name does not resolve,
    /// [`Error::Bind`] when `listen` cannot be bound.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is bound until the future completes.
    ///
    /// # Examples
    ///
    /// A stream is not relayed to datagrams:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use sockit::relay::Relay;
    /// use sockit::Error;
    ///
    /// let relay = Relay::new("udp://127.0.0.1:9000".parse()?);
    /// let err = relay.bind(&"tcp://127.0.0.1:0".parse()?).await.unwrap_err();
    /// assert!(matches!(err, Error::Relay { .. }));
    /// assert!(err.to_string().starts_with("cannot relay tcp://127.0.0.1:0 to udp://127.0.0.1:9000: "));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bind(&self, listen: &Endpoint) -> Result<BoundRelay, Error> {
        let shared = self.shared(&Side::Endpoint(listen.clone())).await?;
        let bound = Bound::bind(listen, net::DEFAULT_BACKLOG, None, &self.options).await?;
        Ok(BoundRelay {
            bound,
            shared: Arc::new(shared),
        })
    }

    /// Relays one client that is not listened for, this process's stdin
    /// and stdout or a program ([`Side::Stdio`], [`Side::Program`]), to the
    /// target, until both directions end (or one fails or resets), or
    /// `shutdown` completes. Logs a one-line summary and returns the counts.
    ///
    /// # Errors
    ///
    /// [`Error::Relay`] when `client` is an endpoint (those are listened
    /// on: [`Relay::bind`]), when both sides are stdin and stdout, or when
    /// the target is not a stream; [`Error::Resolve`] when its host name
    /// does not resolve. Failures to reach the target or to forward are
    /// logged and counted, as [`BoundRelay::run`] does.
    ///
    /// # Examples
    ///
    /// A program's output relayed to an echo server, and the echo back to
    /// the program, which waits for it:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use sockit::relay::{Relay, Side};
    /// use sockit::pipe::Program;
    /// use sockit::{Echo, Server};
    ///
    /// let server = Server::new(Echo).bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// let relay = Relay::new(server.local_endpoint().clone());
    /// tokio::spawn(server.serve(std::future::pending()));
    ///
    /// let client = Side::Program(Program::Shell("printf 'ping\\n'; read echoed".into()));
    /// let stats = relay.run_once(client, std::future::pending()).await?;
    /// assert_eq!((stats.to_target.bytes_out, stats.to_client.bytes_out), (5, 5));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run_once(&self, client: Side, shutdown: impl Future<Output = ()>) -> Result<Stats, Error> {
        let stream = match &client {
            Side::Endpoint(_) => {
                return Err(self.refuse(
                    &client,
                    "an endpoint on the listening side is listened on (Relay::bind), not relayed once",
                ));
            }
            Side::Stdio => side::Stream::stdio(),
            Side::Program(program) => side::Stream::program(program),
        };
        let shared = Arc::new(self.shared(&client).await?);
        let stream = stream.map_err(|source| Error::Relay {
            listen: client.clone(),
            target: self.target.clone(),
            reason: format!("cannot start it: {source}"),
        })?;
        count(&shared.counters.connections);
        let stop = CancellationToken::new();
        let relaying = stream::relay_pair(stream, client, 0, Arc::clone(&shared), stop.clone(), None);
        tokio::select! {
            () = relaying => {}
            () = shutdown => stop.cancel(),
        }
        let stats = shared.counters.snapshot();
        info!("relay stopped: {stats}");
        Ok(stats)
    }

    fn refuse(&self, listen: &Side, reason: impl Into<String>) -> Error {
        Error::Relay {
            listen: listen.clone(),
            target: self.target.clone(),
            reason: reason.into(),
        }
    }

    /// Checks that `listen` and the target can be relayed to each other,
    /// with the settings each needs ([`Relay::bind`] and [`Relay::run_once`]
    /// check it too): to say so before anything starts.
    ///
    /// # Errors
    ///
    /// [`Error::Relay`], saying why not.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::relay::{Relay, Side};
    ///
    /// let relay = Relay::new("udp://127.0.0.1:9000".parse::<sockit::Endpoint>()?);
    /// assert!(relay.check(&"udp://127.0.0.1:9001".parse()?).is_ok());
    /// assert!(relay.check(&Side::Stdio).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check(&self, listen: &Side) -> Result<(), Error> {
        let refuse = |reason: &str| self.refuse(listen, reason);
        match (listen.transport(), self.target.transport()) {
            (Transport::Stream, Transport::Stream) | (Transport::Datagram, Transport::Datagram) => {}
            (Transport::Seqpacket, _) | (_, Transport::Seqpacket) => {
                return Err(refuse("seqpacket endpoints are not relayed yet"));
            }
            _ if listen.endpoint().is_none() || self.target.endpoint().is_none() => {
                return Err(refuse(
                    "stdin and stdout, and programs, are streams: relay them to stream endpoints \
                     (tcp, tls, unix); for datagrams, use sockit nc -u",
                ));
            }
            _ => {
                return Err(refuse(
                    "one carries a stream and the other datagrams; relay streams (tcp, tls, unix) to \
                     streams and datagrams (udp, unix-dgram) to datagrams",
                ));
            }
        }
        if (listen, &self.target) == (&Side::Stdio, &Side::Stdio) {
            return Err(refuse("stdin and stdout cannot be relayed to themselves"));
        }
        if matches!(listen, Side::Endpoint(Endpoint::Tls(_))) && self.server_tls.is_none() {
            return Err(refuse(
                "a tls:// listening side needs a certificate and its key (--cert, --key)",
            ));
        }
        if matches!(self.target, Side::Endpoint(Endpoint::Tls(_))) && self.client_tls.is_none() {
            return Err(refuse(
                "a tls:// target needs TLS settings (--ca, or --insecure for a test server)",
            ));
        }
        Ok(())
    }

    /// What the relay's parts share, once `listen` and the target are
    /// checked to go together, and the target's host resolved.
    async fn shared(&self, listen: &Side) -> Result<Shared, Error> {
        self.check(listen)?;
        let target_addrs = match self.target.endpoint() {
            Some(endpoint) if endpoint.host_port().is_some() => net::resolve(endpoint).await?,
            _ => Vec::new(),
        };
        let server_tls = match listen {
            Side::Endpoint(Endpoint::Tls(_)) => self.server_tls.clone(),
            _ => None,
        };
        Ok(Shared {
            target: self.target.clone(),
            target_addrs,
            client_tls: self.client_tls.clone(),
            server_tls,
            faults: self.faults.clone(),
            options: self.options.clone(),
            connect_timeout: self.connect_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            counters: Arc::new(Counters::default()),
        })
    }
}

/// What the parts of a running relay share.
#[derive(Debug)]
struct Shared {
    target: Side,
    /// The target's addresses, for a network target.
    target_addrs: Vec<SocketAddr>,
    /// How to reach a `tls://` target.
    client_tls: Option<ClientTls>,
    /// The listening side's TLS, when it terminates TLS.
    server_tls: Option<Arc<rustls::ServerConfig>>,
    faults: Faults,
    options: SocketOptions,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
    counters: Arc<Counters>,
}

/// A relay bound to the endpoint it listens on, ready to run.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sockit::Error> {
/// use sockit::relay::{Faults, Relay};
///
/// let relay = Relay::new("udp://127.0.0.1:9000".parse()?)
///     .faults(Faults::new(3).reorder("10%".parse().unwrap()))
///     .bind(&"udp://127.0.0.1:0".parse()?)
///     .await?;
/// assert_ne!(relay.local_endpoint().host_port().unwrap().port(), 0);
/// assert_eq!(relay.target().to_string(), "udp://127.0.0.1:9000");
/// assert_eq!(relay.faults().to_string(), "seed 3, reorder 0.1, both directions");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct BoundRelay {
    bound: Bound,
    shared: Arc<Shared>,
}

impl BoundRelay {
    /// The endpoint listened on: with port 0 asked for, the port the system chose.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use sockit::relay::Relay;
    ///
    /// let relay = Relay::new("tcp://127.0.0.1:8000".parse()?).bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// assert_ne!(relay.local_endpoint().host_port().unwrap().port(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.bound.local
    }

    /// The endpoint relayed to.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use sockit::relay::Relay;
    ///
    /// let relay = Relay::new("udp://[::1]:9000".parse()?).bind(&"udp://127.0.0.1:0".parse()?).await?;
    /// assert_eq!(relay.target().to_string(), "udp://[::1]:9000");
    /// # Ok(())
    /// # }
    /// ```
    pub fn target(&self) -> &Side {
        &self.shared.target
    }

    /// The faults injected.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use sockit::relay::{Faults, Relay};
    ///
    /// let relay = Relay::new("udp://127.0.0.1:9000".parse()?)
    ///     .faults(Faults::new(7).drop("5%".parse().unwrap()))
    ///     .bind(&"udp://127.0.0.1:0".parse()?)
    ///     .await?;
    /// assert_eq!(relay.faults().to_string(), "seed 7, drop 0.05, both directions");
    /// # Ok(())
    /// # }
    /// ```
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The relay's counters, to read while it runs.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use sockit::relay::Relay;
    ///
    /// let relay = Relay::new("tcp://127.0.0.1:9".parse()?).bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// let counters = relay.counters();
    /// tokio::spawn(relay.run(std::future::pending()));
    /// assert_eq!(counters.snapshot().connections, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.shared.counters)
    }

    /// Relays until `shutdown` completes, then closes every connection
    /// (stream pairs close at once; datagrams still held back are sent at
    /// once), logs a one-line summary and returns the counts.
    ///
    /// # Errors
    ///
    /// None yet: failures to reach the target or to forward are logged,
    /// counted and relayed through. The `Result` leaves room for errors that
    /// must stop a relay.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future drops every connection at once
    /// and loses the summary. Complete `shutdown` instead.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::time::Duration;
    /// use tokio::sync::oneshot;
    /// use sockit::relay::Relay;
    /// use sockit::{DatagramClient, Echo, Server};
    ///
    /// let server = Server::new(Echo).bind(&"udp://127.0.0.1:0".parse()?).await?;
    /// let relay = Relay::new(server.local_endpoint().clone()).bind(&"udp://127.0.0.1:0".parse()?).await?;
    /// let through = relay.local_endpoint().clone();
    /// tokio::spawn(server.serve(std::future::pending()));
    /// let (stop, stopped) = oneshot::channel::<()>();
    /// let running = tokio::spawn(relay.run(async { stopped.await.unwrap_or(()) }));
    ///
    /// let client = DatagramClient::connect(&through, Duration::from_secs(1), 2).await?;
    /// assert_eq!(client.request(b"ping").await?, "ping");
    /// stop.send(()).unwrap();
    /// let stats = running.await.unwrap()?;
    /// assert_eq!(stats.sessions, 1);
    /// assert_eq!((stats.to_target.bytes_out, stats.to_client.bytes_out), (4, 4));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<Stats, Error> {
        let BoundRelay { bound, shared } = self;
        let Bound {
            socket,
            local,
            socket_file,
        } = bound;
        match socket {
            Socket::Stream(listener) => stream::serve(listener, &shared, shutdown).await,
            Socket::Datagram(socket) => datagram::serve(socket, &local, &shared, shutdown).await,
        }
        drop(socket_file);
        let stats = shared.counters.snapshot();
        info!("relay stopped: {stats}");
        Ok(stats)
    }
}

/// The counts of what a running relay did, updated as it goes.
///
/// # Examples
///
/// Read while the relay runs:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sockit::Error> {
/// use std::time::Duration;
/// use sockit::relay::Relay;
/// use sockit::{Echo, Framing, Server, StreamClient};
///
/// let server = Server::new(Echo).bind(&"tcp://127.0.0.1:0".parse()?).await?;
/// let relay = Relay::new(server.local_endpoint().clone()).bind(&"tcp://127.0.0.1:0".parse()?).await?;
/// let (through, counters) = (relay.local_endpoint().clone(), relay.counters());
/// tokio::spawn(server.serve(std::future::pending()));
/// tokio::spawn(relay.run(std::future::pending()));
///
/// let mut client = StreamClient::connect(&through, Framing::Line, Duration::from_secs(5)).await?;
/// client.send(b"hello").await?;
/// assert_eq!(client.receive().await?.unwrap(), "hello");
/// let stats = counters.snapshot();
/// assert_eq!((stats.connections, stats.to_target.bytes_in, stats.to_target.bytes_out), (1, 6, 6));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct Counters {
    connections: AtomicU64,
    sessions: AtomicU64,
    resets: AtomicU64,
    to_target: DirectionCounters,
    to_client: DirectionCounters,
}

/// The counts of one direction.
#[derive(Debug, Default)]
struct DirectionCounters {
    received: AtomicU64,
    bytes_in: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    delayed: AtomicU64,
    forwarded: AtomicU64,
    bytes_out: AtomicU64,
    failed: AtomicU64,
}

/// Adds one to a counter.
fn count(counter: &AtomicU64) {
    add(counter, 1);
}

/// Adds `n` to a counter.
fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

impl Counters {
    /// The counts now.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::relay::{Counters, Stats};
    ///
    /// assert_eq!(Counters::default().snapshot(), Stats::default());
    /// ```
    pub fn snapshot(&self) -> Stats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let direction = |d: &DirectionCounters| DirectionStats {
            received: load(&d.received),
            bytes_in: load(&d.bytes_in),
            dropped: load(&d.dropped),
            duplicated: load(&d.duplicated),
            reordered: load(&d.reordered),
            delayed: load(&d.delayed),
            forwarded: load(&d.forwarded),
            bytes_out: load(&d.bytes_out),
            failed: load(&d.failed),
        };
        Stats {
            connections: load(&self.connections),
            sessions: load(&self.sessions),
            resets: load(&self.resets),
            to_target: direction(&self.to_target),
            to_client: direction(&self.to_client),
        }
    }

    fn direction(&self, direction: Direction) -> &DirectionCounters {
        match direction {
            Direction::ToTarget => &self.to_target,
            Direction::ToClient => &self.to_client,
        }
    }
}

/// What a relay did: connections, and each direction's messages and bytes.
///
/// Displays on one line as `NAME=COUNT` words, directions prefixed:
/// `connections=1 sessions=0 resets=0 to_target.received=3 …`.
///
/// # Examples
///
/// ```
/// use sockit::relay::Stats;
///
/// let line = Stats::default().to_string();
/// assert!(line.starts_with("connections=0 sessions=0 resets=0 to_target.received=0 to_target.bytes_in=0"));
/// assert!(line.ends_with(" to_client.bytes_out=0 to_client.failed=0"));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Stream connections accepted.
    pub connections: u64,
    /// Datagram sessions opened (one per client address, again after it expired).
    pub sessions: u64,
    /// Stream connections reset on purpose (`reset_after`).
    pub resets: u64,
    /// From clients to the target.
    pub to_target: DirectionStats,
    /// From the target back to clients.
    pub to_client: DirectionStats,
}

/// What a relay did in one direction. A message is a datagram, or for a
/// stream, one read (received) or one write (forwarded).
///
/// # Examples
///
/// ```
/// use sockit::relay::{DirectionStats, Stats};
///
/// fn lost(direction: &DirectionStats) -> u64 {
///     direction.dropped + direction.failed
/// }
/// let stats = Stats::default();
/// assert_eq!(lost(&stats.to_target) + lost(&stats.to_client), 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirectionStats {
    /// Messages received.
    pub received: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Datagrams dropped on purpose.
    pub dropped: u64,
    /// Datagrams sent twice on purpose.
    pub duplicated: u64,
    /// Datagrams held back behind the next on purpose.
    pub reordered: u64,
    /// Messages delayed on purpose (by more than zero).
    pub delayed: u64,
    /// Messages sent on (a duplicate counts twice).
    pub forwarded: u64,
    /// Bytes sent on.
    pub bytes_out: u64,
    /// Messages that could not be forwarded, not on purpose: a send failed
    /// or was refused, or the relay had no room for the datagram.
    pub failed: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connections={} sessions={} resets={}",
            self.connections, self.sessions, self.resets
        )?;
        for (direction, stats) in [
            (Direction::ToTarget, &self.to_target),
            (Direction::ToClient, &self.to_client),
        ] {
            let name = direction.name();
            for (field, value) in [
                ("received", stats.received),
                ("bytes_in", stats.bytes_in),
                ("dropped", stats.dropped),
                ("duplicated", stats.duplicated),
                ("reordered", stats.reordered),
                ("delayed", stats.delayed),
                ("forwarded", stats.forwarded),
                ("bytes_out", stats.bytes_out),
                ("failed", stats.failed),
            ] {
                write!(f, " {name}.{field}={value}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_one_line_of_names_and_counts() {
        let counters = Counters::default();
        count(&counters.connections);
        add(&counters.to_client.bytes_out, 18);
        count(&counters.direction(Direction::ToTarget).dropped);
        let stats = counters.snapshot();
        assert_eq!(stats.to_target.dropped, 1);
        assert_eq!(
            stats.to_string(),
            "connections=1 sessions=0 resets=0 \
             to_target.received=0 to_target.bytes_in=0 to_target.dropped=1 to_target.duplicated=0 \
             to_target.reordered=0 to_target.delayed=0 to_target.forwarded=0 to_target.bytes_out=0 \
             to_target.failed=0 \
             to_client.received=0 to_client.bytes_in=0 to_client.dropped=0 to_client.duplicated=0 \
             to_client.reordered=0 to_client.delayed=0 to_client.forwarded=0 to_client.bytes_out=18 \
             to_client.failed=0"
        );
    }

    #[tokio::test]
    async fn a_stream_is_not_relayed_to_datagrams() {
        let relay = Relay::new("udp://127.0.0.1:9".parse().unwrap());
        let error = relay
            .bind(&"tcp://127.0.0.1:0".parse().unwrap())
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot relay tcp://127.0.0.1:0 to udp://127.0.0.1:9: one carries a stream and the other \
             datagrams; relay streams (tcp, tls, unix) to streams and datagrams (udp, unix-dgram) to datagrams"
        );
        let relay = Relay::new("seqpacket:@x".parse().unwrap());
        let error = relay.bind(&"unix:@y".parse().unwrap()).await.unwrap_err();
        assert!(
            error
                .to_string()
                .ends_with("seqpacket endpoints are not relayed yet"),
            "{error}"
        );
    }
}
