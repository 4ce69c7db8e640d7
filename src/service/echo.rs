//! `echo` (RFC 862): every message comes back as it was.

use super::{Flow, Replies, Service};
use crate::Framing;

/// Echo (RFC 862): returns every message unchanged. Its default framing is
/// `raw`, so a stream gets back every byte it sent.
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
