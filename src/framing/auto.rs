//! `auto` framing: lines when the peer sends lines, one read as one message when not.
//!
//! A read that holds a `\n` is split into lines as [`line`](mod@super::line) does,
//! and a partial line after the last `\n` waits for its end. A read with no
//! `\n` at all, arriving when nothing is waiting, is one [`raw`](mod@super::raw)
//! message. So the seed's client (`client1`, no newline) and `nc` users
//! (`bob\n`) both get the reply they expect from one server.
//!
//! One exception keeps long lines whole: a read with no `\n` that filled the
//! whole read window was cut short by the window, not by the sender, so it
//! is the start of a line and waits for its `\n` (or grows past the maximum
//! and is refused). The window is never smaller than a maximum message plus
//! `\r\n` unless that is over 16 KiB, so no `raw` message that fits the
//! maximum is mistaken for one.
//!
//! # Examples
//!
//! ```
//! use bytes::BytesMut;
//! use sockit::framing::auto::State;
//! use sockit::framing::{Framed, line};
//!
//! let (mut auto, mut line) = (State::default(), line::State::default());
//! // The seed's client: no newline, one read is one message.
//! let mut buf = BytesMut::from(&b"client1"[..]);
//! assert_eq!(auto.decode(&mut line, &mut buf, 1024, 1026)?.unwrap().framed, Framed::Raw);
//! // nc: a line, and the start of the next one waits for its newline.
//! buf.extend_from_slice(b"bob\nali");
//! assert_eq!(auto.decode(&mut line, &mut buf, 1024, 1026)?.unwrap().framed, Framed::Line);
//! assert_eq!(auto.decode(&mut line, &mut buf, 1024, 1026)?, None);
//! buf.extend_from_slice(b"ce\n");
//! assert_eq!(auto.decode(&mut line, &mut buf, 1024, 1026)?.unwrap().payload, "alice");
//! # Ok::<(), sockit::framing::FrameError>(())
//! ```

use bytes::BytesMut;

use super::{Found, FrameError, Message, line, raw};

/// What `auto` remembers between reads, beside the [`line::State`] of the
/// lines it cuts (kept apart, so that a [`Decoder`](super::Decoder) holds
/// both in 16 bytes).
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use sockit::framing::auto::State;
/// use sockit::framing::line;
///
/// let (mut auto, mut line) = (State::default(), line::State::default());
/// let mut buf = BytesMut::from(&b"abcd"[..]); // filled the whole 4-byte window
/// assert_eq!(auto.decode(&mut line, &mut buf, 8, 4)?, None); // so it is the start of a line
/// buf.extend_from_slice(b"ef\n");
/// assert_eq!(auto.decode(&mut line, &mut buf, 8, 4)?.unwrap().payload, "abcdef");
/// # Ok::<(), sockit::framing::FrameError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct State {
    /// The buffer holds the start of a line whose `\n` has not arrived.
    partial_line: bool,
}

impl State {
    /// Takes the next message off `buf`, which holds what was left over
    /// plus the last read of at most `window` bytes; see the module docs for
    /// the rule. Lines are searched for with `line`, kept from call to call
    /// like `self`, so each byte is searched once.
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLong`] when a line is longer than `max` bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use sockit::framing::auto::State;
    /// use sockit::framing::line;
    ///
    /// let (mut auto, mut line) = (State::default(), line::State::default());
    /// let mut buf = BytesMut::from(&b"a\nb\n"[..]);
    /// assert_eq!(auto.decode(&mut line, &mut buf, 1024, 1026)?.unwrap().payload, "a");
    /// assert_eq!(auto.decode(&mut line, &mut buf, 1024, 1026)?.unwrap().payload, "b");
    /// assert_eq!(auto.decode(&mut line, &mut buf, 1024, 1026)?, None);
    /// # Ok::<(), sockit::framing::FrameError>(())
    /// ```
    pub fn decode(
        &mut self,
        line: &mut line::State,
        buf: &mut BytesMut,
        max: usize,
        window: usize,
    ) -> Result<Option<Message>, FrameError> {
        Ok(self.find(line, buf, max, window)?.map(|found| found.take(buf)))
    }

