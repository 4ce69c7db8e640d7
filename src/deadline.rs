//! A connection's timeouts: closed when idle for too long, or when a message
//! takes too long to arrive (slowloris).
//!
//! Deadlines are lazy: progress only stamps the time (one clock read per
//! read or write, and none at all when no timeout is set); the timer is not
//! moved. When it fires, the connection is closed if the deadline has really
//! passed, or the timer is set again to the deadline the stamps say, so a
//! busy connection costs one timer update per idle period, not one per
//! message.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// How far off a timer with nothing to time is set.
const NEVER: Duration = Duration::from_secs(86_400 * 365);

/// The timeouts of a listener's connections; `None` is off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// No progress either way (nothing read, nothing written) for this long.
    pub idle: Option<Duration>,
    /// A message must arrive whole within this long of its first byte.
    pub read: Option<Duration>,
}

/// Which limit closed a connection. Without the limit itself, which the
/// listener's [`Timeouts`] hold: the connection's ending stays as small as
/// it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    Idle,
    Read,
}

impl Timeouts {
    /// Why a connection with these timeouts is closed, for the log.
    pub(crate) fn why(&self, expired: Expired) -> String {
        let format = |limit: Option<Duration>| humantime::format_duration(limit.unwrap_or_default());
        match expired {
            Expired::Idle => format!("idle for {}", format(self.idle)),
            Expired::Read => format!("a message took longer than {} to arrive", format(self.read)),
        }
    }

    /// The earliest deadline, and the limit it belongs to: `progress` is
    /// the last read or write that moved bytes, `started` the arrival of the
    /// first byte of the message still incomplete. While the connection
    /// waits to write (`writing`), it reads nothing, so only the idle
    /// timeout counts.
    pub(crate) fn due(
        &self,
        progress: Instant,
        started: Option<Instant>,
        writing: bool,
    ) -> Option<(Instant, Expired)> {
        let idle = self.idle.map(|limit| (progress + limit, Expired::Idle));
        let read = match (self.read, started) {
            (Some(limit), Some(started)) if !writing => Some((started + limit, Expired::Read)),
            _ => None,
        };
        match (idle, read) {
            (Some(idle), Some(read)) => Some(if read.0 < idle.0 { read } else { idle }),
            (one, other) => one.or(other),
        }
    }
}

/// Whether the incomplete message held after a read of `read` bytes, of
/// `held` bytes, is a new one (its first byte came in this read): either
/// none was held before, or a message ended in this read, leaving only
/// bytes of this read behind.
pub(crate) fn message_starts(held: usize, read: usize, held_before: bool) -> bool {
    held > 0 && (!held_before || held <= read)
}

pin_project_lite::pin_project! {
    /// The timer of one connection with timeouts, and the stamps it is
    /// checked against. Allocated only when a timeout is set.
    pub(crate) struct Deadline {
        #[pin]
        sleep: Sleep,
        timeouts: Timeouts,
        progress: Instant,
        started: Option<Instant>,
    }
}

impl Deadline {
    /// A deadline for a connection that starts now.
    pub(crate) fn new(timeouts: Timeouts) -> Pin<Box<Deadline>> {
        let now = Instant::now();
        let first = timeouts.idle.map_or(now + NEVER, |idle| now + idle);
        Box::pin(Deadline {
            sleep: tokio::time::sleep_until(first),
            timeouts,
            progress: now,
            started: None,
        })
    }

    /// Notes a read of `read` bytes after which `held` bytes of an
    /// incomplete message wait. Reads the clock only if the idle timeout is
    /// set or a message starts with the read timeout set, and moves the
    /// timer only to bring it forward for a new message.
    pub(crate) fn read(self: Pin<&mut Self>, read: usize, held: usize) {
        let mut this = self.project();
        let starts = this.timeouts.read.is_some() && message_starts(held, read, this.started.is_some());
        if held == 0 {
            *this.started = None;
        }
        if this.timeouts.idle.is_none() && !starts {
            return;
        }
        let now = Instant::now();
        if read > 0 {
            *this.progress = now;
        }
        if let (true, Some(limit)) = (starts, this.timeouts.read) {
            *this.started = Some(now);
            let at = now + limit;
            if at < this.sleep.deadline() {
                this.sleep.as_mut().reset(at);
            }
        }
    }

    /// Notes a write that moved bytes.
    pub(crate) fn wrote(self: Pin<&mut Self>) {
        if self.timeouts.idle.is_some() {
            *self.project().progress = Instant::now();
        }
    }

