//! Relaying streams: for each client accepted, a connection to the target,
//! and bytes copied both ways with each direction's faults (pieces, delay,
//! reset). An end of stream is passed on as a half-close; the pair ends
//! when both directions have.
//!
//! Either side may also be TLS (terminated on the listening side,
//! originated to the target), this process's stdin and stdout, or a
//! program: the bytes relayed are what they carry.
//!
//! A reset is an abortive close (`SO_LINGER` 0) of both connections, so a
//! TCP peer reads what was forwarded, then `ECONNRESET`. Unix stream sockets
//! (and stdin and stdout, and programs) have no reset: their peer reads an
//! end of stream.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use std::fmt;
use std::pin::Pin;

use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::faults::{Direction, Step, StreamPlan};
use super::side::{Side, Stream};
use super::splice;
use super::{DirectionCounters, Shared, add, count};
use crate::Endpoint;
use crate::net::listen::{AcceptErrors, Incoming, StreamListener};
use crate::net::{tcp as net_tcp, tls as net_tls, unix as net_unix};

/// How much one read takes in.
const READ_SIZE: usize = 16 * 1024;

/// Accepts clients until `shutdown`, relaying each to a connection of its
/// own to the target (stdin and stdout take one client only: then it stops
/// accepting); then closes every pair.
pub(super) async fn serve(
    mut listener: StreamListener,
    shared: &Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let permits = Arc::new(Semaphore::new(shared.max_connections.min(Semaphore::MAX_PERMITS)));
    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    let mut errors = AcceptErrors::new();
    let mut number = 0;
    loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("the permits are never closed"),
        };
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept(&shared.options) => accepted,
        };
        let (connection, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tokio::select! {
                    () = &mut shutdown => break,
                    () = errors.failed(&error, &mut listener) => {}
                }
                continue;
            }
        };
        errors.accepted();
        let client = match connection {
            Incoming::Tcp(stream) => Stream::Tcp(stream),
            Incoming::Unix(stream) => Stream::Unix(stream),
            Incoming::Seqpacket(_) => unreachable!("Relay::bind refuses seqpacket endpoints"),
        };
        count(&shared.counters.connections);
        info!("relaying connection {number} from {peer}");
        tracker.spawn(relay_pair(
            client,
            peer,
            number,
            Arc::clone(shared),
            stop.clone(),
            Some(permit),
        ));
        number += 1;
        if shared.target == Side::Stdio {
            debug!("stdin and stdout take one client: no more are accepted");
            // Until that one is done, or `shutdown`.
            tracker.close();
            tokio::select! {
                () = &mut shutdown => {}
                () = tracker.wait() => {}
            }
            break;
        }
    }
    debug!(
        open = tracker.len(),
        "stopped accepting; closing the connections relayed"
    );
    stop.cancel();
    tracker.close();
    tracker.wait().await;
}

/// Connects to the target (starts its program, takes stdin and stdout).
async fn connect_target(shared: &Shared) -> io::Result<Stream> {
    let endpoint = match &shared.target {
        Side::Stdio => return Stream::stdio(),
        Side::Program(program) => return Stream::program(program),
        Side::Endpoint(endpoint) => endpoint,
    };
    let tcp = || net_tcp::connect(&shared.target_addrs, shared.connect_timeout, &shared.options);
    match endpoint {
        Endpoint::Tcp(_) => tcp().await.map(Stream::Tcp),
        Endpoint::Tls(_) => {
            let tls = shared
                .client_tls
                .as_ref()
                .expect("Relay::bind refuses a tls:// target without TLS settings");
            let stream = tls
                .handshake(endpoint, tcp().await?, shared.connect_timeout)
                .await
                .map_err(io::Error::other)?;
            Ok(Stream::Other(Box::new(stream)))
        }
        Endpoint::Unix(addr) => net_unix::connect(addr, &shared.options).map(Stream::Unix),
        _ => unreachable!("Relay::bind relays streams only to streams"),
    }
}

/// The client's TLS handshake, when the relay terminates TLS.
async fn accept_tls(client: Stream, shared: &Shared) -> io::Result<Stream> {
    match (client, &shared.server_tls) {
        (Stream::Tcp(stream), Some(config)) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(config));
            let stream = net_tls::accept(&acceptor, stream, net_tls::HANDSHAKE_TIMEOUT).await?;
            Ok(Stream::Other(Box::new(stream)))
        }
        (client, _) => Ok(client),
    }
}

/// How a relayed pair ended.
enum Ending {
    /// Both directions reached their end of stream.
    Closed,
    /// A direction forwarded all that `reset_after` allows.
    Reset(Direction),
    /// Reading or writing failed in a direction.
    Failed(Direction, io::Error),
    /// The relay is stopping.
    Stopped,
}

