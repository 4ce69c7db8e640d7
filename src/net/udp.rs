//! UDP: binding and connecting over IPv4 and IPv6.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use sockit::net::{SocketOptions, udp};
//!
//! let server = udp::bind("127.0.0.1:0".parse().unwrap(), &SocketOptions::default())?;
//! let client = udp::connect(&[server.local_addr()?], &SocketOptions::default()).await?;
//! client.send(b"client2").await?;
//! let mut buf = [0; 64];
//! let (len, from) = server.recv_from(&mut buf).await?;
//! assert_eq!((&buf[..len], from), (&b"client2"[..], client.local_addr()?));
//! # Ok(())
//! # }
//! ```

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::options::{Role, SocketOptions};

/// The largest UDP payload one IPv4 datagram can carry.
///
/// # Examples
///
/// ```
/// assert_eq!(sockit::net::udp::MAX_PAYLOAD_V4, 65_535 - 20 - 8);
/// ```
pub const MAX_PAYLOAD_V4: usize = 65_507;
/// The largest UDP payload one IPv6 datagram can carry (without jumbograms).
///
/// # Examples
///
/// ```
/// assert_eq!(sockit::net::udp::MAX_PAYLOAD_V6, 65_535 - 8);
/// ```
pub const MAX_PAYLOAD_V6: usize = 65_527;

/// The largest payload a datagram to `peer` can carry.
///
/// # Examples
///
/// ```
/// use sockit::net::udp;
///
/// assert_eq!(udp::max_payload("127.0.0.1:9000".parse()?), 65_507);
/// assert_eq!(udp::max_payload("[::1]:9000".parse()?), 65_527);
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
pub fn max_payload(peer: SocketAddr) -> usize {
    match peer {
        SocketAddr::V4(_) => MAX_PAYLOAD_V4,
        SocketAddr::V6(_) => MAX_PAYLOAD_V6,
    }
}

/// Binds a datagram socket on `addr` with `options` (by default
/// `SO_REUSEADDR`), joining the multicast groups they name.
///
/// # Errors
///
/// Fails when the address is in use, not local, or not permitted, or an
/// option cannot be set.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use sockit::net::{SocketOptions, udp};
///
/// let socket = udp::bind("[::1]:0".parse().unwrap(), &SocketOptions::default())?;
/// assert_ne!(socket.local_addr()?.port(), 0);
/// assert!(socket2::SockRef::from(&socket).reuse_address()?);
/// # Ok(())
/// # }
/// ```
pub fn bind(addr: SocketAddr, options: &SocketOptions) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    options.apply_ip(&socket, addr, Role::Listener)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    options.apply_udp(&socket, addr)?;
    UdpSocket::from_std(socket.into())
}

/// A socket on an ephemeral port (or `options.bind`), connected to the first
/// of `addrs`, so that only its replies are received and a closed port is
/// reported as refused.
///
/// # Errors
///
/// Fails when no socket can be made or no address can be connected.
///
/// # Cancel safety
///
/// Cancel safe.
///
/// # Examples
///
/// A closed port is reported as refused:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use sockit::net::{SocketOptions, udp};
///
/// let closed = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?; // and closed again
/// let client = udp::connect(&[closed], &SocketOptions::default()).await?;
/// client.send(b"anyone?").await?;
/// let err = client.recv(&mut [0; 16]).await.unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
/// # Ok(())
/// # }
/// ```
pub async fn connect(addrs: &[SocketAddr], options: &SocketOptions) -> io::Result<UdpSocket> {
    super::first_success(addrs, |addr| async move {
        let any: IpAddr = match addr {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        options.apply_ip(&socket, addr, Role::Client)?;
        if options.broadcast {
            socket.set_broadcast(true)?;
        }
        socket.bind(&options.bind.unwrap_or(SocketAddr::new(any, 0)).into())?;
        socket.connect(&addr.into())?;
        socket.set_nonblocking(true)?;
        UdpSocket::from_std(socket.into())
    })
    .await
}

/// Asks the kernel to hand runs of equal-sized datagrams from one sender to
/// `socket` as one buffer (UDP GRO, Linux 5.0 and later); returns whether it
/// will. Receive with a control buffer to learn each run's datagram size.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use nix::sys::socket::{getsockopt, sockopt::UdpGroSegment};
/// use sockit::net::{SocketOptions, udp};
///
/// let socket = udp::bind("127.0.0.1:0".parse()?, &SocketOptions::default())?;
/// assert!(!getsockopt(&socket, UdpGroSegment)?);
/// if udp::enable_gro(&socket) {
///     assert!(getsockopt(&socket, UdpGroSegment)?); // Linux 5.0 and later
/// }
/// # Ok(())
/// # }
/// ```
pub fn enable_gro(socket: &impl std::os::fd::AsFd) -> bool {
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::UdpGroSegment, &true).is_ok()
}