    /// Ready with the limit that passed, once one has; `writing` while the
    /// connection waits to write.
    pub(crate) fn poll_expired(self: Pin<&mut Self>, cx: &mut Context<'_>, writing: bool) -> Poll<Expired> {
        let mut this = self.project();
        loop {
            ready!(this.sleep.as_mut().poll(cx));
            let now = Instant::now();
            match this.timeouts.due(*this.progress, *this.started, writing) {
                Some((at, expired)) if at <= now => return Poll::Ready(expired),
                Some((at, _)) => this.sleep.as_mut().reset(at),
                None => this.sleep.as_mut().reset(now + NEVER),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn no_timeout_is_never_due() {
        let now = Instant::now();
        assert_eq!(Timeouts::default().due(now, Some(now), false), None);
    }

    #[test]
    fn the_idle_deadline_follows_the_last_progress() {
        let now = Instant::now();
        let idle = Timeouts {
            idle: Some(5 * S),
            read: None,
        };
        assert_eq!(idle.due(now, None, false), Some((now + 5 * S, Expired::Idle)));
        assert_eq!(
            idle.due(now + S, Some(now), true),
            Some((now + 6 * S, Expired::Idle))
        );
    }

    #[test]
    fn the_read_deadline_counts_from_the_first_byte_while_reading() {
        let now = Instant::now();
        let both = Timeouts {
            idle: Some(5 * S),
            read: Some(2 * S),
        };
        // Bytes keep trickling in (progress at 4 s), but the message began at 0.
        assert_eq!(
            both.due(now + 4 * S, Some(now), false),
            Some((now + 2 * S, Expired::Read))
        );
        // No message under way: only idle.
        assert_eq!(both.due(now, None, false), Some((now + 5 * S, Expired::Idle)));
        // Waiting to write, the connection reads nothing: only idle.
        assert_eq!(both.due(now, Some(now), true), Some((now + 5 * S, Expired::Idle)));
        let read_only = Timeouts {
            idle: None,
            read: Some(2 * S),
        };
        assert_eq!(read_only.due(now, None, false), None);
        assert_eq!(
            read_only.due(now, Some(now + S), false),
            Some((now + 3 * S, Expired::Read))
        );
    }

    #[test]
    fn a_message_starts_when_its_first_byte_is_in_the_read() {
        // Nothing held after the read: no message under way.
        assert!(!message_starts(0, 10, true));
        // The first partial message.
        assert!(message_starts(3, 3, false));
        // "bo" held, "b\nal" read, "al" held: a new message.
        assert!(message_starts(2, 4, true));
        // "bo" held, "b" read, "bob" held: the same message goes on.
        assert!(!message_starts(3, 1, true));
    }

    #[test]
    fn the_reason_names_the_limit() {
        let timeouts = Timeouts {
            idle: Some(5 * S),
            read: Some(Duration::from_millis(30_500)),
        };
        assert_eq!(timeouts.why(Expired::Idle), "idle for 5s");
        assert_eq!(
            timeouts.why(Expired::Read),
            "a message took longer than 30s 500ms to arrive"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_moves_lazily_to_the_real_deadline() {
        let timeouts = Timeouts {
            idle: Some(5 * S),
            read: None,
        };
        let mut deadline = Deadline::new(timeouts);
        let start = Instant::now();
        tokio::time::advance(3 * S).await;
        deadline.as_mut().read(4, 0);
        // The timer still says 5 s; at 5 s it finds the progress at 3 s and
        // waits until 8 s.
        let expired = std::future::poll_fn(|cx| deadline.as_mut().poll_expired(cx, false)).await;
        assert_eq!(expired, Expired::Idle);
        assert_eq!(Instant::now() - start, 8 * S);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_message_brings_the_timer_forward() {
        let timeouts = Timeouts {
            idle: Some(60 * S),
            read: Some(2 * S),
        };
        let mut deadline = Deadline::new(timeouts);
        let start = Instant::now();
        tokio::time::advance(S).await;
        deadline.as_mut().read(3, 3);
        tokio::time::advance(S / 2).await;
        // More of the same message: its deadline stays.
        deadline.as_mut().read(1, 4);
        let expired = std::future::poll_fn(|cx| deadline.as_mut().poll_expired(cx, false)).await;
        assert_eq!(expired, Expired::Read);
        assert_eq!(Instant::now() - start, 3 * S);
    }
}
