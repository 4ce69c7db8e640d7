//! What a server's listeners count, for Prometheus: connections, messages,
//! bytes, errors by kind and reply latency, each labelled with its listener
//! (`listener="tcp://127.0.0.1:8000"`), and an HTTP endpoint that serves
//! them.
//!
//! Off unless a [`Metrics`] is given to [`Server::metrics`](crate::Server::metrics);
//! then a listener counts per read and per write (one read of the clock and
//! a few relaxed atomic additions per read, or per batch of datagrams; the
//! latency histogram is one observation per read that was answered), and
//! per message only into local variables. Off, a connection does no work
//! for it beyond a test of a pointer per read, and carries no byte more: a
//! listener's counters sit behind the pointer its connections share
//! already.
//!
//! | series | what |
//! | --- | --- |
//! | `sockit_connections_open` | stream connections open now (gauge) |
//! | `sockit_connections_total` | stream connections accepted and served |
//! | `sockit_messages_received_total` | messages received whole; a datagram is one, a dropped one too |
//! | `sockit_replies_sent_total` | replies to messages handed to the system to send |
//! | `sockit_bytes_received_total` | bytes read from sockets |
//! | `sockit_bytes_sent_total` | bytes written, greetings and error replies included |
//! | `sockit_errors_total{kind}` | connections closed and datagrams dropped, by kind (below) |
//! | `sockit_reply_latency_seconds` | histogram: from the read that completed messages to the write of the last byte of their replies, one observation per read answered (per batch of datagrams) |
//!
//! Error kinds, each shown from its first occurrence: `message_too_long`,
//! `malformed` (a stream ended inside a `len32` frame), `idle_timeout`,
//! `read_timeout`, `shutdown_timeout` (closed with replies unsent),
//! `reset` (a read or write failed: the peer reset or went away),
//! `refused_full` (closed at once at the connection limit), `accept`,
//! `tls_handshake` (a TLS handshake that failed or timed out),
//! `untrusted_proxy` (closed at once: not a trusted proxy, with the PROXY
//! protocol on), `proxy_header` (no whole, valid PROXY header in time);
//! for datagrams `rate_limited`, `reply_capped`, `reply_too_large`,
//! `receive` and `send` (a reply whose send failed: it was counted as
//! sent, too).
//!
//! The format is the Prometheus project's own Rust client's
//! ([`prometheus_client`]): [`Metrics::encode`] writes the OpenMetrics text,
//! and [`Metrics::register`] adds the counters to a registry of the caller's.
//! [`Metrics::serve`] answers `GET /metrics` over HTTP/1.1 ([`hyper`]),
//! and the probes of a load balancer or an orchestrator: `GET /healthz`
//! (200 while the process runs) and `GET /readyz` (200 until its
//! [`Readiness`] says it is draining, then 503).
//!
//! # Examples
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use sockit::metrics::Metrics;
//! use sockit::{Endpoint, Greet, Server};
//!
//! let metrics = Metrics::new();
//! let endpoint: Endpoint = "tcp://127.0.0.1:8000".parse()?;
//! let listener = Server::new(Greet).metrics(&metrics).bind(&endpoint).await?;
//! let http = tokio::net::TcpListener::bind("127.0.0.1:9100").await?;
//! tokio::spawn(metrics.serve(http, std::future::pending()));
//! listener.serve(async { tokio::signal::ctrl_c().await.unwrap() }).await?;
//! # Ok(())
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::{Endpoint, Transport};

/// The upper bounds of the reply latency histogram's buckets, in
/// nanoseconds: from 10 µs (an answer written in the read's own turn) to
/// 1 s (a peer that does not read).
const LATENCY_BUCKETS: [u64; 12] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    10_000_000,
    50_000_000,
    250_000_000,
    1_000_000_000,
];

/// The content type of the Prometheus text format (version 0.0.4).
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The content type of the OpenMetrics text format, for scrapers that ask for it.
const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the probes' answers.
const PLAIN_TEXT: &str = "text/plain; charset=utf-8";

