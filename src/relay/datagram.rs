//! Relaying datagrams: each client address gets a session, a socket of its
//! own connected to the target, so the target's replies come back on it and
//! go to that client. A session ends after the idle timeout; the sessions
//! are bounded by the relay's connection limit.
//!
//! Faults apply per direction of a session: each datagram's fate is drawn,
//! and it waits in that direction's [`DelayLine`] until due.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::faults::{DatagramPlan, Direction, Fate, REORDER_HOLD};
use super::line::{DelayLine, Pushed};
use super::{DirectionCounters, Shared, add, count};
use crate::client::DatagramLink;
use crate::datagram::receive_failed;
use crate::net::listen::DatagramSocket;
use crate::{Endpoint, Peer};

/// Datagrams from one client waiting for its session to take them.
const INBOX: usize = 1024;
/// How often sessions that ended are forgotten.
const SWEEP: Duration = Duration::from_secs(1);
/// Room for any datagram, and a byte more.
const RECEIVE_SIZE: usize = (1 << 16) + 1;

/// Receives datagrams on `socket` until `shutdown`, passing each to its
/// client's session; then ends every session, which sends what it holds.
pub(super) async fn serve(
    socket: DatagramSocket,
    local: &Endpoint,
    shared: &Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) {
    let socket = Arc::new(socket);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut sessions: HashMap<Peer, mpsc::Sender<Bytes>> = HashMap::new();
    let tracker = TaskTracker::new();
    let mut sweep = tokio::time::interval(SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut input = vec![0; RECEIVE_SIZE];
    let mut number = 0;
    let counters = shared.counters.direction(Direction::ToTarget);
    loop {
        let (len, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            _ = sweep.tick() => {
                sessions.retain(|_, inbox| !inbox.is_closed());
                continue;
            }
            received = socket.recv_from(&mut input) => match received {
                Ok(received) => received,
                Err(error) => {
                    receive_failed(local, &error).await;
                    continue;
                }
            },
        };
        count(&counters.received);
        add(&counters.bytes_in, len);
        let mut datagram = Bytes::copy_from_slice(&input[..len]);
        loop {
            if sessions.get(&peer).is_none_or(mpsc::Sender::is_closed) {
                sessions.retain(|_, inbox| !inbox.is_closed());
                if sessions.len() >= shared.max_connections {
                    warn!(%peer, sessions = sessions.len(), "too many sessions; datagram not forwarded");
                    count(&counters.failed);
                    break;
                }
                match open(&peer, number, &socket, shared, &tracker).await {
                    Ok(inbox) => {
                        sessions.insert(peer.clone(), inbox);
                        number += 1;
                    }
                    Err(error) => {
                        warn!(%peer, target = %shared.target, %error, "cannot open a socket to the target");
                        count(&counters.failed);
                        break;
                    }
                }
            }
            match sessions[&peer].try_send(datagram) {
                Ok(()) => break,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    debug!(%peer, "the session is behind; datagram not forwarded");
                    count(&counters.failed);
                    break;
                }
                // It ended just now: open another.
                Err(mpsc::error::TrySendError::Closed(again)) => datagram = again,
            }
        }
    }
    debug!(
        sessions = sessions.len(),
        "stopped receiving; ending the sessions"
    );
    drop(sessions);
    tracker.close();
    tracker.wait().await;
}

/// Opens session `number` for `peer`: a socket to the target, and the task
/// that relays both ways. Returns where to send the client's datagrams.
async fn open(
    peer: &Peer,
    number: u64,
    socket: &Arc<DatagramSocket>,
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
) -> std::io::Result<mpsc::Sender<Bytes>> {
    let upstream = DatagramLink::connect(
        shared
            .target
            .endpoint()
            .expect("Relay::bind relays datagrams to an endpoint"),
        &shared.target_addrs,
        &shared.options,
    )
    .await?;
    let (inbox, datagrams) = mpsc::channel(INBOX);
    count(&shared.counters.sessions);
    info!("relaying datagrams from {peer} (session {number})");
    let session = Session {
        peer: peer.clone(),
        listen: Arc::clone(socket),
        upstream,
        shared: Arc::clone(shared),
        to_target: Half::new(shared, number, Direction::ToTarget),
        to_client: Half::new(shared, number, Direction::ToClient),
    };
    tracker.spawn(session.run(datagrams));
    Ok(inbox)
}

/// One client's session.
struct Session {
    peer: Peer,
    /// The relay's listening socket, which replies leave from.
    listen: Arc<DatagramSocket>,
    /// The socket to the target, connected.
    upstream: DatagramLink,
    shared: Arc<Shared>,
    to_target: Half,
    to_client: Half,
}

/// One direction of a session: the fates of its datagrams, and those waiting.
struct Half {
    plan: DatagramPlan,
    line: DelayLine<Bytes>,
    direction: Direction,
}

