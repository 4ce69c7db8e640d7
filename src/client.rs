//! Clients: the connect logic shared by `sockit connect` and `sockit bench`,
//! speaking the same framing code as the server.
//!
//! # Examples
//!
//! A [`StreamClient`] talking to a [`Greet`](crate::Greet) server on a port the
//! system chose:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sockit::Error> {
//! use std::time::Duration;
//! use sockit::{Framing, Greet, Server, StreamClient};
//!
//! let listener = Server::new(Greet).bind(&"tcp://127.0.0.1:0".parse()?).await?;
//! let endpoint = listener.local_endpoint().clone();
//! tokio::spawn(listener.serve(std::future::pending()));
//!
//! let mut client = StreamClient::connect(&endpoint, Framing::Line, Duration::from_secs(5)).await?;
//! assert_eq!(client.receive_greeting().await?.unwrap(), "Hello, I am server");
//! client.send(b"bob").await?;
//! assert_eq!(client.receive().await?.unwrap(), "Hello, bob!");
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket, UnixDatagram, UnixStream};
use tokio_rustls::client::TlsStream;
use tokio_seqpacket::UnixSeqpacket;
use tokio_util::either::Either;

use crate::framing::{Decoder, Framed};
use crate::net::tls::ClientTls;
use crate::net::unix::SocketFile;
use crate::net::{self, SocketOptions, seqpacket, tcp, udp, unix, unix_datagram};
use crate::{Endpoint, Error, Framing};

/// The longest message a client accepts: replies are a little longer than
/// the requests, which a server caps at 64 KiB by default.
const MAX_REPLY: usize = 1 << 20;

/// A conversation with a connection-oriented server (TCP, Unix stream,
/// seqpacket): send messages, receive messages, in the framing both sides
/// agreed on.
///
/// `auto` sends and receives like `raw`, as the seed's client does: a message
/// is sent bare, and one read is one reply. So it waits for each reply
/// before sending the next message. On seqpacket every message is a packet
/// and the framing is not used.
///
/// # Examples
///
/// The seed's client, on a seqpacket socket in the abstract namespace:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sockit::Error> {
/// use std::time::Duration;
/// use sockit::{Framing, Greet, Server, StreamClient};
///
/// let endpoint = format!("seqpacket:@sockit-doc-client-{}", std::process::id()).parse()?;
/// let listener = Server::new(Greet).bind(&endpoint).await?;
/// tokio::spawn(listener.serve(std::future::pending()));
///
/// let mut client = StreamClient::connect(&endpoint, Framing::Auto, Duration::from_secs(5)).await?;
/// assert_eq!(client.receive().await?.unwrap(), "Hello, I am server");
/// client.send(b"client1").await?;
/// assert_eq!(client.receive().await?.unwrap(), "Hello, client1!");
/// client.send(b"exit").await?;
/// assert_eq!(client.receive().await?, None);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct StreamClient {
    link: Link,
    endpoint: Endpoint,
    framed: Framed,
    decoder: Decoder,
    input: BytesMut,
    output: BytesMut,
    timeout: Duration,
}

