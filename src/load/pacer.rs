//! A periodic `timerfd` that wakes a connection at its fixed-rate send
//! times: tokio's timers tick in whole milliseconds, which at a fixed rate
//! would delay most sends, and so add up to a millisecond to every latency
//! measured from the intended send time.
//!
//! The timer is read, as `timerfd_create(2)` says, with `read(2)` when the
//! event loop finds it readable; a [`pipe::Receiver`] does exactly that and
//! nothing else, so it carries the timer's descriptor (tokio 1.54 deprecates
//! the safe `AsyncFd::new`, and its replacement is `unsafe`, which this
//! crate denies).

use std::io;
use std::time::Duration;

use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create, timerfd_settime,
};
use tokio::net::unix::pipe;
use tokio::time::Instant;

/// Wakes at `first`, then every `period`, on the monotonic clock that
/// [`Instant`] reads.
#[derive(Debug)]
pub(super) struct Pacer {
    timer: pipe::Receiver,
}

impl Pacer {
    /// A pacer whose first tick is at `first` (now, if that has passed) and
    /// then every `period`.
    ///
    /// The timer is armed relative to now, a little after `first` was
    /// computed, so it never ticks before a send is due.
    pub(super) fn new(first: Instant, period: Duration) -> io::Result<Self> {
        let timer = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // A zero value would disarm the timer: wait at least a nanosecond.
        let value = first
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        let spec = Itimerspec {
            it_interval: timespec(period.max(Duration::from_nanos(1))),
            it_value: timespec(value),
        };
        timerfd_settime(&timer, TimerfdTimerFlags::empty(), &spec)?;
        Ok(Pacer {
            timer: pipe::Receiver::from_owned_fd_unchecked(timer)?,
        })
    }

    /// Waits for the next tick (or returns at once if ticks passed unread).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a tick not read is read by the next call.
    pub(super) async fn tick(&self) -> io::Result<()> {
        // The number of ticks since the last read; the sender counts what is
        // due from the clock instead.
        let mut expirations = [0u8; 8];
        loop {
            self.timer.readable().await?;
            match self.timer.try_read(&mut expirations) {
                Ok(_) => return Ok(()),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return Err(error),
            }
        }
    }
}

fn timespec(duration: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: duration.subsec_nanos().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ticks_at_the_first_time_then_every_period_never_early() {
        let start = Instant::now();
        let first = start + Duration::from_millis(3);
        let pacer = Pacer::new(first, Duration::from_micros(1500)).unwrap();
        for n in 0..4 {
            pacer.tick().await.unwrap();
            let due = first + Duration::from_micros(1500) * n;
            assert!(Instant::now() >= due, "tick {n} came before {due:?}");
        }
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_first_time_past_ticks_at_once() {
        let pacer = Pacer::new(Instant::now() - Duration::from_secs(1), Duration::from_secs(3600)).unwrap();
        tokio::time::timeout(Duration::from_secs(5), pacer.tick())
            .await
            .expect("ticks at once")
            .unwrap();
    }
}