/// How long a client has to send its request headers (a scraper or a probe
/// sends them at once), and so the longest a connection waits for its next
/// request.
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest an HTTP connection to the endpoint stays open.
const HTTP_CONNECTION_LIFE: Duration = Duration::from_secs(60);
/// The most HTTP connections served at once. One more closes the one whose
/// last request began longest ago (or that never sent one), so clients that
/// open connections and never finish a request cannot keep a scrape out:
/// they are the ones closed. Each costs a socket and about 10 KiB.
const HTTP_CONNECTIONS: usize = 256;
/// The most bytes of a request hyper buffers (its smallest allowed).
const HTTP_MAX_BUFFER: usize = 8192;

/// The counters of every listener bound by the servers given them; cheap to
/// clone (the clones share the counts).
///
/// # Examples
///
/// A listener's counts after one client said `bob`:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::io::{Read, Write};
///
/// use sockit::metrics::Metrics;
/// use sockit::{Endpoint, Framing, Greet, Server};
///
/// let metrics = Metrics::new();
/// let endpoint: Endpoint = "tcp://127.0.0.1:0".parse()?;
/// let listener = Server::new(Greet).framing(Framing::Line).metrics(&metrics).bind(&endpoint).await?;
/// let label = format!("{{listener=\"{}\"}}", listener.local_endpoint());
/// let addr = listener.local_endpoint().to_string().replace("tcp://", "");
/// let stop = tokio_util::sync::CancellationToken::new();
/// let serving = tokio::spawn(listener.serve(stop.clone().cancelled_owned()));
///
/// let client = tokio::task::spawn_blocking(move || {
///     let mut stream = std::net::TcpStream::connect(addr).unwrap();
///     stream.write_all(b"bob\nexit\n").unwrap();
///     let mut all = Vec::new();
///     stream.read_to_end(&mut all).unwrap();
///     all
/// });
/// assert_eq!(client.await?, b"Hello, I am server\nHello, bob!\n");
/// stop.cancel();
/// serving.await??;
///
/// let text = metrics.encode();
/// assert!(text.contains(&format!("sockit_connections_total{label} 1\n")));
/// assert!(text.contains(&format!("sockit_messages_received_total{label} 2\n")));
/// assert!(text.contains(&format!("sockit_replies_sent_total{label} 1\n")));
/// assert!(text.contains(&format!("sockit_bytes_sent_total{label} 31\n")));
/// assert!(text.ends_with("# EOF\n"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Metrics {
    families: Families,
    registry: Arc<Registry>,
    readiness: Readiness,
}

/// Whether the process takes new work, as `GET /readyz` on the metrics
/// endpoint says: ready from the start, draining from
/// [`set_draining`](Readiness::set_draining) on (for good). Cheap to clone
/// (the clones share the state).
///
/// A load balancer or an orchestrator that probes `/readyz` stops sending
/// new peers once it answers 503, while `/healthz` still answers 200: the
/// process is stopping on purpose and is not to be restarted.
///
/// # Examples
///
/// ```
/// use sockit::metrics::Metrics;
///
/// let metrics = Metrics::new();
/// let readiness = metrics.readiness().clone();
/// assert!(readiness.is_ready());
/// // Where the process is told to stop, before its connections drain:
/// readiness.set_draining();
/// assert!(!metrics.readiness().is_ready());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    draining: Arc<AtomicBool>,
}

impl Readiness {
    /// Ready.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(sockit::metrics::Readiness::new().is_ready());
    /// ```
    pub fn new() -> Self {
        Readiness::default()
    }

    /// From now on, not ready: the process drains what it has and takes
    /// nothing new (it was told to stop, or hands its listeners over).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::metrics::Readiness;
    ///
    /// let readiness = Readiness::new();
    /// readiness.set_draining();
    /// assert!(!readiness.is_ready());
    /// ```
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether the process takes new work: until [`set_draining`](Readiness::set_draining).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::metrics::Readiness;
    ///
    /// let readiness = Readiness::new();
    /// let shared = readiness.clone();
    /// shared.set_draining();
    /// assert!(!readiness.is_ready());
    /// ```
    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Acquire)
    }
}

