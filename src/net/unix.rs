//! Unix stream sockets, and what every Unix socket kind shares: binding a
//! path safely (a stale socket file is replaced, a live one or a file that is
//! not a socket never is) and removing the socket file when done.
//!
//! # Examples
//!
//! A socket file is removed when the listener goes, and a stale one is replaced:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use sockit::UnixAddr;
//! use sockit::net::{SocketOptions, unix};
//!
//! let path = std::env::temp_dir().join(format!("sockit-doc-unix-{}.sock", std::process::id()));
//! let addr = UnixAddr::Path(path.clone());
//! let (listener, file) = unix::listen(&addr, 16, None, &SocketOptions::default())?;
//! assert!(path.exists());
//! drop((listener, file));
//! assert!(!path.exists());
//! # Ok(())
//! # }
//! ```

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use socket2::{Domain, Socket, Type};
use tokio::net::{UnixListener, UnixStream};
use tracing::info;

use super::SocketOptions;
use crate::endpoint::{Credentials, UnixAddr};

/// A socket file this process created; removed when dropped, unless
/// something else has replaced it meanwhile.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use sockit::UnixAddr;
/// use sockit::net::{SocketOptions, unix};
///
/// let path = std::env::temp_dir().join(format!("sockit-doc-file-{}.sock", std::process::id()));
/// let (_socket, file) = unix::bind(
///     &UnixAddr::Path(path.clone()),
///     socket2::Type::STREAM,
///     None,
///     &SocketOptions::default(),
/// )?;
/// let file = file.expect("a path has a socket file");
/// assert_eq!(file.path(), path);
/// drop(file);
/// assert!(!path.exists());
/// // An abstract name has no file.
/// let (_socket, file) = unix::bind(
///     &UnixAddr::Abstract(format!("sockit-doc-file-{}", std::process::id()).into_bytes()),
///     socket2::Type::STREAM,
///     None,
///     &SocketOptions::default(),
/// )?;
/// assert!(file.is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    /// Left in place when dropped: its socket was handed over.
    kept: Arc<AtomicBool>,
}

/// Leaves a [`SocketFile`] in place when it is dropped: for a socket handed
/// over to another process (an upgrade in place), which serves it on.
#[derive(Debug, Clone)]
pub struct SocketFileKeeper(Arc<AtomicBool>);

impl SocketFileKeeper {
    /// From now on, the file stays when its [`SocketFile`] is dropped.
    pub fn keep(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl SocketFile {
    /// The socket file at `path`, already there (a socket handed over with
    /// it): removed when dropped, as one this process made.
    ///
    /// # Errors
    ///
    /// When `path` cannot be read, or is not a socket.
    pub fn existing(path: &Path) -> io::Result<SocketFile> {
        let meta = fs::symlink_metadata(path)?;
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a socket", path.display()),
            ));
        }
        Ok(SocketFile {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
            kept: Arc::default(),
        })
    }

    /// What leaves the file in place when it is dropped.
    pub fn keeper(&self) -> SocketFileKeeper {
        SocketFileKeeper(Arc::clone(&self.kept))
    }

    /// The path of the socket file.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use sockit::UnixAddr;
    /// use sockit::net::{SocketOptions, unix};
    ///
    /// let path = std::env::temp_dir().join(format!("sockit-doc-path-{}.sock", std::process::id()));
    /// let (_listener, file) = unix::listen(
    ///     &UnixAddr::Path(path.clone()),
    ///     16,
    ///     None,
    ///     &SocketOptions::default(),
    /// )?;
    /// assert_eq!(file.unwrap().path(), path);
    /// # Ok(())
    /// # }
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if self.kept.load(Ordering::Relaxed) {
            return;
        }
        let ours = fs::symlink_metadata(&self.path).is_ok_and(|meta| {
            meta.file_type().is_socket() && meta.dev() == self.dev && meta.ino() == self.ino
        });
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Creates a Unix socket of type `kind` bound to `addr`, non-blocking.
///
/// A socket file already at the path is probed with a connect first: if
/// nothing answers (a server died without removing it), it is replaced; if a
/// server answers, binding fails with `AddrInUse`; a path that is not a
/// socket is never touched. `mode` (such as `0o660`) is applied to a new
/// socket file, and the buffer sizes of `options` to the socket.
///
/// # Errors
///
/// `AddrInUse` for a live socket, `AlreadyExists` for a file that is not a
/// socket, and whatever `bind` reports (no such directory, permission denied).
///
/// # Examples
///
/// A file that is not a socket is never replaced; a `mode` is applied to a new
/// socket file:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use std::os::unix::fs::PermissionsExt;
/// use sockit::UnixAddr;
/// use sockit::net::{SocketOptions, unix};
///
/// let dir = std::env::temp_dir();
/// let notes = dir.join(format!("sockit-doc-notes-{}.txt", std::process::id()));
/// std::fs::write(&notes, "keep me")?;
/// let err = unix::bind(
///     &UnixAddr::Path(notes.clone()),
///     socket2::Type::STREAM,
///     None,
///     &SocketOptions::default(),
/// ).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
/// assert_eq!(std::fs::read_to_string(&notes)?, "keep me");
/// std::fs::remove_file(&notes)?;
///
/// let path = dir.join(format!("sockit-doc-mode-{}.sock", std::process::id()));
/// let (_socket, file) = unix::bind(
///     &UnixAddr::Path(path.clone()),
///     socket2::Type::DGRAM,
///     Some(0o600),
///     &SocketOptions::default(),
/// )?;
/// assert_eq!(std::fs::metadata(file.unwrap().path())?.permissions().mode() & 0o777, 0o600);
/// # Ok(())
/// # }
/// ```
pub fn bind(
    addr: &UnixAddr,
    kind: Type,
    mode: Option<u32>,
    options: &SocketOptions,
) -> io::Result<(Socket, Option<SocketFile>)> {
    if let Some(path) = addr.path() {
        remove_if_stale(path, kind)?;
    }
    let socket = Socket::new(Domain::UNIX, kind, None)?;
    options.apply_buffers(&socket)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.to_sockaddr()?)?;
    let Some(path) = addr.path() else {
        return Ok((socket, None));
    };
    if let Some(mode) = mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    let meta = fs::symlink_metadata(path)?;
    let file = SocketFile {
        path: path.to_owned(),
        dev: meta.dev(),
        ino: meta.ino(),
        kept: Arc::default(),
    };
    Ok((socket, Some(file)))
}

