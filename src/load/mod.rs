//! The load generator behind `sockit bench`: many connections on one thread's
//! event loop, every reply checked byte for byte, latencies in an HDR histogram.
//!
//! A pure core with a thin I/O shell:
//!
//! | module | role |
//! | --- | --- |
//! | `message` | pure: requests ([`Messages`]) that carry their connection and sequence number ([`Id`]); the exact reply each service owes |
//! | `schedule` | pure: when each request is due at a fixed rate (open loop): [`Schedule`] |
//! | `stats` | pure: counts, errors by kind and the latency histogram ([`Tally`]), [`Percentiles`] |
//! | `report` | pure: the [`Report`] as a summary for people, JSON for machines, an SVG percentile plot |
//! | `run` | I/O: connects, runs one task per connection on a current-thread event loop, publishes [`Progress`] |
//! | `stream` | I/O: one TCP or Unix stream connection: framed requests written in one write, replies decoded in order |
//! | `packet` | I/O: one UDP, Unix datagram or seqpacket socket: a window of packets, replies matched by id, losses timed out |
//! | `pacer` | I/O: a `timerfd` that wakes a connection at its fixed-rate send times, to the nanosecond |
//!
//! # How load is made
//!
//! - **Closed loop** (the default): each connection keeps `pipeline` requests
//!   in flight and sends the next one when a reply comes; latency runs from
//!   the send.
//! - **Open loop** ([`Bench::rate`]): requests are due at fixed intervals
//!   whatever the server does ([`Schedule`]); at most `pipeline` are in
//!   flight per connection, and one that waits for room is late, not
//!   skipped. Latency runs from the *intended* send time, so a server that
//!   falls behind shows its backlog as latency, not as a lower rate
//!   (no coordinated omission).
//! - **Warmup** ([`Bench::warmup`]): load whose replies are checked but not
//!   measured (errors in it are still counted).
//!
//! # Checking replies
//!
//! Every reply is compared byte for byte with what its request was owed
//! ([`Messages::is_reply`]). On a stream (and a seqpacket connection) replies
//! come in order; a datagram reply is matched to its request by the [`Id`] it
//! carries. A wrong, unmatched or duplicate reply counts as `wrong`; a
//! request without a reply within the timeout counts as `missing`; a stream
//! whose oldest request waited past the timeout counts as a `timeout` and is
//! closed; a connection that fails counts under the kind of its I/O error.
//! A connection that fails or stalls is not reopened.
//!
//! # The JSON report
//!
//! [`Report::to_json`] writes one object; its field names are stable:
//!
//! ```json
//! {
//!   "endpoint": "tcp://127.0.0.1:7000",  "service": "echo",
//!   "framing": "line",          // null for datagrams and seqpacket
//!   "connections": 50,          // asked for
//!   "connected": 50,            // that connected
//!   "pipeline": 16,  "size": 64,
//!   "rate": null,               // requests a second asked for (open loop), or null
//!   "warmup_s": 1.0,
//!   "duration_s": 5.0003,       // the measured time: after the warmup, to the last reply
//!   "requests": 6000000,        // measured requests sent (open loop: due)
//!   "replies": 6000000,         // correct replies to them
//!   "warmup_replies": 1190000,  // correct replies to warmup requests (not measured)
//!   "errors": { "total": 0, "wrong": 0, "missing": 0, "timeouts": 0,
//!               "connections": {} },  // failed connections by io::ErrorKind: { "ConnectionReset": 2 }
//!   "msgs_per_s": 1199928.0,    // correct replies a second
//!   "bytes_sent": 390000000,  "bytes_received": 390000000,  // wire bytes, framing included
//!   "sent_bytes_per_s": 77990640.0,  "received_bytes_per_s": 77990640.0,
//!   "latency_from": "send",     // or "schedule" (open loop: the intended send time)
//!   "latency_us": { "min": 12.1, "mean": 640.2, "p50": 610.3, "p90": 802.8,
//!                   "p99": 1102.8, "p99_9": 1500.2, "max": 4030.4 }  // null without replies
//! }
//! ```
//!
//! # Examples
//!
//! A thousand requests, sixteen in flight on each of two connections, to an
//! echo server on loopback:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use sockit::load::{Bench, Length, Live};
//! use sockit::{Builtin, Echo, Framing, Server};
//!
//! let server = Server::new(Echo).framing(Framing::Line).bind(&"tcp://127.0.0.1:0".parse()?).await?;
//! let bench = Bench::new(server.local_endpoint().clone())
//!     .service(Builtin::Echo)
//!     .framing(Framing::Line)
//!     .connections(2)
//!     .pipeline(16)
//!     .length(Length::Requests(1000));
//! tokio::spawn(server.serve(std::future::pending()));
//!
//! let report = bench.run(&Live::default()).await?;
//! assert!(report.is_ok(), "{}", report.summary());
//! assert_eq!((report.tally().requests, report.tally().replies), (1000, 1000));
//! assert_eq!(report.tally().bytes_sent, 1000 * 65); // 64 bytes and a newline each
//! # Ok(())
//! # }
//! ```

