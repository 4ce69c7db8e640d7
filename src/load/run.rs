//! Runs a [`Bench`]: opens every connection, then drives them all as tasks
//! on the caller's thread (a [`LocalSet`]), sharing one tally without locks,
//! and publishes progress ten times a second.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use tokio::net::{TcpStream, UdpSocket, UnixDatagram, UnixStream};
use tokio::task::{JoinHandle, LocalSet, spawn_local};
use tokio::time::Instant;
use tokio_seqpacket::UnixSeqpacket;

use super::pacer::Pacer;
use super::{Bench, BenchError, ConnSchedule, Length, Live, Messages, Phase, Report, Schedule, Tally};
use crate::net::tls::ClientTls;
use crate::net::unix::SocketFile;
use crate::net::{self, SocketOptions, seqpacket, tcp, udp, unix, unix_datagram};
use crate::{Endpoint, Error, Framing};

impl Bench {
    /// Runs the load and returns what it measured; `live` is updated ten
    /// times a second for a progress display.
    ///
    /// Every connection is a task on the calling thread's event loop (a
    /// [`LocalSet`]): run it on a current-thread runtime, and the load
    /// generator takes one core, however many connections it drives.
    ///
    /// # Errors
    ///
    /// [`BenchError::Invalid`] for settings that cannot work (see
    /// [`Bench::check`]); [`BenchError::Connect`] when no connection could
    /// be made. Errors once the load runs (wrong or missing replies, failed
    /// connections) are counted in the [`Report`], not returned.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes every connection; nothing is reported.
    ///
    /// # Examples
    ///
    /// Greet over UDP: every datagram reply is checked byte for byte.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use sockit::load::{Bench, Length, Live};
    /// use sockit::{Greet, Server};
    ///
    /// let server = Server::new(Greet).bind(&"udp://127.0.0.1:0".parse()?).await?;
    /// let bench = Bench::new(server.local_endpoint().clone())
    ///     .connections(4)
    ///     .pipeline(8)
    ///     .size(32)
    ///     .timeout(Duration::from_secs(2))
    ///     .length(Length::Requests(400));
    /// tokio::spawn(server.serve(std::future::pending()));
    ///
    /// let report = bench.run(&Live::default()).await?;
    /// assert_eq!(report.connected(), 4);
    /// assert_eq!(report.tally().replies, 400, "{}", report.summary());
    /// assert_eq!(report.tally().bytes_received, 400 * (7 + 32)); // "Hello, " and the request
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run(&self, live: &Live) -> Result<Report, BenchError> {
        self.check()?;
        LocalSet::new().run_until(self.drive(live)).await
    }

    async fn drive(&self, live: &Live) -> Result<Report, BenchError> {
        let (links, tally) = self.open_all().await?;
        let connected = links.len();
        let start = Instant::now();
        let measure_from = start + self.warmup;
        let schedule = self
            .rate
            .map(|rate| Schedule::new(rate, connected, self.warmup, self.length));
        let until = Rc::new(match self.length {
            Length::Duration(duration) => Until::Time(measure_from + duration),
            Length::Requests(requests) => Until::Count(Cell::new(requests)),
        });
        let framing = match self.framing {
            Framing::Auto | Framing::Raw => Framing::Raw,
            framing => framing,
        };
        let shared = Rc::new(Shared {
            messages: Messages::new(self.service, self.endpoint.transport(), self.size),
            framing,
            pipeline: self.pipeline,
            timeout: self.timeout,
            tally: RefCell::new(tally),
            last_reply: Cell::new(None),
        });
        let mut connections = Vec::with_capacity(connected);
        for (conn, link) in links.into_iter().enumerate() {
            let conn = u32::try_from(conn).expect("check() caps the connections");
            let pace = match &schedule {
                Some(schedule) => {
                    let schedule = schedule.conn(conn);
                    let pacer = Pacer::new(start + schedule.intended(0), schedule.period())?;
                    Pace::Open {
                        start,
                        schedule,
                        pacer,
                    }
                }
                None => Pace::Closed {
                    measure_from,
                    until: until.clone(),
                },
            };
            let sender = Sender { next: 0, pace };
            connections.push(spawn_local(link.drive(shared.clone(), conn, sender)));
        }

        let publish = |now: Instant| {
            let phase = if now < measure_from {
                Phase::Warmup
            } else {
                Phase::Measuring
            };
            live.publish(
                phase,
                &shared.tally.borrow(),
                now.saturating_duration_since(measure_from),
            );
        };
        let all_done = async {
            for connection in connections {
                if let Err(error) = connection.await {
                    std::panic::resume_unwind(error.into_panic());
                }
            }
        };
        tokio::pin!(all_done);
        let mut ticks = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                () = &mut all_done => break,
                _ = ticks.tick() => publish(Instant::now()),
            }
        }

        let end = shared.last_reply.get().unwrap_or_else(Instant::now);
        let mut elapsed = end.saturating_duration_since(measure_from);
        if let Some(schedule) = &schedule {
            // At a fixed rate the measured time is the schedule's at least,
            // though the last reply came just after the last send.
            elapsed = elapsed.max(schedule.measured_time());
        }
        let tally = shared.tally.borrow().clone();
        live.publish(Phase::Done, &tally, elapsed);
        Ok(Report::new(self.clone(), connected, tally, elapsed))
    }

    /// Opens every connection at once; those that fail are counted.
    async fn open_all(&self) -> Result<(Vec<Link>, Tally), BenchError> {
        let addrs: Rc<[SocketAddr]> = match self.endpoint {
            Endpoint::Tcp(_) | Endpoint::Udp(_) | Endpoint::Tls(_) => {
                net::resolve(&self.endpoint).await?.into()
            }
            _ => Rc::from([]),
        };
        let opening: Vec<JoinHandle<io::Result<Link>>> = (0..self.connections)
            .map(|_| {
                let (endpoint, addrs, options) = (self.endpoint.clone(), addrs.clone(), self.options.clone());
                let (timeout, tls) = (self.timeout, self.tls.clone());
                spawn_local(
                    async move { Link::open(&endpoint, &addrs, &options, timeout, tls.as_ref()).await },
                )
            })
            .collect();
        let mut tally = Tally::default();
        let mut links = Vec::with_capacity(self.connections);
        let mut first_error = None;
        for opened in opening {
            match opened
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
            {
                Ok(link) => links.push(link),
                Err(error) => {
                    tally.connection_error(error.kind());
                    first_error.get_or_insert(error);
                }
            }
        }
        if links.is_empty() {
            let source = first_error.expect("check() asks for a connection at least");
            let endpoint = self.endpoint.clone();
            return Err(match net::tls::untrusted(&source) {
                Some(reason) => Error::Untrusted { endpoint, reason },
                None => Error::Connect { endpoint, source },
            }
            .into());
        }
        Ok((links, tally))
    }
}

