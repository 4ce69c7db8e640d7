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
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

use crate::connection::{self, ByteStream, Settings, Stop};
use crate::datagram;
use crate::deadline::Timeouts;
use crate::handler::drive::{Transport, closed, drive};
use crate::handler::{Handled, Handler, Meta, TlsInfo, sessions};
use crate::metrics::{ErrorKind, ListenerMetrics};
use crate::net::listen::{DatagramSocket, Incoming};
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

/// Serves an accepted connection until it ends. Not an `async fn`, which
/// would keep a copy of its arguments beside the future it awaits: the
/// future returned is just the conversation of the connection's kind.
pub(crate) fn serve<A: Answer>(
    incoming: Incoming,
    accepted: Accepted,
    answer: Arc<A>,
    settings: Settings,
    stop: Stop,
    permit: OwnedSemaphorePermit,
) -> impl Future<Output = ()> + Send + 'static {
    match incoming {
        Incoming::Tcp(stream) => Either::Left(answer.stream(stream, accepted, settings, stop, permit)),
        Incoming::Unix(stream) => Either::Right(Either::Left(
            answer.stream(stream, accepted, settings, stop, permit),
        )),
        // Boxed, so that TCP and Unix connections, the many, do not
        // carry the packet loop's larger state.
        Incoming::Seqpacket(socket) => Either::Right(Either::Right(Box::pin(
            answer.packets(socket, accepted, settings, stop, permit),
        ))),
    }
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

#[cfg(test)]
mod tests {
    use tokio_util::task::TaskTracker;

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
        let incoming = Incoming::Unix(UnixStream::from_std(stream).unwrap());
        let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let settings = Settings::new(Framing::Auto, 1024);
        let peer = Peer::Unix {
            addr: None,
            cred: None,
        };
        let task = serve(
            incoming,
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
        // the listener's `Stop` behind one pointer instead of two tokens.
        // 272 and 264 once the connection's loop became a future written
        // out, its wait on the shutdown token kept from one read to the
        // next.)
        let size = std::mem::size_of_val(&task);
        assert!(size <= 280, "a connection task is {size} bytes");
    }
}