impl StreamClient {
    /// Connects to a stream endpoint; `timeout` bounds the connect and every
    /// later wait for a reply.
    ///
    /// # Errors
    ///
    /// [`Error::Resolve`] or [`Error::Connect`] (refused, unreachable, timed out).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::time::Duration;
    /// use sockit::{Echo, Framing, Server, StreamClient};
    ///
    /// let listener = Server::new(Echo).bind(&"tcp://[::1]:0".parse()?).await?;
    /// let endpoint = listener.local_endpoint().clone();
    /// tokio::spawn(listener.serve(std::future::pending()));
    ///
    /// let client = StreamClient::connect(&endpoint, Framing::Len32, Duration::from_secs(5)).await?;
    /// assert_eq!(client.endpoint(), &endpoint);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(endpoint: &Endpoint, framing: Framing, timeout: Duration) -> Result<Self, Error> {
        Self::connect_with(endpoint, framing, timeout, &SocketOptions::default()).await
    }

    /// Connects as [`StreamClient::connect`] does, with socket `options`
    /// (those that apply to the endpoint's kind).
    ///
    /// # Errors
    ///
    /// As [`StreamClient::connect`]; also when an option cannot be set.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::time::Duration;
    /// use sockit::net::SocketOptions;
    /// use sockit::{Echo, Framing, Server, StreamClient};
    ///
    /// let listener = Server::new(Echo).bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// let endpoint = listener.local_endpoint().clone();
    /// tokio::spawn(listener.serve(std::future::pending()));
    ///
    /// let options = SocketOptions::default().nodelay(true);
    /// let mut client =
    ///     StreamClient::connect_with(&endpoint, Framing::Raw, Duration::from_secs(5), &options).await?;
    /// client.send(b"ping").await?;
    /// assert_eq!(client.receive().await?.unwrap(), "ping");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_with(
        endpoint: &Endpoint,
        framing: Framing,
        timeout: Duration,
        options: &SocketOptions,
    ) -> Result<Self, Error> {
        Self::open(endpoint, framing, timeout, options, None).await
    }

    /// Connects as [`StreamClient::connect_with`] does; on a `tls://`
    /// endpoint, runs the TLS handshake with `tls` (trust, server name,
    /// ALPN) before anything else. Other endpoints do not use `tls`.
    ///
    /// # Errors
    ///
    /// As [`StreamClient::connect_with`]; [`Error::Untrusted`] when the
    /// server's certificate is not trusted, [`Error::Connect`] when the
    /// handshake fails otherwise.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use sockit::net::{SocketOptions, tls::ClientTls};
    /// use sockit::{Framing, StreamClient};
    ///
    /// let endpoint = "tls://localhost:8443".parse()?;
    /// let tls = ClientTls::new(Some("cert.pem".as_ref()), false)?;
    /// let options = SocketOptions::default();
    /// let mut client =
    ///     StreamClient::connect_tls(&endpoint, Framing::Line, Duration::from_secs(5), &options, &tls).await?;
    /// let greeting = client.receive().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_tls(
        endpoint: &Endpoint,
        framing: Framing,
        timeout: Duration,
        options: &SocketOptions,
        tls: &ClientTls,
    ) -> Result<Self, Error> {
        Self::open(endpoint, framing, timeout, options, Some(tls)).await
    }

    async fn open(
        endpoint: &Endpoint,
        framing: Framing,
        timeout: Duration,
        options: &SocketOptions,
        tls: Option<&ClientTls>,
    ) -> Result<Self, Error> {
        let connect_error = |source| Error::Connect {
            endpoint: endpoint.clone(),
            source,
        };
        let link = match endpoint {
            Endpoint::Tls(_) => {
                let Some(tls) = tls else {
                    return Err(connect_error(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a tls:// endpoint needs TLS settings: use StreamClient::connect_tls",
                    )));
                };
                let addrs = net::resolve(endpoint).await?;
                let stream = tcp::connect(&addrs, timeout, options)
                    .await
                    .map_err(connect_error)?;
                let stream = tls.handshake(endpoint, stream, timeout).await?;
                Link::Tls(Box::new(stream))
            }
            Endpoint::Tcp(_) => {
                let addrs = net::resolve(endpoint).await?;
                let stream = tcp::connect(&addrs, timeout, options)
                    .await
                    .map_err(connect_error)?;
                Link::Bytes(Either::Left(stream))
            }
            Endpoint::Unix(addr) => Link::Bytes(Either::Right(
                unix::connect(addr, options).map_err(connect_error)?,
            )),
            Endpoint::Seqpacket(addr) => {
                Link::Packets(seqpacket::connect(addr, options).map_err(connect_error)?)
            }
            Endpoint::Udp(_) | Endpoint::UnixDatagram(_) => {
                return Err(connect_error(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a datagram endpoint has no connection: use DatagramClient",
                )));
            }
        };
        // A client speaks first, so `auto` has nothing to adapt to: it is `raw`.
        let framing = if framing == Framing::Auto {
            Framing::Raw
        } else {
            framing
        };
        Ok(StreamClient {
            link,
            endpoint: endpoint.clone(),
            framed: framing.sending(),
            decoder: Decoder::new(framing, MAX_REPLY),
            input: BytesMut::new(),
            output: BytesMut::new(),
            timeout,
        })
    }

    /// Sends one message, framed.
    ///
    /// # Errors
    ///
    /// [`Error::Unframable`], before anything is sent, when the framing
    /// cannot carry the message unchanged (`line`: a `\n` in it, or a `\r`
    /// at its end); [`Error::Conversation`] when the connection fails
    /// (reset, closed).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: part of the message may have been sent.
    ///
    /// # Examples
    ///
    /// In `len32` framing the message goes out with its length first:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use tokio::io::AsyncReadExt;
    /// use sockit::{Endpoint, Framing, StreamClient};
    ///
    /// let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let endpoint = Endpoint::tcp(server.local_addr()?);
    /// let mut client = StreamClient::connect(&endpoint, Framing::Len32, Duration::from_secs(5)).await?;
    /// client.send(b"hi").await?;
    /// let (mut conn, _) = server.accept().await?;
    /// let mut wire = [0; 6];
    /// conn.read_exact(&mut wire).await?;
    /// assert_eq!(&wire, b"\0\0\0\x02hi");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send(&mut self, message: &[u8]) -> Result<(), Error> {
        if !matches!(self.link, Link::Packets(_)) {
            unframable(self.framed, message)?;
        }
        let sent = match &mut self.link {
            Link::Bytes(stream) => {
                self.output.clear();
                self.framed.encode(&[message], &mut self.output);
                stream.write_all(&self.output).await
            }
            Link::Tls(stream) => {
                self.output.clear();
                self.framed.encode(&[message], &mut self.output);
                match stream.write_all(&self.output).await {
                    Ok(()) => stream.flush().await,
                    Err(e) => Err(e),
                }
            }
            Link::Packets(socket) => socket.send(message).await.map(drop),
        };
        sent.map_err(|source| self.failed(source))
    }

    /// Receives the server's greeting: like [`StreamClient::receive`], but in
    /// `line` framing a greeting that comes bare (no `\n`: a server in `auto`
    /// framing greets that way, before it knows its peer sends lines) is
    /// taken whole, as one read.
    ///
    /// # Errors
    ///
    /// As [`StreamClient::receive`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::time::Duration;
    /// use sockit::{Framing, Greet, Server, StreamClient};
    ///
    /// // The server is in `auto` framing: it greets bare, with no `\n`.
    /// let listener = Server::new(Greet).bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// let endpoint = listener.local_endpoint().clone();
    /// tokio::spawn(listener.serve(std::future::pending()));
    ///
    /// let mut client = StreamClient::connect(&endpoint, Framing::Line, Duration::from_secs(5)).await?;
    /// assert_eq!(client.receive_greeting().await?.unwrap(), "Hello, I am server");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn receive_greeting(&mut self) -> Result<Option<Bytes>, Error> {
        if self.decoder.framing() != Framing::Line {
            return self.receive().await;
        }
        let lines = std::mem::replace(&mut self.decoder, Decoder::new(Framing::Auto, MAX_REPLY));
        let greeting = self.receive().await;
        self.decoder = lines;
        greeting
    }

    /// Receives the next message; `None` when the server closed the connection
    /// cleanly with nothing left.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when nothing whole arrives in time,
    /// [`Error::Conversation`] when the connection fails (reset), and
    /// [`Error::Frame`] when the server sends something that is not a message.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: bytes already read stay buffered for the next call.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use tokio::io::AsyncWriteExt;
    /// use sockit::{Endpoint, Error, Framing, StreamClient};
    ///
    /// let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let endpoint = Endpoint::tcp(server.local_addr()?);
    /// let mut client = StreamClient::connect(&endpoint, Framing::Line, Duration::from_millis(50)).await?;
    /// let (mut conn, _) = server.accept().await?;
    /// conn.write_all(b"one\r\ntw").await?;
    /// assert_eq!(client.receive().await?.unwrap(), "one");
    /// assert!(matches!(client.receive().await, Err(Error::Timeout { .. })));
    /// conn.write_all(b"o\n").await?;
    /// drop(conn);
    /// assert_eq!(client.receive().await?.unwrap(), "two");
    /// assert_eq!(client.receive().await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn receive(&mut self) -> Result<Option<Bytes>, Error> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let received = match &mut self.link {
            Link::Bytes(stream) => {
                tokio::time::timeout_at(
                    deadline,
                    receive_bytes(stream, &mut self.decoder, &mut self.input),
                )
                .await
            }
            Link::Tls(stream) => {
                tokio::time::timeout_at(
                    deadline,
                    receive_bytes(&mut **stream, &mut self.decoder, &mut self.input),
                )
                .await
            }
            Link::Packets(socket) => {
                tokio::time::timeout_at(deadline, receive_packet(socket, &mut self.input)).await
            }
        };
        match received {
            Err(_) => Err(Error::Timeout {
                endpoint: self.endpoint.clone(),
                waited: self.timeout,
            }),
            Ok(Err(Received::Io(source))) => Err(self.failed(source)),
            Ok(Err(Received::Frame(source))) => Err(Error::Frame {
                endpoint: self.endpoint.clone(),
                source,
            }),
            Ok(Ok(message)) => Ok(message),
        }
    }

    /// Ends the sending side (the server sees end-of-stream) and waits, up to
    /// the timeout, for the server to close; what it still sends is returned.
    ///
    /// # Errors
    ///
    /// As [`StreamClient::receive`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe.
    ///
    /// # Examples
    ///
    /// Pipelined lines, then end-of-stream: the replies still owed come back.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::time::Duration;
    /// use sockit::{Framing, Greet, Server, StreamClient};
    ///
    /// let listener = Server::new(Greet).bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// let endpoint = listener.local_endpoint().clone();
    /// tokio::spawn(listener.serve(std::future::pending()));
    ///
    /// let mut client = StreamClient::connect(&endpoint, Framing::Line, Duration::from_secs(5)).await?;
    /// client.receive_greeting().await?;
    /// client.send(b"a").await?;
    /// client.send(b"b").await?;
    /// assert_eq!(client.finish().await?, ["Hello, a!", "Hello, b!"]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn finish(&mut self) -> Result<Vec<Bytes>, Error> {
        let shut = match &mut self.link {
            Link::Bytes(stream) => stream.shutdown().await,
            // close_notify, then end of stream.
            Link::Tls(stream) => stream.shutdown().await,
            Link::Packets(socket) => socket.shutdown(std::net::Shutdown::Write),
        };
        shut.map_err(|source| self.failed(source))?;
        let mut rest = Vec::new();
        while let Some(message) = self.receive().await? {
            rest.push(message);
        }
        Ok(rest)
    }

    /// The endpoint talked to.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use sockit::{Endpoint, Framing, StreamClient};
    ///
    /// let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let endpoint = Endpoint::tcp(server.local_addr()?);
    /// let client = StreamClient::connect(&endpoint, Framing::Raw, Duration::from_secs(5)).await?;
    /// assert_eq!(client.endpoint().to_string(), format!("tcp://{}", server.local_addr()?));
    /// # Ok(())
    /// # }
    /// ```
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// On TLS, the application protocol (ALPN) the server chose, if any.
    ///
    /// # Examples
    ///
    /// A server that speaks `greet` (ALPN), and a client that offers it:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use sockit::net::SocketOptions;
    /// use sockit::net::tls::{ClientTls, server_config};
    /// use sockit::{Framing, Greet, Server, StreamClient};
    ///
    /// let key = rcgen::KeyPair::generate()?;
    /// let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])?.self_signed(&key)?;
    /// let dir = std::env::temp_dir().join(format!("sockit-doc-alpn-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// std::fs::write(dir.join("cert.pem"), cert.pem())?;
    /// std::fs::write(dir.join("key.pem"), key.serialize_pem())?;
    /// let mut tls = (*server_config(&dir.join("cert.pem"), &dir.join("key.pem"))?).clone();
    /// std::fs::remove_dir_all(&dir)?;
    /// tls.alpn_protocols = vec![b"greet".to_vec()];
    /// let listener = Server::new(Greet).tls(Arc::new(tls)).bind(&"tls://127.0.0.1:0".parse()?).await?;
    /// let endpoint = listener.local_endpoint().clone();
    /// tokio::spawn(listener.serve(std::future::pending()));
    ///
    /// let offer = ClientTls::new(None, true)?.alpn(["echo", "greet"]);
    /// let (timeout, options) = (Duration::from_secs(5), SocketOptions::default());
    /// let client = StreamClient::connect_tls(&endpoint, Framing::Line, timeout, &options, &offer).await?;
    /// assert_eq!(client.alpn_protocol(), Some(&b"greet"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match &self.link {
            Link::Tls(stream) => stream.get_ref().1.alpn_protocol(),
            _ => None,
        }
    }

    fn failed(&self, source: io::Error) -> Error {
        Error::Conversation {
            endpoint: self.endpoint.clone(),
            source,
        }
    }
}

