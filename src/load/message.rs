//! Request messages that name their connection and sequence number, and the
//! exact reply each service owes to one.
//!
//! A request of `size` bytes starts with its [`Id`], sixteen lowercase hex
//! digits (`cccccc` the connection, `ssssssssss` the sequence number), and is
//! padded with `abc…z` repeated:
//!
//! ```text
//! 000002000000001fabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzab
//! ```
//!
//! Only printable ASCII, so no byte of it is a line ending (`line` framing), it
//! is never the greet service's `exit`, and a dump of the traffic is readable.
//! The id lets a datagram reply be matched to its request however datagrams
//! are lost or reordered, and makes every request different, so a server
//! that answers with a stale or another connection's reply is caught.

use bytes::BytesMut;

use crate::framing::Framed;
use crate::{Builtin, Greet, Transport};

/// The length of an [`Id`] written in a message: the shortest message size.
///
/// # Examples
///
/// ```
/// use sockit::load::{ID_LEN, Id};
///
/// assert_eq!(Id::new(0, 0).encode().len(), ID_LEN);
/// ```
pub const ID_LEN: usize = 16;

const CONN_DIGITS: usize = 6;
const SEQ_DIGITS: usize = ID_LEN - CONN_DIGITS;

/// The most connections whose ids fit in a message.
///
/// # Examples
///
/// ```
/// use sockit::load::{Id, MAX_CONNECTIONS};
///
/// assert_eq!(MAX_CONNECTIONS, 16_777_216); // six hex digits
/// assert_eq!(&Id::new(MAX_CONNECTIONS as u32 - 1, 0).encode()[..6], b"ffffff");
/// ```
pub const MAX_CONNECTIONS: usize = 1 << (4 * CONN_DIGITS);

/// Sequence numbers are written modulo this (2⁴⁰: twelve days of a million
/// messages a second on one connection).
const SEQ_MODULUS: u64 = 1 << (4 * SEQ_DIGITS);

/// What the padding after the id repeats.
const PADDING: &[u8] = b"abcdefghijklmnopqrstuvwxyz";

/// Which request a message is: its connection and its sequence number on it.
///
/// # Examples
///
/// ```
/// use sockit::load::Id;
///
/// let id = Id::new(2, 31);
/// assert_eq!(&id.encode(), b"000002000000001f");
/// assert_eq!(Id::parse(b"000002000000001f"), Some(id));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Id {
    conn: u32,
    seq: u64,
}

impl Id {
    /// The id of request `seq` on connection `conn`; `seq` is kept modulo 2⁴⁰,
    /// as it is written.
    ///
    /// # Panics
    ///
    /// Panics if `conn` is not below [`MAX_CONNECTIONS`].
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::Id;
    ///
    /// let id = Id::new(3, (1 << 40) + 5); // the sequence number wraps at 2⁴⁰
    /// assert_eq!((id.conn(), id.seq()), (3, 5));
    /// ```
    pub fn new(conn: u32, seq: u64) -> Self {
        assert!((conn as usize) < MAX_CONNECTIONS, "connection {conn} has no id");
        Id {
            conn,
            seq: seq % SEQ_MODULUS,
        }
    }

    /// The connection.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::Id;
    ///
    /// assert_eq!(Id::parse(b"00000a0000000001").unwrap().conn(), 10);
    /// ```
    pub fn conn(self) -> u32 {
        self.conn
    }

    /// The sequence number, modulo 2⁴⁰.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::Id;
    ///
    /// assert_eq!(Id::parse(b"00000a0000000100").unwrap().seq(), 256);
    /// ```
    pub fn seq(self) -> u64 {
        self.seq
    }

