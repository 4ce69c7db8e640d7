//! Pure: the limits that keep a datagram service from being used to reflect
//! or amplify traffic at a forged address: a per-source rate limit in a
//! bounded table, and a cap on the size of a reply against its request.
//!
//! Nothing here reads a clock or touches a socket: the caller passes the
//! time, so every rule is tested with made-up instants.
//!
//! # Examples
//!
//! ```
//! use sockit::limit::{RateLimit, ReplyCap};
//!
//! let limit: RateLimit = "100/s".parse().unwrap();
//! assert_eq!(limit, RateLimit::per_second(100).burst(100));
//! assert_eq!(limit.burst(20).to_string(), "100/s (bursts of 20)");
//!
//! // QUIC's rule: a reply at most three times its request, or 64 bytes.
//! let cap = ReplyCap::default();
//! assert!(cap.allows(0, 7)); // greet's `Hello, ` to an empty datagram
//! assert!(!cap.allows(100, 301));
//! ```

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// How many sources a rate limit remembers by default, at most.
///
/// # Examples
///
/// ```
/// assert_eq!(sockit::limit::DEFAULT_SOURCES, 65_536);
/// ```
pub const DEFAULT_SOURCES: usize = 65_536;

/// The default cap on a reply against its request: three times, as QUIC
/// allows a server before it has checked the client's address (RFC 9000 §8).
///
/// # Examples
///
/// ```
/// use sockit::limit::{DEFAULT_MAX_AMPLIFICATION, ReplyCap};
///
/// assert_eq!(ReplyCap::default().max_amplification(), Some(DEFAULT_MAX_AMPLIFICATION));
/// assert_eq!(ReplyCap::default().limit(1000), 3000);
/// ```
pub const DEFAULT_MAX_AMPLIFICATION: u32 = 3;

/// Every reply may be this long, however short its request: an empty
/// datagram still gets `Hello, `.
///
/// # Examples
///
/// ```
/// use sockit::limit::{AMPLIFICATION_FLOOR, ReplyCap};
///
/// assert_eq!(ReplyCap::default().limit(0), AMPLIFICATION_FLOOR);
/// assert_eq!(ReplyCap::default().limit(10), 64);
/// ```
pub const AMPLIFICATION_FLOOR: usize = 64;

/// How often at most one source's drops are logged.
pub(crate) const SOURCE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A rate: `count` datagrams every `per`, in bursts of up to `burst`.
///
/// A token bucket: it holds `burst` tokens when full, a datagram takes one,
/// and one comes back every `per / count`.
///
/// # Examples
///
/// A UDP server that answers each source two datagrams, then one an hour:
/// the third request from the same address is dropped unanswered.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sockit::Error> {
/// use std::time::Duration;
/// use sockit::limit::RateLimit;
/// use sockit::{DatagramClient, Echo, Error, Server};
///
/// let limit = RateLimit::new(1, Duration::from_secs(3600)).burst(2);
/// let listener = Server::new(Echo)
///     .datagram_rate_limit(limit)
///     .bind(&"udp://127.0.0.1:0".parse()?)
///     .await?;
/// let endpoint = listener.local_endpoint().clone();
/// tokio::spawn(listener.serve(std::future::pending()));
///
/// let client = DatagramClient::connect(&endpoint, Duration::from_millis(200), 0).await?;
/// assert_eq!(client.request(b"one").await?, "one");
/// assert_eq!(client.request(b"two").await?, "two");
/// assert!(matches!(client.request(b"three").await, Err(Error::Timeout { .. })));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    count: u32,
    per: Duration,
    burst: u32,
}

impl RateLimit {
    /// `count` every `per` (both at least 1), in bursts of up to `count`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::limit::RateLimit;
    ///
    /// let limit = RateLimit::new(600, Duration::from_secs(60));
    /// assert_eq!(limit.to_string(), "600/m");
    /// assert_eq!("600/m".parse(), Ok(limit));
    /// assert_eq!(RateLimit::new(0, Duration::ZERO).count(), 1);
    /// ```
    pub fn new(count: u32, per: Duration) -> Self {
        let count = count.max(1);
        RateLimit {
            count,
            per: per.max(Duration::from_nanos(1)),
            burst: count,
        }
    }

