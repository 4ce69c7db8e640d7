//! PROXY protocol: the header a load balancer sends first to say whom it
//! forwards a connection for (HAProxy's `doc/proxy-protocol.txt`, v1 and v2).
//!
//! Pure code over bytes, no I/O. [`decode`] looks at the first bytes of a
//! connection and answers [`Decoded::Incomplete`] (read more),
//! [`Decoded::Complete`] (the header and its length: the rest is stream data)
//! or a [`ProxyError`]. It never asks for more than the spec's maximum
//! ([`V1_MAX_LEN`]) or the caller's cap on a v2 header ([`decode_with_max`]),
//! and every prefix of a valid header is `Incomplete`, so a caller may decode
//! again after each read.
//!
//! What is taken, and what is not:
//!
//! - v1 `TCP4` and `TCP6`, strictly: single spaces, addresses of the stated
//!   family (IPv4 without leading zeros), ports `0`–`65535` in decimal without
//!   sign or leading zero, CRLF within 107 bytes; `UNKNOWN` (anything after it
//!   up to CRLF is ignored, as the spec asks) is [`ProxyHeader::Local`].
//!   IPv6 addresses are read by [`std::net::Ipv6Addr`]'s parser, which also
//!   takes an embedded dotted IPv4 (`::ffff:1.2.3.4`).
//! - v2 `PROXY` over TCP (`STREAM`) with IPv4 or IPv6 is
//!   [`ProxyHeader::Proxied`]; v2 `LOCAL` (whatever its address block) and
//!   `PROXY` with family `UNSPEC` are [`ProxyHeader::Local`]: use the socket's
//!   own addresses. UDP (`DGRAM`) and `AF_UNIX` are refused with
//!   [`ProxyError::Unsupported`]: sockit has no use for them behind a proxy.
//! - v2 TLVs after the addresses are checked to lie within the declared
//!   length, then skipped; they are not exposed.
//!
//! # Examples
//!
//! What a load balancer writes, and what a server reads back:
//!
//! ```
//! use sockit::proxy::{self, Decoded, ProxyHeader};
//!
//! let header = ProxyHeader::Proxied {
//!     source: "198.51.100.7:51234".parse().unwrap(),
//!     destination: "10.0.0.5:8000".parse().unwrap(),
//! };
//! assert_eq!(header.encode_v1(), b"PROXY TCP4 198.51.100.7 10.0.0.5 51234 8000\r\n");
//! let mut stream = header.encode_v2();
//! stream.extend_from_slice(b"bob\n");
//! let Decoded::Complete { header: read, len } = proxy::decode(&stream)? else { panic!() };
//! assert_eq!(read, header);
//! assert_eq!(&stream[len..], b"bob\n");
//! # Ok::<(), sockit::proxy::ProxyError>(())
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use crate::Peer;

/// The longest v1 header, CRLF included (spec, section 2.1).
///
/// ```
/// use sockit::proxy::{self, ProxyError, V1_MAX_LEN};
///
/// let mut endless = b"PROXY TCP4 ".to_vec();
/// endless.resize(V1_MAX_LEN, b'1'); // and still no CRLF
/// assert_eq!(proxy::decode(&endless), Err(ProxyError::V1TooLong));
/// ```
pub const V1_MAX_LEN: usize = 107;

/// The 12 bytes a v2 header starts with.
///
/// ```
/// use sockit::proxy::{ProxyHeader, V2_FIXED_LEN, V2_SIGNATURE};
///
/// let local = ProxyHeader::Local.encode_v2();
/// assert_eq!(local[..12], V2_SIGNATURE);
/// assert_eq!(local.len(), V2_FIXED_LEN); // LOCAL carries no addresses
/// ```
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// A v2 header's fixed part: the signature, version and command, family and
/// protocol, and the 16-bit length of what follows (see [`V2_SIGNATURE`]'s
/// example).
///
/// # Examples
///
/// ```
/// assert_eq!(sockit::proxy::V2_FIXED_LEN, 16);
/// ```
pub const V2_FIXED_LEN: usize = 16;

/// The longest v2 header the spec allows: the fixed part and 65535 bytes.
///
/// ```
/// use sockit::proxy::{self, Decoded, V2_MAX_LEN};
///
/// // A header claiming the longest length, with the cap lifted to the spec's:
/// let mut start = sockit::proxy::V2_SIGNATURE.to_vec();
/// start.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
/// assert_eq!(proxy::decode_with_max(&start, V2_MAX_LEN)?, Decoded::Incomplete);
/// # Ok::<(), sockit::proxy::ProxyError>(())
/// ```
pub const V2_MAX_LEN: usize = V2_FIXED_LEN + u16::MAX as usize;

/// The cap [`decode`] puts on a v2 header: 536 bytes, the minimum TCP
/// segment size, room for the largest address block (216 bytes, Unix) and
/// some TLVs, while a connection that claims 64 KiB is refused at once.
///
/// ```
/// use sockit::proxy::{self, ProxyError};
///
/// let mut start = sockit::proxy::V2_SIGNATURE.to_vec();
/// start.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]); // 65535 bytes to come
/// assert_eq!(proxy::decode(&start), Err(ProxyError::V2TooLong { len: 65551, max: 536 }));
/// ```
pub const DEFAULT_V2_MAX_LEN: usize = 536;

const V1_PREFIX: &[u8] = b"PROXY ";

/// Where the proxied connection came from and went to.
///
/// ```
/// use sockit::proxy::{self, Decoded, ProxyHeader};
///
/// // A health check: the proxy speaks for itself.
/// let check = proxy::decode(b"PROXY UNKNOWN\r\n")?;
/// assert_eq!(check, Decoded::Complete { header: ProxyHeader::Local, len: 15 });
/// # Ok::<(), sockit::proxy::ProxyError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyHeader {
    /// No addresses to take: the connection is the proxy's own (v2 `LOCAL`,
    /// a health check) or for a protocol it does not describe (v1 `UNKNOWN`,
    /// v2 `UNSPEC`). Use the socket's own addresses.
    Local,
    /// A TCP connection from `source` (the client) to `destination` (the
    /// address the client connected to, on the proxy).
    Proxied {
        /// The client's address and port.
        source: SocketAddr,
        /// The address and port the client connected to.
        destination: SocketAddr,
    },
}

