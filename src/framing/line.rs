//! `line` framing: a message is the bytes up to `\n`, with a trailing `\r` removed.
//!
//! # Examples
//!
//! ```
//! use bytes::BytesMut;
//! use sockit::framing::line;
//!
//! let mut buf = BytesMut::from(&b"bob\r\nalice\n"[..]);
//! assert_eq!(line::decode(&mut buf, 1024)?.unwrap().payload, "bob");
//! assert_eq!(line::decode(&mut buf, 1024)?.unwrap().payload, "alice");
//! # Ok::<(), sockit::framing::FrameError>(())
//! ```

use bytes::BytesMut;

use super::{Found, FrameError, Framed, Message};

/// Takes the first whole line off `buf`, or `Ok(None)` if no line is complete.
///
/// Searches `buf` from its start: to cut a stream into lines read after
/// read, keep a [`State`] and call [`State::decode`], which searches each
/// byte once.
///
/// # Errors
///
/// [`FrameError::TooLong`] as soon as the line in progress is longer than
/// `max` bytes (not counting its `\r\n`), so at most `max + 1` bytes are ever
/// kept waiting for a newline.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use sockit::framing::line;
///
/// let mut buf = BytesMut::from(&b"abcd\r\nab"[..]);
/// assert_eq!(line::decode(&mut buf, 4)?.unwrap().payload, "abcd");
/// assert_eq!(line::decode(&mut buf, 4)?, None);
/// buf.extend_from_slice(b"cdef");
/// assert!(line::decode(&mut buf, 4).is_err()); // 6 bytes and no newline yet
/// # Ok::<(), sockit::framing::FrameError>(())
/// ```
pub fn decode(buf: &mut BytesMut, max: usize) -> Result<Option<Message>, FrameError> {
    State::default().decode(buf, max)
}

/// What `line` remembers between reads of one stream: how much of the line
/// in progress was searched for its `\n` already.
///
/// So a line that takes many reads is searched once, not once per read: a
/// 64 MB line read 16 KiB at a time was searched 4,096 times over, 128 GiB
/// in all, before this.
///
/// It speaks of the buffer it was last given, which may only grow at its
/// end between calls: a caller that takes bytes off the buffer itself (or
/// empties it) starts a new `State`.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use sockit::framing::line;
///
/// let mut line = line::State::default();
/// let mut buf = BytesMut::from(&b"bo"[..]);
/// assert_eq!(line.decode(&mut buf, 1024)?, None); // "bo" searched
/// buf.extend_from_slice(b"b\r\nal");
/// assert_eq!(line.decode(&mut buf, 1024)?.unwrap().payload, "bob"); // "b\r\n" searched
/// assert_eq!(line.decode(&mut buf, 1024)?, None);
/// assert_eq!(&buf[..], b"al");
/// # Ok::<(), sockit::framing::FrameError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State {
    /// How many bytes at the front of the buffer hold no `\n`: a `u32`, to
    /// fit beside the rest of a [`Decoder`](super::Decoder) in 16 bytes
    /// (past 4 GiB it says less than it could, never more).
    searched: u32,
}

impl State {
    /// Takes the first whole line off `buf`, or `Ok(None)` if no line is
    /// complete, searching only the bytes that came since the last call.
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLong`] as [`decode`] gives it.
    ///
    /// # Examples
    ///
    /// A long line in reads of 16 KiB, each searched once:
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use sockit::framing::line;
    ///
    /// let mut line = line::State::default();
    /// let mut buf = BytesMut::new();
    /// for _ in 0..64 {
    ///     buf.extend_from_slice(&[b'x'; 16 * 1024]);
    ///     assert_eq!(line.decode(&mut buf, 1 << 20)?, None);
    /// }
    /// buf.extend_from_slice(b"\n");
    /// assert_eq!(line.decode(&mut buf, 1 << 20)?.unwrap().payload.len(), 1 << 20);
    /// # Ok::<(), sockit::framing::FrameError>(())
    /// ```
    pub fn decode(&mut self, buf: &mut BytesMut, max: usize) -> Result<Option<Message>, FrameError> {
        Ok(self.find(buf, max)?.map(|found| found.take(buf)))
    }

    /// Where the first whole line in `buf` lies, as [`State::decode`] takes it.
    pub(super) fn find(&mut self, buf: &[u8], max: usize) -> Result<Option<Found>, FrameError> {
        let too_long = FrameError::TooLong {
            limit: max,
            framed: Framed::Line,
        };
        // A line of `max` bytes ends with "\r\n" at the latest.
        let window = buf.len().min(max.saturating_add(2));
        let from = usize::try_from(self.searched).map_or(0, |searched| searched.min(window));
        #[cfg(test)]
        tests::SEARCHED.with(|searched| searched.set(searched.get() + (window - from)));
        let Some(found) = memchr::memchr(b'\n', &buf[from..window]) else {
            self.searched = u32::try_from(window).unwrap_or(u32::MAX);
            return if buf.len() > max.saturating_add(1) {
                Err(too_long)
            } else {
                Ok(None)
            };
        };
        self.searched = 0;
        let newline = from + found;
        let end = if newline > 0 && buf[newline - 1] == b'\r' {
            newline - 1
        } else {
            newline
        };
        if end > max {
            return Err(too_long);
        }
        Ok(Some(Found {
            start: 0,
            end,
            taken: newline + 1,
            framed: Framed::Line,
        }))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::cell::Cell;

    use super::super::SHRINK_AFTER;
    use super::*;

    thread_local! {
        /// Bytes [`State::decode`] searched for `\n` on this thread.
        pub(in crate::framing) static SEARCHED: Cell<usize> = const { Cell::new(0) };
    }

    /// The bytes `f` had searched for `\n`.
    pub(in crate::framing) fn searched_by(f: impl FnOnce()) -> usize {
        SEARCHED.with(|searched| searched.set(0));
        f();
        SEARCHED.with(Cell::get)
    }

    fn lines(input: &[u8], max: usize) -> (Vec<Vec<u8>>, Result<(), FrameError>, Vec<u8>) {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match decode(&mut buf, max) {
                Ok(Some(m)) => out.push(m.payload.to_vec()),
                Ok(None) => return (out, Ok(()), buf.to_vec()),
                Err(e) => return (out, Err(e), buf.to_vec()),
            }
        }
    }

