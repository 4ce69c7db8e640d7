//! Services: what a server answers, as plain values that turn a message into replies.
//!
//! A [`Service`] is written once and served on any endpoint: the server calls
//! [`Service::greeting`] when a stream connection opens,
//! [`Service::message`] for every message cut out of a stream, and
//! [`Service::datagram`] for every datagram. Replies go into [`Replies`], a
//! buffer the connection owns and frames; one read that delivered sixteen
//! messages becomes one write with sixteen replies.
//!
//! The built-ins: [`Greet`] (the seed's protocol), [`Echo`] (RFC 862) and
//! [`Discard`] (RFC 863).
//!
//! # Examples
//!
//! What [`Greet`] answers `bob\n`, without a socket:
//!
//! ```
//! use bytes::BytesMut;
//! use sockit::framing::Framed;
//! use sockit::{Flow, Greet, Peer, Replies, Service};
//!
//! let peer = Peer::from("127.0.0.1:5555".parse::<std::net::SocketAddr>()?);
//! let mut out = BytesMut::new();
//! let mut replies = Replies::new(&mut out, Framed::Line, &peer);
//! assert_eq!(Greet.message(b"bob", &mut replies), Flow::Continue);
//! assert_eq!(Greet.message(b"exit", &mut replies), Flow::Close);
//! assert_eq!(&out[..], b"Hello, bob!\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod discard;
mod echo;
mod greet;

use std::fmt;
use std::str::FromStr;

use bytes::BytesMut;

pub use discard::Discard;
pub use echo::Echo;
pub use greet::Greet;

use crate::Peer;
use crate::framing::{Framed, Framing};

/// What the connection does after a message.
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
/// let flow = Greet.message(Greet::EXIT, &mut Replies::new(&mut out, Framed::Raw, &peer));
/// assert_eq!(flow, Flow::Close);
/// assert!(out.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading messages.
    Continue,
    /// Send every reply already owed, then close the connection.
    Close,
}