    /// `count` a second, in bursts of up to `count`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::limit::RateLimit;
    ///
    /// assert_eq!(RateLimit::per_second(100).to_string(), "100/s");
    /// ```
    pub fn per_second(count: u32) -> Self {
        RateLimit::new(count, Duration::from_secs(1))
    }

    /// Bursts of up to `burst` (at least 1) at once, after a quiet spell.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::limit::RateLimit;
    ///
    /// let limit = RateLimit::per_second(100).burst(20);
    /// assert_eq!((limit.count(), limit.per(), limit.burst_size()), (100, Duration::from_secs(1), 20));
    /// assert_eq!(limit.to_string(), "100/s (bursts of 20)");
    /// ```
    #[must_use]
    pub fn burst(self, burst: u32) -> Self {
        RateLimit {
            burst: burst.max(1),
            ..self
        }
    }

    /// How many every [`per`](Self::per).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::limit::RateLimit;
    ///
    /// assert_eq!("10/h".parse::<RateLimit>()?.count(), 10);
    /// # Ok::<(), String>(())
    /// ```
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The period [`count`](Self::count) is counted over.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::limit::RateLimit;
    ///
    /// assert_eq!("10/h".parse::<RateLimit>()?.per(), Duration::from_secs(3600));
    /// # Ok::<(), String>(())
    /// ```
    pub fn per(&self) -> Duration {
        self.per
    }

    /// The most at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::limit::RateLimit;
    ///
    /// assert_eq!(RateLimit::per_second(100).burst_size(), 100);
    /// assert_eq!(RateLimit::per_second(100).burst(0).burst_size(), 1);
    /// ```
    pub fn burst_size(&self) -> u32 {
        self.burst
    }

    /// The time one token takes to come back (at least a nanosecond).
    fn interval(&self) -> Duration {
        (self.per / self.count).max(Duration::from_nanos(1))
    }

    /// Takes a token from the bucket whose state is `due` (the generic cell
    /// rate algorithm: the time the bucket is full again) at `now`; false
    /// when it is empty. A refusal leaves the bucket as it was.
    fn take(&self, due: &mut Instant, now: Instant) -> bool {
        let due_now = (*due).max(now);
        let tolerance = self.interval() * (self.burst - 1);
        if due_now.duration_since(now) > tolerance {
            return false;
        }
        *due = due_now + self.interval();
        true
    }
}

/// `100/s`, `6000/m`, `1/h`, or a bare count a second.
impl FromStr for RateLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("{text:?} is not a rate such as 100/s, 600/m or 10/h");
        let (count, unit) = text.trim().split_once('/').unwrap_or((text.trim(), "s"));
        let per = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            _ => return Err(invalid()),
        };
        match count.trim().parse::<u32>() {
            Ok(0) => Err(format!("{text:?}: the rate must be at least 1")),
            Ok(count) => Ok(RateLimit::new(count, Duration::from_secs(per))),
            Err(_) => Err(invalid()),
        }
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match (self.per.as_secs(), self.per.subsec_nanos()) {
            (1, 0) => "s",
            (60, 0) => "m",
            (3600, 0) => "h",
            _ => "",
        };
        if unit.is_empty() {
            write!(f, "{} per {:?}", self.count, self.per)?;
        } else {
            write!(f, "{}/{unit}", self.count)?;
        }
        if self.burst != self.count {
            write!(f, " (bursts of {})", self.burst)?;
        }
        Ok(())
    }
}

/// Who a rate limit counts together: one IPv4 address, or one IPv6 /64
/// (what one host or one site is usually given, so that a sender cannot
/// multiply its share by changing its interface identifier). IPv4-mapped
/// IPv6 addresses count as the IPv4 address. The port is not part of it: a
/// forger chooses ports freely, and what a reflection hurts is the host.
///
/// # Examples
///
/// ```
/// use std::net::IpAddr;
/// use sockit::limit::IpSource;
///
/// let mapped: IpAddr = "::ffff:192.0.2.7".parse()?;
/// assert_eq!(IpSource::from(mapped), IpSource::V4([192, 0, 2, 7]));
/// let a: IpAddr = "2001:db8:1:2::1".parse()?;
/// let b: IpAddr = "2001:db8:1:2:ffff::9".parse()?;
/// assert_eq!(IpSource::from(a), IpSource::from(b));
/// assert_eq!(IpSource::from(a).to_string(), "2001:db8:1:2::/64");
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpSource {
    /// One IPv4 address.
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6([u8; 8]),
}

