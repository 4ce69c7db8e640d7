//! Endpoints: where to listen or connect, parsed once from the user's text.
//!
//! Every command and the library take an [`Endpoint`]. Its [`Display`](fmt::Display)
//! gives back text that parses to the same endpoint, so logs and errors can be
//! pasted back into a command line.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
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
}

/// How an endpoint carries messages, which decides how it is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// A byte stream with connections (TCP): messages are cut out by a framing.
    Stream,
    /// Datagrams without connections (UDP): every datagram is one message.
    Datagram,
}

impl Endpoint {
    /// The TCP endpoint for a socket address.
    pub fn tcp(addr: SocketAddr) -> Self {
        Endpoint::Tcp(HostPort::from(addr))
    }

    /// The UDP endpoint for a socket address.
    pub fn udp(addr: SocketAddr) -> Self {
        Endpoint::Udp(HostPort::from(addr))
    }

    /// Whether this endpoint is served as a stream or as datagrams.
    pub fn transport(&self) -> Transport {
        match self {
            Endpoint::Tcp(_) => Transport::Stream,
            Endpoint::Udp(_) => Transport::Datagram,
        }
    }

    /// True for datagram endpoints (UDP).
    pub fn is_datagram(&self) -> bool {
        self.transport() == Transport::Datagram
    }

    /// The host and port, for the endpoints that have them.
    pub fn host_port(&self) -> Option<&HostPort> {
        match self {
            Endpoint::Tcp(hp) | Endpoint::Udp(hp) => Some(hp),
        }
    }

    /// The scheme this endpoint is written with (`tcp`, `udp`).
    pub fn scheme(&self) -> &'static str {
        match self {
            Endpoint::Tcp(_) => "tcp",
            Endpoint::Udp(_) => "udp",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(hp) | Endpoint::Udp(hp) => write!(f, "{}://{hp}", self.scheme()),
        }
    }
}

/// The text every endpoint error repeats, so the user sees what is accepted.
const EXPECTED: &str = "expected tcp://HOST:PORT, udp://HOST:PORT or HOST:PORT \
                        (for example tcp://127.0.0.1:8000 or udp://[::1]:9000)";

/// Why a text is not an endpoint.
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
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => (scheme, rest),
            None => ("tcp", text),
        };
        match scheme.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Endpoint::Tcp(HostPort::parse(rest, text)?)),
            "udp" => Ok(Endpoint::Udp(HostPort::parse(rest, text)?)),
            _ => Err(EndpointError::UnknownScheme {
                text: text.to_owned(),
                scheme: scheme.to_owned(),
            }),
        }
    }
}

/// A host (an IP address or a name to resolve) and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    host: Host,
    port: u16,
}

/// The host part of a [`HostPort`].
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
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The socket address, when the host is a literal IP address.
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

/// Who is on the other end of a connection, or sent a datagram.
///
/// Displays as the seed prints a peer: `IP:PORT`, with IPv4-mapped IPv6
/// addresses shown as plain IPv4.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Peer {
    /// An IPv4 or IPv6 peer.
    Ip(SocketAddr),
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
            "tcp://localhost:80",
            "tcp://0.0.0.0:0",
            "tcp://[::]:65535",
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