mod message;
mod pacer;
mod packet;
mod report;
mod run;
mod schedule;
mod stats;
mod stream;

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

pub use message::{ID_LEN, Id, MAX_CONNECTIONS, Messages};
pub use report::Report;
pub use schedule::{ConnSchedule, Schedule};
pub use stats::{ConnectionErrors, Percentiles, Tally};

use crate::net::SocketOptions;
use crate::{Builtin, Endpoint, Framing, Transport};

/// How long a run lasts.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sockit::load::{Bench, Length};
///
/// let endpoint = "tcp://127.0.0.1:7000".parse()?;
/// let timed = Bench::new(endpoint).length(Length::Duration(Duration::from_secs(5)));
/// assert!(timed.check().is_ok());
/// let nothing = timed.length(Length::Requests(0));
/// assert!(nothing.check().is_err());
/// # Ok::<(), sockit::EndpointError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// Send for this long after the warmup.
    Duration(Duration),
    /// Send this many requests in all after the warmup.
    Requests(u64),
}

/// A load to put on an endpoint: what to send, how much and how fast.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use sockit::load::{Bench, Length, Live};
/// use sockit::{Builtin, Framing};
///
/// let bench = Bench::new("tcp://127.0.0.1:7000".parse()?)
///     .service(Builtin::Echo)
///     .framing(Framing::Line)
///     .connections(50)
///     .pipeline(16)
///     .length(Length::Duration(Duration::from_secs(5)));
/// let report = bench.run(&Live::default()).await?;
/// println!("{}", report.summary());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Bench {
    endpoint: Endpoint,
    service: Builtin,
    framing: Framing,
    connections: usize,
    length: Length,
    size: usize,
    pipeline: usize,
    rate: Option<f64>,
    warmup: Duration,
    timeout: Duration,
    options: SocketOptions,
    tls: Option<crate::net::tls::ClientTls>,
}

impl Bench {
    /// The default load on `endpoint`: the greet service, `auto` framing, 50
    /// connections with one 64-byte request in flight each, for 10 s, no
    /// warmup, a 1 s timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::Bench;
    /// use sockit::net::SocketOptions;
    /// use sockit::{Builtin, Framing};
    ///
    /// let bench = Bench::new("udp://127.0.0.1:9000".parse()?)
    ///     .service(Builtin::Greet)
    ///     .connections(8)
    ///     .size(100)
    ///     .pipeline(32)
    ///     .rate(Some(10_000.0))
    ///     .warmup(Duration::from_secs(1))
    ///     .timeout(Duration::from_millis(200))
    ///     .options(SocketOptions::default().recv_buffer(1 << 20))
    ///     .framing(Framing::Line); // not used: a datagram is a message
    /// assert_eq!(bench.stream_framing(), None);
    /// assert!(bench.check().is_ok());
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn new(endpoint: Endpoint) -> Self {
        Bench {
            endpoint,
            service: Builtin::Greet,
            framing: Framing::Auto,
            connections: 50,
            length: Length::Duration(Duration::from_secs(10)),
            size: 64,
            pipeline: 1,
            rate: None,
            warmup: Duration::ZERO,
            timeout: Duration::from_secs(1),
            options: SocketOptions::default(),
            tls: None,
        }
    }