    /// The id as a message carries it: sixteen lowercase hex digits.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::Id;
    ///
    /// assert_eq!(&Id::new(255, 4096).encode(), b"0000ff0000001000");
    /// ```
    pub fn encode(self) -> [u8; ID_LEN] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0; ID_LEN];
        let digits = (u128::from(self.conn) << (4 * SEQ_DIGITS)) | u128::from(self.seq);
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = HEX[((digits >> (4 * (ID_LEN - 1 - i))) & 0xf) as usize];
        }
        out
    }

    /// The id at the start of `bytes`, if they start with sixteen lowercase
    /// hex digits.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::Id;
    ///
    /// assert_eq!(Id::parse(b"0000010000000002abcd"), Some(Id::new(1, 2)));
    /// assert_eq!(Id::parse(b"0000010000000002"[..15].as_ref()), None); // too short
    /// assert_eq!(Id::parse(b"000001000000000G"), None); // not lowercase hex
    /// ```
    pub fn parse(bytes: &[u8]) -> Option<Id> {
        let digits = bytes.get(..ID_LEN)?;
        let mut value: u128 = 0;
        for &byte in digits {
            let digit = match byte {
                b'0'..=b'9' => byte - b'0',
                b'a'..=b'f' => byte - b'a' + 10,
                _ => return None,
            };
            value = (value << 4) | u128::from(digit);
        }
        Some(Id {
            conn: u32::try_from(value >> (4 * SEQ_DIGITS)).expect("six hex digits fit in a u32"),
            seq: (value as u64) % SEQ_MODULUS,
        })
    }
}

/// The requests of a run and the replies they are owed, for one service on
/// one kind of transport.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use sockit::framing::Framed;
/// use sockit::load::{Id, Messages};
/// use sockit::{Builtin, Transport};
///
/// let messages = Messages::new(Builtin::Greet, Transport::Stream, 20);
/// let mut out = BytesMut::new();
/// messages.encode_request(Id::new(1, 2), Framed::Line, &mut out);
/// assert_eq!(&out[..], b"0000010000000002abcd\n");
/// assert!(messages.is_reply(b"Hello, 0000010000000002abcd!", Id::new(1, 2)));
/// assert!(!messages.is_reply(b"Hello, 0000010000000003abcd!", Id::new(1, 2)));
/// ```
#[derive(Debug, Clone)]
pub struct Messages {
    padding: Box<[u8]>,
    prefix: &'static [u8],
    suffix: &'static [u8],
    greeting: Option<&'static [u8]>,
}

impl Messages {
    /// Requests of `size` bytes to `service` over `transport`.
    ///
    /// The replies expected: greet answers `Hello, M!` on streams and
    /// seqpacket (after its greeting) and `Hello, M` to a datagram; echo
    /// answers `M`.
    ///
    /// # Panics
    ///
    /// Panics if `size` is less than [`ID_LEN`], or `service` is
    /// [`Builtin::Discard`], which answers nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::Messages;
    /// use sockit::{Builtin, Transport};
    ///
    /// let greet = Messages::new(Builtin::Greet, Transport::Datagram, 64);
    /// assert_eq!((greet.size(), greet.reply_len()), (64, 71)); // "Hello, " and no "!"
    /// assert_eq!(greet.greeting(), None);
    /// let echo = Messages::new(Builtin::Echo, Transport::Stream, 64);
    /// assert_eq!(echo.reply_len(), 64);
    /// ```
    pub fn new(service: Builtin, transport: Transport, size: usize) -> Self {
        assert!(size >= ID_LEN, "a request of {size} bytes cannot carry its id");
        let padding = PADDING.iter().copied().cycle().take(size - ID_LEN).collect();
        let (prefix, suffix, greeting): (&[u8], &[u8], _) = match (service, transport) {
            (Builtin::Greet, Transport::Datagram) => (b"Hello, ", b"", None),
            (Builtin::Greet, _) => (b"Hello, ", b"!", Some(Greet::GREETING)),
            (Builtin::Echo, _) => (b"", b"", None),
            (Builtin::Discard, _) => panic!("the discard service sends no replies"),
        };
        Messages {
            padding,
            prefix,
            suffix,
            greeting,
        }
    }

    /// The size of every request, framing not included.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::Messages;
    /// use sockit::{Builtin, Transport};
    ///
    /// assert_eq!(Messages::new(Builtin::Echo, Transport::Stream, 16).size(), 16);
    /// ```
    pub fn size(&self) -> usize {
        ID_LEN + self.padding.len()
    }

    /// The size of every correct reply, framing not included.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::Messages;
    /// use sockit::{Builtin, Transport};
    ///
    /// assert_eq!(Messages::new(Builtin::Greet, Transport::Stream, 64).reply_len(), 72); // "Hello, " and "!"
    /// ```
    pub fn reply_len(&self) -> usize {
        self.prefix.len() + self.size() + self.suffix.len()
    }