impl From<IpAddr> for IpSource {
    fn from(addr: IpAddr) -> Self {
        match addr.to_canonical() {
            IpAddr::V4(v4) => IpSource::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let mut prefix = [0; 8];
                prefix.copy_from_slice(&v6.octets()[..8]);
                IpSource::V6(prefix)
            }
        }
    }
}

impl fmt::Display for IpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpSource::V4(octets) => write!(f, "{}", std::net::Ipv4Addr::from(*octets)),
            IpSource::V6(prefix) => {
                let mut octets = [0; 16];
                octets[..8].copy_from_slice(prefix);
                write!(f, "{}/64", std::net::Ipv6Addr::from(octets))
            }
        }
    }
}

/// What the rate limit says about one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the source's rate: answer it.
    Allow,
    /// Over it: drop it unanswered. `log` is `Some(dropped)` when this
    /// source's drops are due a log line, with how many were dropped since
    /// its last one (this one included).
    Deny { log: Option<u64> },
}

/// The token buckets of up to a fixed number of sources.
///
/// When the table is full, a new source makes room: first every source
/// whose bucket has filled up again goes (it holds nothing a fresh entry
/// would not), then, if that freed less than an eighth of the table, the
/// sources closest to a full bucket go until an eighth is free. A source
/// being held to its rate is the furthest from full, so it is the last to
/// be forgotten, and a flood of forged sources cannot buy it a fresh burst;
/// emptying an eighth at a time keeps the cost of making room to a few
/// steps per new source. The map hashes with a random key (SipHash), so
/// chosen addresses cannot make lookups slow.
#[derive(Debug)]
pub(crate) struct Sources<K> {
    limit: RateLimit,
    capacity: usize,
    table: HashMap<K, Source>,
}

/// One source's bucket and log state.
#[derive(Debug)]
struct Source {
    /// When its bucket is full again.
    due: Instant,
    /// When its drops were last logged.
    logged: Option<Instant>,
    /// Drops since then.
    dropped: u64,
}

impl<K: Hash + Eq + Copy> Sources<K> {
    /// A table of at most `capacity` sources (at least 8), each held to `limit`.
    pub(crate) fn new(limit: RateLimit, capacity: usize) -> Self {
        Sources {
            limit,
            capacity: capacity.max(8),
            table: HashMap::new(),
        }
    }

    /// How many sources it remembers now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Counts a datagram from `source` arriving at `now`.
    pub(crate) fn check(&mut self, source: K, now: Instant) -> Verdict {
        if let Some(entry) = self.table.get_mut(&source) {
            if self.limit.take(&mut entry.due, now) {
                return Verdict::Allow;
            }
            entry.dropped += 1;
            let due = entry
                .logged
                .is_none_or(|logged| now.saturating_duration_since(logged) >= SOURCE_LOG_INTERVAL);
            if !due {
                return Verdict::Deny { log: None };
            }
            entry.logged = Some(now);
            return Verdict::Deny {
                log: Some(std::mem::take(&mut entry.dropped)),
            };
        }
        if self.table.len() >= self.capacity {
            self.make_room(now);
        }
        let mut due = now;
        let allowed = self.limit.take(&mut due, now);
        debug_assert!(allowed, "a full bucket has a token");
        self.table.insert(
            source,
            Source {
                due,
                logged: None,
                dropped: 0,
            },
        );
        Verdict::Allow
    }

    /// Frees at least an eighth of the table (see [`Sources`]).
    fn make_room(&mut self, now: Instant) {
        self.table.retain(|_, entry| entry.due > now);
        let keep = self.capacity - self.capacity / 8;
        if self.table.len() <= keep {
            return;
        }
        let mut due: Vec<Instant> = self.table.values().map(|entry| entry.due).collect();
        let (_, &mut cutoff, _) = due.select_nth_unstable(self.table.len() - keep - 1);
        self.table.retain(|_, entry| entry.due > cutoff);
    }
}