    /// The service the server speaks: greet or echo.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::Builtin;
    /// use sockit::load::Bench;
    ///
    /// let bench = Bench::new("tcp://127.0.0.1:7000".parse()?).service(Builtin::Discard);
    /// assert!(bench.check().unwrap_err().to_string().starts_with("the discard service sends no replies"));
    /// assert!(bench.service(Builtin::Echo).check().is_ok());
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    #[must_use]
    pub fn service(mut self, service: Builtin) -> Self {
        self.service = service;
        self
    }

    /// How stream messages are framed; the server must use the same (or
    /// `auto`, which understands lines). `auto` and `raw` send bare
    /// messages and allow one in flight per connection.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::Framing;
    /// use sockit::load::Bench;
    ///
    /// let bench = Bench::new("unix:@app".parse()?).framing(Framing::Len32);
    /// assert_eq!(bench.stream_framing(), Some(Framing::Len32));
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    #[must_use]
    pub fn framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// How many connections (datagram sockets) to open.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::Bench;
    ///
    /// let none = Bench::new("tcp://127.0.0.1:7000".parse()?).connections(0);
    /// assert!(none.check().unwrap_err().to_string().starts_with("0 connections: use 1 to "));
    /// assert!(none.connections(1).check().is_ok());
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    #[must_use]
    pub fn connections(mut self, connections: usize) -> Self {
        self.connections = connections;
        self
    }

    /// How long to send for, or how many requests to send (see
    /// [`Bench::run`] for a run of 400 requests).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::{Bench, Length};
    ///
    /// let bench = Bench::new("udp://127.0.0.1:9000".parse()?).length(Length::Requests(1000));
    /// assert!(bench.check().is_ok());
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    #[must_use]
    pub fn length(mut self, length: Length) -> Self {
        self.length = length;
        self
    }

    /// The size of every request in bytes, framing not included; at least [`ID_LEN`].
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::{Bench, ID_LEN};
    ///
    /// let bench = Bench::new("tcp://127.0.0.1:7000".parse()?);
    /// assert!(bench.clone().size(ID_LEN).check().is_ok());
    /// assert!(bench.size(ID_LEN - 1).check().is_err());
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    #[must_use]
    pub fn size(mut self, size: usize) -> Self {
        self.size = size;
        self
    }

    /// How many requests each connection keeps in flight.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::Framing;
    /// use sockit::load::Bench;
    ///
    /// let bench = Bench::new("tcp://127.0.0.1:7000".parse()?).pipeline(16);
    /// assert!(bench.clone().framing(Framing::Line).check().is_ok());
    /// assert!(bench.framing(Framing::Raw).check().is_err()); // bare messages: one at a time
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    #[must_use]
    pub fn pipeline(mut self, pipeline: usize) -> Self {
        self.pipeline = pipeline;
        self
    }

    /// Sends at a fixed rate, in requests a second across all connections
    /// (open loop), instead of as fast as replies come (closed loop).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::Bench;
    ///
    /// let bench = Bench::new("udp://127.0.0.1:9000".parse()?);
    /// assert!(bench.clone().rate(Some(5000.0)).check().is_ok());
    /// assert!(bench.rate(Some(0.0)).check().is_err());
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    #[must_use]
    pub fn rate(mut self, rate: Option<f64>) -> Self {
        self.rate = rate;
        self
    }

    /// Runs load for this long first, unmeasured.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::Bench;
    ///
    /// let bench = Bench::new("tcp://127.0.0.1:7000".parse()?).warmup(Duration::from_secs(2));
    /// assert!(bench.check().is_ok());
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    #[must_use]
    pub fn warmup(mut self, warmup: Duration) -> Self {
        self.warmup = warmup;
        self
    }