/// What [`decode`] made of the first bytes of a connection.
///
/// ```
/// use sockit::proxy::{self, Decoded};
///
/// // Every prefix of a header asks for more.
/// let header = b"PROXY TCP6 ::1 ::1 40000 8000\r\n";
/// for end in 0..header.len() {
///     assert_eq!(proxy::decode(&header[..end])?, Decoded::Incomplete);
/// }
/// assert!(matches!(proxy::decode(header)?, Decoded::Complete { len: 31, .. }));
/// # Ok::<(), sockit::proxy::ProxyError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decoded {
    /// A valid start of a header: read more bytes and decode again.
    Incomplete,
    /// A whole header; the stream's own data starts at `len`.
    Complete {
        /// The header.
        header: ProxyHeader,
        /// The header's length in bytes.
        len: usize,
    },
}

/// Why the first bytes of a connection are not a PROXY protocol header sockit takes.
///
/// ```
/// use sockit::proxy::{self, ProxyError};
///
/// let error = proxy::decode(b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n").unwrap_err();
/// assert!(matches!(error, ProxyError::V1Malformed(_)));
/// assert!(error.to_string().starts_with("malformed PROXY v1 header: "));
/// assert_eq!(proxy::decode(b"SSH-2.0"), Err(ProxyError::NotProxy));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The bytes start with neither `PROXY ` (v1) nor the v2 signature.
    #[error("not a PROXY protocol header: starts with neither \"PROXY \" nor the v2 signature")]
    NotProxy,
    /// A v1 header with no CRLF in its first 107 bytes.
    #[error("PROXY v1 header without CRLF in its first {V1_MAX_LEN} bytes")]
    V1TooLong,
    /// A v1 header that breaks the format; the reason says where.
    #[error("malformed PROXY v1 header: {0}")]
    V1Malformed(&'static str),
    /// A v2 header whose version (high nibble of byte 13) is not 2.
    #[error("PROXY v2 header with version {0}, expected 2")]
    V2Version(u8),
    /// A v2 header whose command (low nibble of byte 13) is neither LOCAL nor PROXY.
    #[error("PROXY v2 header with command {0:#x}, expected LOCAL (0) or PROXY (1)")]
    V2Command(u8),
    /// A v2 `PROXY` header whose family and protocol byte is none the spec defines.
    #[error("PROXY v2 header with unknown address family and protocol {0:#04x}")]
    V2Family(u8),
    /// A v2 `PROXY` header for UDP or Unix sockets, which sockit does not take.
    #[error("PROXY v2 header for {0}: only TCP over IPv4 or IPv6 is taken")]
    Unsupported(&'static str),
    /// A v2 header longer than the caller's cap.
    #[error("PROXY v2 header of {len} bytes, past the maximum of {max}")]
    V2TooLong {
        /// The header's length, fixed part included.
        len: usize,
        /// The cap it was decoded with.
        max: usize,
    },
    /// A v2 address block too short for its family's addresses.
    #[error("PROXY v2 address block of {len} bytes, {needed} needed for its family")]
    V2ShortAddresses {
        /// The declared length.
        len: usize,
        /// What the family's addresses take.
        needed: usize,
    },
    /// A v2 TLV that runs past the declared length.
    #[error("PROXY v2 TLV runs past the end of the header")]
    V2BadTlv,
}

/// Decodes the PROXY header at the start of `buf`, taking v2 headers of up to
/// [`DEFAULT_V2_MAX_LEN`] bytes.
///
/// # Errors
///
/// A [`ProxyError`] when `buf` cannot start a header sockit takes; it comes as
/// soon as the first byte that rules the header out has arrived, and stays the
/// same however many bytes follow.
///
/// # Examples
///
/// ```
/// use sockit::proxy::{self, Decoded, ProxyHeader};
///
/// let buf = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /";
/// assert_eq!(proxy::decode(&buf[..20])?, Decoded::Incomplete);
/// let Decoded::Complete { header, len } = proxy::decode(buf)? else { panic!() };
/// assert_eq!(
///     header,
///     ProxyHeader::Proxied {
///         source: "192.0.2.1:56324".parse().unwrap(),
///         destination: "198.51.100.2:443".parse().unwrap(),
///     }
/// );
/// assert_eq!(&buf[len..], b"GET /");
/// assert!(proxy::decode(b"GET / HTTP/1.1\r\n").is_err());
/// # Ok::<(), sockit::proxy::ProxyError>(())
/// ```
pub fn decode(buf: &[u8]) -> Result<Decoded, ProxyError> {
    decode_with_max(buf, DEFAULT_V2_MAX_LEN)
}

/// Decodes the PROXY header at the start of `buf`, taking v2 headers of up to
/// `max_len` bytes, clamped to [`V2_FIXED_LEN`]`..=`[`V2_MAX_LEN`].
///
/// A v1 header is at most [`V1_MAX_LEN`] bytes whatever `max_len` is. So
/// `Incomplete` only ever comes for fewer than 107 bytes (v1) or than the
/// clamped `max_len` (v2): a caller never buffers more.
///
/// # Errors
///
/// As [`decode`]; a v2 header longer than the cap is [`ProxyError::V2TooLong`]
/// as soon as its length field has arrived.
///
/// # Examples
///
/// ```
/// use sockit::proxy::{self, Decoded, ProxyError, ProxyHeader};
///
/// let header = ProxyHeader::Proxied {
///     source: "[2001:db8::7]:51234".parse().unwrap(),
///     destination: "[2001:db8::5]:8000".parse().unwrap(),
/// }
/// .encode_v2();
/// assert_eq!(header.len(), 52);
/// assert_eq!(
///     proxy::decode_with_max(&header, 32),
///     Err(ProxyError::V2TooLong { len: 52, max: 32 })
/// );
/// assert!(matches!(proxy::decode_with_max(&header, 52)?, Decoded::Complete { len: 52, .. }));
/// # Ok::<(), sockit::proxy::ProxyError>(())
/// ```
pub fn decode_with_max(buf: &[u8], max_len: usize) -> Result<Decoded, ProxyError> {
    let max_len = max_len.clamp(V2_FIXED_LEN, V2_MAX_LEN);
    let Some(&first) = buf.first() else {
        return Ok(Decoded::Incomplete);
    };
    let v1 = first == V1_PREFIX[0];
    let signature: &[u8] = if v1 { V1_PREFIX } else { &V2_SIGNATURE };
    let seen = buf.len().min(signature.len());
    if buf[..seen] != signature[..seen] {
        return Err(ProxyError::NotProxy);
    }
    if seen < signature.len() {
        Ok(Decoded::Incomplete)
    } else if v1 {
        decode_v1(buf)
    } else {
        decode_v2(buf, max_len)
    }
}

/// A v1 header: `buf` starts with `PROXY `.
fn decode_v1(buf: &[u8]) -> Result<Decoded, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let Some(cr) = window.iter().position(|&b| !(b' '..=b'~').contains(&b)) else {
        return if window.len() == V1_MAX_LEN {
            Err(ProxyError::V1TooLong)
        } else {
            Ok(Decoded::Incomplete)
        };
    };
    if window[cr] != b'\r' {
        return Err(ProxyError::V1Malformed(
            "a byte that is not printable ASCII before CRLF",
        ));
    }
    match window.get(cr + 1) {
        None if cr + 1 == V1_MAX_LEN => return Err(ProxyError::V1TooLong),
        None => return Ok(Decoded::Incomplete),
        Some(b'\n') => {}
        Some(_) => return Err(ProxyError::V1Malformed("a CR not followed by LF")),
    }
    // Printable ASCII, so UTF-8.
    let line = std::str::from_utf8(&window[V1_PREFIX.len()..cr]).expect("printable ASCII");
    let len = cr + 2;
    let mut fields = line.split(' ');
    let header = match fields.next() {
        Some("UNKNOWN") => ProxyHeader::Local,
        Some(family @ ("TCP4" | "TCP6")) => {
            let v4 = family == "TCP4";
            let mut next = |what| fields.next().ok_or(ProxyError::V1Malformed(what));
            let source = next("no source address")?;
            let destination = next("no destination address")?;
            let source_port = next("no source port")?;
            let destination_port = next("no destination port")?;
            if fields.next().is_some() {
                return Err(ProxyError::V1Malformed(
                    "more than 6 fields, or not single spaces",
                ));
            }
            let source = v1_address(source, v4).ok_or(ProxyError::V1Malformed("bad source address"))?;
            let destination =
                v1_address(destination, v4).ok_or(ProxyError::V1Malformed("bad destination address"))?;
            let source_port = v1_port(source_port).ok_or(ProxyError::V1Malformed("bad source port"))?;
            let destination_port =
                v1_port(destination_port).ok_or(ProxyError::V1Malformed("bad destination port"))?;
            ProxyHeader::Proxied {
                source: SocketAddr::new(source, source_port),
                destination: SocketAddr::new(destination, destination_port),
            }
        }
        _ => {
            return Err(ProxyError::V1Malformed("protocol is not TCP4, TCP6 or UNKNOWN"));
        }
    };
    Ok(Decoded::Complete { header, len })
}

