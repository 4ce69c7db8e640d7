//! Driving one handler connection: the handler's future and the
//! connection's writer run side by side in the connection's task; when the
//! handler is done, what it sent is written, then the connection closes as
//! a [`Service`](crate::Service)'s does (end-of-stream, then a short
//! linger reading what the peer still sends).

use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_seqpacket::UnixSeqpacket;
use tracing::{debug, info, warn};

use super::connection::{Connection, End, Input, Meta, Returned};
use super::outgoing::{Outgoing, Shut};
use super::{Handled, Handler};
use crate::connection::{KeptWaker, LINGER, Settings, Stop};
use crate::deadline::Expired;
use crate::framing::{FrameError, Framing};
use crate::metrics::ErrorKind;
use crate::net::listen::DatagramSocket;
use crate::{ConnectionId, Peer};

/// Where a connection's messages go.
pub(crate) enum Output {
    /// A byte stream's writing half.
    Stream(Pin<Box<dyn AsyncWrite + Send>>),
    /// A seqpacket connection: a message is a packet.
    Packets(Arc<UnixSeqpacket>),
    /// One source of a datagram socket: a message is a datagram to it.
    Datagrams(Arc<DatagramSocket>),
}

/// How a connection was made, for [`drive`].
pub(crate) struct Transport {
    pub meta: Meta,
    pub input: Input,
    pub output: Output,
}

impl Transport {
    /// A byte stream, split in two.
    pub(crate) fn stream<R, W>(meta: Meta, read: R, write: W) -> Self
    where
        R: AsyncRead + Send + Sync + 'static,
        W: AsyncWrite + Send + 'static,
    {
        Transport {
            meta,
            input: Input::Stream(Box::pin(read)),
            output: Output::Stream(Box::pin(write)),
        }
    }

    /// A seqpacket connection.
    pub(crate) fn packets(meta: Meta, socket: UnixSeqpacket) -> Self {
        let socket = Arc::new(socket);
        Transport {
            meta,
            input: Input::Packets(Arc::clone(&socket)),
            output: Output::Packets(socket),
        }
    }
}

/// Runs `handler` on one connection until it returns and what it sent is
/// written (or the server aborts at its shutdown timeout), then closes the
/// connection; logs why it ended, and counts its errors. Never fails.
pub(crate) async fn drive<H: Handler>(
    handler: Arc<Handled<H>>,
    transport: Transport,
    settings: Settings,
    stop: Stop,
) {
    let Transport {
        meta,
        input,
        mut output,
    } = transport;
    let peer = meta.peer.clone();
    let (framing, packets) = match output {
        Output::Stream(_) => (settings.framing, false),
        Output::Packets(_) | Output::Datagrams(_) => (Framing::Raw, true),
    };
    let outgoing = Outgoing::new(
        ConnectionId::next(),
        peer.clone(),
        framing.sending(),
        packets,
        settings.send_queue,
        stop.metrics.clone(),
    );
    let (connection, returned) = Connection::new(
        meta,
        input,
        Arc::clone(&outgoing),
        framing,
        settings.max_message,
        stop.clone(),
    );
    let Returned { end, input } = returned;
    let served = {
        let serving = handler.0.serve(connection);
        let writing = write_all(&outgoing, &mut output, &peer);
        let mut aborted = pin!(stop.abort.cancelled());
        let mut side_by_side = pin!(side_by_side(serving, writing, &outgoing));
        let mut waits_with = KeptWaker::default();
        std::future::poll_fn(|cx| {
            // The wait for the shutdown timeout is polled only once its flag
            // is raised (or with another waker), not at every wake of the
            // connection's task: each poll takes its token's locks.
            if (!waits_with.kept(cx) || stop.abort.is_raised()) && aborted.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            side_by_side.as_mut().poll(cx).map(Some)
        })
        .await
    };
    let end = end
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take()
        .unwrap_or(End::Finished);
    let end = match (&served, outgoing.shut_why()) {
        (None, _) => End::Failed(io::Error::new(
            io::ErrorKind::TimedOut,
            "closed at the shutdown timeout",
        )),
        // A write that failed, or a peer let go for falling behind, says
        // more than what the handler saw of it.
        (Some(_), Some(Shut::Failed(kind, why))) => End::Failed(io::Error::new(kind, why)),
        (Some(_), Some(Shut::FellBehind(bytes))) => End::FellBehind(bytes),
        (Some(_), _) => end,
    };
    outgoing.shut(Shut::Over);
    if let Some(Err(error)) = &served {
        info!(%peer, %error, "the handler failed");
        if let Some(metrics) = &stop.metrics {
            metrics.error(ErrorKind::of_io(error));
        }
    }
    log(&end, &peer, settings, &stop);
    if let Some(metrics) = &stop.metrics
        && let Some(kind) = error_kind(&end)
    {
        metrics.error(kind);
    }
    match end {
        End::Failed(_) => {}
        End::PeerClosed => {
            if let Output::Stream(write) = &mut output {
                let _ = tokio::time::timeout(LINGER, stop.or_abort(write.shutdown())).await;
            }
        }
        _ => close(&mut output, input.await.ok(), &stop).await,
    }
}

/// Counts and logs a stream connection closed, as the seed prints it.
pub(crate) fn closed(peer: &Peer, stop: &Stop) {
    if let Some(metrics) = &stop.metrics {
        metrics.closed();
    }
    stop.log.closed(peer);
}

