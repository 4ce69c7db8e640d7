//! Raw conversations, as netcat has them: a connected socket of any kind
//! (a [`Link`]) joined to a reader and a writer (stdin and stdout, or a
//! program's), bytes copied both ways as they come, nothing framed or
//! added. `sockit nc` is built on it.
//!
//! - [`connect`] dials any endpoint (TLS too) and gives its [`Link`];
//!   [`Acceptor`] listens on one and gives a [`Link`] per peer (for a
//!   datagram endpoint, one [`Link`] that talks to whoever sent last);
//! - [`Session`] runs one conversation: full duplex, a half-close when
//!   the input ends, an idle timeout, a delay before quitting after the
//!   input ends, CRLF line endings on the way out ([`Crlf`]), a hex dump
//!   of the traffic ([`HexDump`]);
//! - [`Program`] runs a command per connection, its stdin and stdout as
//!   the socket.
//!
//! # Examples
//!
//! A conversation with an echo server, fed from bytes in memory:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use sockit::net::SocketOptions;
//! use sockit::pipe::{self, Family, Session};
//! use sockit::{Echo, Server};
//!
//! let listener = Server::new(Echo).bind(&"tcp://127.0.0.1:0".parse()?).await?;
//! let endpoint = listener.local_endpoint().clone();
//! tokio::spawn(listener.serve(std::future::pending()));
//!
//! let link = pipe::connect(&endpoint, Duration::from_secs(5), &SocketOptions::default(), None, Family::Any).await?;
//! let mut output = Vec::new();
//! let moved = Session::default().run(link, &b"ping\n"[..], &mut output).await?;
//! assert_eq!(output, b"ping\n");
//! assert_eq!((moved.sent, moved.received), (5, 5));
//! # Ok(())
//! # }
//! ```

mod crlf;
mod hexdump;

pub use crlf::Crlf;
pub use hexdump::{HexDump, Way};

use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_seqpacket::UnixSeqpacket;
use tracing::{debug, warn};

use crate::net::listen::{AcceptErrors, Bound, DatagramSocket, Incoming, Socket, StreamListener};
use crate::net::tls::ClientTls;
use crate::net::unix::SocketFile;
use crate::net::{self, SocketOptions, seqpacket, tcp, udp, unix, unix_datagram};
use crate::{Endpoint, Error, Peer};

/// How much one read takes: large, so that bulk transfers cost few system
/// calls.
const CHUNK: usize = 128 * 1024;

/// The largest datagram or packet taken.
const MAX_DATAGRAM: usize = 65_536;

/// Which address families a host name may resolve to (`-4`, `-6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// Either: the first address that works.
    #[default]
    Any,
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

impl Family {
    fn keeps(self, addr: &SocketAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => addr.is_ipv4(),
            Family::V6 => addr.is_ipv6(),
        }
    }

    /// `endpoint`'s addresses of this family, or an error naming the family.
    async fn resolve(self, endpoint: &Endpoint) -> Result<Vec<SocketAddr>, Error> {
        let addrs: Vec<_> = net::resolve(endpoint)
            .await?
            .into_iter()
            .filter(|addr| self.keeps(addr))
            .collect();
        if addrs.is_empty() {
            let family = if self == Family::V4 { "IPv4" } else { "IPv6" };
            return Err(Error::Connect {
                endpoint: endpoint.clone(),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("the host has no {family} address"),
                ),
            });
        }
        Ok(addrs)
    }
}

/// A byte stream of any kind: TCP, Unix, TLS over TCP either way.
trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ByteStream for T {}

/// A connected socket, ready for a [`Session`].
pub struct Link {
    kind: Kind,
    peer: Option<Peer>,
}

enum Kind {
    Stream(Pin<Box<dyn ByteStream>>),
    Packets(UnixSeqpacket),
    Datagrams(Datagrams),
}

