//! The fixed-rate (open-loop) schedule: when each request is meant to be
//! sent, as whole nanoseconds from the start, so that no rounding drifts.
//!
//! Request `j`, numbered across all connections, is intended `j × interval`
//! after the start, `interval` being `1 / rate` rounded to a nanosecond.
//! Connection `i` of `c` sends requests `i`, `i + c`, `i + 2c`, …, so together
//! the connections send one evenly spaced stream. The requests intended
//! during the warmup come first and are not measured.

use std::time::Duration;

use super::Length;

/// The schedule of a whole run at a fixed rate.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sockit::load::{Length, Schedule};
///
/// // 100 requests a second over 2 connections for 1 s, after 0.5 s of warmup.
/// let schedule = Schedule::new(100.0, 2, Duration::from_millis(500), Length::Duration(Duration::from_secs(1)));
/// assert_eq!(schedule.measured(), 100);
/// let second = schedule.conn(1);
/// assert_eq!(second.intended(0), Duration::from_millis(10));
/// assert_eq!(second.intended(1), Duration::from_millis(30));
/// assert_eq!(second.len(), 75);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    interval_ns: u64,
    connections: u64,
    warmup: u64,
    limit: u64,
}

impl Schedule {
    /// `rate` requests a second in all, over `connections`, for `length`
    /// after `warmup`.
    ///
    /// # Panics
    ///
    /// Panics unless `rate` is positive and finite and `connections` is at least 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::{Length, Schedule};
    ///
    /// // 1000 requests at 500 a second after 1 s of warmup: 500 warmup requests first.
    /// let schedule = Schedule::new(500.0, 4, Duration::from_secs(1), Length::Requests(1000));
    /// assert_eq!(schedule.measured(), 1000);
    /// let total: u64 = (0..4).map(|conn| schedule.conn(conn).len()).sum();
    /// assert_eq!(total, 1500);
    /// ```
    pub fn new(rate: f64, connections: usize, warmup: Duration, length: Length) -> Self {
        assert!(
            rate.is_finite() && rate > 0.0,
            "a rate of {rate} is not a positive number"
        );
        assert!(connections > 0, "a schedule needs a connection");
        let interval_ns = ((1e9 / rate).round() as u64).max(1);
        let until = |time: Duration| u64::try_from(time.as_nanos().div_ceil(u128::from(interval_ns)));
        let warmup_count = until(warmup).unwrap_or(u64::MAX);
        let limit = match length {
            Length::Requests(requests) => warmup_count.saturating_add(requests),
            Length::Duration(duration) => until(warmup.saturating_add(duration)).unwrap_or(u64::MAX),
        };
        Schedule {
            interval_ns,
            connections: connections as u64,
            warmup: warmup_count,
            limit,
        }
    }

    /// The time between two requests, all connections together.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::{Length, Schedule};
    ///
    /// let schedule = Schedule::new(3.0, 1, Duration::ZERO, Length::Requests(3));
    /// assert_eq!(schedule.interval(), Duration::from_nanos(333_333_333));
    /// ```
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns)
    }

    /// How many requests are intended after the warmup: the ones measured.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::{Length, Schedule};
    ///
    /// let schedule = Schedule::new(
    ///     1000.0,
    ///     10,
    ///     Duration::from_secs(2),
    ///     Length::Duration(Duration::from_secs(3)),
    /// );
    /// assert_eq!(schedule.measured(), 3000);
    /// ```
    pub fn measured(&self) -> u64 {
        self.limit - self.warmup
    }

    /// How long the measured requests take to send: their number times the interval.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::{Length, Schedule};
    ///
    /// let schedule = Schedule::new(200.0, 1, Duration::ZERO, Length::Requests(50));
    /// assert_eq!(schedule.measured_time(), Duration::from_millis(250));
    /// ```
    pub fn measured_time(&self) -> Duration {
        Duration::from_nanos(self.interval_ns.saturating_mul(self.measured()))
    }

    /// Connection `conn`'s share of the schedule.
    ///
    /// # Examples
    ///
    /// Requests are dealt to the connections in turn:
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::{Length, Schedule};
    ///
    /// let schedule = Schedule::new(1000.0, 3, Duration::ZERO, Length::Requests(7));
    /// let lens: Vec<u64> = (0..3).map(|conn| schedule.conn(conn).len()).collect();
    /// assert_eq!(lens, [3, 2, 2]);
    /// assert_eq!(schedule.conn(2).intended(0), Duration::from_millis(2));
    /// ```
    pub fn conn(&self, conn: u32) -> ConnSchedule {
        ConnSchedule {
            first: u64::from(conn),
            step: self.connections,
            interval_ns: self.interval_ns,
            warmup: self.warmup,
            limit: self.limit,
        }
    }
}