/// The connected socket, for `getsockopt` and other system calls.
impl AsFd for StreamClient {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.link.as_fd()
    }
}

impl AsFd for Link {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Link::Bytes(Either::Left(stream)) => stream.as_fd(),
            Link::Bytes(Either::Right(stream)) => stream.as_fd(),
            Link::Tls(stream) => stream.get_ref().0.as_fd(),
            Link::Packets(socket) => socket.as_fd(),
        }
    }
}

/// How a [`StreamClient`] is connected.
#[derive(Debug)]
enum Link {
    /// A byte stream (TCP, Unix stream): messages are framed.
    Bytes(Either<TcpStream, UnixStream>),
    /// TLS over TCP: messages are framed inside it. Boxed: TLS's state is
    /// large.
    Tls(Box<TlsStream<TcpStream>>),
    /// A seqpacket connection: a packet is a message.
    Packets(UnixSeqpacket),
}

/// Refuses a message that `framed` would not deliver unchanged: a `line`
/// receiver cuts lines at `\n` and removes a `\r` before it.
fn unframable(framed: Framed, message: &[u8]) -> Result<(), Error> {
    let reason = match framed {
        Framed::Line if message.contains(&b'\n') => "holds a newline",
        Framed::Line if message.last() == Some(&b'\r') => "ends in a carriage return",
        _ => return Ok(()),
    };
    Err(Error::Unframable {
        framing: Framing::Line,
        reason,
    })
}