/// A datagram socket and whom it answers.
struct Datagrams {
    socket: DatagramSocket,
    /// Where what is sent goes: the server dialled, or the source heard
    /// from (first or last, as `follow` says). `None` until one is heard.
    to: watch::Sender<Option<Peer>>,
    /// Answer whoever sent last (listening with `-k`); otherwise only the
    /// first source is heard.
    follow: bool,
    /// Connected to the server dialled: the system hears only it.
    connected: bool,
    /// A client's own socket file (Unix datagrams), removed when dropped.
    _file: Option<SocketFile>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Stream(_) => "stream",
            Kind::Packets(_) => "packets",
            Kind::Datagrams(_) => "datagrams",
        };
        f.debug_struct("Link")
            .field("kind", &kind)
            .field("peer", &self.peer)
            .finish()
    }
}

impl Link {
    /// Who is at the other end, where known (a connection's peer, the
    /// server dialled).
    pub fn peer(&self) -> Option<&Peer> {
        self.peer.as_ref()
    }

    fn stream(stream: impl AsyncRead + AsyncWrite + Send + Unpin + 'static, peer: Option<Peer>) -> Self {
        Link {
            kind: Kind::Stream(Box::pin(stream)),
            peer,
        }
    }
}

/// Connects to `endpoint` (resolved to `family`'s addresses) within
/// `timeout`, with `options`; on `tls://`, runs the handshake with `tls`.
///
/// # Errors
///
/// [`Error::Resolve`] when the host has no address, [`Error::Connect`] when
/// no address takes the connection, [`Error::Untrusted`] when the server's
/// certificate is not trusted.
pub async fn connect(
    endpoint: &Endpoint,
    timeout: Duration,
    options: &SocketOptions,
    tls: Option<&ClientTls>,
    family: Family,
) -> Result<Link, Error> {
    let connect_error = |source| Error::Connect {
        endpoint: endpoint.clone(),
        source,
    };
    Ok(match endpoint {
        Endpoint::Tcp(_) | Endpoint::Tls(_) => {
            let addrs = family.resolve(endpoint).await?;
            let stream = tcp::connect(&addrs, timeout, options)
                .await
                .map_err(connect_error)?;
            let peer = stream.peer_addr().ok().map(Peer::from);
            match (endpoint, tls) {
                (Endpoint::Tls(_), Some(tls)) => {
                    Link::stream(tls.handshake(endpoint, stream, timeout).await?, peer)
                }
                (Endpoint::Tls(_), None) => {
                    return Err(connect_error(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a tls:// endpoint needs TLS settings",
                    )));
                }
                _ => Link::stream(stream, peer),
            }
        }
        Endpoint::Unix(addr) => Link::stream(
            unix::connect(addr, options).map_err(connect_error)?,
            Some(unix_peer(addr)),
        ),
        Endpoint::Seqpacket(addr) => Link {
            kind: Kind::Packets(seqpacket::connect(addr, options).map_err(connect_error)?),
            peer: Some(unix_peer(addr)),
        },
        Endpoint::Udp(_) => {
            let addrs = family.resolve(endpoint).await?;
            let socket = udp::connect(&addrs, options).await.map_err(connect_error)?;
            let peer = Peer::from(socket.peer_addr().map_err(connect_error)?);
            Link::datagrams(DatagramSocket::Udp(socket), Some(peer), false, None)
        }
        Endpoint::UnixDatagram(addr) => {
            let (socket, file) = unix_datagram::connect(addr, options).map_err(connect_error)?;
            Link::datagrams(
                DatagramSocket::Unix(socket),
                Some(unix_peer(addr)),
                false,
                Some(file),
            )
        }
    })
}

fn unix_peer(addr: &crate::UnixAddr) -> Peer {
    Peer::Unix {
        addr: Some(addr.clone()),
        cred: None,
    }
}

impl Link {
    fn datagrams(socket: DatagramSocket, to: Option<Peer>, follow: bool, file: Option<SocketFile>) -> Self {
        Link {
            kind: Kind::Datagrams(Datagrams {
                socket,
                connected: to.is_some(),
                to: watch::Sender::new(to.clone()),
                follow,
                _file: file,
            }),
            peer: to,
        }
    }
}

