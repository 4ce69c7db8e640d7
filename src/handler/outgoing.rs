//! A handler connection's outgoing queue: what the handler and the other
//! connections' [`Sender`]s send, bounded in bytes, written by the
//! connection's own writer (its pump) in the order it was queued.
//!
//! Messages are framed into one buffer as they are sent, so sixteen sends
//! between two writes leave in one system call, as a [`Service`]'s replies
//! do. A sender that finds the queue over its limit waits
//! ([`Sender::send`]: backpressure) or is told so at once
//! ([`Sender::try_send`], which fan-out uses: see [`Group`]).
//!
//! [`Service`]: crate::Service
//! [`Group`]: super::Group

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use bytes::BytesMut;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::ConnectionId;
use crate::Peer;
use crate::connection::Flagged;
use crate::framing::Framed;
use crate::metrics::{ErrorKind, ListenerMetrics, Tally};

/// How many bytes a connection's outgoing queue holds before senders wait
/// ([`Sender::send`]) or are refused ([`Sender::try_send`]): 256 KiB. A
/// queue holds at most one message more than this.
pub const DEFAULT_SEND_QUEUE: usize = 256 * 1024;

/// Why a connection takes nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shut {
    /// Writing to the peer failed.
    Failed(io::ErrorKind, String),
    /// It fell behind the messages sent to it, and was let go.
    FellBehind(usize),
    /// The conversation is over.
    Over,
}

/// What the queue holds, behind its lock.
#[derive(Debug)]
struct Queue {
    /// Framed messages not yet taken by the writer.
    bytes: BytesMut,
    /// Where each message ends in `bytes`, for transports that send one
    /// packet a message (seqpacket, datagrams); `None` for byte streams.
    ends: Option<VecDeque<usize>>,
    /// Bytes the writer has taken and not yet written.
    writing: usize,
    /// How messages are framed: the framing of the last message received.
    framed: Framed,
    /// Set once the connection takes nothing more.
    shut: Option<Shut>,
    /// The writer, waiting for something to write.
    writer: Option<Waker>,
    /// The handler is done: once the queue is empty, the writer is too.
    finished: bool,
    /// When the writer last wrote, for the idle timeout.
    wrote_at: Option<Instant>,
    /// A sender found the queue full and waits for room: the next write
    /// wakes it (and only then does a write pay for waking anyone).
    waiting: bool,
}

/// A connection's outgoing queue, shared by its handler, its writer and
/// every [`Sender`] to it.
#[derive(Debug)]
pub(crate) struct Outgoing {
    queue: Mutex<Queue>,
    /// Woken when the writer has made room.
    room: Notify,
    /// Cancelled when the connection takes nothing more, so that its
    /// handler stops waiting for messages (which looks at its flag).
    shut: Flagged,
    limit: usize,
    id: ConnectionId,
    peer: Peer,
    metrics: Option<Arc<ListenerMetrics>>,
}

/// What the queue says of a message offered to it.
enum Offer {
    Queued,
    Full,
    Shut(Shut),
}