/// Relays one client to a connection of its own to the target, until both
/// directions end, a reset, or `stop`.
pub(super) async fn relay_pair(
    client: Stream,
    peer: impl fmt::Display,
    number: u64,
    shared: Arc<Shared>,
    stop: CancellationToken,
    _permit: Option<OwnedSemaphorePermit>,
) {
    // The handshake and the connect are boxed: a pair's task holds, for
    // its whole life, room for the largest thing it ever awaits, and these
    // (a TLS handshake's state) are large and over early.
    let accepted = tokio::select! {
        () = stop.cancelled() => return,
        accepted = Box::pin(accept_tls(client, &shared)) => accepted,
    };
    let mut client = match accepted {
        Ok(client) => client,
        Err(error) => {
            info!(%peer, %error, "TLS handshake failed; closed");
            return;
        }
    };
    let connected = tokio::select! {
        () = stop.cancelled() => return,
        connected = Box::pin(connect_target(&shared)) => connected,
    };
    let mut target = match connected {
        Ok(target) => target,
        Err(error) => {
            // A target's certificate not trusted: the relay's flags fix it.
            match error
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<crate::Error>())
            {
                Some(crate::Error::Untrusted { reason, .. }) => warn!(
                    %peer,
                    target = %shared.target,
                    %error,
                    what_to_do = net_tls::untrusted_fix(reason),
                    "cannot reach the target; resetting the client"
                ),
                _ => {
                    warn!(%peer, target = %shared.target, %error, "cannot reach the target; resetting the client")
                }
            }
            reset(client);
            return;
        }
    };
    let ending = {
        let counters = &shared.counters;
        let plans = [Direction::ToTarget, Direction::ToClient]
            .map(|direction| StreamPlan::new(&shared.faults, number, direction));
        let [to_target_plan, to_client_plan] = plans;
        match (splice::Socket::of(&client), splice::Socket::of(&target)) {
            // Plain sockets both sides, and no fault on either way: the
            // bytes go from socket to socket without entering this process.
            (Some(client), Some(target))
                if to_target_plan.is_transparent() && to_client_plan.is_transparent() =>
            {
                // Pinned here, once: a future passed by value to an async
                // fn is stored there again, and the pair's task would hold
                // every copy for its whole life.
                debug!(%peer, "splicing both ways (zero-copy)");
                let to_target =
                    std::pin::pin!(spliced(client, target, counters.direction(Direction::ToTarget)));
                let to_client =
                    std::pin::pin!(spliced(target, client, counters.direction(Direction::ToClient)));
                both_ways(to_target, to_client, stop.cancelled()).await
            }
            // Boxed: a copying pair has its buffers on the heap anyway.
            _ => {
                debug!(%peer, "copying both ways");
                Box::pin(copied(
                    &mut client,
                    &mut target,
                    [to_target_plan, to_client_plan],
                    counters,
                    &stop,
                ))
                .await
            }
        }
    };
    match ending {
        Ending::Closed => debug!(%peer, "closed both ways"),
        Ending::Stopped => debug!(%peer, "closed: the relay is stopping"),
        Ending::Reset(direction) => {
            count(&shared.counters.resets);
            info!(
                %peer,
                direction = direction.name(),
                "reset after {} bytes, as asked",
                shared.faults.reset_after.unwrap_or_default()
            );
            reset(client);
            reset(target);
        }
        Ending::Failed(direction, error) => {
            debug!(%peer, direction = direction.name(), %error, "failed; resetting both sides");
            reset(client);
            reset(target);
        }
    }
}

/// Runs both directions until both end, one resets or fails, or `stop`.
async fn both_ways(
    mut to_target: Pin<&mut impl Future<Output = io::Result<Pumped>>>,
    mut to_client: Pin<&mut impl Future<Output = io::Result<Pumped>>>,
    stop: impl Future<Output = ()>,
) -> Ending {
    let mut stop = std::pin::pin!(stop);
    let (mut target_done, mut client_done) = (false, false);
    loop {
        let (direction, pumped) = tokio::select! {
            pumped = &mut to_target, if !target_done => {
                target_done = true;
                (Direction::ToTarget, pumped)
            }
            pumped = &mut to_client, if !client_done => {
                client_done = true;
                (Direction::ToClient, pumped)
            }
            () = &mut stop => return Ending::Stopped,
        };
        match pumped {
            Ok(Pumped::Ended) if target_done && client_done => return Ending::Closed,
            Ok(Pumped::Ended) => {}
            Ok(Pumped::Reset) => return Ending::Reset(direction),
            Err(error) => return Ending::Failed(direction, error),
        }
    }
}

