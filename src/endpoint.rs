//! Endpoints: where to listen or connect, parsed once from the user's text.
//!
//! Every command and the library take an [`Endpoint`]. Its [`Display`](fmt::Display)
//! gives back text that parses to the same endpoint, so logs and errors can be
//! pasted back into a command line.
//!
//! # Examples
//!
//! ```
//! use sockit::endpoint::{Endpoint, Transport, UnixAddr};
//!
//! for text in ["tcp://localhost:8000", "unix-dgram:@sockit", "seqpacket:/run/app.sock"] {
//!     let endpoint: Endpoint = text.parse()?;
//!     assert_eq!(endpoint.to_string(), text);
//! }
//! let endpoint: Endpoint = "unix:@sockit".parse()?;
//! assert_eq!(endpoint.transport(), Transport::Stream);
//! assert_eq!(endpoint.unix_addr(), Some(&UnixAddr::Abstract(b"sockit".to_vec())));
//! assert!("ftp://127.0.0.1:21".parse::<Endpoint>().is_err());
//! # Ok::<(), sockit::EndpointError>(())
//! ```

use std::ffi::OsStr;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Where to listen or connect: a socket kind and an address.
///
/// Parsed from text with [`str::parse`]:
///
/// | text | endpoint |
/// | --- | --- |
/// | `tcp://127.0.0.1:8000`, `tcp://[::1]:8000`, `tcp://localhost:8000` | TCP |
/// | `127.0.0.1:8000`, `localhost:8000`, `[::1]:8000` (no scheme) | TCP |
/// | `udp://127.0.0.1:9000`, `udp://[::1]:9000` | UDP |
/// | `tls://127.0.0.1:8443`, `tls://localhost:8443` | TLS over TCP |
/// | `unix:/run/app.sock`, `unix:@name` (Linux abstract namespace) | Unix stream |
/// | `unix-dgram:/run/app.sock`, `unix-dgram:@name` | Unix datagram |
/// | `seqpacket:/run/app.sock`, `seqpacket:@name` | Unix seqpacket |
///
/// # Examples
///
/// ```
/// use sockit::Endpoint;
///
/// let endpoint: Endpoint = "udp://127.0.0.1:9000".parse()?;
/// assert!(endpoint.is_datagram());
/// assert_eq!(endpoint.to_string(), "udp://127.0.0.1:9000");
///
/// // A bare HOST:PORT means TCP.
/// let endpoint: Endpoint = "[::1]:8000".parse()?;
/// assert_eq!(endpoint.to_string(), "tcp://[::1]:8000");
/// # Ok::<(), sockit::EndpointError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// A TCP stream socket, IPv4 or IPv6.
    Tcp(HostPort),
    /// A UDP datagram socket, IPv4 or IPv6.
    Udp(HostPort),
    /// TLS over a TCP stream socket, IPv4 or IPv6: once the handshake is
    /// done, the same byte stream as [`Endpoint::Tcp`].
    Tls(HostPort),
    /// A Unix stream socket (`AF_UNIX`, `SOCK_STREAM`).
    Unix(UnixAddr),
    /// A Unix datagram socket (`AF_UNIX`, `SOCK_DGRAM`).
    UnixDatagram(UnixAddr),
    /// A Unix sequenced-packet socket (`AF_UNIX`, `SOCK_SEQPACKET`).
    Seqpacket(UnixAddr),
}

/// How an endpoint carries messages, which decides how it is served.
///
/// # Examples
///
/// ```
/// use sockit::{Endpoint, Transport};
///
/// let transport = |text: &str| text.parse::<Endpoint>().map(|endpoint| endpoint.transport());
/// assert_eq!(transport("tls://127.0.0.1:8443")?, Transport::Stream);
/// assert_eq!(transport("unix-dgram:@d")?, Transport::Datagram);
/// assert_eq!(transport("seqpacket:@p")?, Transport::Seqpacket);
/// # Ok::<(), sockit::EndpointError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// A byte stream with connections (TCP, TLS, Unix stream): messages are cut
    /// out by a framing.
    Stream,
    /// Datagrams without connections (UDP, Unix datagram): every datagram is
    /// one message.
    Datagram,
    /// Packets on a connection (Unix seqpacket): every packet is one message.
    Seqpacket,
}