/// One connection's requests in a [`Schedule`], numbered from 0.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sockit::load::{Length, Schedule};
///
/// // 100 a second over 2 connections, half a second of warmup, then 1 s.
/// let schedule = Schedule::new(
///     100.0,
///     2,
///     Duration::from_millis(500),
///     Length::Duration(Duration::from_secs(1)),
/// );
/// let first = schedule.conn(0);
/// assert_eq!((first.len(), first.period()), (75, Duration::from_millis(20)));
/// assert!(!first.is_measured(24) && first.is_measured(25)); // request 25 is due at 500 ms
/// assert_eq!(first.due(Duration::from_millis(45)), 3); // at 0, 20 and 40 ms
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnSchedule {
    first: u64,
    step: u64,
    interval_ns: u64,
    warmup: u64,
    limit: u64,
}

impl ConnSchedule {
    /// How many requests this connection sends in all, warmup included.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::{Length, Schedule};
    ///
    /// let schedule = Schedule::new(10.0, 4, Duration::ZERO, Length::Requests(2));
    /// assert_eq!((schedule.conn(1).len(), schedule.conn(3).len()), (1, 0));
    /// ```
    pub fn len(&self) -> u64 {
        if self.first >= self.limit {
            0
        } else {
            (self.limit - 1 - self.first) / self.step + 1
        }
    }

