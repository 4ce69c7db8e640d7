//! `discard` (RFC 863): reads and drops.
//!
//! # Examples
//!
//! ```
//! use bytes::BytesMut;
//! use sockit::framing::Framed;
//! use sockit::{Discard, Flow, Peer, Replies, Service};
//!
//! let peer = Peer::from("127.0.0.1:5555".parse::<std::net::SocketAddr>()?);
//! let mut out = BytesMut::new();
//! let mut replies = Replies::new(&mut out, Framed::Raw, &peer);
//! assert_eq!(Discard.message(b"anything", &mut replies), Flow::Continue);
//! assert_eq!(replies.sent(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::{Flow, Replies, Service};
use crate::Framing;

/// Discard (RFC 863): reads every message and answers nothing.
///
/// # Examples
///
/// Serving it on an ephemeral UDP port:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sockit::Error> {
/// use sockit::{Discard, Endpoint, Server};
///
/// let endpoint: Endpoint = "udp://127.0.0.1:0".parse()?;
/// let listener = Server::new(Discard).bind(&endpoint).await?;
/// listener.serve(async {}).await // stops at once
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl Service for Discard {
    fn message(&self, _message: &[u8], _replies: &mut Replies<'_>) -> Flow {
        Flow::Continue
    }

    fn default_framing(&self) -> Framing {
        Framing::Raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::Framed;
    use crate::service::{answer, answer_datagram};

    #[test]
    fn answers_nothing() {
        assert_eq!(
            answer(&Discard, Framed::Line, b"exit"),
            (Vec::new(), Flow::Continue)
        );
        assert_eq!(answer_datagram(&Discard, b"x"), b"");
    }
}
