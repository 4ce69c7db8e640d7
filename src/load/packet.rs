//! One packet socket under load (UDP, Unix datagram, seqpacket): a window of
//! requests in flight, one packet each; every reply is matched to its
//! request by the [`Id`] it carries, so lost and reordered datagrams are
//! told apart; a request unanswered for the timeout is missing.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};

use tokio::io::ReadBuf;
use tokio::net::{UdpSocket, UnixDatagram};
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_seqpacket::UnixSeqpacket;

use super::Id;
use super::run::{Ending, Sender, Sent, Shared};

/// A socket that sends and receives whole packets.
pub(super) trait Packets {
    /// Whether receiving no bytes means the peer closed (seqpacket), rather
    /// than an empty datagram.
    const EMPTY_IS_END: bool;

    /// Sends `packet`.
    fn poll_send(&self, cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<usize>>;

    /// Receives one packet into `buf`; returns its length (cut to `buf`'s).
    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
}

impl Packets for UdpSocket {
    const EMPTY_IS_END: bool = false;

    fn poll_send(&self, cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<usize>> {
        UdpSocket::poll_send(self, cx, packet)
    }

    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::new(buf);
        UdpSocket::poll_recv(self, cx, &mut buf).map_ok(|()| buf.filled().len())
    }
}

impl Packets for UnixDatagram {
    const EMPTY_IS_END: bool = false;

    fn poll_send(&self, cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<usize>> {
        UnixDatagram::poll_send(self, cx, packet)
    }

    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::new(buf);
        UnixDatagram::poll_recv(self, cx, &mut buf).map_ok(|()| buf.filled().len())
    }
}

impl Packets for UnixSeqpacket {
    const EMPTY_IS_END: bool = true;

    fn poll_send(&self, cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<usize>> {
        UnixSeqpacket::poll_send(self, cx, packet)
    }

    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        UnixSeqpacket::poll_recv(self, cx, buf).map_ok(|info| info.bytes_read())
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
    let mut request = vec![0; messages.size()];
    // One byte more than the longest packet owed, to see a longer one.
    let longest = messages
        .reply_len()
        .max(messages.greeting().map_or(0, <[u8]>::len));
    let mut reply = vec![0; longest + 1];
    let mut window: VecDeque<Sent> = VecDeque::with_capacity(shared.pipeline);
    let ending = 'run: {
        if let Some(greeting) = messages.greeting() {
            let deadline = Instant::now() + shared.timeout;
            match timeout_at(deadline, recv(socket, &mut reply)).await {
                Err(_) => break 'run Ending::Stalled,
                Ok(Ok(0)) if P::EMPTY_IS_END => break 'run Ending::Failed(io::ErrorKind::UnexpectedEof),
                Ok(Ok(len)) if reply[..len] == *greeting => {}
                Ok(Ok(_)) => shared.unexpected(),
                Ok(Err(error)) => break 'run Ending::Failed(error.kind()),
            }
        }
        // Reset only when it fires: no timer work per message.
        let expiry = sleep_until(Instant::now());
        tokio::pin!(expiry);
        loop {
            let now = Instant::now();
            while window.len() < shared.pipeline {
                let Some(sent) = sender.next(now) else {
                    break;
                };
                messages.write_request(Id::new(conn, sent.seq), &mut request);
                shared.sending(&sent, request.len());
                window.push_back(sent);
                match timeout(shared.timeout, send(socket, &request)).await {
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
                received = recv(socket, &mut reply) => match received {
                    Ok(0) if P::EMPTY_IS_END => break 'run Ending::Failed(io::ErrorKind::UnexpectedEof),
                    Ok(len) => take_reply(shared, conn, &mut window, &reply[..len], Instant::now()),
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

/// Sends one packet.
///
/// # Cancel safety
///
/// Cancel safe: the packet is sent whole or not at all.
async fn send<P: Packets>(socket: &P, packet: &[u8]) -> io::Result<usize> {
    poll_fn(|cx| socket.poll_send(cx, packet)).await
}

/// Receives one packet.
///
/// # Cancel safety
///
/// Cancel safe.
async fn recv<P: Packets>(socket: &P, buf: &mut [u8]) -> io::Result<usize> {
    poll_fn(|cx| socket.poll_recv(cx, buf)).await
}