    /// How long to wait to connect, and for each reply.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::Bench;
    ///
    /// let bench = Bench::new("tcp://127.0.0.1:7000".parse()?);
    /// assert!(bench.clone().timeout(Duration::from_millis(100)).check().is_ok());
    /// assert!(bench.timeout(Duration::ZERO).check().is_err());
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Socket options for the connections (those that apply to the endpoint).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::Bench;
    /// use sockit::net::SocketOptions;
    ///
    /// let options = SocketOptions::default().nodelay(true);
    /// let bench = Bench::new("tcp://127.0.0.1:7000".parse()?).options(options);
    /// assert!(bench.check().is_ok());
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    #[must_use]
    pub fn options(mut self, options: SocketOptions) -> Self {
        self.options = options;
        self
    }

    /// The TLS settings (trust, server name, ALPN) of a `tls://` endpoint's
    /// connections, each of which runs its handshake before the load
    /// starts; other endpoints do not use them.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::Bench;
    /// use sockit::net::tls::ClientTls;
    ///
    /// let bench = Bench::new("tls://127.0.0.1:8443".parse()?);
    /// assert!(bench.check().is_err()); // a tls:// endpoint needs them
    /// assert!(bench.tls(ClientTls::new(None, true)?).check().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn tls(mut self, tls: crate::net::tls::ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The endpoint loaded.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::Bench;
    ///
    /// let bench = Bench::new("unix:@app".parse()?);
    /// assert_eq!(bench.endpoint().to_string(), "unix:@app");
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The framing requests are sent in on a stream, or `None` on datagram
    /// and seqpacket endpoints, where a message is a packet.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::Bench;
    /// use sockit::Framing;
    ///
    /// let tcp = Bench::new("tcp://127.0.0.1:7000".parse()?).framing(Framing::Len32);
    /// assert_eq!(tcp.stream_framing(), Some(Framing::Len32));
    /// let seqpacket = Bench::new("seqpacket:@app".parse()?).framing(Framing::Len32);
    /// assert_eq!(seqpacket.stream_framing(), None);
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn stream_framing(&self) -> Option<Framing> {
        (self.endpoint.transport() == Transport::Stream).then_some(self.framing)
    }

    /// Checks that the settings can work together, before any socket is opened.
    ///
    /// # Errors
    ///
    /// [`BenchError::Invalid`], saying what is wrong and what would work.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::Bench;
    /// use sockit::Framing;
    ///
    /// let bench = Bench::new("tcp://127.0.0.1:7000".parse()?).framing(Framing::Raw).pipeline(8);
    /// let err = bench.check().unwrap_err();
    /// assert!(err.to_string().starts_with("a pipeline of 8 needs line or len32 framing"));
    /// assert!(bench.framing(Framing::Line).check().is_ok());
    /// # Ok::<(), sockit::EndpointError>(())
    /// ```
    pub fn check(&self) -> Result<(), BenchError> {
        let invalid = |reason: String| Err(BenchError::Invalid(reason));
        if self.service == Builtin::Discard {
            return invalid(
                "the discard service sends no replies, so there is nothing to measure: use greet or echo"
                    .into(),
            );
        }
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return invalid(format!(
                "{} connections: use 1 to {MAX_CONNECTIONS}",
                self.connections
            ));
        }
        if self.pipeline == 0 {
            return invalid("a pipeline of 0 sends nothing: use 1 or more".into());
        }
        if self.size < ID_LEN {
            return invalid(format!(
                "requests of {} bytes are too small: each carries a {ID_LEN}-byte id (connection and sequence \
                 number) to match its reply, so the size is at least {ID_LEN}",
                self.size
            ));
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0 && rate <= 1e9)
        {
            return invalid(format!(
                "a rate of {rate} requests a second: use a number above 0, up to 1e9"
            ));
        }
        if matches!(self.endpoint, Endpoint::Tls(_)) && self.tls.is_none() {
            return invalid("a tls:// endpoint needs TLS settings (Bench::tls)".into());
        }
        if self.timeout.is_zero() {
            return invalid("a timeout of 0 would count every reply as missing".into());
        }
        if matches!(self.length, Length::Requests(0)) || self.length == Length::Duration(Duration::ZERO) {
            return invalid("the run has no length: give a duration or a number of requests above 0".into());
        }
        if self
            .stream_framing()
            .is_some_and(|f| matches!(f, Framing::Raw | Framing::Auto))
            && self.pipeline > 1
        {
            return invalid(format!(
                "a pipeline of {} needs line or len32 framing (on the server too): {} framing sends \
                 messages bare, and a byte stream cannot tell where one bare message ends and the next begins",
                self.pipeline, self.framing
            ));
        }
        let reply_len = Messages::new(self.service, self.endpoint.transport(), self.size).reply_len();
        if let Endpoint::Udp(_) = self.endpoint
            && reply_len > crate::net::udp::MAX_PAYLOAD_V4
        {
            return invalid(format!(
                "requests of {} bytes get replies of {reply_len}, more than the {} bytes a UDP datagram holds",
                self.size,
                crate::net::udp::MAX_PAYLOAD_V4
            ));
        }
        Ok(())
    }
}

