//! The datagram loop: one receive loop per datagram socket (UDP or Unix
//! datagram), one reply datagram per datagram received.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::{UdpSocket, UnixDatagram};
use tracing::{debug, warn};

use crate::endpoint::UnixAddr;
use crate::framing::Framed;
use crate::net::{udp, unix_datagram};
use crate::service::{Replies, Service};
use crate::{Endpoint, Escaped, Peer};

/// A bound datagram socket of either family.
#[derive(Debug)]
pub(crate) enum DatagramSocket {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

impl DatagramSocket {
    /// Receives one datagram and who sent it.
    pub(crate) async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Peer)> {
        match self {
            DatagramSocket::Udp(socket) => {
                let (len, from) = socket.recv_from(buf).await?;
                Ok((len, Peer::from(from)))
            }
            DatagramSocket::Unix(socket) => {
                let (len, from) = socket.recv_from(buf).await?;
                let addr = match (from.as_pathname(), from.as_abstract_name()) {
                    (Some(path), _) => Some(UnixAddr::Path(path.to_owned())),
                    (None, Some(name)) => Some(UnixAddr::Abstract(name.to_vec())),
                    (None, None) => None,
                };
                Ok((len, Peer::Unix { addr, cred: None }))
            }
        }
    }

    /// Sends one datagram back to `peer`.
    pub(crate) async fn send_to(&self, reply: &[u8], peer: &Peer) -> io::Result<()> {
        match (self, peer) {
            (DatagramSocket::Udp(socket), Peer::Ip(addr)) => socket.send_to(reply, addr).await.map(drop),
            (DatagramSocket::Unix(socket), Peer::Unix { addr: Some(addr), .. }) => {
                unix_datagram::send_to(socket, reply, addr).await.map(drop)
            }
            (DatagramSocket::Unix(_), Peer::Unix { addr: None, .. }) => Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "the sender has no address to reply to (it did not bind its socket)",
            )),
            _ => unreachable!("a socket only hears peers of its own family"),
        }
    }

    /// The largest reply that fits in one datagram to `peer`.
    fn max_payload(&self, peer: &Peer) -> usize {
        match peer {
            Peer::Ip(addr) => udp::max_payload(*addr),
            // Bounded by the send buffer, not by a header: a reply too large
            // for it fails to send (EMSGSIZE), and that is logged.
            _ => usize::MAX,
        }
    }
}

/// Receives datagrams on `socket` and answers each until `shutdown` completes.
/// A datagram longer than `max_message` is dropped, logged and counted.
pub(crate) async fn serve<S: Service>(
    socket: DatagramSocket,
    local: &Endpoint,
    service: &S,
    max_message: usize,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    // At least any UDP payload, and one byte more than a message may have, so
    // a datagram too long (cut short by the kernel to fit) is seen as such.
    let mut input = vec![0; max_message.saturating_add(1).max(1 << 16)];
    let mut output = BytesMut::with_capacity(1 << 16);
    let mut oversized: u64 = 0;
    let mut too_long: u64 = 0;
    loop {
        let (len, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            received = socket.recv_from(&mut input) => match received {
                Ok(received) => received,
                Err(error) => {
                    receive_failed(local, &error).await;
                    continue;
                }
            },
        };
        if len > max_message {
            too_long += 1;
            warn!(%peer, limit = max_message, datagrams_dropped = too_long, "datagram too long; dropped");
            continue;
        }
        let datagram = &input[..len];
        debug!(%peer, data = %Escaped(datagram), "received");
        output.clear();
        let mut replies = Replies::new(&mut output, Framed::Raw, &peer);
        service.datagram(datagram, &mut replies);
        if replies.sent() == 0 {
            continue;
        }
        if output.len() > socket.max_payload(&peer) {
            oversized += 1;
            warn!(
                %peer,
                reply_bytes = output.len(),
                replies_not_sent = oversized,
                "the reply would not fit in one datagram; not sent"
            );
            continue;
        }
        if let Err(error) = socket.send_to(&output, &peer).await {
            warn!(%peer, %error, "could not send the reply");
        }
    }
}

/// Logs a failed receive; waits a moment on errors that may repeat, so the
/// loop never spins.
pub(crate) async fn receive_failed(local: &Endpoint, error: &io::Error) {
    match error.kind() {
        // An earlier reply's ICMP error, reported late: only that peer is gone.
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => {
            debug!(listener = %local, %error, "an earlier reply was refused");
        }
        _ => {
            warn!(listener = %local, %error, "receive failed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
