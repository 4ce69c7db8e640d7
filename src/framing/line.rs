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

use super::{FrameError, Framed, Message};

/// Takes the first whole line off `buf`, or `Ok(None)` if no line is complete.
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
    let too_long = FrameError::TooLong {
        limit: max,
        framed: Framed::Line,
    };
    // A line of `max` bytes ends with "\r\n" at the latest.
    let window = &buf[..buf.len().min(max.saturating_add(2))];
    let Some(newline) = memchr::memchr(b'\n', window) else {
        return if buf.len() > max.saturating_add(1) {
            Err(too_long)
        } else {
            Ok(None)
        };
    };
    let end = if newline > 0 && buf[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    };
    if end > max {
        return Err(too_long);
    }
    let mut line = buf.split_to(newline + 1);
    line.truncate(end);
    Ok(Some(Message {
        payload: line.freeze(),
        framed: Framed::Line,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