/// Why a load could not be run.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use sockit::load::{Bench, BenchError, Live};
/// use sockit::Builtin;
///
/// let discard = Bench::new("tcp://127.0.0.1:7000".parse()?).service(Builtin::Discard);
/// assert!(matches!(discard.run(&Live::default()).await, Err(BenchError::Invalid(_))));
///
/// let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?; // and closed again
/// let nobody = Bench::new(sockit::Endpoint::tcp(closed)).connections(1);
/// assert!(matches!(nobody.run(&Live::default()).await, Err(BenchError::Connect(_))));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The settings cannot work together; nothing was opened.
    #[error("{0}")]
    Invalid(String),
    /// No connection could be made (the error of the first to fail), or the
    /// endpoint's name could not be resolved.
    #[error(transparent)]
    Connect(#[from] crate::Error),
    /// The event loop could not be started.
    #[error("cannot start the load generator")]
    Io(#[from] std::io::Error),
}

/// Where a run is, for a progress display.
///
/// # Examples
///
/// ```
/// use sockit::load::{Live, Phase};
///
/// assert_eq!(Live::default().progress().phase, Phase::Connecting);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Opening the connections.
    Connecting,
    /// Running unmeasured load.
    Warmup,
    /// Running measured load.
    Measuring,
    /// Finished.
    Done,
}

/// Counts a run publishes as it goes (ten times a second), for a progress
/// display on another thread.
///
/// # Examples
///
/// Progress read on another thread while the run goes on:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use sockit::load::{Bench, Length, Live, Phase};
/// use sockit::{Echo, Server};
///
/// let server = Server::new(Echo).bind(&"udp://127.0.0.1:0".parse()?).await?;
/// let bench = Bench::new(server.local_endpoint().clone())
///     .service(sockit::Builtin::Echo)
///     .connections(1)
///     .length(Length::Requests(50));
/// tokio::spawn(server.serve(std::future::pending()));
///
/// let live = Arc::new(Live::default());
/// let watcher = {
///     let live = Arc::clone(&live);
///     std::thread::spawn(move || live.progress().requests <= 50)
/// };
/// let report = bench.run(&live).await?;
/// assert!(watcher.join().unwrap());
/// let done = live.progress();
/// assert_eq!((done.phase, done.replies), (Phase::Done, report.tally().replies));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct Live {
    phase: AtomicU8,
    requests: AtomicU64,
    replies: AtomicU64,
    errors: AtomicU64,
    measured_ns: AtomicU64,
}

/// A snapshot of a [`Live`] run.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sockit::load::Live;
///
/// let progress = Live::default().progress();
/// assert_eq!((progress.requests, progress.replies, progress.errors), (0, 0, 0));
/// assert_eq!(progress.measured, Duration::ZERO);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Where the run is.
    pub phase: Phase,
    /// Measured requests so far.
    pub requests: u64,
    /// Correct replies so far.
    pub replies: u64,
    /// Errors so far.
    pub errors: u64,
    /// How long the measured part has run.
    pub measured: Duration,
}

