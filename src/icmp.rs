//! ICMP echo (ping) as pure code: the internet checksum, echo messages over
//! IPv4 and IPv6, the IPv4 header, and the tally of one ping run.
//!
//! Nothing here touches a socket or a clock: callers pass the time in. The
//! sockets that carry these messages are in [`crate::net::icmp`].
//!
//! What a socket hands over differs by kind, and so does the parser to use:
//!
//! | socket | receives | parse with |
//! | --- | --- | --- |
//! | raw IPv4 (`SOCK_RAW`) | the IPv4 header, then the ICMP message | [`parse_ipv4_icmp`] |
//! | ICMP datagram IPv4 (`SOCK_DGRAM`) | the ICMP message only | [`parse_icmpv4`] |
//! | raw or datagram IPv6 | the ICMPv6 message only | [`parse_icmpv6`] |
//!
//! ```
//! use sockit::icmp::{self, Echo, EchoKind, Message, Version};
//!
//! let echo = Echo { id: 0x1234, seq: 1, payload: b"ping" };
//! let bytes = echo.encode(Version::V4, EchoKind::Request);
//! assert_eq!(icmp::parse_icmpv4(&bytes), Ok(Message::EchoRequest(echo)));
//! ```

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// The length of an echo message's header: type, code, checksum, id, sequence.
///
/// # Examples
///
/// ```
/// use sockit::icmp::{ECHO_HEADER_LEN, Echo, EchoKind, Version};
///
/// let echo = Echo { id: 1, seq: 1, payload: b"ping" };
/// assert_eq!(echo.encode(Version::V4, EchoKind::Request).len(), ECHO_HEADER_LEN + 4);
/// ```
pub const ECHO_HEADER_LEN: usize = 8;
/// The length of an IPv4 header without options (IHL 5).
///
/// # Examples
///
/// ```
/// use std::net::Ipv4Addr;
/// use sockit::icmp::{IPV4_HEADER_LEN, Ipv4Header};
///
/// let header = Ipv4Header::icmp(Ipv4Addr::UNSPECIFIED, Ipv4Addr::LOCALHOST, 0, 64, 8)?;
/// assert_eq!(header.encode().len(), IPV4_HEADER_LEN);
/// assert_eq!(header.total_length, 28);
/// # Ok::<(), sockit::icmp::IcmpError>(())
/// ```
pub const IPV4_HEADER_LEN: usize = 20;
/// The IPv4 protocol number of ICMP.
///
/// # Examples
///
/// ```
/// use std::net::Ipv4Addr;
/// use sockit::icmp::{Ipv4Header, PROTOCOL_ICMP};
///
/// let header = Ipv4Header::icmp(Ipv4Addr::UNSPECIFIED, Ipv4Addr::LOCALHOST, 0, 64, 8)?;
/// assert_eq!(header.encode()[9], PROTOCOL_ICMP);
/// # Ok::<(), sockit::icmp::IcmpError>(())
/// ```
pub const PROTOCOL_ICMP: u8 = 1;
/// How many payload bytes the send timestamp takes (a 64-bit `timeval`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sockit::icmp::{TIMESTAMP_LEN, echo_payload};
///
/// let payload = echo_payload(20, Duration::from_secs(1));
/// assert_eq!(&payload[TIMESTAMP_LEN..], [16, 17, 18, 19]);
/// ```
pub const TIMESTAMP_LEN: usize = 16;
/// The largest echo payload one IPv4 packet can carry (65535 − 20 − 8).
///
/// # Examples
///
/// ```
/// use sockit::icmp::{MAX_PAYLOAD_V4, Version};
///
/// assert_eq!(MAX_PAYLOAD_V4, 65_507);
/// assert_eq!(Version::V4.max_payload(), MAX_PAYLOAD_V4);
/// ```
pub const MAX_PAYLOAD_V4: usize = 65_535 - IPV4_HEADER_LEN - ECHO_HEADER_LEN;
/// The largest echo payload one IPv6 packet can carry without jumbograms
/// (65535 − 8: the IPv6 payload length does not count its own header).
///
/// # Examples
///
/// ```
/// use sockit::icmp::{MAX_PAYLOAD_V6, Version};
///
/// assert_eq!(MAX_PAYLOAD_V6, 65_527);
/// assert_eq!(Version::V6.max_payload(), MAX_PAYLOAD_V6);
/// ```
pub const MAX_PAYLOAD_V6: usize = 65_535 - ECHO_HEADER_LEN;

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
const NEXT_HEADER_ICMPV6: u8 = 58;

/// What is wrong with a packet that could not be parsed.
///
/// # Examples
///
/// ```
/// use sockit::icmp::{self, IcmpError};
///
/// let err = icmp::parse_icmpv4(b"\x08\0\0").unwrap_err();
/// assert_eq!(err, IcmpError::Truncated { what: "ICMP message", needed: 8, got: 3 });
/// assert_eq!(err.to_string(), "ICMP message is truncated: 3 bytes, at least 8 needed");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IcmpError {
    /// The packet ends before the headers it announces.
    #[error("{what} is truncated: {got} bytes, at least {needed} needed")]
    Truncated {
        /// The part that is cut short.
        what: &'static str,
        /// How many bytes it needs.
        needed: usize,
        /// How many there are.
        got: usize,
    },
    /// The IP version field is not 4.
    #[error("not an IPv4 packet (version {version})")]
    NotIpv4 {
        /// The version found.
        version: u8,
    },
    /// The IPv4 header length (IHL) is below 5 words.
    #[error("bad IPv4 header length: IHL {ihl}")]
    BadHeaderLength {
        /// The IHL field, in 32-bit words.
        ihl: u8,
    },
    /// The IPv4 total length is shorter than the header, or longer than the packet.
    #[error("bad IPv4 total length {total_length} for a {header_len}-byte header in {got} bytes")]
    BadTotalLength {
        /// The total length field.
        total_length: u16,
        /// The header length from the IHL.
        header_len: usize,
        /// How many bytes were received.
        got: usize,
    },
    /// The IPv4 packet carries another protocol than ICMP.
    #[error("not ICMP: IPv4 protocol {protocol}")]
    NotIcmp {
        /// The protocol field.
        protocol: u8,
    },
    /// A checksum does not add up.
    #[error("bad {what} checksum {found:#06x}")]
    BadChecksum {
        /// What the checksum covers: `IPv4 header`, `ICMP` or `ICMPv6`.
        what: &'static str,
        /// The checksum field as received.
        found: u16,
    },
    /// The payload is larger than one packet of this version can carry.
    #[error("a {size}-byte payload is larger than the {max} bytes one packet can carry")]
    TooLarge {
        /// The payload size asked for.
        size: usize,
        /// The largest that fits.
        max: usize,
    },
}

/// The IP version an ICMP message travels over: ICMP (IPv4) or ICMPv6.
///
/// # Examples
///
/// ```
/// use sockit::icmp::{Echo, EchoKind, Version};
///
/// let echo = Echo { id: 7, seq: 1, payload: b"" };
/// assert_eq!(echo.encode(Version::V4, EchoKind::Request)[0], 8);
/// assert_eq!(echo.encode(Version::V6, EchoKind::Request)[0], 128);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// ICMP for IPv4 (RFC 792).
    V4,
    /// ICMPv6 (RFC 4443).
    V6,
}

