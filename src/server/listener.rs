//! A bound [`Listener`], and how it serves: the accept loop of a stream
//! listener ([`accept`](super::accept)) with its drain, or the receive loop
//! of a datagram socket, until the shutdown future completes.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::accept::Accepting;
use crate::answer::{Answer, DatagramServing};
use crate::connection::{Settings, Stop};
use crate::datagram;
use crate::deadline::Timeouts;
use crate::live::{LiveConfig, LiveTls};
use crate::metrics::ListenerMetrics;
use crate::net::SocketOptions;
use crate::net::listen::Socket;
use crate::net::unix::SocketFile;
use crate::proxy::ProxyProtocol;
use crate::{Endpoint, Error, Framing, Limits, WhenFull};

/// One bound endpoint of a [`Server`](crate::Server), ready to serve.
///
/// # Examples
///
/// Echo on a port the system chooses, answering a plain standard-library
/// client byte for byte, then shut down:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sockit::Error> {
/// use std::io::{Read, Write};
/// use std::net::{Shutdown, TcpStream};
/// use tokio::sync::oneshot;
/// use sockit::{Echo, Endpoint, Framing, Server};
///
/// let listener = Server::new(Echo).bind(&"tcp://127.0.0.1:0".parse()?).await?;
/// assert_eq!(listener.framing(), Framing::Raw);
/// let Endpoint::Tcp(address) = listener.local_endpoint() else { unreachable!() };
/// let address = address.socket_addr().expect("an IP address");
/// let (stop, stopped) = oneshot::channel::<()>();
/// let serving = tokio::spawn(listener.serve(async { stopped.await.unwrap_or(()) }));
///
/// // A blocking client, on a thread of its own.
/// let got = tokio::task::spawn_blocking(move || {
///     let mut stream = TcpStream::connect(address)?;
///     stream.write_all(b"\x00bytes\r\n")?;
///     stream.shutdown(Shutdown::Write)?;
///     let mut got = Vec::new();
///     stream.read_to_end(&mut got)?;
///     Ok::<_, std::io::Error>(got)
/// })
/// .await
/// .unwrap()
/// .expect("echoed");
/// assert_eq!(got, b"\x00bytes\r\n");
///
/// stop.send(()).unwrap();
/// serving.await.unwrap()
/// # }
/// ```
#[derive(Debug)]
pub struct Listener<S> {
    pub(super) socket: Socket,
    pub(super) local: Endpoint,
    /// The Unix socket file, removed when the listener is dropped.
    pub(super) socket_file: Option<SocketFile>,
    pub(super) options: SocketOptions,
    pub(super) service: Arc<S>,
    pub(super) settings: Settings,
    pub(super) shutdown_timeout: Duration,
    pub(super) timeouts: Timeouts,
    pub(super) permits: Arc<Semaphore>,
    /// Limits changed while serving ([`LimitsHandle`](crate::LimitsHandle)).
    pub(super) live: tokio::sync::watch::Receiver<Option<Limits>>,
    pub(super) when_full: WhenFull,
    pub(super) proxy: Option<Arc<ProxyProtocol>>,
    pub(super) datagram: datagram::Limits,
    /// The certificate and key of a `tls://` listener, as they change.
    pub(super) tls: Option<LiveConfig>,
    /// How long a TLS connection's handshake may take.
    pub(super) tls_handshake_timeout: Duration,
    pub(super) metrics: Option<Arc<ListenerMetrics>>,
}

/// The bound socket, for `getsockopt` and other system calls tokio does not wrap.
impl<S> AsFd for Listener<S> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// How a listener that stops accepting ends the connections still open
/// ([`Listener::serve_then`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Drain {
    /// Each writes the replies it owes and closes (SIGTERM's way).
    #[default]
    Finish,
    /// Each is served on until its peer closes it: another process took
    /// the listening socket over (an upgrade in place) and serves the new
    /// peers, while these finish their conversations here.
    ServeOn,
}

