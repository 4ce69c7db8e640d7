//! Unix seqpacket sockets: connections that keep message boundaries, one
//! message per packet.

use std::io;
use std::os::fd::OwnedFd;

use socket2::Type;
use tokio_seqpacket::{UnixSeqpacket, UnixSeqpacketListener};

use super::SocketOptions;
use super::unix::{SocketFile, bind, connect_socket};
use crate::endpoint::{Credentials, UnixAddr};

/// Listens on a seqpacket socket at `addr`; see [`super::unix::bind`].
///
/// # Errors
///
/// As [`super::unix::bind`], and `listen`'s errors.
pub fn listen(
    addr: &UnixAddr,
    backlog: u32,
    mode: Option<u32>,
    options: &SocketOptions,
) -> io::Result<(UnixSeqpacketListener, Option<SocketFile>)> {
    let (socket, file) = bind(addr, Type::SEQPACKET, mode, options)?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok((UnixSeqpacketListener::try_from(OwnedFd::from(socket))?, file))
}

/// Connects a seqpacket socket to `addr`, with the buffer sizes of `options`.
///
/// # Errors
///
/// `NotFound` when no socket file is there, `ConnectionRefused` when no
/// server listens on it.
pub fn connect(addr: &UnixAddr, options: &SocketOptions) -> io::Result<UnixSeqpacket> {
    UnixSeqpacket::try_from(OwnedFd::from(connect_socket(addr, Type::SEQPACKET, options)?))
}

/// The credentials of the process that connected `socket`, if the kernel says.
pub fn peer_credentials(socket: &UnixSeqpacket) -> Option<Credentials> {
    socket.peer_cred().ok().map(|cred| Credentials {
        pid: cred.pid(),
        uid: cred.uid(),
        gid: cred.gid(),
    })
}
