//! The server: binds endpoints, accepts under a connection limit, runs one
//! task per stream connection and one receive loop per datagram socket, and
//! stops on a shutdown future passed in by the caller.

use std::sync::Arc;
use std::time::Duration;

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use socket2::SockRef;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_seqpacket::{UnixSeqpacket, UnixSeqpacketListener};
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::connection::{self, Settings, Stop};
use crate::datagram::DatagramSocket;
use crate::framing::DEFAULT_MAX_MESSAGE;
use crate::net::unix::SocketFile;
use crate::net::{self, SocketOptions, seqpacket, tcp, udp, unix, unix_datagram};
use crate::service::Service;
use crate::{Endpoint, Error, Framing, Peer, datagram, packet};

/// The default limit on open connections, across all of a server's listeners.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// How many datagrams a datagram listener takes per system call unless told.
pub const DEFAULT_DATAGRAM_BATCH: usize = 64;
/// How long shutdown waits for open connections by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// The shortest and longest pause after an accept error that may repeat
/// (out of descriptors, out of memory).
pub(crate) const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

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
    datagram_batch: usize,
}

impl<S: Service> Server<S> {
    /// A server for `service`, with the default limits.
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
            datagram_batch: DEFAULT_DATAGRAM_BATCH,
        }
    }

    /// How stream listeners cut messages; by default the service's choice
    /// ([`Service::default_framing`]). Datagrams need no framing.
    #[must_use]
    pub fn framing(mut self, framing: Framing) -> Self {
        self.framing = Some(framing);
        self
    }

    /// The most stream connections open at once (default 10,000). Past it,
    /// new peers wait in the listen backlog until a connection closes.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.permits = Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS)));
        self
    }

    /// The longest message accepted (default 64 KiB). On a connection a
    /// longer one gets an error reply and the connection is closed; a longer
    /// datagram is dropped, logged and counted.
    #[must_use]
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes.max(1);
        self
    }

    /// How many datagrams a datagram listener takes in one system call
    /// (`recvmmsg`), answering them all with one more (`sendmmsg`); default
    /// 64. At 1 it reads and answers one datagram per call.
    #[must_use]
    pub fn datagram_batch(mut self, datagrams: usize) -> Self {
        self.datagram_batch = datagrams.max(1);
        self
    }

    /// How long shutdown lets open connections finish before closing them
    /// (default 10 s).
    #[must_use]
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// The listen backlog for stream listeners (default 1024).
    #[must_use]
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// The framing stream listeners use.
    pub fn framing_in_use(&self) -> Framing {
        self.framing.unwrap_or_else(|| self.service.default_framing())
    }

    /// The permissions of the socket files of Unix listeners, such as
    /// `0o660` (by default the process's umask decides).
    #[must_use]
    pub fn unix_mode(mut self, mode: u32) -> Self {
        self.unix_mode = Some(mode);
        self
    }

    /// The socket options of listeners and their connections, each where it
    /// applies (see [`SocketOptions::not_applying_to`]).
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
    /// when it cannot be bound (in use, not local, not permitted).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is bound until the future completes.
    pub async fn bind(&self, endpoint: &Endpoint) -> Result<Listener<S>, Error> {
        let Bound {
            socket,
            local,
            socket_file,
        } = Bound::bind(endpoint, self.backlog, self.unix_mode, &self.options).await?;
        Ok(Listener {
            socket,
            local,
            socket_file,
            options: self.options.clone(),
            service: Arc::clone(&self.service),
            settings: Settings {
                framing: self.framing_in_use(),
                max_message: self.max_message,
            },
            shutdown_timeout: self.shutdown_timeout,
            permits: Arc::clone(&self.permits),
            datagram_batch: self.datagram_batch,
        })
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
            Endpoint::Tcp(_) => {
                let addrs = net::resolve(endpoint).await?;
                let listener =
                    net::first_success(&addrs, |addr| async move { tcp::listen(addr, backlog, options) })
                        .await
                        .map_err(bind_error)?;
                let local = Endpoint::tcp(listener.local_addr().map_err(bind_error)?);
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
    fn serve<S: Service>(
        self,
        peer: Peer,
        service: Arc<S>,
        settings: Settings,
        stop: Stop,
        permit: OwnedSemaphorePermit,
    ) -> impl Future<Output = ()> + Send + 'static {
        match self {
            Connection::Tcp(stream) => {
                Either::Left(connection::serve(stream, peer, service, settings, stop, permit))
            }
            Connection::Unix(stream) => Either::Right(Either::Left(connection::serve(
                stream, peer, service, settings, stop, permit,
            ))),
            // Boxed, so that TCP and Unix connections, the many, do not
            // carry the packet loop's larger state.
            Connection::Seqpacket(socket) => Either::Right(Either::Right(Box::pin(packet::serve(
                socket,
                peer,
                service,
                settings.max_message,
                stop,
                permit,
            )))),
        }
    }
}