impl Endpoint {
    /// The TCP endpoint for a socket address.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use sockit::Endpoint;
    ///
    /// let addr: SocketAddr = "[::1]:8000".parse().unwrap();
    /// assert_eq!(Endpoint::tcp(addr).to_string(), "tcp://[::1]:8000");
    /// // An IPv4-mapped IPv6 address is shown as IPv4.
    /// let addr: SocketAddr = "[::ffff:127.0.0.1]:8000".parse().unwrap();
    /// assert_eq!(Endpoint::tcp(addr).to_string(), "tcp://127.0.0.1:8000");
    /// ```
    pub fn tcp(addr: SocketAddr) -> Self {
        Endpoint::Tcp(HostPort::from(addr))
    }

    /// The UDP endpoint for a socket address.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use sockit::Endpoint;
    ///
    /// let addr: SocketAddr = "127.0.0.1:9000".parse().unwrap();
    /// assert_eq!(Endpoint::udp(addr), "udp://127.0.0.1:9000".parse()?);
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn udp(addr: SocketAddr) -> Self {
        Endpoint::Udp(HostPort::from(addr))
    }

    /// Whether this endpoint is served as a stream, as datagrams or as packets.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::{Endpoint, Transport};
    ///
    /// assert_eq!("127.0.0.1:8000".parse::<Endpoint>()?.transport(), Transport::Stream);
    /// assert_eq!("udp://127.0.0.1:9000".parse::<Endpoint>()?.transport(), Transport::Datagram);
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn transport(&self) -> Transport {
        match self {
            Endpoint::Tcp(_) | Endpoint::Tls(_) | Endpoint::Unix(_) => Transport::Stream,
            Endpoint::Udp(_) | Endpoint::UnixDatagram(_) => Transport::Datagram,
            Endpoint::Seqpacket(_) => Transport::Seqpacket,
        }
    }

    /// True for datagram endpoints (UDP, Unix datagram).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::Endpoint;
    ///
    /// assert!("unix-dgram:/tmp/d.sock".parse::<Endpoint>()?.is_datagram());
    /// assert!(!"seqpacket:/tmp/p.sock".parse::<Endpoint>()?.is_datagram());
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn is_datagram(&self) -> bool {
        self.transport() == Transport::Datagram
    }

    /// The host and port, for the network endpoints (TCP, UDP, TLS).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::Endpoint;
    ///
    /// let endpoint: Endpoint = "tls://localhost:8443".parse()?;
    /// assert_eq!(endpoint.host_port().map(|hp| hp.port()), Some(8443));
    /// assert!("unix:/tmp/a.sock".parse::<Endpoint>()?.host_port().is_none());
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn host_port(&self) -> Option<&HostPort> {
        match self {
            Endpoint::Tcp(hp) | Endpoint::Udp(hp) | Endpoint::Tls(hp) => Some(hp),
            _ => None,
        }
    }

    /// The Unix socket address, for the Unix endpoints.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::path::Path;
    /// use sockit::Endpoint;
    ///
    /// let endpoint: Endpoint = "unix:/run/app.sock".parse()?;
    /// assert_eq!(endpoint.unix_addr().and_then(|addr| addr.path()), Some(Path::new("/run/app.sock")));
    /// assert!("tcp://127.0.0.1:1".parse::<Endpoint>()?.unix_addr().is_none());
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn unix_addr(&self) -> Option<&UnixAddr> {
        match self {
            Endpoint::Unix(addr) | Endpoint::UnixDatagram(addr) | Endpoint::Seqpacket(addr) => Some(addr),
            _ => None,
        }
    }

