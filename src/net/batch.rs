//! Batched datagram I/O: many datagrams per system call with `recvmmsg` and
//! `sendmmsg`, for UDP and Unix datagram sockets alike, and for UDP many
//! datagrams per kernel buffer with GRO and GSO where the kernel has them.
//!
//! One `recvmmsg` fills an [`Inbox`] with up to its capacity of datagrams,
//! each in a slot of its own with its sender's address; with UDP GRO on, a
//! slot may hold a run of equal-sized datagrams from one sender, which the
//! inbox hands out one by one. The replies are gathered back to back in an
//! [`Outbox`] and leave in one `sendmmsg` (or a few, when the send buffer
//! fills); with GSO, consecutive equal-sized replies to one peer leave as
//! one buffer that the kernel cuts into datagrams. At one datagram per call
//! the same code uses `recvmsg` and `sendto`; that is also the fallback where
//! the kernel lacks the batched calls.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use nix::errno::Errno;
use nix::sys::socket::UnixAddr as SockaddrUnix;
use nix::sys::socket::{
    self as sys, ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, RecvMsg, SockaddrLike,
    SockaddrStorage,
};

use crate::Peer;
use crate::endpoint::UnixAddr;
use crate::limit::IpSource;

/// Whether the kernel refused the batched calls once: from then on every
/// socket uses one call per datagram.
static UNBATCHED: AtomicBool = AtomicBool::new(false);

/// At most this many bytes of slots per inbox: the slots are allocated
/// zeroed and untouched, so only the pages datagrams land in are resident.
const INBOX_BYTES: usize = 8 << 20;

/// The most datagrams one GSO buffer carries (the kernel's `UDP_MAX_SEGMENTS`
/// on older kernels), and the most bytes.
const GSO_MAX_SEGMENTS: usize = 64;
const GSO_MAX_BYTES: usize = 60_000;

/// Received datagrams, each in a slot of its own (a run of them, with GRO).
#[derive(Debug)]
pub(crate) struct Inbox<A> {
    slot: usize,
    buffer: Vec<u8>,
    received: Vec<Received<A>>,
    gro: bool,
}

/// What one slot holds.
#[derive(Debug)]
struct Received<A> {
    len: usize,
    truncated: bool,
    from: Option<A>,
    /// With GRO: the size of each datagram in the slot but the last.
    segment: Option<usize>,
}

/// A datagram as the caller sees it.
#[derive(Debug)]
pub(crate) struct Datagram<'a, A> {
    /// Its bytes; cut short to the slot when `truncated`.
    pub(crate) data: &'a [u8],
    /// Whether it was longer than a slot.
    pub(crate) truncated: bool,
    /// Who sent it, in the kernel's form (`None`: no address to reply to).
    pub(crate) from: Option<A>,
}

/// A sender's address in the kernel's form: [`SockaddrStorage`] for IP,
/// nix's `UnixAddr` for Unix sockets (whose length the kernel sets).
pub(crate) trait Address: SockaddrLike + Copy + PartialEq {
    /// Who a rate limit counts together ([`crate::limit`]).
    type Source: Copy + Eq + std::hash::Hash + std::fmt::Debug;
    /// The peer, for services and logs.
    fn peer(&self) -> Peer;
    /// Whether there is an address to reply to (an unbound Unix sender has none).
    fn is_named(&self) -> bool;
    /// The source a rate limit counts this sender under; `None` for a
    /// sender with no address (it gets no reply).
    fn source(&self) -> Option<Self::Source>;
}

impl Address for SockaddrStorage {
    type Source = IpSource;

    fn peer(&self) -> Peer {
        if let Some(v4) = self.as_sockaddr_in() {
            Peer::from(SocketAddr::from(std::net::SocketAddrV4::from(*v4)))
        } else if let Some(v6) = self.as_sockaddr_in6() {
            Peer::from(SocketAddr::from(std::net::SocketAddrV6::from(*v6)))
        } else {
            Peer::Unix {
                addr: None,
                cred: None,
            }
        }
    }

    fn is_named(&self) -> bool {
        self.family().is_some()
    }