/// One direction spliced: it only ends (no fault applies, so no reset).
async fn spliced(
    from: splice::Socket<'_>,
    to: splice::Socket<'_>,
    counters: &DirectionCounters,
) -> io::Result<Pumped> {
    splice::pump(from, to, counters).await.map(|()| Pumped::Ended)
}

/// Both directions copied through buffers, each with its plan's faults.
async fn copied(
    client: &mut Stream,
    target: &mut Stream,
    [to_target_plan, to_client_plan]: [StreamPlan; 2],
    counters: &super::Counters,
    stop: &CancellationToken,
) -> Ending {
    let (client_in, client_out) = halves(client);
    let (target_in, target_out) = halves(target);
    let to_target = std::pin::pin!(pump(
        client_in,
        target_out,
        to_target_plan,
        counters.direction(Direction::ToTarget),
    ));
    let to_client = std::pin::pin!(pump(
        target_in,
        client_out,
        to_client_plan,
        counters.direction(Direction::ToClient),
    ));
    both_ways(to_target, to_client, stop.cancelled()).await
}

/// How one direction ended.
enum Pumped {
    /// The end of stream was read and passed on.
    Ended,
    /// The reset point was reached.
    Reset,
}

/// Copies `from` to `to` as `plan` says, until the end of stream (passed on
/// with `shutdown`) or the reset point.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut plan: StreamPlan,
    counters: &DirectionCounters,
) -> io::Result<Pumped> {
    let mut buf = vec![0; READ_SIZE];
    loop {
        if plan.reset_due() {
            return Ok(Pumped::Reset);
        }
        let len = from.read(&mut buf).await?;
        if len == 0 {
            to.shutdown().await?;
            return Ok(Pumped::Ended);
        }
        count(&counters.received);
        add(&counters.bytes_in, len);
        let mut at = 0;
        while at < len {
            let Step::Write { len: piece, delay } = plan.next_step(len - at) else {
                return Ok(Pumped::Reset);
            };
            if delay > Duration::ZERO {
                count(&counters.delayed);
                tokio::time::sleep(delay).await;
            }
            to.write_all(&buf[at..at + piece]).await?;
            count(&counters.forwarded);
            add(&counters.bytes_out, piece);
            at += piece;
        }
    }
}

/// A stream's reading half, borrowed.
type ReadHalf<'a> = Box<dyn AsyncRead + Send + Unpin + 'a>;
/// A stream's writing half, borrowed.
type WriteHalf<'a> = Box<dyn AsyncWrite + Send + Unpin + 'a>;

/// The reading and writing halves of a stream, borrowed.
fn halves(stream: &mut Stream) -> (ReadHalf<'_>, WriteHalf<'_>) {
    match stream {
        Stream::Tcp(stream) => {
            let (read, write) = stream.split();
            (Box::new(read), Box::new(write))
        }
        Stream::Unix(stream) => {
            let (read, write) = stream.split();
            (Box::new(read), Box::new(write))
        }
        Stream::Other(duplex) => {
            let (read, write) = tokio::io::split(&mut **duplex);
            (Box::new(read), Box::new(write))
        }
    }
}

/// Closes a stream abortively: a TCP peer (TLS over TCP too) gets a reset
/// (`SO_LINGER` 0); a Unix peer, which cannot, an end of stream.
fn reset(stream: Stream) {
    if let Some(tcp) = stream.tcp()
        && let Err(error) = SockRef::from(tcp).set_linger(Some(Duration::ZERO))
    {
        debug!(%error, "cannot set SO_LINGER to reset the connection; closing it");
    }
    drop(stream);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pair's task holds its future for its whole life: an idle pair must
    /// not pay for the TLS handshakes, connects and copies it does not use.
    #[tokio::test]
    async fn an_idle_spliced_pair_holds_a_small_task() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let relay = super::super::Relay::new("tcp://127.0.0.1:9".parse().unwrap());
        let listen = Side::Endpoint("tcp://127.0.0.1:0".parse().unwrap());
        let shared = Arc::new(relay.shared(&listen).await.unwrap());
        let pair = relay_pair(
            Stream::Tcp(client),
            "peer",
            0,
            shared,
            CancellationToken::new(),
            None,
        );
        // 4,280 bytes before the large, early awaits were boxed and the
        // pumps pinned in place (1,808 now, debug build).
        assert!(
            std::mem::size_of_val(&pair) <= 2048,
            "{} bytes",
            std::mem::size_of_val(&pair)
        );
    }
}
