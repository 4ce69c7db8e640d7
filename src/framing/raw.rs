//! `raw` framing: a message is exactly what one read returned.
//!
//! This is the seed's framing (`data = sock.recv(1024)`): it works for a client
//! that waits for each reply before sending again, and cannot tell pipelined
//! messages apart, because TCP has no message boundaries.
//!
//! # Examples
//!
//! ```
//! use bytes::BytesMut;
//! use sockit::framing::raw;
//!
//! // Two messages sent back to back arrive in one read: raw sees one.
//! let mut buf = BytesMut::from(&b"bob\nalice\n"[..]);
//! assert_eq!(raw::decode(&mut buf, 1024).unwrap().payload, "bob\nalice\n");
//! ```

use bytes::BytesMut;

use super::{Found, Framed, Message};

/// Takes everything buffered, up to `max` bytes, as one message.
///
/// Called once per read, `buf` holds exactly that read; a read longer than
/// `max` is cut into messages of `max` bytes.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use sockit::framing::raw;
///
/// let mut buf = BytesMut::from(&b"client1"[..]);
/// assert_eq!(raw::decode(&mut buf, 4).unwrap().payload, "clie");
/// assert_eq!(raw::decode(&mut buf, 4).unwrap().payload, "nt1");
/// assert_eq!(raw::decode(&mut buf, 4), None);
/// ```
pub fn decode(buf: &mut BytesMut, max: usize) -> Option<Message> {
    Some(find(buf, max)?.take(buf))
}

/// Where the first message in `buf` lies: everything buffered, up to `max`
/// bytes; `None` when nothing is.
#[inline]
pub(super) fn find(buf: &[u8], max: usize) -> Option<Found> {
    (!buf.is_empty()).then(|| Found::bare(buf.len().min(max.max(1)), Framed::Raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_read_is_one_message() {
        let mut buf = BytesMut::from(&b"client1\nclient2"[..]);
        let message = decode(&mut buf, 1024).unwrap();
        assert_eq!(&message.payload[..], b"client1\nclient2");
        assert_eq!(message.framed, Framed::Raw);
        assert!(buf.is_empty());
        assert_eq!(decode(&mut buf, 1024), None);
    }

    #[test]
    fn a_read_longer_than_the_maximum_is_cut() {
        let mut buf = BytesMut::from(&b"abcde"[..]);
        assert_eq!(&decode(&mut buf, 2).unwrap().payload[..], b"ab");
        assert_eq!(&decode(&mut buf, 2).unwrap().payload[..], b"cd");
        assert_eq!(&decode(&mut buf, 2).unwrap().payload[..], b"e");
        assert_eq!(decode(&mut buf, 2), None);
    }
}