/// An address of the stated family; std's parsers refuse leading zeros in IPv4.
fn v1_address(text: &str, v4: bool) -> Option<IpAddr> {
    if v4 {
        text.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    } else {
        text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    }
}

/// A port: decimal digits only, no leading zero (but `0` itself), at most 65535.
fn v1_port(text: &str) -> Option<u16> {
    let digits = text.bytes().all(|b| b.is_ascii_digit());
    if !digits || text.is_empty() || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

/// A v2 header: `buf` starts with the v2 signature.
fn decode_v2(buf: &[u8], max_len: usize) -> Result<Decoded, ProxyError> {
    let Some(&version_command) = buf.get(12) else {
        return Ok(Decoded::Incomplete);
    };
    let (version, command) = (version_command >> 4, version_command & 0x0f);
    if version != 2 {
        return Err(ProxyError::V2Version(version));
    }
    let local = match command {
        0 => true,
        1 => false,
        other => return Err(ProxyError::V2Command(other)),
    };
    let Some(&family) = buf.get(13) else {
        return Ok(Decoded::Incomplete);
    };
    // LOCAL: the block, family included, is ignored (spec, section 2.2).
    let needed = match family {
        _ if local => None,
        0x00 => None,
        0x11 => Some(12),
        0x21 => Some(36),
        0x12 | 0x22 => return Err(ProxyError::Unsupported("UDP")),
        0x31 | 0x32 => return Err(ProxyError::Unsupported("Unix sockets")),
        other => return Err(ProxyError::V2Family(other)),
    };
    let Some(&[high, low]) = buf.get(14..16) else {
        return Ok(Decoded::Incomplete);
    };
    let block_len = usize::from(u16::from_be_bytes([high, low]));
    let len = V2_FIXED_LEN + block_len;
    if len > max_len {
        return Err(ProxyError::V2TooLong { len, max: max_len });
    }
    if let Some(needed) = needed
        && block_len < needed
    {
        return Err(ProxyError::V2ShortAddresses {
            len: block_len,
            needed,
        });
    }
    let Some(block) = buf.get(V2_FIXED_LEN..len) else {
        return Ok(Decoded::Incomplete);
    };
    let Some(needed) = needed else {
        return Ok(Decoded::Complete {
            header: ProxyHeader::Local,
            len,
        });
    };
    let (addresses, mut tlvs) = block.split_at(needed);
    let (source, destination) = if needed == 12 {
        let ip = |at: usize| IpAddr::from(<[u8; 4]>::try_from(&addresses[at..at + 4]).unwrap());
        (ip(0), ip(4))
    } else {
        let ip = |at: usize| IpAddr::from(<[u8; 16]>::try_from(&addresses[at..at + 16]).unwrap());
        (ip(0), ip(16))
    };
    let port = |at: usize| u16::from_be_bytes([addresses[at], addresses[at + 1]]);
    let header = ProxyHeader::Proxied {
        source: SocketAddr::new(source, port(needed - 4)),
        destination: SocketAddr::new(destination, port(needed - 2)),
    };
    // Each TLV: a type byte, a 16-bit big-endian length, the value.
    while !tlvs.is_empty() {
        let Some(&[_, high, low]) = tlvs.get(..3) else {
            return Err(ProxyError::V2BadTlv);
        };
        let end = 3 + usize::from(u16::from_be_bytes([high, low]));
        tlvs = tlvs.get(end..).ok_or(ProxyError::V2BadTlv)?;
    }
    Ok(Decoded::Complete { header, len })
}

impl ProxyHeader {
    /// The header as a v1 line, CRLF included.
    ///
    /// An IPv4 and an IPv6 address together go as `TCP6`, the IPv4 one
    /// mapped (`::ffff:a.b.c.d`), as the spec asks of a sender; the flow
    /// label and scope of IPv6 addresses are not sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::proxy::ProxyHeader;
    ///
    /// let header = ProxyHeader::Proxied {
    ///     source: "192.0.2.1:56324".parse().unwrap(),
    ///     destination: "198.51.100.2:443".parse().unwrap(),
    /// };
    /// assert_eq!(header.encode_v1(), b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
    /// assert_eq!(ProxyHeader::Local.encode_v1(), b"PROXY UNKNOWN\r\n");
    /// ```
    pub fn encode_v1(&self) -> Vec<u8> {
        let text = match self.addresses() {
            None => "PROXY UNKNOWN\r\n".to_owned(),
            Some((family, source, destination, source_port, destination_port)) => {
                let family = if family == Family::V4 { "TCP4" } else { "TCP6" };
                format!("PROXY {family} {source} {destination} {source_port} {destination_port}\r\n")
            }
        };
        text.into_bytes()
    }

    /// The header in v2's binary form, with no TLV: `LOCAL` for
    /// [`ProxyHeader::Local`], `PROXY` over TCP otherwise (mixed families as
    /// in [`encode_v1`](Self::encode_v1)).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::proxy::ProxyHeader;
    ///
    /// assert_eq!(ProxyHeader::Local.encode_v2(), b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00");
    /// ```
    pub fn encode_v2(&self) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        match self.addresses() {
            None => out.extend_from_slice(&[0x20, 0x00, 0, 0]),
            Some((family, source, destination, source_port, destination_port)) => {
                match (family, source, destination) {
                    (Family::V4, IpAddr::V4(source), IpAddr::V4(destination)) => {
                        out.extend_from_slice(&[0x21, 0x11, 0, 12]);
                        out.extend_from_slice(&source.octets());
                        out.extend_from_slice(&destination.octets());
                    }
                    (_, source, destination) => {
                        out.extend_from_slice(&[0x21, 0x21, 0, 36]);
                        out.extend_from_slice(&as_v6(source).octets());
                        out.extend_from_slice(&as_v6(destination).octets());
                    }
                }
                out.extend_from_slice(&source_port.to_be_bytes());
                out.extend_from_slice(&destination_port.to_be_bytes());
            }
        }
        out
    }

    /// The family both addresses go in, the addresses (IPv4 ones mapped when
    /// the family is IPv6) and the ports; `None` for `Local`.
    fn addresses(&self) -> Option<(Family, IpAddr, IpAddr, u16, u16)> {
        let ProxyHeader::Proxied { source, destination } = self else {
            return None;
        };
        let (family, s, d) = match (source.ip(), destination.ip()) {
            (s @ IpAddr::V4(_), d @ IpAddr::V4(_)) => (Family::V4, s, d),
            (s, d) => (Family::V6, IpAddr::V6(as_v6(s)), IpAddr::V6(as_v6(d))),
        };
        Some((family, s, d, source.port(), destination.port()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(ip) => ip.to_ipv6_mapped(),
        IpAddr::V6(ip) => ip,
    }
}

/// How long a trusted proxy has to send its header, unless told.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sockit::proxy::{DEFAULT_HEADER_TIMEOUT, ProxyProtocol};
///
/// assert_eq!(DEFAULT_HEADER_TIMEOUT, Duration::from_secs(5));
/// assert_eq!(ProxyProtocol::new([]).timeout(), DEFAULT_HEADER_TIMEOUT);
/// ```
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// A stream listener's PROXY protocol setting
/// ([`Server::proxy_protocol`](crate::Server::proxy_protocol)): every
/// connection must come from a trusted proxy and start with a v1 or v2
/// header, which says whom the connection is for.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sockit::proxy::ProxyProtocol;
///
/// let proxies = ProxyProtocol::new(["127.0.0.1".parse()?, "10.0.0.0/8".parse()?])
///     .header_timeout(Duration::from_secs(2));
/// assert!(proxies.trusts(&"10.1.2.3:4000".parse::<std::net::SocketAddr>().unwrap().into()));
/// assert!(!proxies.trusts(&"192.0.2.1:4000".parse::<std::net::SocketAddr>().unwrap().into()));
/// # Ok::<(), sockit::proxy::TrustedProxyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocol {
    trusted: Vec<TrustedProxy>,
    header_timeout: Duration,
}

impl ProxyProtocol {
    /// Takes headers from peers in `trusted` only; any other peer is closed
    /// at once. With none trusted, every connection is refused.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::proxy::{ProxyProtocol, TrustedProxy};
    ///
    /// let proxies = ProxyProtocol::new([TrustedProxy::Unix]);
    /// assert_eq!(proxies.trusted(), [TrustedProxy::Unix]);
    /// ```
    pub fn new(trusted: impl IntoIterator<Item = TrustedProxy>) -> Self {
        ProxyProtocol {
            trusted: trusted.into_iter().collect(),
            header_timeout: DEFAULT_HEADER_TIMEOUT,
        }
    }

    /// How long a trusted peer has, from its accept, to send its whole
    /// header (default 5 s); past it, the connection is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::proxy::{ProxyProtocol, TrustedProxy};
    ///
    /// let proxies = ProxyProtocol::new([TrustedProxy::Unix]).header_timeout(Duration::from_millis(500));
    /// assert_eq!(proxies.timeout(), Duration::from_millis(500));
    /// ```
    #[must_use]
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// The header timeout in force.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::proxy::ProxyProtocol;
    ///
    /// assert_eq!(ProxyProtocol::new([]).timeout(), Duration::from_secs(5));
    /// ```
    pub fn timeout(&self) -> Duration {
        self.header_timeout
    }

    /// The trusted proxies.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::proxy::ProxyProtocol;
    ///
    /// let proxies = ProxyProtocol::new(["10.0.0.0/8".parse()?, "unix".parse()?]);
    /// let trusted: Vec<String> = proxies.trusted().iter().map(ToString::to_string).collect();
    /// assert_eq!(trusted, ["10.0.0.0/8", "unix"]);
    /// # Ok::<(), sockit::proxy::TrustedProxyError>(())
    /// ```
    pub fn trusted(&self) -> &[TrustedProxy] {
        &self.trusted
    }

    /// Whether `peer` (the socket's own peer) may send a header.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use sockit::Peer;
    /// use sockit::proxy::ProxyProtocol;
    ///
    /// let proxies = ProxyProtocol::new(["::1".parse()?]);
    /// assert!(proxies.trusts(&Peer::from("[::1]:40000".parse::<SocketAddr>().unwrap())));
    /// assert!(!proxies.trusts(&Peer::from("[::2]:40000".parse::<SocketAddr>().unwrap())));
    /// assert!(!proxies.trusts(&Peer::Unix { addr: None, cred: None }));
    /// # Ok::<(), sockit::proxy::TrustedProxyError>(())
    /// ```
    pub fn trusts(&self, peer: &Peer) -> bool {
        self.trusted.iter().any(|trusted| trusted.contains(peer))
    }
}

/// A peer allowed to send PROXY headers: an address (`127.0.0.1`, `::1`),
/// a network (`10.0.0.0/8`, `fd00::/8`) or `unix`, any peer of a Unix
/// stream listener. An IPv4 address also matches the peer's IPv4-mapped
/// IPv6 form (`::ffff:127.0.0.1` on a dual-stack listener).
///
/// # Examples
///
/// ```
/// use sockit::proxy::TrustedProxy;
///
/// assert_eq!(
///     "10.0.0.0/8".parse::<TrustedProxy>()?,
///     TrustedProxy::Network { addr: [10, 0, 0, 0].into(), prefix: 8 }
/// );
/// assert_eq!("UNIX".parse::<TrustedProxy>()?, TrustedProxy::Unix);
/// assert_eq!("::1/128".parse::<TrustedProxy>()?.to_string(), "::1");
/// # Ok::<(), sockit::proxy::TrustedProxyError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrustedProxy {
    /// The addresses whose first `prefix` bits are those of `addr`.
    Network {
        /// The network's address; bits past the prefix are zero.
        addr: IpAddr,
        /// The prefix length: up to 32 for IPv4, 128 for IPv6.
        prefix: u8,
    },
    /// Every peer of a Unix stream listener.
    Unix,
}

