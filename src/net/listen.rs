//! Listening: binds any endpoint to a bound socket of its kind, accepts
//! connections on it with their socket options set, and rides out failed
//! accepts. Shared by the [`Server`](crate::Server) and the
//! [`Relay`](crate::Relay); knows nothing of what answers.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};
use tokio_seqpacket::{UnixSeqpacket, UnixSeqpacketListener};
use tracing::{debug, warn};

use crate::limit::{LogGate, RateLimit};
use crate::net::inherited::{self, Inherited};
use crate::net::unix::SocketFile;
use crate::net::{self, SocketOptions, seqpacket, tcp, udp, unix, unix_datagram};
use crate::{Endpoint, Error, Peer, UnixAddr};

/// The shortest and longest pause after an accept error that may repeat
/// (out of descriptors, out of memory).
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

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
    /// Takes `socket`, opened elsewhere, as it is; see [`Server::adopt`](crate::Server::adopt).
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
pub(crate) enum Incoming {
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
    pub(crate) async fn accept(&mut self, options: &SocketOptions) -> io::Result<(Incoming, Peer)> {
        let (connection, peer) = match self {
            StreamListener::Tcp(listener) => {
                let (stream, addr) = listener.accept().await?;
                (Incoming::Tcp(stream), Peer::from(addr))
            }
            StreamListener::Unix(listener) => {
                let (stream, _) = listener.accept().await?;
                let cred = unix::peer_credentials(&stream);
                (Incoming::Unix(stream), Peer::Unix { addr: None, cred })
            }
            StreamListener::Seqpacket(listener) => {
                let socket = listener.accept().await?;
                let cred = seqpacket::peer_credentials(&socket);
                (Incoming::Seqpacket(socket), Peer::Unix { addr: None, cred })
            }
        };
        let socket = SockRef::from(&connection);
        let applied = match connection {
            Incoming::Tcp(_) => options.apply_tcp(&socket),
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

impl AsFd for Incoming {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Incoming::Tcp(stream) => stream.as_fd(),
            Incoming::Unix(stream) => stream.as_fd(),
            Incoming::Seqpacket(socket) => socket.as_fd(),
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

/// A bound datagram socket of either family.
#[derive(Debug)]
pub(crate) enum DatagramSocket {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

impl DatagramSocket {
    /// Runs `io` on the socket's descriptor when it is ready for `interest`,
    /// again each time it says `WouldBlock`.
    pub(crate) async fn io<R>(
        &self,
        interest: Interest,
        mut io: impl FnMut(RawFd) -> io::Result<R>,
    ) -> io::Result<R> {
        match self {
            DatagramSocket::Udp(socket) => socket.async_io(interest, || io(socket.as_raw_fd())).await,
            DatagramSocket::Unix(socket) => socket.async_io(interest, || io(socket.as_raw_fd())).await,
        }
    }

    /// Receives one datagram and who sent it.
    pub(crate) async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Peer)> {
        match self {
            DatagramSocket::Udp(socket) => {
                let (len, from) = socket.recv_from(buf).await?;
                Ok((len, Peer::from(from)))
            }
            DatagramSocket::Unix(socket) => {
                let (len, from) = socket.recv_from(buf).await?;
                let addr = match (from.as_pathname(), from.as_abstract_name()) {
                    (Some(path), _) => Some(UnixAddr::Path(path.to_owned())),
                    (None, Some(name)) => Some(UnixAddr::Abstract(name.to_vec())),
                    (None, None) => None,
                };
                Ok((len, Peer::Unix { addr, cred: None }))
            }
        }
    }

    /// Sends one datagram back to `peer`.
    pub(crate) async fn send_to(&self, reply: &[u8], peer: &Peer) -> io::Result<()> {
        match (self, peer) {
            (DatagramSocket::Udp(socket), Peer::Ip(addr)) => socket.send_to(reply, addr).await.map(drop),
            (DatagramSocket::Unix(socket), Peer::Unix { addr: Some(addr), .. }) => {
                unix_datagram::send_to(socket, reply, addr).await.map(drop)
            }
            (DatagramSocket::Unix(_), Peer::Unix { addr: None, .. }) => Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "the sender has no address to reply to (it did not bind its socket)",
            )),
            _ => unreachable!("a socket only hears peers of its own family"),
        }
    }

    /// The largest reply that fits in one datagram to `peer`.
    pub(crate) fn max_payload(&self, peer: &Peer) -> usize {
        match peer {
            Peer::Ip(addr) => udp::max_payload(*addr),
            // Bounded by the send buffer, not by a header: a reply too large
            // for it fails to send (EMSGSIZE), and that is logged.
            _ => usize::MAX,
        }
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