/// A listening socket that hands out a [`Link`] per peer.
pub struct Acceptor {
    bound: Option<Bound>,
    local: Endpoint,
    tls: Option<TlsAcceptor>,
    errors: AcceptErrors,
}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptor")
            .field("local", &self.local)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// A connection accepted and not yet ready: its TLS handshake, if any, is
/// still to run ([`Accepted::link`]), in the connection's own task.
pub struct Accepted {
    incoming: Incoming,
    peer: Peer,
    tls: Option<TlsAcceptor>,
}

impl Acceptor {
    /// Binds `endpoint` (a host resolved to `family`'s addresses) with
    /// `options`; a `tls://` endpoint terminates TLS with `tls`.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] when the endpoint cannot be bound, [`Error::Connect`]
    /// for a `tls://` endpoint without a certificate.
    pub async fn bind(
        endpoint: &Endpoint,
        options: &SocketOptions,
        tls: Option<Arc<rustls::ServerConfig>>,
        family: Family,
    ) -> Result<Self, Error> {
        let endpoint = match (endpoint, family) {
            (Endpoint::Tcp(_) | Endpoint::Udp(_) | Endpoint::Tls(_), Family::V4 | Family::V6) => {
                let addr = *family
                    .resolve(endpoint)
                    .await?
                    .first()
                    .expect("resolve gives one or fails");
                match endpoint {
                    Endpoint::Tcp(_) => Endpoint::tcp(addr),
                    Endpoint::Udp(_) => Endpoint::udp(addr),
                    _ => Endpoint::Tls(addr.into()),
                }
            }
            _ => endpoint.clone(),
        };
        let tls = match (&endpoint, tls) {
            (Endpoint::Tls(_), Some(config)) => Some(TlsAcceptor::from(config)),
            (Endpoint::Tls(_), None) => {
                return Err(Error::Bind {
                    endpoint,
                    source: io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a tls:// listener needs a certificate and its key (--cert, --key)",
                    ),
                });
            }
            _ => None,
        };
        let bound = Bound::bind(&endpoint, net::DEFAULT_BACKLOG, None, options).await?;
        Ok(Acceptor {
            local: bound.local.clone(),
            bound: Some(bound),
            tls,
            errors: AcceptErrors::new(),
        })
    }

    /// The endpoint bound: with port 0 asked for, the port the system chose.
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.local
    }

    /// Whether this is a datagram endpoint: then [`Acceptor::datagrams`]
    /// gives its one [`Link`], and [`Acceptor::accept`] none.
    pub fn is_datagram(&self) -> bool {
        matches!(
            self.bound.as_ref().map(|bound| &bound.socket),
            Some(Socket::Datagram(_))
        )
    }

    /// The next connection, riding out failed accepts (out of descriptors,
    /// say) as the server does.
    ///
    /// # Errors
    ///
    /// On a datagram endpoint, or once [`Acceptor::datagrams`] took it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn accept(&mut self, options: &SocketOptions) -> io::Result<Accepted> {
        let Some(Bound {
            socket: Socket::Stream(listener),
            ..
        }) = &mut self.bound
        else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a datagram endpoint has no connections to accept",
            ));
        };
        loop {
            match StreamListener::accept(listener, options).await {
                Ok((incoming, peer)) => {
                    self.errors.accepted();
                    return Ok(Accepted {
                        incoming,
                        peer,
                        tls: self.tls.clone(),
                    });
                }
                Err(error) => self.errors.failed(&error, listener).await,
            }
        }
    }

    /// The one [`Link`] of a datagram endpoint: it waits for a first
    /// datagram, then answers its source; with `follow`, whoever sent last,
    /// and it hears every source; without, only the first.
    ///
    /// # Errors
    ///
    /// On a stream endpoint.
    pub fn datagrams(&mut self, follow: bool) -> io::Result<Link> {
        match self.bound.take() {
            Some(Bound {
                socket: Socket::Datagram(socket),
                socket_file,
                ..
            }) => Ok(Link::datagrams(socket, None, follow, socket_file)),
            other => {
                self.bound = other;
                Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a datagram endpoint",
                ))
            }
        }
    }
}