impl Live {
    /// The latest counts published.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::{Live, Phase};
    ///
    /// let live = Live::default();
    /// let line = |live: &Live| {
    ///     let p = live.progress();
    ///     format!("{:?}: {} requests, {} replies, {} errors", p.phase, p.requests, p.replies, p.errors)
    /// };
    /// assert_eq!(line(&live), "Connecting: 0 requests, 0 replies, 0 errors");
    /// ```
    pub fn progress(&self) -> Progress {
        Progress {
            phase: match self.phase.load(Ordering::Relaxed) {
                0 => Phase::Connecting,
                1 => Phase::Warmup,
                2 => Phase::Measuring,
                _ => Phase::Done,
            },
            requests: self.requests.load(Ordering::Relaxed),
            replies: self.replies.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            measured: Duration::from_nanos(self.measured_ns.load(Ordering::Relaxed)),
        }
    }

    fn publish(&self, phase: Phase, tally: &Tally, measured: Duration) {
        self.requests.store(tally.requests, Ordering::Relaxed);
        self.replies.store(tally.replies, Ordering::Relaxed);
        self.errors.store(tally.errors(), Ordering::Relaxed);
        self.measured_ns.store(
            u64::try_from(measured.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let phase = match phase {
            Phase::Connecting => 0,
            Phase::Warmup => 1,
            Phase::Measuring => 2,
            Phase::Done => 3,
        };
        self.phase.store(phase, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench(endpoint: &str) -> Bench {
        Bench::new(endpoint.parse().unwrap())
    }

    fn reason(bench: Bench) -> String {
        match bench.check() {
            Err(BenchError::Invalid(reason)) => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_defaults_are_valid() {
        for endpoint in [
            "tcp://127.0.0.1:1",
            "udp://127.0.0.1:1",
            "unix:/x",
            "unix-dgram:/x",
            "seqpacket:/x",
        ] {
            bench(endpoint).check().unwrap();
        }
    }

    #[test]
    fn pipelining_a_bare_stream_is_refused_with_the_reason() {
        for framing in [Framing::Raw, Framing::Auto] {
            let reason = reason(bench("tcp://127.0.0.1:1").framing(framing).pipeline(4));
            assert_eq!(
                reason,
                format!(
                    "a pipeline of 4 needs line or len32 framing (on the server too): {framing} framing sends \
                     messages bare, and a byte stream cannot tell where one bare message ends and the next begins"
                )
            );
        }
        for framing in [Framing::Line, Framing::Len32] {
            bench("unix:/x").framing(framing).pipeline(4).check().unwrap();
        }
        // Datagrams and packets keep their boundaries: any framing pipelines.
        bench("udp://127.0.0.1:1").pipeline(64).check().unwrap();
        bench("seqpacket:/x").pipeline(64).check().unwrap();
    }

    #[test]
    fn impossible_settings_are_refused() {
        assert!(reason(bench("tcp://127.0.0.1:1").size(15)).contains("at least 16"));
        bench("tcp://127.0.0.1:1").size(16).check().unwrap();
        assert!(reason(bench("tcp://127.0.0.1:1").service(Builtin::Discard)).contains("discard"));
        assert!(reason(bench("tcp://127.0.0.1:1").connections(0)).contains("0 connections"));
        assert!(reason(bench("tcp://127.0.0.1:1").pipeline(0)).contains("pipeline of 0"));
        assert!(reason(bench("tcp://127.0.0.1:1").rate(Some(0.0))).contains("rate of 0"));
        assert!(reason(bench("tcp://127.0.0.1:1").rate(Some(f64::NAN))).contains("rate of NaN"));
        assert!(reason(bench("tcp://127.0.0.1:1").timeout(Duration::ZERO)).contains("timeout"));
        assert!(reason(bench("tcp://127.0.0.1:1").length(Length::Requests(0))).contains("no length"));
        assert!(reason(bench("udp://127.0.0.1:1").size(65_501)).contains("65508"));
        bench("udp://127.0.0.1:1").size(65_500).check().unwrap();
        bench("udp://127.0.0.1:1")
            .size(65_507)
            .service(Builtin::Echo)
            .check()
            .unwrap();
    }
}
