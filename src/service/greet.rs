//! `greet`: the seed's greeting protocol, exactly as PROTOCOL.md defines it.
//!
//! # Examples
//!
//! ```
//! use bytes::BytesMut;
//! use sockit::framing::Framed;
//! use sockit::{Greet, Peer, Replies, Service};
//!
//! let peer = Peer::from("127.0.0.1:5555".parse::<std::net::SocketAddr>()?);
//! let mut out = BytesMut::new();
//! let mut replies = Replies::new(&mut out, Framed::Raw, &peer);
//! Greet.greeting(&mut replies);
//! Greet.message(b"client1", &mut replies);
//! Greet.datagram(b"client2", &mut replies);
//! assert_eq!(&out[..], b"Hello, I am serverHello, client1!Hello, client2");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::{Flow, Replies, Service};

/// The seed's protocol: greets a new connection with `Hello, I am server`,
/// answers every message `M` with `Hello, M!` until `exit`, and answers every
/// datagram `M` with `Hello, M` (no `!`, as the seed's UDP server).
///
/// `M` is bytes, not text: invalid UTF-8 comes back unchanged inside the reply.
///
/// # Examples
///
/// Served on TCP until told to stop:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sockit::Error> {
/// use std::time::Duration;
/// use tokio::sync::oneshot;
/// use sockit::{Endpoint, Framing, Greet, Server, StreamClient};
///
/// let endpoint: Endpoint = "tcp://127.0.0.1:0".parse()?;
/// let listener = Server::new(Greet).bind(&endpoint).await?;
/// let endpoint = listener.local_endpoint().clone();
/// let (stop, stopped) = oneshot::channel::<()>();
/// let serving = tokio::spawn(listener.serve(async { stopped.await.unwrap_or(()) }));
///
/// let mut client = StreamClient::connect(&endpoint, Framing::Line, Duration::from_secs(5)).await?;
/// assert_eq!(client.receive_greeting().await?.unwrap(), "Hello, I am server");
/// client.send("你好".as_bytes()).await?;
/// assert_eq!(client.receive().await?.unwrap(), "Hello, 你好!");
/// drop(client);
/// stop.send(()).unwrap();
/// serving.await.unwrap()
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Greet;

impl Greet {
    /// What a new stream connection is greeted with.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::Greet;
    ///
    /// assert_eq!(Greet::GREETING, b"Hello, I am server");
    /// ```
    pub const GREETING: &'static [u8] = b"Hello, I am server";
    /// The message that ends a conversation.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use sockit::framing::Framed;
    /// use sockit::{Flow, Greet, Peer, Replies, Service};
    ///
    /// let peer = Peer::from("127.0.0.1:5555".parse::<std::net::SocketAddr>()?);
    /// let mut out = BytesMut::new();
    /// let flow = Greet.message(Greet::EXIT, &mut Replies::new(&mut out, Framed::Line, &peer));
    /// assert_eq!(flow, Flow::Close);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const EXIT: &'static [u8] = b"exit";
}

impl Service for Greet {
    fn greeting(&self, replies: &mut Replies<'_>) {
        replies.send(Self::GREETING);
    }

    fn message(&self, message: &[u8], replies: &mut Replies<'_>) -> Flow {
        if message == Self::EXIT {
            return Flow::Close;
        }
        replies.send_parts(&[b"Hello, ", message, b"!"]);
        Flow::Continue
    }

    fn datagram(&self, datagram: &[u8], replies: &mut Replies<'_>) {
        replies.send_parts(&[b"Hello, ", datagram]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Peer;
    use crate::framing::Framed;
    use crate::service::{answer, answer_datagram};
    use bytes::BytesMut;

    #[test]
    fn greets_in_each_framing() {
        let peer = Peer::Ip("127.0.0.1:1".parse().unwrap());
        for (framed, want) in [
            (Framed::Raw, &b"Hello, I am server"[..]),
            (Framed::Line, b"Hello, I am server\n"),
            (Framed::Len32, b"\0\0\0\x12Hello, I am server"),
        ] {
            let mut out = BytesMut::new();
            Greet.greeting(&mut Replies::new(&mut out, framed, &peer));
            assert_eq!(&out[..], want);
        }
    }

    #[test]
    fn answers_hello_m_bang() {
        assert_eq!(
            answer(&Greet, Framed::Raw, b"client1"),
            (b"Hello, client1!".to_vec(), Flow::Continue)
        );
        assert_eq!(answer(&Greet, Framed::Line, b"bob").0, b"Hello, bob!\n");
        assert_eq!(answer(&Greet, Framed::Len32, b"bob").0, b"\0\0\0\x0bHello, bob!");
    }

    #[test]
    fn bytes_are_echoed_unchanged_even_when_not_utf8() {
        let message = b"\xff\xfe\x00\xc3(\xe4\xbd\xa0";
        let mut want = b"Hello, ".to_vec();
        want.extend_from_slice(message);
        want.push(b'!');
        assert_eq!(answer(&Greet, Framed::Raw, message).0, want);
    }

    #[test]
    fn exit_closes_without_a_reply() {
        assert_eq!(answer(&Greet, Framed::Raw, b"exit"), (Vec::new(), Flow::Close));
        assert_eq!(answer(&Greet, Framed::Raw, b"exit ").1, Flow::Continue);
        assert_eq!(answer(&Greet, Framed::Raw, b"EXIT").1, Flow::Continue);
    }

    #[test]
    fn datagrams_get_no_bang() {
        assert_eq!(answer_datagram(&Greet, b"client1"), b"Hello, client1");
        assert_eq!(answer_datagram(&Greet, b"exit"), b"Hello, exit");
    }
}