impl Outgoing {
    /// A queue of `limit` bytes for connection `id`, framing messages as
    /// `framed`; `packets` when each message leaves as a packet of its own.
    pub(crate) fn new(
        id: ConnectionId,
        peer: Peer,
        framed: Framed,
        packets: bool,
        limit: usize,
        metrics: Option<Arc<ListenerMetrics>>,
    ) -> Arc<Self> {
        Arc::new(Outgoing {
            queue: Mutex::new(Queue {
                bytes: BytesMut::new(),
                ends: packets.then(VecDeque::new),
                writing: 0,
                framed,
                shut: None,
                writer: None,
                finished: false,
                wrote_at: None,
                waiting: false,
            }),
            room: Notify::new(),
            shut: Flagged::default(),
            limit: limit.max(1),
            id,
            peer,
            metrics,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock; a poisoned queue is still whole.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets the framing of the messages queued from now on.
    pub(crate) fn frame_as(&self, framed: Framed) {
        self.lock().framed = framed;
    }

    /// Queues `parts` as one message (framed, or as they are with `raw`),
    /// unless the queue is over its limit or shut.
    fn offer(&self, parts: &[&[u8]], raw: bool, wait: bool) -> Offer {
        let mut queue = self.lock();
        if let Some(shut) = &queue.shut {
            return Offer::Shut(shut.clone());
        }
        if queue.bytes.len() + queue.writing >= self.limit {
            queue.waiting |= wait;
            return Offer::Full;
        }
        if raw {
            for part in parts {
                queue.bytes.extend_from_slice(part);
            }
        } else {
            let framed = queue.framed;
            framed.encode(parts, &mut queue.bytes);
        }
        let end = queue.bytes.len();
        if let Some(ends) = &mut queue.ends {
            ends.push_back(end);
        }
        if let Some(writer) = queue.writer.take() {
            writer.wake();
        }
        drop(queue);
        if let Some(metrics) = &self.metrics {
            metrics.received(
                0,
                Tally {
                    messages: 0,
                    replies: 1,
                },
            );
        }
        Offer::Queued
    }

    /// Queues one message, waiting while the queue is over its limit.
    pub(crate) async fn send(&self, parts: &[&[u8]], raw: bool) -> io::Result<()> {
        // Most sends find room: they are queued without touching `room`.
        match self.offer(parts, raw, false) {
            Offer::Queued => return Ok(()),
            Offer::Shut(shut) => return Err(shut.into_error()),
            Offer::Full => {}
        }
        loop {
            // Waiting from before the offer, so that no write between the
            // two is missed.
            let room = self.room.notified();
            let mut room = std::pin::pin!(room);
            room.as_mut().enable();
            match self.offer(parts, raw, true) {
                Offer::Queued => return Ok(()),
                Offer::Shut(shut) => return Err(shut.into_error()),
                Offer::Full => room.await,
            }
        }
    }

    /// Queues one message at once, or says why not.
    pub(crate) fn try_send(&self, parts: &[&[u8]], raw: bool) -> Result<(), TrySendError> {
        match self.offer(parts, raw, false) {
            Offer::Queued => Ok(()),
            Offer::Full => Err(TrySendError::Full),
            Offer::Shut(_) => Err(TrySendError::Closed),
        }
    }

    /// Takes nothing more, for `why`; the first reason given stands.
    pub(crate) fn shut(&self, why: Shut) {
        let mut queue = self.lock();
        if queue.shut.is_none() {
            queue.shut = Some(why);
        }
        if let Some(writer) = queue.writer.take() {
            writer.wake();
        }
        drop(queue);
        self.shut.cancel();
        self.room.notify_waiters();
    }

    /// Whether the connection takes nothing more (or is about to).
    #[inline]
    pub(crate) fn is_shut(&self) -> bool {
        self.shut.is_raised()
    }

    /// Why the connection takes nothing more, once it does.
    pub(crate) fn shut_why(&self) -> Option<Shut> {
        self.lock().shut.clone()
    }

    /// Completes when the connection takes nothing more; a future that
    /// may be kept and polled again and again, waiting all along.
    pub(crate) fn shut_down(&self) -> WaitForCancellationFutureOwned {
        self.shut.cancelled_owned()
    }

    /// The writer is about to be polled anyway, after the handler in the
    /// same turn of their task: what the handler queues meanwhile need not
    /// wake it (a task that wakes itself is polled once more for nothing).
    pub(crate) fn writer_polled_next(&self) {
        self.lock().writer = None;
    }

    /// Lets go of a connection that fell behind: queued bytes past the limit.
    pub(crate) fn fell_behind(&self) {
        let behind = {
            let queue = self.lock();
            queue.bytes.len() + queue.writing
        };
        self.shut(Shut::FellBehind(behind));
    }

    /// Queues `bytes` as they are even past the limit: an error reply, the
    /// last thing a connection is sent.
    pub(crate) fn force(&self, bytes: &[u8]) {
        let mut queue = self.lock();
        if queue.shut.is_some() {
            return;
        }
        queue.bytes.extend_from_slice(bytes);
        let end = queue.bytes.len();
        if let Some(ends) = &mut queue.ends {
            ends.push_back(end);
        }
        if let Some(writer) = queue.writer.take() {
            writer.wake();
        }
    }

    /// The handler is done: the writer writes what is queued, then stops.
    pub(crate) fn finish(&self) {
        let mut queue = self.lock();
        queue.finished = true;
        if let Some(writer) = queue.writer.take() {
            writer.wake();
        }
    }

    /// When the writer last wrote.
    pub(crate) fn wrote_at(&self) -> Option<Instant> {
        self.lock().wrote_at
    }

    /// The next run of bytes to write (one packet, with `ends`), or `None`
    /// once the queue is empty and the handler is done, or it is shut by a
    /// failure.
    pub(crate) async fn next(&self) -> Option<BytesMut> {
        std::future::poll_fn(|cx| {
            let mut queue = self.lock();
            match &queue.shut {
                Some(Shut::Failed(..) | Shut::FellBehind(_)) => return Poll::Ready(None),
                Some(Shut::Over) | None => {}
            }
            if queue.bytes.is_empty() {
                if queue.finished || queue.shut.is_some() {
                    return Poll::Ready(None);
                }
                queue.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let run = match &mut queue.ends {
                Some(ends) => {
                    let end = ends.pop_front().expect("every queued packet has its end");
                    for later in ends.iter_mut() {
                        *later -= end;
                    }
                    queue.bytes.split_to(end)
                }
                None => queue.bytes.split(),
            };
            queue.writing = run.len();
            Poll::Ready(Some(run))
        })
        .await
    }

    /// The writer wrote `run`, which it took; senders waiting for room may
    /// go on. A small buffer is kept for the next messages, so that a busy
    /// connection does not allocate one per write, nor an idle one keep a
    /// large one.
    pub(crate) fn written(&self, mut run: BytesMut) {
        const KEPT: usize = 4096;
        let mut queue = self.lock();
        queue.writing = 0;
        queue.wrote_at = Some(Instant::now());
        let waiting = std::mem::take(&mut queue.waiting);
        if queue.ends.is_none() && queue.bytes.is_empty() && run.capacity() <= KEPT {
            run.clear();
            if run.capacity() > queue.bytes.capacity() {
                queue.bytes = run;
            }
        }
        drop(queue);
        if waiting {
            self.room.notify_waiters();
        }
    }

    /// Counts `bytes` written.
    pub(crate) fn count_sent(&self, bytes: usize) {
        if let Some(metrics) = &self.metrics {
            metrics.sent(bytes);
        }
    }

    /// Counts one error of `kind`.
    pub(crate) fn count_error(&self, kind: ErrorKind) {
        if let Some(metrics) = &self.metrics {
            metrics.error(kind);
        }
    }

    pub(crate) fn id(&self) -> ConnectionId {
        self.id
    }

    /// How many bytes wait to be written.
    pub(crate) fn queued(&self) -> usize {
        let queue = self.lock();
        queue.bytes.len() + queue.writing
    }
}

impl Shut {
    /// The error a send gets once the connection is shut.
    pub(crate) fn into_error(self) -> io::Error {
        match self {
            Shut::Failed(kind, why) => io::Error::new(kind, why),
            Shut::FellBehind(bytes) => io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("the connection was closed: it fell behind by {bytes} bytes"),
            ),
            Shut::Over => io::Error::new(io::ErrorKind::BrokenPipe, "the connection is closed"),
        }
    }
}

/// Why [`Sender::try_send`] did not queue a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError {
    /// The connection's outgoing queue is over its limit: its peer reads
    /// more slowly than it is sent to.
    #[error("the connection's outgoing queue is full")]
    Full,
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
}

/// Sends to one connection from anywhere: another connection's handler, a
/// timer, a task of the program's own. Cheap to clone; it does not keep the
/// connection open.
///
/// Messages are framed as the connection frames its replies, and written
/// in the order they are queued, never interleaved with another message.
///
/// # Examples
///
/// A handler that hands its connection's sender to a task pushing a line a
/// second:
///
/// ```
/// use std::time::Duration;
/// use sockit::handler::Connection;
///
/// async fn handle(mut connection: Connection) -> std::io::Result<()> {
///     let sender = connection.sender();
///     let pusher = tokio::spawn(async move {
///         let mut ticks = tokio::time::interval(Duration::from_secs(1));
///         loop {
///             ticks.tick().await;
///             if sender.send("tick").await.is_err() {
///                 break; // the connection closed
///             }
///         }
///     });
///     while connection.receive().await.is_some() {}
///     pusher.abort();
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Sender {
    outgoing: Arc<Outgoing>,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("id", &self.outgoing.id)
            .field("peer", &self.outgoing.peer)
            .finish()
    }
}

impl Sender {
    pub(crate) fn new(outgoing: Arc<Outgoing>) -> Self {
        Sender { outgoing }
    }

