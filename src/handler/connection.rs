//! [`Connection`]: what a handler holds of its connection: who the peer is,
//! the next message, and a way to send.

use std::fmt;
use std::io;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_seqpacket::UnixSeqpacket;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::debug;

use super::outgoing::{Outgoing, Sender, Shut};
use super::{ConnectionId, TlsInfo};
use crate::connection::{KeptWaker, Stop, now_or_never};
use crate::deadline::{Expired, Timeouts};
use crate::framing::{Decoder, FrameError, Framed};
use crate::metrics::Tally;
use crate::{Endpoint, Escaped, Framing, Peer};

/// Where a connection's messages come from.
pub(crate) enum Input {
    /// A byte stream (TCP, Unix stream, TLS), cut into messages by the framing.
    Stream(Pin<Box<dyn AsyncRead + Send + Sync>>),
    /// A seqpacket connection: a packet is a message.
    Packets(Arc<UnixSeqpacket>),
    /// One source of a datagram socket: a datagram is a message, handed
    /// over by the socket's receive loop.
    Datagrams(mpsc::Receiver<Bytes>),
}

/// Why a conversation ended, as the connection saw it.
#[derive(Debug)]
pub(crate) enum End {
    /// The peer closed its side.
    PeerClosed,
    /// The handler returned while the peer was still there.
    Finished,
    /// The server is draining.
    Shutdown,
    /// The peer sent something that is not a message; the error reply is queued.
    Refused(FrameError),
    /// A timeout passed.
    TimedOut(Expired),
    /// Reading or writing failed.
    Failed(io::Error),
    /// It fell behind by this many bytes sent to it, and was let go.
    FellBehind(usize),
}

/// What a connection's driver shares with the [`Connection`] it hands to
/// the handler: why the conversation ended, and its input, returned when
/// the handler lets go of the connection (to drain it before closing).
pub(crate) struct Returned {
    pub end: Arc<Mutex<Option<End>>>,
    pub input: oneshot::Receiver<Input>,
}

/// One connection, as its [`Handler`](super::Handler) holds it: who the
/// peer is, the messages it sends, cut by the listener's framing, and a way
/// to send it messages, framed the same way, whenever the handler likes.
///
/// On a datagram listener a connection is one source address: each
/// datagram from it is a message, and each message sent is a datagram.
/// On seqpacket each packet is a message.
///
/// Dropping it (returning from the handler) ends the conversation: what
/// was sent is written first, then the connection is closed.
///
/// # Examples
///
/// A handler that numbers the lines it answers, keeping its count for the
/// connection's life:
///
/// ```
/// use sockit::handler::Connection;
///
/// async fn numbered(mut connection: Connection) -> std::io::Result<()> {
///     let mut count = 0;
///     while let Some(line) = connection.receive().await {
///         count += 1;
///         let reply = format!("{count}: {}", String::from_utf8_lossy(&line));
///         connection.send(reply).await?;
///     }
///     Ok(())
/// }
/// ```
pub struct Connection {
    id: ConnectionId,
    peer: Peer,
    via: Option<Peer>,
    local: Endpoint,
    tls: Option<TlsInfo>,
    input: Option<Input>,
    give_back: Option<oneshot::Sender<Input>>,
    decoder: Decoder,
    /// Bytes read and not yet cut into messages.
    buffer: BytesMut,
    /// A packet or datagram received and not yet returned.
    packet: Option<Bytes>,
    /// The stream has ended (end of stream was read).
    eof: bool,
    /// The drain's last read, of what had arrived, is done.
    read_last: bool,
    outgoing: Arc<Outgoing>,
    stop: Stop,
    /// The last read (or the start), for the idle timeout.
    progress: Instant,
    /// When the first byte of the message still arriving came, for the read timeout.
    started: Option<Instant>,
    end: Arc<Mutex<Option<End>>>,
    /// Completes when the connection takes nothing more, and when the
    /// server starts draining: kept from one receive to the next, so
    /// that a receive that waits does not register (with the listener's
    /// token, shared by every connection) and unregister each time.
    shut: Pin<Box<WaitForCancellationFutureOwned>>,
    draining: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The waker `shut` and `draining` were last polled with, and hold.
    waits_with: KeptWaker,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .field("via", &self.via)
            .field("local", &self.local)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// Who a connection is with and how it came, for [`Connection::new`].
pub(crate) struct Meta {
    pub peer: Peer,
    pub via: Option<Peer>,
    pub local: Endpoint,
    pub tls: Option<TlsInfo>,
}

impl Connection {
    /// A connection reading `input`, sending through `outgoing`.
    pub(crate) fn new(
        meta: Meta,
        input: Input,
        outgoing: Arc<Outgoing>,
        framing: Framing,
        max_message: usize,
        stop: Stop,
    ) -> (Self, Returned) {
        let (give_back, returned) = oneshot::channel();
        let end = Arc::new(Mutex::new(None));
        let shut = Box::pin(outgoing.shut_down());
        let draining = Box::pin(stop.finish.cancelled_owned());
        let connection = Connection {
            id: outgoing.id(),
            peer: meta.peer,
            via: meta.via,
            local: meta.local,
            tls: meta.tls,
            input: Some(input),
            give_back: Some(give_back),
            decoder: Decoder::new(framing, max_message),
            buffer: BytesMut::new(),
            packet: None,
            eof: false,
            read_last: false,
            outgoing,
            stop,
            progress: Instant::now(),
            started: None,
            end: Arc::clone(&end),
            shut,
            draining,
            waits_with: KeptWaker::default(),
        };
        (connection, Returned { end, input: returned })
    }