impl Version {
    /// The largest echo payload one packet of this version can carry.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::icmp::Version;
    ///
    /// assert_eq!(Version::V4.max_payload(), 65_535 - 20 - 8);
    /// assert_eq!(Version::V6.max_payload(), 65_535 - 8);
    /// ```
    pub fn max_payload(self) -> usize {
        match self {
            Version::V4 => MAX_PAYLOAD_V4,
            Version::V6 => MAX_PAYLOAD_V6,
        }
    }

    fn echo_type(self, kind: EchoKind) -> u8 {
        match (self, kind) {
            (Version::V4, EchoKind::Request) => ECHO_REQUEST_V4,
            (Version::V4, EchoKind::Reply) => ECHO_REPLY_V4,
            (Version::V6, EchoKind::Request) => ECHO_REQUEST_V6,
            (Version::V6, EchoKind::Reply) => ECHO_REPLY_V6,
        }
    }
}

/// Which half of an echo exchange a message is.
///
/// # Examples
///
/// ```
/// use sockit::icmp::{Echo, EchoKind, Version};
///
/// let echo = Echo { id: 7, seq: 1, payload: b"" };
/// assert_eq!(echo.encode(Version::V4, EchoKind::Reply)[0], 0);
/// assert_eq!(echo.encode(Version::V6, EchoKind::Reply)[0], 129);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EchoKind {
    /// Echo request: type 8 (ICMP) or 128 (ICMPv6).
    Request,
    /// Echo reply: type 0 (ICMP) or 129 (ICMPv6).
    Reply,
}

/// The body of an echo request or reply: identifier, sequence number and the
/// payload the reply must carry back unchanged.
///
/// # Examples
///
/// A reply carries back the request's identifier, sequence number and payload:
///
/// ```
/// use sockit::icmp::{self, Echo, EchoKind, Message, Version};
///
/// let request = Echo { id: 0x1234, seq: 1, payload: b"ping" };
/// let reply = request.encode(Version::V4, EchoKind::Reply);
/// assert_eq!(icmp::parse_icmpv4(&reply), Ok(Message::EchoReply(request)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Echo<'a> {
    /// The identifier: which pinger this is (an ICMP datagram socket's port).
    pub id: u16,
    /// The sequence number: which probe this is.
    pub seq: u16,
    /// The data after the 8-byte header.
    pub payload: &'a [u8],
}

impl Echo<'_> {
    /// The ICMP message, ready to send.
    ///
    /// Over IPv4 the checksum is filled in. Over IPv6 it is left zero: it
    /// covers a pseudo-header with both addresses, and the kernel computes it
    /// for every ICMPv6 socket (`IPV6_CHECKSUM` at offset 2); to fill it here
    /// instead, use [`set_icmpv6_checksum`].
    ///
    /// # Panics
    ///
    /// If the payload is larger than [`Version::max_payload`]; check with
    /// [`check_payload_size`] first.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::icmp::{Echo, EchoKind, Version};
    ///
    /// let echo = Echo { id: 0x1234, seq: 1, payload: b"ping" };
    /// assert_eq!(
    ///     echo.encode(Version::V4, EchoKind::Request),
    ///     b"\x08\x00\x06\xfa\x12\x34\x00\x01ping",
    /// );
    /// // Over IPv6 the kernel fills in the checksum.
    /// assert_eq!(
    ///     echo.encode(Version::V6, EchoKind::Request),
    ///     b"\x80\x00\x00\x00\x12\x34\x00\x01ping",
    /// );
    /// ```
    pub fn encode(&self, version: Version, kind: EchoKind) -> Vec<u8> {
        let max = version.max_payload();
        assert!(self.payload.len() <= max, "echo payload over {max} bytes");
        let mut message = Vec::with_capacity(ECHO_HEADER_LEN + self.payload.len());
        message.extend_from_slice(&[version.echo_type(kind), 0, 0, 0]);
        message.extend_from_slice(&self.id.to_be_bytes());
        message.extend_from_slice(&self.seq.to_be_bytes());
        message.extend_from_slice(self.payload);
        if version == Version::V4 {
            let sum = checksum(&message);
            message[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        message
    }
}

/// Checks that `size` payload bytes fit one packet of `version`.
///
/// # Errors
///
/// [`IcmpError::TooLarge`] when they do not.
///
/// # Examples
///
/// ```
/// use sockit::icmp::{self, IcmpError, Version};
///
/// assert_eq!(icmp::check_payload_size(Version::V6, 65_527), Ok(()));
/// assert_eq!(
///     icmp::check_payload_size(Version::V4, 65_527),
///     Err(IcmpError::TooLarge { size: 65_527, max: 65_507 }),
/// );
/// ```
pub fn check_payload_size(version: Version, size: usize) -> Result<(), IcmpError> {
    let max = version.max_payload();
    if size > max {
        return Err(IcmpError::TooLarge { size, max });
    }
    Ok(())
}

/// An ICMP message as far as a pinger cares.
///
/// # Examples
///
/// ```
/// use sockit::icmp::{self, Message};
///
/// // Destination unreachable (3), port unreachable (3), checksum filled in.
/// let unreachable = [3, 3, 0xfc, 0xfc, 0, 0, 0, 0];
/// assert_eq!(icmp::parse_icmpv4(&unreachable), Ok(Message::Other { kind: 3, code: 3 }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message<'a> {
    /// An echo request (one's own, looped back, on a raw socket).
    EchoRequest(Echo<'a>),
    /// An echo reply.
    EchoReply(Echo<'a>),
    /// Any other message (unreachable, time exceeded, …), or an echo type
    /// with a code other than 0.
    Other {
        /// The ICMP type.
        kind: u8,
        /// The ICMP code.
        code: u8,
    },
}

/// The RFC 1071 internet checksum of `data`: the ones' complement of the
/// ones' complement sum of its 16-bit big-endian words (an odd last byte is
/// padded with zero). Over data that includes a correct checksum field, it
/// is 0.
///
/// # Examples
///
/// The example of RFC 1071 §3:
///
/// ```
/// use sockit::icmp::checksum;
///
/// assert_eq!(checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0x220d);
/// assert_eq!(checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7, 0x22, 0x0d]), 0);
/// ```
pub fn checksum(data: &[u8]) -> u16 {
    fold(sum_words(0, data))
}

/// The ICMPv6 checksum of `message` sent from `src` to `dst`: RFC 1071 over
/// the RFC 8200 §8.1 pseudo-header (addresses, upper-layer length, next
/// header 58) and the message.
///
/// # Panics
///
/// If `message` is longer than 4 GiB, which no IPv6 packet is.
///
/// # Examples
///
/// ```
/// use std::net::Ipv6Addr;
/// use sockit::icmp::{Echo, EchoKind, Version, icmpv6_checksum};
///
/// let echo = Echo { id: 0x1234, seq: 1, payload: b"ping" };
/// let message = echo.encode(Version::V6, EchoKind::Request);
/// let localhost = Ipv6Addr::LOCALHOST;
/// assert_eq!(icmpv6_checksum(localhost, localhost, &message), 0x8eb1);
/// ```
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let length = u32::try_from(message.len()).expect("an ICMPv6 message fits in 4 GiB");
    let mut sum = sum_words(0, &src.octets());
    sum = sum_words(sum, &dst.octets());
    sum = sum_words(sum, &length.to_be_bytes());
    sum = sum_words(sum, &[0, 0, 0, NEXT_HEADER_ICMPV6]);
    fold(sum_words(sum, message))
}

/// Fills in the checksum of the ICMPv6 `message` sent from `src` to `dst`.
///
/// # Panics
///
/// If `message` is shorter than 4 bytes.
///
/// # Examples
///
/// ```
/// use std::net::Ipv6Addr;
/// use sockit::icmp::{self, Echo, EchoKind, Message, Version};
///
/// let echo = Echo { id: 0x1234, seq: 1, payload: b"ping" };
/// let mut message = echo.encode(Version::V6, EchoKind::Request);
/// let localhost = Ipv6Addr::LOCALHOST;
/// icmp::set_icmpv6_checksum(&mut message, localhost, localhost);
/// assert_eq!(&message[2..4], [0x8e, 0xb1]);
/// let checked = icmp::parse_icmpv6(&message, Some((localhost, localhost)));
/// assert_eq!(checked, Ok(Message::EchoRequest(echo)));
/// ```
pub fn set_icmpv6_checksum(message: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
    message[2..4].fill(0);
    let sum = icmpv6_checksum(src, dst, message);
    message[2..4].copy_from_slice(&sum.to_be_bytes());
}

/// Adds the 16-bit big-endian words of `data` to `sum`, without folding.
fn sum_words(mut sum: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(2);
    for word in &mut words {
        sum += u64::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    sum
}

/// Folds the carries back in and takes the ones' complement.
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Parses an ICMP (IPv4) message, as an ICMP datagram socket receives it or
/// as the payload of a raw socket's packet, and checks its checksum.
///
/// # Errors
///
/// [`IcmpError::Truncated`] below 8 bytes, [`IcmpError::BadChecksum`] when
/// the checksum does not add up.
///
/// # Examples
///
/// ```
/// use sockit::icmp::{self, Echo, IcmpError, Message};
///
/// let reply = b"\x00\x00\x0e\xfa\x12\x34\x00\x01ping";
/// let echo = Echo { id: 0x1234, seq: 1, payload: b"ping" };
/// assert_eq!(icmp::parse_icmpv4(reply), Ok(Message::EchoReply(echo)));
///
/// let corrupted = b"\x00\x00\x0e\xfa\x12\x34\x00\x01pong";
/// assert!(matches!(icmp::parse_icmpv4(corrupted), Err(IcmpError::BadChecksum { .. })));
/// ```
pub fn parse_icmpv4(message: &[u8]) -> Result<Message<'_>, IcmpError> {
    check_echo_header(message, "ICMP message")?;
    if checksum(message) != 0 {
        return Err(bad_checksum("ICMP", message));
    }
    Ok(classify(Version::V4, message))
}

/// Parses an ICMPv6 message, as raw and datagram IPv6 sockets receive it
/// (without the IPv6 header).
///
/// With `addresses` (the packet's source and destination) the checksum is
/// checked here too; without them it is left to the kernel, which checks it
/// before delivering to any ICMPv6 socket.
///
/// # Errors
///
/// [`IcmpError::Truncated`] below 8 bytes, [`IcmpError::BadChecksum`] when
/// the checksum does not add up.
///
/// # Examples
///
/// ```
/// use sockit::icmp::{self, Echo, Message};
///
/// // As an ICMPv6 socket receives a reply: the kernel checked the checksum.
/// let reply = b"\x81\x00\x00\x00\x12\x34\x00\x01ping";
/// let echo = Echo { id: 0x1234, seq: 1, payload: b"ping" };
/// assert_eq!(icmp::parse_icmpv6(reply, None), Ok(Message::EchoReply(echo)));
/// ```
pub fn parse_icmpv6(
    message: &[u8],
    addresses: Option<(Ipv6Addr, Ipv6Addr)>,
) -> Result<Message<'_>, IcmpError> {
    check_echo_header(message, "ICMPv6 message")?;
    if let Some((src, dst)) = addresses
        && icmpv6_checksum(src, dst, message) != 0
    {
        return Err(bad_checksum("ICMPv6", message));
    }
    Ok(classify(Version::V6, message))
}