/// A service: turns each message into replies.
///
/// Methods are synchronous and write into [`Replies`]; a service does its work
/// without awaiting, so the server can answer every message of a read with one
/// write.
///
/// # Examples
///
/// A service that shouts back, served on TCP and UDP alike:
///
/// ```
/// use sockit::{Flow, Replies, Service};
///
/// struct Shout;
///
/// impl Service for Shout {
///     fn message(&self, message: &[u8], replies: &mut Replies<'_>) -> Flow {
///         replies.send(&message.to_ascii_uppercase());
///         Flow::Continue
///     }
/// }
/// ```
pub trait Service: Send + Sync + 'static {
    /// Called once when a stream connection opens; sends nothing by default.
    ///
    /// # Examples
    ///
    /// A service that greets with a prompt, served on TCP:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::time::Duration;
    /// use sockit::{Flow, Framing, Replies, Server, Service, StreamClient};
    ///
    /// struct Prompt;
    ///
    /// impl Service for Prompt {
    ///     fn greeting(&self, replies: &mut Replies<'_>) {
    ///         replies.send(b"ready>");
    ///     }
    ///     fn message(&self, message: &[u8], replies: &mut Replies<'_>) -> Flow {
    ///         replies.send(message);
    ///         Flow::Continue
    ///     }
    /// }
    ///
    /// let listener = Server::new(Prompt).framing(Framing::Line).bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// let endpoint = listener.local_endpoint().clone();
    /// tokio::spawn(listener.serve(std::future::pending()));
    /// let mut client = StreamClient::connect(&endpoint, Framing::Line, Duration::from_secs(5)).await?;
    /// assert_eq!(client.receive_greeting().await?.unwrap(), "ready>");
    /// # Ok(())
    /// # }
    /// ```
    fn greeting(&self, replies: &mut Replies<'_>) {
        let _ = replies;
    }

    /// Called for every message of a stream connection. Return
    /// [`Flow::Close`] to close the connection once the replies are sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use sockit::framing::Framed;
    /// use sockit::{Flow, Peer, Replies, Service};
    ///
    /// struct Once;
    ///
    /// impl Service for Once {
    ///     fn message(&self, message: &[u8], replies: &mut Replies<'_>) -> Flow {
    ///         replies.send_parts(&[b"got ", message]);
    ///         Flow::Close
    ///     }
    /// }
    ///
    /// let peer = Peer::from("127.0.0.1:5555".parse::<std::net::SocketAddr>()?);
    /// let mut out = BytesMut::new();
    /// let flow = Once.message(b"it", &mut Replies::new(&mut out, Framed::Line, &peer));
    /// assert_eq!((flow, &out[..]), (Flow::Close, &b"got it\n"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn message(&self, message: &[u8], replies: &mut Replies<'_>) -> Flow;

    /// Called for every datagram; everything sent into `replies` goes back to
    /// the sender as one datagram. By default the same as [`Service::message`].
    ///
    /// # Examples
    ///
    /// A service that answers datagrams with the sender's address, served on
    /// UDP:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::time::Duration;
    /// use sockit::{DatagramClient, Flow, Replies, Server, Service};
    ///
    /// struct WhoAmI;
    ///
    /// impl Service for WhoAmI {
    ///     fn message(&self, _: &[u8], _: &mut Replies<'_>) -> Flow {
    ///         Flow::Close
    ///     }
    ///     fn datagram(&self, _: &[u8], replies: &mut Replies<'_>) {
    ///         let peer = replies.peer().to_string();
    ///         replies.send(peer.as_bytes());
    ///     }
    /// }
    ///
    /// let listener = Server::new(WhoAmI).bind(&"udp://127.0.0.1:0".parse()?).await?;
    /// let endpoint = listener.local_endpoint().clone();
    /// tokio::spawn(listener.serve(std::future::pending()));
    /// let client = DatagramClient::connect(&endpoint, Duration::from_secs(5), 0).await?;
    /// let reply = client.request(b"?").await?;
    /// assert!(reply.starts_with(b"127.0.0.1:"), "{reply:?}");
    /// # Ok(())
    /// # }
    /// ```
    fn datagram(&self, datagram: &[u8], replies: &mut Replies<'_>) {
        let _ = self.message(datagram, replies);
    }

    /// The framing a listener uses when none is chosen: [`Framing::Auto`].
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::{Flow, Framing, Replies, Server, Service};
    ///
    /// struct Lines;
    ///
    /// impl Service for Lines {
    ///     fn message(&self, message: &[u8], replies: &mut Replies<'_>) -> Flow {
    ///         replies.send(message);
    ///         Flow::Continue
    ///     }
    ///     fn default_framing(&self) -> Framing {
    ///         Framing::Line
    ///     }
    /// }
    ///
    /// assert_eq!(Server::new(Lines).framing_in_use(), Framing::Line);
    /// ```
    fn default_framing(&self) -> Framing {
        Framing::Auto
    }
}

/// Where a service writes its replies: the connection's output buffer, framed
/// like the message being answered, and who the peer is.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use sockit::framing::Framed;
/// use sockit::{Peer, Replies};
///
/// let peer = Peer::from("[::ffff:127.0.0.1]:5555".parse::<std::net::SocketAddr>()?);
/// let mut out = BytesMut::new();
/// let mut replies = Replies::new(&mut out, Framed::Len32, &peer);
/// replies.send(b"one");
/// replies.send_parts(&[b"t", b"wo"]);
/// replies.send(b"");
/// assert_eq!(replies.sent(), 3);
/// assert_eq!(replies.framed(), Framed::Len32);
/// assert_eq!(replies.peer().to_string(), "127.0.0.1:5555");
/// assert_eq!(&out[..], b"\0\0\0\x03one\0\0\0\x03two\0\0\0\0");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Replies<'a> {
    out: &'a mut BytesMut,
    framed: Framed,
    peer: &'a Peer,
    sent: usize,
    /// Where each reply ends in `out`, for transports that send one packet a reply.
    ends: Option<&'a mut Vec<usize>>,
}

