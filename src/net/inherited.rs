//! Sockets opened elsewhere and handed to sockit (by systemd, a parent
//! process, a test): what kind each is, where it is bound, and made ready to
//! serve without binding anything.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::AddressFamily;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpListener, UdpSocket, UnixDatagram, UnixListener};
use tokio_seqpacket::UnixSeqpacketListener;

use super::SocketOptions;
use crate::Endpoint;
use crate::endpoint::UnixAddr;

/// An open socket of a kind sockit serves, ready on the runtime.
#[derive(Debug)]
pub(crate) enum Inherited {
    /// A listening TCP socket.
    Tcp(TcpListener),
    /// A bound UDP socket.
    Udp(UdpSocket),
    /// A listening Unix stream socket.
    Unix(UnixListener),
    /// A bound Unix datagram socket.
    UnixDatagram(UnixDatagram),
    /// A listening Unix seqpacket socket.
    Seqpacket(UnixSeqpacketListener),
}

/// What sockit can serve, said when it is handed something else.
const SERVED: &str = "sockit serves listening TCP, Unix stream and seqpacket sockets, \
                      and bound UDP and Unix datagram sockets";

/// Finds out what `socket` is (`SO_DOMAIN`, `SO_TYPE`, `SO_PROTOCOL`,
/// `SO_ACCEPTCONN`) and where it is bound, makes it non-blocking and
/// close-on-exec, applies the options of `options` that take effect on a
/// bound socket (buffer sizes; UDP broadcast and multicast groups), and
/// registers it with the runtime. The options that must precede `bind`
/// (address reuse, TTL, IPv6-only) are its maker's.
///
/// # Errors
///
/// `InvalidInput`, saying what it is, for a descriptor that is not a
/// socket, a stream socket that is not listening (a connection, as systemd's
/// `Accept=yes` passes), a datagram socket that is not bound, or a kind
/// sockit does not serve (raw, netlink, SCTP...); and the errors of the
/// system calls.
///
/// # Panics
///
/// Outside a tokio runtime.
pub(crate) fn adopt(socket: OwnedFd, options: &SocketOptions) -> io::Result<(Inherited, Endpoint)> {
    let fd = socket.as_raw_fd();
    let socket = Socket::from(socket);
    let unusable = |what: String| io::Error::new(io::ErrorKind::InvalidInput, format!("{what}; {SERVED}"));
    let domain = match socket.domain() {
        Ok(domain) => domain,
        Err(error) if error.raw_os_error().map(Errno::from_raw) == Some(Errno::ENOTSOCK) => {
            return Err(unusable(format!("descriptor {fd} is not a socket")));
        }
        Err(error) => return Err(error),
    };
    let kind = socket.r#type()?;
    let protocol = socket.protocol()?;
    let Some(served) = Kind::of(domain, kind, protocol) else {
        let protocol = protocol.map(|p| format!(", protocol {p:?}")).unwrap_or_default();
        let raw = i32::from(domain);
        let family = AddressFamily::from_i32(raw).map_or_else(|| raw.to_string(), |f| format!("{f:?}"));
        return Err(unusable(format!(
            "it is a socket of family {family}, type {kind:?}{protocol}"
        )));
    };
    let is_datagram = matches!(served, Kind::Udp | Kind::UnixDatagram);
    if !is_datagram && !socket.is_listener()? {
        return Err(unusable(format!(
            "it is a {} socket that is not listening (a connection, such as systemd's \
             Accept=yes passes: use Accept=no)",
            served.name()
        )));
    }
    let local = socket.local_addr()?;
    let not_bound = || unusable("it is a datagram socket that is not bound to an address".to_owned());
    let ip = local.as_socket();
    let unix = UnixAddr::from_sockaddr(&local);
    let unnamed = || unusable(format!("it is an unnamed {} listener", served.name()));
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    options.apply_buffers(&socket)?;
    let fd = OwnedFd::from(socket);
    Ok(match served {
        Kind::Tcp => {
            let addr = ip.expect("an IP socket has an IP address");
            let listener = TcpListener::from_std(std::net::TcpListener::from(fd))?;
            (Inherited::Tcp(listener), Endpoint::tcp(addr))
        }
        Kind::Udp => {
            let addr = ip.filter(|addr| addr.port() != 0).ok_or_else(not_bound)?;
            options.apply_udp(&SockRef::from(&fd), addr)?;
            let socket = UdpSocket::from_std(std::net::UdpSocket::from(fd))?;
            (Inherited::Udp(socket), Endpoint::udp(addr))
        }
        Kind::Unix => {
            let addr = unix.ok_or_else(unnamed)?;
            let listener = UnixListener::from_std(std::os::unix::net::UnixListener::from(fd))?;
            (Inherited::Unix(listener), Endpoint::Unix(addr))
        }
        Kind::UnixDatagram => {
            let addr = unix.ok_or_else(not_bound)?;
            let socket = UnixDatagram::from_std(std::os::unix::net::UnixDatagram::from(fd))?;
            (Inherited::UnixDatagram(socket), Endpoint::UnixDatagram(addr))
        }
        Kind::Seqpacket => {
            let addr = unix.ok_or_else(unnamed)?;
            let listener = UnixSeqpacketListener::try_from(fd)?;
            (Inherited::Seqpacket(listener), Endpoint::Seqpacket(addr))
        }
    })
}

/// The kinds of socket sockit serves.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Tcp,
    Udp,
    Unix,
    UnixDatagram,
    Seqpacket,
}

impl Kind {
    /// The kind of a socket of `domain`, `kind` and `protocol`, if sockit serves it.
    fn of(domain: Domain, kind: Type, protocol: Option<Protocol>) -> Option<Kind> {
        let ip = domain == Domain::IPV4 || domain == Domain::IPV6;
        let is = |want: Protocol| protocol.is_none_or(|p| p == want);
        match kind {
            Type::STREAM if ip && is(Protocol::TCP) => Some(Kind::Tcp),
            Type::DGRAM if ip && is(Protocol::UDP) => Some(Kind::Udp),
            Type::STREAM if domain == Domain::UNIX => Some(Kind::Unix),
            Type::DGRAM if domain == Domain::UNIX => Some(Kind::UnixDatagram),
            Type::SEQPACKET if domain == Domain::UNIX => Some(Kind::Seqpacket),
            _ => None,
        }
    }

    /// What the kind is called in errors.
    fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "TCP",
            Kind::Udp => "UDP",
            Kind::Unix => "Unix stream",
            Kind::UnixDatagram => "Unix datagram",
            Kind::Seqpacket => "Unix seqpacket",
        }
    }
}