/// The metric families, each holding one series per listener.
#[derive(Clone, Debug)]
struct Families {
    connections_open: Family<ListenerLabel, Gauge>,
    connections: Family<ListenerLabel, Counter>,
    messages_received: Family<ListenerLabel, Counter>,
    replies_sent: Family<ListenerLabel, Counter>,
    bytes_received: Family<ListenerLabel, Counter>,
    bytes_sent: Family<ListenerLabel, Counter>,
    errors: Family<ErrorLabels, Counter>,
    reply_latency: Family<ListenerLabel, Latency>,
}

/// The label of every series: which listener.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: String,
}

/// The labels of an error's series: which listener, which kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    listener: String,
    kind: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// No listener counted yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::metrics::Metrics;
    ///
    /// // No series yet, and a family without series is left out.
    /// assert_eq!(Metrics::new().encode(), "# EOF\n");
    /// ```
    pub fn new() -> Self {
        let families = Families {
            connections_open: Family::default(),
            connections: Family::default(),
            messages_received: Family::default(),
            replies_sent: Family::default(),
            bytes_received: Family::default(),
            bytes_sent: Family::default(),
            errors: Family::default(),
            reply_latency: Family::default(),
        };
        let mut registry = Registry::default();
        families.register(&mut registry);
        Metrics {
            families,
            registry: Arc::new(registry),
            readiness: Readiness::new(),
        }
    }

    /// What [`serve`](Metrics::serve) answers at `GET /readyz`, shared with
    /// every clone of these metrics: clone it to flip it where the process
    /// is told to stop.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::metrics::Metrics;
    ///
    /// let metrics = Metrics::new();
    /// let clone = metrics.clone();
    /// metrics.readiness().set_draining();
    /// assert!(!clone.readiness().is_ready());
    /// ```
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// Adds these counters to `registry`, to be served with the caller's
    /// own. Their names start with `sockit_`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use prometheus_client::registry::Registry;
    /// use sockit::metrics::Metrics;
    /// use sockit::{Echo, Endpoint, Server};
    ///
    /// let mut registry = Registry::default();
    /// let metrics = Metrics::new();
    /// metrics.register(&mut registry);
    /// // A listener's series start at zero when it is bound.
    /// let endpoint: Endpoint = "udp://127.0.0.1:0".parse()?;
    /// let listener = Server::new(Echo).metrics(&metrics).bind(&endpoint).await?;
    /// let mut text = String::new();
    /// prometheus_client::encoding::text::encode(&mut text, &registry)?;
    /// let label = format!("{{listener=\"{}\"}}", listener.local_endpoint());
    /// assert!(text.contains(&format!("sockit_messages_received_total{label} 0\n")));
    /// # Ok(())
    /// # }
    /// ```
    pub fn register(&self, registry: &mut Registry) {
        self.families.register(registry);
    }

    /// Every series in the OpenMetrics text format, ending in `# EOF`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use sockit::metrics::Metrics;
    /// use sockit::{Echo, Server};
    ///
    /// let metrics = Metrics::new();
    /// let listener = Server::new(Echo).metrics(&metrics).bind(&"udp://127.0.0.1:0".parse()?).await?;
    /// let text = metrics.encode();
    /// let label = format!("{{listener=\"{}\"}}", listener.local_endpoint());
    /// assert!(text.contains(&format!("sockit_bytes_received_total{label} 0\n")));
    /// assert!(text.ends_with("# EOF\n"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String does not fail");
        text
    }

    /// The counters of the listener bound at `listener`, created at zero
    /// (a datagram listener has no connections to count, and no series
    /// for them).
    pub(crate) fn listener(&self, listener: &Endpoint) -> ListenerMetrics {
        let label = ListenerLabel {
            listener: listener.to_string(),
        };
        let families = &self.families;
        let connected = listener.transport() != Transport::Datagram;
        ListenerMetrics {
            open: if connected {
                families.connections_open.get_or_create_owned(&label)
            } else {
                Gauge::default()
            },
            connections: if connected {
                families.connections.get_or_create_owned(&label)
            } else {
                Counter::default()
            },
            messages_received: families.messages_received.get_or_create_owned(&label),
            replies_sent: families.replies_sent.get_or_create_owned(&label),
            bytes_received: families.bytes_received.get_or_create_owned(&label),
            bytes_sent: families.bytes_sent.get_or_create_owned(&label),
            reply_latency: families.reply_latency.get_or_create_owned(&label),
            errors: families.errors.clone(),
            error_series: Default::default(),
            label: label.listener,
        }
    }

    /// Answers HTTP/1.1 on `listener` until `shutdown` completes:
    ///
    /// - `GET /metrics`: the Prometheus text format (version 0.0.4), or
    ///   OpenMetrics when the scraper's `Accept` asks for it;
    /// - `GET /healthz`: `200 OK`, `ok`, while the process runs;
    /// - `GET /readyz`: `200 OK`, `ready`, until [`Readiness::set_draining`]
    ///   on [`readiness`](Metrics::readiness), then `503 Service
    ///   Unavailable`, `draining`.
    ///
    /// `HEAD` too; any other path is a 404, any other method a 405.
    ///
    /// Clients that connect and never finish a request cannot keep a scrape
    /// or a probe out: 256 connections are served at once, each for a
    /// minute at most and given 2 seconds for each request's headers, and
    /// one more closes the connection whose last request began longest ago
    /// (or that never sent one) instead of waiting for a place. Failures are
    /// logged at debug level and never touch the listeners that are counted.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it stops accepting; scrapes under way finish.
    ///
    /// # Examples
    ///
    /// Scraped once, then stopped:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// use tokio::net::{TcpListener, TcpStream};
    /// use tokio::sync::oneshot;
    /// use sockit::metrics::Metrics;
    /// use sockit::{Echo, Server};
    ///
    /// let metrics = Metrics::new();
    /// let counted = Server::new(Echo).metrics(&metrics).bind(&"tcp://127.0.0.1:0".parse()?).await?;
    /// let http = TcpListener::bind("127.0.0.1:0").await?;
    /// let addr = http.local_addr()?;
    /// let (stop, stopped) = oneshot::channel::<()>();
    /// let serving = tokio::spawn(metrics.clone().serve(http, async { stopped.await.unwrap_or(()) }));
    ///
    /// let mut scrape = TcpStream::connect(addr).await?;
    /// scrape.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
    /// let mut response = String::new();
    /// scrape.read_to_string(&mut response).await?;
    /// assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
    /// let label = format!("{{listener=\"{}\"}}", counted.local_endpoint());
    /// assert!(response.contains(&format!("\nsockit_connections_open{label} 0\n")));
    ///
    /// // Draining: /readyz says so, for a load balancer to stop sending peers.
    /// metrics.readiness().set_draining();
    /// let mut probe = TcpStream::connect(addr).await?;
    /// probe.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
    /// let mut response = String::new();
    /// probe.read_to_string(&mut response).await?;
    /// assert!(response.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    /// assert!(response.ends_with("\r\n\r\ndraining\n"));
    ///
    /// stop.send(()).unwrap();
    /// serving.await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let open = Arc::new(Mutex::new(Open::default()));
        loop {
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (id, evicted) = Open::lock(&open).admit();
            let leaving = Leaving {
                open: Arc::clone(&open),
                id,
            };
            let metrics = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request| {
                    Open::lock(&leaving.open).touch(leaving.id);
                    std::future::ready(Ok::<_, Infallible>(metrics.answer(&request)))
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(HTTP_MAX_BUFFER)
                    .serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    biased;
                    () = evicted.notified() => {
                        debug!(%peer, "metrics endpoint: connection closed for a newer one (all {HTTP_CONNECTIONS} taken)");
                    }
                    served = tokio::time::timeout(HTTP_CONNECTION_LIFE, connection) => match served {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => debug!(%peer, %error, "metrics endpoint: connection failed"),
                        Err(_) => debug!(%peer, "metrics endpoint: connection closed after a minute"),
                    },
                }
            });
        }
    }

    /// The response to one HTTP request.
    fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let respond = |status: StatusCode, body: String| {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = status;
            response
        };
        let path = request.uri().path();
        if !matches!(path, "/metrics" | "/healthz" | "/readyz") {
            return respond(
                StatusCode::NOT_FOUND,
                "not found: the metrics are at /metrics, the probes at /healthz and /readyz\n".into(),
            );
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response = respond(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n".into());
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let (status, body, content_type) = match path {
            "/healthz" => (StatusCode::OK, "ok\n".to_owned(), PLAIN_TEXT),
            "/readyz" if self.readiness.is_ready() => (StatusCode::OK, "ready\n".to_owned(), PLAIN_TEXT),
            "/readyz" => (
                StatusCode::SERVICE_UNAVAILABLE,
                "draining\n".to_owned(),
                PLAIN_TEXT,
            ),
            _ => {
                let openmetrics = request
                    .headers()
                    .get_all(ACCEPT)
                    .iter()
                    .filter_map(|accept| accept.to_str().ok())
                    .any(|accept| accept.contains("application/openmetrics-text"));
                if openmetrics {
                    (StatusCode::OK, self.encode(), OPENMETRICS_TEXT)
                } else {
                    (StatusCode::OK, prometheus_text(&self.encode()), PROMETHEUS_TEXT)
                }
            }
        };
        let mut response = respond(status, body);
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }
}

