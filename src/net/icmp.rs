//! ICMP echo sockets over IPv4 and IPv6: raw when privileged, ICMP datagram
//! sockets (`net.ipv4.ping_group_range`) when not.
//!
//! The two kinds differ in what the kernel does for the caller:
//!
//! - a **raw** socket (`SOCK_RAW`, root or `CAP_NET_RAW`) sends the ICMP
//!   message as given and receives every ICMP packet from the peer, our own
//!   echo requests too when the peer is this host; over IPv4 it receives the
//!   IP header as well, and can be told to send one it did not build
//!   (`IP_HDRINCL`);
//! - an **ICMP datagram** socket (`SOCK_DGRAM`, open to the groups in the
//!   sysctl `net.ipv4.ping_group_range`, which covers IPv6 too) sets the
//!   echo identifier to its own "port" and receives only the replies that
//!   carry it.
//!
//! Either way the kernel fills in the ICMPv6 checksum. The messages are built
//! and parsed by the pure [`crate::icmp`].
//!
//! Every reply comes with the time to live (IPv4) or hop limit (IPv6) it
//! arrived with: a raw IPv4 socket reads it in the IP header, the others in
//! the `IP_TTL` or `IPV6_HOPLIMIT` control message of `recvmsg(2)`, which
//! `IP_RECVTTL` and `IPV6_RECVHOPLIMIT` ask the kernel for.
//!
//! The socket is carried by a [`tokio::net::UdpSocket`], which calls
//! `send(2)` on it, and waits for it to be readable before `recvmsg(2)` is
//! called here, as valid on an ICMP socket as on a UDP one: tokio 1.54
//! deprecates the safe `AsyncFd::new`, and its replacement
//! `AsyncFd::register` is `unsafe`, which this crate denies.
//!
//! # Examples
//!
//! One ping to 127.0.0.1, on whichever socket this process may open:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use sockit::net::icmp::{EchoSocket, OpenError, Options, Received};
//!
//! let socket = match EchoSocket::open("127.0.0.1".parse()?, &Options::default()) {
//!     Ok(socket) => socket,
//!     Err(OpenError::NotPermitted { .. }) => return Ok(()), // neither root nor in the ping group
//!     Err(e) => return Err(e.into()),
//! };
//! socket.send(1, b"are you there?").await?;
//! let mut buf = vec![0; 65_536];
//! let reply = tokio::time::timeout(Duration::from_secs(5), async {
//!     loop {
//!         // A raw socket also sees its own request, looped back.
//!         if let Received::Reply(reply) = socket.recv(&mut buf).await? {
//!             return Ok::<_, std::io::Error>((reply.seq, reply.payload.to_vec()));
//!         }
//!     }
//! })
//! .await??;
//! assert_eq!(reply, (1, b"are you there?".to_vec()));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, Ordering};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tracing::debug;

use crate::icmp::{self, Echo, EchoKind, IcmpError, Ipv4Header, Message, Version};

/// Where Linux keeps the groups that may open ICMP datagram sockets.
const PING_GROUP_RANGE: &str = "/proc/sys/net/ipv4/ping_group_range";

/// Which kind of socket carries the echo messages.
///
/// # Examples
///
/// ```
/// use sockit::net::icmp::Kind;
///
/// assert_eq!(Kind::Raw.to_string(), "raw");
/// assert_eq!(Kind::Datagram.to_string(), "datagram");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `SOCK_RAW`: needs root or `CAP_NET_RAW`.
    Raw,
    /// `SOCK_DGRAM` with protocol ICMP: needs a group in
    /// `net.ipv4.ping_group_range`.
    Datagram,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Raw => "raw",
            Kind::Datagram => "datagram",
        })
    }
}