/// Parses what a raw IPv4 ICMP socket receives: the IPv4 header (checked,
/// see [`Ipv4Header::parse`]), then an ICMP message (see [`parse_icmpv4`]).
///
/// # Errors
///
/// Any error of [`Ipv4Header::parse`] or [`parse_icmpv4`], and
/// [`IcmpError::NotIcmp`] when the packet carries another protocol.
///
/// # Examples
///
/// What a raw socket receives for a reply from 127.0.0.1:
///
/// ```
/// use std::net::Ipv4Addr;
/// use sockit::icmp::{self, Echo, EchoKind, Ipv4Header, Message, Version};
///
/// let echo = Echo { id: 0x1234, seq: 1, payload: b"ping" };
/// let message = echo.encode(Version::V4, EchoKind::Reply);
/// let localhost = Ipv4Addr::LOCALHOST;
/// let header = Ipv4Header::icmp(localhost, localhost, 7, 64, message.len())?;
/// let packet = [&header.encode()[..], &message].concat();
///
/// let (parsed, reply) = icmp::parse_ipv4_icmp(&packet)?;
/// assert_eq!((parsed.src, parsed.ttl), (localhost, 64));
/// assert_eq!(reply, Message::EchoReply(echo));
/// # Ok::<(), sockit::icmp::IcmpError>(())
/// ```
pub fn parse_ipv4_icmp(packet: &[u8]) -> Result<(Ipv4Header, Message<'_>), IcmpError> {
    let (header, payload) = Ipv4Header::parse(packet)?;
    if header.protocol != PROTOCOL_ICMP {
        return Err(IcmpError::NotIcmp {
            protocol: header.protocol,
        });
    }
    Ok((header, parse_icmpv4(payload)?))
}

fn check_echo_header(message: &[u8], what: &'static str) -> Result<(), IcmpError> {
    if message.len() < ECHO_HEADER_LEN {
        return Err(IcmpError::Truncated {
            what,
            needed: ECHO_HEADER_LEN,
            got: message.len(),
        });
    }
    Ok(())
}

fn bad_checksum(what: &'static str, message: &[u8]) -> IcmpError {
    IcmpError::BadChecksum {
        what,
        found: u16::from_be_bytes([message[2], message[3]]),
    }
}

/// Sorts a message of at least 8 bytes by type and code.
fn classify(version: Version, message: &[u8]) -> Message<'_> {
    let (kind, code) = (message[0], message[1]);
    let echo = Echo {
        id: u16::from_be_bytes([message[4], message[5]]),
        seq: u16::from_be_bytes([message[6], message[7]]),
        payload: &message[ECHO_HEADER_LEN..],
    };
    match code {
        0 if kind == version.echo_type(EchoKind::Request) => Message::EchoRequest(echo),
        0 if kind == version.echo_type(EchoKind::Reply) => Message::EchoReply(echo),
        _ => Message::Other { kind, code },
    }
}