    /// The scheme this endpoint is written with (`tcp`, `udp`, `tls`,
    /// `unix`, `unix-dgram`, `seqpacket`).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::Endpoint;
    ///
    /// assert_eq!("127.0.0.1:8000".parse::<Endpoint>()?.scheme(), "tcp");
    /// assert_eq!("UNIX-DGRAM:@d".parse::<Endpoint>()?.scheme(), "unix-dgram");
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn scheme(&self) -> &'static str {
        match self {
            Endpoint::Tcp(_) => "tcp",
            Endpoint::Udp(_) => "udp",
            Endpoint::Tls(_) => "tls",
            Endpoint::Unix(_) => "unix",
            Endpoint::UnixDatagram(_) => "unix-dgram",
            Endpoint::Seqpacket(_) => "seqpacket",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(hp) | Endpoint::Udp(hp) | Endpoint::Tls(hp) => {
                write!(f, "{}://{hp}", self.scheme())
            }
            Endpoint::Unix(addr) | Endpoint::UnixDatagram(addr) | Endpoint::Seqpacket(addr) => {
                write!(f, "{}:{addr}", self.scheme())
            }
        }
    }
}

/// The text every endpoint error repeats, so the user sees what is accepted.
const EXPECTED: &str = "expected tcp://HOST:PORT, udp://HOST:PORT, tls://HOST:PORT, HOST:PORT, unix:PATH, \
                        unix-dgram:PATH or seqpacket:PATH (PATH may be @NAME, an abstract name)";

/// Why a text is not an endpoint. Its message is one line: what is wrong,
/// and every form an endpoint may take.
///
/// # Examples
///
/// ```
/// use sockit::{Endpoint, EndpointError};
///
/// let err = "tcp://127.0.0.1".parse::<Endpoint>().unwrap_err();
/// assert!(matches!(err, EndpointError::BadPort { .. }));
/// let said = err.to_string();
/// assert!(said.starts_with("bad port in endpoint \"tcp://127.0.0.1\": missing ':PORT'; expected"));
/// assert!(matches!("ftp://h:21".parse::<Endpoint>(), Err(EndpointError::UnknownScheme { .. })));
/// assert!(matches!("tcp://::1:80".parse::<Endpoint>(), Err(EndpointError::BadHost { .. })));
/// assert!(matches!("unix:".parse::<Endpoint>(), Err(EndpointError::BadPath { .. })));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// The scheme before `://` is not one sockit knows.
    #[error("unknown scheme {scheme:?} in endpoint {text:?}: {EXPECTED}")]
    UnknownScheme {
        /// The endpoint as the user wrote it.
        text: String,
        /// The scheme found.
        scheme: String,
    },
    /// The port is missing, not a number, or out of range.
    #[error("bad port in endpoint {text:?}: {reason}; {EXPECTED}")]
    BadPort {
        /// The endpoint as the user wrote it.
        text: String,
        /// What is wrong with the port.
        reason: String,
    },
    /// The host part is empty or malformed.
    #[error("bad host in endpoint {text:?}: {reason}; {EXPECTED}")]
    BadHost {
        /// The endpoint as the user wrote it.
        text: String,
        /// What is wrong with the host.
        reason: String,
    },
    /// The path of a Unix endpoint is empty or too long.
    #[error("bad path in endpoint {text:?}: {reason}; {EXPECTED}")]
    BadPath {
        /// The endpoint as the user wrote it.
        text: String,
        /// What is wrong with the path.
        reason: String,
    },
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        for (scheme, make) in [
            ("unix-dgram:", Endpoint::UnixDatagram as fn(UnixAddr) -> Endpoint),
            ("unix:", Endpoint::Unix),
            ("seqpacket:", Endpoint::Seqpacket),
        ] {
            if text.len() >= scheme.len() && text[..scheme.len()].eq_ignore_ascii_case(scheme) {
                return Ok(make(UnixAddr::parse(&text[scheme.len()..], text)?));
            }
        }
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None => ("tcp", text),
        };
        match scheme.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Endpoint::Tcp(HostPort::parse(rest, text)?)),
            "udp" => Ok(Endpoint::Udp(HostPort::parse(rest, text)?)),
            "tls" => Ok(Endpoint::Tls(HostPort::parse(rest, text)?)),
            _ => Err(EndpointError::UnknownScheme {
                text: text.to_owned(),
                scheme: scheme.to_owned(),
            }),
        }
    }
}