/// How to open an [`EchoSocket`].
///
/// # Examples
///
/// ```
/// use sockit::net::icmp::{Kind, Options};
///
/// // `ping -t 1` on a raw socket that builds its own IPv4 header.
/// let options = Options { kind: Some(Kind::Raw), ttl: Some(1), header_included: true };
/// assert_ne!(options, Options::default());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// The kind of socket; `None` tries raw, then datagram when raw is not
    /// permitted.
    pub kind: Option<Kind>,
    /// The time to live (IPv4) or hop limit (IPv6) of the requests; `None`
    /// keeps the system's default.
    pub ttl: Option<u8>,
    /// Build the IPv4 header here and send it with the message
    /// (`IP_HDRINCL`); raw IPv4 sockets only, so with `kind: None` it means
    /// raw.
    pub header_included: bool,
}

/// Why an [`EchoSocket`] could not be opened.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use sockit::net::icmp::{EchoSocket, OpenError, Options};
///
/// let options = Options { header_included: true, ..Options::default() };
/// let err = EchoSocket::open("::1".parse()?, &options).unwrap_err();
/// assert!(matches!(err, OpenError::HeaderIncluded));
/// assert_eq!(err.to_string(), "building the IP header (IP_HDRINCL) needs a raw IPv4 socket");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A raw socket was asked for, and this process may not open one.
    #[error("a raw ICMP socket needs root or CAP_NET_RAW")]
    RawNotPermitted(#[source] io::Error),
    /// A datagram socket was asked for, and no group of this process is in
    /// `net.ipv4.ping_group_range`.
    #[error(
        "an ICMP datagram socket needs one of this process's groups in sysctl \
         net.ipv4.ping_group_range (now \"{range}\")"
    )]
    DatagramNotPermitted {
        /// The range, as the kernel gives it.
        range: String,
        /// The kernel's refusal.
        #[source]
        source: io::Error,
    },
    /// Neither kind is permitted.
    #[error(
        "no ICMP socket is permitted: a raw one needs root or CAP_NET_RAW, and a datagram one \
         needs one of this process's groups in sysctl net.ipv4.ping_group_range (now \"{range}\"; \
         'sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"' opens it to all)"
    )]
    NotPermitted {
        /// The range, as the kernel gives it.
        range: String,
    },
    /// `IP_HDRINCL` was asked for on an IPv6 or a datagram socket.
    #[error("building the IP header (IP_HDRINCL) needs a raw IPv4 socket")]
    HeaderIncluded,
    /// The socket could not be made or set up.
    #[error("cannot open an ICMP socket")]
    Io(#[from] io::Error),
}

/// A socket that sends ICMP echo requests to one host and receives its
/// replies.
///
/// ```no_run
/// use std::time::Instant;
/// use sockit::icmp::Session;
/// use sockit::net::icmp::{EchoSocket, Options, Received};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let socket = EchoSocket::open("127.0.0.1".parse()?, &Options::default())?;
/// let mut session = Session::new(56);
/// let (seq, payload) = session.probe(Instant::now(), std::time::UNIX_EPOCH.elapsed()?);
/// socket.send(seq, &payload).await?;
/// let mut buf = vec![0; 65_536];
/// loop {
///     if let Received::Reply(reply) = socket.recv(&mut buf).await? {
///         println!("{:?}", session.reply(reply.seq, reply.payload, Instant::now()));
///         break;
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct EchoSocket {
    /// The ICMP socket (see the module's doc for why a `UdpSocket`).
    socket: UdpSocket,
    kind: Kind,
    target: IpAddr,
    local: IpAddr,
    id: u16,
    /// With `IP_HDRINCL`: the TTL to write in the header built here.
    header_ttl: Option<u8>,
}