impl fmt::Debug for Accepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accepted")
            .field("peer", &self.peer)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Accepted {
    /// Who connected.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The connection, once its TLS handshake (on `tls://`) is done within
    /// `timeout`.
    ///
    /// # Errors
    ///
    /// When the handshake fails or times out.
    pub async fn link(self, timeout: Duration) -> io::Result<Link> {
        let peer = Some(self.peer);
        Ok(match (self.incoming, self.tls) {
            (Incoming::Tcp(stream), Some(acceptor)) => {
                Link::stream(net::tls::accept(&acceptor, stream, timeout).await?, peer)
            }
            (Incoming::Tcp(stream), None) => Link::stream(stream, peer),
            (Incoming::Unix(stream), _) => Link::stream(stream, peer),
            (Incoming::Seqpacket(socket), _) => Link {
                kind: Kind::Packets(socket),
                peer,
            },
        })
    }
}

/// When a [`Session`] is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ends {
    /// When the peer closes (or the input ends and the quit delay passes):
    /// stdin and stdout, as netcat.
    #[default]
    PeerCloses,
    /// When both directions are done: the input ended (and was
    /// half-closed) and the peer closed. A program's conversation, which
    /// may answer after its input ends.
    BothClose,
}

/// Where a hex dump of the traffic goes, shared by the sessions that write
/// it.
pub type DumpTo = Arc<Mutex<Box<dyn Write + Send>>>;

/// One raw conversation between a [`Link`] and an input and output.
#[derive(Clone, Default)]
pub struct Session {
    /// End with an error when nothing moves either way for this long.
    pub idle_timeout: Option<Duration>,
    /// Once the input ends, end this long after (even if the peer has not
    /// closed); `Some(ZERO)` ends at once.
    pub quit_after_input: Option<Duration>,
    /// Send line endings as CRLF.
    pub crlf: bool,
    /// Write a hex dump of the traffic here.
    pub dump: Option<DumpTo>,
    /// When it is over.
    pub ends: Ends,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("idle_timeout", &self.idle_timeout)
            .field("quit_after_input", &self.quit_after_input)
            .field("crlf", &self.crlf)
            .field("dump", &self.dump.is_some())
            .field("ends", &self.ends)
            .finish()
    }
}

/// What a [`Session`] moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Moved {
    /// Bytes sent to the peer (after CRLF conversion).
    pub sent: u64,
    /// Bytes received from the peer.
    pub received: u64,
}

/// One run of a [`Session`]: when anything last moved (milliseconds since
/// it began), the bytes moved each way, and the hex dump's offsets.
struct Run {
    began: Instant,
    last: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    dump: Option<(DumpTo, Mutex<HexDump>)>,
}

impl Run {
    fn new(dump: Option<DumpTo>) -> Self {
        Run {
            began: Instant::now(),
            last: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            dump: dump.map(|to| (to, Mutex::new(HexDump::default()))),
        }
    }

    /// `bytes` went `way`.
    fn moved(&self, way: Way, bytes: &[u8]) {
        let now = u64::try_from(self.began.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
        let count = match way {
            Way::Sent => &self.sent,
            Way::Received => &self.received,
        };
        count.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if let Some((to, offsets)) = &self.dump {
            let text = offsets
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .chunk(way, bytes);
            let mut to = to.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let _ = to.write_all(text.as_bytes());
            let _ = to.flush();
        }
    }

    fn totals(&self) -> Moved {
        Moved {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
        }
    }

    /// The error once nothing has moved for `idle`; never without one.
    async fn idle(&self, idle: Option<Duration>) -> io::Error {
        let Some(idle) = idle else {
            return std::future::pending().await;
        };
        loop {
            let last = self.began + Duration::from_millis(self.last.load(Ordering::Relaxed));
            if last + idle <= Instant::now() {
                return io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "nothing sent or received for {}",
                        humantime::format_duration(idle)
                    ),
                );
            }
            tokio::time::sleep_until(last + idle).await;
        }
    }
}

/// Why the sending direction stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopped {
    /// The input ended.
    InputEnded,
    /// The peer went away while sending to it (reset, broken pipe): the
    /// receiving direction says how the conversation ends.
    PeerGone,
}

