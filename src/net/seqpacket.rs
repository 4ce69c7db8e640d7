//! Unix seqpacket sockets: connections that keep message boundaries, one
//! message per packet.
//!
//! # Examples
//!
//! Two messages sent back to back arrive as two packets:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use sockit::UnixAddr;
//! use sockit::net::{SocketOptions, seqpacket};
//!
//! let addr = UnixAddr::Abstract(format!("sockit-doc-seqpacket-{}", std::process::id()).into_bytes());
//! let (mut listener, _) = seqpacket::listen(&addr, 16, None, &SocketOptions::default())?;
//! let client = seqpacket::connect(&addr, &SocketOptions::default())?;
//! let server = listener.accept().await?;
//! client.send(b"bob").await?;
//! client.send(b"alice").await?;
//! let mut buf = [0; 64];
//! assert_eq!(server.recv(&mut buf).await?.bytes_read(), 3);
//! assert_eq!(server.recv(&mut buf).await?.bytes_read(), 5);
//! # Ok(())
//! # }
//! ```

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
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use sockit::UnixAddr;
/// use sockit::net::{SocketOptions, seqpacket};
///
/// let path = std::env::temp_dir().join(format!("sockit-doc-seqpacket-{}.sock", std::process::id()));
/// let (_listener, file) = seqpacket::listen(
///     &UnixAddr::Path(path.clone()),
///     16,
///     Some(0o660),
///     &SocketOptions::default(),
/// )?;
/// assert_eq!(file.unwrap().path(), path);
/// # Ok(())
/// # }
/// ```
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
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use sockit::UnixAddr;
/// use sockit::net::{SocketOptions, seqpacket};
///
/// let missing = std::env::temp_dir().join(format!("sockit-doc-missing-{}.sock", std::process::id()));
/// let missing = UnixAddr::Path(missing);
/// let err = seqpacket::connect(&missing, &SocketOptions::default()).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// # Ok(())
/// # }
/// ```
pub fn connect(addr: &UnixAddr, options: &SocketOptions) -> io::Result<UnixSeqpacket> {
    UnixSeqpacket::try_from(OwnedFd::from(connect_socket(addr, Type::SEQPACKET, options)?))
}

/// The credentials of the process that connected `socket`, if the kernel says.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use sockit::UnixAddr;
/// use sockit::net::{SocketOptions, seqpacket};
///
/// let addr = UnixAddr::Abstract(format!("sockit-doc-cred-{}", std::process::id()).into_bytes());
/// let (mut listener, _) = seqpacket::listen(&addr, 16, None, &SocketOptions::default())?;
/// let _client = seqpacket::connect(&addr, &SocketOptions::default())?;
/// let server = listener.accept().await?;
/// let cred = seqpacket::peer_credentials(&server).unwrap();
/// assert_eq!(cred.pid, Some(std::process::id() as i32));
/// # Ok(())
/// # }
/// ```
pub fn peer_credentials(socket: &UnixSeqpacket) -> Option<Credentials> {
    socket.peer_cred().ok().map(|cred| Credentials {
        pid: cred.pid(),
        uid: cred.uid(),
        gid: cred.gid(),
    })
}
