//! One TLS connection: the handshake, within a time limit, then the same
//! conversation as on TCP (framing, service, errors, timeouts, shutdown),
//! driven through `AsyncRead`/`AsyncWrite` since TLS stands between the
//! socket's readiness and the bytes; closed with `close_notify`.
//!
//! Unlike a plain connection's, this loop keeps its buffers for the
//! connection's life: rustls holds buffers of its own per connection
//! anyway, so the per-thread lending would save little, and a TLS listener
//! is chosen for its security, not for a million idle peers.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, info};

use super::{Ending, LINGER, Settings, Stop, aborted, answer, error_kind};
use crate::Peer;
use crate::answer::{Accepted, Answer};
use crate::connection::log::Event;
use crate::connection::now_or_never;
use crate::deadline::{Deadline, Expired};
use crate::framing::Decoder;
use crate::metrics::{ErrorKind, Tally};
use crate::service::{Replies, Service};

/// Runs the TLS handshake on `stream` (within `handshake_timeout`, and
/// unless the server finishes first), then serves the connection until it
/// ends and closes it; logs but never fails. `permit` is dropped when done.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve<A: Answer>(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    accepted: Accepted,
    answer: Arc<A>,
    settings: Settings,
    stop: Stop,
    permit: OwnedSemaphorePermit,
) {
    let peer = accepted.peer.clone();
    let handshake = tokio::select! {
        biased;
        () = stop.finish.cancelled() => None,
        accepted = tokio::time::timeout(handshake_timeout, acceptor.accept(stream)) => Some(accepted),
    };
    let stream = match handshake {
        None => {
            debug!(%peer, "closing the connection for shutdown, before its TLS handshake");
            Err(None)
        }
        Some(Err(_)) => {
            let timeout = humantime::format_duration(handshake_timeout);
            stop.log.line(
                Event::HandshakeFailed,
                format_args!("TLS handshake failed: not done within {timeout} peer={peer}"),
            );
            Err(Some(ErrorKind::TlsHandshake))
        }
        Some(Ok(Err(error))) => {
            stop.log.line(
                Event::HandshakeFailed,
                format_args!("TLS handshake failed peer={peer} error={error}"),
            );
            Err(Some(ErrorKind::TlsHandshake))
        }
        Some(Ok(Ok(stream))) => Ok(stream),
    };
    let served = stream.is_ok();
    let failed = match stream {
        Ok(stream) => answer.tls(stream, accepted, settings, stop.clone()).await,
        Err(failed) => failed,
    };
    if let Some(metrics) = &stop.metrics {
        if let Some(kind) = failed {
            metrics.error(kind);
        }
        metrics.closed();
    }
    if served {
        stop.log.closed(&peer);
    }
    drop(permit);
}

/// Serves a connection whose handshake is done until it ends, and closes
/// it; the kind of error it ended with, if it did.
pub(crate) async fn serve_handshaken<S: Service>(
    mut stream: TlsStream<TcpStream>,
    peer: &Peer,
    service: &S,
    settings: Settings,
    stop: &Stop,
) -> Option<ErrorKind> {
    let ending = converse(&mut stream, peer, service, settings, stop).await;
    let failed = error_kind(&ending);
    match ending {
        Ok(Ending::PeerClosed) => {
            // Every reply is written: answer the peer's close_notify with ours.
            let _ = tokio::time::timeout(LINGER, stop.or_abort(stream.shutdown())).await;
        }
        Err(error) => info!(%peer, %error, "connection failed"),
        Ok(ending) => {
            ending.log(peer, &stop.timeouts);
            close_gracefully(&mut stream, stop).await;
        }
    }
    failed
}