/// One bound endpoint of a [`Server`], ready to serve.
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
    permits: Arc<Semaphore>,
    datagram_batch: usize,
}

/// The bound socket, for `getsockopt` and other system calls tokio does not wrap.
impl<S> AsFd for Listener<S> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl<S: Service> Listener<S> {
    /// The endpoint actually bound: with port 0 asked for, the port the
    /// system chose.
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.local
    }

    /// The framing stream connections are served with.
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
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let Listener {
            socket,
            local,
            socket_file,
            options,
            service,
            settings,
            shutdown_timeout,
            permits,
            datagram_batch,
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
                    tracker: &tracker,
                    finish: &finish,
                    abort: &abort,
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
                let max_message = settings.max_message;
                datagram::serve(socket, &local, &*service, max_message, datagram_batch, shutdown).await;
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
    tracker: &'a TaskTracker,
    /// Asks connections to finish: write what they owe, then close.
    finish: &'a CancellationToken,
    /// Drops connections that did not finish in time.
    abort: &'a CancellationToken,
}

impl<S: Service> Accepting<'_, S> {
    /// Accepts until `shutdown`, taking a connection permit before each accept.
    async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut backoff = ACCEPT_BACKOFF.0;
        loop {
            let permit = tokio::select! {
                biased;
                () = &mut shutdown => return,
                permit = Arc::clone(&self.permits).acquire_owned() => permit.expect("the permits are never closed"),
            };
            let (connection, peer) = tokio::select! {
                biased;
                () = &mut shutdown => return,
                accepted = self.listener.accept(self.options) => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) if is_one_peers_error(&error) => {
                        debug!(%error, "a connection failed before it was accepted");
                        continue;
                    }
                    Err(error) => {
                        warn!(%error, retry_in = ?backoff, "accept failed; waiting before the next");
                        tokio::select! {
                            () = &mut shutdown => return,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                        continue;
                    }
                },
            };
            backoff = ACCEPT_BACKOFF.0;
            info!("Accept new connection from {peer}");
            let stop = Stop {
                finish: self.finish.clone(),
                abort: self.abort.clone(),
            };
            // What every open connection costs, so it is kept small (tested).
            self.tracker.spawn(connection.serve(
                peer,
                Arc::clone(&self.service),
                self.settings,
                stop,
                permit,
            ));
        }
    }
}

/// Accept errors that concern one peer only and say nothing of the listener.
pub(crate) fn is_one_peers_error(error: &std::io::Error) -> bool {
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
        let settings = Settings {
            framing: Framing::Auto,
            max_message: 1024,
        };
        let peer = Peer::Unix {
            addr: None,
            cred: None,
        };
        let task = connection.serve(peer, Arc::new(Greet), settings, Stop::default(), permit);
        let task = TaskTracker::new().track_future(task);
        // What is spawned for every open connection. tokio allocates it in a
        // task cell of 104 bytes more (header, scheduler, id, stage tag,
        // trailer; tokio 1.54), rounded up to its 128-byte alignment: up to
        // 280 bytes this is a 384-byte cell, which with the socket's
        // registration (256 bytes, also 128-aligned) and glibc's cost for
        // aligned blocks makes 1 KiB per idle connection (measured with
        // bench/idle_connections.py). One byte more is a 512-byte cell, and
        // 128 bytes more per connection. (280 bytes in a debug build and 272
        // in a release build when written; 792 before.)
        let size = std::mem::size_of_val(&task);
        assert!(size <= 280, "a connection task is {size} bytes");
    }
}