/// A host (an IP address or a name to resolve) and a port.
///
/// # Examples
///
/// ```
/// use sockit::Endpoint;
/// use sockit::endpoint::{Host, HostPort};
///
/// let endpoint: Endpoint = "udp://[::1]:9000".parse()?;
/// let host_port: &HostPort = endpoint.host_port().unwrap();
/// assert_eq!(host_port.to_string(), "[::1]:9000");
/// assert_eq!(host_port.host(), &Host::Ip("::1".parse().unwrap()));
/// assert_eq!(host_port.port(), 9000);
/// # Ok::<(), sockit::EndpointError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    host: Host,
    port: u16,
}

/// The host part of a [`HostPort`].
///
/// # Examples
///
/// ```
/// use sockit::Endpoint;
/// use sockit::endpoint::Host;
///
/// let host = |text: &str| text.parse::<Endpoint>().map(|e| e.host_port().unwrap().host().clone());
/// assert_eq!(host("tcp://localhost:80")?, Host::Name("localhost".to_owned()));
/// assert_eq!(host("tcp://127.0.0.1:80")?, Host::Ip([127, 0, 0, 1].into()));
/// # Ok::<(), sockit::EndpointError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Host {
    /// A literal IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A name, resolved when the endpoint is bound or connected.
    Name(String),
}

