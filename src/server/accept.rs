//! The accept loop of a stream listener: the connection limit (waiting or
//! refusing), trusted proxies, live limits, and one task per connection,
//! of the kind its listener serves (plain, TLS, or behind a PROXY header).

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::answer::{self, Accepted, Answer};
use crate::connection::log::Event;
use crate::connection::{self, Settings, Stop};
use crate::deadline::Timeouts;
use crate::limit::{LogGate, RateLimit};
use crate::live::LiveTls;
use crate::metrics::ErrorKind;
use crate::net::SocketOptions;
use crate::net::listen::{AcceptErrors, Incoming, StreamListener};
use crate::proxied;
use crate::proxy::ProxyProtocol;
use crate::{Limits, WhenFull};

/// The accept loop of a stream listener.
pub(super) struct Accepting<'a, S> {
    pub(super) listener: StreamListener,
    pub(super) options: &'a SocketOptions,
    pub(super) service: Arc<S>,
    pub(super) settings: Settings,
    pub(super) permits: Arc<Semaphore>,
    pub(super) live: tokio::sync::watch::Receiver<Option<Limits>>,
    pub(super) when_full: WhenFull,
    /// Headers to take from trusted load balancers, if on.
    pub(super) proxy: Option<Arc<ProxyProtocol>>,
    pub(super) tracker: &'a TaskTracker,
    /// Asks connections to finish, then drops those that did not in time;
    /// and their timeouts.
    pub(super) stop: Stop,
    /// A `tls://` listener's handshake.
    pub(super) tls: Option<LiveTls>,
    /// How long a TLS connection's handshake may take.
    pub(super) tls_handshake_timeout: std::time::Duration,
}

impl<S: Answer> Accepting<'_, S> {
    /// Accepts until `shutdown`. Waiting when full, it takes a connection
    /// permit before each accept; refusing, it takes one after, and closes
    /// the connection when none is free.
    pub(super) async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut errors = AcceptErrors::new();
        let mut full = Refusals::new(ErrorKind::RefusedFull);
        let mut untrusted = Refusals::new(ErrorKind::UntrustedProxy);
        loop {
            let waited = match self.when_full {
                WhenFull::Wait => Some(tokio::select! {
                    biased;
                    () = &mut shutdown => return,
                    permit = Arc::clone(&self.permits).acquire_owned() => permit.expect("the permits are never closed"),
                }),
                WhenFull::Refuse => None,
            };
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => return,
                accepted = self.listener.accept(self.options) => accepted,
            };
            let (connection, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    if let Some(metrics) = &self.stop.metrics {
                        metrics.error(ErrorKind::Accept);
                    }
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = errors.failed(&error, &mut self.listener) => {}
                    }
                    continue;
                }
            };
            errors.accepted();
            let permit = match waited {
                Some(permit) => permit,
                None => match Arc::clone(&self.permits).try_acquire_owned() {
                    Ok(permit) => permit,
                    Err(_) => {
                        if let Some(refused) = full.refuse(&self.stop) {
                            warn!(%peer, refused, "at the connection limit: new connections are closed at once");
                        }
                        drop(connection);
                        continue;
                    }
                },
            };
            if let Some(proxy) = &self.proxy
                && !proxy.trusts(&peer)
            {
                if let Some(untrusted) = untrusted.refuse(&self.stop) {
                    warn!(%peer, untrusted, "not a trusted proxy, and the PROXY protocol is on: connection closed at once");
                }
                drop(connection);
                continue;
            }
            if self.live.has_changed().unwrap_or(false)
                && let Some(limits) = *self.live.borrow_and_update()
            {
                self.settings.max_message = limits.max_message;
                let timeouts = Timeouts {
                    idle: limits.idle_timeout,
                    read: limits.read_timeout,
                };
                self.stop = self.stop.with_timeouts(timeouts);
            }
            if let Some(metrics) = &self.stop.metrics {
                metrics.opened();
            }
            if let Some(proxy) = &self.proxy {
                // Its header is read in the connection's own task, never here.
                self.tracker.spawn(proxied::serve(
                    connection,
                    peer,
                    proxy.timeout(),
                    self.tls
                        .as_mut()
                        .map(|tls| (tls.acceptor(), self.tls_handshake_timeout)),
                    Arc::clone(&self.service),
                    self.settings,
                    self.stop.clone(),
                    permit,
                ));
                continue;
            }
            self.stop
                .log
                .line(Event::Opened, format_args!("Accept new connection from {peer}"));
            if let Some(tls) = &mut self.tls {
                let Incoming::Tcp(stream) = connection else {
                    unreachable!("a tls:// listener listens on TCP")
                };
                // A task of another type: plain connections' stay as small as they were.
                self.tracker.spawn(connection::tls::serve(
                    stream,
                    tls.acceptor(),
                    self.tls_handshake_timeout,
                    Accepted::new(peer, None),
                    Arc::clone(&self.service),
                    self.settings,
                    self.stop.clone(),
                    permit,
                ));
                continue;
            }
            // What every open connection costs, so it is kept small (tested).
            self.tracker.spawn(answer::serve(
                connection,
                Accepted::new(peer, None),
                Arc::clone(&self.service),
                self.settings,
                self.stop.clone(),
                permit,
            ));
        }
    }
}

/// Peers an accept loop closes at once for one reason: counted (in the
/// metrics too) and logged once a second at most.
struct Refusals {
    kind: ErrorKind,
    count: u64,
    log: LogGate,
}

impl Refusals {
    fn new(kind: ErrorKind) -> Self {
        Refusals {
            kind,
            count: 0,
            log: LogGate::new(RateLimit::per_second(1)),
        }
    }

    /// Counts one more; the count so far when it is time to log it.
    fn refuse(&mut self, stop: &Stop) -> Option<u64> {
        self.count += 1;
        if let Some(metrics) = &stop.metrics {
            metrics.error(self.kind);
        }
        self.log
            .admit(tokio::time::Instant::now().into_std())
            .then_some(self.count)
    }
}
