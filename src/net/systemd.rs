//! Socket activation: the sockets systemd (or `systemd-socket-activate`)
//! passes a service as descriptors 3, 4, … named by `LISTEN_FDS`, taken once.
//!
//! Serve each with [`Server::adopt`](crate::Server::adopt).
//!
//! # Examples
//!
//! A process started by neither systemd nor `systemd-socket-activate` is
//! told so, and is free to bind its own endpoints:
//!
//! ```
//! use sockit::net::systemd::{self, NotPassed};
//!
//! if std::env::var_os("LISTEN_FDS").is_none() {
//!     assert!(matches!(systemd::take(), Err(NotPassed::NotSet)));
//! }
//! ```
//!
//! To try it without a unit file, let `systemd-socket-activate` bind a port
//! and start `sockit serve --systemd` on the first connection:
//!
//! ```sh
//! systemd-socket-activate -l 127.0.0.1:8000 sockit serve --systemd
//! ```

use std::env;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use listenfd::ListenFd;
use socket2::{Domain, Type};

/// One socket passed in.
///
/// # Examples
///
/// A socket made here stands in for one systemd passed:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::os::fd::{AsRawFd, OwnedFd};
/// use sockit::net::systemd::PassedSocket;
/// use sockit::{Greet, Server};
///
/// let made = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let addr = made.local_addr()?;
/// let passed = PassedSocket { fd: made.as_raw_fd(), socket: OwnedFd::from(made), name: Some("web".into()) };
/// let listener = Server::new(Greet).adopt(passed.socket)?;
/// assert_eq!(listener.local_endpoint().to_string(), format!("tcp://{addr}"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PassedSocket {
    /// The socket.
    pub socket: OwnedFd,
    /// Its descriptor number (3, 4, …), for logs.
    pub fd: RawFd,
    /// Its name in `LISTEN_FDNAMES` (the unit's `FileDescriptorName=`, by
    /// default the .socket unit's name), if there is one.
    pub name: Option<String>,
}

/// Why no socket was taken. Each says so in one line, with what to do.
///
/// # Examples
///
/// ```
/// use sockit::net::systemd::NotPassed;
///
/// assert_eq!(
///     NotPassed::BadCount("0".to_owned()).to_string(),
///     "no sockets were passed (LISTEN_FDS=\"0\" is not a number of descriptors from 1)"
/// );
/// let said = NotPassed::NotSet.to_string();
/// assert!(said.ends_with("start sockit from a .socket unit or systemd-socket-activate"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotPassed {
    /// `LISTEN_FDS` is not set: nothing started this process with sockets.
    #[error(
        "no sockets were passed (LISTEN_FDS is not set); \
         start sockit from a .socket unit or systemd-socket-activate"
    )]
    NotSet,
    /// `LISTEN_FDS` is not a number of descriptors, or is 0.
    #[error("no sockets were passed (LISTEN_FDS={0:?} is not a number of descriptors from 1)")]
    BadCount(String),
    /// `LISTEN_PID` names another process: the sockets were meant for it
    /// (the variables were inherited from a parent that did not unset them).
    #[error(
        "the sockets were passed to process {pid} (LISTEN_PID), not to this one ({ours}); \
         they are not taken"
    )]
    OtherProcess {
        /// `LISTEN_PID` as set.
        pid: String,
        /// This process's id.
        ours: u32,
    },
    /// A descriptor passed in is not a socket of a kind sockit serves.
    #[error(
        "descriptor {fd} passed in is not an open TCP, UDP or Unix socket; sockit serves ListenStream=, ListenDatagram= and ListenSequentialPacket= sockets"
    )]
    NotASocket {
        /// Its number.
        fd: RawFd,
    },
}

/// The first descriptor passed (`SD_LISTEN_FDS_START`).
const FIRST_FD: RawFd = 3;