/// Why receiving failed.
enum Received {
    Io(io::Error),
    Frame(crate::framing::FrameError),
}

/// The next message from a byte stream; `None` at a clean end of stream.
async fn receive_bytes(
    stream: &mut (impl AsyncRead + Unpin),
    decoder: &mut Decoder,
    input: &mut BytesMut,
) -> Result<Option<Bytes>, Received> {
    loop {
        if let Some(message) = decoder.decode(input).map_err(Received::Frame)? {
            return Ok(Some(message.payload));
        }
        let read_size = decoder.read_size();
        input.reserve(read_size);
        let read = stream
            .read_buf(&mut (&mut *input).limit(read_size))
            .await
            .map_err(Received::Io)?;
        if read == 0 {
            let last = decoder.decode_eof(input).map_err(Received::Frame)?;
            return Ok(last.map(|message| message.payload));
        }
    }
}

/// The next packet; `None` at end of stream.
async fn receive_packet(socket: &mut UnixSeqpacket, input: &mut BytesMut) -> Result<Option<Bytes>, Received> {
    input.clear();
    input.resize(MAX_REPLY, 0);
    let received = socket.recv(input).await.map_err(Received::Io)?;
    let len = received.bytes_read();
    if len == 0 {
        return Ok(None);
    }
    input.truncate(len);
    Ok(Some(input.split().freeze()))
}

