//! A stream connection behind a load balancer: its PROXY protocol header is
//! read first, within the header timeout, then the conversation is served
//! for the client the header names; on a `tls://` listener the header comes
//! before the TLS handshake, as HAProxy sends it in front of a TLS server.
//!
//! The header is peeked (`MSG_PEEK`) until it is whole, then exactly its
//! bytes are read: what the client sent after it stays in the socket for
//! the conversation, which reads it as if no header had come. A connection
//! whose listener has no [`ProxyProtocol`](crate::proxy::ProxyProtocol) never comes here, and pays
//! nothing for it.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{MsgFlags, recv};
use tokio::io::{Interest, Ready};
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::Peer;
use crate::answer::{self, Accepted, Answer};
use crate::connection::log::Event;
use crate::connection::{self, Settings, Stop};
use crate::metrics::ErrorKind;
use crate::net::listen::Incoming;
use crate::proxy::{self, DEFAULT_V2_MAX_LEN, Decoded, ProxyError, ProxyHeader, V1_MAX_LEN};

/// The most bytes peeked: the longest header taken, v1 or v2.
const MAX_HEADER: usize = if DEFAULT_V2_MAX_LEN > V1_MAX_LEN {
    DEFAULT_V2_MAX_LEN
} else {
    V1_MAX_LEN
};

/// Reads the header of `connection` from the trusted proxy `via` within
/// `timeout`, then serves it for the client it names (over TLS with `tls`,
/// its acceptor and handshake timeout);
/// or closes it, with one log line saying why. `permit` is held until the
/// connection is done.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve<A: Answer>(
    connection: Incoming,
    via: Peer,
    timeout: Duration,
    tls: Option<(TlsAcceptor, Duration)>,
    service: Arc<A>,
    settings: Settings,
    stop: Stop,
    permit: OwnedSemaphorePermit,
) {
    let read = tokio::select! {
        biased;
        () = stop.finish.cancelled() => {
            debug!(peer = %via, "closing the connection for shutdown, before its PROXY header");
            if let Some(metrics) = &stop.metrics {
                metrics.closed();
            }
            return;
        }
        read = tokio::time::timeout(timeout, read_header(&connection)) => read,
    };
    let why = match read {
        Ok(Ok(ProxyHeader::Proxied { source, .. })) => {
            let peer = Peer::from(source);
            stop.log.line(
                Event::Opened,
                format_args!("Accept new connection from {peer} via {via}"),
            );
            let accepted = Accepted::new(peer, Some(via));
            return converse(connection, accepted, tls, service, settings, stop, permit).await;
        }
        Ok(Ok(ProxyHeader::Local)) => {
            stop.log.line(
                Event::Opened,
                format_args!("Accept new connection from {via} (PROXY LOCAL: the proxy's own)"),
            );
            let accepted = Accepted::new(via.clone(), Some(via));
            return converse(connection, accepted, tls, service, settings, stop, permit).await;
        }
        Ok(Err(no_header)) => no_header,
        Err(_elapsed) => NoHeader::TimedOut(timeout),
    };
    if let Some(metrics) = &stop.metrics {
        metrics.error(ErrorKind::ProxyHeader);
    }
    match why {
        // What a trusted proxy sent is not a header: say it louder than a
        // peer that went away.
        NoHeader::Invalid(_) => warn!(peer = %via, "closing the connection: {why}"),
        NoHeader::TimedOut(_) | NoHeader::Closed | NoHeader::Io(_) => {
            info!(peer = %via, "closing the connection: {why}");
        }
    }
    match &connection {
        Incoming::Tcp(stream) => connection::close_gracefully(stream, &stop).await,
        Incoming::Unix(stream) => connection::close_gracefully(stream, &stop).await,
        Incoming::Seqpacket(_) => {}
    }
    if let Some(metrics) = &stop.metrics {
        metrics.closed();
    }
    drop(permit);
}

/// Serves `connection` for `peer` once its header is read: the TLS
/// handshake first with `tls`, then the conversation.
async fn converse<A: Answer>(
    connection: Incoming,
    accepted: Accepted,
    tls: Option<(TlsAcceptor, Duration)>,
    service: Arc<A>,
    settings: Settings,
    stop: Stop,
    permit: OwnedSemaphorePermit,
) {
    match (tls, connection) {
        (Some((acceptor, timeout)), Incoming::Tcp(stream)) => {
            connection::tls::serve(
                stream, acceptor, timeout, accepted, service, settings, stop, permit,
            )
            .await;
        }
        (_, connection) => answer::serve(connection, accepted, service, settings, stop, permit).await,
    }
}