impl TrustedProxy {
    /// Whether `peer` is one of these.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use sockit::Peer;
    /// use sockit::proxy::TrustedProxy;
    ///
    /// let loopback: TrustedProxy = "127.0.0.1".parse()?;
    /// let mapped = Peer::from("[::ffff:127.0.0.1]:5000".parse::<SocketAddr>().unwrap());
    /// assert!(loopback.contains(&mapped));
    /// assert!(!loopback.contains(&Peer::from("127.0.0.2:5000".parse::<SocketAddr>().unwrap())));
    /// # Ok::<(), sockit::proxy::TrustedProxyError>(())
    /// ```
    pub fn contains(&self, peer: &Peer) -> bool {
        match (self, peer) {
            (TrustedProxy::Unix, Peer::Unix { .. }) => true,
            (TrustedProxy::Network { addr, prefix }, Peer::Ip(peer)) => {
                match (addr, peer.ip().to_canonical()) {
                    (IpAddr::V4(net), IpAddr::V4(ip)) => {
                        mask(u128::from(ip.to_bits()) << 96, *prefix) == u128::from(net.to_bits()) << 96
                    }
                    (IpAddr::V6(net), IpAddr::V6(ip)) => mask(ip.to_bits(), *prefix) == net.to_bits(),
                    _ => false,
                }
            }
            _ => false,
        }
    }
}