    /// Where the next message in `buf` lies, as [`State::decode`] takes it.
    pub(super) fn find(
        &mut self,
        line: &mut line::State,
        buf: &[u8],
        max: usize,
        window: usize,
    ) -> Result<Option<Found>, FrameError> {
        if let Some(found) = line.find(buf, max)? {
            self.partial_line = found.taken < buf.len();
            return Ok(Some(found));
        }
        if buf.is_empty() || self.partial_line {
            return Ok(None);
        }
        if buf.len() >= window {
            // Cut short by the read window: the start of a long line.
            self.partial_line = true;
            return Ok(None);
        }
        // The whole read is taken: a new search starts with the next one.
        *line = line::State::default();
        Ok(raw::find(buf, max))
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::super::line::tests::searched_by;
    use super::super::tests::decode_in_pieces;
    use super::super::{Framed, Framing};
    use super::{State, line};

    fn messages(pieces: &[&[u8]]) -> Vec<(Vec<u8>, Framed)> {
        let input = pieces.concat();
        let cuts: Vec<usize> = pieces
            .iter()
            .scan(0, |at, piece| {
                *at += piece.len();
                Some(*at)
            })
            .collect();
        let (messages, end, _) = decode_in_pieces(Framing::Auto, 1024, &input, &cuts);
        assert_eq!(end, Ok(()));
        messages
            .into_iter()
            .map(|m| (m.payload.to_vec(), m.framed))
            .collect()
    }

    #[test]
    fn a_read_without_newline_is_one_raw_message() {
        assert_eq!(
            messages(&[b"client1", b"client2"]),
            [
                (b"client1".to_vec(), Framed::Raw),
                (b"client2".to_vec(), Framed::Raw)
            ]
        );
    }

    /// A `raw` read takes its search along: the next read is searched whole
    /// (even by a caller that did not decode again until `Ok(None)`).
    #[test]
    fn a_line_after_a_longer_raw_message_is_a_line() {
        let (mut auto, mut line) = (State::default(), line::State::default());
        let mut buf = BytesMut::from(&b"client1"[..]);
        let raw = auto.decode(&mut line, &mut buf, 1024, 1026).unwrap().unwrap();
        assert_eq!((&raw.payload[..], raw.framed), (&b"client1"[..], Framed::Raw));
        buf.extend_from_slice(b"bob\n");
        let bob = auto.decode(&mut line, &mut buf, 1024, 1026).unwrap().unwrap();
        assert_eq!((&bob.payload[..], bob.framed), (&b"bob"[..], Framed::Line));
        assert_eq!(
            messages(&[b"client1", b"bob\n"])[1],
            (b"bob".to_vec(), Framed::Line)
        );
    }

    #[test]
    fn reads_ending_in_newline_are_lines() {
        assert_eq!(
            messages(&[b"bob\nalice\n"]),
            [(b"bob".to_vec(), Framed::Line), (b"alice".to_vec(), Framed::Line)]
        );
    }

    #[test]
    fn a_partial_line_waits_for_its_newline() {
        assert_eq!(
            messages(&[b"bob\nali", b"c", b"e\r\n", b"raw"]),
            [
                (b"bob".to_vec(), Framed::Line),
                (b"alice".to_vec(), Framed::Line),
                (b"raw".to_vec(), Framed::Raw),
            ]
        );
    }

    #[test]
    fn a_read_that_fills_the_window_is_the_start_of_a_line() {
        let long = vec![b'a'; 40_000];
        let mut input = long.clone();
        input.push(b'\n');
        // Reads of 16 KiB, as a connection makes them.
        let (messages, end, _) = decode_in_pieces(Framing::Auto, 64 * 1024, &input, &[16384, 32768]);
        assert_eq!(end, Ok(()));
        let messages: Vec<_> = messages
            .into_iter()
            .map(|m| (m.payload.to_vec(), m.framed))
            .collect();
        assert_eq!(messages, [(long, Framed::Line)]);
    }

    #[test]
    fn a_long_line_without_newline_is_refused_not_cut() {
        // With a maximum of 16 the window is 18: a full window is too long.
        let (messages, end, _) = decode_in_pieces(Framing::Auto, 16, &[b'a'; 100], &[18, 36]);
        assert!(messages.is_empty());
        assert_eq!(
            end,
            Err(crate::framing::FrameError::TooLong {
                limit: 16,
                framed: Framed::Line
            })
        );
        // A raw message of exactly the maximum is still a raw message.
        let (messages, end, _) = decode_in_pieces(Framing::Auto, 16, &[b'b'; 16], &[]);
        assert_eq!(end, Ok(()));
        assert_eq!(messages[0].framed, Framed::Raw);
        assert_eq!(&messages[0].payload[..], &[b'b'; 16]);
    }

    /// Regression: each read of a long line searched all of it again.
    #[test]
    fn a_long_line_in_reads_of_16_kib_is_searched_once() {
        const LEN: usize = 4 << 20;
        let mut input = vec![b'a'; LEN];
        input.push(b'\n');
        let cuts: Vec<usize> = (1..=LEN / 16384).map(|read| read * 16384).collect();
        for framing in [Framing::Auto, Framing::Line] {
            let mut decoded = None;
            let searched = searched_by(|| {
                decoded = Some(decode_in_pieces(framing, 256 << 20, &input, &cuts));
            });
            let (messages, end, _) = decoded.unwrap();
            assert_eq!(end, Ok(()));
            assert_eq!(messages.len(), 1, "{framing}");
            assert_eq!(messages[0].payload.len(), LEN, "{framing}");
            assert_eq!(searched, LEN + 1, "{framing}");
        }
    }

    #[test]
    fn a_partial_line_at_end_of_stream_is_a_line() {
        assert_eq!(
            messages(&[b"bob\nali"]),
            [(b"bob".to_vec(), Framed::Line), (b"ali".to_vec(), Framed::Line)]
        );
    }
}
