//! `echo` (RFC 862): every message comes back as it was.
//!
//! # Examples
//!
//! ```
//! use bytes::BytesMut;
//! use sockit::framing::Framed;
//! use sockit::{Echo, Peer, Replies, Service};
//!
//! let peer = Peer::from("127.0.0.1:5555".parse::<std::net::SocketAddr>()?);
//! let mut out = BytesMut::new();
//! Echo.datagram(b"\x00\xff bytes", &mut Replies::new(&mut out, Framed::Raw, &peer));
//! assert_eq!(&out[..], b"\x00\xff bytes");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::{Flow, Replies, Service};
use crate::Framing;

/// Echo (RFC 862): returns every message unchanged. Its default framing is
/// `raw`, so a stream gets back every byte it sent.
///
/// # Examples
///
/// ```
/// use sockit::framing::Framing;
/// use sockit::{Echo, Service};
///
/// assert_eq!(Echo.default_framing(), Framing::Raw);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Service for Echo {
    fn message(&self, message: &[u8], replies: &mut Replies<'_>) -> Flow {
        replies.send(message);
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
    fn returns_every_byte() {
        assert_eq!(
            answer(&Echo, Framed::Raw, b"exit\xff\n"),
            (b"exit\xff\n".to_vec(), Flow::Continue)
        );
        assert_eq!(answer(&Echo, Framed::Line, b"bob").0, b"bob\n");
        assert_eq!(answer_datagram(&Echo, b"\x00dgram"), b"\x00dgram");
    }
}
