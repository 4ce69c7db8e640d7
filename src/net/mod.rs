//! Transports: how each socket kind binds, accepts, connects and sets its
//! options. They know nothing of framing or services.
//!
//! - [`tcp`]: TCP over IPv4 and IPv6;
//! - [`udp`]: UDP over IPv4 and IPv6;
//! - [`unix`]: Unix stream sockets, and the safe binding every Unix kind shares;
//! - [`unix_datagram`]: Unix datagram sockets;
//! - [`seqpacket`]: Unix seqpacket sockets;
//! - `batch`: many datagrams per system call (`recvmmsg`, `sendmmsg`);
//! - [`tls`]: TLS over TCP (`rustls`): certificates and keys from PEM files, handshakes;
//! - [`icmp`]: ICMP echo (ping) over IPv4 and IPv6, on raw or ICMP datagram sockets;
//! - [`options`]: socket options, set where they apply and read back;
//! - `listen`: binds any endpoint, accepts with the connection's options set, rides out
//!   failed accepts (shared by the server and the relay);
//! - `inherited`: sockets opened elsewhere, found out and made ready to serve
//!   ([`Server::adopt`](crate::Server::adopt));
//! - [`systemd`]: the sockets systemd passes (socket activation, `LISTEN_FDS`).
//!
//! # Examples
//!
//! A UDP socket bound with options, read back from the socket:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use sockit::net::{SocketOptions, udp};
//!
//! let options = SocketOptions::default().broadcast(true);
//! let socket = udp::bind("127.0.0.1:0".parse().unwrap(), &options)?;
//! assert!(socket.broadcast()?);
//! assert_eq!(options.not_applying_to(&"tcp://127.0.0.1:1".parse().unwrap()), ["broadcast"]);
//! # Ok(())
//! # }
//! ```

pub(crate) mod batch;
pub mod icmp;
pub(crate) mod inherited;
pub(crate) mod listen;
pub mod options;
pub mod seqpacket;
pub mod systemd;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod unix;
pub mod unix_datagram;

use std::io;
use std::net::SocketAddr;

pub use options::SocketOptions;

use crate::{Endpoint, Error};

/// The default listen backlog (the seed's `listen(10)` is too small for load).
///
/// ```
/// assert_eq!(sockit::net::DEFAULT_BACKLOG, 1024);
/// let server = sockit::Server::new(sockit::Greet).backlog(sockit::net::DEFAULT_BACKLOG * 4);
/// # drop(server);
/// ```
pub const DEFAULT_BACKLOG: u32 = 1024;

/// Resolves the host of a network endpoint to the addresses to try, in order.
pub(crate) async fn resolve(endpoint: &Endpoint) -> Result<Vec<SocketAddr>, Error> {
    let host_port = endpoint
        .host_port()
        .expect("every network endpoint has a host and port");
    host_port.resolve().await.map_err(|source| Error::Resolve {
        endpoint: endpoint.clone(),
        source,
    })
}

/// Tries `attempt` on each address in turn and returns the first success, or
/// the last error.
pub(crate) async fn first_success<T, F, Fut>(addrs: &[SocketAddr], mut attempt: F) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to try");
    for &addr in addrs {
        match attempt(addr).await {
            Ok(value) => return Ok(value),
            Err(e) => last = e,
        }
    }
    Err(last)
}