/// The fields of an IPv4 header that a pinger reads or writes.
///
/// [`encode`](Ipv4Header::encode) writes a 20-byte header without options:
/// version 4, IHL 5, TOS 0, no flags, fragment offset 0, and the header
/// checksum; [`parse`](Ipv4Header::parse) reads one with or without options.
///
/// # Examples
///
/// ```
/// use std::net::Ipv4Addr;
/// use sockit::icmp::Ipv4Header;
///
/// let localhost = Ipv4Addr::LOCALHOST;
/// let header = Ipv4Header::icmp(localhost, localhost, 7, 64, 12)?;
/// let bytes = header.encode();
/// assert_eq!(Ipv4Header::parse(&[&bytes[..], &[0; 12]].concat())?.0, header);
/// # Ok::<(), sockit::icmp::IcmpError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Header {
    /// Header and payload, in bytes.
    pub total_length: u16,
    /// The identification field (for fragments; the kernel fills in 0).
    pub id: u16,
    /// Time to live: how many hops the packet may take.
    pub ttl: u8,
    /// The protocol of the payload ([`PROTOCOL_ICMP`] for ICMP).
    pub protocol: u8,
    /// The source address (the kernel fills in 0.0.0.0).
    pub src: Ipv4Addr,
    /// The destination address.
    pub dst: Ipv4Addr,
}

impl Ipv4Header {
    /// The header of an ICMP packet with `icmp_len` bytes of ICMP message.
    ///
    /// # Errors
    ///
    /// [`IcmpError::TooLarge`] when the packet would pass 65535 bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// use sockit::icmp::{IcmpError, Ipv4Header, PROTOCOL_ICMP};
    ///
    /// let header = Ipv4Header::icmp(Ipv4Addr::UNSPECIFIED, Ipv4Addr::LOCALHOST, 0, 1, 64)?;
    /// assert_eq!((header.total_length, header.protocol, header.ttl), (84, PROTOCOL_ICMP, 1));
    /// let too_big = Ipv4Header::icmp(Ipv4Addr::UNSPECIFIED, Ipv4Addr::LOCALHOST, 0, 1, 65_516);
    /// assert_eq!(too_big, Err(IcmpError::TooLarge { size: 65_516, max: 65_515 }));
    /// # Ok::<(), IcmpError>(())
    /// ```
    pub fn icmp(src: Ipv4Addr, dst: Ipv4Addr, id: u16, ttl: u8, icmp_len: usize) -> Result<Self, IcmpError> {
        let max = usize::from(u16::MAX) - IPV4_HEADER_LEN;
        let total_length = u16::try_from(IPV4_HEADER_LEN + icmp_len)
            .map_err(|_| IcmpError::TooLarge { size: icmp_len, max })?;
        Ok(Ipv4Header {
            total_length,
            id,
            ttl,
            protocol: PROTOCOL_ICMP,
            src,
            dst,
        })
    }

    /// The 20-byte header, its checksum filled in.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// use sockit::icmp::Ipv4Header;
    ///
    /// let localhost = Ipv4Addr::LOCALHOST;
    /// let header = Ipv4Header::icmp(localhost, localhost, 7, 64, 12)?;
    /// assert_eq!(
    ///     header.encode(),
    ///     [0x45, 0, 0, 32, 0, 7, 0, 0, 64, 1, 0x7c, 0xd4, 127, 0, 0, 1, 127, 0, 0, 1],
    /// );
    /// # Ok::<(), sockit::icmp::IcmpError>(())
    /// ```
    pub fn encode(&self) -> [u8; IPV4_HEADER_LEN] {
        let mut header = [0; IPV4_HEADER_LEN];
        header[0] = 0x45; // version 4, IHL 5
        header[2..4].copy_from_slice(&self.total_length.to_be_bytes());
        header[4..6].copy_from_slice(&self.id.to_be_bytes());
        header[8] = self.ttl;
        header[9] = self.protocol;
        header[12..16].copy_from_slice(&self.src.octets());
        header[16..20].copy_from_slice(&self.dst.octets());
        let sum = checksum(&header);
        header[10..12].copy_from_slice(&sum.to_be_bytes());
        header
    }

    /// Parses an IPv4 header and returns it with the payload it announces
    /// (bytes past the total length are dropped).
    ///
    /// Checks the version, that the IHL is at least 5 and fits, that the
    /// total length covers the header and fits, and the header checksum.
    ///
    /// # Errors
    ///
    /// [`IcmpError::Truncated`], [`IcmpError::NotIpv4`],
    /// [`IcmpError::BadHeaderLength`], [`IcmpError::BadTotalLength`] or
    /// [`IcmpError::BadChecksum`], as named.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// use sockit::icmp::{IcmpError, Ipv4Header};
    ///
    /// let mut packet = vec![0x45, 0, 0, 24, 0, 7, 0, 0, 64, 1, 0x7c, 0xdc, 127, 0, 0, 1, 127, 0, 0, 1];
    /// packet.extend_from_slice(b"dataextra"); // the total length ends at "data"
    /// let (header, payload) = Ipv4Header::parse(&packet)?;
    /// assert_eq!((header.dst, payload), (Ipv4Addr::LOCALHOST, &b"data"[..]));
    ///
    /// packet[8] = 63; // the TTL changed, the checksum did not
    /// assert!(matches!(Ipv4Header::parse(&packet), Err(IcmpError::BadChecksum { .. })));
    /// # Ok::<(), IcmpError>(())
    /// ```
    pub fn parse(packet: &[u8]) -> Result<(Ipv4Header, &[u8]), IcmpError> {
        let truncated = |needed| IcmpError::Truncated {
            what: "IPv4 header",
            needed,
            got: packet.len(),
        };
        let Some(&first) = packet.first() else {
            return Err(truncated(IPV4_HEADER_LEN));
        };
        let version = first >> 4;
        if version != 4 {
            return Err(IcmpError::NotIpv4 { version });
        }
        let ihl = first & 0x0f;
        if ihl < 5 {
            return Err(IcmpError::BadHeaderLength { ihl });
        }
        let header_len = usize::from(ihl) * 4;
        if packet.len() < header_len {
            return Err(truncated(header_len));
        }
        let total_length = u16::from_be_bytes([packet[2], packet[3]]);
        if usize::from(total_length) < header_len || usize::from(total_length) > packet.len() {
            return Err(IcmpError::BadTotalLength {
                total_length,
                header_len,
                got: packet.len(),
            });
        }
        if checksum(&packet[..header_len]) != 0 {
            return Err(IcmpError::BadChecksum {
                what: "IPv4 header",
                found: u16::from_be_bytes([packet[10], packet[11]]),
            });
        }
        let header = Ipv4Header {
            total_length,
            id: u16::from_be_bytes([packet[4], packet[5]]),
            ttl: packet[8],
            protocol: packet[9],
            src: Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]),
            dst: Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]),
        };
        Ok((header, &packet[header_len..usize::from(total_length)]))
    }
}