    /// The connection this sends to.
    pub fn id(&self) -> ConnectionId {
        self.outgoing.id
    }

    /// The peer of the connection this sends to.
    pub fn peer(&self) -> &Peer {
        &self.outgoing.peer
    }

    /// Sends one message, framed; waits while the connection's outgoing
    /// queue is full (backpressure).
    ///
    /// # Errors
    ///
    /// When the connection is closed, or writing to it failed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a message is queued whole or not at all.
    pub async fn send(&self, message: impl AsRef<[u8]>) -> io::Result<()> {
        self.outgoing.send(&[message.as_ref()], false).await
    }

    /// Sends one message, framed, if the connection's queue has room now.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] when the queue is over its limit,
    /// [`TrySendError::Closed`] when the connection is closed.
    pub fn try_send(&self, message: impl AsRef<[u8]>) -> Result<(), TrySendError> {
        self.outgoing.try_send(&[message.as_ref()], false)
    }

    /// Closes the connection because it fell behind: what is queued is not
    /// written, its handler's next [`receive`](super::Connection::receive)
    /// ends the conversation, and the server logs why.
    pub fn disconnect_slow(&self) {
        self.outgoing.fell_behind();
    }

    /// Whether the connection is closed (or closing) and takes nothing more.
    pub fn is_closed(&self) -> bool {
        self.outgoing.shut_why().is_some()
    }

    /// Bytes queued for the connection and not yet written.
    pub fn queued(&self) -> usize {
        self.outgoing.queued()
    }
}
