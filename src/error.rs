//! The library's errors: what failed, on which endpoint, and why.
//!
//! # Examples
//!
//! ```
//! use sockit::{Endpoint, Error};
//!
//! let err = Error::from("tcp://nowhere".parse::<Endpoint>().unwrap_err());
//! assert!(matches!(err, Error::Endpoint(_)));
//! ```

use std::io;
use std::time::Duration;

use crate::Endpoint;
use crate::endpoint::EndpointError;

/// Everything that can go wrong serving or reaching an endpoint.
///
/// # Examples
///
/// Binding a port that is taken names the endpoint, with the reason as its source:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use sockit::{Echo, Endpoint, Error, Server};
///
/// let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let endpoint = Endpoint::tcp(taken.local_addr()?);
/// let err = Server::new(Echo).bind(&endpoint).await.unwrap_err();
/// assert!(matches!(err, Error::Bind { .. }));
/// assert_eq!(err.to_string(), format!("cannot listen on {endpoint}"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not an endpoint.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The endpoint's host name could not be resolved.
    #[error("cannot resolve {endpoint}")]
    Resolve {
        /// The endpoint whose host was looked up.
        endpoint: Endpoint,
        /// Why the lookup failed.
        #[source]
        source: io::Error,
    },
    /// The endpoint could not be bound (in use, not permitted, no such address).
    #[error("cannot listen on {endpoint}")]
    Bind {
        /// The endpoint that could not be bound.
        endpoint: Endpoint,
        /// Why binding failed.
        #[source]
        source: io::Error,
    },
    /// An open socket handed over ([`Server::adopt`](crate::Server::adopt))
    /// cannot be served: not a socket, not listening, or of a kind sockit
    /// does not serve.
    ///
    /// # Examples
    ///
    /// A file is not a socket:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::os::fd::{AsRawFd, OwnedFd};
    /// use sockit::{Echo, Error, Server};
    ///
    /// let file = OwnedFd::from(std::fs::File::open("/dev/null")?);
    /// let fd = file.as_raw_fd();
    /// let err = Server::new(Echo).adopt(file).unwrap_err();
    /// assert!(matches!(err, Error::Adopt { .. }));
    /// assert_eq!(err.to_string(), format!("cannot serve descriptor {fd}"));
    /// # Ok(())
    /// # }
    /// ```
    #[error("cannot serve descriptor {fd}")]
    Adopt {
        /// The socket's descriptor number.
        fd: std::os::fd::RawFd,
        /// What it is, or why it cannot be set up.
        #[source]
        source: io::Error,
    },
    /// The endpoint could not be reached.
    #[error("cannot connect to {endpoint}")]
    Connect {
        /// The endpoint that could not be reached.
        endpoint: Endpoint,
        /// Why connecting failed.
        #[source]
        source: io::Error,
    },
    /// The server's TLS certificate is not trusted: not signed by a trusted
    /// authority, not for the name asked for, expired.
    ///
    /// # Examples
    ///
    /// A server with a self-signed certificate, and a client that trusts
    /// another authority:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    /// use sockit::net::SocketOptions;
    /// use sockit::net::tls::{ClientTls, server_config};
    /// use sockit::{Error, Framing, Greet, Server, StreamClient};
    ///
    /// let dir = std::env::temp_dir().join(format!("sockit-doc-untrusted-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let key = KeyPair::generate()?;
    /// let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])?.self_signed(&key)?;
    /// std::fs::write(dir.join("cert.pem"), cert.pem())?;
    /// std::fs::write(dir.join("key.pem"), key.serialize_pem())?;
    /// let mut other = CertificateParams::new(Vec::<String>::new())?;
    /// other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    /// std::fs::write(dir.join("other-ca.pem"), other.self_signed(&KeyPair::generate()?)?.pem())?;
    ///
    /// let tls = server_config(&dir.join("cert.pem"), &dir.join("key.pem"))?;
    /// let listener = Server::new(Greet).tls(tls).bind(&"tls://127.0.0.1:0".parse()?).await?;
    /// let endpoint = listener.local_endpoint().clone();
    /// tokio::spawn(listener.serve(std::future::pending()));
    ///
    /// let trust = ClientTls::new(Some(&dir.join("other-ca.pem")), false)?;
    /// std::fs::remove_dir_all(&dir)?;
    /// let (timeout, options) = (Duration::from_secs(5), SocketOptions::default());
    /// let connecting = StreamClient::connect_tls(&endpoint, Framing::Line, timeout, &options, &trust);
    /// let err = connecting.await.unwrap_err();
    /// assert!(matches!(err, Error::Untrusted { .. }));
    /// assert!(err.to_string().starts_with(&format!("{endpoint}: certificate not trusted: ")));
    /// # Ok(())
    /// # }
    /// ```
    #[error("{endpoint}: certificate not trusted: {reason}")]
    Untrusted {
        /// The endpoint reached.
        endpoint: Endpoint,
        /// What is wrong with the certificate.
        reason: String,
    },
    /// The peer did not answer in time.
    #[error("{endpoint} did not answer within {}", humantime::format_duration(*waited))]
    Timeout {
        /// The endpoint waited for.
        endpoint: Endpoint,
        /// How long sockit waited, in all.
        waited: Duration,
    },
    /// The peer closed the connection while a reply was owed.
    #[error("{endpoint} closed the connection before answering")]
    Closed {
        /// The endpoint that closed.
        endpoint: Endpoint,
    },
    /// Sending or receiving failed on an established connection.
    #[error("connection to {endpoint} failed")]
    Conversation {
        /// The endpoint talked to.
        endpoint: Endpoint,
        /// The error from the socket (a reset, a refusal).
        #[source]
        source: io::Error,
    },
    /// The two sides cannot be relayed to each other (a stream and
    /// datagrams, say), or a side cannot be started.
    #[error("cannot relay {listen} to {target}: {reason}")]
    Relay {
        /// The side the relay listens on (or, not an endpoint, relays once).
        listen: crate::relay::Side,
        /// The side it relays to.
        target: crate::relay::Side,
        /// Why not.
        reason: String,
    },
    /// A message cannot be sent in the framing in use without the receiver
    /// getting other bytes: in `line` framing, one that holds a `\n` (it
    /// would arrive as two messages) or ends in `\r` (it would be removed
    /// with the line ending).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use sockit::{Endpoint, Error, Framing, StreamClient};
    ///
    /// let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let endpoint = Endpoint::tcp(server.local_addr()?);
    /// let mut client = StreamClient::connect(&endpoint, Framing::Line, Duration::from_secs(5)).await?;
    /// let err = client.send(b"two\nlines").await.unwrap_err();
    /// assert!(matches!(err, Error::Unframable { framing: Framing::Line, .. }));
    /// assert_eq!(err.to_string(), "line framing cannot carry a message that holds a newline");
    /// # Ok(())
    /// # }
    /// ```
    #[error("{framing} framing cannot carry a message that {reason}")]
    Unframable {
        /// The framing in use.
        framing: crate::Framing,
        /// What in the message the framing cannot carry.
        reason: &'static str,
    },
    /// A listener stopped, but connections still open at its shutdown
    /// timeout were closed: they may have owed replies.
    #[error(
        "{connections} {} to {listener} cut at the shutdown timeout ({})",
        plural(*connections, "connection"),
        humantime::format_duration(*timeout)
    )]
    Cut {
        /// The listener's endpoint.
        listener: Endpoint,
        /// How many connections were closed at the timeout.
        connections: usize,
        /// The shutdown timeout that passed.
        timeout: Duration,
    },
    /// The peer sent bytes that are not a message in the framing in use.
    #[error("{endpoint} sent a bad message")]
    Frame {
        /// The endpoint talked to.
        endpoint: Endpoint,
        /// What was wrong with it.
        #[source]
        source: crate::framing::FrameError,
    },
}

/// `noun`, with an `s` unless there is one.
fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        noun.to_owned()
    } else {
        format!("{noun}s")
    }
}