/// What every connection task of a run shares (on one thread: no locks).
pub(super) struct Shared {
    /// The requests and the replies they are owed.
    pub(super) messages: Messages,
    /// The framing of stream requests: `raw`, `line` or `len32`.
    pub(super) framing: Framing,
    /// The most requests in flight per connection.
    pub(super) pipeline: usize,
    /// How long a request waits for its reply.
    pub(super) timeout: Duration,
    tally: RefCell<Tally>,
    last_reply: Cell<Option<Instant>>,
}

/// When a closed-loop run stops sending.
enum Until {
    /// At this time.
    Time(Instant),
    /// When this many more measured requests have been sent, by all
    /// connections together.
    Count(Cell<u64>),
}

/// A request in flight.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sent {
    /// Its sequence number on its connection.
    pub(super) seq: u64,
    /// What its latency is measured from: when it was sent (closed loop) or
    /// meant to be (open loop).
    pub(super) since: Instant,
    /// When it was sent: its reply is missing a timeout after this.
    pub(super) sent_at: Instant,
    /// Whether it is measured (not warmup).
    pub(super) measured: bool,
}

/// How a connection's exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// Everything it had to send was sent and answered.
    Done,
    /// The oldest request waited past the timeout.
    Stalled,
    /// The connection failed with this kind of error.
    Failed(io::ErrorKind),
}

impl Shared {
    /// Counts request `sent`, of `wire` bytes, as it is sent.
    pub(super) fn sending(&self, sent: &Sent, wire: usize) {
        if sent.measured {
            let mut tally = self.tally.borrow_mut();
            tally.requests += 1;
            tally.bytes_sent += wire as u64;
        }
    }

    /// Counts the reply, of `wire` bytes, that came `now` for `sent`: right or wrong.
    pub(super) fn answered(&self, sent: &Sent, right: bool, wire: usize, now: Instant) {
        let mut tally = self.tally.borrow_mut();
        if sent.measured {
            tally.bytes_received += wire as u64;
            self.last_reply.set(Some(now));
            if right {
                tally.reply(now.saturating_duration_since(sent.since));
            }
        } else if right {
            tally.warmup_replies += 1;
        }
        if !right {
            tally.wrong += 1;
        }
    }

    /// Counts a reply that answers no request in flight.
    pub(super) fn unexpected(&self) {
        self.tally.borrow_mut().wrong += 1;
    }

    /// Counts requests that will never get a reply.
    pub(super) fn missing(&self, count: usize) {
        self.tally.borrow_mut().missing += count as u64;
    }

    /// Counts how a connection ended, with `unanswered` requests still in flight.
    fn ended(&self, ending: Ending, unanswered: usize, sender: &Sender) {
        let mut tally = self.tally.borrow_mut();
        match ending {
            Ending::Done => {}
            Ending::Stalled => tally.timeouts += 1,
            Ending::Failed(kind) => tally.connection_error(kind),
        }
        tally.missing += unanswered as u64;
        // At a fixed rate, the requests a failed connection never sent were
        // due all the same: they are missing too.
        if ending != Ending::Done {
            let unsent = sender.unsent_measured();
            tally.requests += unsent;
            tally.missing += unsent;
        }
    }
}

/// Decides what one connection sends, and when.
pub(super) struct Sender {
    next: u64,
    pace: Pace,
}

