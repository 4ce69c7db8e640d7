//! TCP: listening and connecting over IPv4 and IPv6.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};

/// Opens a listening socket on `addr` with `SO_REUSEADDR` set (so a restart
/// does not wait out `TIME_WAIT`) and the given backlog.
///
/// # Errors
///
/// Fails when the address is in use, not local, or not permitted.
pub fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    TcpListener::from_std(socket.into())
}

/// Connects to the first of `addrs` that accepts within `timeout` each, with
/// `TCP_NODELAY` set: sockit's messages are small and wait for their replies.
///
/// # Errors
///
/// The last address's error: refused, unreachable, or timed out.
///
/// # Cancel safety
///
/// Cancel safe: a connection in progress is dropped.
pub async fn connect(addrs: &[SocketAddr], timeout: Duration) -> io::Result<TcpStream> {
    super::first_success(addrs, |addr| async move {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "timed out connecting"))??;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
    .await
}
