//! The datagram loop: one receive loop per datagram socket (UDP or Unix
//! datagram), one reply datagram per datagram received, within the
//! listener's limits (message size, per-source rate, reply size).

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::socket::{SockaddrStorage, UnixAddr as SockaddrUnix};
use tokio::io::Interest;
use tracing::{debug, info, warn};

use crate::framing::Framed;
use crate::limit::{DEFAULT_SOURCES, LogGate, RateLimit, ReplyCap, Sources, Verdict};
use crate::metrics::{ErrorKind, ListenerMetrics, Tally};
use crate::net::batch::{Address, Datagram, Inbox, Outbox};
use crate::net::listen::DatagramSocket;
use crate::net::udp;
use crate::service::{Replies, Service};
use crate::{Endpoint, Escaped, Peer};

/// How a datagram listener reads and what it refuses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The longest datagram answered.
    pub max_message: usize,
    /// Datagrams per system call.
    pub batch: usize,
    /// Each source's rate, if limited.
    pub rate_limit: Option<RateLimit>,
    /// The cap on a reply against its request.
    pub reply_cap: ReplyCap,
}

/// Receives datagrams on `socket` and answers each until `shutdown` completes.
/// A datagram longer than `limits.max_message`, or past its source's rate,
/// is dropped; a reply past the reply cap is not sent; each is counted, and
/// logged a few times a second at most.
///
/// Up to `limits.batch` datagrams arrive per system call (`recvmmsg`) and
/// their replies leave together (`sendmmsg`); a batch of 1 is one `recvmsg`
/// and one `sendto` per datagram.
pub(crate) async fn serve<S: Service>(
    socket: DatagramSocket,
    local: &Endpoint,
    service: &S,
    limits: Limits,
    live: Live,
    metrics: Option<Arc<ListenerMetrics>>,
    shutdown: impl Future<Output = ()>,
) {
    let metrics = metrics.as_deref();
    match socket {
        DatagramSocket::Udp(_) => {
            serve_from::<S, SockaddrStorage>(socket, local, service, limits, live, metrics, shutdown).await;
        }
        DatagramSocket::Unix(_) => {
            serve_from::<S, SockaddrUnix>(socket, local, service, limits, live, metrics, shutdown).await;
        }
    }
}

/// The server's limits as a [`LimitsHandle`](crate::LimitsHandle) changes them.
pub(crate) type Live = tokio::sync::watch::Receiver<Option<crate::Limits>>;

