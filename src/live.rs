//! What a running server changes: its [`Limits`], through a
//! [`LimitsHandle`], and the certificate of its `tls://` listeners, through
//! a [`TlsHandle`]. Each is a `watch` channel that the listeners read from
//! at the next connection (or datagram), never a lock on the hot path.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::framing::DEFAULT_MAX_MESSAGE;
use crate::limit::{RateLimit, ReplyCap};

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
/// on SIGHUP). Made by [`Server::limits_handle`](crate::Server::limits_handle); cheap to clone.
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
    pub(crate) live: tokio::sync::watch::Sender<Option<Limits>>,
    pub(crate) permits: Arc<Semaphore>,
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

/// A TLS setting that a [`TlsHandle`] may change.
pub(crate) type LiveConfig = tokio::sync::watch::Receiver<Option<Arc<rustls::ServerConfig>>>;

/// Changes the certificate and key a server's `tls://` listeners serve
/// with, while they serve: connections accepted after the change are served
/// with the new one; those open keep theirs. Made by
/// [`Server::tls_handle`](crate::Server::tls_handle); cheap to clone.
#[derive(Debug, Clone)]
pub struct TlsHandle {
    pub(crate) live: tokio::sync::watch::Sender<Option<Arc<rustls::ServerConfig>>>,
}

impl TlsHandle {
    /// Serves the next TLS connections with `config` (see
    /// [`net::tls::server_config`](crate::net::tls::server_config)).
    pub fn set(&self, config: Arc<rustls::ServerConfig>) {
        self.live.send_replace(Some(config));
    }
}

/// A `tls://` listener's handshake, following its [`TlsHandle`].
pub(crate) struct LiveTls {
    live: LiveConfig,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl LiveTls {
    pub(crate) fn new(mut live: LiveConfig) -> Self {
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
    pub(crate) fn acceptor(&mut self) -> tokio_rustls::TlsAcceptor {
        if self.live.has_changed().unwrap_or(false)
            && let Some(config) = self.live.borrow_and_update().clone()
        {
            self.acceptor = tokio_rustls::TlsAcceptor::from(config);
        }
        self.acceptor.clone()
    }
}