/// The first `prefix` bits of `bits`, the rest zero.
fn mask(bits: u128, prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        prefix => bits & (u128::MAX << (128 - u32::from(prefix.min(128)))),
    }
}

/// Why a trusted proxy could not be read from text.
///
/// # Examples
///
/// ```
/// use sockit::proxy::TrustedProxy;
///
/// let err = "10.0.0.1/8".parse::<TrustedProxy>().unwrap_err();
/// assert!(err.to_string().starts_with("\"10.0.0.1/8\" is not a trusted proxy: "));
/// assert!(err.to_string().ends_with("(write the network's first address)"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a trusted proxy: expected an address (127.0.0.1, ::1), a network (10.0.0.0/8) or unix; {why}"
)]
pub struct TrustedProxyError {
    text: String,
    why: &'static str,
}

impl FromStr for TrustedProxy {
    type Err = TrustedProxyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |why| TrustedProxyError {
            text: text.to_owned(),
            why,
        };
        if text.eq_ignore_ascii_case("unix") {
            return Ok(TrustedProxy::Unix);
        }
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| error("not an IP address"))?;
        let addr = addr.to_canonical();
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(digits) => match digits.parse::<u8>() {
                Ok(prefix) if prefix <= bits && digits.bytes().all(|b| b.is_ascii_digit()) => prefix,
                _ => {
                    return Err(error(if addr.is_ipv4() {
                        "the prefix length must be 0 to 32"
                    } else {
                        "the prefix length must be 0 to 128"
                    }));
                }
            },
        };
        let host_bits = match addr {
            IpAddr::V4(ip) => mask(u128::from(ip.to_bits()) << 96, prefix) != u128::from(ip.to_bits()) << 96,
            IpAddr::V6(ip) => mask(ip.to_bits(), prefix) != ip.to_bits(),
        };
        if host_bits {
            return Err(error(
                "it has bits set past its prefix length (write the network's first address)",
            ));
        }
        Ok(TrustedProxy::Network { addr, prefix })
    }
}