    /// This connection's number, unique among every connection the process
    /// serves: a key for per-connection state that, unlike the peer's
    /// address, two unnamed Unix clients never share.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// Who is on the other end: behind a load balancer that sends the PROXY
    /// protocol, the client its header names; on Unix sockets, with the
    /// peer's credentials.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The load balancer the connection came through, when the listener
    /// takes the PROXY protocol; `None` otherwise.
    pub fn via(&self) -> Option<&Peer> {
        self.via.as_ref()
    }

    /// The listener's endpoint the connection came to.
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.local
    }

    /// The TLS session's details on a `tls://` listener; `None` otherwise.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// The framing messages are cut by.
    pub fn framing(&self) -> Framing {
        self.decoder.framing()
    }

    /// The next message, framing removed; `None` once the conversation is
    /// over: the peer closed its side, the server started draining, a
    /// timeout passed, the peer sent what is not a message (it gets the
    /// error reply), or reading or writing failed. The server logs which.
    ///
    /// Messages that arrived before the server started draining are still
    /// returned (those already read, and those waiting in the socket, read
    /// once without waiting); after that, `None`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a message half received stays in the connection's
    /// buffer for the next call, so this may be raced against a timer or a
    /// channel in `tokio::select!`.
    pub async fn receive(&mut self) -> Option<Bytes> {
        loop {
            if self.ended() {
                return None;
            }
            match self.cut() {
                Ok(Some(message)) => return Some(message),
                Ok(None) if self.eof => {
                    self.finish(End::PeerClosed);
                    return None;
                }
                Ok(None) => {}
                Err(error) => {
                    error.encode_reply_to(&self.outgoing);
                    self.finish(End::Refused(error));
                    return None;
                }
            }
            let due = self.due();
            let Connection {
                input,
                buffer,
                decoder,
                shut,
                draining,
                waits_with,
                outgoing,
                stop,
                ..
            } = self;
            let input = input
                .as_mut()
                .expect("the input is taken only when the connection is dropped");
            // In a block of their own: the futures borrow the connection
            // until they are dropped, at its end.
            let wait = {
                let mut due = pin!(sleep_until(due));
                let mut reading = pin!(read(input, buffer, decoder));
                std::future::poll_fn(|cx| {
                    // The waits for the shut and the drain are polled only
                    // when their flag is raised, or with another waker.
                    let kept = waits_with.kept(cx);
                    if (!kept || outgoing.is_shut()) && shut.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wait::Shut);
                    }
                    if (!kept || stop.finish.is_raised()) && draining.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wait::Draining);
                    }
                    if due.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wait::Due);
                    }
                    reading.as_mut().poll(cx).map(Wait::Read)
                })
                .await
            };
            match wait {
                Wait::Shut => {
                    let end = match self.outgoing.shut_why() {
                        Some(Shut::Failed(kind, why)) => End::Failed(io::Error::new(kind, why)),
                        Some(Shut::FellBehind(bytes)) => End::FellBehind(bytes),
                        Some(Shut::Over) | None => End::Finished,
                    };
                    self.finish(end);
                }
                Wait::Draining if self.read_last => self.finish(End::Shutdown),
                Wait::Draining => {
                    // What arrived before the drain is still answered: one
                    // read of what is there, without waiting; the next
                    // wait ends the conversation.
                    self.read_last = true;
                    let input = self.input.as_mut().expect("the input is taken only when dropped");
                    match now_or_never(read(input, &mut self.buffer, &self.decoder)) {
                        Some(Ok(read)) => self.read(read),
                        Some(Err(_)) | None => self.finish(End::Shutdown),
                    }
                }
                Wait::Due => {
                    if let Some((deadline, expired)) = self.due()
                        && deadline <= Instant::now()
                    {
                        self.finish(End::TimedOut(expired));
                    }
                }
                Wait::Read(Ok(read)) => self.read(read),
                Wait::Read(Err(error)) => self.finish(End::Failed(error)),
            }
        }
    }

    /// Sends one message, framed by the listener's framing (with `auto`,
    /// as the last message received was); waits while the connection's
    /// outgoing queue is full, so a peer that reads slowly slows its
    /// handler down instead of filling memory.
    ///
    /// # Errors
    ///
    /// When the connection is closed, or writing to it failed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a message is queued whole or not at all.
    pub async fn send(&mut self, message: impl AsRef<[u8]>) -> io::Result<()> {
        self.outgoing.send(&[message.as_ref()], false).await
    }

    /// Sends `bytes` as they are, unframed (on seqpacket and datagrams, as
    /// one packet); waits while the outgoing queue is full. For streaming
    /// something large, such as a file, a piece at a time: memory holds at
    /// most one queue's worth.
    ///
    /// # Errors
    ///
    /// When the connection is closed, or writing to it failed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the bytes are queued whole or not at all.
    pub async fn write(&mut self, bytes: impl AsRef<[u8]>) -> io::Result<()> {
        self.outgoing.send(&[bytes.as_ref()], true).await
    }

    /// A handle that sends to this connection from anywhere (another
    /// connection, a timer task); see [`Sender`].
    pub fn sender(&self) -> Sender {
        Sender::new(Arc::clone(&self.outgoing))
    }

    /// Whether the server has started draining: it accepts no more
    /// connections and asks the open ones to finish.
    pub fn is_draining(&self) -> bool {
        self.stop.finish.is_cancelled()
    }

    /// Completes when the server starts draining (at once if it has), for
    /// a handler that waits on something other than [`receive`](Self::receive).
    /// The future borrows nothing, so it may be kept while the connection
    /// is used, or moved into a task of its own.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub fn draining(&self) -> impl Future<Output = ()> + Send + 'static {
        self.stop.finish.cancelled_owned()
    }

    /// Whether the conversation is over.
    fn ended(&self) -> bool {
        self.end.lock().map(|end| end.is_some()).unwrap_or(true)
    }

    /// Records why the conversation ended; the first reason stands.
    fn finish(&mut self, why: End) {
        let mut end = self.end.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if end.is_none() {
            *end = Some(why);
        }
    }

    /// The next whole message in the buffer (or, on a datagram or packet
    /// connection, none: they come whole from [`read`]).
    fn cut(&mut self) -> Result<Option<Bytes>, FrameError> {
        if !matches!(self.input, Some(Input::Stream(_))) {
            return Ok(self.take_packet());
        }
        let next = if self.eof {
            self.decoder.decode_eof(&mut self.buffer)?
        } else {
            self.decoder.decode(&mut self.buffer)?
        };
        let Some(message) = next else {
            return Ok(None);
        };
        if self.decoder.framing() == Framing::Auto {
            self.outgoing.frame_as(message.framed);
        }
        if self.buffer.is_empty() {
            self.started = None;
        }
        self.received(&message.payload);
        Ok(Some(message.payload))
    }

    /// The packet or datagram [`read`] brought, if it is still to be returned.
    fn take_packet(&mut self) -> Option<Bytes> {
        let packet = self.packet.take()?;
        self.received(&packet);
        Some(packet)
    }

    fn received(&self, message: &[u8]) {
        debug!(peer = %self.peer, data = %Escaped(message), "received");
        if let Some(metrics) = &self.stop.metrics {
            metrics.received(
                0,
                Tally {
                    messages: 1,
                    replies: 0,
                },
            );
        }
    }

    /// What a read brought.
    fn read(&mut self, read: Read) {
        match read {
            Read::Bytes(0) => self.eof = true,
            Read::End => self.finish(End::Shutdown),
            Read::Bytes(bytes) => {
                if let Some(metrics) = &self.stop.metrics {
                    metrics.received(bytes, Tally::default());
                }
                let now = Instant::now();
                self.progress = now;
                if self.started.is_none() && !self.buffer.is_empty() {
                    self.started = Some(now);
                }
            }
            Read::Packet(packet) => {
                if let Some(metrics) = &self.stop.metrics {
                    metrics.received(packet.len(), Tally::default());
                }
                self.progress = Instant::now();
                self.packet = Some(packet);
            }
            Read::TooLong(bytes) => {
                if let Some(metrics) = &self.stop.metrics {
                    metrics.received(bytes, Tally::default());
                }
                let error = FrameError::TooLong {
                    limit: self.decoder.max_message(),
                    framed: Framed::Raw,
                };
                error.encode_reply_to(&self.outgoing);
                self.finish(End::Refused(error));
            }
        }
    }

    /// When the next timeout is due, if one is set: the idle timeout since
    /// the last read or write, the read timeout since the first byte of a
    /// message still incomplete. Datagram sources are forgotten after the
    /// idle timeout, or [`DATAGRAM_SOURCE_IDLE`](super::DATAGRAM_SOURCE_IDLE)
    /// without one.
    fn due(&self) -> Option<(Instant, Expired)> {
        let mut timeouts = self.stop.timeouts;
        if matches!(self.input, Some(Input::Datagrams(_))) {
            timeouts.idle = Some(timeouts.idle.unwrap_or(super::DATAGRAM_SOURCE_IDLE));
            timeouts.read = None;
        }
        if timeouts == Timeouts::default() {
            return None;
        }
        let progress = self
            .outgoing
            .wrote_at()
            .map_or(self.progress, |wrote| wrote.max(self.progress));
        timeouts.due(progress, self.started, false)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let (Some(input), Some(give_back)) = (self.input.take(), self.give_back.take()) {
            let _ = give_back.send(input);
        }
        self.finish(End::Finished);
    }
}

