//! One stream connection: read, cut messages, answer them all with one write,
//! and close cleanly.
//!
//! The connection owns its input buffer, so stopping a read (shutdown) never
//! loses half a message, and it writes every reply a read produced before it
//! reads again.

use std::io;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::framing::{Decoder, FrameError};
use crate::service::{Flow, Replies, Service};
use crate::{Escaped, Framing, Peer};

/// How long a closing connection keeps reading (and dropping) what the peer
/// still sends, so the kernel does not answer unread bytes with a reset that
/// would destroy replies already written.
const LINGER: Duration = Duration::from_secs(2);

/// Why a conversation ended.
#[derive(Debug)]
enum Ending {
    /// The peer closed its side; every reply owed has been written.
    PeerClosed,
    /// The service asked to close (the greet service's `exit`).
    Finished,
    /// The server is shutting down.
    Shutdown,
    /// The peer sent something that is not a message; the error reply is written.
    Refused(FrameError),
}

/// What a stream connection is served with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub framing: Framing,
    pub max_message: usize,
}

/// Serves one connection until it ends, then closes it; logs but never fails.
pub(crate) async fn serve<S, IO>(
    mut io: IO,
    peer: Peer,
    service: &S,
    settings: Settings,
    finish: CancellationToken,
) where
    S: Service,
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut input = BytesMut::new();
    match converse(&mut io, &peer, service, settings, &finish, &mut input).await {
        Ok(Ending::PeerClosed) => {
            let _ = io.shutdown().await;
        }
        Ok(Ending::Finished) => close_gracefully(&mut io, &mut input).await,
        Ok(Ending::Shutdown) => {
            debug!(%peer, "closing the connection for shutdown");
            close_gracefully(&mut io, &mut input).await;
        }
        Ok(Ending::Refused(error)) => {
            warn!(%peer, %error, "closing the connection");
            close_gracefully(&mut io, &mut input).await;
        }
        Err(error) => info!(%peer, %error, "connection failed"),
    }
    info!("Connection from {peer} closed.");
}

/// The conversation itself: greeting, then read, answer, write until it ends.
async fn converse<S, IO>(
    io: &mut IO,
    peer: &Peer,
    service: &S,
    settings: Settings,
    finish: &CancellationToken,
    input: &mut BytesMut,
) -> io::Result<Ending>
where
    S: Service,
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut decoder = Decoder::new(settings.framing, settings.max_message);
    let mut output = BytesMut::new();
    service.greeting(&mut Replies::new(&mut output, settings.framing.sending(), peer));
    write_out(io, &mut output).await?;
    let read_size = decoder.read_size();
    loop {
        input.reserve(read_size);
        let mut room = (&mut *input).limit(read_size);
        let read = tokio::select! {
            biased;
            () = finish.cancelled() => return Ok(Ending::Shutdown),
            read = io.read_buf(&mut room) => read?,
        };
        let ending = answer(&mut decoder, input, read == 0, service, &mut output, peer);
        write_out(io, &mut output).await?;
        if let Some(ending) = ending {
            return Ok(ending);
        }
    }
}

/// Answers every whole message in `input`; returns how the conversation
/// ends, if it does. At end of stream a last unterminated line is answered too.
fn answer<S: Service>(
    decoder: &mut Decoder,
    input: &mut BytesMut,
    end_of_stream: bool,
    service: &S,
    output: &mut BytesMut,
    peer: &Peer,
) -> Option<Ending> {
    loop {
        let next = if end_of_stream {
            decoder.decode_eof(input)
        } else {
            decoder.decode(input)
        };
        match next {
            Ok(Some(message)) => {
                debug!(%peer, data = %Escaped(&message.payload), "received");
                let mut replies = Replies::new(output, message.framed, peer);
                if service.message(&message.payload, &mut replies) == Flow::Close {
                    return Some(Ending::Finished);
                }
            }
            Ok(None) => return end_of_stream.then_some(Ending::PeerClosed),
            Err(error) => {
                error.encode_reply(output);
                return Some(Ending::Refused(error));
            }
        }
    }
}

/// Writes everything in `output` and empties it.
async fn write_out<IO: AsyncWrite + Unpin>(io: &mut IO, output: &mut BytesMut) -> io::Result<()> {
    if !output.is_empty() {
        io.write_all(output).await?;
        output.clear();
    }
    Ok(())
}

/// Sends end-of-stream, then reads and drops what the peer still sends until
/// it closes too (or [`LINGER`] passes), so replies already written arrive.
async fn close_gracefully<IO: AsyncRead + AsyncWrite + Unpin>(io: &mut IO, scratch: &mut BytesMut) {
    if io.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        loop {
            scratch.clear();
            scratch.reserve(4096);
            match io.read_buf(scratch).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Greet;
    use tokio::io::duplex;

    async fn conversation(framing: Framing, max: usize, client_sends: &[&[u8]]) -> Vec<u8> {
        let (server_end, mut client_end) = duplex(1 << 16);
        let peer = Peer::Ip("127.0.0.1:9".parse().unwrap());
        let server = tokio::spawn(async move {
            let settings = Settings {
                framing,
                max_message: max,
            };
            serve(server_end, peer, &Greet, settings, CancellationToken::new()).await;
        });
        for chunk in client_sends {
            client_end.write_all(chunk).await.unwrap();
            tokio::task::yield_now().await;
        }
        client_end.shutdown().await.unwrap();
        let mut received = Vec::new();
        client_end.read_to_end(&mut received).await.unwrap();
        server.await.unwrap();
        received
    }

    #[tokio::test]
    async fn answers_lines_then_closes_at_end_of_stream() {
        let got = conversation(Framing::Auto, 1024, &[b"bob\nalice\n"]).await;
        assert_eq!(got, b"Hello, I am serverHello, bob!\nHello, alice!\n");
    }

    #[tokio::test]
    async fn exit_stops_answering_what_follows_it() {
        let got = conversation(Framing::Line, 1024, &[b"a\nexit\nb\n"]).await;
        assert_eq!(got, b"Hello, I am server\nHello, a!\n");
    }

    #[tokio::test]
    async fn a_line_over_the_limit_gets_the_error_reply() {
        let got = conversation(Framing::Line, 4, &[b"ok\n", b"toolong\n", b"never\n"]).await;
        assert_eq!(got, b"Hello, I am server\nHello, ok!\nERR message too long\n");
    }

    #[tokio::test]
    async fn a_len32_frame_over_the_limit_gets_an_error_frame() {
        let got = conversation(Framing::Len32, 4, &[b"\0\0\0\x05hello"]).await;
        assert_eq!(got, b"\0\0\0\x12Hello, I am server\0\0\0\x14ERR message too long");
    }

    #[tokio::test]
    async fn shutdown_stops_reading_and_closes() {
        let (server_end, mut client_end) = duplex(1024);
        let finish = CancellationToken::new();
        let peer = Peer::Ip("127.0.0.1:9".parse().unwrap());
        let settings = Settings {
            framing: Framing::Line,
            max_message: 64,
        };
        let server = tokio::spawn(serve(server_end, peer, &Greet, settings, finish.clone()));
        client_end.write_all(b"one\n").await.unwrap();
        let mut greeting_and_reply = vec![0; b"Hello, I am server\nHello, one!\n".len()];
        client_end.read_exact(&mut greeting_and_reply).await.unwrap();
        assert_eq!(greeting_and_reply, b"Hello, I am server\nHello, one!\n");
        finish.cancel();
        client_end.shutdown().await.unwrap();
        let mut rest = Vec::new();
        client_end.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"");
        server.await.unwrap();
    }
}
