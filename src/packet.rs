//! One seqpacket connection: every packet is one message, and every reply
//! is sent as a packet of its own. No framing is needed.

use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use tokio_seqpacket::UnixSeqpacket;
use tracing::{debug, info, warn};

use crate::connection::{LINGER, Stop};
use crate::framing::FrameError;
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
        info!(%peer, %error, "connection failed");
    }
    close_gracefully(&socket, &stop).await;
    info!("Connection from {peer} closed.");
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
    service.greeting(&mut Replies::packets(&mut output, peer, &mut ends));
    stop.or_abort(send_each(socket, &mut output, &mut ends)).await?;
    // One byte more than a message may have, to see a packet that is too long.
    let mut input = vec![0; max_message + 1];
    loop {
        let received = tokio::select! {
            biased;
            () = stop.finish.cancelled() => return Ok(()),
            received = socket.recv(&mut input) => received?,
        };
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
            stop.or_abort(socket.send(FrameError::REPLY)).await?;
            return Ok(());
        }
        let message = &input[..len];
        debug!(%peer, data = %Escaped(message), "received");
        let flow = service.message(message, &mut Replies::packets(&mut output, peer, &mut ends));
        stop.or_abort(send_each(socket, &mut output, &mut ends)).await?;
        if flow == Flow::Close {
            return Ok(());
        }
    }
}

/// Sends each reply in `output` as one packet, then empties both.
async fn send_each(socket: &UnixSeqpacket, output: &mut BytesMut, ends: &mut Vec<usize>) -> io::Result<()> {
    let mut start = 0;
    for &end in ends.iter() {
        socket.send(&output[start..end]).await?;
        start = end;
    }
    output.clear();
    ends.clear();
    Ok(())
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