/// The connections the metrics endpoint serves, each with when its last
/// request began, so that the one to close for a new one is known.
#[derive(Debug, Default)]
struct Open {
    /// By id: the tick of the connection's last request (its accept until
    /// it sends one), and how to close it.
    connections: HashMap<u64, (u64, Arc<Notify>)>,
    /// Counts accepts and requests: a connection's id is its accept's tick.
    ticks: u64,
}

impl Open {
    fn lock(open: &Mutex<Open>) -> std::sync::MutexGuard<'_, Open> {
        open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn tick(&mut self) -> u64 {
        self.ticks += 1;
        self.ticks
    }

    /// A new connection's id, and what tells it to close. With every place
    /// taken, the connection whose last request began longest ago is told
    /// to close first: a new scrape never waits behind clients that do not
    /// send a whole request.
    fn admit(&mut self) -> (u64, Arc<Notify>) {
        if self.connections.len() >= HTTP_CONNECTIONS {
            let oldest = self.connections.iter().min_by_key(|(_, (last, _))| *last);
            if let Some(oldest) = oldest.map(|(id, _)| *id)
                && let Some((_, evict)) = self.connections.remove(&oldest)
            {
                evict.notify_one();
            }
        }
        let id = self.tick();
        let evict = Arc::new(Notify::new());
        self.connections.insert(id, (id, Arc::clone(&evict)));
        (id, evict)
    }

