//! A listener's lines about its connections ("Accept new connection from
//! …", "Connection from … closed.", a failed TLS handshake): every one
//! while they come at a human pace; in a flood (a thousand slowloris
//! connections), at most [`PER_SECOND`] a second after a burst of
//! [`BURST`], and a line that says how many were not written.

use std::fmt;
use std::sync::Mutex;
use std::time::Instant;

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
pub(crate) struct ConnectionLog(Mutex<Gate>);

#[derive(Debug)]
struct Gate {
    gate: LogGate,
    /// Lines not written since the last one that was, by event.
    unwritten: [u64; 3],
}

impl Default for ConnectionLog {
    fn default() -> Self {
        ConnectionLog(Mutex::new(Gate {
            gate: LogGate::new(RateLimit::per_second(PER_SECOND).burst(BURST)),
            unwritten: [0; 3],
        }))
    }
}

impl ConnectionLog {
    /// Logs `line` (at INFO) about `event`, unless the rate is spent: then
    /// only counts it.
    pub(crate) fn line(&self, event: Event, line: fmt::Arguments<'_>) {
        let unwritten = {
            let mut gate = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !gate.gate.admit(Instant::now()) {
                gate.unwritten[event as usize] += 1;
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
        let unwritten = std::mem::take(
            &mut self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .unwritten,
        );
        say_unwritten(unwritten);
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
        let unwritten = log.0.lock().unwrap().unwritten;
        // The burst is written; what comes within the same instant past it
        // is counted (a refill of one line may have come meanwhile).
        assert!((49..=50).contains(&unwritten[0]), "{unwritten:?}");
        assert!(unwritten[1] <= 1, "{unwritten:?}");
        log.flush();
        assert_eq!(log.0.lock().unwrap().unwritten, [0; 3]);
    }
}