/// [`serve`], with senders' addresses of type `A`.
async fn serve_from<S: Service, A: Address>(
    socket: DatagramSocket,
    local: &Endpoint,
    service: &S,
    limits: Limits,
    mut live: Live,
    metrics: Option<&ListenerMetrics>,
    shutdown: impl Future<Output = ()>,
) {
    let Limits {
        max_message, batch, ..
    } = limits;
    let mut shutdown = std::pin::pin!(shutdown);
    // Slots hold any UDP payload, and longer messages when they are allowed;
    // a datagram too long for its slot is cut short and marked so.
    let slot = max_message.saturating_add(1).max(1 << 16);
    let (mut inbox, mut outbox): (Inbox<A>, Outbox<A>) = match &socket {
        // With more than one datagram per call, UDP also takes runs of
        // datagrams per kernel buffer each way (GRO, GSO) where it can.
        DatagramSocket::Udp(udp) if batch > 1 => (
            if udp::enable_gro(udp) {
                Inbox::with_gro(slot, batch)
            } else {
                Inbox::new(slot, batch)
            },
            Outbox::with_capacity(1 << 16).with_gso(),
        ),
        _ => (Inbox::new(slot, batch), Outbox::with_capacity(1 << 16)),
    };
    let mut guard = Guard::<A::Source>::new(&limits);
    loop {
        let received = tokio::select! {
            biased;
            () = &mut shutdown => break,
            received = socket.io(Interest::READABLE, |fd| inbox.receive(fd)) => received,
        };
        if let Err(error) = received {
            if let Some(metrics) = metrics {
                metrics.error(ErrorKind::Receive);
            }
            receive_failed(local, &error).await;
            continue;
        }
        if live.has_changed().unwrap_or(false)
            && let Some(changed) = *live.borrow_and_update()
        {
            guard.change(changed.rate_limit, changed.reply_cap);
        }
        // One reading of the clock a batch; tokio's, so that a test may pause it.
        let now = tokio::time::Instant::now().into_std();
        outbox.clear();
        let dropped_before = guard.dropped;
        let mut tally = Tally::default();
        let mut bytes = 0;
        for datagram in inbox.datagrams() {
            // Per datagram, but only additions to locals: counted once per batch.
            tally.messages += 1;
            bytes += datagram.data.len();
            answer(datagram, &socket, service, &mut outbox, &mut guard, now);
        }
        if let Some(metrics) = metrics {
            tally.replies = outbox.queued() as u64;
            metrics.received(bytes, tally);
            metrics.sent(outbox.buffer().len());
            guard.dropped.count_since(&dropped_before, metrics);
        }
        let replying = !outbox.is_empty();
        while !outbox.is_empty() {
            if let Err(error) = socket.io(Interest::WRITABLE, |fd| outbox.send(fd)).await {
                let peer = peer_of(outbox.next_destination());
                warn!(%peer, %error, "could not send the reply");
                if let Some(metrics) = metrics {
                    metrics.error(ErrorKind::Send);
                }
                outbox.skip();
            }
        }
        if let (Some(metrics), true) = (metrics, replying) {
            metrics.replied(now);
        }
    }
    guard.dropped.summarize(local);
}

/// The peer behind a sender's address; an unnamed Unix peer when there is
/// none.
fn peer_of<A: Address>(from: Option<&A>) -> Peer {
    from.map_or(
        Peer::Unix {
            addr: None,
            cred: None,
        },
        A::peer,
    )
}

/// What the loop has dropped so far, for its log lines.
#[derive(Debug, Default, Clone, Copy)]
struct Dropped {
    too_long: u64,
    oversized: u64,
    rate_limited: u64,
    amplifying: u64,
}

impl Dropped {
    /// Counts in `metrics` what was dropped since `before`.
    fn count_since(&self, before: &Dropped, metrics: &ListenerMetrics) {
        metrics.errors(ErrorKind::MessageTooLong, self.too_long - before.too_long);
        metrics.errors(ErrorKind::ReplyTooLarge, self.oversized - before.oversized);
        metrics.errors(ErrorKind::RateLimited, self.rate_limited - before.rate_limited);
        metrics.errors(ErrorKind::ReplyCapped, self.amplifying - before.amplifying);
    }

    /// Says what was dropped, if anything, when the listener stops.
    fn summarize(&self, local: &Endpoint) {
        let Dropped {
            too_long,
            oversized,
            rate_limited,
            amplifying,
        } = *self;
        if too_long + oversized + rate_limited + amplifying > 0 {
            info!(
                listener = %local,
                datagrams_rate_limited = rate_limited,
                datagrams_too_long = too_long,
                replies_too_large_for_a_datagram = oversized,
                replies_over_the_cap = amplifying,
                "datagrams not answered"
            );
        }
    }
}

/// The limits of one datagram loop and their state.
#[derive(Debug)]
struct Guard<K> {
    limits: Limits,
    /// Each source's token bucket, when the rate is limited.
    sources: Option<Sources<K>>,
    dropped: Dropped,
    /// A few warnings a second at most, however many datagrams are dropped.
    log: LogGate,
}

