//! A datagram socket served by a handler: each source address is a
//! connection of its own, with its own handler, fed the datagrams that
//! source sends; a source is forgotten when its handler returns, or after
//! the idle timeout without traffic.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::connection::{Input, Meta};
use super::drive::{Output, Transport, drive};
use super::{Handled, Handler};
use crate::answer::DatagramServing;
use crate::connection::Stop;
use crate::datagram;
use crate::limit::{LogGate, RateLimit};
use crate::metrics::ErrorKind;
use crate::net::listen::DatagramSocket;
use crate::{Endpoint, Peer};

/// Datagrams a source's handler may have waiting before more from that
/// source are dropped.
const WAITING: usize = 64;

/// Receives datagrams on `socket` until `shutdown`, each source's handed to
/// its own handler; then lets the handlers finish within the shutdown
/// timeout.
pub(crate) async fn serve<H: Handler>(
    handler: Arc<Handled<H>>,
    socket: DatagramSocket,
    serving: DatagramServing,
    shutdown: impl Future<Output = ()>,
) {
    let DatagramServing {
        local,
        settings,
        timeouts,
        permits,
        shutdown_timeout,
        metrics,
        ..
    } = serving;
    let socket = Arc::new(socket);
    let stop = Stop::new(timeouts, metrics, Some(local.clone()));
    let tracker = TaskTracker::new();
    let mut sources: HashMap<Peer, mpsc::Sender<Bytes>> = HashMap::new();
    let mut swept_at = 0;
    let mut dropped = Dropped::default();
    let mut buf = vec![0; settings.max_message.saturating_add(1).max(1 << 16)];
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let received = tokio::select! {
            biased;
            () = &mut shutdown => break,
            received = socket.recv_from(&mut buf) => received,
        };
        let (len, from) = match received {
            Ok(received) => received,
            Err(error) => {
                if let Some(metrics) = &stop.metrics {
                    metrics.error(ErrorKind::Receive);
                }
                datagram::receive_failed(&local, &error).await;
                continue;
            }
        };
        if len > settings.max_message {
            dropped.refuse(
                &stop,
                ErrorKind::MessageTooLong,
                &from,
                "longer than the longest message taken",
            );
            continue;
        }
        let mut datagram = Bytes::copy_from_slice(&buf[..len]);
        if let Some(source) = sources.get(&from) {
            match source.try_send(datagram) {
                Ok(()) => continue,
                Err(TrySendError::Full(_)) => {
                    dropped.refuse(
                        &stop,
                        ErrorKind::FellBehind,
                        &from,
                        "its handler has not taken the ones before",
                    );
                    continue;
                }
                // Its handler is done: the source starts afresh.
                Err(TrySendError::Closed(again)) => {
                    sources.remove(&from);
                    datagram = again;
                }
            }
        }
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            dropped.refuse(
                &stop,
                ErrorKind::RefusedFull,
                &from,
                "a new source, at the connection limit",
            );
            continue;
        };
        // Forget sources whose handlers are done, once their number doubles.
        if sources.len() >= 2 * swept_at.max(64) {
            sources.retain(|_, source| !source.is_closed());
            swept_at = sources.len();
        }
        let (source, datagrams) = mpsc::channel(WAITING);
        source.try_send(datagram).expect("a new channel has room");
        sources.insert(from.clone(), source);
        let forgotten = from.clone();
        let transport = Transport {
            meta: Meta {
                peer: from,
                via: None,
                local: local.clone(),
                tls: None,
            },
            input: Input::Datagrams(datagrams),
            output: Output::Datagrams(Arc::clone(&socket)),
        };
        let served = drive(Arc::clone(&handler), transport, settings, stop.clone());
        tracker.spawn(async move {
            served.await;
            debug!(peer = %forgotten, "datagram source forgotten");
            drop(permit);
        });
    }
    info!(listener = %local, sources = tracker.len(), "stopped receiving; finishing the sources' handlers");
    stop.finish.cancel();
    drop(sources);
    tracker.close();
    if tokio::time::timeout(shutdown_timeout, tracker.wait())
        .await
        .is_err()
    {
        warn!(listener = %local, open = tracker.len(), "shutdown timeout passed; stopping the handlers still running");
        stop.abort.cancel();
        tracker.wait().await;
    }
    dropped.summarize(&local);
}

/// Datagrams dropped before reaching a handler: counted, and logged a few
/// times a second at most.
struct Dropped {
    count: u64,
    log: LogGate,
}

impl Default for Dropped {
    fn default() -> Self {
        Dropped {
            count: 0,
            log: LogGate::new(RateLimit::per_second(1)),
        }
    }
}

impl Dropped {
    fn refuse(&mut self, stop: &Stop, kind: ErrorKind, from: &Peer, why: &str) {
        self.count += 1;
        if let Some(metrics) = &stop.metrics {
            metrics.error(kind);
        }
        if self.log.admit(tokio::time::Instant::now().into_std()) {
            warn!(peer = %from, dropped = self.count, "datagram dropped: {why}");
        }
    }

    fn summarize(&self, local: &Endpoint) {
        if self.count > 0 {
            info!(listener = %local, dropped = self.count, "datagrams dropped before their handlers");
        }
    }
}
