//! One stream connection (TCP, Unix stream) under load: the requests due go
//! out framed in one write, replies are cut from one read buffer and each
//! is checked against the oldest request in flight.
//!
//! In `raw` framing (one request in flight) a reply is the next
//! [`Messages::reply_len`] bytes, however the reads split them, and any byte
//! past it makes the reply wrong; in `line` and `len32` framing the shared
//! [`Decoder`] cuts replies, so a wrong one does not throw the rest out of step.
//! No buffer is allocated per message: the write and read buffers are the
//! connection's own and reused.

use std::collections::VecDeque;
use std::io;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, sleep_until, timeout_at};

use super::Id;
use super::run::{Ending, Sender, Sent, Shared};
use crate::Framing;
use crate::framing::{DEFAULT_MAX_MESSAGE, Decoder, Framed};

/// How much a read may bring at least.
const READ_SIZE: usize = 16 * 1024;

/// Runs connection `conn` until its share of the load is done or it fails;
/// returns how it ended and how many requests were left without a reply.
pub(super) async fn run<R, W>(
    shared: &Shared,
    conn: u32,
    mut reader: R,
    mut writer: W,
    sender: &mut Sender,
) -> (Ending, usize)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut stream = Stream::new(shared, conn);
    let ending = match stream.greeting(&mut reader).await {
        Ok(()) => stream.exchange(&mut reader, &mut writer, sender).await,
        Err(ending) => ending,
    };
    (ending, stream.window.len())
}

/// A stream connection's buffers and the requests it has in flight.
struct Stream<'a> {
    shared: &'a Shared,
    conn: u32,
    framed: Framed,
    /// Cuts `line` and `len32` replies; `None` in `raw` framing.
    decoder: Option<Decoder>,
    /// The bytes framing adds to a reply.
    overhead: usize,
    out: BytesMut,
    written: usize,
    input: BytesMut,
    window: VecDeque<Sent>,
}

impl<'a> Stream<'a> {
    fn new(shared: &'a Shared, conn: u32) -> Self {
        let framed = shared.framing.sending();
        let reply_len = shared.messages.reply_len();
        let decoder = match shared.framing {
            Framing::Line | Framing::Len32 => Some(Decoder::new(
                shared.framing,
                (2 * reply_len).max(DEFAULT_MAX_MESSAGE),
            )),
            Framing::Raw | Framing::Auto => None,
        };
        let overhead = match framed {
            Framed::Raw => 0,
            Framed::Line => 1,
            Framed::Len32 => 4,
        };
        Stream {
            shared,
            conn,
            framed,
            decoder,
            overhead,
            out: BytesMut::with_capacity(shared.pipeline * (shared.messages.size() + overhead)),
            written: 0,
            input: BytesMut::with_capacity(READ_SIZE.max(shared.pipeline * (reply_len + overhead))),
            window: VecDeque::with_capacity(shared.pipeline),
        }
    }

    /// Reads the greeting, if the service greets, and checks it.
    async fn greeting<R: AsyncRead + Unpin>(&mut self, reader: &mut R) -> Result<(), Ending> {
        let Some(greeting) = self.shared.messages.greeting() else {
            return Ok(());
        };
        let deadline = Instant::now() + self.shared.timeout;
        loop {
            let right = match &mut self.decoder {
                Some(decoder) if self.shared.framing == Framing::Len32 => decoder
                    .decode(&mut self.input)
                    .map_err(|_| Ending::Failed(io::ErrorKind::InvalidData))?
                    .map(|message| message.payload == greeting),
                // A server in `auto` framing greets bare even a client that
                // sends lines; one in `line` framing ends the greeting in '\n'.
                _ => (self.input.len() >= greeting.len()).then(|| {
                    let right = self.input[..greeting.len()] == *greeting;
                    self.input.advance(greeting.len());
                    if self.shared.framing == Framing::Line && self.input.first() == Some(&b'\n') {
                        self.input.advance(1);
                    }
                    right
                }),
            };
            if let Some(right) = right {
                if !right {
                    self.shared.unexpected();
                }
                return Ok(());
            }
            match timeout_at(deadline, read_some(reader, &mut self.input)).await {
                Err(_) => return Err(Ending::Stalled),
                Ok(Ok(0)) => return Err(Ending::Failed(io::ErrorKind::UnexpectedEof)),
                Ok(Ok(_)) => {}
                Ok(Err(error)) => return Err(Ending::Failed(error.kind())),
            }
        }
    }