/// What a connection's wait ended with.
enum Wait {
    Shut,
    Draining,
    Due,
    Read(io::Result<Read>),
}

/// What one read brought.
enum Read {
    /// Bytes of a stream, now in the buffer; 0 at end of stream.
    Bytes(usize),
    /// A whole packet or datagram (a datagram may be empty).
    Packet(Bytes),
    /// A packet longer than the longest message.
    TooLong(usize),
    /// The datagram source is gone (the listener stopped).
    End,
}

/// Waits until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<(Instant, Expired)>) {
    match deadline {
        Some((deadline, _)) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Reads what `input` brings next: a stream's bytes into `buffer`, a
/// packet or datagram whole.
///
/// Cancel safe: a stream's bytes land in `buffer` only when read, a
/// packet is returned only once received whole.
async fn read(input: &mut Input, buffer: &mut BytesMut, decoder: &Decoder) -> io::Result<Read> {
    match input {
        Input::Stream(stream) => {
            buffer.reserve(decoder.read_size());
            stream.read_buf(buffer).await.map(Read::Bytes)
        }
        Input::Packets(socket) => {
            // One byte more than a message may have, to see one too long;
            // a buffer of its own, so that a cancelled receive leaves none
            // of it behind.
            let max = decoder.max_message();
            let mut packet = BytesMut::zeroed(max + 1);
            let received = socket.recv(&mut packet).await?;
            let len = received.bytes_read();
            if len > max || received.truncated() {
                return Ok(Read::TooLong(len));
            }
            packet.truncate(len);
            // An empty packet reads as end of stream; it ends the conversation too.
            Ok(if len == 0 {
                Read::Bytes(0)
            } else {
                Read::Packet(packet.freeze())
            })
        }
        Input::Datagrams(datagrams) => Ok(match datagrams.recv().await {
            Some(datagram) => Read::Packet(datagram),
            None => Read::End,
        }),
    }
}

impl FrameError {
    /// Queues the error reply for this error, if it has one, past the queue's limit.
    fn encode_reply_to(&self, outgoing: &Outgoing) {
        let mut reply = BytesMut::new();
        self.encode_reply(&mut reply);
        if !reply.is_empty() {
            outgoing.force(&reply);
        }
    }
}

/// How long a datagram source is remembered without traffic when the
/// listener has no idle timeout.
pub const DATAGRAM_SOURCE_IDLE: Duration = Duration::from_secs(60);