fn peer_gone(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
    )
}

/// What a failed send means: the peer gone, or an error.
fn send_failed(error: io::Error) -> io::Result<Stopped> {
    if peer_gone(&error) {
        debug!(%error, "the peer stopped taking what is sent");
        Ok(Stopped::PeerGone)
    } else {
        Err(error)
    }
}

impl Session {
    /// Copies `input` to the peer and what the peer sends to `output`,
    /// both at once, until the conversation is over ([`Ends`]). When the
    /// input ends the link is half-closed (its write side shut down; a
    /// datagram link sends nothing more). `output` is shut down and
    /// dropped when the peer closes: a program reading it sees its end.
    ///
    /// # Errors
    ///
    /// When reading, writing or the idle timeout fails the conversation;
    /// a datagram link's peer refusing it (ICMP port unreachable) too.
    pub async fn run<I, O>(&self, link: Link, input: I, output: O) -> io::Result<Moved>
    where
        I: AsyncRead + Unpin,
        O: AsyncWrite + Unpin,
    {
        let run = Run::new(self.dump.clone());
        match link.kind {
            Kind::Stream(stream) => {
                let (read, write) = tokio::io::split(stream);
                let mut outlet = Outlet::Stream(write);
                let sending = self.send(input, &mut outlet, &run);
                let moved = self.both(sending, receive_stream(read, output, &run), &run).await;
                outlet.close().await;
                moved
            }
            Kind::Packets(socket) => {
                let mut outlet = Outlet::<tokio::io::Sink>::Packets(&socket);
                let sending = self.send(input, &mut outlet, &run);
                let moved = self
                    .both(sending, receive_packets(&socket, output, &run), &run)
                    .await;
                outlet.close().await;
                moved
            }
            Kind::Datagrams(datagrams) => {
                let mut outlet = Outlet::<tokio::io::Sink>::Datagrams(&datagrams, datagrams.to.subscribe());
                let sending = self.send(input, &mut outlet, &run);
                self.both(sending, receive_datagrams(&datagrams, output, &run), &run)
                    .await
            }
        }
    }

    /// Runs both directions until the conversation is over.
    async fn both(
        &self,
        sending: impl Future<Output = io::Result<Stopped>>,
        receiving: impl Future<Output = io::Result<()>>,
        run: &Run,
    ) -> io::Result<Moved> {
        let mut sending = std::pin::pin!(sending);
        let mut receiving = std::pin::pin!(receiving);
        let stopped = tokio::select! {
            stopped = &mut sending => stopped?,
            received = &mut receiving => {
                received?;
                if self.ends == Ends::BothClose {
                    // The peer closed: what is still to send goes, then it is over.
                    tokio::select! {
                        stopped = &mut sending => { stopped?; }
                        error = run.idle(self.idle_timeout) => return Err(error),
                    }
                }
                return Ok(run.totals());
            }
            error = run.idle(self.idle_timeout) => return Err(error),
        };
        let quit = async {
            match (stopped, self.quit_after_input) {
                (Stopped::InputEnded, Some(delay)) => tokio::time::sleep(delay).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            received = &mut receiving => received?,
            () = quit => {}
            error = run.idle(self.idle_timeout) => return Err(error),
        }
        Ok(run.totals())
    }

    /// Sends what `input` gives through `outlet`, a read at a time (made
    /// CRLF if asked), until the input ends, then half-closes; or until
    /// the peer stops taking it.
    async fn send<I: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
        &self,
        mut input: I,
        outlet: &mut Outlet<'_, W>,
        run: &Run,
    ) -> io::Result<Stopped> {
        if let Outlet::Datagrams(_, to) = outlet {
            // Listening, nothing is read until someone has sent: then it
            // is known where it goes.
            let _ = to.wait_for(Option::is_some).await;
        }
        let mut buf = vec![0; outlet.read_size()];
        let (mut crlf, mut converted) = (Crlf::default(), Vec::new());
        loop {
            let read = input.read(&mut buf).await?;
            if read == 0 {
                break;
            }
            let bytes = if self.crlf {
                converted.clear();
                crlf.convert(&buf[..read], &mut converted);
                &converted[..]
            } else {
                &buf[..read]
            };
            if let Err(error) = outlet.send(bytes, run).await {
                return send_failed(error);
            }
        }
        match outlet.half_close().await {
            Err(error) => send_failed(error),
            Ok(()) => Ok(Stopped::InputEnded),
        }
    }
}