/// The payload iputils `ping` sends: bytes counting up from 0 (`data[i] =
/// i`), the first [`TIMESTAMP_LEN`] of them replaced, when there is room, by
/// the send time as a 64-bit `struct timeval` (seconds, then microseconds,
/// since the Unix epoch; written little-endian, as iputils writes it on
/// x86-64 and arm64).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sockit::icmp::echo_payload;
///
/// assert_eq!(echo_payload(4, Duration::from_secs(1)), [0, 1, 2, 3]);
/// let payload = echo_payload(18, Duration::new(2, 3_000));
/// assert_eq!(&payload[..8], 2u64.to_le_bytes()); // seconds
/// assert_eq!(&payload[8..16], 3u64.to_le_bytes()); // microseconds
/// assert_eq!(&payload[16..], [16, 17]);
/// ```
pub fn echo_payload(size: usize, sent: Duration) -> Vec<u8> {
    let mut payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
    if size >= TIMESTAMP_LEN {
        payload[..8].copy_from_slice(&sent.as_secs().to_le_bytes());
        payload[8..16].copy_from_slice(&u64::from(sent.subsec_micros()).to_le_bytes());
    }
    payload
}

/// What a reply turned out to be, told by [`Session::reply`].
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use sockit::icmp::{Answer, Session};
///
/// let mut session = Session::new(8);
/// let start = Instant::now();
/// let (seq, payload) = session.probe(start, Duration::ZERO);
/// let later = start + Duration::from_millis(2);
/// assert_eq!(session.reply(seq, &payload, later), Answer::Reply(Duration::from_millis(2)));
/// assert_eq!(session.reply(seq, &payload, later), Answer::Duplicate(Duration::from_millis(2)));
/// assert_eq!(session.reply(seq + 1, &payload, later), Answer::Unknown);
/// assert_eq!(session.reply(seq, b"garbage!", later), Answer::WrongData);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The first reply to a probe, after this round-trip time.
    Reply(Duration),
    /// Another reply to a probe already answered (iputils' `DUP!`).
    Duplicate(Duration),
    /// A reply to no probe of this session: ignore it.
    Unknown,
    /// A reply to a probe of this session whose payload is not what was sent.
    WrongData,
}

/// The probes of one ping run and what came back: which sequence number to
/// send next, which replies match a probe, round-trip times and the totals
/// of iputils' summary.
///
/// ```
/// use std::time::{Duration, Instant};
/// use sockit::icmp::{Answer, Session};
///
/// let mut session = Session::new(56);
/// let start = Instant::now();
/// let (seq, payload) = session.probe(start, Duration::from_secs(1_700_000_000));
/// assert_eq!((seq, payload.len()), (1, 56));
/// let rtt = Duration::from_micros(45);
/// assert_eq!(session.reply(seq, &payload, start + rtt), Answer::Reply(rtt));
/// assert_eq!(session.statistics().received, 1);
/// ```
#[derive(Debug, Clone)]
pub struct Session {
    size: usize,
    next_seq: u16,
    probes: HashMap<u16, Probe>,
    statistics: Statistics,
}

/// One probe sent: when, with which timestamp, and whether it was answered.
#[derive(Debug, Clone, Copy)]
struct Probe {
    at: Instant,
    stamp: Duration,
    answered: bool,
}

impl Session {
    /// A session whose probes carry `size` payload bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use sockit::icmp::Session;
    ///
    /// let mut session = Session::new(0);
    /// let (_, payload) = session.probe(Instant::now(), Duration::ZERO);
    /// assert!(payload.is_empty());
    /// ```
    pub fn new(size: usize) -> Self {
        Session {
            size,
            next_seq: 1,
            probes: HashMap::new(),
            statistics: Statistics::default(),
        }
    }

    /// Records a probe sent at `now`, the wall clock reading `stamp` since
    /// the Unix epoch; returns its sequence number (1, 2, …, wrapping after
    /// 65535 to 0) and the payload to send.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use sockit::icmp::Session;
    ///
    /// let mut session = Session::new(4);
    /// let now = Instant::now();
    /// assert_eq!(session.probe(now, Duration::ZERO), (1, vec![0, 1, 2, 3]));
    /// assert_eq!(session.probe(now, Duration::ZERO).0, 2);
    /// assert_eq!(session.statistics().transmitted, 2);
    /// ```
    pub fn probe(&mut self, now: Instant, stamp: Duration) -> (u16, Vec<u8>) {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        self.probes.insert(
            seq,
            Probe {
                at: now,
                stamp,
                answered: false,
            },
        );
        self.statistics.transmitted += 1;
        (seq, echo_payload(self.size, stamp))
    }

    /// Records a probe that could not be sent, or an error reported for one.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::icmp::Session;
    ///
    /// let mut session = Session::new(56);
    /// session.error();
    /// assert_eq!(session.statistics().errors, 1);
    /// ```
    pub fn error(&mut self) {
        self.statistics.errors += 1;
    }

    /// Matches a reply with sequence number `seq` and `payload`, received at
    /// `now`, to its probe, and counts it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use sockit::icmp::{Answer, Session};
    ///
    /// let mut session = Session::new(56);
    /// let sent = Instant::now();
    /// let (seq, payload) = session.probe(sent, Duration::from_secs(1_700_000_000));
    /// let rtt = Duration::from_micros(80);
    /// assert_eq!(session.reply(seq, &payload, sent + rtt), Answer::Reply(rtt));
    /// ```
    pub fn reply(&mut self, seq: u16, payload: &[u8], now: Instant) -> Answer {
        let Some(probe) = self.probes.get_mut(&seq) else {
            return Answer::Unknown;
        };
        if payload != echo_payload(self.size, probe.stamp) {
            return Answer::WrongData;
        }
        let rtt = now.saturating_duration_since(probe.at);
        let duplicate = std::mem::replace(&mut probe.answered, true);
        self.statistics.record(rtt, duplicate);
        if duplicate {
            Answer::Duplicate(rtt)
        } else {
            Answer::Reply(rtt)
        }
    }

    /// The totals so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use sockit::icmp::Session;
    ///
    /// let mut session = Session::new(56);
    /// let start = Instant::now();
    /// for _ in 0..4 {
    ///     session.probe(start, Duration::ZERO);
    /// }
    /// let payload = sockit::icmp::echo_payload(56, Duration::ZERO);
    /// session.reply(1, &payload, start + Duration::from_millis(1));
    /// let statistics = session.statistics();
    /// assert_eq!((statistics.transmitted, statistics.received), (4, 1));
    /// assert_eq!(statistics.loss_percent(), 75.0);
    /// ```
    pub fn statistics(&self) -> &Statistics {
        &self.statistics
    }
}

/// The totals of a ping run, as iputils' summary gives them.
///
/// # Examples
///
/// ```
/// use sockit::icmp::Statistics;
///
/// let statistics = Statistics::default();
/// assert_eq!(statistics.loss_percent(), 0.0);
/// assert_eq!(statistics.round_trips(), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Statistics {
    /// Probes sent (or tried).
    pub transmitted: u64,
    /// Probes answered, each counted once.
    pub received: u64,
    /// Replies to probes already answered.
    pub duplicates: u64,
    /// Probes that could not be sent, and errors reported for probes.
    pub errors: u64,
    min: Duration,
    max: Duration,
    /// Sums of the round-trip times and their squares, in seconds.
    sum: f64,
    sum_of_squares: f64,
}