impl<S: Answer> Listener<S> {
    /// The endpoint actually bound: with port 0 asked for, the port the
    /// system chose.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use sockit::{Echo, Endpoint, Server};
    ///
    /// let listener = Server::new(Echo).bind(&"udp://127.0.0.1:0".parse()?).await?;
    /// let Endpoint::Udp(address) = listener.local_endpoint() else { unreachable!() };
    /// assert_ne!(address.port(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_endpoint(&self) -> &Endpoint {
        &self.local
    }

    /// The Unix socket file this listener removes when it stops, if any
    /// (its [`keeper`](SocketFile::keeper) leaves it, for a socket handed
    /// over to another process).
    pub fn socket_file(&self) -> Option<&SocketFile> {
        self.socket_file.as_ref()
    }

    /// The framing stream connections are served with.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use sockit::{Framing, Greet, Server};
    ///
    /// let server = Server::new(Greet).framing(Framing::Line);
    /// let listener = server.bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// assert_eq!(listener.framing(), Framing::Line);
    /// # Ok(())
    /// # }
    /// ```
    pub fn framing(&self) -> Framing {
        self.settings.framing
    }

    /// Serves until `shutdown` completes, then stops gracefully: stops
    /// accepting, lets every connection write the replies it owes and close,
    /// and after the shutdown timeout closes those still open.
    ///
    /// # Errors
    ///
    /// [`Error::Cut`] once stopped, if the shutdown timeout passed with
    /// stream connections still open (they are closed then). Accept and
    /// receive errors are logged and served through.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future drops every open connection at
    /// once. Complete `shutdown` instead.
    ///
    /// # Examples
    ///
    /// A connection still open at shutdown is closed with an end of stream:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::time::Duration;
    /// use tokio::sync::oneshot;
    /// use sockit::{Framing, Greet, Server, StreamClient};
    ///
    /// let listener = Server::new(Greet).bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// let endpoint = listener.local_endpoint().clone();
    /// let (stop, stopped) = oneshot::channel::<()>();
    /// let serving = tokio::spawn(listener.serve(async { stopped.await.unwrap_or(()) }));
    ///
    /// let mut client = StreamClient::connect(&endpoint, Framing::Line, Duration::from_secs(5)).await?;
    /// assert_eq!(client.receive_greeting().await?.unwrap(), "Hello, I am server");
    /// client.send(b"bye").await?;
    /// assert_eq!(client.receive().await?.unwrap(), "Hello, bye!");
    /// stop.send(()).unwrap();
    /// assert!(client.receive().await?.is_none());
    /// serving.await.unwrap()
    /// # }
    /// ```
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        self.serve_then(async {
            shutdown.await;
            Drain::Finish
        })
        .await
    }

    /// Serves until `shutdown` completes, then stops accepting and drains
    /// the connections open as it says: [`Drain::Finish`] as
    /// [`serve`](Self::serve) does; [`Drain::ServeOn`] serves each on until
    /// its peer closes it (another process took the listening socket over
    /// and accepts the new ones). Either way, those still open after the
    /// shutdown timeout are closed.
    ///
    /// # Errors
    ///
    /// [`Error::Cut`], as [`serve`](Self::serve).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe, as [`serve`](Self::serve).
    ///
    /// # Examples
    ///
    /// A conversation under way goes on after the listener stops:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::time::Duration;
    /// use tokio::sync::oneshot;
    /// use sockit::server::Drain;
    /// use sockit::{Framing, Greet, Server, StreamClient};
    ///
    /// let listener = Server::new(Greet).bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// let endpoint = listener.local_endpoint().clone();
    /// let (stop, stopped) = oneshot::channel::<()>();
    /// let serving = tokio::spawn(listener.serve_then(async {
    ///     stopped.await.unwrap_or(());
    ///     Drain::ServeOn
    /// }));
    ///
    /// let mut client = StreamClient::connect(&endpoint, Framing::Line, Duration::from_secs(5)).await?;
    /// assert_eq!(client.receive_greeting().await?.unwrap(), "Hello, I am server");
    /// stop.send(()).unwrap();
    /// client.send(b"still").await?;
    /// assert_eq!(client.receive().await?.unwrap(), "Hello, still!");
    /// drop(client);
    /// serving.await.unwrap()
    /// # }
    /// ```
    pub async fn serve_then(self, shutdown: impl Future<Output = Drain>) -> Result<(), Error> {
        let Listener {
            socket,
            local,
            socket_file,
            options,
            service,
            settings,
            shutdown_timeout,
            timeouts,
            permits,
            live,
            when_full,
            proxy,
            datagram,
            tls,
            tls_handshake_timeout,
            metrics,
        } = self;
        // The connections closed at the shutdown timeout.
        let mut cut = 0;
        match socket {
            Socket::Stream(listener) => {
                let tracker = TaskTracker::new();
                let stop = Stop::new(timeouts, metrics, Some(local.clone()));
                let accepting = Accepting {
                    listener,
                    options: &options,
                    service,
                    settings,
                    permits,
                    live,
                    when_full,
                    proxy,
                    tracker: &tracker,
                    stop: stop.clone(),
                    tls: tls.map(LiveTls::new),
                    tls_handshake_timeout,
                };
                let mut drain = Drain::Finish;
                // What a flood of connections left unwritten is told within
                // a second, not only with the next line.
                let telling = stop.log.tell_unwritten();
                tokio::select! {
                    () = accepting.run(async {
                        drain = shutdown.await;
                    }) => {}
                    () = telling => {}
                }
                // The lines a flood left unwritten are told before the drain's.
                stop.log.flush();
                tracker.close();
                match drain {
                    Drain::Finish => {
                        info!(listener = %local, open = tracker.len(), "stopped accepting; finishing open connections");
                        stop.finish.cancel();
                    }
                    Drain::ServeOn => {
                        info!(listener = %local, open = tracker.len(), "stopped accepting; serving the open connections until they close");
                    }
                }
                if tokio::time::timeout(shutdown_timeout, tracker.wait())
                    .await
                    .is_err()
                {
                    let open = tracker.len();
                    warn!(listener = %local, open, "shutdown timeout passed; closing the connections still open");
                    stop.abort.cancel();
                    tracker.wait().await;
                    cut = open;
                }
                stop.log.flush();
            }
            Socket::Datagram(socket) => {
                let serving = DatagramServing {
                    local: local.clone(),
                    settings,
                    timeouts,
                    permits,
                    shutdown_timeout,
                    metrics,
                    limits: datagram,
                    live,
                };
                let stop = CancellationToken::new();
                let mut served = std::pin::pin!(service.datagrams(socket, serving, stop.clone()));
                tokio::select! {
                    () = &mut served => {}
                    _ = shutdown => {
                        stop.cancel();
                        served.await;
                    }
                }
            }
        }
        drop(socket_file);
        info!(listener = %local, "stopped");
        if cut > 0 {
            return Err(Error::Cut {
                listener: local,
                connections: cut,
                timeout: shutdown_timeout,
            });
        }
        Ok(())
    }
}
