//! What a run counted: requests, correct replies, errors by kind, bytes, and
//! every reply's latency in an HDR histogram.

use std::io;
use std::time::Duration;

use hdrhistogram::Histogram;

/// The longest latency the histogram tells apart (longer ones count as this).
const MAX_LATENCY: Duration = Duration::from_secs(100);

/// The counts of a run, and the latency of every correct reply.
///
/// Requests, replies, bytes and latencies count the measured part of a run
/// (after the warmup); errors count the whole run, warmup included, so no
/// wrong reply ever goes unreported.
///
/// # Examples
///
/// ```
/// use std::io::ErrorKind;
/// use std::time::Duration;
/// use sockit::load::Tally;
///
/// let mut tally = Tally::default();
/// tally.requests = 3;
/// tally.reply(Duration::from_micros(100));
/// tally.reply(Duration::from_micros(300));
/// tally.missing = 1;
/// tally.connection_error(ErrorKind::ConnectionReset);
/// assert_eq!((tally.replies, tally.errors()), (2, 2));
/// assert_eq!(tally.latency().len(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Tally {
    /// Requests sent (or, at a fixed rate, due to be sent).
    pub requests: u64,
    /// Correct replies: byte for byte what the request was owed.
    pub replies: u64,
    /// Correct replies to warmup requests (not in `replies`): with
    /// `replies`, what the server answered in all.
    pub warmup_replies: u64,
    /// Replies that came but were not what any request was owed: corrupt,
    /// too long or short, for another request, duplicated, or too late.
    pub wrong: u64,
    /// Requests that never got a reply: lost datagrams, and the requests in
    /// flight on a connection that failed or stalled, or never sent.
    pub missing: u64,
    /// Connections that stalled: a request waited longer than the timeout.
    pub timeouts: u64,
    /// Connections that failed (could not connect, reset, closed by the
    /// server, sent something that is not a message), by the kind of error.
    pub connection_errors: ConnectionErrors,
    /// Bytes of requests written, framing included.
    pub bytes_sent: u64,
    /// Bytes of replies read, framing included.
    pub bytes_received: u64,
    pub(super) latency: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            requests: 0,
            replies: 0,
            warmup_replies: 0,
            wrong: 0,
            missing: 0,
            timeouts: 0,
            connection_errors: ConnectionErrors::default(),
            bytes_sent: 0,
            bytes_received: 0,
            latency: Histogram::new_with_bounds(1, MAX_LATENCY.as_nanos() as u64, 3)
                .expect("valid histogram bounds"),
        }
    }
}

impl Tally {
    /// Counts a correct reply that took `latency`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::Tally;
    ///
    /// let mut tally = Tally::default();
    /// tally.reply(Duration::from_millis(2));
    /// assert_eq!(tally.replies, 1);
    /// assert_eq!(tally.percentiles().unwrap().max, 2_000_895); // 0.1% buckets
    /// ```
    pub fn reply(&mut self, latency: Duration) {
        self.replies += 1;
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.latency.saturating_record(ns);
    }

    /// Counts a connection that failed with `kind`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use sockit::load::Tally;
    ///
    /// let mut tally = Tally::default();
    /// tally.connection_error(ErrorKind::ConnectionRefused);
    /// tally.connection_error(ErrorKind::ConnectionRefused);
    /// assert_eq!(tally.connection_errors.iter().collect::<Vec<_>>(), [(ErrorKind::ConnectionRefused, 2)]);
    /// ```
    pub fn connection_error(&mut self, kind: io::ErrorKind) {
        self.connection_errors.add(kind, 1);
    }

    /// Every error counted: wrong, missing, timeouts and connection errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::Tally;
    ///
    /// let mut tally = Tally::default();
    /// (tally.wrong, tally.missing, tally.timeouts) = (1, 2, 3);
    /// assert_eq!(tally.errors(), 6);
    /// ```
    pub fn errors(&self) -> u64 {
        self.wrong + self.missing + self.timeouts + self.connection_errors.total()
    }

    /// The latency of every correct reply, in nanoseconds.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::Tally;
    ///
    /// let mut tally = Tally::default();
    /// for us in 1..=100 {
    ///     tally.reply(Duration::from_micros(us));
    /// }
    /// assert_eq!(tally.latency().len(), 100);
    /// assert_eq!(tally.latency().value_at_quantile(0.5), 50_015); // ns
    /// ```
    pub fn latency(&self) -> &Histogram<u64> {
        &self.latency
    }

    /// The latency percentiles, or `None` before the first correct reply.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::Tally;
    ///
    /// let mut tally = Tally::default();
    /// assert!(tally.percentiles().is_none());
    /// tally.reply(Duration::from_micros(7));
    /// assert_eq!(tally.percentiles().unwrap().min, 7_000);
    /// ```
    pub fn percentiles(&self) -> Option<Percentiles> {
        Percentiles::of(&self.latency)
    }
}

/// Failed connections by the kind of error, in the order first seen.
///
/// # Examples
///
/// ```
/// use std::io::ErrorKind;
/// use sockit::load::ConnectionErrors;
///
/// let mut errors = ConnectionErrors::default();
/// errors.add(ErrorKind::ConnectionReset, 2);
/// errors.add(ErrorKind::TimedOut, 1);
/// errors.add(ErrorKind::ConnectionReset, 1);
/// assert_eq!(errors.total(), 4);
/// let kinds: Vec<_> = errors.iter().collect();
/// assert_eq!(kinds, [(ErrorKind::ConnectionReset, 3), (ErrorKind::TimedOut, 1)]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionErrors(Vec<(io::ErrorKind, u64)>);

