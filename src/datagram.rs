//! The datagram loop: one receive loop per datagram socket, one reply
//! datagram per datagram received.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::UdpSocket;
use tracing::{debug, warn};

use crate::framing::Framed;
use crate::net::udp;
use crate::service::{Replies, Service};
use crate::{Endpoint, Escaped, Peer};

/// Receives datagrams on `socket` and answers each until `shutdown` completes.
pub(crate) async fn serve<S: Service>(
    socket: UdpSocket,
    local: &Endpoint,
    service: &S,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    // Big enough for any UDP payload, so nothing is cut short.
    let mut input = vec![0; 1 << 16];
    let mut output = BytesMut::with_capacity(1 << 16);
    let mut oversized: u64 = 0;
    loop {
        let (len, from) = tokio::select! {
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
        let peer = Peer::from(from);
        let datagram = &input[..len];
        debug!(%peer, data = %Escaped(datagram), "received");
        output.clear();
        let mut replies = Replies::new(&mut output, Framed::Raw, &peer);
        service.datagram(datagram, &mut replies);
        if replies.sent() == 0 {
            continue;
        }
        if output.len() > udp::max_payload(from) {
            oversized += 1;
            warn!(
                %peer,
                reply_bytes = output.len(),
                replies_not_sent = oversized,
                "the reply would not fit in one datagram; not sent"
            );
            continue;
        }
        if let Err(error) = socket.send_to(&output, from).await {
            warn!(%peer, %error, "could not send the reply");
        }
    }
}

/// Logs a failed receive; waits a moment on errors that may repeat, so the
/// loop never spins.
async fn receive_failed(local: &Endpoint, error: &io::Error) {
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
