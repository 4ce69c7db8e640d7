//! Clients: the connect logic shared by `sockit connect` and `sockit bench`,
//! speaking the same framing code as the server.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::framing::{Decoder, Framed};
use crate::net::{self, tcp, udp};
use crate::{Endpoint, Error, Framing};

/// The longest message a client accepts: replies are a little longer than
/// the requests, which a server caps at 64 KiB by default.
const MAX_REPLY: usize = 1 << 20;

/// A conversation with a stream server: send messages, receive messages,
/// in the framing both sides agreed on.
///
/// `auto` sends and receives like `raw`, as the seed's client does: a message
/// is sent bare, and one read is one reply. So it waits for each reply
/// before sending the next message.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), sockit::Error> {
/// use std::time::Duration;
/// use sockit::{Framing, StreamClient};
///
/// let endpoint = "tcp://127.0.0.1:8000".parse()?;
/// let mut client = StreamClient::connect(&endpoint, Framing::Auto, Duration::from_secs(5)).await?;
/// let greeting = client.receive().await?;
/// client.send(b"client1").await?;
/// assert_eq!(client.receive().await?.as_deref(), Some(&b"Hello, client1!"[..]));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct StreamClient {
    stream: TcpStream,
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
    pub async fn connect(endpoint: &Endpoint, framing: Framing, timeout: Duration) -> Result<Self, Error> {
        let addrs = net::resolve(endpoint).await?;
        let stream = tcp::connect(&addrs, timeout)
            .await
            .map_err(|source| Error::Connect {
                endpoint: endpoint.clone(),
                source,
            })?;
        // A client speaks first, so `auto` has nothing to adapt to: it is `raw`.
        let framing = if framing == Framing::Auto {
            Framing::Raw
        } else {
            framing
        };
        Ok(StreamClient {
            stream,
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
    /// [`Error::Conversation`] when the connection fails (reset, closed).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: part of the message may have been sent.
    pub async fn send(&mut self, message: &[u8]) -> Result<(), Error> {
        self.output.clear();
        self.framed.encode(&[message], &mut self.output);
        self.stream
            .write_all(&self.output)
            .await
            .map_err(|source| Error::Conversation {
                endpoint: self.endpoint.clone(),
                source,
            })
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
    pub async fn receive(&mut self) -> Result<Option<Bytes>, Error> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            if let Some(message) = self
                .decoder
                .decode(&mut self.input)
                .map_err(|e| self.frame_error(e))?
            {
                return Ok(Some(message.payload));
            }
            let read_size = self.decoder.read_size();
            self.input.reserve(read_size);
            let read = tokio::time::timeout_at(
                deadline,
                self.stream.read_buf(&mut (&mut self.input).limit(read_size)),
            )
            .await
            .map_err(|_| Error::Timeout {
                endpoint: self.endpoint.clone(),
                waited: self.timeout,
            })?
            .map_err(|source| Error::Conversation {
                endpoint: self.endpoint.clone(),
                source,
            })?;
            if read == 0 {
                let last = self
                    .decoder
                    .decode_eof(&mut self.input)
                    .map_err(|e| self.frame_error(e))?;
                return Ok(last.map(|message| message.payload));
            }
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
    pub async fn finish(&mut self) -> Result<Vec<Bytes>, Error> {
        self.stream
            .shutdown()
            .await
            .map_err(|source| Error::Conversation {
                endpoint: self.endpoint.clone(),
                source,
            })?;
        let mut rest = Vec::new();
        while let Some(message) = self.receive().await? {
            rest.push(message);
        }
        Ok(rest)
    }

    /// The endpoint talked to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn frame_error(&self, source: crate::framing::FrameError) -> Error {
        Error::Frame {
            endpoint: self.endpoint.clone(),
            source,
        }
    }
}

/// A datagram client: sends a datagram and waits for the one reply, trying
/// again when none comes (the seed's client would wait forever).
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), sockit::Error> {
/// use std::time::Duration;
/// use sockit::DatagramClient;
///
/// let endpoint = "udp://127.0.0.1:9000".parse()?;
/// let client = DatagramClient::connect(&endpoint, Duration::from_secs(1), 2).await?;
/// assert_eq!(&client.request(b"client1").await?[..], b"Hello, client1");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DatagramClient {
    socket: UdpSocket,
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
    pub async fn connect(endpoint: &Endpoint, timeout: Duration, retries: u32) -> Result<Self, Error> {
        let addrs = net::resolve(endpoint).await?;
        let socket = udp::connect(&addrs).await.map_err(|source| Error::Connect {
            endpoint: endpoint.clone(),
            source,
        })?;
        Ok(DatagramClient {
            socket,
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
    pub async fn request(&self, message: &[u8]) -> Result<Bytes, Error> {
        let failed = |source| Error::Conversation {
            endpoint: self.endpoint.clone(),
            source,
        };
        let mut reply = vec![0; 1 << 16];
        for _ in 0..=self.retries {
            self.socket.send(message).await.map_err(failed)?;
            if let Ok(received) = tokio::time::timeout(self.timeout, self.socket.recv(&mut reply)).await {
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
}