impl Half {
    fn new(shared: &Shared, number: u64, direction: Direction) -> Self {
        Half {
            plan: DatagramPlan::new(&shared.faults, number, direction),
            line: DelayLine::new(REORDER_HOLD),
            direction,
        }
    }

    /// Draws the fate of a datagram that arrived at `now`, and counts it.
    fn admit(&mut self, datagram: Bytes, now: Instant, counters: &DirectionCounters, peer: &Peer) {
        let fate = self.plan.next_fate();
        if let Fate::Sent { duplicate, delay, .. } = fate {
            if duplicate {
                count(&counters.duplicated);
            }
            if delay > Duration::ZERO {
                count(&counters.delayed);
            }
        }
        match self.line.push(datagram, fate, now) {
            Pushed::Dropped => count(&counters.dropped),
            Pushed::Held => count(&counters.reordered),
            Pushed::Queued => {}
        }
        if fate != NO_FAULT {
            debug!(%peer, direction = self.direction.name(), ?fate, "fault injected");
        }
    }
}

/// The fate of a datagram no fault touched.
const NO_FAULT: Fate = Fate::Sent {
    duplicate: false,
    hold: false,
    delay: Duration::ZERO,
};

impl Session {
    /// Relays both ways until the relay stops (`datagrams` closes) or the
    /// session has been idle for the idle timeout; then sends at once what
    /// its delay lines still hold.
    async fn run(mut self, mut datagrams: mpsc::Receiver<Bytes>) {
        let counters = Arc::clone(&self.shared.counters);
        let idle_timeout = self.shared.idle_timeout;
        let mut reply = vec![0; RECEIVE_SIZE];
        let mut last_heard = Instant::now();
        loop {
            let idle_at = last_heard + idle_timeout;
            let wake = [self.to_target.line.next_due(), self.to_client.line.next_due()]
                .into_iter()
                .flatten()
                .min()
                .map_or(idle_at, |due| due.min(idle_at));
            tokio::select! {
                received = datagrams.recv() => {
                    let Some(datagram) = received else { break };
                    last_heard = Instant::now();
                    self.to_target.admit(datagram, last_heard, &counters.to_target, &self.peer);
                }
                received = self.upstream.recv(&mut reply) => match received {
                    Ok(len) => {
                        last_heard = Instant::now();
                        count(&counters.to_client.received);
                        add(&counters.to_client.bytes_in, len);
                        let datagram = Bytes::copy_from_slice(&reply[..len]);
                        self.to_client.admit(datagram, last_heard, &counters.to_client, &self.peer);
                    }
                    // A datagram sent earlier was refused: nothing listens there.
                    Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                        debug!(peer = %self.peer, target = %self.shared.target, %error, "the target refused a datagram");
                        count(&counters.to_target.failed);
                    }
                    // Anything else may repeat: never spin on it.
                    Err(error) => {
                        warn!(peer = %self.peer, target = %self.shared.target, %error, "receive from the target failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                () = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    let waiting = self.to_target.line.next_due().is_some() || self.to_client.line.next_due().is_some();
                    if now >= idle_at && !waiting {
                        debug!(peer = %self.peer, "session idle; ended");
                        // Take what came meanwhile, so it is not lost.
                        datagrams.close();
                        while let Ok(datagram) = datagrams.try_recv() {
                            self.to_target.admit(datagram, now, &counters.to_target, &self.peer);
                        }
                        break;
                    }
                }
            }
            self.send_due(Instant::now()).await;
        }
        let to_target = self.to_target.line.drain();
        for datagram in to_target {
            self.send(Direction::ToTarget, &datagram).await;
        }
        let to_client = self.to_client.line.drain();
        for datagram in to_client {
            self.send(Direction::ToClient, &datagram).await;
        }
    }

    /// Sends every datagram due by `now`, both ways.
    async fn send_due(&mut self, now: Instant) {
        while let Some(datagram) = self.to_target.line.pop_due(now) {
            self.send(Direction::ToTarget, &datagram).await;
        }
        while let Some(datagram) = self.to_client.line.pop_due(now) {
            self.send(Direction::ToClient, &datagram).await;
        }
    }

    /// Sends one datagram on, and counts it.
    async fn send(&self, direction: Direction, datagram: &[u8]) {
        let counters = self.shared.counters.direction(direction);
        let sent = match direction {
            Direction::ToTarget => self.upstream.send(datagram).await.map(drop),
            Direction::ToClient => self.listen.send_to(datagram, &self.peer).await,
        };
        match sent {
            Ok(()) => {
                count(&counters.forwarded);
                add(&counters.bytes_out, datagram.len());
            }
            Err(error) => {
                debug!(peer = %self.peer, direction = direction.name(), %error, "could not forward a datagram");
                count(&counters.failed);
            }
        }
    }
}