impl<'a> Replies<'a> {
    /// Replies into `out`, framed as `framed`, to `peer`.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use sockit::framing::Framed;
    /// use sockit::{Echo, Peer, Replies, Service};
    ///
    /// let peer = Peer::from("127.0.0.1:5555".parse::<std::net::SocketAddr>()?);
    /// let mut out = BytesMut::new();
    /// Echo.message(b"ping", &mut Replies::new(&mut out, Framed::Line, &peer));
    /// assert_eq!(&out[..], b"ping\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(out: &'a mut BytesMut, framed: Framed, peer: &'a Peer) -> Self {
        Replies {
            out,
            framed,
            peer,
            sent: 0,
            ends: None,
        }
    }

    /// Replies into `out` unframed, noting in `ends` where each one ends, for
    /// a transport that sends each reply as a packet of its own.
    pub(crate) fn packets(out: &'a mut BytesMut, peer: &'a Peer, ends: &'a mut Vec<usize>) -> Self {
        Replies {
            ends: Some(ends),
            ..Replies::new(out, Framed::Raw, peer)
        }
    }

    /// Sends one reply.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use sockit::framing::Framed;
    /// use sockit::{Peer, Replies};
    ///
    /// let peer = Peer::from("127.0.0.1:5555".parse::<std::net::SocketAddr>()?);
    /// let mut out = BytesMut::new();
    /// Replies::new(&mut out, Framed::Line, &peer).send(b"pong");
    /// assert_eq!(&out[..], b"pong\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&mut self, reply: &[u8]) {
        self.send_parts(&[reply]);
    }

    /// Sends one reply made of `parts` back to back, without joining them first.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use sockit::framing::Framed;
    /// use sockit::{Peer, Replies};
    ///
    /// let peer = Peer::from("127.0.0.1:5555".parse::<std::net::SocketAddr>()?);
    /// let mut out = BytesMut::new();
    /// let mut replies = Replies::new(&mut out, Framed::Line, &peer);
    /// replies.send_parts(&[b"Hello, ", b"bob", b"!"]);
    /// assert_eq!(replies.sent(), 1);
    /// assert_eq!(&out[..], b"Hello, bob!\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_parts(&mut self, parts: &[&[u8]]) {
        self.framed.encode(parts, self.out);
        self.sent += 1;
        if let Some(ends) = &mut self.ends {
            ends.push(self.out.len());
        }
    }

    /// How many replies were sent, empty ones included: an empty datagram
    /// is a reply, not silence.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use sockit::framing::Framed;
    /// use sockit::{Peer, Replies};
    ///
    /// let peer = Peer::from("127.0.0.1:5555".parse::<std::net::SocketAddr>()?);
    /// let mut out = BytesMut::new();
    /// let mut replies = Replies::new(&mut out, Framed::Raw, &peer);
    /// replies.send(b"");
    /// replies.send(b"two");
    /// assert_eq!(replies.sent(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sent(&self) -> usize {
        self.sent
    }

    /// The peer being answered.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use sockit::framing::Framed;
    /// use sockit::{Peer, Replies};
    ///
    /// let peer = Peer::from("[::1]:5555".parse::<std::net::SocketAddr>()?);
    /// let mut out = BytesMut::new();
    /// let replies = Replies::new(&mut out, Framed::Line, &peer);
    /// assert_eq!(replies.peer().to_string(), "[::1]:5555");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn peer(&self) -> &Peer {
        self.peer
    }

    /// How the message being answered was framed, and so how replies are framed.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use sockit::framing::Framed;
    /// use sockit::{Peer, Replies};
    ///
    /// let peer = Peer::from("127.0.0.1:5555".parse::<std::net::SocketAddr>()?);
    /// let mut out = BytesMut::new();
    /// let mut replies = Replies::new(&mut out, Framed::Len32, &peer);
    /// assert_eq!(replies.framed(), Framed::Len32);
    /// replies.send(b"hi");
    /// assert_eq!(&out[..], b"\0\0\0\x02hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn framed(&self) -> Framed {
        self.framed
    }
}

/// The built-in services by name, as `sockit serve --service` takes them.
///
/// # Examples
///
/// ```
/// use sockit::framing::Framing;
/// use sockit::{Builtin, Service};
///
/// let echo: Builtin = "echo".parse()?;
/// assert_eq!(echo, Builtin::Echo);
/// assert_eq!(echo.to_string(), "echo");
/// assert_eq!(echo.default_framing(), Framing::Raw);
/// assert_eq!(Builtin::default(), Builtin::Greet);
/// assert!("hello".parse::<Builtin>().is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Builtin {
    /// [`Greet`]: the seed's greeting protocol.
    #[default]
    Greet,
    /// [`Echo`]: every byte back (RFC 862).
    Echo,
    /// [`Discard`]: reads and drops (RFC 863).
    Discard,
}