/// Round-trip times: minimum, mean, maximum and mean deviation (iputils'
/// `mdev`, the standard deviation: √(mean of squares − square of mean)).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use sockit::icmp::{RoundTrips, Session};
///
/// let mut session = Session::new(0);
/// let start = Instant::now();
/// for rtt in [1, 3] {
///     let (seq, payload) = session.probe(start, Duration::ZERO);
///     session.reply(seq, &payload, start + Duration::from_millis(rtt));
/// }
/// let RoundTrips { min, avg, max, mdev } = session.statistics().round_trips().unwrap();
/// assert_eq!((min, max), (Duration::from_millis(1), Duration::from_millis(3)));
/// let micros = |d: Duration| (d.as_secs_f64() * 1e6).round();
/// assert_eq!((micros(avg), micros(mdev)), (2_000.0, 1_000.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundTrips {
    /// The shortest.
    pub min: Duration,
    /// The mean.
    pub avg: Duration,
    /// The longest.
    pub max: Duration,
    /// The standard deviation.
    pub mdev: Duration,
}

impl Statistics {
    fn record(&mut self, rtt: Duration, duplicate: bool) {
        if duplicate {
            self.duplicates += 1;
        } else {
            self.received += 1;
        }
        let samples = self.received + self.duplicates;
        self.min = if samples == 1 { rtt } else { self.min.min(rtt) };
        self.max = self.max.max(rtt);
        let seconds = rtt.as_secs_f64();
        self.sum += seconds;
        self.sum_of_squares += seconds * seconds;
    }

    /// The share of probes not answered, in percent (0 when none were sent).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use sockit::icmp::Session;
    ///
    /// let mut session = Session::new(0);
    /// let now = Instant::now();
    /// let (seq, payload) = session.probe(now, Duration::ZERO);
    /// session.probe(now, Duration::ZERO);
    /// session.reply(seq, &payload, now);
    /// assert_eq!(session.statistics().loss_percent(), 50.0);
    /// ```
    pub fn loss_percent(&self) -> f64 {
        if self.transmitted == 0 {
            return 0.0;
        }
        let lost = self.transmitted.saturating_sub(self.received);
        lost as f64 * 100.0 / self.transmitted as f64
    }