impl ConnectionErrors {
    /// Adds `count` errors of `kind`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use sockit::load::ConnectionErrors;
    ///
    /// let mut errors = ConnectionErrors::default();
    /// errors.add(ErrorKind::BrokenPipe, 5);
    /// assert_eq!(errors.total(), 5);
    /// ```
    pub fn add(&mut self, kind: io::ErrorKind, count: u64) {
        match self.0.iter_mut().find(|(seen, _)| *seen == kind) {
            Some((_, seen)) => *seen += count,
            None => self.0.push((kind, count)),
        }
    }

    /// How many connections failed, of every kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::load::ConnectionErrors;
    ///
    /// assert_eq!(ConnectionErrors::default().total(), 0);
    /// ```
    pub fn total(&self) -> u64 {
        self.0.iter().map(|(_, count)| count).sum()
    }

    /// Each kind with its count.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use sockit::load::ConnectionErrors;
    ///
    /// let mut errors = ConnectionErrors::default();
    /// errors.add(ErrorKind::ConnectionRefused, 1);
    /// let line: Vec<String> = errors.iter().map(|(kind, n)| format!("{n} {kind}")).collect();
    /// assert_eq!(line, ["1 connection refused"]);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (io::ErrorKind, u64)> + '_ {
        self.0.iter().copied()
    }
}

/// Latency percentiles, in nanoseconds.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sockit::load::Tally;
///
/// let mut tally = Tally::default();
/// for ms in [1, 1, 1, 1, 1, 1, 1, 1, 1, 100] {
///     tally.reply(Duration::from_millis(ms));
/// }
/// let p = tally.percentiles().unwrap();
/// assert!(p.p50 < 1_001_000 && p.p99 > 99_000_000);
/// assert!((p.mean - 10_900_000.0).abs() < 20_000.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// The fastest reply.
    pub min: u64,
    /// The mean.
    pub mean: f64,
    /// The median.
    pub p50: u64,
    /// The 90th percentile.
    pub p90: u64,
    /// The 99th percentile.
    pub p99: u64,
    /// The 99.9th percentile.
    pub p99_9: u64,
    /// The slowest reply.
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of `histogram`, or `None` if it is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use hdrhistogram::Histogram;
    /// use sockit::load::Percentiles;
    ///
    /// let mut histogram = Histogram::<u64>::new(3).unwrap();
    /// assert!(Percentiles::of(&histogram).is_none());
    /// histogram += 1_000;
    /// histogram += 2_000;
    /// let p = Percentiles::of(&histogram).unwrap();
    /// assert_eq!((p.min, p.p50, p.max, p.mean), (1_000, 1_000, 2_000, 1_500.0));
    /// ```
    pub fn of(histogram: &Histogram<u64>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        // Report what was recorded: the histogram's buckets are 0.1% wide, and
        // the smallest and largest values are kept at that precision too.
        let at = |quantile| histogram.value_at_quantile(quantile);
        Some(Percentiles {
            min: histogram.min(),
            mean: histogram.mean(),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p99_9: at(0.999),
            max: histogram.max(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut tally = Tally::default();
        assert_eq!(tally.percentiles(), None);
        // 1 µs … 1000 µs, one reply each.
        for us in 1..=1000 {
            tally.reply(us * US);
        }
        let p = tally.percentiles().unwrap();
        assert_eq!(tally.replies, 1000);
        assert_eq!(p.min, 1000);
        // Within the histogram's three significant digits.
        assert_eq!(
            (p.p50, p.p90, p.p99, p.p99_9),
            (500_223, 900_095, 990_207, 999_423)
        );
        assert_eq!(p.max, 1_000_447);
        assert!((p.mean - 500_500.0).abs() < 500.0, "{}", p.mean);
    }

    #[test]
    fn latencies_past_the_histogram_saturate_and_zero_counts_as_one_nanosecond() {
        let mut tally = Tally::default();
        tally.reply(Duration::from_secs(1000));
        tally.reply(Duration::ZERO);
        let p = tally.percentiles().unwrap();
        assert_eq!(p.min, 1);
        assert!(p.max >= MAX_LATENCY.as_nanos() as u64, "{}", p.max);
        assert_eq!(tally.replies, 2);
    }

    #[test]
    fn errors_add_up_by_kind() {
        let mut tally = Tally {
            wrong: 2,
            missing: 3,
            timeouts: 1,
            ..Tally::default()
        };
        tally.connection_error(io::ErrorKind::ConnectionReset);
        tally.connection_error(io::ErrorKind::ConnectionRefused);
        tally.connection_error(io::ErrorKind::ConnectionReset);
        assert_eq!(
            tally.connection_errors.iter().collect::<Vec<_>>(),
            [
                (io::ErrorKind::ConnectionReset, 2),
                (io::ErrorKind::ConnectionRefused, 1)
            ]
        );
        assert_eq!(tally.errors(), 2 + 3 + 1 + 3);
    }
}
