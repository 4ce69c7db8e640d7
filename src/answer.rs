//! What a server answers its connections with, a [`Service`] or a
//! [`Handler`]: the one seam between the listeners (binding, accepting,
//! limits, TLS, the PROXY protocol, drain), which are written once, and
//! the two drivers of a conversation. A service is driven by the
//! per-read loop of [`connection`](crate::connection), with no task or
//! queue of its own: the fast path. A handler by `handler::drive`.
//!
//! [`Answer`] is public, since [`Server`](crate::Server) is generic over
//! it, and sealed: its methods take the crate's own connection types, which
//! no one outside can name, so no one outside can implement it. That is
//! what the two lints allowed here would warn of.
#![allow(private_interfaces, private_bounds)]

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_seqpacket::UnixSeqpacket;
use tokio_util::sync::CancellationToken;

use crate::connection::{self, ByteStream, Settings, Stop};
use crate::datagram::{self, DatagramSocket};
use crate::deadline::Timeouts;
use crate::handler::drive::{Transport, closed, drive};
use crate::handler::{Handled, Handler, Meta, TlsInfo, sessions};
use crate::metrics::{ErrorKind, ListenerMetrics};
use crate::service::Service;
use crate::{Endpoint, Framing, Peer, packet};

/// What a [`Server`](crate::Server) serves: every [`Service`], and every
/// [`Handler`] given to [`Server::handler`](crate::Server::handler). Sealed:
/// implement one of those two instead.
pub trait Answer: Send + Sync + Sized + 'static {
    /// The framing a listener uses when none is chosen.
    #[doc(hidden)]
    fn default_framing(&self) -> Framing;

    /// Serves a plain TCP or Unix stream connection until it ends.
    #[doc(hidden)]
    fn stream<IO: Plain>(
        self: Arc<Self>,
        io: IO,
        accepted: Accepted,
        settings: Settings,
        stop: Stop,
        permit: OwnedSemaphorePermit,
    ) -> impl Future<Output = ()> + Send + 'static;

    /// Serves a seqpacket connection until it ends.
    #[doc(hidden)]
    fn packets(
        self: Arc<Self>,
        socket: UnixSeqpacket,
        accepted: Accepted,
        settings: Settings,
        stop: Stop,
        permit: OwnedSemaphorePermit,
    ) -> impl Future<Output = ()> + Send + 'static;

    /// Serves a TLS connection whose handshake is done, and closes it; the
    /// kind of error it ended with, if it did.
    #[doc(hidden)]
    fn tls(
        self: Arc<Self>,
        stream: TlsStream<TcpStream>,
        accepted: Accepted,
        settings: Settings,
        stop: Stop,
    ) -> impl Future<Output = Option<ErrorKind>> + Send;

    /// Serves a datagram socket until `shutdown` is cancelled. (A token,
    /// not the caller's shutdown future, so that this future is `Send`
    /// whatever the caller's is.)
    #[doc(hidden)]
    fn datagrams(
        self: Arc<Self>,
        socket: DatagramSocket,
        serving: DatagramServing,
        shutdown: CancellationToken,
    ) -> impl Future<Output = ()> + Send;
}

/// Who an accepted connection is with.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The peer: behind a PROXY header, the client it names.
    pub(crate) peer: Peer,
    /// The load balancer it came through, with the PROXY protocol.
    pub(crate) via: Option<Peer>,
}

impl Accepted {
    pub(crate) fn new(peer: Peer, via: Option<Peer>) -> Self {
        Accepted { peer, via }
    }

    fn meta(self, stop: &Stop, tls: Option<TlsInfo>) -> Meta {
        Meta {
            peer: self.peer,
            via: self.via,
            local: stop
                .local
                .clone()
                .expect("a listener's connections know its endpoint"),
            tls,
        }
    }
}

/// What a datagram listener is served with.
pub struct DatagramServing {
    pub(crate) local: Endpoint,
    pub(crate) settings: Settings,
    pub(crate) timeouts: Timeouts,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) metrics: Option<Arc<ListenerMetrics>>,
    pub(crate) limits: datagram::Limits,
    pub(crate) live: datagram::Live,
}

