//! Unix datagram sockets: binding a path or abstract name, and a client
//! socket with its own temporary address, so that replies can find it.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use sockit::UnixAddr;
//! use sockit::net::{SocketOptions, unix_datagram};
//!
//! let addr = UnixAddr::Abstract(format!("sockit-doc-dgram-{}", std::process::id()).into_bytes());
//! let (server, _) = unix_datagram::bind(&addr, None, &SocketOptions::default())?;
//! let (client, _own_file) = unix_datagram::connect(&addr, &SocketOptions::default())?;
//! client.send(b"client2").await?;
//! let mut buf = [0; 64];
//! let (len, from) = server.recv_from(&mut buf).await?;
//! server.send_to(b"Hello, client2", from.as_pathname().unwrap()).await?;
//! let len2 = client.recv(&mut buf[len..]).await?;
//! assert_eq!(&buf[..len + len2], b"client2Hello, client2");
//! # Ok(())
//! # }
//! ```

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use socket2::Type;
use tokio::net::UnixDatagram;

use super::SocketOptions;
use super::unix::{SocketFile, bind as bind_unix};
use crate::endpoint::UnixAddr;

/// Binds a Unix datagram socket at `addr`; see [`super::unix::bind`].
///
/// # Errors
///
/// As [`super::unix::bind`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use sockit::UnixAddr;
/// use sockit::net::{SocketOptions, unix_datagram};
///
/// let path = std::env::temp_dir().join(format!("sockit-doc-dgram-{}.sock", std::process::id()));
/// let (_socket, file) = unix_datagram::bind(
///     &UnixAddr::Path(path.clone()),
///     None,
///     &SocketOptions::default(),
/// )?;
/// assert_eq!(file.unwrap().path(), path);
/// # Ok(())
/// # }
/// ```
pub fn bind(
    addr: &UnixAddr,
    mode: Option<u32>,
    options: &SocketOptions,
) -> io::Result<(UnixDatagram, Option<SocketFile>)> {
    let (socket, file) = bind_unix(addr, Type::DGRAM, mode, options)?;
    Ok((into_tokio(socket)?, file))
}

fn into_tokio(socket: socket2::Socket) -> io::Result<UnixDatagram> {
    UnixDatagram::from_std(std::os::unix::net::UnixDatagram::from(OwnedFd::from(socket)))
}

/// A client socket connected to `addr`, bound to a temporary socket file of
/// its own (removed when the returned [`SocketFile`] drops), since a Unix
/// datagram server can only reply to a sender with an address. The buffer
/// sizes of `options` are applied.
///
/// # Errors
///
/// Fails when the temporary file cannot be bound, or nothing is bound at `addr`.
///
/// # Examples
///
/// The client's own socket file exists as long as the client does:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use sockit::UnixAddr;
/// use sockit::net::{SocketOptions, unix_datagram};
///
/// let addr = UnixAddr::Abstract(format!("sockit-doc-own-{}", std::process::id()).into_bytes());
/// let (_server, _) = unix_datagram::bind(&addr, None, &SocketOptions::default())?;
/// let (_client, own_file) = unix_datagram::connect(&addr, &SocketOptions::default())?;
/// let path = own_file.path().to_owned();
/// assert!(path.exists());
/// drop(own_file);
/// assert!(!path.exists());
/// # Ok(())
/// # }
/// ```
pub fn connect(addr: &UnixAddr, options: &SocketOptions) -> io::Result<(UnixDatagram, SocketFile)> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let own = UnixAddr::Path(temporary_path(NEXT.fetch_add(1, Ordering::Relaxed)));
    let (socket, file) = bind_unix(&own, Type::DGRAM, None, options)?;
    let file = file.expect("a path address has a socket file");
    socket.connect(&addr.to_sockaddr()?)?;
    Ok((into_tokio(socket)?, file))
}

/// Sends one datagram to `to`, a path or an abstract name.
///
/// # Errors
///
/// As `sendto`: no such socket, refused, or too long for the send buffer.
///
/// # Cancel safety
///
/// Cancel safe: the datagram is sent whole or not at all.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use sockit::UnixAddr;
/// use sockit::net::{SocketOptions, unix_datagram};
///
/// let addr = UnixAddr::Abstract(format!("sockit-doc-send-to-{}", std::process::id()).into_bytes());
/// let (server, _) = unix_datagram::bind(&addr, None, &SocketOptions::default())?;
/// let sender = tokio::net::UnixDatagram::unbound()?;
/// assert_eq!(unix_datagram::send_to(&sender, b"ping", &addr).await?, 4);
/// let mut buf = [0; 16];
/// let len = server.recv(&mut buf).await?;
/// assert_eq!(&buf[..len], b"ping");
/// # Ok(())
/// # }
/// ```
pub async fn send_to(socket: &UnixDatagram, datagram: &[u8], to: &UnixAddr) -> io::Result<usize> {
    let to = to.to_sockaddr()?;
    socket
        .async_io(tokio::io::Interest::WRITABLE, || {
            socket2::SockRef::from(socket).send_to(datagram, &to)
        })
        .await
}

/// Where a client's temporary socket file goes: in `$TMPDIR`, named for
/// this process.
fn temporary_path(n: u32) -> PathBuf {
    std::env::temp_dir().join(format!("sockit-client-{}-{n}.sock", std::process::id()))
}