    /// Whether this connection sends nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::{Length, Schedule};
    ///
    /// let schedule = Schedule::new(10.0, 4, Duration::ZERO, Length::Requests(2));
    /// assert!(!schedule.conn(1).is_empty());
    /// assert!(schedule.conn(2).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When request `n` is meant to be sent, from the start.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::{Length, Schedule};
    ///
    /// let schedule = Schedule::new(1000.0, 4, Duration::ZERO, Length::Requests(100));
    /// assert_eq!(schedule.conn(1).intended(2), Duration::from_millis(9)); // request 1 + 2 × 4
    /// ```
    pub fn intended(&self, n: u64) -> Duration {
        let ns =
            (u128::from(self.first) + u128::from(n) * u128::from(self.step)) * u128::from(self.interval_ns);
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// The time between two of this connection's requests.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::{Length, Schedule};
    ///
    /// let schedule = Schedule::new(1000.0, 4, Duration::ZERO, Length::Requests(100));
    /// assert_eq!(schedule.conn(0).period(), Duration::from_millis(4));
    /// ```
    pub fn period(&self) -> Duration {
        Duration::from_nanos(self.step.saturating_mul(self.interval_ns))
    }

    /// Whether request `n` comes after the warmup, and so is measured.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::{Length, Schedule};
    ///
    /// let schedule = Schedule::new(10.0, 1, Duration::from_secs(1), Length::Requests(5));
    /// let conn = schedule.conn(0);
    /// assert_eq!((0..conn.len()).filter(|&n| conn.is_measured(n)).count(), 5);
    /// assert!(!conn.is_measured(9) && conn.is_measured(10));
    /// ```
    pub fn is_measured(&self, n: u64) -> bool {
        self.first + n * self.step >= self.warmup
    }

    /// How many of this connection's requests are due `elapsed` after the
    /// start: intended at or before it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockit::load::{Length, Schedule};
    ///
    /// let conn = Schedule::new(100.0, 1, Duration::ZERO, Length::Requests(5)).conn(0);
    /// assert_eq!(conn.due(Duration::ZERO), 1);
    /// assert_eq!(conn.due(Duration::from_millis(25)), 3);
    /// assert_eq!(conn.due(Duration::from_secs(60)), 5); // never more than it sends
    /// ```
    pub fn due(&self, elapsed: Duration) -> u64 {
        let last = elapsed.as_nanos() / u128::from(self.interval_ns);
        let last = u64::try_from(last).unwrap_or(u64::MAX);
        if last < self.first {
            return 0;
        }
        ((last - self.first) / self.step + 1).min(self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn for_secs(seconds: u64) -> Length {
        Length::Duration(Duration::from_secs(seconds))
    }

    #[test]
    fn one_connection_sends_at_every_interval() {
        let schedule = Schedule::new(200.0, 1, Duration::ZERO, for_secs(1));
        assert_eq!(schedule.interval(), 5 * MS);
        assert_eq!(schedule.measured(), 200);
        assert_eq!(schedule.measured_time(), Duration::from_secs(1));
        let conn = schedule.conn(0);
        assert_eq!(conn.len(), 200);
        assert_eq!(conn.intended(0), Duration::ZERO);
        assert_eq!(conn.intended(199), 995 * MS);
        assert_eq!(conn.period(), 5 * MS);
        assert!(conn.is_measured(0));
    }

    #[test]
    fn connections_interleave_into_one_even_stream() {
        let schedule = Schedule::new(1000.0, 3, Duration::ZERO, Length::Requests(10));
        let mut times: Vec<Duration> = (0..3)
            .flat_map(|conn| {
                let conn = schedule.conn(conn);
                (0..conn.len()).map(move |n| conn.intended(n))
            })
            .collect();
        times.sort();
        let want: Vec<Duration> = (0..10).map(|j| j * MS).collect();
        assert_eq!(times, want);
        assert_eq!(
            [0, 1, 2].map(|conn| schedule.conn(conn).len()),
            [4, 3, 3],
            "10 requests over 3 connections"
        );
        assert_eq!(schedule.conn(1).period(), 3 * MS);
    }

    #[test]
    fn due_counts_the_requests_intended_so_far() {
        let schedule = Schedule::new(1000.0, 2, Duration::ZERO, Length::Requests(6));
        let (first, second) = (schedule.conn(0), schedule.conn(1));
        // Connection 0 sends at 0, 2, 4 ms; connection 1 at 1, 3, 5 ms.
        assert_eq!(first.due(Duration::ZERO), 1);
        assert_eq!(second.due(Duration::ZERO), 0);
        assert_eq!(second.due(MS - Duration::from_nanos(1)), 0);
        assert_eq!(second.due(MS), 1);
        assert_eq!(first.due(3 * MS), 2);
        assert_eq!(second.due(3 * MS), 2);
        assert_eq!(first.due(Duration::from_secs(60)), 3, "never more than its share");
        assert_eq!(second.due(Duration::from_secs(60)), 3);
    }

    #[test]
    fn warmup_requests_come_first_and_are_not_measured() {
        let schedule = Schedule::new(100.0, 1, 50 * MS, Length::Requests(3));
        let conn = schedule.conn(0);
        assert_eq!(conn.len(), 8, "5 in the warmup, then 3 measured");
        assert_eq!(schedule.measured(), 3);
        assert!(!conn.is_measured(4));
        assert!(conn.is_measured(5));
        assert_eq!(conn.intended(5), 50 * MS);
    }

    #[test]
    fn a_warmup_between_two_sends_rounds_up() {
        let schedule = Schedule::new(100.0, 1, 41 * MS, for_secs(1));
        let conn = schedule.conn(0);
        // Intended at 0, 10, …, 40 ms: five warmup requests; the sixth at 50 ms is measured.
        assert!(!conn.is_measured(4));
        assert!(conn.is_measured(5));
        // Measured: 50 ms up to (not including) 1041 ms, every 10 ms.
        assert_eq!(schedule.measured(), 100);
    }

    #[test]
    fn more_connections_than_requests_leaves_some_idle() {
        let schedule = Schedule::new(10.0, 4, Duration::ZERO, Length::Requests(2));
        assert_eq!([0, 1, 2, 3].map(|c| schedule.conn(c).len()), [1, 1, 0, 0]);
        assert!(schedule.conn(3).is_empty());
        assert_eq!(schedule.conn(3).due(Duration::from_secs(9)), 0);
    }

    #[test]
    fn rates_round_to_whole_nanoseconds() {
        let schedule = Schedule::new(3.0, 1, Duration::ZERO, for_secs(1));
        assert_eq!(schedule.interval(), Duration::from_nanos(333_333_333));
        assert_eq!(schedule.measured(), 4, "0, 1/3, 2/3 and 0.999999999 s");
        assert_eq!(
            Schedule::new(1e12, 1, Duration::ZERO, Length::Requests(1)).interval(),
            Duration::from_nanos(1)
        );
    }
}