impl<K: std::hash::Hash + Eq + Copy> Guard<K> {
    /// Takes a new rate (every source's budget starts afresh when it
    /// changes) and reply cap.
    fn change(&mut self, rate_limit: Option<RateLimit>, reply_cap: ReplyCap) {
        if rate_limit != self.limits.rate_limit {
            self.sources = rate_limit.map(|rate| Sources::new(rate, DEFAULT_SOURCES));
        }
        self.limits.rate_limit = rate_limit;
        self.limits.reply_cap = reply_cap;
    }

    fn new(limits: &Limits) -> Self {
        Guard {
            limits: *limits,
            sources: limits.rate_limit.map(|rate| Sources::new(rate, DEFAULT_SOURCES)),
            dropped: Dropped::default(),
            log: LogGate::new(RateLimit::per_second(1).burst(10)),
        }
    }
}

/// Lets `service` answer one datagram into `outbox`, within `guard`'s limits.
fn answer<S: Service, A: Address>(
    datagram: Datagram<'_, A>,
    socket: &DatagramSocket,
    service: &S,
    outbox: &mut Outbox<A>,
    guard: &mut Guard<A::Source>,
    now: Instant,
) {
    if let Some(sources) = &mut guard.sources
        && let Some(source) = datagram.from.as_ref().and_then(A::source)
        && let Verdict::Deny { log } = sources.check(source, now)
    {
        // Dropped without a word: answering is what a forger wants.
        guard.dropped.rate_limited += 1;
        if let Some(dropped) = log
            && guard.log.admit(now)
        {
            warn!(
                peer = %peer_of(datagram.from.as_ref()),
                dropped,
                datagrams_rate_limited = guard.dropped.rate_limited,
                "a source is over its rate limit; its datagrams are dropped unanswered"
            );
        }
        return;
    }
    let peer = peer_of(datagram.from.as_ref());
    let max_message = guard.limits.max_message;
    if datagram.truncated || datagram.data.len() > max_message {
        guard.dropped.too_long += 1;
        if guard.log.admit(now) {
            warn!(%peer, limit = max_message, datagrams_dropped = guard.dropped.too_long, "datagram too long; dropped");
        }
        return;
    }
    debug!(%peer, data = %Escaped(datagram.data), "received");
    let start = outbox.buffer().len();
    let mut replies = Replies::new(outbox.buffer(), Framed::Raw, &peer);
    service.datagram(datagram.data, &mut replies);
    if replies.sent() == 0 {
        return;
    }
    let reply_bytes = outbox.buffer().len() - start;
    if reply_bytes > socket.max_payload(&peer) {
        guard.dropped.oversized += 1;
        if guard.log.admit(now) {
            warn!(
                %peer,
                reply_bytes,
                replies_not_sent = guard.dropped.oversized,
                "the reply would not fit in one datagram; not sent"
            );
        }
        outbox.buffer().truncate(start);
        return;
    }
    let cap = guard.limits.reply_cap;
    if !cap.allows(datagram.data.len(), reply_bytes) {
        guard.dropped.amplifying += 1;
        if guard.log.admit(now) {
            warn!(
                %peer,
                request_bytes = datagram.data.len(),
                reply_bytes,
                limit = cap.limit(datagram.data.len()),
                replies_not_sent = guard.dropped.amplifying,
                "the reply is larger than the reply cap allows; not sent"
            );
        }
        outbox.buffer().truncate(start);
        return;
    }
    match datagram.from {
        Some(to) => outbox.seal(start, to),
        None => {
            if guard.log.admit(now) {
                warn!(%peer, "could not send the reply: the sender has no address to reply to (it did not bind its socket)");
            }
            outbox.buffer().truncate(start);
        }
    }
}

/// Logs a failed receive; waits a moment on errors that may repeat, so the
/// loop never spins.
pub(crate) async fn receive_failed(local: &Endpoint, error: &io::Error) {
    match error.kind() {
        // An earlier reply's ICMP error, reported late: only that peer is gone.
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => {
            debug!(listener = %local, %error, "an earlier reply was refused");
        }
        _ => {
            warn!(listener = %local, %error, "receive failed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