    /// Connection `id` began a request.
    fn touch(&mut self, id: u64) {
        let tick = self.tick();
        if let Some((last, _)) = self.connections.get_mut(&id) {
            *last = tick;
        }
    }
}

/// Takes a connection out of [`Open`] when its task ends, however it ends.
struct Leaving {
    open: Arc<Mutex<Open>>,
    id: u64,
}

impl Drop for Leaving {
    fn drop(&mut self) {
        Open::lock(&self.open).connections.remove(&self.id);
    }
}

impl Families {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "sockit_connections_open",
            "Stream connections open now",
            self.connections_open.clone(),
        );
        registry.register(
            "sockit_connections",
            "Stream connections accepted and served",
            self.connections.clone(),
        );
        registry.register(
            "sockit_messages_received",
            "Messages received whole (a datagram is one)",
            self.messages_received.clone(),
        );
        registry.register(
            "sockit_replies_sent",
            "Replies to messages handed to the system to send (greetings and error replies not included)",
            self.replies_sent.clone(),
        );
        registry.register(
            "sockit_bytes_received",
            "Bytes received, as read from the socket",
            self.bytes_received.clone(),
        );
        registry.register(
            "sockit_bytes_sent",
            "Bytes sent, greetings and error replies included",
            self.bytes_sent.clone(),
        );
        registry.register(
            "sockit_errors",
            "Connections closed and datagrams dropped for an error, by kind",
            self.errors.clone(),
        );
        registry.register_with_unit(
            "sockit_reply_latency",
            "From the read that completed messages to the write of their replies, once per read",
            Unit::Seconds,
            self.reply_latency.clone(),
        );
    }
}

