//! Handlers: async code that owns one connection for its whole life, with
//! state of its own, awaiting what it likes, sending whenever it likes.
//!
//! A [`Service`](crate::Service) answers one message at a time,
//! synchronously: the fast path for message→reply protocols (echo, the
//! seed's greeting). A [`Handler`] is for everything else, as Python's
//! `socketserver.BaseRequestHandler.handle`, asyncio's `start_server`
//! callback and mini-redis's `Handler` are:
//!
//! - state that lives as long as a connection (a login, a counter);
//! - `await` inside: a timer, another socket, a database, a channel;
//! - sending without being asked (a ticker) and to other connections
//!   ([`Sender`], [`Group`]: a chat room);
//! - a reply larger than memory, streamed with backpressure
//!   ([`Connection::write`]);
//! - noticing that the server is draining ([`Connection::draining`]).
//!
//! A handler is served on every endpoint a service is, with the same
//! listener features: framing, connection limit, maximum message size, idle
//! and read timeouts, TLS (with SNI and ALPN in [`Connection::tls`]), the
//! PROXY protocol ([`Connection::peer`] is the client the header names),
//! Unix peer credentials, metrics, limits changed while serving, and
//! graceful drain. On a datagram socket each source address is one
//! connection.
//!
//! | module | role |
//! | --- | --- |
//! | `connection` | [`Connection`]: the peer, the next message, sending |
//! | `outgoing` | each connection's bounded outgoing queue; [`Sender`] |
//! | [`Group`] | fan-out to many connections, letting go of slow readers |
//! | `drive` | runs a handler beside its connection's writer, then closes |
//! | `sessions` | a datagram socket's sources, a handler each |
//!
//! # Examples
//!
//! The seed's threaded TCP server, with its one-second pause before each
//! reply: a pause that holds up only its own connection.
//!
//! ```no_run
//! use std::time::Duration;
//! use sockit::handler::Connection;
//! use sockit::Server;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), sockit::Error> {
//!     let server = Server::handler(|mut connection: Connection| async move {
//!         connection.send("Hello, I am server").await?;
//!         while let Some(name) = connection.receive().await {
//!             if &name[..] == b"exit" {
//!                 break;
//!             }
//!             tokio::time::sleep(Duration::from_secs(1)).await;
//!             connection.send(format!("Hello, {}!", String::from_utf8_lossy(&name))).await?;
//!         }
//!         Ok(())
//!     });
//!     let listener = server.bind(&"tcp://127.0.0.1:8000".parse()?).await?;
//!     listener.serve(async { tokio::signal::ctrl_c().await.unwrap() }).await
//! }
//! ```

mod connection;
pub(crate) mod drive;
mod group;
mod outgoing;
pub(crate) mod sessions;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) use connection::Meta;
pub use connection::{Connection, DATAGRAM_SOURCE_IDLE};
pub use group::{Group, Membership};
pub use outgoing::{DEFAULT_SEND_QUEUE, Sender, TrySendError};

use crate::Framing;

/// Code that serves one connection: called once per stream connection (or
/// once per source on a datagram socket) with the [`Connection`], which it
/// owns until it returns.
///
/// Any `Fn(Connection) -> impl Future<Output = io::Result<()>>` closure is
/// a handler; so is a type of one's own, to hold shared state and choose
/// a framing. Serve it with [`Server::handler`](crate::Server::handler).
///
/// An error returned is logged with the peer (`the handler failed`), and
/// the connection closes; every other connection goes on.
///
/// # Examples
///
/// A key-value store shared by every connection:
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::{Arc, Mutex};
/// use sockit::handler::{Connection, Handler};
///
/// #[derive(Default)]
/// struct Store(Mutex<HashMap<Vec<u8>, Vec<u8>>>);
///
/// impl Handler for Store {
///     async fn serve(&self, mut connection: Connection) -> std::io::Result<()> {
///         while let Some(key) = connection.receive().await {
///             let value = self.0.lock().unwrap().get(&key[..]).cloned();
///             connection.send(value.unwrap_or_else(|| b"NIL".to_vec())).await?;
///         }
///         Ok(())
///     }
/// }
///
/// let server = sockit::Server::handler(Store::default());
/// # let _ = server;
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Serves `connection` until the conversation is over.
    ///
    /// # Errors
    ///
    /// Whatever the handler fails with; it is logged, and the connection
    /// is closed.
    fn serve(&self, connection: Connection) -> impl Future<Output = io::Result<()>> + Send;

    /// The framing a listener uses when none is chosen: [`Framing::Line`],
    /// since a handler sends messages of its own, which need a framing
    /// before any message has come.
    fn default_framing(&self) -> Framing {
        Framing::Line
    }
}

impl<F, Fut> Handler for F
where
    F: Fn(Connection) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<()>> + Send,
{
    fn serve(&self, connection: Connection) -> impl Future<Output = io::Result<()>> + Send {
        self(connection)
    }
}

/// A [`Handler`] as a server serves it: what [`Server::handler`](crate::Server::handler) makes.
#[derive(Debug)]
pub struct Handled<H>(pub(crate) H);

/// A connection's number, unique in the process, in the order connections
/// were accepted: a key for per-connection state.
///
/// # Examples
///
/// ```
/// use sockit::handler::ConnectionId;
///
/// let id = ConnectionId::from_raw(7);
/// assert_eq!(id.get(), 7);
/// assert_eq!(id.to_string(), "#7");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// The next number.
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ConnectionId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The number itself.
    pub fn get(self) -> u64 {
        self.0
    }

    /// An id with the number `raw`, for tests and maps keyed by number.
    pub fn from_raw(raw: u64) -> Self {
        ConnectionId(raw)
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a TLS connection's handshake settled.
///
/// # Examples
///
/// A handler that says which name the client asked for:
///
/// ```
/// use sockit::handler::Connection;
///
/// async fn which(mut connection: Connection) -> std::io::Result<()> {
///     let name = connection.tls().and_then(|tls| tls.server_name.clone());
///     connection.send(name.unwrap_or_else(|| "no SNI".into())).await
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// The name the client asked for (SNI), if it sent one.
    pub server_name: Option<String>,
    /// The application protocol agreed on (ALPN), if any.
    pub alpn: Option<Vec<u8>>,
}

impl TlsInfo {
    /// What `connection`'s handshake settled.
    pub(crate) fn of(connection: &rustls::ServerConnection) -> Self {
        TlsInfo {
            server_name: connection.server_name().map(str::to_owned),
            alpn: connection.alpn_protocol().map(<[u8]>::to_vec),
        }
    }
}