/// What one datagram received turned out to be.
///
/// # Examples
///
/// ```
/// use sockit::icmp::{IcmpError, Message};
/// use sockit::net::icmp::Received;
///
/// fn describe(received: &Received<'_>) -> String {
///     match received {
///         Received::Reply(reply) => format!("{} bytes: icmp_seq={}", reply.len, reply.seq),
///         Received::Other(Message::Other { kind: 3, .. }) => "unreachable".into(),
///         Received::Other(_) => "not for us".into(),
///         Received::Invalid(e) => format!("invalid: {e}"),
///     }
/// }
/// let invalid = Received::Invalid(IcmpError::NotIcmp { protocol: 17 });
/// assert_eq!(describe(&invalid), "invalid: not ICMP: IPv4 protocol 17");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received<'a> {
    /// An echo reply carrying this socket's identifier, its checksum right.
    Reply(Reply<'a>),
    /// Any other ICMP message: an echo request (ours, looped back to a raw
    /// socket), a reply to another pinger, an error message.
    Other(Message<'a>),
    /// A packet that could not be parsed, or whose checksum is wrong.
    Invalid(IcmpError),
}

/// An echo reply to this socket.
///
/// # Examples
///
/// ```
/// use sockit::net::icmp::Reply;
///
/// let reply = Reply { seq: 3, len: 64, ttl: Some(64), payload: &[0; 56] };
/// let line = format!("{} bytes: icmp_seq={} ttl={}", reply.len, reply.seq, reply.ttl.unwrap());
/// assert_eq!(line, "64 bytes: icmp_seq=3 ttl=64");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'a> {
    /// Its sequence number.
    pub seq: u16,
    /// The length of the ICMP message: header and payload.
    pub len: usize,
    /// The time to live (IPv4) or hop limit (IPv6) it arrived with, where
    /// the kernel tells it (see the module's doc).
    pub ttl: Option<u8>,
    /// The payload, to compare with what was sent.
    pub payload: &'a [u8],
}