    fn source(&self) -> Option<IpSource> {
        if let Some(v4) = self.as_sockaddr_in() {
            Some(IpSource::from(IpAddr::from(v4.ip())))
        } else {
            self.as_sockaddr_in6()
                .map(|v6| IpSource::from(IpAddr::from(v6.ip())))
        }
    }
}

/// A Unix sender is counted by its address (the kernel fills it in, so it
/// cannot be forged).
impl Address for SockaddrUnix {
    type Source = SockaddrUnix;

    fn peer(&self) -> Peer {
        let addr = match (self.path(), self.as_abstract()) {
            (Some(path), _) => Some(UnixAddr::Path(path.to_owned())),
            (None, Some(name)) => Some(UnixAddr::Abstract(name.to_vec())),
            (None, None) => None,
        };
        Peer::Unix { addr, cred: None }
    }

    fn is_named(&self) -> bool {
        // Longer than the family field alone: the kernel reports 0 or 2
        // bytes for an unbound sender, and nix's accessors assume at least 2.
        self.len() as usize > std::mem::size_of::<nix::libc::sa_family_t>()
    }

    fn source(&self) -> Option<SockaddrUnix> {
        self.is_named().then_some(*self)
    }
}

/// A connected socket's: the peer is known, and the kernel is asked for no
/// address.
impl Address for () {
    type Source = ();

    fn peer(&self) -> Peer {
        Peer::Unix {
            addr: None,
            cred: None,
        }
    }

    fn is_named(&self) -> bool {
        false
    }

    fn source(&self) -> Option<()> {
        None
    }
}

impl<A: Address> Inbox<A> {
    /// Room for up to `count` datagrams (fewer when that many slots of
    /// `slot` bytes would pass 8 MiB), each up to `slot` bytes.
    pub(crate) fn new(slot: usize, count: usize) -> Self {
        let slot = slot.max(1);
        let count = count.clamp(1, (INBOX_BYTES / slot).max(1));
        Inbox {
            slot,
            buffer: vec![0; slot * count],
            received: Vec::with_capacity(count),
            gro: false,
        }
    }

    /// For a UDP socket with GRO on ([`super::udp::enable_gro`]): slots may
    /// hold runs of datagrams. Slots grow to the largest GRO buffer.
    pub(crate) fn with_gro(slot: usize, count: usize) -> Self {
        Inbox {
            gro: true,
            ..Inbox::new(slot.max(1 << 16), count)
        }
    }

    /// How many slots one receive can fill.
    pub(crate) fn capacity(&self) -> usize {
        self.buffer.len() / self.slot
    }

    /// Receives what is queued on `fd`, up to the capacity, without waiting:
    /// `WouldBlock` when nothing is. Returns how many slots were filled.
    pub(crate) fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        self.received.clear();
        if self.capacity() == 1 || UNBATCHED.load(Ordering::Relaxed) {
            return self.receive_one(fd);
        }
        let control = self.gro.then(|| nix::cmsg_space!(i32));
        let mut headers = MultiHeaders::<A>::preallocate(self.capacity(), control);
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buffer
            .chunks_mut(self.slot)
            .map(|slot| [IoSliceMut::new(slot)])
            .collect();
        match sys::recvmmsg(fd, &mut headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None) {
            Ok(results) => {
                self.received.extend(results.map(|message| received(&message)));
                Ok(self.received.len())
            }
            Err(Errno::ENOSYS | Errno::EOPNOTSUPP) => {
                UNBATCHED.store(true, Ordering::Relaxed);
                tracing::debug!("recvmmsg is not available; receiving one datagram per call");
                self.receive_one(fd)
            }
            Err(errno) => Err(errno.into()),
        }
    }

    fn receive_one(&mut self, fd: RawFd) -> io::Result<usize> {
        let mut control = self.gro.then(|| nix::cmsg_space!(i32));
        let mut slice = [IoSliceMut::new(&mut self.buffer[..self.slot])];
        let message = sys::recvmsg::<A>(fd, &mut slice, control.as_deref_mut(), MsgFlags::MSG_DONTWAIT)?;
        self.received.push(received(&message));
        Ok(1)
    }

    /// The datagrams the last [`receive`](Self::receive) brought, in order.
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = Datagram<'_, A>> {
        self.received
            .iter()
            .zip(self.buffer.chunks(self.slot))
            .flat_map(|(received, slot)| {
                let data = &slot[..received.len.min(slot.len())];
                // An empty datagram is one datagram, not none.
                let size = received.segment.unwrap_or(data.len()).max(1);
                let runs = data.chunks(size).chain(data.is_empty().then_some(data));
                runs.map(|data| Datagram {
                    data,
                    truncated: received.truncated,
                    from: received.from,
                })
            })
    }
}