/// A cap on the size of a datagram's reply: at most `factor` times its
/// request (or [`AMPLIFICATION_FLOOR`] bytes, whichever is more), and at
/// most an absolute size. A reply past it is not sent.
///
/// The default is [`DEFAULT_MAX_AMPLIFICATION`] times, with no absolute
/// size: the built-in services never reach it (greet answers `M` with seven
/// bytes more, echo with as many).
///
/// # Examples
///
/// ```
/// use sockit::limit::ReplyCap;
///
/// let cap = ReplyCap::default().amplification(Some(2)).max_reply(Some(1000));
/// assert_eq!(cap.max_amplification(), Some(2));
/// assert_eq!(cap.limit(100), 200);
/// assert_eq!(cap.limit(600), 1000);
/// assert!(ReplyCap::none().allows(1, usize::MAX));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyCap {
    amplification: Option<u32>,
    max_reply: Option<usize>,
}

impl Default for ReplyCap {
    fn default() -> Self {
        ReplyCap {
            amplification: Some(DEFAULT_MAX_AMPLIFICATION),
            max_reply: None,
        }
    }
}

impl ReplyCap {
    /// No cap at all.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::limit::ReplyCap;
    ///
    /// assert_eq!(ReplyCap::none().max_amplification(), None);
    /// assert_eq!(ReplyCap::none().limit(0), usize::MAX);
    /// ```
    pub fn none() -> Self {
        ReplyCap {
            amplification: None,
            max_reply: None,
        }
    }

    /// At most `factor` times the request, or [`AMPLIFICATION_FLOOR`]
    /// bytes; `None`: any multiple.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::limit::ReplyCap;
    ///
    /// assert_eq!(ReplyCap::default().amplification(Some(10)).limit(100), 1000);
    /// assert_eq!(ReplyCap::default().amplification(None).limit(100), usize::MAX);
    /// ```
    #[must_use]
    pub fn amplification(self, factor: Option<u32>) -> Self {
        ReplyCap {
            amplification: factor,
            ..self
        }
    }

    /// At most `bytes` whatever the request; `None`: no absolute cap.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::limit::ReplyCap;
    ///
    /// let cap = ReplyCap::none().max_reply(Some(512));
    /// assert_eq!(cap.limit(0), 512);
    /// assert_eq!(cap.limit(10_000), 512);
    /// ```
    #[must_use]
    pub fn max_reply(self, bytes: Option<usize>) -> Self {
        ReplyCap {
            max_reply: bytes,
            ..self
        }
    }

    /// The amplification factor allowed, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::limit::ReplyCap;
    ///
    /// assert_eq!(ReplyCap::default().max_amplification(), Some(3));
    /// ```
    pub fn max_amplification(&self) -> Option<u32> {
        self.amplification
    }

    /// The longest reply allowed to a request of `request` bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::limit::ReplyCap;
    ///
    /// assert_eq!(ReplyCap::default().limit(5), 64);
    /// assert_eq!(ReplyCap::default().limit(100), 300);
    /// ```
    pub fn limit(&self, request: usize) -> usize {
        let amplified = self.amplification.map_or(usize::MAX, |factor| {
            request.saturating_mul(factor as usize).max(AMPLIFICATION_FLOOR)
        });
        amplified.min(self.max_reply.unwrap_or(usize::MAX))
    }

    /// Whether a reply of `reply` bytes to a request of `request` may go.
    ///
    /// # Examples
    ///
    /// A reply cap on a server: echo's reply to a 100-byte request is 100 bytes,
    /// over a cap of 50, so it is not sent.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sockit::Error> {
    /// use std::time::Duration;
    /// use sockit::limit::ReplyCap;
    /// use sockit::{DatagramClient, Echo, Error, Server};
    ///
    /// let cap = ReplyCap::none().max_reply(Some(50));
    /// assert!(cap.allows(100, 50) && !cap.allows(100, 51));
    /// let listener = Server::new(Echo).reply_cap(cap).bind(&"udp://127.0.0.1:0".parse()?).await?;
    /// let endpoint = listener.local_endpoint().clone();
    /// tokio::spawn(listener.serve(std::future::pending()));
    ///
    /// let client = DatagramClient::connect(&endpoint, Duration::from_millis(200), 0).await?;
    /// assert_eq!(client.request(&[b'x'; 50]).await?.len(), 50);
    /// assert!(matches!(client.request(&[b'x'; 100]).await, Err(Error::Timeout { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn allows(&self, request: usize, reply: usize) -> bool {
        reply <= self.limit(request)
    }
}