impl EchoSocket {
    /// Opens a socket for pinging `target`, of the kind `options` asks for
    /// (raw, falling back to datagram when raw is not permitted, by default).
    ///
    /// # Errors
    ///
    /// [`OpenError::RawNotPermitted`], [`OpenError::DatagramNotPermitted`]
    /// or [`OpenError::NotPermitted`] when the kernel refuses the kind asked
    /// for; [`OpenError::HeaderIncluded`] for `IP_HDRINCL` on anything but a
    /// raw IPv4 socket; [`OpenError::Io`] when the system has no ICMP
    /// sockets for the family or setting an option fails.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::net::IpAddr;
    /// use sockit::net::icmp::{EchoSocket, Kind, OpenError, Options};
    ///
    /// let target: IpAddr = "127.0.0.1".parse()?;
    /// let options = Options { kind: Some(Kind::Datagram), ..Options::default() };
    /// match EchoSocket::open(target, &options) {
    ///     Ok(socket) => {
    ///         assert_eq!((socket.kind(), socket.target()), (Kind::Datagram, target));
    ///         assert_eq!(socket.local_ip(), target);
    ///         assert!(!socket.header_included());
    ///     }
    ///     // This process's groups are not in net.ipv4.ping_group_range.
    ///     Err(OpenError::DatagramNotPermitted { range, .. }) => assert!(!range.is_empty()),
    ///     Err(e) => return Err(e.into()),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(target: IpAddr, options: &Options) -> Result<EchoSocket, OpenError> {
        if options.header_included && (target.is_ipv6() || options.kind == Some(Kind::Datagram)) {
            return Err(OpenError::HeaderIncluded);
        }
        let kind = match options.kind {
            None if options.header_included => Some(Kind::Raw),
            kind => kind,
        };
        let (socket, kind) = match kind {
            Some(Kind::Raw) => match new_socket(target, Kind::Raw) {
                Ok(socket) => (socket, Kind::Raw),
                Err(e) if not_permitted(&e) => return Err(OpenError::RawNotPermitted(e)),
                Err(e) => return Err(e.into()),
            },
            Some(Kind::Datagram) => match new_socket(target, Kind::Datagram) {
                Ok(socket) => (socket, Kind::Datagram),
                Err(source) if not_permitted(&source) => {
                    return Err(OpenError::DatagramNotPermitted {
                        range: ping_group_range(),
                        source,
                    });
                }
                Err(e) => return Err(e.into()),
            },
            None => match new_socket(target, Kind::Raw) {
                Ok(socket) => (socket, Kind::Raw),
                Err(raw) if not_permitted(&raw) => match new_socket(target, Kind::Datagram) {
                    Ok(socket) => {
                        debug!(error = %raw, "no raw ICMP socket; using an ICMP datagram socket");
                        (socket, Kind::Datagram)
                    }
                    Err(e) if not_permitted(&e) => {
                        return Err(OpenError::NotPermitted {
                            range: ping_group_range(),
                        });
                    }
                    Err(e) => return Err(e.into()),
                },
                Err(e) => return Err(e.into()),
            },
        };
        Self::set_up(socket, kind, target, options).map_err(OpenError::Io)
    }

    /// Sets the options, binds and connects `socket`.
    fn set_up(socket: Socket, kind: Kind, target: IpAddr, options: &Options) -> io::Result<EchoSocket> {
        socket.set_nonblocking(true)?;
        // Each reply's TTL or hop limit comes in a control message, but on a
        // raw IPv4 socket, which receives the IP header that carries it.
        // socket2 has no setter for IP_RECVTTL.
        match target {
            IpAddr::V4(_) if kind == Kind::Raw => {}
            IpAddr::V4(_) => setsockopt(&socket, sockopt::Ipv4RecvTtl, &true)?,
            IpAddr::V6(_) => socket.set_recv_hoplimit_v6(true)?,
        }
        let mut header_ttl = None;
        if options.header_included {
            socket.set_header_included_v4(true)?;
            header_ttl = Some(match options.ttl {
                Some(ttl) => ttl,
                None => u8::try_from(socket.ttl_v4()?).unwrap_or(64),
            });
        } else if let Some(ttl) = options.ttl {
            match target {
                IpAddr::V4(_) => socket.set_ttl_v4(ttl.into())?,
                IpAddr::V6(_) => socket.set_unicast_hops_v6(ttl.into())?,
            }
        }
        if kind == Kind::Datagram {
            // Port 0: the kernel picks the identifier.
            let any: IpAddr = match target {
                IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
                IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
            };
            socket.bind(&SocketAddr::new(any, 0).into())?;
        }
        // Connected, a socket receives only from the target, and knows its
        // own address (for the IPv4 header and the ICMPv6 checksum).
        socket.connect(&SocketAddr::new(target, 0).into())?;
        let local = socket_addr(&socket.local_addr()?)?;
        let id = match kind {
            Kind::Datagram => local.port(),
            Kind::Raw => raw_id(),
        };
        debug!(%kind, %target, local = %local.ip(), id, "ICMP socket open");
        Ok(EchoSocket {
            socket: UdpSocket::from_std(socket.into())?,
            kind,
            target,
            local: local.ip(),
            id,
            header_ttl,
        })
    }

    /// The kind of socket in use.
    ///
    /// # Examples
    ///
    /// With no kind asked for, a raw socket when permitted, otherwise a datagram socket:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sockit::net::icmp::{EchoSocket, Kind, OpenError, Options};
    ///
    /// match EchoSocket::open("127.0.0.1".parse()?, &Options::default()) {
    ///     Ok(socket) => assert!(matches!(socket.kind(), Kind::Raw | Kind::Datagram)),
    ///     Err(OpenError::NotPermitted { .. }) => {}
    ///     Err(e) => return Err(e.into()),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether this socket sends the IPv4 header it builds (`IP_HDRINCL`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sockit::net::icmp::{EchoSocket, Kind, OpenError, Options};
    ///
    /// let options = Options { header_included: true, ..Options::default() };
    /// match EchoSocket::open("127.0.0.1".parse()?, &options) {
    ///     Ok(socket) => assert!(socket.header_included() && socket.kind() == Kind::Raw),
    ///     Err(OpenError::RawNotPermitted(_)) => {} // not root
    ///     Err(e) => return Err(e.into()),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn header_included(&self) -> bool {
        self.header_ttl.is_some()
    }

    /// The echo identifier: chosen here for a raw socket, the kernel's
    /// "port" for a datagram socket.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sockit::net::icmp::{EchoSocket, OpenError, Options};
    ///
    /// let target = "127.0.0.1".parse()?;
    /// match (EchoSocket::open(target, &Options::default()), EchoSocket::open(target, &Options::default())) {
    ///     (Ok(a), Ok(b)) => assert_ne!(a.id(), b.id()), // each pinger tells its replies apart
    ///     (Err(OpenError::NotPermitted { .. }), _) => {}
    ///     (Err(e), _) | (_, Err(e)) => return Err(e.into()),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The host pinged.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sockit::net::icmp::{EchoSocket, OpenError, Options};
    ///
    /// match EchoSocket::open("::1".parse()?, &Options::default()) {
    ///     Ok(socket) => assert_eq!(socket.target().to_string(), "::1"),
    ///     Err(OpenError::NotPermitted { .. }) => {}
    ///     Err(e) => return Err(e.into()),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn target(&self) -> IpAddr {
        self.target
    }

    /// This end's address, as the kernel chose it for the target.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sockit::net::icmp::{EchoSocket, OpenError, Options};
    ///
    /// // The kernel picks 127.0.0.1 as the source for all of 127.0.0.0/8.
    /// match EchoSocket::open("127.0.0.3".parse()?, &Options::default()) {
    ///     Ok(socket) => assert_eq!(socket.local_ip().to_string(), "127.0.0.1"),
    ///     Err(OpenError::NotPermitted { .. }) => {}
    ///     Err(e) => return Err(e.into()),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_ip(&self) -> IpAddr {
        self.local
    }

    fn version(&self) -> Version {
        match self.target {
            IpAddr::V4(_) => Version::V4,
            IpAddr::V6(_) => Version::V6,
        }
    }

    /// Sends the echo request `seq` carrying `payload`.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] when the payload does not fit one
    /// packet; whatever the kernel reports (no route, buffer full, …).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the request is sent whole or not at all.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sockit::net::icmp::{EchoSocket, OpenError, Options};
    ///
    /// match EchoSocket::open("127.0.0.1".parse()?, &Options::default()) {
    ///     Ok(socket) => {
    ///         socket.send(1, b"ping").await?;
    ///         let too_big = vec![0; 65_508];
    ///         let err = socket.send(2, &too_big).await.unwrap_err();
    ///         assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    ///     }
    ///     Err(OpenError::NotPermitted { .. }) => {}
    ///     Err(e) => return Err(e.into()),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send(&self, seq: u16, payload: &[u8]) -> io::Result<()> {
        let packet = self
            .request(seq, payload)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.socket.send(&packet).await?;
        Ok(())
    }

    /// The bytes to send for request `seq`: the ICMP message, after the
    /// IPv4 header with `IP_HDRINCL`.
    fn request(&self, seq: u16, payload: &[u8]) -> Result<Vec<u8>, IcmpError> {
        icmp::check_payload_size(self.version(), payload.len())?;
        let echo = Echo {
            id: self.id,
            seq,
            payload,
        };
        let message = echo.encode(self.version(), EchoKind::Request);
        match (self.header_ttl, self.local, self.target) {
            (Some(ttl), IpAddr::V4(src), IpAddr::V4(dst)) => {
                // The IP identification is the sequence number: visible on
                // the wire, where the kernel would fill in its own.
                let header = Ipv4Header::icmp(src, dst, seq, ttl, message.len())?;
                let mut packet = header.encode().to_vec();
                packet.extend_from_slice(&message);
                Ok(packet)
            }
            _ => Ok(message),
        }
    }

    /// Receives one datagram into `buf` and says what it is. Use a buffer of
    /// 65535 bytes or more: a longer datagram is cut short and then fails to
    /// parse.
    ///
    /// # Errors
    ///
    /// Whatever the kernel reports, such as an ICMP error for an earlier
    /// request (host unreachable) on a connected raw socket.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a datagram is either received and returned, or left
    /// queued.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use sockit::icmp::{Echo, Message};
    /// use sockit::net::icmp::{EchoSocket, Kind, OpenError, Options, Received};
    ///
    /// let options = Options { kind: Some(Kind::Raw), ..Options::default() };
    /// let socket = match EchoSocket::open("127.0.0.1".parse()?, &options) {
    ///     Ok(socket) => socket,
    ///     Err(OpenError::RawNotPermitted(_)) => return Ok(()), // not root
    ///     Err(e) => return Err(e.into()),
    /// };
    /// socket.send(9, b"hi").await?;
    /// let mut buf = vec![0; 65_536];
    /// let ours = Echo { id: socket.id(), seq: 9, payload: b"hi" };
    /// let mut saw_request = false;
    /// let reply = tokio::time::timeout(Duration::from_secs(5), async {
    ///     loop {
    ///         match socket.recv(&mut buf).await? {
    ///             // A raw socket sees our own request, looped back, before the reply.
    ///             Received::Other(Message::EchoRequest(echo)) if echo == ours => saw_request = true,
    ///             Received::Reply(reply) => {
    ///                 break Ok::<_, std::io::Error>((reply.seq, reply.payload.to_vec()));
    ///             }
    ///             _ => {} // other pingers' packets
    ///         }
    ///     }
    /// })
    /// .await??;
    /// assert!(saw_request);
    /// assert_eq!(reply, (9, b"hi".to_vec()));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv<'b>(&self, buf: &'b mut [u8]) -> io::Result<Received<'b>> {
        let (len, hops) = self
            .socket
            .async_io(Interest::READABLE, || recv_with_hops(&self.socket, buf))
            .await?;
        let buf: &'b [u8] = buf;
        Ok(self.classify(&buf[..len], hops))
    }

    /// Parses a datagram as this kind of socket receives it, and keeps the
    /// replies that carry this socket's identifier.
    fn classify<'a>(&self, packet: &'a [u8], hops: Option<u8>) -> Received<'a> {
        classify(self.kind, self.target, self.local, self.id, packet, hops)
    }
}

