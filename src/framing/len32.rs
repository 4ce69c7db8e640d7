//! `len32` framing: a 4-byte big-endian length, then that many bytes.
//!
//! # Examples
//!
//! ```
//! use bytes::BytesMut;
//! use sockit::framing::{Framed, len32};
//!
//! let mut buf = BytesMut::new();
//! Framed::Len32.encode(&[b"hi"], &mut buf);
//! assert_eq!(&buf[..], b"\0\0\0\x02hi");
//! assert_eq!(len32::decode(&mut buf, 1024)?.unwrap().payload, "hi");
//! # Ok::<(), sockit::framing::FrameError>(())
//! ```

use bytes::BytesMut;

use super::{Found, FrameError, Framed, Message};

/// The size of the length prefix.
const HEADER: usize = 4;

/// Takes the first whole frame off `buf`, or `Ok(None)` if it has not all arrived.
///
/// Reserves room for the rest of a frame whose header has arrived, so the
/// reads that follow fill it without reallocating.
///
/// # Errors
///
/// [`FrameError::TooLong`] as soon as a header announces more than `max` bytes.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use sockit::framing::len32;
///
/// let mut buf = BytesMut::from(&b"\0\0\0\x05he"[..]);
/// assert_eq!(len32::decode(&mut buf, 1024)?, None);
/// buf.extend_from_slice(b"llo");
/// assert_eq!(len32::decode(&mut buf, 1024)?.unwrap().payload, "hello");
/// assert!(len32::decode(&mut BytesMut::from(&b"\0\0\x04\0"[..]), 1023).is_err());
/// # Ok::<(), sockit::framing::FrameError>(())
/// ```
pub fn decode(buf: &mut BytesMut, max: usize) -> Result<Option<Message>, FrameError> {
    Ok(find(buf, max)?.map(|found| found.take(buf)))
}

/// Where the first frame in `buf` lies, as [`decode`] takes it; makes room
/// in `buf` for the rest of a frame that has not all arrived.
pub(super) fn find(buf: &mut BytesMut, max: usize) -> Result<Option<Found>, FrameError> {
    let Some(header) = buf.first_chunk::<HEADER>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*header) as usize;
    if len > max {
        return Err(FrameError::TooLong {
            limit: max,
            framed: Framed::Len32,
        });
    }
    if buf.len() < HEADER + len {
        buf.reserve(HEADER + len - buf.len());
        return Ok(None);
    }
    Ok(Some(Found {
        start: HEADER,
        end: HEADER + len,
        taken: HEADER + len,
        framed: Framed::Len32,
    }))
}

/// How many bytes the frame at the front of `buf` still lacks.
pub(super) fn missing(buf: &[u8]) -> usize {
    match buf.first_chunk::<HEADER>() {
        Some(header) => (HEADER + u32::from_be_bytes(*header) as usize).saturating_sub(buf.len()),
        None => HEADER - buf.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_frames_back_to_back() {
        let mut buf = BytesMut::from(&b"\0\0\0\x03abc\0\0\0\0\0\0\0\x02x"[..]);
        assert_eq!(&decode(&mut buf, 8).unwrap().unwrap().payload[..], b"abc");
        assert_eq!(&decode(&mut buf, 8).unwrap().unwrap().payload[..], b"");
        assert_eq!(decode(&mut buf, 8), Ok(None));
        assert_eq!(&buf[..], b"\0\0\0\x02x");
        assert_eq!(missing(&buf), 1);
    }

    #[test]
    fn refuses_a_header_over_max_without_waiting_for_the_body() {
        let mut buf = BytesMut::from(&b"\xff\xff\xff\xff"[..]);
        assert_eq!(
            decode(&mut buf, 1024),
            Err(FrameError::TooLong {
                limit: 1024,
                framed: Framed::Len32
            })
        );
        assert!(buf.capacity() < 1024, "reserved for a refused frame");
    }
}