/// The OpenMetrics text as the Prometheus text format (0.0.4) has it: a
/// counter's `# HELP` and `# TYPE` name its series (`x_total`), and there is
/// no `# UNIT` or `# EOF`.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let described = ["# HELP ", "# TYPE "].into_iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        text.push_str(described.as_deref().unwrap_or(line));
        text.push('\n');
    }
    text
}

/// A histogram of reply latencies in [`LATENCY_BUCKETS`], observed with two
/// relaxed atomic additions: [`prometheus_client`]'s own takes a lock per
/// observation, which every worker thread would contend for once per read.
/// A scrape may see an observation in its bucket and not yet in the sum.
#[derive(Debug, Clone, Default)]
struct Latency(Arc<LatencyCounts>);

#[derive(Debug, Default)]
struct LatencyCounts {
    /// Observations per bucket (not cumulative), the last one past every bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// The sum of the observations, in nanoseconds.
    sum: AtomicU64,
}

impl Latency {
    fn observe(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKETS.partition_point(|bound| *bound < nanos);
        self.0.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.0.sum.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let bounds = LATENCY_BUCKETS
            .iter()
            .map(|nanos| Duration::from_nanos(*nanos).as_secs_f64())
            .chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds
            .zip(&self.0.buckets)
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, count)| count).sum();
        let sum = Duration::from_nanos(self.0.sum.load(Ordering::Relaxed)).as_secs_f64();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Why a listener failed a connection or dropped a datagram: the `kind`
/// label of `sockit_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// A message longer than the limit: its connection closed, or the
    /// datagram dropped.
    MessageTooLong,
    /// A stream that ended inside a `len32` frame.
    Malformed,
    /// Closed at the idle timeout.
    IdleTimeout,
    /// Closed at the read timeout.
    ReadTimeout,
    /// Closed at the shutdown timeout with replies unsent.
    ShutdownTimeout,
    /// The peer reset the connection (or it broke otherwise while reading or writing).
    Reset,
    /// Closed at once: every connection permit was taken (`--when-full refuse`).
    RefusedFull,
    /// An accept that failed.
    Accept,
    /// A TLS handshake that failed or timed out.
    TlsHandshake,
    /// A peer closed at once: not a trusted proxy, with the PROXY protocol on.
    UntrustedProxy,
    /// A trusted proxy's connection closed without a whole, valid PROXY
    /// header within the header timeout.
    ProxyHeader,
    /// A datagram past its source's rate limit.
    RateLimited,
    /// A datagram reply past the reply cap (not sent).
    ReplyCapped,
    /// A datagram reply too large for one datagram (not sent).
    ReplyTooLarge,
    /// A datagram receive that failed.
    Receive,
    /// A datagram reply whose send failed.
    Send,
    /// A handler's connection closed for falling behind what it was sent.
    FellBehind,
}

impl ErrorKind {
    const ALL: [ErrorKind; 17] = [
        ErrorKind::MessageTooLong,
        ErrorKind::Malformed,
        ErrorKind::IdleTimeout,
        ErrorKind::ReadTimeout,
        ErrorKind::ShutdownTimeout,
        ErrorKind::Reset,
        ErrorKind::RefusedFull,
        ErrorKind::Accept,
        ErrorKind::TlsHandshake,
        ErrorKind::UntrustedProxy,
        ErrorKind::ProxyHeader,
        ErrorKind::RateLimited,
        ErrorKind::ReplyCapped,
        ErrorKind::ReplyTooLarge,
        ErrorKind::Receive,
        ErrorKind::Send,
        ErrorKind::FellBehind,
    ];