/// Receives one datagram into `buf` without blocking: its length, and the
/// TTL or hop limit of its control message where there is one.
fn recv_with_hops(socket: &impl AsRawFd, buf: &mut [u8]) -> io::Result<(usize, Option<u8>)> {
    let mut control = nix::cmsg_space!(std::ffi::c_int);
    let mut iov = [IoSliceMut::new(buf)];
    let message = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::empty(),
    )?;
    // Cut short (`MSG_CTRUNC`), the control messages are not to be read;
    // the datagram still is.
    let hops = message
        .cmsgs()
        .ok()
        .into_iter()
        .flatten()
        .find_map(ttl_or_hop_limit);
    Ok((message.bytes, hops))
}

/// The TTL or hop limit a control message carries, if it is one of those.
fn ttl_or_hop_limit(message: ControlMessageOwned) -> Option<u8> {
    match message {
        ControlMessageOwned::Ipv4Ttl(hops) | ControlMessageOwned::Ipv6HopLimit(hops) => {
            u8::try_from(hops).ok()
        }
        _ => None,
    }
}

/// Parses a datagram as a socket of `kind` connected from `local` to
/// `target` receives it, and keeps the echo replies that carry `id`. `hops`
/// is the TTL or hop limit of its control message: the reply's, except on a
/// raw IPv4 socket, which reads it in the IP header.
fn classify(
    kind: Kind,
    target: IpAddr,
    local: IpAddr,
    id: u16,
    packet: &[u8],
    hops: Option<u8>,
) -> Received<'_> {
    let parsed = match (target, local) {
        (IpAddr::V4(_), _) if kind == Kind::Raw => {
            icmp::parse_ipv4_icmp(packet).map(|(header, message)| (Some(header.ttl), message))
        }
        (IpAddr::V4(_), _) => icmp::parse_icmpv4(packet).map(|message| (hops, message)),
        (IpAddr::V6(target), local) => {
            let addresses = match local {
                IpAddr::V6(local) if !local.is_unspecified() => Some((target, local)),
                _ => None,
            };
            icmp::parse_icmpv6(packet, addresses).map(|message| (hops, message))
        }
    };
    match parsed {
        Ok((ttl, Message::EchoReply(echo))) if echo.id == id => Received::Reply(Reply {
            seq: echo.seq,
            len: icmp::ECHO_HEADER_LEN + echo.payload.len(),
            ttl,
            payload: echo.payload,
        }),
        Ok((_, message)) => Received::Other(message),
        Err(error) => Received::Invalid(error),
    }
}