/// What the kernel said of one received message.
fn received<A: Address>(message: &RecvMsg<'_, '_, A>) -> Received<A> {
    let segment = message.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|cmsg| match cmsg {
            ControlMessageOwned::UdpGroSegments(size) => usize::try_from(size).ok().filter(|&size| size > 0),
            _ => None,
        })
    });
    Received {
        len: message.bytes,
        truncated: message.flags.contains(MsgFlags::MSG_TRUNC),
        from: message.address.filter(A::is_named),
        segment,
    }
}

/// Replies waiting to be sent, back to back, each with its destination.
#[derive(Debug)]
pub(crate) struct Outbox<A> {
    bytes: BytesMut,
    replies: Vec<(Range<usize>, A)>,
    /// What leaves: a reply each, or with GSO runs of equal-sized replies to
    /// one peer; made from `replies` at the first send.
    messages: Vec<(Range<usize>, A)>,
    /// The segment size of every message, when GSO cuts them.
    segment: Option<u16>,
    sent: usize,
    gso: bool,
}

impl<A: Address> Outbox<A> {
    /// An empty outbox with room for `capacity` reply bytes before it grows.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Outbox {
            bytes: BytesMut::with_capacity(capacity),
            replies: Vec::new(),
            messages: Vec::new(),
            segment: None,
            sent: 0,
            gso: false,
        }
    }

    /// For a UDP socket: send runs of equal-sized replies to one peer as one
    /// GSO buffer, until the kernel refuses it.
    pub(crate) fn with_gso(mut self) -> Self {
        self.gso = true;
        self
    }

    /// Where the next reply is written.
    pub(crate) fn buffer(&mut self) -> &mut BytesMut {
        &mut self.bytes
    }

    /// Makes the bytes written to [`buffer`](Self::buffer) since `start` one
    /// datagram to `to`.
    pub(crate) fn seal(&mut self, start: usize, to: A) {
        self.replies.push((start..self.bytes.len(), to));
    }

    /// How many replies are sealed and not yet sent.
    pub(crate) fn queued(&self) -> usize {
        self.replies.len()
    }

    /// Whether everything has been sent (or given up on).
    pub(crate) fn is_empty(&self) -> bool {
        self.sent == self.messages.len() && self.replies.is_empty()
    }

    /// Empties the outbox for the next batch.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.replies.clear();
        self.messages.clear();
        self.sent = 0;
    }

    /// The destination of the next message to send.
    pub(crate) fn next_destination(&self) -> Option<&A> {
        self.messages
            .get(self.sent)
            .or(self.replies.first())
            .map(|(_, to)| to)
    }

    /// Gives up on the next message (its send failed).
    pub(crate) fn skip(&mut self) {
        self.seal_messages();
        self.sent = (self.sent + 1).min(self.messages.len());
    }

    /// Turns the sealed replies into the messages that leave: with GSO, when
    /// every reply has one size, runs of them to one peer become one message.
    fn seal_messages(&mut self) {
        if self.replies.is_empty() {
            return;
        }
        let size = self.replies[0].0.len();
        let same_size = self.replies.iter().all(|(range, _)| range.len() == size);
        self.segment = None;
        if self.gso && same_size && size > 0 && self.replies.len() > 1 {
            let per_message = GSO_MAX_SEGMENTS.min(GSO_MAX_BYTES / size).max(1);
            for (range, to) in self.replies.drain(..) {
                match self.messages.last_mut() {
                    Some((run, run_to))
                        if *run_to == to && run.end == range.start && run.len() < per_message * size =>
                    {
                        run.end = range.end;
                    }
                    _ => self.messages.push((range, to)),
                }
            }
            if self.messages.iter().any(|(run, _)| run.len() > size) {
                self.segment = u16::try_from(size).ok();
            }
        } else {
            self.messages.append(&mut self.replies);
        }
    }

    /// Sends as many of the waiting messages as the socket takes now,
    /// without waiting: `WouldBlock` when it takes none. An error belongs to
    /// the next message ([`next_destination`](Self::next_destination)); the
    /// caller decides whether to [`skip`](Self::skip) it.
    pub(crate) fn send(&mut self, fd: RawFd) -> io::Result<usize> {
        self.seal_messages();
        match self.send_messages(fd) {
            Err(error) if self.segment.is_some() && gso_refused(&error) => {
                // Sent whole or not at all: cut the rest into single replies.
                tracing::debug!(%error, "UDP GSO refused; sending one datagram per reply");
                self.gso = false;
                let size = usize::from(self.segment.take().unwrap_or(1));
                let rest: Vec<_> = self
                    .messages
                    .drain(self.sent..)
                    .flat_map(|(run, to)| split(run, size, to))
                    .collect();
                self.messages.extend(rest);
                self.send_messages(fd)
            }
            result => result,
        }
    }

    fn send_messages(&mut self, fd: RawFd) -> io::Result<usize> {
        let waiting = &self.messages[self.sent..];
        let segment = self.segment;
        let control: Vec<ControlMessage<'_>> = segment
            .as_ref()
            .map(ControlMessage::UdpGsoSegments)
            .into_iter()
            .collect();
        if waiting.len() == 1 || UNBATCHED.load(Ordering::Relaxed) {
            let (range, to) = &waiting[0];
            let slice = [IoSlice::new(&self.bytes[range.clone()])];
            sys::sendmsg(fd, &slice, &control, MsgFlags::MSG_DONTWAIT, Some(to))?;
            self.sent += 1;
            return Ok(1);
        }
        let slices: Vec<[IoSlice<'_>; 1]> = waiting
            .iter()
            .map(|(range, _)| [IoSlice::new(&self.bytes[range.clone()])])
            .collect();
        let destinations: Vec<Option<A>> = waiting.iter().map(|(_, to)| Some(*to)).collect();
        let space = control.iter().map(|_| nix::cmsg_space!(u16)).next();
        let mut headers = MultiHeaders::<A>::preallocate(waiting.len(), space);
        let sent = sys::sendmmsg(
            fd,
            &mut headers,
            &slices,
            &destinations,
            &control,
            MsgFlags::MSG_DONTWAIT,
        )?
        .count();
        self.sent += sent;
        Ok(sent)
    }
}