/// A datagram client: sends a datagram and waits for the one reply, trying
/// again when none comes (the seed's client would wait forever).
///
/// # Examples
///
/// On a Unix datagram socket, whose server replies to the client's own
/// temporary socket file:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sockit::Error> {
/// use std::time::Duration;
/// use sockit::{DatagramClient, Greet, Server};
///
/// let endpoint = format!("unix-dgram:@sockit-doc-client-{}", std::process::id()).parse()?;
/// let listener = Server::new(Greet).bind(&endpoint).await?;
/// tokio::spawn(listener.serve(std::future::pending()));
///
/// let client = DatagramClient::connect(&endpoint, Duration::from_secs(1), 2).await?;
/// assert_eq!(client.request(b"client1").await?, "Hello, client1");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DatagramClient {
    link: DatagramLink,
    endpoint: Endpoint,
    timeout: Duration,
    retries: u32,
}

impl DatagramClient {
    /// A socket that talks only to `endpoint`; each request waits `timeout`
    /// for its reply and is sent again up to `retries` times.
    ///
    /// # Errors
    ///
    /// [`Error::Resolve`], or [`Error::Connect`] when no socket can be made.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::time::Duration;
    /// use sockit::{DatagramClient, Greet, Server};
    ///
    /// let listener = Server::new(Greet).bind(&"udp://127.0.0.1:0".parse()?).await?;
    /// let endpoint = listener.local_endpoint().clone();
    /// tokio::spawn(listener.serve(std::future::pending()));
    ///
    /// let client = DatagramClient::connect(&endpoint, Duration::from_secs(1), 2).await?;
    /// assert_eq!(client.request(b"client1").await?, "Hello, client1");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(endpoint: &Endpoint, timeout: Duration, retries: u32) -> Result<Self, Error> {
        Self::connect_with(endpoint, timeout, retries, &SocketOptions::default()).await
    }

    /// Connects as [`DatagramClient::connect`] does, with socket `options`
    /// (those that apply to the endpoint's kind).
    ///
    /// # Errors
    ///
    /// As [`DatagramClient::connect`]; also when an option cannot be set.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::time::Duration;
    /// use sockit::net::SocketOptions;
    /// use sockit::{DatagramClient, Echo, Server};
    ///
    /// let listener = Server::new(Echo).bind(&"udp://127.0.0.1:0".parse()?).await?;
    /// let endpoint = listener.local_endpoint().clone();
    /// tokio::spawn(listener.serve(std::future::pending()));
    ///
    /// let options = SocketOptions::default().recv_buffer(256 * 1024);
    /// let client = DatagramClient::connect_with(&endpoint, Duration::from_secs(1), 0, &options).await?;
    /// assert_eq!(client.request(b"ping").await?, "ping");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_with(
        endpoint: &Endpoint,
        timeout: Duration,
        retries: u32,
        options: &SocketOptions,
    ) -> Result<Self, Error> {
        let connect_error = |source| Error::Connect {
            endpoint: endpoint.clone(),
            source,
        };
        let addrs = match endpoint {
            Endpoint::Udp(_) => net::resolve(endpoint).await?,
            _ => Vec::new(),
        };
        let link = DatagramLink::connect(endpoint, &addrs, options)
            .await
            .map_err(connect_error)?;
        Ok(DatagramClient {
            link,
            endpoint: endpoint.clone(),
            timeout,
            retries,
        })
    }

    /// Sends `message` as one datagram and returns the reply.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when no reply came after every try, and
    /// [`Error::Conversation`] when the peer refuses (nothing listens there).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, but a reply that arrives after cancelling is read by the
    /// next request.
    ///
    /// # Examples
    ///
    /// A peer that never answers: each of the 1 + 2 tries waits 10 ms.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use sockit::{DatagramClient, Endpoint, Error};
    ///
    /// let silent = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let endpoint = Endpoint::udp(silent.local_addr()?);
    /// let client = DatagramClient::connect(&endpoint, Duration::from_millis(10), 2).await?;
    /// let err = client.request(b"anyone?").await.unwrap_err();
    /// assert!(matches!(err, Error::Timeout { waited, .. } if waited == Duration::from_millis(30)));
    /// let mut buf = [0; 16];
    /// for _ in 0..3 {
    ///     assert_eq!(silent.recv(&mut buf)?, 7); // sent once per try
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn request(&self, message: &[u8]) -> Result<Bytes, Error> {
        let failed = |source| Error::Conversation {
            endpoint: self.endpoint.clone(),
            source,
        };
        let mut reply = vec![0; 1 << 16];
        for _ in 0..=self.retries {
            self.link.send(message).await.map_err(failed)?;
            if let Ok(received) = tokio::time::timeout(self.timeout, self.link.recv(&mut reply)).await {
                let len = received.map_err(failed)?;
                reply.truncate(len);
                return Ok(Bytes::from(reply));
            }
        }
        Err(Error::Timeout {
            endpoint: self.endpoint.clone(),
            waited: self.timeout * (self.retries + 1),
        })
    }

    /// Sends `message` as one datagram, once, and waits for nothing: for a
    /// service that never replies ([`Discard`](crate::Discard)).
    ///
    /// # Errors
    ///
    /// [`Error::Conversation`] when the datagram cannot be sent (too long;
    /// refused, when an earlier datagram found nothing listening).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a datagram is sent whole or not at all.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use sockit::{DatagramClient, Endpoint};
    ///
    /// let sink = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let endpoint = Endpoint::udp(sink.local_addr()?);
    /// let client = DatagramClient::connect(&endpoint, Duration::from_secs(1), 2).await?;
    /// client.send(b"a").await?;
    /// client.send(b"b").await?;
    /// let mut buf = [0; 16];
    /// let len = sink.recv(&mut buf)?;
    /// assert_eq!(&buf[..len], b"a"); // each sent once, in order
    /// let len = sink.recv(&mut buf)?;
    /// assert_eq!(&buf[..len], b"b");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send(&self, message: &[u8]) -> Result<(), Error> {
        self.link
            .send(message)
            .await
            .map(drop)
            .map_err(|source| Error::Conversation {
                endpoint: self.endpoint.clone(),
                source,
            })
    }
}