/// Removes a socket file at `path` that no server answers on.
fn remove_if_stale(path: &Path, kind: Type) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket; not replacing it", path.display()),
        ));
    }
    let probe = Socket::new(Domain::UNIX, kind, None)?;
    // Non-blocking, so a live server with a full accept queue answers
    // `WouldBlock` (in use) instead of making us wait.
    probe.set_nonblocking(true)?;
    match probe.connect(&socket2::SockAddr::unix(path)?) {
        Ok(()) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("a server is already listening on {}", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            info!(path = %path.display(), "replacing a stale socket file left by a server that is gone");
            fs::remove_file(path)
        }
        Err(e) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} is in use ({e})", path.display()),
        )),
    }
}

/// Listens on a Unix stream socket at `addr`; see [`bind`].
///
/// # Errors
///
/// As [`bind`], and `listen`'s errors.
///
/// # Examples
///
/// A live server's socket is never taken over:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use sockit::UnixAddr;
/// use sockit::net::{SocketOptions, unix};
///
/// let addr = UnixAddr::Abstract(format!("sockit-doc-listen-{}", std::process::id()).into_bytes());
/// let (_live, _) = unix::listen(&addr, 16, None, &SocketOptions::default())?;
/// let err = unix::listen(&addr, 16, None, &SocketOptions::default()).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
/// # Ok(())
/// # }
/// ```
pub fn listen(
    addr: &UnixAddr,
    backlog: u32,
    mode: Option<u32>,
    options: &SocketOptions,
) -> io::Result<(UnixListener, Option<SocketFile>)> {
    let (socket, file) = bind(addr, Type::STREAM, mode, options)?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    let listener = std::os::unix::net::UnixListener::from(OwnedFd::from(socket));
    Ok((UnixListener::from_std(listener)?, file))
}

/// Connects a Unix stream socket to `addr`, with the buffer sizes of `options`.
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
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use sockit::UnixAddr;
/// use sockit::net::{SocketOptions, unix};
///
/// let addr = UnixAddr::Abstract(format!("sockit-doc-connect-{}", std::process::id()).into_bytes());
/// let (listener, _) = unix::listen(&addr, 16, None, &SocketOptions::default())?;
/// let mut client = unix::connect(&addr, &SocketOptions::default())?;
/// let (mut server, _) = listener.accept().await?;
/// client.write_all(b"hello").await?;
/// let mut buf = [0; 5];
/// server.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"hello");
///
/// let nowhere = UnixAddr::Abstract(format!("sockit-doc-nobody-{}", std::process::id()).into_bytes());
/// let err = unix::connect(&nowhere, &SocketOptions::default()).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
/// # Ok(())
/// # }
/// ```
pub fn connect(addr: &UnixAddr, options: &SocketOptions) -> io::Result<UnixStream> {
    let socket = connect_socket(addr, Type::STREAM, options)?;
    UnixStream::from_std(std::os::unix::net::UnixStream::from(OwnedFd::from(socket)))
}

/// A non-blocking Unix socket of type `kind`, with the buffer sizes of
/// `options`, connected to `addr` (a Unix connect completes at once or
/// fails; it does not wait on the network).
pub(crate) fn connect_socket(addr: &UnixAddr, kind: Type, options: &SocketOptions) -> io::Result<Socket> {
    let socket = Socket::new(Domain::UNIX, kind, None)?;
    options.apply_buffers(&socket)?;
    socket.connect(&addr.to_sockaddr()?)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// The credentials of the process that connected `stream`, if the kernel says.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use sockit::net::unix;
///
/// let (a, _b) = tokio::net::UnixStream::pair()?;
/// let cred = unix::peer_credentials(&a).unwrap();
/// assert_eq!(cred.pid, Some(std::process::id() as i32));
/// # Ok(())
/// # }
/// ```
pub fn peer_credentials(stream: &UnixStream) -> Option<Credentials> {
    stream.peer_cred().ok().map(|cred| Credentials {
        pid: cred.pid(),
        uid: cred.uid(),
        gid: cred.gid(),
    })
}