    /// What a new connection is greeted with first, if the service greets.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::Messages;
    /// use sockit::{Builtin, Transport};
    ///
    /// let greet = Messages::new(Builtin::Greet, Transport::Seqpacket, 16);
    /// assert_eq!(greet.greeting(), Some(&b"Hello, I am server"[..]));
    /// ```
    pub fn greeting(&self) -> Option<&'static [u8]> {
        self.greeting
    }

    /// Appends request `id`, framed.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use sockit::framing::Framed;
    /// use sockit::load::{Id, Messages};
    /// use sockit::{Builtin, Transport};
    ///
    /// let messages = Messages::new(Builtin::Echo, Transport::Stream, 18);
    /// let mut out = BytesMut::new();
    /// messages.encode_request(Id::new(0, 1), Framed::Len32, &mut out);
    /// assert_eq!(&out[..], b"\0\0\0\x120000000000000001ab");
    /// ```
    pub fn encode_request(&self, id: Id, framed: Framed, out: &mut BytesMut) {
        framed.encode(&[&id.encode(), &self.padding], out);
    }

    /// Writes request `id` into `out`, a buffer of [`Messages::size`] bytes
    /// (one datagram or packet).
    ///
    /// # Panics
    ///
    /// Panics if `out` is not [`Messages::size`] bytes long.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::{Id, Messages};
    /// use sockit::{Builtin, Transport};
    ///
    /// let messages = Messages::new(Builtin::Greet, Transport::Datagram, 30);
    /// let mut datagram = vec![0; messages.size()];
    /// messages.write_request(Id::new(2, 31), &mut datagram);
    /// assert_eq!(datagram, b"000002000000001fabcdefghijklmn");
    /// ```
    pub fn write_request(&self, id: Id, out: &mut [u8]) {
        let (head, tail) = out.split_at_mut(ID_LEN);
        head.copy_from_slice(&id.encode());
        tail.copy_from_slice(&self.padding);
    }

    /// Whether `reply` is, byte for byte, the reply owed to request `id`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::{Id, Messages};
    /// use sockit::{Builtin, Transport};
    ///
    /// let messages = Messages::new(Builtin::Greet, Transport::Datagram, 20);
    /// assert!(messages.is_reply(b"Hello, 0000010000000002abcd", Id::new(1, 2)));
    /// assert!(!messages.is_reply(b"Hello, 0000010000000002abcd!", Id::new(1, 2))); // a stream's reply
    /// assert!(!messages.is_reply(b"Hello, 0000010000000002abce", Id::new(1, 2))); // corrupt
    /// ```
    pub fn is_reply(&self, reply: &[u8], id: Id) -> bool {
        let Some(rest) = reply.strip_prefix(self.prefix) else {
            return false;
        };
        let Some(rest) = rest.strip_suffix(self.suffix) else {
            return false;
        };
        rest.len() == self.size() && rest[..ID_LEN] == id.encode() && rest[ID_LEN..] == *self.padding
    }

    /// The id of the request `reply` claims to answer, read where a correct
    /// reply carries it; whether the rest is right is for [`Messages::is_reply`].
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::{Id, Messages};
    /// use sockit::{Builtin, Transport};
    ///
    /// let messages = Messages::new(Builtin::Greet, Transport::Datagram, 20);
    /// assert_eq!(messages.reply_id(b"Hello, 0000070000000009abcd"), Some(Id::new(7, 9)));
    /// assert_eq!(messages.reply_id(b"Goodbye"), None);
    /// ```
    pub fn reply_id(&self, reply: &[u8]) -> Option<Id> {
        reply.strip_prefix(self.prefix).and_then(Id::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_at_their_limits() {
        for (conn, seq, text) in [
            (0, 0, &b"0000000000000000"[..]),
            (0xffffff, SEQ_MODULUS - 1, b"ffffffffffffffff"),
            (0xabcdef, 0x0123456789, b"abcdef0123456789"),
        ] {
            let id = Id::new(conn, seq);
            assert_eq!(&id.encode(), text);
            assert_eq!(Id::parse(text), Some(id));
        }
        assert_eq!(Id::new(3, SEQ_MODULUS + 5), Id::new(3, 5));
    }

    #[test]
    fn ids_refuse_what_is_not_sixteen_lowercase_hex_digits() {
        assert_eq!(Id::parse(b"000000000000000"), None);
        assert_eq!(Id::parse(b"000000000000000A"), None);
        assert_eq!(Id::parse(b"00000000000000 0"), None);
        assert_eq!(Id::parse(b"000001000000000ftail"), Some(Id::new(1, 15)));
    }

    #[test]
    #[should_panic(expected = "connection 16777216 has no id")]
    fn too_many_connections_panic() {
        let _ = Id::new(1 << 24, 0);
    }

    #[test]
    fn requests_are_the_id_then_the_padding_in_each_framing() {
        let messages = Messages::new(Builtin::Echo, Transport::Stream, 44);
        let body = b"000007000000002aabcdefghijklmnopqrstuvwxyzab";
        let id = Id::new(7, 42);
        for (framed, want) in [
            (Framed::Raw, body.to_vec()),
            (Framed::Line, [&body[..], b"\n"].concat()),
            (Framed::Len32, [&b"\0\0\0\x2c"[..], body].concat()),
        ] {
            let mut out = BytesMut::new();
            messages.encode_request(id, framed, &mut out);
            assert_eq!(&out[..], &want[..], "{framed:?}");
        }
        let mut packet = [0; 44];
        messages.write_request(id, &mut packet);
        assert_eq!(&packet[..], &body[..]);
        assert_eq!(messages.size(), 44);
    }

    #[test]
    fn the_shortest_request_is_its_id() {
        let messages = Messages::new(Builtin::Greet, Transport::Datagram, ID_LEN);
        let mut packet = [0; ID_LEN];
        messages.write_request(Id::new(1, 1), &mut packet);
        assert_eq!(&packet, b"0000010000000001");
        assert!(messages.is_reply(b"Hello, 0000010000000001", Id::new(1, 1)));
    }

    #[test]
    fn each_service_owes_its_own_reply() {
        let id = Id::new(1, 2);
        let m = b"0000010000000002abcd";
        let cases = [
            (
                Builtin::Greet,
                Transport::Stream,
                [&b"Hello, "[..], m, b"!"].concat(),
            ),
            (
                Builtin::Greet,
                Transport::Seqpacket,
                [&b"Hello, "[..], m, b"!"].concat(),
            ),
            (Builtin::Greet, Transport::Datagram, [&b"Hello, "[..], m].concat()),
            (Builtin::Echo, Transport::Stream, m.to_vec()),
            (Builtin::Echo, Transport::Datagram, m.to_vec()),
            (Builtin::Echo, Transport::Seqpacket, m.to_vec()),
        ];
        for (service, transport, reply) in cases {
            let messages = Messages::new(service, transport, 20);
            assert_eq!(messages.reply_len(), reply.len());
            assert!(messages.is_reply(&reply, id), "{service} {transport:?}");
            assert_eq!(messages.reply_id(&reply), Some(id));
            assert!(!messages.is_reply(&reply, Id::new(1, 3)));
            assert!(!messages.is_reply(&reply, Id::new(2, 2)));
            // One byte changed anywhere, one missing, one more: all wrong.
            for at in 0..reply.len() {
                let mut bad = reply.clone();
                bad[at] ^= 0x20;
                assert!(!messages.is_reply(&bad, id), "{service} {transport:?} byte {at}");
            }
            assert!(!messages.is_reply(&reply[..reply.len() - 1], id));
            assert!(!messages.is_reply(&[&reply[..], b"!"].concat(), id));
        }
    }

    #[test]
    fn only_streams_and_seqpacket_of_greet_are_greeted() {
        let greeting = |service, transport| Messages::new(service, transport, 16).greeting();
        assert_eq!(
            greeting(Builtin::Greet, Transport::Stream),
            Some(&b"Hello, I am server"[..])
        );
        assert_eq!(
            greeting(Builtin::Greet, Transport::Seqpacket),
            Some(&b"Hello, I am server"[..])
        );
        assert_eq!(greeting(Builtin::Greet, Transport::Datagram), None);
        assert_eq!(greeting(Builtin::Echo, Transport::Stream), None);
    }

    #[test]
    fn a_reply_without_an_id_where_one_belongs_has_none() {
        let messages = Messages::new(Builtin::Greet, Transport::Datagram, 16);
        assert_eq!(messages.reply_id(b"Hello, nope"), None);
        assert_eq!(messages.reply_id(b"0000010000000001"), None);
    }
}