/// The families and types of the sockets taken: `listenfd` checks a
/// descriptor's before giving it up. (Whether a stream socket listens, and
/// its protocol, [`Server::adopt`](crate::Server::adopt) checks.)
const KINDS: [(Domain, Type); 5] = [
    (Domain::IPV4, Type::STREAM),
    (Domain::IPV4, Type::DGRAM),
    (Domain::UNIX, Type::STREAM),
    (Domain::UNIX, Type::DGRAM),
    (Domain::UNIX, Type::SEQPACKET),
];

/// Takes the sockets passed to this process, in order, with their names.
///
/// As `sd_listen_fds(3)` says: `LISTEN_FDS` descriptors from 3 are taken
/// when `LISTEN_PID` is this process's id (or, as `systemfd` passes them,
/// not set at all); they are made close-on-exec, and `LISTEN_FDS` and
/// `LISTEN_PID` are unset, so that no child process takes them again.
/// (`LISTEN_FDNAMES` stays: unsetting it safely is beyond a crate without
/// `unsafe`, and without `LISTEN_FDS` nothing reads it.)
///
/// Call it at most once, and before the process starts other threads: a
/// thread reading the environment while it is changed is undefined
/// behaviour in C's `getenv`. (`sockit serve --systemd` calls it before its
/// runtime starts.)
///
/// # Examples
///
/// Serve what systemd passed, if anything:
///
/// ```
/// use sockit::net::systemd::{self, NotPassed};
/// use sockit::{Greet, Server};
///
/// // Before any other thread starts, a runtime's included.
/// let passed = match systemd::take() {
///     Ok(passed) => passed,
///     Err(NotPassed::NotSet) => Vec::new(), // not started by systemd
///     Err(other) => panic!("{other}"),
/// };
/// let runtime = tokio::runtime::Runtime::new().expect("a runtime");
/// runtime.block_on(async {
///     let server = Server::new(Greet);
///     for passed in passed {
///         let listener = server.adopt(passed.socket)?;
///         println!("serving {} ({:?})", listener.local_endpoint(), passed.name);
///         tokio::spawn(listener.serve(std::future::pending()));
///     }
///     Ok::<(), sockit::Error>(())
/// })?;
/// # Ok::<(), sockit::Error>(())
/// ```
///
/// # Errors
///
/// [`NotPassed`] says why none was taken: the variables are missing or
/// wrong, they are another process's, or a descriptor is not a socket of a
/// kind sockit serves.
pub fn take() -> Result<Vec<PassedSocket>, NotPassed> {
    let count = env::var("LISTEN_FDS").map_err(|_| NotPassed::NotSet)?;
    let pid = env::var("LISTEN_PID").unwrap_or_default();
    let names = env::var("LISTEN_FDNAMES").ok();
    // Reads LISTEN_FDS and LISTEN_PID again, and unsets them.
    let mut passed = ListenFd::from_env();
    let ours = std::process::id();
    if !pid.is_empty() && pid.parse::<u32>() != Ok(ours) {
        return Err(NotPassed::OtherProcess { pid, ours });
    }
    if passed.len() == 0 {
        return Err(NotPassed::BadCount(count));
    }
    let names: Vec<&str> = names
        .as_deref()
        .map_or_else(Vec::new, |names| names.split(':').collect());
    let names_fit = names.len() == passed.len();
    (0..passed.len())
        .map(|index| {
            let socket = KINDS
                .iter()
                .find_map(|&(domain, kind)| {
                    passed
                        .take_custom::<OwnedFd>(index, domain.into(), kind.into(), "socket")
                        .ok()
                        .flatten()
                })
                .ok_or(NotPassed::NotASocket {
                    fd: FIRST_FD + RawFd::try_from(index).unwrap_or(RawFd::MAX),
                })?;
            Ok(PassedSocket {
                fd: socket.as_raw_fd(),
                socket,
                name: names_fit.then(|| names[index].to_owned()),
            })
        })
        .collect()
}