/// Polls the handler's future and the writer's in turn until both are
/// done; the handler's result. A handler that panics fails: its future
/// (and with it the [`Connection`]) is dropped, and what it had sent is
/// still written, as when it returns an error.
async fn side_by_side(
    serving: impl Future<Output = io::Result<()>>,
    writing: impl Future<Output = io::Result<()>>,
    outgoing: &Outgoing,
) -> io::Result<()> {
    let mut serving = pin!(Some(serving));
    let mut writing = pin!(writing);
    let mut served = None;
    let mut written = false;
    std::future::poll_fn(|cx| {
        if !written {
            outgoing.writer_polled_next();
        }
        let polled = serving.as_mut().as_pin_mut().map(|serving| {
            std::panic::catch_unwind(AssertUnwindSafe(|| serving.poll(cx)))
                .unwrap_or_else(|panic| Poll::Ready(Err(panicked(&*panic))))
        });
        if let Some(Poll::Ready(result)) = polled {
            serving.set(None);
            served = Some(result);
            outgoing.finish();
        }
        if !written && let Poll::Ready(result) = writing.as_mut().poll(cx) {
            written = true;
            if let Err(error) = result {
                outgoing.shut(Shut::Failed(error.kind(), error.to_string()));
            }
        }
        match served.take() {
            Some(result) if written => Poll::Ready(result),
            not_yet => {
                served = not_yet;
                Poll::Pending
            }
        }
    })
    .await
}

/// The error a handler's panic ends its connection with.
fn panicked(panic: &(dyn std::any::Any + Send)) -> io::Error {
    let why = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic with no message");
    io::Error::other(format!("it panicked: {why}"))
}

/// Writes what `outgoing` queues, in order, until the handler is done and
/// all of it is written; fails when a write does. A datagram that cannot be
/// sent is logged and skipped: datagrams may be lost anyway.
async fn write_all(outgoing: &Outgoing, output: &mut Output, peer: &Peer) -> io::Result<()> {
    while let Some(run) = outgoing.next().await {
        match output {
            Output::Stream(write) => {
                write.write_all(&run).await?;
                write.flush().await?;
            }
            Output::Packets(socket) => {
                socket.send(&run).await?;
            }
            Output::Datagrams(socket) => {
                if let Err(error) = socket.send_to(&run, peer).await {
                    warn!(%peer, %error, "could not send the datagram");
                    outgoing.count_error(ErrorKind::Send);
                }
            }
        }
        outgoing.count_sent(run.len());
        outgoing.written(run);
    }
    Ok(())
}

/// Closes a connection whose conversation is over: end-of-stream, then
/// reads and drops what the peer still sends until it closes too (or
/// [`LINGER`] passes), so that what was written arrives.
async fn close(output: &mut Output, input: Option<Input>, stop: &Stop) {
    let drain = async {
        match output {
            Output::Stream(write) => {
                write.shutdown().await?;
                if let Some(Input::Stream(mut read)) = input {
                    let mut sink = [0; 4096];
                    while read.read(&mut sink).await? > 0 {}
                }
            }
            Output::Packets(socket) => {
                socket.shutdown(std::net::Shutdown::Write)?;
                let mut sink = [0; 1];
                loop {
                    let received = socket.recv(&mut sink).await?;
                    if received.bytes_read() == 0 && !received.truncated() {
                        break;
                    }
                }
            }
            Output::Datagrams(_) => {}
        }
        Ok::<(), io::Error>(())
    };
    let _ = tokio::time::timeout(LINGER, stop.or_abort(drain)).await;
}

/// Says why the connection to `peer` closes, where that is news.
fn log(end: &End, peer: &Peer, settings: Settings, stop: &Stop) {
    match end {
        End::Shutdown => debug!(%peer, "closing the connection for shutdown"),
        End::Refused(error) => warn!(%peer, %error, "closing the connection"),
        End::TimedOut(expired) => {
            let mut timeouts = stop.timeouts;
            if *expired == Expired::Idle && timeouts.idle.is_none() {
                timeouts.idle = Some(super::DATAGRAM_SOURCE_IDLE);
            }
            info!(%peer, "closing the connection: {}", timeouts.why(*expired));
        }
        End::Failed(error) => info!(%peer, %error, "connection failed"),
        End::FellBehind(bytes) => warn!(
            %peer,
            "closing the connection: it fell behind, {bytes} bytes sent to it unread (its send queue holds {})",
            settings.send_queue
        ),
        End::Finished | End::PeerClosed => {}
    }
}

/// The kind of error a conversation ended with, if it ended with one.
fn error_kind(end: &End) -> Option<ErrorKind> {
    match end {
        End::Refused(FrameError::TooLong { .. }) => Some(ErrorKind::MessageTooLong),
        End::Refused(_) => Some(ErrorKind::Malformed),
        End::TimedOut(Expired::Idle) => Some(ErrorKind::IdleTimeout),
        End::TimedOut(Expired::Read) => Some(ErrorKind::ReadTimeout),
        End::Failed(error) => Some(ErrorKind::of_io(error)),
        End::FellBehind(_) => Some(ErrorKind::FellBehind),
        End::PeerClosed | End::Finished | End::Shutdown => None,
    }
}