/// The conversation once the handshake is done: the greeting, then every
/// message of a read answered with one write, until it ends.
async fn converse<S, IO>(
    io: &mut IO,
    peer: &Peer,
    service: &S,
    settings: Settings,
    stop: &Stop,
) -> io::Result<Ending>
where
    S: Service,
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut decoder = Decoder::new(settings.framing, settings.max_message);
    let timeouts = stop.timeouts;
    let mut deadline = (timeouts.idle.is_some() || timeouts.read.is_some()).then(|| Deadline::new(timeouts));
    let mut input = BytesMut::new();
    let mut output = BytesMut::new();
    service.greeting(&mut Replies::new(&mut output, decoder.framing().sending(), peer));
    let mut ending = None;
    // When the read that the replies in `output` answer came, with metrics on.
    let mut read_at = None;
    loop {
        // Every reply owed is written before anything more is read.
        if let Some(expired) = write_all(io, &mut output, stop, &mut deadline).await? {
            return Ok(Ending::TimedOut(expired));
        }
        if let (Some(metrics), Some(read_at)) = (&stop.metrics, read_at.take()) {
            metrics.replied(read_at);
        }
        if let Some(ending) = ending {
            return Ok(ending);
        }
        let read_size = decoder.read_size();
        input.reserve(read_size);
        // At most one read window, so one `raw` read is never longer than a message may be.
        let mut window = (&mut input).limit(read_size);
        let read = tokio::select! {
            biased;
            () = stop.finish.cancelled() => None,
            expired = expiry(&mut deadline, false) => return Ok(Ending::TimedOut(expired)),
            read = io.read_buf(&mut window) => Some(read),
        };
        // Asked to finish: what arrived before is still answered (one read
        // of what is there, without waiting), then the connection closes.
        let (read, finishing) = match read {
            Some(read) => (read, false),
            None => match now_or_never(io.read_buf(&mut window)) {
                Some(Ok(read)) => (Ok(read), true),
                Some(Err(_)) | None => return Ok(Ending::Shutdown),
            },
        };
        let read = match read {
            Ok(read) => read,
            // A peer that closes without close_notify (as many do) has
            // still closed: its messages are answered as at end of stream.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e),
        };
        // Counted per read, never per message, and only when asked.
        let now = stop.metrics.as_ref().map(|_| Instant::now());
        let mut tally = Tally::default();
        ending = answer(
            &mut decoder,
            &mut input,
            read == 0,
            service,
            &mut output,
            peer,
            &mut tally,
        );
        if let Some(metrics) = &stop.metrics {
            metrics.received(read, tally);
        }
        if finishing {
            ending = ending.or(Some(Ending::Shutdown));
        }
        read_at = now.filter(|_| !output.is_empty());
        if let Some(deadline) = &mut deadline {
            deadline.as_mut().read(read, input.len());
        }
    }
}

/// Writes and flushes all of `output` (the TLS records with it), unless
/// the server aborts; the idle timeout that passed meanwhile, if one did.
async fn write_all<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    output: &mut BytesMut,
    stop: &Stop,
    deadline: &mut Option<Pin<Box<Deadline>>>,
) -> io::Result<Option<Expired>> {
    if output.is_empty() {
        return Ok(None);
    }
    while !output.is_empty() {
        let written = tokio::select! {
            biased;
            () = stop.abort.cancelled() => return Err(aborted()),
            expired = expiry(deadline, true) => return Ok(Some(expired)),
            written = io.write(output) => written?,
        };
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        output.advance(written);
        if let Some(deadline) = deadline {
            deadline.as_mut().wrote();
        }
        if let Some(metrics) = &stop.metrics {
            metrics.sent(written);
        }
    }
    tokio::select! {
        biased;
        () = stop.abort.cancelled() => Err(aborted()),
        expired = expiry(deadline, true) => Ok(Some(expired)),
        flushed = io.flush() => flushed.map(|()| None),
    }
}

/// When the connection's deadline passes; never without one.
async fn expiry(deadline: &mut Option<Pin<Box<Deadline>>>, writing: bool) -> Expired {
    match deadline {
        Some(deadline) => std::future::poll_fn(|cx| deadline.as_mut().poll_expired(cx, writing)).await,
        None => std::future::pending().await,
    }
}

/// Sends `close_notify` and end of stream, then reads and drops what the
/// peer still sends until it closes too (or [`LINGER`] passes), so the
/// replies already written arrive.
async fn close_gracefully<IO: AsyncRead + AsyncWrite + Unpin>(io: &mut IO, stop: &Stop) {
    let drain = async {
        io.shutdown().await?;
        let mut sink = [0; 4096];
        while io.read(&mut sink).await? > 0 {}
        Ok::<(), io::Error>(())
    };
    let _ = tokio::time::timeout(LINGER, stop.or_abort(drain)).await;
}
