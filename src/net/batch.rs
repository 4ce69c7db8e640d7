//! Batched datagram I/O: many datagrams per system call with `recvmmsg` and
//! `sendmmsg`, for UDP and Unix datagram sockets alike.
//!
//! One `recvmmsg` fills an [`Inbox`] with up to its capacity of datagrams,
//! each in a slot of its own with its sender's address; the replies are
//! gathered back to back in an [`Outbox`] and leave in one `sendmmsg` (or a
//! few, when the send buffer fills). At one datagram per call the same code
//! uses `recvfrom` and `sendto`; that is also the fallback where the kernel
//! lacks the batched calls.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use nix::errno::Errno;
use nix::sys::socket::UnixAddr as SockaddrUnix;
use nix::sys::socket::{self as sys, ControlMessage, MsgFlags, MultiHeaders, SockaddrLike, SockaddrStorage};

use crate::Peer;
use crate::endpoint::UnixAddr;

/// Whether the kernel refused the batched calls once: from then on every
/// socket uses one call per datagram.
static UNBATCHED: AtomicBool = AtomicBool::new(false);

/// At most this many bytes of slots per inbox: the slots are allocated
/// zeroed and untouched, so only the pages datagrams land in are resident.
const INBOX_BYTES: usize = 8 << 20;

/// Received datagrams, each in a slot of its own.
#[derive(Debug)]
pub(crate) struct Inbox<A> {
    slot: usize,
    buffer: Vec<u8>,
    received: Vec<Received<A>>,
}

/// One datagram in an [`Inbox`].
#[derive(Debug)]
struct Received<A> {
    len: usize,
    truncated: bool,
    from: Option<A>,
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
pub(crate) trait Address: SockaddrLike + Copy {
    /// The peer, for services and logs.
    fn peer(&self) -> Peer;
    /// Whether there is an address to reply to (an unbound Unix sender has none).
    fn is_named(&self) -> bool;
}

impl Address for SockaddrStorage {
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
}

impl Address for SockaddrUnix {
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
}

/// A connected socket's: the peer is known, and the kernel is asked for no
/// address.
impl Address for () {
    fn peer(&self) -> Peer {
        Peer::Unix {
            addr: None,
            cred: None,
        }
    }

    fn is_named(&self) -> bool {
        false
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
        }
    }

    /// How many datagrams one receive can bring.
    pub(crate) fn capacity(&self) -> usize {
        self.buffer.len() / self.slot
    }

    /// Receives what is queued on `fd`, up to the capacity, without waiting:
    /// `WouldBlock` when nothing is. Returns how many datagrams came.
    pub(crate) fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        self.received.clear();
        if self.capacity() == 1 || UNBATCHED.load(Ordering::Relaxed) {
            return self.receive_one(fd);
        }
        let mut headers = MultiHeaders::<A>::preallocate(self.capacity(), None);
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buffer
            .chunks_mut(self.slot)
            .map(|slot| [IoSliceMut::new(slot)])
            .collect();
        match sys::recvmmsg(fd, &mut headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None) {
            Ok(results) => {
                self.received.extend(results.map(|message| Received {
                    len: message.bytes,
                    truncated: message.flags.contains(MsgFlags::MSG_TRUNC),
                    from: message.address.filter(A::is_named),
                }));
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
        let mut slice = [IoSliceMut::new(&mut self.buffer[..self.slot])];
        let message = sys::recvmsg::<A>(fd, &mut slice, None, MsgFlags::MSG_DONTWAIT)?;
        self.received.push(Received {
            len: message.bytes,
            truncated: message.flags.contains(MsgFlags::MSG_TRUNC),
            from: message.address.filter(A::is_named),
        });
        Ok(1)
    }

    /// The datagrams the last [`receive`](Self::receive) brought, in order.
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = Datagram<'_, A>> {
        self.received
            .iter()
            .zip(self.buffer.chunks(self.slot))
            .map(|(received, slot)| Datagram {
                data: &slot[..received.len.min(slot.len())],
                truncated: received.truncated,
                from: received.from,
            })
    }
}

/// Replies waiting to be sent, back to back, each with its destination.
#[derive(Debug)]
pub(crate) struct Outbox<A> {
    bytes: BytesMut,
    replies: Vec<(Range<usize>, A)>,
    sent: usize,
}

impl<A: Address> Outbox<A> {
    /// An empty outbox with room for `capacity` reply bytes before it grows.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Outbox {
            bytes: BytesMut::with_capacity(capacity),
            replies: Vec::new(),
            sent: 0,
        }
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

    /// Whether every reply has been sent (or given up on).
    pub(crate) fn is_empty(&self) -> bool {
        self.sent == self.replies.len()
    }

    /// Empties the outbox for the next batch.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.replies.clear();
        self.sent = 0;
    }

    /// The destination of the next reply to send.
    pub(crate) fn next_destination(&self) -> Option<&A> {
        self.replies.get(self.sent).map(|(_, to)| to)
    }

    /// Gives up on the next reply (its send failed).
    pub(crate) fn skip(&mut self) {
        self.sent = (self.sent + 1).min(self.replies.len());
    }

    /// Sends as many of the waiting replies as the socket takes now, without
    /// waiting: `WouldBlock` when it takes none. An error belongs to the next
    /// reply ([`next_destination`](Self::next_destination)); the caller
    /// decides whether to [`skip`](Self::skip) it.
    pub(crate) fn send(&mut self, fd: RawFd) -> io::Result<usize> {
        let waiting = &self.replies[self.sent..];
        if waiting.len() == 1 || UNBATCHED.load(Ordering::Relaxed) {
            let (range, to) = &waiting[0];
            sys::sendto(fd, &self.bytes[range.clone()], to, MsgFlags::MSG_DONTWAIT)?;
            self.sent += 1;
            return Ok(1);
        }
        let slices: Vec<[IoSlice<'_>; 1]> = waiting
            .iter()
            .map(|(range, _)| [IoSlice::new(&self.bytes[range.clone()])])
            .collect();
        let destinations: Vec<Option<A>> = waiting.iter().map(|(_, to)| Some(*to)).collect();
        let mut headers = MultiHeaders::<A>::preallocate(waiting.len(), None);
        let no_control: [ControlMessage<'_>; 0] = [];
        let sent = sys::sendmmsg(
            fd,
            &mut headers,
            &slices,
            &destinations,
            no_control,
            MsgFlags::MSG_DONTWAIT,
        )?
        .count();
        self.sent += sent;
        Ok(sent)
    }
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
}