impl HostPort {
    /// The port.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::endpoint::HostPort;
    ///
    /// let host_port = HostPort::from("127.0.0.1:8000".parse::<std::net::SocketAddr>().unwrap());
    /// assert_eq!(host_port.port(), 8000);
    /// ```
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::Endpoint;
    /// use sockit::endpoint::Host;
    ///
    /// let endpoint: Endpoint = "tcp://example.org:80".parse()?;
    /// assert_eq!(endpoint.host_port().unwrap().host(), &Host::Name("example.org".to_owned()));
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The socket address, when the host is a literal IP address.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::Endpoint;
    ///
    /// let literal: Endpoint = "udp://127.0.0.1:9000".parse()?;
    /// assert_eq!(literal.host_port().unwrap().socket_addr(), Some(([127, 0, 0, 1], 9000).into()));
    /// let named: Endpoint = "udp://localhost:9000".parse()?;
    /// assert_eq!(named.host_port().unwrap().socket_addr(), None);
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self.host {
            Host::Ip(ip) => Some(SocketAddr::new(ip, self.port)),
            Host::Name(_) => None,
        }
    }

    /// Resolves the host to socket addresses (a literal address resolves to itself).
    ///
    /// # Errors
    ///
    /// Fails when the name cannot be resolved or resolves to nothing.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future abandons the lookup.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sockit::Endpoint;
    ///
    /// let endpoint: Endpoint = "tcp://[::1]:8000".parse()?;
    /// let addrs = endpoint.host_port().unwrap().resolve().await?;
    /// assert_eq!(addrs, ["[::1]:8000".parse::<std::net::SocketAddr>()?]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        if let Some(addr) = self.socket_addr() {
            return Ok(vec![addr]);
        }
        let Host::Name(name) = &self.host else {
            unreachable!("socket_addr covers literal addresses")
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), self.port))
            .await?
            .collect();
        if addrs.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{name} resolves to no address"),
            ));
        }
        Ok(addrs)
    }

    fn parse(rest: &str, text: &str) -> Result<Self, EndpointError> {
        let bad_host = |reason: &str| EndpointError::BadHost {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (inside, after) = bracketed
                .split_once(']')
                .ok_or_else(|| bad_host("missing ']' after the IPv6 address"))?;
            let ip: std::net::Ipv6Addr = inside
                .parse()
                .map_err(|_| bad_host(&format!("{inside:?} is not an IPv6 address")))?;
            let port = after.strip_prefix(':').ok_or_else(|| EndpointError::BadPort {
                text: text.to_owned(),
                reason: "missing ':PORT' after ']'".to_owned(),
            })?;
            (Host::Ip(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = rest.rsplit_once(':').ok_or_else(|| EndpointError::BadPort {
                text: text.to_owned(),
                reason: "missing ':PORT'".to_owned(),
            })?;
            if host.is_empty() {
                return Err(bad_host("the host is empty"));
            }
            if host.contains(':') {
                return Err(bad_host("write an IPv6 address in brackets, as [::1]:PORT"));
            }
            let host = match host.parse::<IpAddr>() {
                Ok(ip) => Host::Ip(ip),
                Err(_) if is_host_name(host) => Host::Name(host.to_owned()),
                Err(_) => return Err(bad_host(&format!("{host:?} is not an address or a host name"))),
            };
            (host, port)
        };
        let port = port.parse::<u16>().map_err(|_| EndpointError::BadPort {
            text: text.to_owned(),
            reason: if port.is_empty() {
                "the port is empty".to_owned()
            } else {
                format!("{port:?} is not a number from 0 to 65535")
            },
        })?;
        Ok(HostPort { host, port })
    }
}

/// A DNS name as RFC 1123 allows it: letters, digits, `-` and `.`.
fn is_host_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl From<SocketAddr> for HostPort {
    fn from(addr: SocketAddr) -> Self {
        HostPort {
            host: Host::Ip(addr.ip().to_canonical()),
            port: addr.port(),
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}:{}", self.port),
            Host::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

/// The address of a Unix socket: a path in the file system, or a name in
/// Linux's abstract namespace (written `@name`), which needs no file.
///
/// # Examples
///
/// ```
/// use sockit::{Endpoint, UnixAddr};
///
/// let endpoint: Endpoint = "unix-dgram:@sockit".parse()?;
/// let addr = endpoint.unix_addr().unwrap();
/// assert_eq!(addr, &UnixAddr::Abstract(b"sockit".to_vec()));
/// assert_eq!(addr.to_string(), "@sockit");
/// // The URL form of a path is taken too.
/// let endpoint: Endpoint = "unix:///run/app.sock".parse()?;
/// assert_eq!(endpoint.unix_addr(), Some(&UnixAddr::Path("/run/app.sock".into())));
/// # Ok::<(), sockit::EndpointError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UnixAddr {
    /// A socket file at this path.
    Path(PathBuf),
    /// A name in the abstract namespace (without the leading `@`).
    Abstract(Vec<u8>),
}

impl UnixAddr {
    /// The longest path or abstract name the kernel takes (`sun_path` less
    /// its terminating or leading zero byte).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::{Endpoint, UnixAddr};
    ///
    /// let longest = format!("unix:@{}", "n".repeat(UnixAddr::MAX_LEN));
    /// assert!(longest.parse::<Endpoint>().is_ok());
    /// let too_long = format!("unix:@{}", "n".repeat(UnixAddr::MAX_LEN + 1));
    /// assert!(too_long.parse::<Endpoint>().is_err());
    /// ```
    pub const MAX_LEN: usize = 107;

    fn parse(rest: &str, text: &str) -> Result<Self, EndpointError> {
        let bad_path = |reason: &str| EndpointError::BadPath {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        // `unix:///run/app.sock` is accepted as the URL form of `unix:/run/app.sock`.
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let addr = match rest.strip_prefix('@') {
            Some(name) => UnixAddr::Abstract(name.as_bytes().to_vec()),
            None => UnixAddr::Path(PathBuf::from(rest)),
        };
        match &addr {
            UnixAddr::Path(path) if path.as_os_str().is_empty() => Err(bad_path("the path is empty")),
            UnixAddr::Abstract(name) if name.is_empty() => {
                Err(bad_path("the abstract name after '@' is empty"))
            }
            _ if addr.as_bytes().len() > Self::MAX_LEN => Err(bad_path(&format!(
                "longer than the {} bytes a Unix socket address holds",
                Self::MAX_LEN
            ))),
            _ => Ok(addr),
        }
    }

    /// The path, for a socket file.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::path::Path;
    /// use sockit::UnixAddr;
    ///
    /// assert_eq!(UnixAddr::Path("/run/app.sock".into()).path(), Some(Path::new("/run/app.sock")));
    /// assert_eq!(UnixAddr::Abstract(b"name".to_vec()).path(), None);
    /// ```
    pub fn path(&self) -> Option<&Path> {
        match self {
            UnixAddr::Path(path) => Some(path),
            UnixAddr::Abstract(_) => None,
        }
    }

    /// The path or name as bytes, without any `@`.
    fn as_bytes(&self) -> &[u8] {
        match self {
            UnixAddr::Path(path) => path.as_os_str().as_bytes(),
            UnixAddr::Abstract(name) => name,
        }
    }

    /// The address as the kernel takes it: abstract names start with a zero byte.
    ///
    /// # Errors
    ///
    /// When the path is longer than a Unix socket address holds, or
    /// contains a zero byte.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::UnixAddr;
    ///
    /// let sockaddr = UnixAddr::Abstract(b"sockit".to_vec()).to_sockaddr()?;
    /// assert_eq!(sockaddr.as_abstract_namespace(), Some(&b"sockit"[..]));
    /// let sockaddr = UnixAddr::Path("/run/app.sock".into()).to_sockaddr()?;
    /// assert_eq!(sockaddr.as_pathname(), Some(std::path::Path::new("/run/app.sock")));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn to_sockaddr(&self) -> std::io::Result<socket2::SockAddr> {
        match self {
            UnixAddr::Path(path) => socket2::SockAddr::unix(path),
            UnixAddr::Abstract(name) => {
                let mut bytes = Vec::with_capacity(name.len() + 1);
                bytes.push(0);
                bytes.extend_from_slice(name);
                socket2::SockAddr::unix(OsStr::from_bytes(&bytes))
            }
        }
    }

    /// The address of a kernel socket address, if it is a named Unix one.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::UnixAddr;
    ///
    /// let addr = UnixAddr::Path("/tmp/x.sock".into());
    /// assert_eq!(UnixAddr::from_sockaddr(&addr.to_sockaddr()?), Some(addr));
    /// let ip = socket2::SockAddr::from("127.0.0.1:1".parse::<std::net::SocketAddr>().unwrap());
    /// assert_eq!(UnixAddr::from_sockaddr(&ip), None);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_sockaddr(addr: &socket2::SockAddr) -> Option<Self> {
        if let Some(path) = addr.as_pathname() {
            return Some(UnixAddr::Path(path.to_owned()));
        }
        addr.as_abstract_namespace()
            .map(|name| UnixAddr::Abstract(name.to_vec()))
    }
}

impl fmt::Display for UnixAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnixAddr::Path(path) => write!(f, "{}", path.display()),
            UnixAddr::Abstract(name) => write!(f, "@{}", String::from_utf8_lossy(name)),
        }
    }
}

