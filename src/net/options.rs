//! Socket options: the seed's "built-in methods" (`setsockopt`), set for the
//! socket kinds where each one applies, and read back with `getsockopt`.
//!
//! # Examples
//!
//! What the kernel holds for a UDP listener's options, read back:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sockit::Error> {
//! use sockit::net::SocketOptions;
//! use sockit::{Echo, Server};
//!
//! let options = SocketOptions::default().ttl(7).broadcast(true);
//! let listener = Server::new(Echo)
//!     .options(options.clone())
//!     .bind(&"udp://127.0.0.1:0".parse()?)
//!     .await?;
//! let held = options.read_back(&socket2::SockRef::from(&listener));
//! assert_eq!(held, "SO_REUSEADDR=1 IP_TTL=7 SO_BROADCAST=1");
//! # Ok(())
//! # }
//! ```

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use socket2::{Socket, TcpKeepalive};

/// Options for the sockets sockit opens. Each is left as the system (or
/// sockit) has it unless set; [`Default`] sets nothing.
///
/// Which options apply depends on the socket: [`SocketOptions::not_applying_to`]
/// names the ones set that a given endpoint cannot use.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sockit::net::SocketOptions;
///
/// let options = SocketOptions::default()
///     .recv_buffer(1 << 20)
///     .keepalive(Duration::from_secs(30))
///     .reuse_port(true);
/// assert_eq!(options.not_applying_to(&"udp://127.0.0.1:9000".parse()?), ["keepalive"]);
/// # Ok::<(), sockit::EndpointError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketOptions {
    /// `SO_REUSEADDR`; `None`: on for listeners (a restart does not wait out
    /// `TIME_WAIT`), off for clients.
    pub reuse_address: Option<bool>,
    /// `SO_REUSEPORT`: several sockets (processes) share one port.
    pub reuse_port: bool,
    /// `TCP_NODELAY`; `None`: on (sockit's messages are small and wait for replies).
    pub nodelay: Option<bool>,
    /// `SO_KEEPALIVE` with `TCP_KEEPIDLE` set to this idle time.
    pub keepalive: Option<Duration>,
    /// `SO_RCVBUF` in bytes (Linux doubles it for bookkeeping).
    pub recv_buffer: Option<usize>,
    /// `SO_SNDBUF` in bytes (Linux doubles it for bookkeeping).
    pub send_buffer: Option<usize>,
    /// `IP_TTL` (IPv4) or `IPV6_UNICAST_HOPS` (IPv6).
    pub ttl: Option<u32>,
    /// `IPV6_V6ONLY`: an IPv6 listener on `[::]` takes only IPv6 peers; by
    /// default it takes IPv4 peers too (dual stack).
    pub ipv6_only: bool,
    /// `SO_BROADCAST`: a UDP socket may send to broadcast addresses.
    pub broadcast: bool,
    /// Multicast groups a UDP listener joins (`IP_ADD_MEMBERSHIP`,
    /// `IPV6_JOIN_GROUP`), on the default interface.
    pub multicast: Vec<IpAddr>,
    /// The local address a client binds before it connects (its source address).
    pub bind: Option<SocketAddr>,
}

/// Which socket an option is applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Listener,
    Client,
}

impl SocketOptions {
    /// Sets `SO_REUSEADDR`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use sockit::net::SocketOptions;
    /// use sockit::{Echo, Server};
    ///
    /// let options = SocketOptions::default().reuse_address(false);
    /// let listener = Server::new(Echo).options(options.clone()).bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// assert_eq!(options.read_back(&socket2::SockRef::from(&listener)), "SO_REUSEADDR=0");
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn reuse_address(mut self, on: bool) -> Self {
        self.reuse_address = Some(on);
        self
    }