    #[test]
    fn splits_lines_and_strips_crlf() {
        let (got, end, rest) = lines(b"bob\nalice\r\n\n\r\nhalf", 64);
        assert_eq!(got, [&b"bob"[..], b"alice", b"", b""]);
        assert_eq!(end, Ok(()));
        assert_eq!(rest, b"half");
    }

    #[test]
    fn only_one_trailing_cr_is_removed() {
        let (got, _, _) = lines(b"a\r\r\n", 64);
        assert_eq!(got, [&b"a\r"[..]]);
    }

    #[test]
    fn a_line_of_exactly_max_bytes_is_accepted() {
        let (got, end, _) = lines(b"abcd\r\nabcd\n", 4);
        assert_eq!(got, [&b"abcd"[..], b"abcd"]);
        assert_eq!(end, Ok(()));
    }

    #[test]
    fn a_line_over_max_is_refused_before_its_newline_arrives() {
        let too_long = Err(FrameError::TooLong {
            limit: 4,
            framed: Framed::Line,
        });
        assert_eq!(lines(b"abcde\n", 4).1, too_long);
        assert_eq!(lines(b"abcdef", 4).1, too_long);
        // Still possibly "abcd\r\n": wait for more.
        assert_eq!(lines(b"abcd\r", 4).1, Ok(()));
        assert_eq!(
            lines(b"ok\nabcdef", 4),
            (vec![b"ok".to_vec()], too_long, b"abcdef".to_vec())
        );
    }

    /// Regression: every read of a long line searched the whole line again,
    /// so a 64 MB line took 4.8 s of CPU. Now each byte is searched once.
    #[test]
    fn a_long_line_in_many_reads_is_searched_once() {
        const READ: usize = 16 * 1024;
        const LEN: usize = 4 << 20;
        let mut line = State::default();
        let mut buf = BytesMut::new();
        let mut taken = None;
        let searched = searched_by(|| {
            for _ in 0..LEN / READ {
                buf.extend_from_slice(&[b'x'; READ]);
                assert_eq!(line.decode(&mut buf, 256 << 20), Ok(None));
            }
            buf.extend_from_slice(b"\r\nnext");
            taken = line.decode(&mut buf, 256 << 20).unwrap();
            assert_eq!(line.decode(&mut buf, 256 << 20), Ok(None));
        });
        let taken = taken.expect("the line, whole");
        assert_eq!(taken.payload.len(), LEN);
        assert!(taken.payload.iter().all(|&b| b == b'x'));
        // Each byte once; "next" twice: in the read that ended the line, and
        // again once the line was taken.
        assert_eq!(searched, LEN + "\r\nnext".len() + "next".len());
        assert_eq!(&buf[..], b"next");
    }

    #[test]
    fn a_search_resumes_where_it_stopped() {
        let mut line = State::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let searched = searched_by(|| {
            for piece in [&b"ab"[..], b"c\r", b"\nd", b"e", b"\n"] {
                buf.extend_from_slice(piece);
                while let Some(message) = line.decode(&mut buf, 8).unwrap() {
                    got.push(message.payload);
                }
            }
        });
        assert_eq!(got, ["abc", "de"]);
        // 8 bytes sent; "d" searched twice: in the read that ended "abc",
        // and again once that line was taken.
        assert_eq!(searched, 9);
        assert!(buf.is_empty());
        // A line over the maximum is still refused at once, searched or not.
        buf.extend_from_slice(b"1234567890");
        assert!(line.decode(&mut buf, 8).is_err());
    }

    #[test]
    fn a_long_line_taken_leaves_the_rest_in_a_small_buffer() {
        let mut buf = BytesMut::with_capacity(1 << 20);
        buf.extend_from_slice(&[b'x'; SHRINK_AFTER]);
        buf.extend_from_slice(b"\nrest");
        let line = decode(&mut buf, 1 << 20).unwrap().unwrap();
        assert_eq!(line.payload.len(), SHRINK_AFTER);
        assert_eq!(&buf[..], b"rest");
        assert!(buf.capacity() < 1024, "{} bytes kept", buf.capacity());
        // A short line leaves the buffer as it was.
        let mut buf = BytesMut::with_capacity(1 << 20);
        buf.extend_from_slice(b"short\nrest");
        decode(&mut buf, 1 << 20).unwrap().unwrap();
        assert!(buf.capacity() > 1 << 19, "{} bytes kept", buf.capacity());
    }
}