/// The socket, for `getsockopt` and other system calls.
impl AsFd for DatagramClient {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.link {
            DatagramLink::Udp(socket) => socket.as_fd(),
            DatagramLink::Unix { socket, .. } => socket.as_fd(),
        }
    }
}

/// A datagram socket that talks to one endpoint: how a [`DatagramClient`]
/// is connected, and a relay to its target.
#[derive(Debug)]
pub(crate) enum DatagramLink {
    Udp(UdpSocket),
    Unix {
        socket: UnixDatagram,
        /// Its own temporary socket file, kept until the client drops.
        _own_file: SocketFile,
    },
}

impl DatagramLink {
    /// A socket connected to the datagram `endpoint`, whose host (for UDP)
    /// resolved to `addrs`.
    pub(crate) async fn connect(
        endpoint: &Endpoint,
        addrs: &[std::net::SocketAddr],
        options: &SocketOptions,
    ) -> io::Result<Self> {
        match endpoint {
            Endpoint::Udp(_) => Ok(DatagramLink::Udp(udp::connect(addrs, options).await?)),
            Endpoint::UnixDatagram(addr) => {
                let (socket, file) = unix_datagram::connect(addr, options)?;
                Ok(DatagramLink::Unix {
                    socket,
                    _own_file: file,
                })
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a connection endpoint is not a datagram endpoint: use StreamClient",
            )),
        }
    }

    pub(crate) async fn send(&self, datagram: &[u8]) -> io::Result<usize> {
        match self {
            DatagramLink::Udp(socket) => socket.send(datagram).await,
            DatagramLink::Unix { socket, .. } => socket.send(datagram).await,
        }
    }

    pub(crate) async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            DatagramLink::Udp(socket) => socket.recv(buf).await,
            DatagramLink::Unix { socket, .. } => socket.recv(buf).await,
        }
    }
}