    /// The round-trip times of every reply, duplicates included, as iputils
    /// counts them; `None` before the first.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use sockit::icmp::Session;
    ///
    /// let mut session = Session::new(0);
    /// let start = Instant::now();
    /// let (seq, payload) = session.probe(start, Duration::ZERO);
    /// assert_eq!(session.statistics().round_trips(), None);
    /// session.reply(seq, &payload, start + Duration::from_millis(5));
    /// let rtts = session.statistics().round_trips().unwrap();
    /// assert_eq!((rtts.min, rtts.max), (Duration::from_millis(5), Duration::from_millis(5)));
    /// assert_eq!(rtts.mdev, Duration::ZERO);
    /// ```
    pub fn round_trips(&self) -> Option<RoundTrips> {
        let samples = (self.received + self.duplicates) as f64;
        if samples == 0.0 {
            return None;
        }
        let avg = self.sum / samples;
        let variance = (self.sum_of_squares / samples - avg * avg).max(0.0);
        Some(RoundTrips {
            min: self.min,
            avg: Duration::from_secs_f64(avg),
            max: self.max,
            mdev: Duration::from_secs_f64(variance.sqrt()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An echo request as iputils sends it to 127.0.0.1, id 0x1234, seq 1,
    /// with an 8-byte payload 00..07. The checksum, by hand: the words are
    /// 0800 0000 1234 0001 0001 0203 0405 0607; their sum is 0x2645, so the
    /// checksum is !0x2645 = 0xd9ba.
    const REQUEST_V4: [u8; 16] = [
        0x08, 0x00, 0xd9, 0xba, 0x12, 0x34, 0x00, 0x01, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
    ];

    /// Its reply from 127.0.0.1 as a raw socket receives it: IPv4 header
    /// (total length 36, id 0xabcd, TTL 64, protocol 1, and the checksum by
    /// the same sum: 4500+0024+abcd+4001+7f00+0001+7f00+0001 = 0x22ef4, which
    /// folds to 0x2ef6, so !0x2ef6 = 0xd109), then the echo reply: type 0, so
    /// 0x0800 less in the sum and 0x0800 more in the checksum, 0xe1ba.
    const REPLY_V4_RAW: [u8; 36] = [
        0x45, 0x00, 0x00, 0x24, 0xab, 0xcd, 0x00, 0x00, 0x40, 0x01, 0xd1, 0x09, 0x7f, 0x00, 0x00, 0x01, 0x7f,
        0x00, 0x00, 0x01, // IPv4 header
        0x00, 0x00, 0xe1, 0xba, 0x12, 0x34, 0x00, 0x01, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
    ];

    const PAYLOAD: [u8; 8] = [0, 1, 2, 3, 4, 5, 6, 7];

    fn echo() -> Echo<'static> {
        Echo {
            id: 0x1234,
            seq: 1,
            payload: &PAYLOAD,
        }
    }

    #[test]
    fn checksum_is_rfc_1071() {
        // RFC 1071 §3's example: 0001 f203 f4f5 f6f7 sums to 0x2ddf0, folds
        // to 0xddf2, and the checksum is its complement.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        // An odd byte is padded with zero on the right.
        assert_eq!(checksum(&[0x01]), !0x0100);
        assert_eq!(checksum(&[]), 0xffff);
        // Carries fold more than once: 0xffff + 0xffff + 0x0002.
        assert_eq!(checksum(&[0xff, 0xff, 0xff, 0xff, 0x00, 0x02]), !0x0002);
        // Over a correct checksum field, the checksum is 0.
        assert_eq!(checksum(&REQUEST_V4), 0);
    }

    #[test]
    fn builds_the_ipv4_echo_request_byte_for_byte() {
        assert_eq!(echo().encode(Version::V4, EchoKind::Request), REQUEST_V4);
        assert_eq!(echo().encode(Version::V4, EchoKind::Reply), REPLY_V4_RAW[20..]);
    }

    #[test]
    fn builds_the_ipv6_echo_request_with_the_checksum_left_to_the_kernel() {
        assert_eq!(
            echo().encode(Version::V6, EchoKind::Request),
            [
                0x80, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01, 0, 1, 2, 3, 4, 5, 6, 7
            ]
        );
    }

    /// ::1 to ::1, an echo request id 0x1234 seq 1 and payload 00..07. The
    /// pseudo-header adds 0001 + 0001 (the addresses), 0010 (the length) and
    /// 003a (next header 58) to the message's 8000+1234+0001+0001+0203+0405
    /// +0607 = 0x9e45: 0x9e91 in all, checksum !0x9e91 = 0x616e.
    #[test]
    fn computes_the_icmpv6_checksum_over_the_pseudo_header() {
        let mut message = echo().encode(Version::V6, EchoKind::Request);
        set_icmpv6_checksum(&mut message, Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST);
        assert_eq!(message[2..4], [0x61, 0x6e]);
        let addresses = Some((Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST));
        assert_eq!(
            parse_icmpv6(&message, addresses),
            Ok(Message::EchoRequest(echo()))
        );
        // The reply: type 129, 0x0100 more in the sum and less in the checksum.
        let mut reply = echo().encode(Version::V6, EchoKind::Reply);
        set_icmpv6_checksum(&mut reply, Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST);
        assert_eq!(reply[..4], [0x81, 0x00, 0x60, 0x6e]);
        assert_eq!(parse_icmpv6(&reply, addresses), Ok(Message::EchoReply(echo())));
        // The same bytes from another source do not add up.
        let elsewhere = Some(("2001:db8::1".parse().unwrap(), Ipv6Addr::LOCALHOST));
        assert_eq!(
            parse_icmpv6(&reply, elsewhere),
            Err(IcmpError::BadChecksum {
                what: "ICMPv6",
                found: 0x606e
            })
        );
        // Without the addresses, the checksum is the kernel's to check.
        assert_eq!(parse_icmpv6(&reply, None), Ok(Message::EchoReply(echo())));
    }

    #[test]
    fn parses_a_reply_from_a_raw_ipv4_socket() {
        let (header, message) = parse_ipv4_icmp(&REPLY_V4_RAW).unwrap();
        assert_eq!(
            header,
            Ipv4Header {
                total_length: 36,
                id: 0xabcd,
                ttl: 64,
                protocol: PROTOCOL_ICMP,
                src: Ipv4Addr::LOCALHOST,
                dst: Ipv4Addr::LOCALHOST,
            }
        );
        assert_eq!(message, Message::EchoReply(echo()));
        // Bytes past the total length are not part of the message.
        let mut padded = REPLY_V4_RAW.to_vec();
        padded.extend_from_slice(&[0xee; 4]);
        assert_eq!(parse_ipv4_icmp(&padded).unwrap().1, Message::EchoReply(echo()));
    }

    #[test]
    fn parses_a_reply_from_an_icmp_datagram_socket() {
        assert_eq!(parse_icmpv4(&REPLY_V4_RAW[20..]), Ok(Message::EchoReply(echo())));
        assert_eq!(parse_icmpv4(&REQUEST_V4), Ok(Message::EchoRequest(echo())));
    }

    #[test]
    fn skips_ipv4_options() {
        // IHL 6: one 4-byte option (four NOPs), total length 40.
        let mut packet = REPLY_V4_RAW[..20].to_vec();
        packet[0] = 0x46;
        packet[3] = 40;
        packet.extend_from_slice(&[1, 1, 1, 1]);
        packet[10..12].fill(0);
        let sum = checksum(&packet);
        packet[10..12].copy_from_slice(&sum.to_be_bytes());
        packet.extend_from_slice(&REPLY_V4_RAW[20..]);
        let (header, message) = parse_ipv4_icmp(&packet).unwrap();
        assert_eq!((header.total_length, message), (40, Message::EchoReply(echo())));
    }

    #[test]
    fn other_messages_are_told_apart() {
        // Destination unreachable (3), port unreachable (3), with a quote.
        let mut message = vec![3, 3, 0, 0, 0, 0, 0, 0, 0x45, 0];
        let sum = checksum(&message);
        message[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(parse_icmpv4(&message), Ok(Message::Other { kind: 3, code: 3 }));
        // An echo reply with a code other than 0 is not an echo reply.
        let mut odd = REPLY_V4_RAW[20..].to_vec();
        odd[1] = 1;
        odd[2..4].fill(0);
        let sum = checksum(&odd);
        odd[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(parse_icmpv4(&odd), Ok(Message::Other { kind: 0, code: 1 }));
        // Time exceeded (ICMPv6 type 3).
        assert_eq!(
            parse_icmpv6(&[3, 0, 0, 0, 0, 0, 0, 0], None),
            Ok(Message::Other { kind: 3, code: 0 })
        );
    }

    #[test]
    fn rejects_bad_icmp_messages() {
        assert_eq!(
            parse_icmpv4(&REQUEST_V4[..7]),
            Err(IcmpError::Truncated {
                what: "ICMP message",
                needed: 8,
                got: 7
            })
        );
        assert_eq!(
            parse_icmpv6(&[], None),
            Err(IcmpError::Truncated {
                what: "ICMPv6 message",
                needed: 8,
                got: 0
            })
        );
        let mut corrupt = REQUEST_V4;
        corrupt[15] ^= 0x01;
        assert_eq!(
            parse_icmpv4(&corrupt),
            Err(IcmpError::BadChecksum {
                what: "ICMP",
                found: 0xd9ba
            })
        );
    }

    #[test]
    fn rejects_bad_ipv4_headers() {
        let with = |index: usize, value: u8| {
            let mut packet = REPLY_V4_RAW.to_vec();
            packet[index] = value;
            packet
        };
        assert_eq!(
            parse_ipv4_icmp(&with(0, 0x65)),
            Err(IcmpError::NotIpv4 { version: 6 })
        );
        assert_eq!(
            parse_ipv4_icmp(&with(0, 0x44)),
            Err(IcmpError::BadHeaderLength { ihl: 4 })
        );
        assert_eq!(
            parse_ipv4_icmp(&with(0, 0x4f)),
            Err(IcmpError::Truncated {
                what: "IPv4 header",
                needed: 60,
                got: 36
            })
        );
        assert_eq!(
            parse_ipv4_icmp(&with(3, 37)),
            Err(IcmpError::BadTotalLength {
                total_length: 37,
                header_len: 20,
                got: 36
            })
        );
        assert_eq!(
            parse_ipv4_icmp(&with(3, 19)),
            Err(IcmpError::BadTotalLength {
                total_length: 19,
                header_len: 20,
                got: 36
            })
        );
        assert_eq!(
            parse_ipv4_icmp(&with(8, 63)),
            Err(IcmpError::BadChecksum {
                what: "IPv4 header",
                found: 0xd109
            })
        );
        // Protocol 17 (UDP), with the header checksum made right again:
        // 0x0011 − 0x0001 = 0x10 more in the sum, 0x10 less in the checksum.
        let mut udp = with(9, 17);
        udp[10..12].copy_from_slice(&[0xd0, 0xf9]);
        assert_eq!(parse_ipv4_icmp(&udp), Err(IcmpError::NotIcmp { protocol: 17 }));
        assert_eq!(
            parse_ipv4_icmp(&REPLY_V4_RAW[..19]),
            Err(IcmpError::Truncated {
                what: "IPv4 header",
                needed: 20,
                got: 19
            })
        );
        assert_eq!(
            parse_ipv4_icmp(&[]),
            Err(IcmpError::Truncated {
                what: "IPv4 header",
                needed: 20,
                got: 0
            })
        );
    }

    #[test]
    fn builds_the_ipv4_header_byte_for_byte() {
        let header = Ipv4Header::icmp(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 0xabcd, 64, 16).unwrap();
        assert_eq!(header.encode(), REPLY_V4_RAW[..20]);
        assert_eq!(
            Ipv4Header::icmp(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 1, 64, 65_516),
            Err(IcmpError::TooLarge {
                size: 65_516,
                max: 65_515
            })
        );
    }

    #[test]
    fn payload_is_iputils_timestamp_then_counting_bytes() {
        let sent = Duration::new(0x0102_0304, 5_006_007); // 5006 µs
        let payload = echo_payload(20, sent);
        assert_eq!(
            payload,
            [
                0x04, 0x03, 0x02, 0x01, 0, 0, 0, 0, // tv_sec
                0x8e, 0x13, 0, 0, 0, 0, 0, 0, // tv_usec 5006
                16, 17, 18, 19
            ]
        );
        // Too small for the timestamp: only the counting bytes.
        assert_eq!(echo_payload(15, sent), (0..15).collect::<Vec<u8>>());
        assert_eq!(echo_payload(0, sent), Vec::<u8>::new());
        assert_eq!(echo_payload(300, sent)[256..258], [0, 1]);
    }

    #[test]
    fn payload_size_is_checked_per_version() {
        assert_eq!(check_payload_size(Version::V4, 65_507), Ok(()));
        assert_eq!(
            check_payload_size(Version::V4, 65_508),
            Err(IcmpError::TooLarge {
                size: 65_508,
                max: 65_507
            })
        );
        assert_eq!(check_payload_size(Version::V6, 65_527), Ok(()));
        assert!(check_payload_size(Version::V6, 65_528).is_err());
    }

    #[test]
    fn session_matches_replies_to_probes() {
        let start = Instant::now();
        let stamp = Duration::from_secs(1_700_000_000);
        let mut session = Session::new(56);
        let (first, payload1) = session.probe(start, stamp);
        let (second, payload2) =
            session.probe(start + Duration::from_secs(1), stamp + Duration::from_secs(1));
        assert_eq!((first, second), (1, 2));
        assert_ne!(payload1, payload2, "the timestamps differ");
        let ms = Duration::from_millis;
        assert_eq!(
            session.reply(2, &payload2, start + ms(1_003)),
            Answer::Reply(ms(3))
        );
        assert_eq!(
            session.reply(1, &payload1, start + ms(1_004)),
            Answer::Reply(ms(1_004))
        );
        assert_eq!(
            session.reply(1, &payload1, start + ms(1_005)),
            Answer::Duplicate(ms(1_005))
        );
        assert_eq!(session.reply(3, &payload1, start + ms(1_006)), Answer::Unknown);
        assert_eq!(session.reply(2, &payload1, start + ms(1_007)), Answer::WrongData);
        session.error();
        let statistics = session.statistics();
        assert_eq!(
            (
                statistics.transmitted,
                statistics.received,
                statistics.duplicates,
                statistics.errors
            ),
            (2, 2, 1, 1)
        );
        assert_eq!(statistics.loss_percent(), 0.0);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let now = Instant::now();
        let mut session = Session::new(0);
        session.next_seq = u16::MAX;
        assert_eq!(session.probe(now, Duration::ZERO).0, u16::MAX);
        assert_eq!(session.probe(now, Duration::ZERO).0, 0);
        assert_eq!(session.probe(now, Duration::ZERO).0, 1);
    }

    #[test]
    fn statistics_are_iputils_min_avg_max_mdev_and_loss() {
        let start = Instant::now();
        let mut session = Session::new(16);
        let mut payloads = Vec::new();
        for _ in 0..4 {
            payloads.push(session.probe(start, Duration::ZERO));
        }
        assert_eq!(session.statistics().round_trips(), None);
        assert_eq!(session.statistics().loss_percent(), 100.0);
        // 1, 2 and 3 ms: mean 2, mean of squares 14/3, mdev √(2/3) ms.
        for (ms, (seq, payload)) in [1, 3, 2].into_iter().zip(&payloads) {
            session.reply(*seq, payload, start + Duration::from_millis(ms));
        }
        let statistics = session.statistics();
        assert_eq!(statistics.loss_percent(), 25.0);
        let rtt = statistics.round_trips().unwrap();
        assert_eq!(
            (rtt.min, rtt.max),
            (Duration::from_millis(1), Duration::from_millis(3))
        );
        assert_eq!(rtt.avg.as_micros(), 2_000);
        assert_eq!(rtt.mdev.as_micros(), 816); // √(2/3) ms = 816.497 µs
        assert_eq!(Statistics::default().loss_percent(), 0.0);
    }

    proptest! {
        #[test]
        fn echo_round_trips(
            id: u16,
            seq: u16,
            payload in proptest::collection::vec(any::<u8>(), 0..600),
            v6: bool,
            reply: bool,
        ) {
            let echo = Echo { id, seq, payload: &payload };
            let kind = if reply { EchoKind::Reply } else { EchoKind::Request };
            let expected = if reply { Message::EchoReply(echo) } else { Message::EchoRequest(echo) };
            if v6 {
                let (src, dst) = (Ipv6Addr::LOCALHOST, Ipv6Addr::from(u128::from(id) << 64 | 1));
                let mut message = echo.encode(Version::V6, kind);
                set_icmpv6_checksum(&mut message, src, dst);
                prop_assert_eq!(parse_icmpv6(&message, Some((src, dst))), Ok(expected));
            } else {
                let message = echo.encode(Version::V4, kind);
                prop_assert_eq!(parse_icmpv4(&message), Ok(expected));
                let header = Ipv4Header::icmp(
                    Ipv4Addr::from(u32::from(seq)), Ipv4Addr::LOCALHOST, id, (seq % 255) as u8 + 1, message.len(),
                ).unwrap();
                let mut packet = header.encode().to_vec();
                packet.extend_from_slice(&message);
                prop_assert_eq!(parse_ipv4_icmp(&packet), Ok((header, expected)));
            }
        }

        #[test]
        fn one_flipped_bit_is_caught(
            payload in proptest::collection::vec(any::<u8>(), 0..100),
            bit in 0usize..(8 * 108),
        ) {
            let echo = Echo { id: 7, seq: 9, payload: &payload };
            let mut message = echo.encode(Version::V4, EchoKind::Reply);
            let bit = bit % (8 * message.len());
            message[bit / 8] ^= 1 << (bit % 8);
            let is_bad_checksum = matches!(parse_icmpv4(&message), Err(IcmpError::BadChecksum { .. }));
            prop_assert!(is_bad_checksum);
        }

        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128), v6: bool) {
            let _ = parse_ipv4_icmp(&bytes);
            let _ = parse_icmpv4(&bytes);
            let addresses = v6.then_some((Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST));
            let _ = parse_icmpv6(&bytes, addresses);
        }

        #[test]
        fn ipv4_parser_never_panics_on_plausible_headers(
            mut bytes in proptest::collection::vec(any::<u8>(), 20..80),
            ihl in 0u8..16,
            total_length in 0u16..100,
        ) {
            bytes[0] = 0x40 | ihl;
            bytes[2..4].copy_from_slice(&total_length.to_be_bytes());
            let header_len = usize::from(ihl) * 4;
            if header_len >= 20 && header_len <= bytes.len() {
                bytes[10..12].fill(0);
                let sum = checksum(&bytes[..header_len]);
                bytes[10..12].copy_from_slice(&sum.to_be_bytes());
            }
            if let Ok((header, payload)) = Ipv4Header::parse(&bytes) {
                prop_assert_eq!(header_len + payload.len(), usize::from(header.total_length));
            }
        }
    }
}
