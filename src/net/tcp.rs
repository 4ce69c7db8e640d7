//! TCP: listening and connecting over IPv4 and IPv6.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use std::time::Duration;
//! use sockit::net::{DEFAULT_BACKLOG, SocketOptions, tcp};
//!
//! let options = SocketOptions::default().nodelay(false);
//! let listener = tcp::listen("127.0.0.1:0".parse().unwrap(), DEFAULT_BACKLOG, &options)?;
//! let client = tcp::connect(&[listener.local_addr()?], Duration::from_secs(5), &options).await?;
//! assert!(!client.nodelay()?);
//! assert_eq!(client.peer_addr()?, listener.local_addr()?);
//! # Ok(())
//! # }
//! ```

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::options::{Role, SocketOptions};

/// Opens a listening socket on `addr` with `options` (by default
/// `SO_REUSEADDR`, so a restart does not wait out `TIME_WAIT`, and dual stack
/// on `[::]`) and the given backlog.
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
/// use std::time::Duration;
///
/// use sockit::net::{DEFAULT_BACKLOG, SocketOptions, tcp};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let options = SocketOptions::default();
/// let listener = tcp::listen("127.0.0.1:0".parse().unwrap(), DEFAULT_BACKLOG, &options)?;
/// let addr = listener.local_addr()?;
/// let mut client = tcp::connect(&[addr], Duration::from_secs(5), &options).await?;
/// let (mut server_side, _) = listener.accept().await?;
/// client.write_all(b"hi").await?;
/// let mut got = [0; 2];
/// server_side.read_exact(&mut got).await?;
/// assert_eq!(&got, b"hi");
/// assert!(client.nodelay()?); // TCP_NODELAY unless turned off
/// # Ok(())
/// # }
/// ```
pub fn listen(addr: SocketAddr, backlog: u32, options: &SocketOptions) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    options.apply_ip(&socket, addr, Role::Listener)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    TcpListener::from_std(socket.into())
}

/// Connects to the first of `addrs` that accepts within `timeout` each, with
/// `options` applied (and `TCP_NODELAY` unless turned off: sockit's messages
/// are small and wait for their replies).
///
/// # Errors
///
/// The last address's error: refused, unreachable, or timed out.
///
/// # Cancel safety
///
/// Cancel safe: a connection in progress is dropped.
///
/// # Examples
///
/// The addresses are tried in order (see [`listen`] for a connection made):
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
///
/// use sockit::net::{SocketOptions, tcp};
///
/// // Nothing listens on port 1: refused at once.
/// let refused = tcp::connect(&["127.0.0.1:1".parse().unwrap()], Duration::from_secs(5), &SocketOptions::default()).await;
/// assert_eq!(refused.unwrap_err().kind(), std::io::ErrorKind::ConnectionRefused);
/// # }
/// ```
pub async fn connect(
    addrs: &[SocketAddr],
    timeout: Duration,
    options: &SocketOptions,
) -> io::Result<TcpStream> {
    super::first_success(addrs, |addr| async move {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        options.apply_ip(&socket, addr, Role::Client)?;
        options.apply_tcp(&socket)?;
        if let Some(local) = options.bind {
            socket.bind(&local.into())?;
        }
        socket.set_nonblocking(true)?;
        let socket = TcpSocket::from_std_stream(socket.into());
        tokio::time::timeout(timeout, socket.connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "timed out connecting"))?
    })
    .await
}