    /// Sends requests as they are due and checks replies as they come.
    async fn exchange<R, W>(&mut self, reader: &mut R, writer: &mut W, sender: &mut Sender) -> Ending
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let timeout = self.shared.timeout;
        // Reset only when it fires: no timer work per message.
        let stall = sleep_until(Instant::now());
        tokio::pin!(stall);
        loop {
            let now = Instant::now();
            self.fill(sender, now);
            if self.window.is_empty() && sender.finished(now) {
                return Ending::Done;
            }
            let oldest = self.window.front().map(|sent| sent.sent_at + timeout);
            let room = self.window.len() < self.shared.pipeline;
            tokio::select! {
                biased;
                written = writer.write(&self.out[self.written..]), if self.written < self.out.len() => {
                    match written {
                        Ok(0) => return Ending::Failed(io::ErrorKind::WriteZero),
                        Ok(n) => self.written += n,
                        Err(error) => return Ending::Failed(error.kind()),
                    }
                    if self.written == self.out.len() {
                        self.out.clear();
                        self.written = 0;
                    }
                }
                read = read_some(reader, &mut self.input) => match read {
                    Ok(0) => return Ending::Failed(io::ErrorKind::UnexpectedEof),
                    Ok(_) => {
                        if let Err(ending) = self.take_replies(Instant::now()) {
                            return ending;
                        }
                    }
                    Err(error) => return Ending::Failed(error.kind()),
                },
                ticked = sender.tick(), if room && sender.waits_for_time() => {
                    if let Err(error) = ticked {
                        return Ending::Failed(error.kind());
                    }
                }
                () = &mut stall, if oldest.is_some() => {
                    let deadline = oldest.expect("the branch runs with a request in flight");
                    if Instant::now() >= deadline {
                        return Ending::Stalled;
                    }
                    stall.as_mut().reset(deadline);
                }
            }
        }
    }

    /// Frames every request due into the write buffer, up to a full window.
    fn fill(&mut self, sender: &mut Sender, now: Instant) {
        while self.window.len() < self.shared.pipeline {
            let Some(sent) = sender.next(now) else {
                break;
            };
            let before = self.out.len();
            self.shared
                .messages
                .encode_request(Id::new(self.conn, sent.seq), self.framed, &mut self.out);
            self.shared.sending(&sent, self.out.len() - before);
            self.window.push_back(sent);
        }
    }

    /// Checks every whole reply in the read buffer against the oldest
    /// request in flight.
    fn take_replies(&mut self, now: Instant) -> Result<(), Ending> {
        let messages = &self.shared.messages;
        loop {
            let Some(oldest) = self.window.front() else {
                // Nothing is owed: whatever came is wrong.
                if let Some(decoder) = &mut self.decoder {
                    while decoder
                        .decode(&mut self.input)
                        .map_err(|_| Ending::Failed(io::ErrorKind::InvalidData))?
                        .is_some()
                    {
                        self.shared.unexpected();
                    }
                } else if !self.input.is_empty() {
                    self.shared.unexpected();
                    self.input.clear();
                }
                return Ok(());
            };
            let id = Id::new(self.conn, oldest.seq);
            let (right, wire) = match &mut self.decoder {
                None => {
                    let len = messages.reply_len();
                    if self.input.len() < len {
                        return Ok(());
                    }
                    // One request in flight: a byte past its reply is wrong too.
                    let wire = self.input.len();
                    let right = wire == len && messages.is_reply(&self.input, id);
                    self.input.clear();
                    (right, wire)
                }
                Some(decoder) => match decoder.decode(&mut self.input) {
                    Ok(Some(reply)) => (
                        messages.is_reply(&reply.payload, id),
                        reply.payload.len() + self.overhead,
                    ),
                    Ok(None) => return Ok(()),
                    Err(_) => return Err(Ending::Failed(io::ErrorKind::InvalidData)),
                },
            };
            let sent = self.window.pop_front().expect("a request is in flight");
            self.shared.answered(&sent, right, wire, now);
        }
    }
}

/// Reads what has come, into `input`.
///
/// # Cancel safety
///
/// Cancel safe.
async fn read_some<R: AsyncRead + Unpin>(reader: &mut R, input: &mut BytesMut) -> io::Result<usize> {
    input.reserve(READ_SIZE);
    reader.read_buf(input).await
}