/// Where a [`Session`] sends, by the link's kind.
enum Outlet<'a, W> {
    /// A byte stream's writing half.
    Stream(W),
    /// A seqpacket connection: a read is a packet.
    Packets(&'a UnixSeqpacket),
    /// A datagram socket, and whom it answers: a read is a datagram.
    Datagrams(&'a Datagrams, watch::Receiver<Option<Peer>>),
}

impl<W: AsyncWrite + Unpin> Outlet<'_, W> {
    /// How much one read of the input may take.
    fn read_size(&self) -> usize {
        match self {
            Outlet::Stream(_) => CHUNK,
            Outlet::Packets(_) => MAX_DATAGRAM,
            Outlet::Datagrams(..) => udp::MAX_PAYLOAD_V4,
        }
    }

    /// Sends `bytes` and counts them sent. A datagram that cannot be sent
    /// is logged and skipped, unless the peer refuses it.
    async fn send(&mut self, bytes: &[u8], run: &Run) -> io::Result<()> {
        match self {
            Outlet::Stream(write) => write.write_all(bytes).await?,
            Outlet::Packets(socket) => {
                socket.send(bytes).await?;
            }
            Outlet::Datagrams(datagrams, to) => {
                let peer = to.borrow_and_update().clone().expect("waited for a peer");
                match datagrams.socket.send_to(bytes, &peer).await {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
                        return Err(refused(&peer));
                    }
                    Err(error) => {
                        warn!(%peer, %error, "could not send the datagram");
                        return Ok(());
                    }
                }
            }
        }
        run.moved(Way::Sent, bytes);
        Ok(())
    }

    /// The conversation is over, however it ended: the writing side is
    /// shut down if it was not (over TLS, with close_notify, so the peer
    /// does not take the end for a truncation). Errors do not matter now.
    async fn close(&mut self) {
        if let Err(error) = self.half_close().await {
            debug!(%error, "closing the writing side");
        }
    }

    /// The input ended: the peer reads its end, and may still answer
    /// (a datagram socket sends nothing more).
    async fn half_close(&mut self) -> io::Result<()> {
        match self {
            Outlet::Stream(write) => write.shutdown().await,
            Outlet::Packets(socket) => socket.shutdown(std::net::Shutdown::Write),
            Outlet::Datagrams(..) => Ok(()),
        }
    }
}

async fn receive_stream<R: AsyncRead + Unpin, O: AsyncWrite + Unpin>(
    mut read: R,
    mut output: O,
    run: &Run,
) -> io::Result<()> {
    let mut buf = vec![0; CHUNK];
    loop {
        let n = read.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        run.moved(Way::Received, &buf[..n]);
        output.write_all(&buf[..n]).await?;
    }
    finish(output).await
}

/// The peer is done: what is written goes out, then `output` is shut down.
/// Both, since some writers' shutdown does not flush: tokio's stdout writes
/// on another thread, and its shutdown returns at once, before the write.
async fn finish<O: AsyncWrite + Unpin>(mut output: O) -> io::Result<()> {
    output.flush().await?;
    output.shutdown().await
}

async fn receive_packets<O: AsyncWrite + Unpin>(
    socket: &UnixSeqpacket,
    mut output: O,
    run: &Run,
) -> io::Result<()> {
    let mut buf = vec![0; MAX_DATAGRAM];
    loop {
        let packet = socket.recv(&mut buf).await?;
        let n = packet.bytes_read();
        if n == 0 && !packet.truncated() {
            break;
        }
        run.moved(Way::Received, &buf[..n]);
        output.write_all(&buf[..n]).await?;
        output.flush().await?;
    }
    finish(output).await
}

