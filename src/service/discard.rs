//! `discard` (RFC 863): reads and drops.

use super::{Flow, Replies, Service};
use crate::Framing;

/// Discard (RFC 863): reads every message and answers nothing.
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