/// Why a connection brought no header.
#[derive(Debug)]
enum NoHeader {
    /// The header timeout passed first.
    TimedOut(Duration),
    /// The peer closed its side first.
    Closed,
    /// What came is not a header sockit takes.
    Invalid(ProxyError),
    /// The socket failed.
    Io(io::Error),
}

impl fmt::Display for NoHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoHeader::TimedOut(timeout) => {
                write!(
                    f,
                    "no whole PROXY header within the header timeout of {timeout:?}"
                )
            }
            NoHeader::Closed => f.write_str("the peer closed before its PROXY header was whole"),
            NoHeader::Invalid(error) => write!(f, "{error}"),
            NoHeader::Io(error) => write!(f, "reading its PROXY header failed: {error}"),
        }
    }
}

/// Peeks at `connection` until a whole header is there, then reads exactly
/// its bytes, leaving what follows for the conversation.
///
/// # Cancel safety
///
/// Cancel safe until the header is whole (nothing is read before), and
/// after: dropping it loses nothing of the stream's own data.
async fn read_header(connection: &Incoming) -> Result<ProxyHeader, NoHeader> {
    let mut buf = vec![0; MAX_HEADER];
    // Bytes the last peek saw: a peek that sees no more waits for more.
    let mut seen = 0;
    loop {
        let ready = read_ready(connection).await.map_err(NoHeader::Io)?;
        let peeked = try_read_io(connection, || {
            let peeked = recv(connection.as_fd().as_raw_fd(), &mut buf, MsgFlags::MSG_PEEK)?;
            if peeked == seen && peeked > 0 && !ready.is_read_closed() {
                // Nothing new: clear the readiness and wait for more.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(peeked)
        });
        let peeked = match peeked {
            Ok(peeked) => peeked,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(NoHeader::Io(e)),
        };
        if peeked == seen {
            // Nothing new, and nothing more to come.
            return Err(NoHeader::Closed);
        }
        seen = peeked;
        match proxy::decode(&buf[..seen]) {
            Ok(Decoded::Incomplete) => {}
            Ok(Decoded::Complete { header, len }) => {
                consume(connection, &mut buf[..len]).await?;
                return Ok(header);
            }
            Err(error) => return Err(NoHeader::Invalid(error)),
        }
    }
}

/// Reads exactly `buf.len()` bytes, already peeked, and drops them.
async fn consume(connection: &Incoming, buf: &mut [u8]) -> Result<(), NoHeader> {
    let mut left = buf.len();
    while left > 0 {
        let read = try_read_io(connection, || {
            Ok(recv(
                connection.as_fd().as_raw_fd(),
                &mut buf[..left],
                MsgFlags::empty(),
            )?)
        });
        match read {
            Ok(0) => return Err(NoHeader::Closed),
            Ok(read) => left -= read,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                read_ready(connection).await.map_err(NoHeader::Io)?;
            }
            Err(e) => return Err(NoHeader::Io(e)),
        }
    }
    Ok(())
}

/// Waits until `connection` is readable (or closed for reading).
async fn read_ready(connection: &Incoming) -> io::Result<Ready> {
    match connection {
        Incoming::Tcp(stream) => stream.ready(Interest::READABLE).await,
        Incoming::Unix(stream) => stream.ready(Interest::READABLE).await,
        Incoming::Seqpacket(_) => Err(unsupported()),
    }
}

/// Runs `read` on `connection`'s socket, clearing its read readiness when
/// `read` says `WouldBlock`.
fn try_read_io<R>(connection: &Incoming, read: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
    match connection {
        Incoming::Tcp(stream) => stream.try_io(Interest::READABLE, read),
        Incoming::Unix(stream) => stream.try_io(Interest::READABLE, read),
        Incoming::Seqpacket(_) => Err(unsupported()),
    }
}

/// Seqpacket listeners take no PROXY header ([`Server::bind`](crate::Server::bind) refuses them).
fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "the PROXY protocol is for TCP and Unix stream listeners",
    )
}
