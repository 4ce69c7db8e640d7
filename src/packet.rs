//! One seqpacket connection: every packet is one message, and every reply
//! is sent as a packet of its own. No framing is needed.
//!
//! Packets arrive whole, so of the timeouts only the idle one applies.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::{Instant, Sleep};
use tokio_seqpacket::UnixSeqpacket;
use tracing::{debug, info, warn};

use crate::connection::{LINGER, Stop};
use crate::deadline::Expired;
use crate::framing::FrameError;
use crate::metrics::{ErrorKind, Tally};
use crate::service::{Flow, Replies, Service};
use crate::{Escaped, Peer};

/// Serves one seqpacket connection until it ends; logs but never fails.
/// `held` (the connection's permit) is dropped when it is done.
pub(crate) async fn serve<S: Service, H: Send>(
    socket: UnixSeqpacket,
    peer: Peer,
    service: Arc<S>,
    max_message: usize,
    stop: Stop,
    held: H,
) {
    if let Err(error) = converse(&socket, &peer, &*service, max_message, &stop).await {
        if let Some(metrics) = &stop.metrics {
            metrics.error(ErrorKind::of_io(&error));
        }
        info!(%peer, %error, "connection failed");
    }
    close_gracefully(&socket, &stop).await;
    if let Some(metrics) = &stop.metrics {
        metrics.closed();
    }
    stop.log.closed(&peer);
    drop(held);
}

async fn converse<S: Service>(
    socket: &UnixSeqpacket,
    peer: &Peer,
    service: &S,
    max_message: usize,
    stop: &Stop,
) -> io::Result<()> {
    let mut output = BytesMut::new();
    let mut ends = Vec::new();
    let mut idle = stop.timeouts.idle.map(Idle::new);
    service.greeting(&mut Replies::packets(&mut output, peer, &mut ends));
    // Replies are sent under the idle timeout too: a peer that takes none
    // for that long is closed.
    macro_rules! send_all {
        () => {
            tokio::select! {
                biased;
                sent = stop.or_abort(send_each(socket, &mut output, &mut ends)) => {
                    let sent = sent?;
                    if let Some(metrics) = &stop.metrics {
                        metrics.sent(sent);
                    }
                    if let Some(idle) = &mut idle {
                        idle.progress = Instant::now();
                    }
                }
                expired = Idle::expired(&mut idle) => {
                    info!(%peer, "closing the connection: {}", stop.timeouts.why(expired));
                    if let Some(metrics) = &stop.metrics {
                        metrics.error(ErrorKind::IdleTimeout);
                    }
                    return Ok(());
                }
            }
        };
    }
    send_all!();
    // One byte more than a message may have, to see a packet that is too long.
    let mut input = vec![0; max_message + 1];
    loop {
        let received = tokio::select! {
            biased;
            () = stop.finish.cancelled() => return Ok(()),
            received = socket.recv(&mut input) => received?,
            expired = Idle::expired(&mut idle) => {
                info!(%peer, "closing the connection: {}", stop.timeouts.why(expired));
                if let Some(metrics) = &stop.metrics {
                    metrics.error(ErrorKind::IdleTimeout);
                }
                return Ok(());
            }
        };
        if let Some(idle) = &mut idle {
            idle.progress = Instant::now();
        }
        let len = received.bytes_read();
        if len == 0 {
            // End of stream (an empty packet reads the same; it ends the conversation too).
            return Ok(());
        }
        if len > max_message || received.truncated() {
            let error = FrameError::TooLong {
                limit: max_message,
                framed: crate::framing::Framed::Raw,
            };
            warn!(%peer, %error, "closing the connection");
            if let Some(metrics) = &stop.metrics {
                metrics.received(len, Tally::default());
                metrics.error(ErrorKind::MessageTooLong);
            }
            let sent = stop.or_abort(socket.send(FrameError::REPLY)).await?;
            if let Some(metrics) = &stop.metrics {
                metrics.sent(sent);
            }
            return Ok(());
        }
        let message = &input[..len];
        debug!(%peer, data = %Escaped(message), "received");
        let read_at = stop.metrics.as_ref().map(|_| std::time::Instant::now());
        let flow = service.message(message, &mut Replies::packets(&mut output, peer, &mut ends));
        let replies = ends.len();
        if let Some(metrics) = &stop.metrics {
            metrics.received(
                len,
                Tally {
                    messages: 1,
                    replies: replies as u64,
                },
            );
        }
        send_all!();
        if let (Some(metrics), Some(read_at), true) = (&stop.metrics, read_at, replies > 0) {
            metrics.replied(read_at);
        }
        if flow == Flow::Close {
            return Ok(());
        }
    }
}

/// The idle timeout of a seqpacket connection: its timer, moved to the real
/// deadline only when it fires (see [`crate::deadline`]).
struct Idle {
    limit: Duration,
    progress: Instant,
    timer: Pin<Box<Sleep>>,
}

impl Idle {
    fn new(limit: Duration) -> Idle {
        Idle {
            limit,
            progress: Instant::now(),
            timer: Box::pin(tokio::time::sleep(limit)),
        }
    }

    /// Completes once the connection has been idle for the limit; never
    /// without one.
    async fn expired(idle: &mut Option<Idle>) -> Expired {
        let Some(idle) = idle else {
            return std::future::pending().await;
        };
        loop {
            idle.timer.as_mut().await;
            let at = idle.progress + idle.limit;
            if at <= Instant::now() {
                return Expired::Idle;
            }
            idle.timer.as_mut().reset(at);
        }
    }
}

/// Sends each reply in `output` as one packet, then empties both.
/// Returns how many bytes were sent.
async fn send_each(
    socket: &UnixSeqpacket,
    output: &mut BytesMut,
    ends: &mut Vec<usize>,
) -> io::Result<usize> {
    let mut start = 0;
    for &end in ends.iter() {
        socket.send(&output[start..end]).await?;
        start = end;
    }
    output.clear();
    ends.clear();
    Ok(start)
}

/// Sends end-of-stream, then reads and drops the packets the peer still
/// sends until it closes too (or [`LINGER`] passes): closing with packets
/// unread would report a reset to the peer before the replies already sent.
async fn close_gracefully(socket: &UnixSeqpacket, stop: &Stop) {
    if socket.shutdown(std::net::Shutdown::Write).is_err() {
        return;
    }
    // One byte of each packet is enough to drop it whole.
    let mut sink = [0; 1];
    let drain = async {
        loop {
            tokio::select! {
                biased;
                () = stop.abort.cancelled() => break,
                received = socket.recv(&mut sink) => match received {
                    Ok(info) if info.bytes_read() == 0 && !info.truncated() => break,
                    Ok(_) => {}
                    Err(_) => break,
                },
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}
