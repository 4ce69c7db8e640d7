//! The delay line of one direction of a datagram session, pure: datagrams
//! go in with their [`Fate`] and the time they arrived, and come out when
//! due, in order of due time (and of arrival, for the same due time). The
//! caller owns the clock: it passes `now` in and sleeps until [`DelayLine::next_due`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use tokio::time::Instant;

use super::faults::Fate;

/// Datagrams waiting to be sent.
#[derive(Debug)]
pub(crate) struct DelayLine<T> {
    queue: BinaryHeap<Reverse<Entry<T>>>,
    /// A datagram held back for reordering, its copies, and when it goes
    /// anyway if no other datagram follows.
    held: Option<(T, u8, Instant)>,
    /// Arrival order, which breaks ties between equal due times.
    next: u64,
    /// How long a held datagram waits for a follower, after its own delay.
    hold: Duration,
}

/// A datagram and when it is due.
#[derive(Debug)]
struct Entry<T> {
    due: Instant,
    order: u64,
    datagram: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}

impl<T> Eq for Entry<T> {}

impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

/// What [`DelayLine::push`] did with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Dropped: nothing will be sent.
    Dropped,
    /// Queued to be sent when due.
    Queued,
    /// Held back behind the next datagram.
    Held,
}

impl<T: Clone> DelayLine<T> {
    /// An empty line whose held datagrams wait at most `hold` for a follower.
    pub(crate) fn new(hold: Duration) -> Self {
        DelayLine {
            queue: BinaryHeap::new(),
            held: None,
            next: 0,
            hold,
        }
    }

    /// Takes a datagram that arrived at `now` with its `fate`. A datagram to
    /// hold back while another is held is queued instead, and releases the
    /// held one right after itself, as any datagram sent does.
    pub(crate) fn push(&mut self, datagram: T, fate: Fate, now: Instant) -> Pushed {
        let Fate::Sent {
            duplicate,
            hold,
            delay,
        } = fate
        else {
            return Pushed::Dropped;
        };
        let due = now + delay;
        let copies = 1 + u8::from(duplicate);
        if hold && self.held.is_none() {
            self.held = Some((datagram, copies, due + self.hold));
            return Pushed::Held;
        }
        self.enqueue(datagram, copies, due);
        if let Some((held, copies, _)) = self.held.take() {
            self.enqueue(held, copies, due);
        }
        Pushed::Queued
    }

    fn enqueue(&mut self, datagram: T, copies: u8, due: Instant) {
        for _ in 0..copies {
            self.queue.push(Reverse(Entry {
                due,
                order: self.next,
                datagram: datagram.clone(),
            }));
            self.next += 1;
        }
    }

    /// When the next datagram is due, if any waits.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        let queued = self.queue.peek().map(|Reverse(entry)| entry.due);
        let held = self.held.as_ref().map(|&(_, _, due)| due);
        match (queued, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next datagram due by `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.held.as_ref().is_some_and(|&(_, _, due)| due <= now) {
            let (held, copies, due) = self.held.take().expect("checked");
            self.enqueue(held, copies, due);
        }
        if self.queue.peek().is_some_and(|Reverse(entry)| entry.due <= now) {
            return self.queue.pop().map(|Reverse(entry)| entry.datagram);
        }
        None
    }

    /// Everything still waiting, in the order it would have been sent.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        let mut all = Vec::with_capacity(self.queue.len() + 2);
        if let Some((held, copies, due)) = self.held.take() {
            self.enqueue(held, copies, due);
        }
        while let Some(Reverse(entry)) = self.queue.pop() {
            all.push(entry.datagram);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Duration = Duration::ZERO;

    fn sent(delay_ms: u64) -> Fate {
        Fate::Sent {
            duplicate: false,
            hold: false,
            delay: Duration::from_millis(delay_ms),
        }
    }

    fn held() -> Fate {
        Fate::Sent {
            duplicate: false,
            hold: true,
            delay: Duration::ZERO,
        }
    }

    /// Everything due by `at`, in order.
    fn due(line: &mut DelayLine<&'static str>, at: Instant) -> Vec<&'static str> {
        std::iter::from_fn(|| line.pop_due(at)).collect()
    }

    #[test]
    fn datagrams_come_out_when_due_in_order() {
        let t0 = Instant::now();
        let mut line = DelayLine::new(Duration::from_millis(100));
        assert_eq!(line.push("a", sent(10), t0), Pushed::Queued);
        assert_eq!(line.push("b", sent(5), t0), Pushed::Queued);
        assert_eq!(line.push("c", sent(5), t0), Pushed::Queued);
        assert_eq!(line.push("gone", Fate::Dropped, t0), Pushed::Dropped);
        assert_eq!(line.next_due(), Some(t0 + Duration::from_millis(5)));
        assert_eq!(due(&mut line, t0 + NOW), Vec::<&str>::new());
        assert_eq!(due(&mut line, t0 + Duration::from_millis(5)), ["b", "c"]);
        assert_eq!(due(&mut line, t0 + Duration::from_millis(10)), ["a"]);
        assert_eq!(line.next_due(), None);
    }

    #[test]
    fn a_held_datagram_goes_right_after_the_next() {
        let t0 = Instant::now();
        let mut line = DelayLine::new(Duration::from_millis(100));
        assert_eq!(line.push("a", held(), t0), Pushed::Held);
        assert_eq!(due(&mut line, t0), Vec::<&str>::new());
        // A second one to hold while one is held goes ahead and releases it.
        assert_eq!(line.push("b", held(), t0), Pushed::Queued);
        assert_eq!(line.push("c", held(), t0), Pushed::Held);
        assert_eq!(line.push("d", sent(0), t0), Pushed::Queued);
        assert_eq!(due(&mut line, t0), ["b", "a", "d", "c"]);
    }

    #[test]
    fn a_held_datagram_with_no_follower_goes_after_the_hold() {
        let t0 = Instant::now();
        let mut line = DelayLine::new(Duration::from_millis(100));
        line.push("a", held(), t0);
        assert_eq!(line.next_due(), Some(t0 + Duration::from_millis(100)));
        assert_eq!(due(&mut line, t0 + Duration::from_millis(99)), Vec::<&str>::new());
        assert_eq!(due(&mut line, t0 + Duration::from_millis(100)), ["a"]);
    }

    #[test]
    fn duplicates_come_out_back_to_back_and_drain_keeps_the_order() {
        let t0 = Instant::now();
        let mut line = DelayLine::new(Duration::from_millis(100));
        let twice = Fate::Sent {
            duplicate: true,
            hold: false,
            delay: Duration::from_millis(1),
        };
        line.push("a", twice, t0);
        line.push("b", sent(0), t0);
        line.push("c", held(), t0);
        assert_eq!(line.drain(), ["b", "a", "a", "c"]);
        assert_eq!(line.next_due(), None);
    }
}