/// A new socket of `kind` for the family of `target`.
fn new_socket(target: IpAddr, kind: Kind) -> io::Result<Socket> {
    let (domain, protocol) = match target {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let ty = match kind {
        Kind::Raw => Type::RAW,
        Kind::Datagram => Type::DGRAM,
    };
    Socket::new(domain, ty, Some(protocol))
}

/// Whether the kernel refused for want of privilege (`EPERM`, `EACCES`).
fn not_permitted(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::PermissionDenied
}

/// The sysctl `net.ipv4.ping_group_range`, as "FIRST LAST".
fn ping_group_range() -> String {
    match std::fs::read_to_string(PING_GROUP_RANGE) {
        Ok(text) => text.split_whitespace().collect::<Vec<_>>().join(" "),
        Err(_) => "unreadable".to_owned(),
    }
}

/// An identifier for a raw socket: the process id, plus one for each raw
/// socket opened before in this process.
fn raw_id() -> u16 {
    static OPENED: AtomicU16 = AtomicU16::new(0);
    (std::process::id() as u16).wrapping_add(OPENED.fetch_add(1, Ordering::Relaxed))
}

fn socket_addr(addr: &SockAddr) -> io::Result<SocketAddr> {
    addr.as_socket()
        .ok_or_else(|| io::Error::other("the ICMP socket has no IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
    const PAYLOAD: &[u8] = b"abcdefgh";

    fn message(version: Version, kind: EchoKind, id: u16) -> Vec<u8> {
        Echo {
            id,
            seq: 7,
            payload: PAYLOAD,
        }
        .encode(version, kind)
    }

    /// `message` after an IPv4 header with TTL 63, as a raw socket gets it.
    fn with_header(message: &[u8]) -> Vec<u8> {
        let header =
            Ipv4Header::icmp(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 1, 63, message.len()).unwrap();
        [&header.encode()[..], message].concat()
    }

    fn reply(ttl: Option<u8>) -> Received<'static> {
        Received::Reply(Reply {
            seq: 7,
            len: 16,
            ttl,
            payload: PAYLOAD,
        })
    }

    #[test]
    fn a_raw_ipv4_socket_keeps_replies_with_its_id_and_reads_their_ttl() {
        let ours = with_header(&message(Version::V4, EchoKind::Reply, 0x1234));
        assert_eq!(classify(Kind::Raw, V4, V4, 0x1234, &ours, None), reply(Some(63)));
        // The header's TTL is the one read.
        assert_eq!(
            classify(Kind::Raw, V4, V4, 0x1234, &ours, Some(9)),
            reply(Some(63))
        );
        let theirs = with_header(&message(Version::V4, EchoKind::Reply, 0x4321));
        assert!(matches!(
            classify(Kind::Raw, V4, V4, 0x1234, &theirs, None),
            Received::Other(Message::EchoReply(Echo { id: 0x4321, .. }))
        ));
        // Its own request, looped back to it.
        let request = with_header(&message(Version::V4, EchoKind::Request, 0x1234));
        assert!(matches!(
            classify(Kind::Raw, V4, V4, 0x1234, &request, None),
            Received::Other(Message::EchoRequest(_))
        ));
        // Without the IP header it is not what a raw socket receives.
        assert_eq!(
            classify(Kind::Raw, V4, V4, 0x1234, &ours[20..], None),
            Received::Invalid(IcmpError::NotIpv4 { version: 0 })
        );
    }

    #[test]
    fn an_ipv4_datagram_socket_gets_the_message_alone_and_the_ttl_aside() {
        let ours = message(Version::V4, EchoKind::Reply, 40_000);
        assert_eq!(
            classify(Kind::Datagram, V4, V4, 40_000, &ours, Some(61)),
            reply(Some(61))
        );
        assert_eq!(classify(Kind::Datagram, V4, V4, 40_000, &ours, None), reply(None));
        assert!(matches!(
            classify(Kind::Datagram, V4, V4, 40_001, &ours, Some(61)),
            Received::Other(Message::EchoReply(_))
        ));
        let mut corrupt = ours;
        corrupt[9] ^= 0x20;
        assert!(matches!(
            classify(Kind::Datagram, V4, V4, 40_000, &corrupt, Some(61)),
            Received::Invalid(IcmpError::BadChecksum { what: "ICMP", .. })
        ));
    }

    #[test]
    fn ipv6_sockets_check_the_checksum_against_both_addresses_and_take_the_hop_limit_aside() {
        let mut ours = message(Version::V6, EchoKind::Reply, 0x1234);
        icmp::set_icmpv6_checksum(&mut ours, Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST);
        for kind in [Kind::Raw, Kind::Datagram] {
            assert_eq!(classify(kind, V6, V6, 0x1234, &ours, Some(255)), reply(Some(255)));
            assert_eq!(classify(kind, V6, V6, 0x1234, &ours, None), reply(None));
            assert!(matches!(
                classify(kind, V6, V6, 0x1235, &ours, Some(255)),
                Received::Other(Message::EchoReply(_))
            ));
        }
        // Addressed to another local address: the checksum does not add up.
        let other: IpAddr = "2001:db8::2".parse().unwrap();
        assert!(matches!(
            classify(Kind::Raw, V6, other, 0x1234, &ours, None),
            Received::Invalid(IcmpError::BadChecksum { what: "ICMPv6", .. })
        ));
        // Not knowing this end's address, the kernel's check is the check.
        let any = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        assert_eq!(
            classify(Kind::Raw, V6, any, 0x1234, &ours, Some(1)),
            reply(Some(1))
        );
    }

    #[test]
    fn the_ttl_and_the_hop_limit_are_read_from_their_control_messages_alone() {
        assert_eq!(ttl_or_hop_limit(ControlMessageOwned::Ipv4Ttl(63)), Some(63));
        assert_eq!(
            ttl_or_hop_limit(ControlMessageOwned::Ipv6HopLimit(255)),
            Some(255)
        );
        assert_eq!(ttl_or_hop_limit(ControlMessageOwned::Ipv6HopLimit(0)), Some(0));
        // Out of a header field's range: not a TTL the kernel could give.
        assert_eq!(ttl_or_hop_limit(ControlMessageOwned::Ipv4Ttl(256)), None);
        assert_eq!(ttl_or_hop_limit(ControlMessageOwned::Ipv6HopLimit(-1)), None);
        assert_eq!(ttl_or_hop_limit(ControlMessageOwned::Ipv4Tos(64)), None);
    }

    #[test]
    fn the_ping_group_range_reads_as_first_and_last() {
        let range = ping_group_range();
        let numbers: Vec<&str> = range.split(' ').collect();
        assert!(
            range == "unreadable" || numbers.len() == 2 && numbers.iter().all(|n| n.parse::<u32>().is_ok()),
            "{range:?}"
        );
    }
}