/// A plain stream connection (TCP, Unix): driven by readiness for a
/// service, split in two halves for a handler.
pub trait Plain: ByteStream + Sized + 'static {
    /// The reading half.
    #[doc(hidden)]
    type Read: AsyncRead + Send + Sync + 'static;
    /// The writing half.
    #[doc(hidden)]
    type Write: AsyncWrite + Send + 'static;
    /// Splits the connection.
    #[doc(hidden)]
    fn into_halves(self) -> (Self::Read, Self::Write);
}

impl Plain for TcpStream {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;
    fn into_halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

impl Plain for UnixStream {
    type Read = tokio::net::unix::OwnedReadHalf;
    type Write = tokio::net::unix::OwnedWriteHalf;
    fn into_halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

impl<S: Service> Answer for S {
    fn default_framing(&self) -> Framing {
        Service::default_framing(self)
    }

    fn stream<IO: Plain>(
        self: Arc<Self>,
        io: IO,
        accepted: Accepted,
        settings: Settings,
        stop: Stop,
        permit: OwnedSemaphorePermit,
    ) -> impl Future<Output = ()> + Send + 'static {
        connection::serve(io, accepted.peer, self, settings, stop, permit)
    }

    fn packets(
        self: Arc<Self>,
        socket: UnixSeqpacket,
        accepted: Accepted,
        settings: Settings,
        stop: Stop,
        permit: OwnedSemaphorePermit,
    ) -> impl Future<Output = ()> + Send + 'static {
        packet::serve(socket, accepted.peer, self, settings.max_message, stop, permit)
    }

    async fn tls(
        self: Arc<Self>,
        stream: TlsStream<TcpStream>,
        accepted: Accepted,
        settings: Settings,
        stop: Stop,
    ) -> Option<ErrorKind> {
        connection::tls::serve_handshaken(stream, &accepted.peer, &*self, settings, &stop).await
    }

    async fn datagrams(
        self: Arc<Self>,
        socket: DatagramSocket,
        serving: DatagramServing,
        shutdown: CancellationToken,
    ) {
        datagram::serve(
            socket,
            &serving.local,
            &*self,
            serving.limits,
            serving.live,
            serving.metrics,
            shutdown.cancelled_owned(),
        )
        .await;
    }
}

impl<H: Handler> Answer for Handled<H> {
    fn default_framing(&self) -> Framing {
        self.0.default_framing()
    }

    async fn stream<IO: Plain>(
        self: Arc<Self>,
        io: IO,
        accepted: Accepted,
        settings: Settings,
        stop: Stop,
        permit: OwnedSemaphorePermit,
    ) {
        let (read, write) = io.into_halves();
        let peer = accepted.peer.clone();
        let transport = Transport::stream(accepted.meta(&stop, None), read, write);
        drive(self, transport, settings, stop.clone()).await;
        closed(&peer, &stop);
        drop(permit);
    }

    async fn packets(
        self: Arc<Self>,
        socket: UnixSeqpacket,
        accepted: Accepted,
        settings: Settings,
        stop: Stop,
        permit: OwnedSemaphorePermit,
    ) {
        let peer = accepted.peer.clone();
        let transport = Transport::packets(accepted.meta(&stop, None), socket);
        drive(self, transport, settings, stop.clone()).await;
        closed(&peer, &stop);
        drop(permit);
    }

    async fn tls(
        self: Arc<Self>,
        stream: TlsStream<TcpStream>,
        accepted: Accepted,
        settings: Settings,
        stop: Stop,
    ) -> Option<ErrorKind> {
        let tls = TlsInfo::of(stream.get_ref().1);
        let (read, write) = tokio::io::split(stream);
        let transport = Transport::stream(accepted.meta(&stop, Some(tls)), read, write);
        drive(self, transport, settings, stop).await;
        // The driver counted how it ended.
        None
    }

    async fn datagrams(
        self: Arc<Self>,
        socket: DatagramSocket,
        serving: DatagramServing,
        shutdown: CancellationToken,
    ) {
        sessions::serve(self, socket, serving, shutdown.cancelled_owned()).await;
    }
}