impl Builtin {
    /// Every built-in, in the order `--help` lists them.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::Builtin;
    ///
    /// let names: Vec<_> = Builtin::ALL.iter().map(|builtin| builtin.name()).collect();
    /// assert_eq!(names, ["greet", "echo", "discard"]);
    /// ```
    pub const ALL: [Builtin; 3] = [Builtin::Greet, Builtin::Echo, Builtin::Discard];

    /// The name used on the command line.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::Builtin;
    ///
    /// assert_eq!(Builtin::Discard.name(), "discard");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Greet => "greet",
            Builtin::Echo => "echo",
            Builtin::Discard => "discard",
        }
    }
}

impl fmt::Display for Builtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Builtin {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Builtin::ALL
            .into_iter()
            .find(|builtin| builtin.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| format!("unknown service {text:?}: expected greet, echo or discard"))
    }
}

impl Service for Builtin {
    fn greeting(&self, replies: &mut Replies<'_>) {
        match self {
            Builtin::Greet => Greet.greeting(replies),
            Builtin::Echo => Echo.greeting(replies),
            Builtin::Discard => Discard.greeting(replies),
        }
    }

    fn message(&self, message: &[u8], replies: &mut Replies<'_>) -> Flow {
        match self {
            Builtin::Greet => Greet.message(message, replies),
            Builtin::Echo => Echo.message(message, replies),
            Builtin::Discard => Discard.message(message, replies),
        }
    }

    fn datagram(&self, datagram: &[u8], replies: &mut Replies<'_>) {
        match self {
            Builtin::Greet => Greet.datagram(datagram, replies),
            Builtin::Echo => Echo.datagram(datagram, replies),
            Builtin::Discard => Discard.datagram(datagram, replies),
        }
    }

    fn default_framing(&self) -> Framing {
        match self {
            Builtin::Greet => Greet.default_framing(),
            Builtin::Echo => Echo.default_framing(),
            Builtin::Discard => Discard.default_framing(),
        }
    }
}

/// Runs `service` on one message and returns what it sent and the flow; for tests.
#[cfg(test)]
pub(crate) fn answer(service: &impl Service, framed: Framed, message: &[u8]) -> (Vec<u8>, Flow) {
    let peer = Peer::Ip("127.0.0.1:5555".parse().unwrap());
    let mut out = BytesMut::new();
    let flow = service.message(message, &mut Replies::new(&mut out, framed, &peer));
    (out.to_vec(), flow)
}

/// Runs `service` on one datagram and returns what it sent; for tests.
#[cfg(test)]
pub(crate) fn answer_datagram(service: &impl Service, datagram: &[u8]) -> Vec<u8> {
    let peer = Peer::Ip("127.0.0.1:5555".parse().unwrap());
    let mut out = BytesMut::new();
    service.datagram(datagram, &mut Replies::new(&mut out, Framed::Raw, &peer));
    out.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names_round_trip() {
        for builtin in Builtin::ALL {
            assert_eq!(builtin.name().parse::<Builtin>(), Ok(builtin));
        }
        assert_eq!(
            "hello".parse::<Builtin>().unwrap_err(),
            "unknown service \"hello\": expected greet, echo or discard"
        );
    }

    #[test]
    fn builtins_delegate_to_their_service() {
        assert_eq!(answer(&Builtin::Greet, Framed::Raw, b"x").0, b"Hello, x!");
        assert_eq!(answer(&Builtin::Echo, Framed::Raw, b"x").0, b"x");
        assert_eq!(answer(&Builtin::Discard, Framed::Raw, b"x").0, b"");
        assert_eq!(answer_datagram(&Builtin::Greet, b"x"), b"Hello, x");
        assert_eq!(Builtin::Greet.default_framing(), Framing::Auto);
        assert_eq!(Builtin::Echo.default_framing(), Framing::Raw);
    }
}