/// Lets log lines through at a rate, so that a flood makes a few lines
/// rather than one per packet; the lines carry running counts, so nothing
/// is lost by skipping some.
#[derive(Debug)]
pub(crate) struct LogGate {
    limit: RateLimit,
    due: Option<Instant>,
}

impl LogGate {
    /// Up to `limit` lines.
    pub(crate) fn new(limit: RateLimit) -> Self {
        LogGate { limit, due: None }
    }

    /// Whether a line may be written at `now`.
    pub(crate) fn admit(&mut self, now: Instant) -> bool {
        let due = self.due.get_or_insert(now);
        self.limit.take(due, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Which of `count` datagrams from `source` at `now` are allowed.
    fn allowed(sources: &mut Sources<u32>, source: u32, count: usize, now: Instant) -> usize {
        (0..count)
            .filter(|_| sources.check(source, now) == Verdict::Allow)
            .count()
    }

    #[test]
    fn a_source_gets_its_burst_then_one_per_interval() {
        let t0 = Instant::now();
        // 10 a second: one token every 100 ms, bursts of 3.
        let mut sources = Sources::new(RateLimit::per_second(10).burst(3), 100);
        assert_eq!(allowed(&mut sources, 1, 5, t0), 3);
        assert_eq!(allowed(&mut sources, 1, 5, t0 + ms(99)), 0);
        assert_eq!(allowed(&mut sources, 1, 5, t0 + ms(100)), 1);
        assert_eq!(allowed(&mut sources, 1, 5, t0 + ms(250)), 1);
        // Quiet for long enough: the bucket is full again, and no fuller.
        assert_eq!(allowed(&mut sources, 1, 10, t0 + ms(10_000)), 3);
        // Another source was never affected.
        assert_eq!(allowed(&mut sources, 2, 5, t0 + ms(99)), 3);
    }

    #[test]
    fn a_steady_sender_at_the_rate_is_never_refused() {
        let t0 = Instant::now();
        let mut sources = Sources::new(RateLimit::per_second(1000).burst(1), 100);
        for n in 0..10_000 {
            assert_eq!(
                sources.check(7, t0 + Duration::from_millis(n)),
                Verdict::Allow,
                "{n}"
            );
        }
        // Twice the rate: every other one.
        let t1 = t0 + ms(20_000);
        let passed = (0..1000)
            .filter(|n| sources.check(7, t1 + Duration::from_micros(n * 500)) == Verdict::Allow)
            .count();
        assert_eq!(passed, 500);
    }

    #[test]
    fn drops_are_logged_once_per_source_per_interval_with_their_count() {
        let t0 = Instant::now();
        let mut sources = Sources::new(RateLimit::per_second(1).burst(1), 100);
        assert_eq!(sources.check(1, t0), Verdict::Allow);
        assert_eq!(sources.check(1, t0), Verdict::Deny { log: Some(1) });
        for _ in 0..5 {
            assert_eq!(sources.check(1, t0 + ms(10)), Verdict::Deny { log: None });
        }
        // Another source is logged on its own.
        assert_eq!(sources.check(2, t0), Verdict::Allow);
        assert_eq!(sources.check(2, t0), Verdict::Deny { log: Some(1) });
        let later = t0 + SOURCE_LOG_INTERVAL;
        assert_eq!(sources.check(1, later), Verdict::Allow);
        assert_eq!(sources.check(1, later), Verdict::Deny { log: Some(6) });
    }

    #[test]
    fn the_table_stays_bounded_under_a_flood_of_sources_and_keeps_the_limited_one() {
        let t0 = Instant::now();
        let capacity = 1000;
        let mut sources = Sources::new(RateLimit::per_second(1).burst(2), capacity);
        // The victim of a reflection: held to its rate.
        assert_eq!(allowed(&mut sources, 0, 10, t0), 2);
        for n in 1..=200_000_u32 {
            let now = t0 + Duration::from_micros(u64::from(n));
            assert_eq!(
                sources.check(n, now),
                Verdict::Allow,
                "a new source gets its burst"
            );
            assert!(sources.len() <= capacity, "{} sources", sources.len());
            if n % 10_000 == 0 {
                // Forgetting the victim would give it a fresh burst.
                assert_eq!(allowed(&mut sources, 0, 1, now), 0, "after {n} sources");
            }
        }
        assert!(sources.len() >= capacity - capacity / 8 - 1, "{}", sources.len());
    }

    #[test]
    fn sources_whose_buckets_refilled_are_forgotten_first() {
        let t0 = Instant::now();
        let mut sources = Sources::new(RateLimit::per_second(1).burst(1), 8);
        for n in 0..8 {
            sources.check(n, t0);
        }
        // Two seconds on, every bucket is full: making room forgets them all.
        assert_eq!(sources.check(100, t0 + ms(2000)), Verdict::Allow);
        assert_eq!(sources.len(), 1);
    }

    #[test]
    fn ip_sources_are_addresses_and_ipv6_slash_64s() {
        let source = |text: &str| IpSource::from(text.parse::<IpAddr>().unwrap());
        assert_eq!(source("192.0.2.1"), source("::ffff:192.0.2.1"));
        assert_ne!(source("192.0.2.1"), source("192.0.2.2"));
        assert_eq!(source("2001:db8:1:2::1"), source("2001:db8:1:2:ffff::7"));
        assert_ne!(source("2001:db8:1:2::1"), source("2001:db8:1:3::1"));
        assert_eq!(source("192.0.2.1").to_string(), "192.0.2.1");
        assert_eq!(source("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn rates_parse_and_display() {
        assert_eq!("100/s".parse(), Ok(RateLimit::per_second(100)));
        assert_eq!("100".parse(), Ok(RateLimit::per_second(100)));
        assert_eq!("600/m".parse(), Ok(RateLimit::new(600, Duration::from_secs(60))));
        assert_eq!("5/h".parse::<RateLimit>().unwrap().to_string(), "5/h");
        assert_eq!(
            RateLimit::per_second(10).burst(3).to_string(),
            "10/s (bursts of 3)"
        );
        for bad in ["", "0/s", "x/s", "10/d", "-1", "1.5/s"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "10/d".parse::<RateLimit>(),
            Err("\"10/d\" is not a rate such as 100/s, 600/m or 10/h".to_owned())
        );
    }

    #[test]
    fn the_reply_cap_lets_greet_through_and_stops_amplification() {
        let cap = ReplyCap::default();
        // Greet answers M with `Hello, M`: seven bytes more, for any M.
        for request in [0, 1, 2, 3, 4, 57, 58, 1000, 65_500] {
            assert!(cap.allows(request, request + 7), "{request}");
        }
        assert!(cap.allows(0, 64));
        assert!(!cap.allows(0, 65));
        assert!(cap.allows(100, 300));
        assert!(!cap.allows(100, 301));
        // Exactly as large as the request.
        let once = ReplyCap::none().amplification(Some(1));
        assert!(once.allows(57, 64) && !once.allows(58, 65) && once.allows(1000, 1000));
        let absolute = ReplyCap::none().max_reply(Some(20));
        assert!(absolute.allows(1000, 20) && !absolute.allows(1000, 21));
        assert!(ReplyCap::none().allows(0, usize::MAX));
        assert!(ReplyCap::default().allows(usize::MAX, usize::MAX));
    }

    #[test]
    fn the_log_gate_passes_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut gate = LogGate::new(RateLimit::per_second(1));
        assert!(gate.admit(t0));
        assert!(!gate.admit(t0 + ms(500)));
        assert!(gate.admit(t0 + ms(1000)));
        assert!(!gate.admit(t0 + ms(1999)));
    }
}