/// Who is on the other end of a connection, or sent a datagram.
///
/// Displays as the seed prints a peer: `IP:PORT`, with IPv4-mapped IPv6
/// addresses shown as plain IPv4. A Unix peer shows its address (most
/// stream peers have none: `unnamed`) and, where the kernel reports them,
/// its credentials: `unix:unnamed (pid 42, uid 1000, gid 1000)`.
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
/// use sockit::{Credentials, Peer, UnixAddr};
///
/// let peer = Peer::from("[::ffff:10.0.0.7]:5555".parse::<SocketAddr>().unwrap());
/// assert_eq!(peer.to_string(), "10.0.0.7:5555");
/// let peer = Peer::Unix { addr: Some(UnixAddr::Path("/tmp/c.sock".into())), cred: None };
/// assert_eq!(peer.to_string(), "unix:/tmp/c.sock");
/// let cred = Some(Credentials { pid: None, uid: 0, gid: 0 });
/// assert_eq!(Peer::Unix { addr: None, cred }.to_string(), "unix:unnamed (uid 0, gid 0)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Peer {
    /// An IPv4 or IPv6 peer.
    Ip(SocketAddr),
    /// A Unix socket peer.
    Unix {
        /// Its address; `None` for an unnamed socket.
        addr: Option<UnixAddr>,
        /// The credentials of the process that connected, for connections.
        cred: Option<Credentials>,
    },
}