    /// Sets `SO_REUSEPORT`.
    ///
    /// # Examples
    ///
    /// Two listeners share one port:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use sockit::net::SocketOptions;
    /// use sockit::{Echo, Server};
    ///
    /// let server = Server::new(Echo).options(SocketOptions::default().reuse_port(true));
    /// let first = server.bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// let second = server.bind(first.local_endpoint()).await?;
    /// assert_eq!(first.local_endpoint(), second.local_endpoint());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// Sets `TCP_NODELAY`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use sockit::net::SocketOptions;
    /// use sockit::{Endpoint, Framing, StreamClient};
    ///
    /// let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let endpoint = Endpoint::tcp(server.local_addr()?);
    /// let options = SocketOptions::default().nodelay(false);
    /// let client = StreamClient::connect_with(
    ///     &endpoint,
    ///     Framing::Raw,
    ///     Duration::from_secs(5),
    ///     &options,
    /// ).await?;
    /// assert_eq!(options.read_back(&socket2::SockRef::from(&client)), "SO_REUSEADDR=0 TCP_NODELAY=0");
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = Some(on);
        self
    }

    /// Turns TCP keepalive on, probing after `idle` without traffic.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use sockit::net::SocketOptions;
    /// use sockit::{Endpoint, Framing, StreamClient};
    ///
    /// let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let endpoint = Endpoint::tcp(server.local_addr()?);
    /// let options = SocketOptions::default().keepalive(Duration::from_secs(30));
    /// let client = StreamClient::connect_with(
    ///     &endpoint,
    ///     Framing::Raw,
    ///     Duration::from_secs(5),
    ///     &options,
    /// ).await?;
    /// assert_eq!(
    ///     options.read_back(&socket2::SockRef::from(&client)),
    ///     "SO_REUSEADDR=0 TCP_NODELAY=1 SO_KEEPALIVE=1 TCP_KEEPIDLE=30",
    /// );
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn keepalive(mut self, idle: Duration) -> Self {
        self.keepalive = Some(idle);
        self
    }

    /// Sets `SO_RCVBUF`.
    ///
    /// # Examples
    ///
    /// Linux doubles the size asked for, for its bookkeeping:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use sockit::net::SocketOptions;
    /// use sockit::{Echo, Server};
    ///
    /// let endpoint = format!("unix-dgram:@sockit-doc-rcvbuf-{}", std::process::id()).parse()?;
    /// let options = SocketOptions::default().recv_buffer(64 * 1024).send_buffer(32 * 1024);
    /// let listener = Server::new(Echo).options(options.clone()).bind(&endpoint).await?;
    /// assert_eq!(options.read_back(&socket2::SockRef::from(&listener)), "SO_RCVBUF=131072 SO_SNDBUF=65536");
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn recv_buffer(mut self, bytes: usize) -> Self {
        self.recv_buffer = Some(bytes);
        self
    }

    /// Sets `SO_SNDBUF`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::net::SocketOptions;
    ///
    /// assert_eq!(SocketOptions::default().send_buffer(1 << 20).send_buffer, Some(1 << 20));
    /// ```
    #[must_use]
    pub fn send_buffer(mut self, bytes: usize) -> Self {
        self.send_buffer = Some(bytes);
        self
    }

    /// Sets the IP time-to-live (IPv6: unicast hops).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use sockit::net::SocketOptions;
    /// use sockit::{Echo, Server};
    ///
    /// let options = SocketOptions::default().ttl(3);
    /// let listener = Server::new(Echo).options(options.clone()).bind(&"udp://[::1]:0".parse()?).await?;
    /// // The kernel sets IPV6_V6ONLY itself on a socket bound to one IPv6 address.
    /// assert_eq!(
    ///     options.read_back(&socket2::SockRef::from(&listener)),
    ///     "SO_REUSEADDR=1 IPV6_UNICAST_HOPS=3 IPV6_V6ONLY=1",
    /// );
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn ttl(mut self, ttl: u32) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets `IPV6_V6ONLY` on IPv6 listeners.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::net::SocketOptions;
    ///
    /// let options = SocketOptions::default().ipv6_only(true);
    /// assert!(options.ipv6_only);
    /// assert_eq!(options.not_applying_to(&"unix:@app".parse()?), ["ipv6-only"]);
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    #[must_use]
    pub fn ipv6_only(mut self, on: bool) -> Self {
        self.ipv6_only = on;
        self
    }

    /// Sets `SO_BROADCAST` on UDP sockets.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::net::SocketOptions;
    ///
    /// let options = SocketOptions::default().broadcast(true);
    /// assert!(options.not_applying_to(&"udp://0.0.0.0:9000".parse()?).is_empty());
    /// assert_eq!(options.not_applying_to(&"tcp://0.0.0.0:9000".parse()?), ["broadcast"]);
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    #[must_use]
    pub fn broadcast(mut self, on: bool) -> Self {
        self.broadcast = on;
        self
    }

    /// Joins a multicast group on UDP listeners.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::net::SocketOptions;
    ///
    /// let options = SocketOptions::default()
    ///     .join_multicast("239.255.0.1".parse()?)
    ///     .join_multicast("ff02::1:3".parse()?);
    /// assert_eq!(options.multicast.len(), 2);
    /// assert_eq!(options.not_applying_to(&"unix-dgram:@group".parse()?), ["multicast"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn join_multicast(mut self, group: IpAddr) -> Self {
        self.multicast.push(group);
        self
    }

    /// Binds clients to a source address before they connect.
    ///
    /// # Examples
    ///
    /// A client that connects from 127.0.0.2:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use sockit::net::SocketOptions;
    /// use sockit::{Endpoint, Framing, StreamClient};
    ///
    /// let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let endpoint = Endpoint::tcp(server.local_addr()?);
    /// let options = SocketOptions::default().bind("127.0.0.2:0".parse()?);
    /// let _client = StreamClient::connect_with(
    ///     &endpoint,
    ///     Framing::Raw,
    ///     Duration::from_secs(5),
    ///     &options,
    /// ).await?;
    /// let (_, peer) = server.accept().await?;
    /// assert_eq!(peer.ip().to_string(), "127.0.0.2");
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn bind(mut self, local: SocketAddr) -> Self {
        self.bind = Some(local);
        self
    }

    /// The names of the options set here that `endpoint`'s kind of socket
    /// cannot use (as `sockit`'s flags name them: `nodelay`, `rcvbuf`, …), in
    /// the order they are declared.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::net::SocketOptions;
    ///
    /// let options = SocketOptions::default().nodelay(true).ttl(64).recv_buffer(1 << 20);
    /// assert!(options.not_applying_to(&"tcp://[::1]:8000".parse()?).is_empty());
    /// assert_eq!(options.not_applying_to(&"unix:/run/app.sock".parse()?), ["nodelay", "ttl"]);
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn not_applying_to(&self, endpoint: &crate::Endpoint) -> Vec<&'static str> {
        use crate::Endpoint::{Seqpacket, Tcp, Tls, Udp, Unix, UnixDatagram};
        let ip = matches!(endpoint, Tcp(_) | Tls(_) | Udp(_));
        let tcp = matches!(endpoint, Tcp(_) | Tls(_));
        let udp = matches!(endpoint, Udp(_));
        let unix = matches!(endpoint, Unix(_) | UnixDatagram(_) | Seqpacket(_));
        [
            ("reuseaddr", self.reuse_address.is_some(), ip),
            ("reuseport", self.reuse_port, ip),
            ("nodelay", self.nodelay.is_some(), tcp),
            ("keepalive", self.keepalive.is_some(), tcp),
            ("rcvbuf", self.recv_buffer.is_some(), ip || unix),
            ("sndbuf", self.send_buffer.is_some(), ip || unix),
            ("ttl", self.ttl.is_some(), ip),
            ("ipv6-only", self.ipv6_only, ip),
            ("broadcast", self.broadcast, udp),
            ("multicast", !self.multicast.is_empty(), udp),
            ("bind", self.bind.is_some(), ip),
        ]
        .into_iter()
        .filter(|&(_, set, applies)| set && !applies)
        .map(|(name, _, _)| name)
        .collect()
    }

    /// Applies the options that take effect before `bind` or `connect` to an
    /// IP socket (TCP or UDP) for `addr`, its local or remote address.
    pub(crate) fn apply_ip(&self, socket: &Socket, addr: SocketAddr, role: Role) -> io::Result<()> {
        let reuse_address = self.reuse_address.unwrap_or(role == Role::Listener);
        if reuse_address {
            socket.set_reuse_address(true)?;
        }
        if self.reuse_port {
            socket.set_reuse_port(true)?;
        }
        self.apply_buffers(socket)?;
        if let Some(ttl) = self.ttl {
            match addr {
                SocketAddr::V4(_) => socket.set_ttl_v4(ttl)?,
                SocketAddr::V6(_) => socket.set_unicast_hops_v6(ttl)?,
            }
        }
        if addr.is_ipv6() && role == Role::Listener {
            socket.set_only_v6(self.ipv6_only)?;
        }
        Ok(())
    }

    /// Applies `SO_RCVBUF` and `SO_SNDBUF`, for every kind of socket.
    pub(crate) fn apply_buffers(&self, socket: &Socket) -> io::Result<()> {
        if let Some(bytes) = self.recv_buffer {
            socket.set_recv_buffer_size(bytes)?;
        }
        if let Some(bytes) = self.send_buffer {
            socket.set_send_buffer_size(bytes)?;
        }
        Ok(())
    }

    /// Applies the TCP options of a connection (an accepted or a connected socket).
    pub(crate) fn apply_tcp(&self, socket: &Socket) -> io::Result<()> {
        socket.set_tcp_nodelay(self.nodelay.unwrap_or(true))?;
        if let Some(idle) = self.keepalive {
            socket.set_tcp_keepalive(&TcpKeepalive::new().with_time(idle))?;
        }
        Ok(())
    }

    /// Applies the UDP options of a datagram socket bound at `local`.
    pub(crate) fn apply_udp(&self, socket: &Socket, local: SocketAddr) -> io::Result<()> {
        if self.broadcast {
            socket.set_broadcast(true)?;
        }
        for group in &self.multicast {
            match (group, local) {
                (IpAddr::V4(group), SocketAddr::V4(_)) => {
                    socket.join_multicast_v4(group, &Ipv4Addr::UNSPECIFIED)?;
                }
                (IpAddr::V6(group), SocketAddr::V6(_)) => socket.join_multicast_v6(group, 0)?,
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("multicast group {group} is not of the listener's address family"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Reads back with `getsockopt` the options set here that apply to
    /// `socket` (and `SO_REUSEADDR` and `TCP_NODELAY`, which sockit sets by
    /// default), as `NAME=value` words: what the kernel actually holds, for
    /// the logs. A listening TCP socket shows no connection options
    /// (`TCP_NODELAY`, keepalive): those are set on each connection.
    ///
    /// # Examples
    ///
    /// A listening TCP socket shows no connection options:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::time::Duration;
    /// use sockit::net::SocketOptions;
    /// use sockit::{Echo, Server};
    ///
    /// let options = SocketOptions::default().nodelay(false).keepalive(Duration::from_secs(9));
    /// let listener = Server::new(Echo).options(options.clone()).bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// assert_eq!(options.read_back(&socket2::SockRef::from(&listener)), "SO_REUSEADDR=1");
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_back(&self, socket: &Socket) -> String {
        let domain = socket.domain().ok();
        let ip = matches!(domain, Some(socket2::Domain::IPV4 | socket2::Domain::IPV6));
        let v6 = domain == Some(socket2::Domain::IPV6);
        let kind = socket.r#type().ok();
        let connection = ip && kind == Some(socket2::Type::STREAM) && !socket.is_listener().unwrap_or(false);
        let udp = ip && kind == Some(socket2::Type::DGRAM);
        let flag = |on: io::Result<bool>| on.map(|on| u8::from(on).to_string());
        let number = |n: io::Result<u32>| n.map(|n| n.to_string());
        let words: [(&str, bool, io::Result<String>); 11] = [
            ("SO_REUSEADDR", ip, flag(socket.reuse_address())),
            ("SO_REUSEPORT", ip && self.reuse_port, flag(socket.reuse_port())),
            ("TCP_NODELAY", connection, flag(socket.tcp_nodelay())),
            (
                "SO_KEEPALIVE",
                connection && self.keepalive.is_some(),
                flag(socket.keepalive()),
            ),
            (
                "TCP_KEEPIDLE",
                connection && self.keepalive.is_some(),
                socket.tcp_keepalive_time().map(|t| t.as_secs().to_string()),
            ),
            (
                "SO_RCVBUF",
                self.recv_buffer.is_some(),
                socket.recv_buffer_size().map(|n| n.to_string()),
            ),
            (
                "SO_SNDBUF",
                self.send_buffer.is_some(),
                socket.send_buffer_size().map(|n| n.to_string()),
            ),
            ("IP_TTL", ip && !v6 && self.ttl.is_some(), number(socket.ttl_v4())),
            (
                "IPV6_UNICAST_HOPS",
                v6 && self.ttl.is_some(),
                number(socket.unicast_hops_v6()),
            ),
            ("IPV6_V6ONLY", v6, flag(socket.only_v6())),
            ("SO_BROADCAST", udp && self.broadcast, flag(socket.broadcast())),
        ];
        let mut out = String::new();
        for (name, shown, value) in words {
            if let (true, Ok(value)) = (shown, value) {
                let _ = write!(out, "{}{name}={value}", if out.is_empty() { "" } else { " " });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_set_by_default() {
        let options = SocketOptions::default();
        assert_eq!(
            options.not_applying_to(&"udp://127.0.0.1:1".parse().unwrap()),
            Vec::<&str>::new()
        );
        assert_eq!(options.reuse_address, None);
        assert!(options.multicast.is_empty());
    }

    #[test]
    fn names_the_options_an_endpoint_cannot_use() {
        let all = SocketOptions::default()
            .reuse_address(true)
            .reuse_port(true)
            .nodelay(false)
            .keepalive(Duration::from_secs(5))
            .recv_buffer(1)
            .send_buffer(1)
            .ttl(3)
            .ipv6_only(true)
            .broadcast(true)
            .join_multicast("239.1.1.1".parse().unwrap())
            .bind("127.0.0.1:0".parse().unwrap());
        let unix: crate::Endpoint = "unix:/x".parse().unwrap();
        assert_eq!(
            all.not_applying_to(&unix),
            [
                "reuseaddr",
                "reuseport",
                "nodelay",
                "keepalive",
                "ttl",
                "ipv6-only",
                "broadcast",
                "multicast",
                "bind"
            ]
        );
        let tcp: crate::Endpoint = "tcp://127.0.0.1:1".parse().unwrap();
        assert_eq!(all.not_applying_to(&tcp), ["broadcast", "multicast"]);
    }

    #[test]
    fn reads_back_what_was_set() {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let options = SocketOptions::default().ttl(7).keepalive(Duration::from_secs(42));
        assert_eq!(
            socket.ttl_v4().unwrap(),
            64,
            "the default differs from what is set"
        );
        options.apply_ip(&socket, addr, Role::Client).unwrap();
        options.apply_tcp(&socket).unwrap();
        assert_eq!(
            options.read_back(&socket),
            "SO_REUSEADDR=0 TCP_NODELAY=1 SO_KEEPALIVE=1 TCP_KEEPIDLE=42 IP_TTL=7"
        );
    }
}