    /// The label value.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ErrorKind::MessageTooLong => "message_too_long",
            ErrorKind::Malformed => "malformed",
            ErrorKind::IdleTimeout => "idle_timeout",
            ErrorKind::ReadTimeout => "read_timeout",
            ErrorKind::ShutdownTimeout => "shutdown_timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::RefusedFull => "refused_full",
            ErrorKind::Accept => "accept",
            ErrorKind::TlsHandshake => "tls_handshake",
            ErrorKind::UntrustedProxy => "untrusted_proxy",
            ErrorKind::ProxyHeader => "proxy_header",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::ReplyCapped => "reply_capped",
            ErrorKind::ReplyTooLarge => "reply_too_large",
            ErrorKind::Receive => "receive",
            ErrorKind::Send => "send",
            ErrorKind::FellBehind => "fell_behind",
        }
    }

    /// The kind of an I/O error that ended a connection: the shutdown
    /// timeout's, or the peer's.
    pub(crate) fn of_io(error: &io::Error) -> ErrorKind {
        if error.kind() == io::ErrorKind::TimedOut {
            ErrorKind::ShutdownTimeout
        } else {
            ErrorKind::Reset
        }
    }
}

/// One listener's series, resolved once at bind so that counting is an
/// atomic addition. Shared by the listener's connections behind the
/// pointer they hold already.
#[derive(Debug)]
pub(crate) struct ListenerMetrics {
    open: Gauge,
    connections: Counter,
    messages_received: Counter,
    replies_sent: Counter,
    bytes_received: Counter,
    bytes_sent: Counter,
    reply_latency: Latency,
    errors: Family<ErrorLabels, Counter>,
    /// The error series of this listener, each made at its first error so
    /// that only kinds that happened are shown.
    error_series: [OnceLock<Counter>; ErrorKind::ALL.len()],
    label: String,
}

/// What one read (or one batch of datagrams) brought, counted without
/// atomics while it is answered.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tally {
    /// Messages received whole.
    pub messages: u64,
    /// Replies the service gave them.
    pub replies: u64,
}

impl ListenerMetrics {
    /// A stream connection was accepted and is served.
    pub(crate) fn opened(&self) {
        self.connections.inc();
        self.open.inc();
    }

    /// A stream connection closed.
    pub(crate) fn closed(&self) {
        self.open.dec();
    }

    /// `bytes` were read, completing `tally`'s messages.
    pub(crate) fn received(&self, bytes: usize, tally: Tally) {
        self.bytes_received.inc_by(bytes as u64);
        if tally.messages > 0 {
            self.messages_received.inc_by(tally.messages);
        }
        if tally.replies > 0 {
            self.replies_sent.inc_by(tally.replies);
        }
    }

    /// `bytes` were written.
    pub(crate) fn sent(&self, bytes: usize) {
        if bytes > 0 {
            self.bytes_sent.inc_by(bytes as u64);
        }
    }

    /// The replies to what was read at `read` are all written.
    pub(crate) fn replied(&self, read: Instant) {
        self.reply_latency.observe(read.elapsed());
    }

    /// `count` errors of `kind`.
    pub(crate) fn errors(&self, kind: ErrorKind, count: u64) {
        if count == 0 {
            return;
        }
        let index = ErrorKind::ALL
            .iter()
            .position(|k| *k == kind)
            .expect("every kind is in ALL");
        self.error_series[index]
            .get_or_init(|| {
                self.errors.get_or_create_owned(&ErrorLabels {
                    listener: self.label.clone(),
                    kind: kind.name(),
                })
            })
            .inc_by(count);
    }

