//! UDP: binding and connecting over IPv4 and IPv6.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::options::{Role, SocketOptions};

/// The largest UDP payload one IPv4 datagram can carry.
pub const MAX_PAYLOAD_V4: usize = 65_507;
/// The largest UDP payload one IPv6 datagram can carry (without jumbograms).
pub const MAX_PAYLOAD_V6: usize = 65_527;

/// The largest payload a datagram to `peer` can carry.
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
pub fn enable_gro(socket: &impl std::os::fd::AsFd) -> bool {
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::UdpGroSegment, &true).is_ok()
}