/// A Unix peer's process credentials, as the kernel reports them (`SO_PEERCRED`).
///
/// # Examples
///
/// ```
/// use sockit::{Credentials, Peer};
///
/// let cred = Credentials { pid: Some(42), uid: 1000, gid: 100 };
/// let peer = Peer::Unix { addr: None, cred: Some(cred) };
/// assert_eq!(peer.to_string(), "unix:unnamed (pid 42, uid 1000, gid 100)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Credentials {
    /// The process id, when known.
    pub pid: Option<i32>,
    /// The user id.
    pub uid: u32,
    /// The group id.
    pub gid: u32,
}

impl From<SocketAddr> for Peer {
    fn from(addr: SocketAddr) -> Self {
        Peer::Ip(SocketAddr::new(addr.ip().to_canonical(), addr.port()))
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Ip(addr) => write!(f, "{addr}"),
            Peer::Unix { addr, cred } => {
                match addr {
                    Some(addr) => write!(f, "unix:{addr}")?,
                    None => f.write_str("unix:unnamed")?,
                }
                match cred {
                    Some(Credentials {
                        pid: Some(pid),
                        uid,
                        gid,
                    }) => {
                        write!(f, " (pid {pid}, uid {uid}, gid {gid})")
                    }
                    Some(Credentials { pid: None, uid, gid }) => write!(f, " (uid {uid}, gid {gid})"),
                    None => Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Endpoint {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn parses_and_displays_the_same_text() {
        for text in [
            "tcp://127.0.0.1:8000",
            "tcp://[::1]:8000",
            "udp://127.0.0.1:9000",
            "udp://[::1]:9000",
            "tls://127.0.0.1:8443",
            "tls://[::1]:8443",
            "tls://localhost:443",
            "tcp://localhost:80",
            "tcp://0.0.0.0:0",
            "tcp://[::]:65535",
            "unix:/tmp/sockit.sock",
            "unix:@sockit",
            "unix:relative.sock",
            "unix-dgram:/tmp/d.sock",
            "unix-dgram:@d",
            "seqpacket:/tmp/p.sock",
            "seqpacket:@p",
        ] {
            assert_eq!(parse(text).to_string(), text);
        }
    }

    #[test]
    fn bare_host_port_is_tcp() {
        assert_eq!(parse("127.0.0.1:8000"), parse("tcp://127.0.0.1:8000"));
        assert_eq!(parse("[::1]:8000").to_string(), "tcp://[::1]:8000");
        assert_eq!(parse("localhost:8000").to_string(), "tcp://localhost:8000");
        assert_eq!(parse("UDP://127.0.0.1:1").to_string(), "udp://127.0.0.1:1");
    }

    #[test]
    fn transport_follows_the_scheme() {
        assert_eq!(parse("tcp://127.0.0.1:1").transport(), Transport::Stream);
        assert_eq!(parse("udp://127.0.0.1:1").transport(), Transport::Datagram);
        assert_eq!(parse("tls://127.0.0.1:1").transport(), Transport::Stream);
        assert_eq!(parse("TLS://127.0.0.1:1").scheme(), "tls");
        assert_eq!(parse("unix:/x").transport(), Transport::Stream);
        assert_eq!(parse("unix-dgram:/x").transport(), Transport::Datagram);
        assert_eq!(parse("seqpacket:/x").transport(), Transport::Seqpacket);
    }

    #[test]
    fn unix_addresses_parse_to_paths_and_abstract_names() {
        assert_eq!(
            parse("unix:/run/a.sock"),
            Endpoint::Unix(UnixAddr::Path("/run/a.sock".into()))
        );
        assert_eq!(
            parse("unix:///run/a.sock"),
            Endpoint::Unix(UnixAddr::Path("/run/a.sock".into()))
        );
        assert_eq!(
            parse("seqpacket:@x y"),
            Endpoint::Seqpacket(UnixAddr::Abstract(b"x y".to_vec()))
        );
        assert_eq!(parse("UNIX-DGRAM:/d").to_string(), "unix-dgram:/d");
        assert!(parse("unix:/a").host_port().is_none());
        assert_eq!(
            parse("unix:@n").unix_addr(),
            Some(&UnixAddr::Abstract(b"n".to_vec()))
        );
    }

    #[test]
    fn unix_sockaddrs_round_trip() {
        for addr in [
            UnixAddr::Path("/tmp/x.sock".into()),
            UnixAddr::Abstract(b"name".to_vec()),
        ] {
            let sockaddr = addr.to_sockaddr().unwrap();
            assert_eq!(UnixAddr::from_sockaddr(&sockaddr), Some(addr));
        }
        let abstract_addr = UnixAddr::Abstract(b"ab".to_vec()).to_sockaddr().unwrap();
        assert_eq!(abstract_addr.as_abstract_namespace(), Some(&b"ab"[..]));
    }

    #[test]
    fn unix_peers_show_address_and_credentials() {
        let cred = Some(Credentials {
            pid: Some(42),
            uid: 1000,
            gid: 100,
        });
        assert_eq!(
            Peer::Unix { addr: None, cred }.to_string(),
            "unix:unnamed (pid 42, uid 1000, gid 100)"
        );
        let addr = Some(UnixAddr::Path("/tmp/c.sock".into()));
        assert_eq!(Peer::Unix { addr, cred: None }.to_string(), "unix:/tmp/c.sock");
    }

    #[test]
    fn bad_endpoints_say_what_is_wrong_and_what_is_expected() {
        let cases = [
            ("ftp://127.0.0.1:21", "unknown scheme \"ftp\""),
            ("tcp://127.0.0.1", "missing ':PORT'"),
            ("127.0.0.1:99999", "\"99999\" is not a number from 0 to 65535"),
            ("127.0.0.1:", "the port is empty"),
            ("tcp://:80", "the host is empty"),
            ("tcp://::1:80", "write an IPv6 address in brackets"),
            ("tcp://[::1:80", "missing ']'"),
            ("tcp://[::1]80", "missing ':PORT' after ']'"),
            ("tcp://[nope]:80", "\"nope\" is not an IPv6 address"),
            (
                "tcp://bad_host!:80",
                "\"bad_host!\" is not an address or a host name",
            ),
            ("", "missing ':PORT'"),
            ("unix:", "the path is empty"),
            ("seqpacket:@", "the abstract name after '@' is empty"),
            (
                "unix-dgram:/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "longer than the 107 bytes",
            ),
        ];
        for (text, reason) in cases {
            let err = text.parse::<Endpoint>().unwrap_err().to_string();
            assert!(err.contains(reason), "{text:?} gave {err:?}, want {reason:?}");
            assert!(err.contains(EXPECTED), "{text:?} gave {err:?}");
            assert!(!err.contains('\n'), "{err:?} is not one line");
        }
    }

    #[test]
    fn mapped_ipv4_peers_show_as_ipv4() {
        let addr: SocketAddr = "[::ffff:127.0.0.1]:5".parse().unwrap();
        assert_eq!(Endpoint::tcp(addr).to_string(), "tcp://127.0.0.1:5");
        assert_eq!(Peer::from(addr).to_string(), "127.0.0.1:5");
        assert_eq!(
            Peer::from("[::1]:6".parse::<SocketAddr>().unwrap()).to_string(),
            "[::1]:6"
        );
    }
}