/// When a connection sends.
enum Pace {
    /// As fast as replies come, within limits shared by every connection.
    Closed { measure_from: Instant, until: Rc<Until> },
    /// On its share of a fixed-rate schedule that began at `start`.
    Open {
        start: Instant,
        schedule: ConnSchedule,
        pacer: Pacer,
    },
}

impl Sender {
    /// The next request to send `now`, if one is due.
    pub(super) fn next(&mut self, now: Instant) -> Option<Sent> {
        let seq = self.next;
        let (since, measured) = match &self.pace {
            Pace::Open { start, schedule, .. } => {
                if seq >= schedule.due(now.saturating_duration_since(*start)) {
                    return None;
                }
                (*start + schedule.intended(seq), schedule.is_measured(seq))
            }
            Pace::Closed { measure_from, until } => {
                let measured = now >= *measure_from;
                match &**until {
                    Until::Time(end) if now >= *end => return None,
                    Until::Count(left) if measured => left.set(left.get().checked_sub(1)?),
                    _ => {}
                }
                (now, measured)
            }
        };
        self.next += 1;
        Some(Sent {
            seq,
            since,
            sent_at: now,
            measured,
        })
    }

    /// Whether this connection will send nothing more.
    pub(super) fn finished(&self, now: Instant) -> bool {
        match &self.pace {
            Pace::Open { schedule, .. } => self.next >= schedule.len(),
            Pace::Closed { measure_from, until } => match &**until {
                Until::Time(end) => now >= *end,
                Until::Count(left) => now >= *measure_from && left.get() == 0,
            },
        }
    }

    /// Whether the next send waits for its time (open loop) rather than for a reply.
    pub(super) fn waits_for_time(&self) -> bool {
        match &self.pace {
            Pace::Open { schedule, .. } => self.next < schedule.len(),
            Pace::Closed { .. } => false,
        }
    }

    /// Waits for the next send time; never returns in a closed loop.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub(super) async fn tick(&self) -> io::Result<()> {
        match &self.pace {
            Pace::Open { pacer, .. } => pacer.tick().await,
            Pace::Closed { .. } => std::future::pending().await,
        }
    }

    /// At a fixed rate, how many measured requests are left unsent.
    fn unsent_measured(&self) -> u64 {
        match &self.pace {
            Pace::Open { schedule, .. } => (self.next..schedule.len())
                .filter(|&n| schedule.is_measured(n))
                .count() as u64,
            Pace::Closed { .. } => 0,
        }
    }
}

/// One connection (or datagram socket), open.
enum Link {
    Tcp(TcpStream),
    /// Boxed: TLS's state is large.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Unix(UnixStream),
    Seqpacket(UnixSeqpacket),
    Udp(UdpSocket),
    /// With its own socket file, for the replies to come to.
    UnixDatagram(UnixDatagram, SocketFile),
}

impl Link {
    async fn open(
        endpoint: &Endpoint,
        addrs: &[SocketAddr],
        options: &SocketOptions,
        timeout: Duration,
        tls: Option<&ClientTls>,
    ) -> io::Result<Link> {
        let link = match endpoint {
            Endpoint::Tcp(_) => Link::Tcp(tcp::connect(addrs, timeout, options).await?),
            Endpoint::Tls(host_port) => {
                let tls = tls.expect("Bench::check asks a tls:// endpoint for TLS settings");
                let stream = tcp::connect(addrs, timeout, options).await?;
                Link::Tls(Box::new(tls.connect(stream, host_port.host(), timeout).await?))
            }
            Endpoint::Udp(_) => Link::Udp(udp::connect(addrs, options).await?),
            Endpoint::Unix(addr) => Link::Unix(unix::connect(addr, options)?),
            Endpoint::Seqpacket(addr) => Link::Seqpacket(seqpacket::connect(addr, options)?),
            Endpoint::UnixDatagram(addr) => {
                let (socket, file) = unix_datagram::connect(addr, options)?;
                Link::UnixDatagram(socket, file)
            }
        };
        Ok(link)
    }

    /// Runs connection `conn`'s share of the load to its end, and counts how it ended.
    async fn drive(self, shared: Rc<Shared>, conn: u32, mut sender: Sender) {
        let (ending, unanswered) = match self {
            Link::Tcp(mut stream) => {
                let (reader, writer) = stream.split();
                super::stream::run(&shared, conn, reader, writer, &mut sender).await
            }
            Link::Tls(stream) => {
                let (reader, writer) = tokio::io::split(*stream);
                super::stream::run(&shared, conn, reader, writer, &mut sender).await
            }
            Link::Unix(mut stream) => {
                let (reader, writer) = stream.split();
                super::stream::run(&shared, conn, reader, writer, &mut sender).await
            }
            Link::Seqpacket(socket) => super::packet::run(&shared, conn, &socket, &mut sender).await,
            Link::Udp(socket) => super::packet::run(&shared, conn, &socket, &mut sender).await,
            Link::UnixDatagram(socket, _file) => {
                super::packet::run(&shared, conn, &socket, &mut sender).await
            }
        };
        shared.ended(ending, unanswered, &sender);
    }
}
