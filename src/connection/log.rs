//! A listener's lines about its connections ("Accept new connection from
//! …", "Connection from … closed.", a failed TLS handshake): every one
//! while they come at a human pace; in a flood (a thousand slowloris
//! connections), at most [`PER_SECOND`] a second after a burst of
//! [`BURST`], and a line that says how many were not written.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::info;

use crate::Peer;
use crate::limit::{LogGate, RateLimit};

/// Lines a second, once a flood has used up the burst.
pub(crate) const PER_SECOND: u32 = 20;
/// Lines written at once before the rate applies.
pub(crate) const BURST: u32 = 200;

/// What the line is about.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    Opened,
    Closed,
    HandshakeFailed,
}

/// The lines of one listener's connections, shared by all of them.
#[derive(Debug)]
pub(crate) struct ConnectionLog {
    gate: Mutex<Gate>,
    /// Raised when a line goes unwritten while none was: [`tell_unwritten`]
    /// then says so within a second.
    ///
    /// [`tell_unwritten`]: ConnectionLog::tell_unwritten
    held_back: Notify,
}

#[derive(Debug)]
struct Gate {
    gate: LogGate,
    /// Lines not written since the last one that was, by event.
    unwritten: [u64; 3],
}

impl Default for ConnectionLog {
    fn default() -> Self {
        ConnectionLog {
            gate: Mutex::new(Gate {
                gate: LogGate::new(RateLimit::per_second(PER_SECOND).burst(BURST)),
                unwritten: [0; 3],
            }),
            held_back: Notify::new(),
        }
    }
}

impl ConnectionLog {
    /// Logs `line` (at INFO) about `event`, unless the rate is spent: then
    /// only counts it.
    pub(crate) fn line(&self, event: Event, line: fmt::Arguments<'_>) {
        let unwritten = {
            let mut gate = self.lock();
            if !gate.gate.admit(Instant::now()) {
                let first = gate.unwritten == [0; 3];
                gate.unwritten[event as usize] += 1;
                drop(gate);
                if first {
                    self.held_back.notify_one();
                }
                return;
            }
            std::mem::take(&mut gate.unwritten)
        };
        say_unwritten(unwritten);
        info!("{line}");
    }

    /// "Connection from PEER closed."
    pub(crate) fn closed(&self, peer: &Peer) {
        self.line(Event::Closed, format_args!("Connection from {peer} closed."));
    }

    /// Says how many lines were not written, if any: when the listener
    /// stops, so that a flood's last second is told too.
    pub(crate) fn flush(&self) {
        let unwritten = std::mem::take(&mut self.lock().unwritten);
        say_unwritten(unwritten);
    }

    /// Says, a second after a line first goes unwritten, how many have
    /// since, for as long as it runs: so a flood is told within a second,
    /// not only with the next line written.
    ///
    /// It waits on no timer while every line is written: a timer armed all
    /// the time makes every wait of the worker thread look for the next
    /// deadline and read the clock (on one connection, about one in seven
    /// of the instructions spent per reply).
    pub(crate) async fn tell_unwritten(&self) {
        loop {
            self.held_back.notified().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.flush();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Gate> {
        self.gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The line for the lines not written.
fn say_unwritten([opened, closed, failed]: [u64; 3]) {
    if opened + closed + failed == 0 {
        return;
    }
    info!(
        "… and {opened} more connections opened, {closed} closed and {failed} TLS handshakes failed, not \
         logged one by one (at most {PER_SECOND} such lines a second per listener, after a burst of {BURST})"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_burst_lines_are_counted_not_written() {
        let log = ConnectionLog::default();
        for _ in 0..BURST + 50 {
            log.line(Event::Opened, format_args!("opened"));
        }
        log.closed(&Peer::from(
            "127.0.0.1:1".parse::<std::net::SocketAddr>().unwrap(),
        ));
        let unwritten = log.lock().unwritten;
        // The burst is written; what comes within the same instant past it
        // is counted (a refill of one line may have come meanwhile).
        assert!((49..=50).contains(&unwritten[0]), "{unwritten:?}");
        assert!(unwritten[1] <= 1, "{unwritten:?}");
        log.flush();
        assert_eq!(log.lock().unwritten, [0; 3]);
    }

    /// Lines held back are told a second after the first of them.
    #[tokio::test(start_paused = true)]
    async fn lines_held_back_are_told_within_a_second() {
        let log = std::sync::Arc::new(ConnectionLog::default());
        let telling = tokio::spawn({
            let log = std::sync::Arc::clone(&log);
            async move { log.tell_unwritten().await }
        });
        tokio::task::yield_now().await;
        for _ in 0..BURST + 10 {
            log.line(Event::Opened, format_args!("opened"));
        }
        assert!(log.lock().unwritten[0] >= 9);
        tokio::time::sleep(Duration::from_millis(999)).await;
        assert!(log.lock().unwritten[0] >= 9, "told before the second was up");
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(log.lock().unwritten, [0; 3], "not told within the second");
        telling.abort();
    }
}