impl fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustedProxy::Unix => f.write_str("unix"),
            TrustedProxy::Network { addr, prefix } if *prefix == if addr.is_ipv4() { 32 } else { 128 } => {
                write!(f, "{addr}")
            }
            TrustedProxy::Network { addr, prefix } => write!(f, "{addr}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn proxied(source: &str, destination: &str) -> ProxyHeader {
        ProxyHeader::Proxied {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
        }
    }

    fn complete(header: ProxyHeader, len: usize) -> Result<Decoded, ProxyError> {
        Ok(Decoded::Complete { header, len })
    }

    /// Every strict prefix is `Incomplete`, the whole is `expected`, and
    /// bytes after it do not change it.
    fn decodes_whole(bytes: &[u8], expected: Result<Decoded, ProxyError>) {
        for end in 0..bytes.len() {
            assert_eq!(
                decode(&bytes[..end]),
                Ok(Decoded::Incomplete),
                "prefix {end} of {bytes:?}"
            );
        }
        assert_eq!(decode(bytes), expected, "{bytes:?}");
        let more = [bytes, b"\r\n\r\n\0data"].concat();
        assert_eq!(decode(&more), expected, "{bytes:?} and more");
    }

    fn trusted(text: &str) -> TrustedProxy {
        text.parse().unwrap()
    }

    fn ip_peer(addr: &str) -> Peer {
        Peer::from(addr.parse::<SocketAddr>().unwrap())
    }

    #[test]
    fn trusted_proxies_read_as_written() {
        for text in [
            "127.0.0.1",
            "10.0.0.0/8",
            "0.0.0.0/0",
            "::1",
            "fd00::/8",
            "::/0",
            "unix",
        ] {
            assert_eq!(trusted(text).to_string(), text);
        }
        assert_eq!(trusted("127.0.0.1/32").to_string(), "127.0.0.1");
        assert_eq!(trusted("[::1]").to_string(), "::1");
        assert_eq!(trusted("UNIX"), TrustedProxy::Unix);
        // An IPv4-mapped address is the IPv4 one.
        assert_eq!(trusted("::ffff:10.0.0.0/8"), trusted("10.0.0.0/8"));
        for (text, why) in [
            ("10.0.0.1/8", "bits set past its prefix length"),
            ("10.0.0.0/33", "0 to 32"),
            ("::/129", "0 to 128"),
            ("10.0.0.0/+8", "0 to 32"),
            ("10.0.0.0/", "0 to 32"),
            ("localhost", "not an IP address"),
            ("", "not an IP address"),
        ] {
            let error = text.parse::<TrustedProxy>().unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("{text:?} is not a trusted proxy")),
                "{error}"
            );
            assert!(error.contains(why), "{text}: {error}");
        }
    }

    #[test]
    fn a_trusted_network_holds_exactly_its_addresses() {
        let net = trusted("10.1.0.0/16");
        assert!(net.contains(&ip_peer("10.1.0.0:1")));
        assert!(net.contains(&ip_peer("10.1.255.255:1")));
        assert!(!net.contains(&ip_peer("10.2.0.0:1")));
        assert!(!net.contains(&ip_peer("10.0.255.255:1")));
        // A dual-stack listener's peer, mapped.
        assert!(net.contains(&Peer::Ip("[::ffff:10.1.2.3]:1".parse().unwrap())));
        assert!(!net.contains(&ip_peer("[::1]:1")));
        assert!(trusted("0.0.0.0/0").contains(&ip_peer("192.0.2.1:1")));
        assert!(!trusted("0.0.0.0/0").contains(&ip_peer("[2001:db8::1]:1")));
        let v6 = trusted("2001:db8::/127");
        assert!(v6.contains(&ip_peer("[2001:db8::1]:1")));
        assert!(!v6.contains(&ip_peer("[2001:db8::2]:1")));
        assert!(trusted("::1").contains(&ip_peer("[::1]:9")));
        let unix = Peer::Unix {
            addr: None,
            cred: None,
        };
        assert!(trusted("unix").contains(&unix));
        assert!(!trusted("0.0.0.0/0").contains(&unix));
        assert!(!trusted("unix").contains(&ip_peer("127.0.0.1:1")));
    }

    #[test]
    fn proxy_protocol_trusts_any_of_its_proxies() {
        let none = ProxyProtocol::new([]);
        assert!(!none.trusts(&ip_peer("127.0.0.1:1")));
        assert_eq!(none.timeout(), DEFAULT_HEADER_TIMEOUT);
        let two =
            ProxyProtocol::new([trusted("127.0.0.1"), trusted("::1")]).header_timeout(Duration::from_secs(1));
        assert_ne!(two.timeout(), DEFAULT_HEADER_TIMEOUT);
        assert_eq!(two.timeout(), Duration::from_secs(1));
        assert!(two.trusts(&ip_peer("127.0.0.1:1")) && two.trusts(&ip_peer("[::1]:1")));
        assert!(!two.trusts(&ip_peer("127.0.0.2:1")));
    }

    #[test]
    fn v1_examples_from_the_spec() {
        decodes_whole(
            b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
            complete(proxied("255.255.255.255:65535", "255.255.255.255:65535"), 56),
        );
        let ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let line = format!("PROXY TCP6 {ffff} {ffff} 65535 65535\r\n");
        assert_eq!(line.len(), 104);
        decodes_whole(
            line.as_bytes(),
            complete(
                proxied(&format!("[{ffff}]:65535"), &format!("[{ffff}]:65535")),
                104,
            ),
        );
        decodes_whole(b"PROXY UNKNOWN\r\n", complete(ProxyHeader::Local, 15));
        let unknown = format!("PROXY UNKNOWN {ffff} {ffff} 65535 65535\r\n");
        assert_eq!(unknown.len(), V1_MAX_LEN);
        decodes_whole(unknown.as_bytes(), complete(ProxyHeader::Local, V1_MAX_LEN));
        decodes_whole(
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
            complete(proxied("192.168.0.1:56324", "192.168.0.11:443"), 47),
        );
        decodes_whole(
            b"PROXY TCP6 2001:db8::1 ::ffff:1.2.3.4 0 1\r\n",
            complete(proxied("[2001:db8::1]:0", "[::ffff:1.2.3.4]:1"), 43),
        );
    }

    #[test]
    fn v1_errors() {
        let malformed = |reason| Err(ProxyError::V1Malformed(reason));
        let cases: &[(&[u8], Result<Decoded, ProxyError>)] = &[
            (
                b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
                malformed("protocol is not TCP4, TCP6 or UNKNOWN"),
            ),
            (
                b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
                malformed("protocol is not TCP4, TCP6 or UNKNOWN"),
            ),
            (
                b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
                malformed("protocol is not TCP4, TCP6 or UNKNOWN"),
            ),
            (b"PROXY \r\n", malformed("protocol is not TCP4, TCP6 or UNKNOWN")),
            (
                b"PROXY UNKNOWNX\r\n",
                malformed("protocol is not TCP4, TCP6 or UNKNOWN"),
            ),
            (b"PROXY TCP4\r\n", malformed("no source address")),
            (b"PROXY TCP4 1.2.3.4\r\n", malformed("no destination address")),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8\r\n", malformed("no source port")),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
                malformed("no destination port"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
                malformed("more than 6 fields, or not single spaces"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
                malformed("more than 6 fields, or not single spaces"),
            ),
            (
                b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
                malformed("more than 6 fields, or not single spaces"),
            ),
            (
                b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
                malformed("bad source address"),
            ),
            (
                b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
                malformed("bad source address"),
            ),
            (
                b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
                malformed("bad source address"),
            ),
            (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", malformed("bad source address")),
            (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", malformed("bad source address")),
            (
                b"PROXY TCP6 ::1 ::1%1 1 2\r\n",
                malformed("bad destination address"),
            ),
            (
                b"PROXY TCP6 ::1 [::1] 1 2\r\n",
                malformed("bad destination address"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
                malformed("bad source port"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
                malformed("bad source port"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
                malformed("bad destination port"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n",
                malformed("bad destination port"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
                malformed("a byte that is not printable ASCII before CRLF"),
            ),
            (
                b"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",
                malformed("a byte that is not printable ASCII before CRLF"),
            ),
            (
                b"PROXY UNKNOWN \xff\r\n",
                malformed("a byte that is not printable ASCII before CRLF"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
                malformed("a CR not followed by LF"),
            ),
            (b"PROXY\r\n", Err(ProxyError::NotProxy)),
            (b"proxy TCP4", Err(ProxyError::NotProxy)),
            (b"GET / HTTP/1.1\r\n", Err(ProxyError::NotProxy)),
        ];
        for (bytes, expected) in cases {
            assert_eq!(decode(bytes), *expected, "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn v1_without_crlf_in_107_bytes_is_too_long() {
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.resize(V1_MAX_LEN - 1, b'x');
        assert_eq!(decode(&line), Ok(Decoded::Incomplete));
        line.push(b'\r');
        assert_eq!(decode(&line), Err(ProxyError::V1TooLong));
        line.push(b'\n');
        assert_eq!(decode(&line), Err(ProxyError::V1TooLong));
        line.truncate(V1_MAX_LEN - 1);
        line.push(b'x');
        assert_eq!(decode(&line), Err(ProxyError::V1TooLong));
    }

    #[test]
    fn a_first_byte_that_starts_no_header_is_an_error_at_once() {
        for first in 0..=u8::MAX {
            let expected = if first == b'P' || first == b'\r' {
                Ok(Decoded::Incomplete)
            } else {
                Err(ProxyError::NotProxy)
            };
            assert_eq!(decode(&[first]), expected, "{first:#04x}");
        }
        assert_eq!(decode(b"\r\n\r\n\0\r\nQUI"), Ok(Decoded::Incomplete));
        assert_eq!(decode(b"\r\n\r\n\0\r\nQUIX"), Err(ProxyError::NotProxy));
        assert_eq!(decode(b"\r\n\r\n\r"), Err(ProxyError::NotProxy));
        assert_eq!(decode(b"PROXX"), Err(ProxyError::NotProxy));
        assert_eq!(decode(b""), Ok(Decoded::Incomplete));
    }

    const SIG: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

    #[test]
    fn v2_exact_bytes() {
        // PROXY, TCP over IPv4, 12 bytes: 192.0.2.1:56324 -> 198.51.100.2:443.
        let v4 = [
            SIG,
            &[0x21, 0x11, 0x00, 0x0c],
            &[192, 0, 2, 1, 198, 51, 100, 2],
            &[0xdc, 0x04, 0x01, 0xbb],
        ]
        .concat();
        let header = proxied("192.0.2.1:56324", "198.51.100.2:443");
        decodes_whole(&v4, complete(header, 28));
        assert_eq!(header.encode_v2(), v4);

        // PROXY, TCP over IPv6, 36 bytes: [2001:db8::1]:1 -> [::1]:65535.
        let mut source = [0; 16];
        source[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        source[15] = 1;
        let mut destination = [0; 16];
        destination[15] = 1;
        let v6 = [
            SIG,
            &[0x21, 0x21, 0x00, 0x24],
            &source,
            &destination,
            &[0x00, 0x01, 0xff, 0xff],
        ]
        .concat();
        let header = proxied("[2001:db8::1]:1", "[::1]:65535");
        decodes_whole(&v6, complete(header, 52));
        assert_eq!(header.encode_v2(), v6);

        // LOCAL ignores the family and whatever block it has.
        let local = [SIG, &[0x20, 0x00, 0x00, 0x00]].concat();
        decodes_whole(&local, complete(ProxyHeader::Local, 16));
        assert_eq!(ProxyHeader::Local.encode_v2(), local);
        let local = [SIG, &[0x20, 0xff, 0x00, 0x03], b"abc"].concat();
        decodes_whole(&local, complete(ProxyHeader::Local, 19));
        // PROXY with UNSPEC: use the real addresses; its block is skipped.
        let unspec = [SIG, &[0x21, 0x00, 0x00, 0x02], b"xy"].concat();
        decodes_whole(&unspec, complete(ProxyHeader::Local, 18));
    }

    #[test]
    fn v2_tlvs_are_skipped_within_the_length() {
        let addresses: &[u8] = &[127, 0, 0, 1, 127, 0, 0, 2, 0, 80, 0, 81];
        let header = proxied("127.0.0.1:80", "127.0.0.2:81");
        // PP2_TYPE_ALPN "h2", an empty PP2_TYPE_NOOP.
        let tlvs: &[u8] = &[0x01, 0x00, 0x02, b'h', b'2', 0x04, 0x00, 0x00];
        let bytes = [SIG, &[0x21, 0x11, 0x00, 20], addresses, tlvs].concat();
        decodes_whole(&bytes, complete(header, 36));
        // A TLV whose length runs past the block, and a cut TLV header.
        for tlvs in [
            &[0x01, 0x00, 0x03, b'h', b'2'][..],
            &[0x04, 0x00][..],
            &[0x04][..],
        ] {
            let len = 12 + tlvs.len() as u8;
            let bytes = [SIG, &[0x21, 0x11, 0x00, len], addresses, tlvs].concat();
            assert_eq!(decode(&bytes), Err(ProxyError::V2BadTlv), "{tlvs:?}");
        }
    }

    #[test]
    fn v2_errors() {
        let cases: &[(&[u8], Result<Decoded, ProxyError>)] = &[
            (&[0x11], Err(ProxyError::V2Version(1))),
            (&[0x31], Err(ProxyError::V2Version(3))),
            (&[0x22], Err(ProxyError::V2Command(2))),
            (&[0x2f], Err(ProxyError::V2Command(0xf))),
            (&[0x21, 0x12], Err(ProxyError::Unsupported("UDP"))),
            (&[0x21, 0x22], Err(ProxyError::Unsupported("UDP"))),
            (&[0x21, 0x31], Err(ProxyError::Unsupported("Unix sockets"))),
            (&[0x21, 0x32], Err(ProxyError::Unsupported("Unix sockets"))),
            (&[0x21, 0x13], Err(ProxyError::V2Family(0x13))),
            (&[0x21, 0x41], Err(ProxyError::V2Family(0x41))),
            (&[0x21, 0x01], Err(ProxyError::V2Family(0x01))),
            (
                &[0x21, 0x11, 0x00, 11],
                Err(ProxyError::V2ShortAddresses { len: 11, needed: 12 }),
            ),
            (
                &[0x21, 0x21, 0x00, 12],
                Err(ProxyError::V2ShortAddresses { len: 12, needed: 36 }),
            ),
            (
                &[0x21, 0x11, 0x02, 0x09],
                Err(ProxyError::V2TooLong { len: 537, max: 536 }),
            ),
            (
                &[0x20, 0x00, 0xff, 0xff],
                Err(ProxyError::V2TooLong {
                    len: V2_MAX_LEN,
                    max: 536,
                }),
            ),
            (&[0x21, 0x11, 0x02, 0x08], Ok(Decoded::Incomplete)),
        ];
        for (tail, expected) in cases {
            assert_eq!(decode(&[SIG, tail].concat()), *expected, "{tail:?}");
        }
    }

    #[test]
    fn the_v2_cap_is_the_callers_and_clamped() {
        let local = [SIG, &[0x20, 0x00, 0x01, 0x00]].concat();
        assert_eq!(
            decode_with_max(&local, 271),
            Err(ProxyError::V2TooLong { len: 272, max: 271 })
        );
        assert_eq!(decode_with_max(&local, 272), Ok(Decoded::Incomplete));
        let whole = [&local[..], &[0; 256]].concat();
        assert_eq!(decode_with_max(&whole, 272), complete(ProxyHeader::Local, 272));
        let biggest = [SIG, &[0x20, 0x00, 0xff, 0xff]].concat();
        assert_eq!(decode_with_max(&biggest, usize::MAX), Ok(Decoded::Incomplete));
        let empty = [SIG, &[0x20, 0x00, 0x00, 0x00]].concat();
        assert_eq!(decode_with_max(&empty, 0), complete(ProxyHeader::Local, 16));
        assert_eq!(
            decode_with_max(&local, 0),
            Err(ProxyError::V2TooLong { len: 272, max: 16 })
        );
    }

    #[test]
    fn mixed_families_go_as_ipv6_mapped() {
        let header = proxied("192.0.2.1:1", "[2001:db8::2]:2");
        let mapped = proxied("[::ffff:192.0.2.1]:1", "[2001:db8::2]:2");
        assert_eq!(
            header.encode_v1(),
            b"PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 1 2\r\n"
        );
        assert_eq!(decode(&header.encode_v1()), complete(mapped, 45));
        assert_eq!(decode(&header.encode_v2()), complete(mapped, 52));
    }

    #[test]
    fn errors_read_clearly() {
        assert_eq!(
            ProxyError::V1Malformed("bad source port").to_string(),
            "malformed PROXY v1 header: bad source port"
        );
        assert_eq!(
            ProxyError::V2TooLong { len: 600, max: 536 }.to_string(),
            "PROXY v2 header of 600 bytes, past the maximum of 536"
        );
        assert_eq!(
            ProxyError::V2Family(0x13).to_string(),
            "PROXY v2 header with unknown address family and protocol 0x13"
        );
    }

    fn header() -> impl Strategy<Value = ProxyHeader> {
        let v4 = (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)));
        let v6 = (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)));
        prop_oneof![
            Just(ProxyHeader::Local),
            (v4.clone(), v4).prop_map(|(source, destination)| ProxyHeader::Proxied { source, destination }),
            (v6.clone(), v6).prop_map(|(source, destination)| ProxyHeader::Proxied { source, destination }),
        ]
    }

    proptest! {
        /// decode(encode(h)) == h, in both versions, the header whole.
        #[test]
        fn round_trip(header in header(), rest in prop::collection::vec(any::<u8>(), 0..8)) {
            for bytes in [header.encode_v1(), header.encode_v2()] {
                let len = bytes.len();
                prop_assert!(len <= V1_MAX_LEN.max(52));
                let stream = [bytes, rest.clone()].concat();
                prop_assert_eq!(decode(&stream), complete(header, len));
            }
        }

        /// The fuzz target's properties (no panic, same answer for every
        /// prefix past the decision, nothing buffered past the cap) on bytes
        /// near a header: a valid one with a few bytes changed.
        #[test]
        fn mutated_headers_hold_the_target_properties(
            header in header(),
            v2 in any::<bool>(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cap in any::<u8>(),
        ) {
            let mut bytes = if v2 { header.encode_v2() } else { header.encode_v1() };
            for (at, byte) in edits {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            crate::fuzzing::proxy_header(&[&[cap], &bytes[..]].concat());
        }

        /// And on arbitrary bytes, with the start of either signature or none.
        #[test]
        fn any_bytes_hold_the_target_properties(
            start in prop::sample::select(vec![&b""[..], b"PROXY ", b"\r\n\r\n\0\r\nQUIT\n", b"\r\n\r\n\0\r\nQUIT\n\x21\x11"]),
            data in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let (cap, rest) = data.split_first().map_or((0, &[][..]), |(c, r)| (*c, r));
            crate::fuzzing::proxy_header(&[&[cap], start, rest].concat());
        }
    }
}