    /// One error of `kind`.
    pub(crate) fn error(&self, kind: ErrorKind) {
        self.errors(kind, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_s_counts_encode_in_the_openmetrics_text_format() {
        let metrics = Metrics::new();
        let tcp = metrics.listener(&"tcp://127.0.0.1:8000".parse().unwrap());
        let udp = metrics.listener(&"udp://127.0.0.1:9000".parse().unwrap());
        tcp.opened();
        tcp.opened();
        tcp.closed();
        tcp.received(
            12,
            Tally {
                messages: 2,
                replies: 2,
            },
        );
        tcp.sent(30);
        tcp.error(ErrorKind::MessageTooLong);
        udp.errors(ErrorKind::RateLimited, 3);
        udp.errors(ErrorKind::ReplyCapped, 0);
        tcp.reply_latency.observe(Duration::from_micros(20));
        tcp.reply_latency.observe(Duration::from_micros(25));
        tcp.reply_latency.observe(Duration::from_secs(2));
        let text = metrics.encode();
        for line in [
            "# HELP sockit_connections Stream connections accepted and served.",
            "# TYPE sockit_connections counter",
            r#"sockit_connections_total{listener="tcp://127.0.0.1:8000"} 2"#,
            r#"sockit_connections_open{listener="tcp://127.0.0.1:8000"} 1"#,
            r#"sockit_messages_received_total{listener="tcp://127.0.0.1:8000"} 2"#,
            r#"sockit_replies_sent_total{listener="tcp://127.0.0.1:8000"} 2"#,
            r#"sockit_bytes_received_total{listener="tcp://127.0.0.1:8000"} 12"#,
            r#"sockit_bytes_sent_total{listener="tcp://127.0.0.1:8000"} 30"#,
            r#"sockit_errors_total{listener="tcp://127.0.0.1:8000",kind="message_too_long"} 1"#,
            r#"sockit_errors_total{listener="udp://127.0.0.1:9000",kind="rate_limited"} 3"#,
            "# TYPE sockit_reply_latency_seconds histogram",
            "# UNIT sockit_reply_latency_seconds seconds",
            r#"sockit_reply_latency_seconds_count{listener="tcp://127.0.0.1:8000"} 3"#,
            r#"sockit_reply_latency_seconds_sum{listener="tcp://127.0.0.1:8000"} 2.000045"#,
            r#"sockit_reply_latency_seconds_bucket{le="0.00001",listener="tcp://127.0.0.1:8000"} 0"#,
            // A bound's own value is in its bucket (le: less or equal).
            r#"sockit_reply_latency_seconds_bucket{le="0.000025",listener="tcp://127.0.0.1:8000"} 2"#,
            r#"sockit_reply_latency_seconds_bucket{le="1.0",listener="tcp://127.0.0.1:8000"} 2"#,
            r#"sockit_reply_latency_seconds_bucket{le="+Inf",listener="tcp://127.0.0.1:8000"} 3"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
        }
        // A kind that never happened has no series; a datagram listener
        // has no connections.
        assert!(!text.contains("reply_capped"), "{text}");
        assert!(
            !text.contains(r#"sockit_connections_total{listener="udp"#),
            "{text}"
        );
        assert!(
            !text.contains(r#"sockit_connections_open{listener="udp"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[tokio::test]
    async fn a_connection_past_the_limit_closes_the_one_whose_last_request_is_oldest() {
        let mut open = Open::default();
        let admitted: Vec<(u64, Arc<Notify>)> = (0..HTTP_CONNECTIONS).map(|_| open.admit()).collect();
        // The first began a request since: the second is now the oldest.
        open.touch(admitted[0].0);
        let newest = open.admit();
        assert_eq!(open.connections.len(), HTTP_CONNECTIONS);
        assert!(!open.connections.contains_key(&admitted[1].0));
        assert!(open.connections.contains_key(&admitted[0].0));
        assert!(open.connections.contains_key(&newest.0));
        // Told to close, though it was not waiting yet; the others were not.
        tokio::time::timeout(Duration::from_secs(5), admitted[1].1.notified())
            .await
            .expect("the second was told to close");
        let told = ready_at_once(admitted[0].1.notified());
        assert!(!told, "the first was told to close");
    }

    /// Whether `future` is ready at its first poll.
    fn ready_at_once(future: impl Future<Output = ()>) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        std::pin::pin!(future).poll(&mut cx).is_ready()
    }

    #[test]
    fn the_prometheus_text_names_counters_by_their_series() {
        let openmetrics = "# HELP a_b Things.\n# TYPE a_b counter\n# UNIT c seconds\n\
                           a_b_total{x=\"1\"} 3\n# HELP g G.\n# TYPE g gauge\ng 1\n# EOF\n";
        assert_eq!(
            prometheus_text(openmetrics),
            "# HELP a_b_total Things.\n# TYPE a_b_total counter\n\
             a_b_total{x=\"1\"} 3\n# HELP g G.\n# TYPE g gauge\ng 1\n"
        );
    }
}