/// Datagrams to `output` as they come, from the one source it answers (or
/// any, when it follows the last), until the peer refuses them.
async fn receive_datagrams<O: AsyncWrite + Unpin>(
    datagrams: &Datagrams,
    mut output: O,
    run: &Run,
) -> io::Result<()> {
    let mut buf = vec![0; MAX_DATAGRAM];
    loop {
        let (n, from) = match datagrams.socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
                let to = datagrams.to.borrow().clone();
                return Err(to.map_or(error, |peer| refused(&peer)));
            }
            Err(error) => return Err(error),
        };
        let heard = match &*datagrams.to.borrow() {
            Some(_) if datagrams.connected => Heard::Answered,
            Some(to) if *to == from => Heard::Answered,
            Some(to) if !datagrams.follow => {
                debug!(peer = %from, answering = %to, "a datagram from another source: ignored (-k hears every source)");
                Heard::Other
            }
            _ => Heard::New,
        };
        match heard {
            Heard::Answered => {}
            Heard::Other => continue,
            Heard::New => {
                datagrams.to.send_replace(Some(from));
            }
        }
        run.moved(Way::Received, &buf[..n]);
        output.write_all(&buf[..n]).await?;
        output.flush().await?;
    }
}

/// Whom a datagram came from, against the source a link answers.
enum Heard {
    /// The source it answers.
    Answered,
    /// Another, which it does not hear.
    Other,
    /// The first source, or (following) a new last one: answered from now on.
    New,
}

fn refused(peer: &Peer) -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionRefused,
        format!("{peer} refused the datagram (nothing listens there)"),
    )
}

/// A command run per connection, its stdin and stdout the socket (its
/// stderr is the caller's): ncat's `--exec` and `--sh-exec`, socat's
/// `EXEC:` and `SYSTEM:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// A program and its arguments, split on whitespace (`-e`).
    Exec(String),
    /// A shell command line, run by `/bin/sh -c` (`-c`).
    Shell(String),
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Program::Exec(command) => f.write_str(command),
            Program::Shell(command) => write!(f, "sh -c {command:?}"),
        }
    }
}

impl Program {
    /// Runs the program on `link` until it and the peer are both done,
    /// then waits for it to exit; `session` says what else applies (its
    /// [`Ends`] is [`Ends::BothClose`] here). The program's exit status.
    ///
    /// # Errors
    ///
    /// When it cannot be started, or the conversation fails (the program
    /// is killed then).
    pub async fn run(&self, link: Link, session: &Session) -> io::Result<std::process::ExitStatus> {
        let mut child = self.start()?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let session = Session {
            ends: Ends::BothClose,
            ..session.clone()
        };
        session.run(link, stdout, stdin).await?;
        child.wait().await
    }

    /// Starts the program, its stdin and stdout piped (to be taken from the
    /// child), its stderr the caller's; it is killed if the child is dropped
    /// before it exits.
    ///
    /// # Errors
    ///
    /// When no program is given, or it cannot be started (not found, say).
    pub fn start(&self) -> io::Result<tokio::process::Child> {
        let mut command = match self {
            Program::Exec(line) => {
                let mut words = line.split_whitespace();
                let program = words
                    .next()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no program given"))?;
                let mut command = tokio::process::Command::new(program);
                command.args(words);
                command
            }
            Program::Shell(line) => {
                let mut command = tokio::process::Command::new("/bin/sh");
                command.arg("-c").arg(line);
                command
            }
        };
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| io::Error::new(error.kind(), format!("cannot run {self}: {error}")))
    }
}

/// This process's stdout, written as it comes: no line buffer holds back
/// a line's start (a prompt) until its end arrives, as `std`'s stdout (and
/// so tokio's) would. Flush it before exiting: a write may still be going.
///
/// # Errors
///
/// When stdout is closed (its descriptor cannot be duplicated).
pub fn stdout() -> io::Result<tokio::fs::File> {
    use std::os::fd::AsFd;
    let fd = io::stdout().as_fd().try_clone_to_owned()?;
    Ok(tokio::fs::File::from_std(std::fs::File::from(fd)))
}