/// `run` cut back into replies of `size` bytes, all to `to`.
fn split<A: Copy>(run: Range<usize>, size: usize, to: A) -> impl Iterator<Item = (Range<usize>, A)> {
    let end = run.end;
    run.step_by(size.max(1))
        .map(move |start| (start..(start + size).min(end), to))
}

/// Whether a send failed because the kernel or the route does not take GSO.
fn gso_refused(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error().map(Errno::from_raw),
        Some(Errno::EINVAL | Errno::EIO | Errno::ENOPROTOOPT | Errno::EOPNOTSUPP)
    )
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixDatagram;

    use super::*;

    fn udp_pair() -> (UdpSocket, UdpSocket, UdpSocket) {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        (server, a, b)
    }

    /// Receives what `fd` has queued and echoes each datagram to its sender
    /// with `>` in front, the way the datagram loop uses an inbox and outbox.
    fn echo_all<A: Address>(fd: RawFd, inbox: &mut Inbox<A>) -> Vec<(Vec<u8>, Peer)> {
        let mut seen = Vec::new();
        let mut outbox = Outbox::<A>::with_capacity(64);
        while let Ok(count) = inbox.receive(fd) {
            assert!(count >= 1 && count <= inbox.capacity());
            for datagram in inbox.datagrams() {
                let from = datagram.from.expect("a named sender");
                seen.push((datagram.data.to_vec(), from.peer()));
                let start = outbox.buffer().len();
                outbox.buffer().extend_from_slice(b">");
                outbox.buffer().extend_from_slice(datagram.data);
                outbox.seal(start, from);
            }
        }
        while !outbox.is_empty() {
            outbox.send(fd).unwrap();
        }
        seen
    }

    #[test]
    fn one_receive_brings_every_queued_datagram_with_its_sender() {
        let (server, a, b) = udp_pair();
        let to = server.local_addr().unwrap();
        for datagram in [&b"a1"[..], b"b1", b"a2", b"", b"b2"] {
            let sender = if datagram.starts_with(b"b") { &b } else { &a };
            sender.send_to(datagram, to).unwrap();
        }
        let mut inbox = Inbox::<SockaddrStorage>::new(16, 64);
        assert_eq!(inbox.receive(server.as_raw_fd()).unwrap(), 5);
        let got: Vec<(Vec<u8>, Peer)> = inbox
            .datagrams()
            .map(|d| (d.data.to_vec(), d.from.unwrap().peer()))
            .collect();
        let (pa, pb) = (
            Peer::from(a.local_addr().unwrap()),
            Peer::from(b.local_addr().unwrap()),
        );
        assert_eq!(
            got,
            vec![
                (b"a1".to_vec(), pa.clone()),
                (b"b1".to_vec(), pb.clone()),
                (b"a2".to_vec(), pa.clone()),
                (b"".to_vec(), pa),
                (b"b2".to_vec(), pb),
            ]
        );
        let error = inbox.receive(server.as_raw_fd()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn replies_reach_each_sender_in_order_batched_or_one_at_a_time() {
        for capacity in [64, 3, 1] {
            let (server, a, b) = udp_pair();
            let to = server.local_addr().unwrap();
            for n in 0..10 {
                a.send_to(format!("a{n}").as_bytes(), to).unwrap();
                b.send_to(format!("b{n}").as_bytes(), to).unwrap();
            }
            let mut inbox = Inbox::<SockaddrStorage>::new(16, capacity);
            assert_eq!(echo_all(server.as_raw_fd(), &mut inbox).len(), 20);
            let mut buf = [0; 16];
            for (client, name) in [(&a, "a"), (&b, "b")] {
                for n in 0..10 {
                    let (len, from) = client.recv_from(&mut buf).unwrap();
                    assert_eq!((&buf[..len], from), (format!(">{name}{n}").as_bytes(), to));
                }
            }
        }
    }

    #[test]
    fn a_datagram_longer_than_its_slot_is_marked_truncated() {
        for capacity in [8, 1] {
            let (server, a, _) = udp_pair();
            a.send_to(b"123456", server.local_addr().unwrap()).unwrap();
            a.send_to(b"12345", server.local_addr().unwrap()).unwrap();
            let mut inbox = Inbox::<SockaddrStorage>::new(5, capacity);
            let mut seen = Vec::new();
            while inbox.receive(server.as_raw_fd()).is_ok() {
                seen.extend(inbox.datagrams().map(|d| (d.data.to_vec(), d.truncated)));
            }
            assert_eq!(seen, vec![(b"12345".to_vec(), true), (b"12345".to_vec(), false)]);
        }
    }

    #[test]
    fn unix_senders_named_abstract_and_unbound() {
        let dir = std::env::temp_dir().join(format!("sockit-batch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let server_path = dir.join("server.sock");
        let _ = std::fs::remove_file(&server_path);
        let server = UnixDatagram::bind(&server_path).unwrap();
        server.set_nonblocking(true).unwrap();
        let named_path = dir.join("named.sock");
        let _ = std::fs::remove_file(&named_path);
        let named = UnixDatagram::bind(&named_path).unwrap();
        let name = format!("sockit-batch-test-{}", std::process::id());
        let abstract_addr =
            <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
                name.as_bytes(),
            )
            .unwrap();
        let abstract_socket = UnixDatagram::bind_addr(&abstract_addr).unwrap();
        let unbound = UnixDatagram::unbound().unwrap();
        let unix = |addr| {
            Some(Peer::Unix {
                addr: Some(addr),
                cred: None,
            })
        };
        for capacity in [64, 1] {
            named.send_to(b"n", &server_path).unwrap();
            abstract_socket.send_to(b"s", &server_path).unwrap();
            unbound.send_to(b"u", &server_path).unwrap();
            let mut inbox = Inbox::<SockaddrUnix>::new(16, capacity);
            let mut seen = Vec::new();
            while inbox.receive(server.as_raw_fd()).is_ok() {
                seen.extend(
                    inbox
                        .datagrams()
                        .map(|d| (d.data.to_vec(), d.from.map(|from| from.peer()))),
                );
            }
            assert_eq!(
                seen,
                vec![
                    (b"n".to_vec(), unix(UnixAddr::Path(named_path.clone()))),
                    (b"s".to_vec(), unix(UnixAddr::Abstract(name.as_bytes().to_vec()))),
                    (b"u".to_vec(), None),
                ]
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Sends `replies` (destination index, bytes) through an outbox, with
    /// GSO or without, from `from`.
    fn send_through_outbox(from: &UdpSocket, to: &[SocketAddr], replies: &[(usize, &[u8])], gso: bool) {
        let mut outbox = Outbox::<SockaddrStorage>::with_capacity(64);
        if gso {
            outbox = outbox.with_gso();
        }
        for &(dest, bytes) in replies {
            let start = outbox.buffer().len();
            outbox.buffer().extend_from_slice(bytes);
            outbox.seal(start, SockaddrStorage::from(to[dest]));
        }
        while !outbox.is_empty() {
            outbox.send(from.as_raw_fd()).unwrap();
        }
    }

    fn drain(socket: &UdpSocket) -> Vec<Vec<u8>> {
        socket.set_nonblocking(true).unwrap();
        let mut buf = [0; 1 << 16];
        std::iter::from_fn(|| socket.recv(&mut buf).ok().map(|len| buf[..len].to_vec())).collect()
    }

    #[test]
    fn gso_runs_arrive_as_separate_datagrams_in_order() {
        let (server, a, b) = udp_pair();
        let to = [a.local_addr().unwrap(), b.local_addr().unwrap()];
        let same: Vec<(usize, Vec<u8>)> = (0..150)
            .map(|n| (n % 3 / 2, format!("reply{n:03}").into_bytes()))
            .collect();
        let same: Vec<(usize, &[u8])> = same.iter().map(|(d, v)| (*d, &v[..])).collect();
        let mixed: [(usize, &[u8]); 4] = [(0, b"x"), (0, b"yy"), (1, b""), (0, b"zzz")];
        for replies in [&same[..], &mixed[..]] {
            for gso in [true, false] {
                send_through_outbox(&server, &to, replies, gso);
                for (dest, client) in [&a, &b].into_iter().enumerate() {
                    let want: Vec<Vec<u8>> = replies
                        .iter()
                        .filter(|(d, _)| *d == dest)
                        .map(|(_, r)| r.to_vec())
                        .collect();
                    assert_eq!(drain(client), want, "gso {gso}, client {dest}");
                }
            }
        }
    }

    #[test]
    fn with_gro_a_run_from_one_sender_is_handed_out_datagram_by_datagram() {
        let (server, a, b) = udp_pair();
        assert!(super::super::udp::enable_gro(&server), "this kernel has UDP GRO");
        let to = [server.local_addr().unwrap()];
        let run: Vec<Vec<u8>> = (0..40).map(|n| format!("request{n:02}").into_bytes()).collect();
        let replies: Vec<(usize, &[u8])> = run.iter().map(|r| (0, &r[..])).collect();
        for capacity in [64, 1] {
            send_through_outbox(&a, &to, &replies, true);
            b.send_to(b"", to[0]).unwrap();
            let mut inbox = Inbox::<SockaddrStorage>::with_gro(16, capacity);
            let mut seen = Vec::new();
            let mut receives = 0;
            while inbox.receive(server.as_raw_fd()).is_ok() {
                receives += 1;
                seen.extend(
                    inbox
                        .datagrams()
                        .map(|d| (d.data.to_vec(), d.from.unwrap().peer())),
                );
            }
            let from_a = Peer::from(a.local_addr().unwrap());
            let mut want: Vec<(Vec<u8>, Peer)> = run.iter().map(|r| (r.clone(), from_a.clone())).collect();
            want.push((Vec::new(), Peer::from(b.local_addr().unwrap())));
            assert_eq!(seen, want, "capacity {capacity}");
            // The run of 40 came in one buffer; the empty datagram in another.
            assert_eq!(receives, if capacity == 1 { 2 } else { 1 }, "capacity {capacity}");
        }
    }
}
