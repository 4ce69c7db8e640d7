//! One packet socket under load (UDP, Unix datagram, seqpacket): a window of
//! requests in flight, one packet each; every reply is matched to its
//! request by the [`Id`] it carries, so lost and reordered datagrams are
//! told apart; a request unanswered for the timeout is missing.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use tokio::io::Interest;
use tokio::net::{UdpSocket, UnixDatagram};
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_seqpacket::UnixSeqpacket;

use super::Id;
use super::run::{Ending, Sender, Sent, Shared};
use crate::net::batch::{Inbox, Outbox};

/// A connected socket that sends and receives whole packets, many per
/// system call (`sendmmsg`, `recvmmsg`).
pub(super) trait Packets {
    /// Whether receiving no bytes means the peer closed (seqpacket), rather
    /// than an empty datagram.
    const EMPTY_IS_END: bool;

    /// Runs `io` on the socket's descriptor when it is ready for `interest`,
    /// again each time it says `WouldBlock`.
    async fn io<R>(&self, interest: Interest, io: impl FnMut(RawFd) -> io::Result<R>) -> io::Result<R>;
}

impl Packets for UdpSocket {
    const EMPTY_IS_END: bool = false;

    async fn io<R>(&self, interest: Interest, mut io: impl FnMut(RawFd) -> io::Result<R>) -> io::Result<R> {
        self.async_io(interest, || io(self.as_raw_fd())).await
    }
}

impl Packets for UnixDatagram {
    const EMPTY_IS_END: bool = false;

    async fn io<R>(&self, interest: Interest, mut io: impl FnMut(RawFd) -> io::Result<R>) -> io::Result<R> {
        self.async_io(interest, || io(self.as_raw_fd())).await
    }
}

impl Packets for UnixSeqpacket {
    const EMPTY_IS_END: bool = true;

    async fn io<R>(&self, interest: Interest, mut io: impl FnMut(RawFd) -> io::Result<R>) -> io::Result<R> {
        self.as_async_fd()
            .async_io(interest, |fd| io(fd.as_raw_fd()))
            .await
    }
}

/// Runs socket `conn` until its share of the load is done or it fails;
/// returns how it ended and how many requests were left without a reply.
pub(super) async fn run<P: Packets>(
    shared: &Shared,
    conn: u32,
    socket: &P,
    sender: &mut Sender,
) -> (Ending, usize) {
    let messages = &shared.messages;
    // One byte more than the longest packet owed, to see a longer one.
    let longest = messages
        .reply_len()
        .max(messages.greeting().map_or(0, <[u8]>::len));
    let mut inbox = Inbox::<()>::new(longest + 1, shared.pipeline);
    let mut outbox = Outbox::<()>::with_capacity(messages.size() * shared.pipeline.min(64));
    let mut window: VecDeque<Sent> = VecDeque::with_capacity(shared.pipeline);
    let ending = 'run: {
        if let Some(greeting) = messages.greeting() {
            let deadline = Instant::now() + shared.timeout;
            match timeout_at(deadline, socket.io(Interest::READABLE, |fd| inbox.receive(fd))).await {
                Err(_) => break 'run Ending::Stalled,
                Ok(Ok(_)) => {
                    for (n, packet) in inbox.datagrams().enumerate() {
                        match packet.data {
                            [] if P::EMPTY_IS_END => break 'run Ending::Failed(io::ErrorKind::UnexpectedEof),
                            data if n == 0 && data == greeting => {}
                            _ => shared.unexpected(),
                        }
                    }
                }
                Ok(Err(error)) => break 'run Ending::Failed(error.kind()),
            }
        }
        // Reset only when it fires: no timer work per message.
        let expiry = sleep_until(Instant::now());
        tokio::pin!(expiry);
        loop {
            let now = Instant::now();
            outbox.clear();
            while window.len() < shared.pipeline {
                let Some(sent) = sender.next(now) else {
                    break;
                };
                let start = outbox.buffer().len();
                outbox.buffer().resize(start + messages.size(), 0);
                messages.write_request(Id::new(conn, sent.seq), &mut outbox.buffer()[start..]);
                outbox.seal(start, ());
                shared.sending(&sent, messages.size());
                window.push_back(sent);
            }
            while !outbox.is_empty() {
                match timeout(
                    shared.timeout,
                    socket.io(Interest::WRITABLE, |fd| outbox.send(fd)),
                )
                .await
                {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => break 'run Ending::Failed(error.kind()),
                    Err(_) => break 'run Ending::Stalled,
                }
            }
            if window.is_empty() && sender.finished(now) {
                break 'run Ending::Done;
            }
            let oldest = window.front().map(|sent| sent.sent_at + shared.timeout);
            let room = window.len() < shared.pipeline;
            tokio::select! {
                biased;
                received = socket.io(Interest::READABLE, |fd| inbox.receive(fd)) => match received {
                    Ok(_) => {
                        let now = Instant::now();
                        for packet in inbox.datagrams() {
                            if packet.data.is_empty() && P::EMPTY_IS_END {
                                break 'run Ending::Failed(io::ErrorKind::UnexpectedEof);
                            }
                            take_reply(shared, conn, &mut window, packet.data, now);
                        }
                    }
                    Err(error) => break 'run Ending::Failed(error.kind()),
                },
                ticked = sender.tick(), if room && sender.waits_for_time() => {
                    if let Err(error) = ticked {
                        break 'run Ending::Failed(error.kind());
                    }
                }
                () = &mut expiry, if oldest.is_some() => {
                    let now = Instant::now();
                    let before = window.len();
                    while window.front().is_some_and(|sent| sent.sent_at + shared.timeout <= now) {
                        window.pop_front();
                    }
                    shared.missing(before - window.len());
                    if let Some(sent) = window.front() {
                        expiry.as_mut().reset(sent.sent_at + shared.timeout);
                    }
                }
            }
        }
    };
    (ending, window.len())
}

/// Checks `reply` against the request in `window` whose id it carries.
fn take_reply(shared: &Shared, conn: u32, window: &mut VecDeque<Sent>, reply: &[u8], now: Instant) {
    let messages = &shared.messages;
    let owed = messages
        .reply_id(reply)
        .filter(|id| id.conn() == conn)
        .and_then(|id| window.iter().position(|sent| Id::new(conn, sent.seq) == id));
    match owed {
        Some(at) => {
            let sent = window.remove(at).expect("the position is in the window");
            let right = messages.is_reply(reply, Id::new(conn, sent.seq));
            shared.answered(&sent, right, reply.len(), now);
        }
        // For no request in flight: corrupt, another's, a duplicate, or too late.
        None => shared.unexpected(),
    }
}
