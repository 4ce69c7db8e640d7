//! Connection handlers, as an engineer writing a server uses them: every
//! endpoint kind and framing, the listener's limits, timeouts, TLS, the
//! PROXY protocol, Unix credentials, metrics, live limits and graceful
//! drain, each applied to a handler unchanged; and what handlers add: state
//! per connection, sending to other connections through a `Group`, bounded
//! send queues with backpressure, a slow reader let go. Real sockets
//! throughout, the exact bytes asserted.

mod common;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::pki::{Pki, connector};
use common::{TestDir, abstract_name, effective_ids, serve_in_background};
use sockit::handler::Connection;
use sockit::metrics::Metrics;
use sockit::proxy::{ProxyHeader, ProxyProtocol};
use sockit::{DatagramClient, Endpoint, Framing, Group, Server, StreamClient, WhenFull};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

/// Answers each message `N:MESSAGE`, N counting that connection's messages:
/// state that lives as long as the connection.
async fn numbered(mut connection: Connection) -> io::Result<()> {
    let mut count = 0;
    while let Some(message) = connection.receive().await {
        count += 1;
        connection
            .send([format!("{count}:").as_bytes(), &message].concat())
            .await?;
    }
    Ok(())
}

/// Binds `server` on `endpoint` and serves it until the token is cancelled;
/// the endpoint it listens on, and the serving task.
async fn serve<S: sockit::Answer>(
    server: &Server<S>,
    endpoint: &str,
) -> (
    Endpoint,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), sockit::Error>>,
) {
    let listener = server.bind(&endpoint.parse().unwrap()).await.unwrap();
    let local = listener.local_endpoint().clone();
    let stop = CancellationToken::new();
    let serving = tokio::spawn(listener.serve(stop.clone().cancelled_owned()));
    (local, stop, serving)
}

/// Whether `::1` can be bound here.
fn ipv6() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok() || {
        common::skip("::1 cannot be bound here (IPv6 disabled)");
        false
    }
}

/// Reads exactly `want.len()` bytes and compares them.
async fn expect(stream: &mut (impl AsyncReadExt + Unpin), want: &[u8]) {
    let mut got = vec![0; want.len()];
    tokio::time::timeout(WAIT, stream.read_exact(&mut got))
        .await
        .unwrap_or_else(|_| panic!("no {:?} within {WAIT:?}", String::from_utf8_lossy(want)))
        .unwrap_or_else(|error| panic!("expected {:?}: {error}", String::from_utf8_lossy(want)));
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
}

/// Reads until the peer closes; what came first.
async fn until_closed(stream: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut got))
        .await
        .expect("closed in time");
    got
}

async fn tcp(endpoint: &Endpoint) -> TcpStream {
    TcpStream::connect(endpoint.host_port().unwrap().socket_addr().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_handler_keeps_state_per_connection_on_every_endpoint_kind() {
    let dir = TestDir::new("handler-kinds");
    let mut streams = vec![
        "tcp://127.0.0.1:0".to_owned(),
        format!("unix:{}", dir.socket("stream.sock")),
        format!("unix:@{}", abstract_name("handler-kinds")),
        format!("seqpacket:{}", dir.socket("packet.sock")),
    ];
    let mut datagrams = vec![
        "udp://127.0.0.1:0".to_owned(),
        format!("unix-dgram:{}", dir.socket("dgram.sock")),
    ];
    if ipv6() {
        streams.push("tcp://[::1]:0".to_owned());
        datagrams.push("udp://[::1]:0".to_owned());
    }
    let server = Server::handler(numbered);
    for endpoint in &streams {
        let (local, stop, serving) = serve(&server, endpoint).await;
        let mut one = StreamClient::connect(&local, Framing::Line, WAIT).await.unwrap();
        let mut two = StreamClient::connect(&local, Framing::Line, WAIT).await.unwrap();
        for (first, message, answer) in [
            (true, "a", "1:a"),
            (false, "x", "1:x"),
            (true, "b", "2:b"),
            (false, "y", "2:y"),
        ] {
            let client = if first { &mut one } else { &mut two };
            client.send(message.as_bytes()).await.unwrap();
            let got = client.receive().await.unwrap();
            assert_eq!(got.as_deref(), Some(answer.as_bytes()), "{endpoint}");
        }
        stop.cancel();
        serving.await.unwrap().unwrap();
    }
    for endpoint in &datagrams {
        let (local, stop, serving) = serve(&server, endpoint).await;
        let one = DatagramClient::connect(&local, WAIT, 0).await.unwrap();
        let two = DatagramClient::connect(&local, WAIT, 0).await.unwrap();
        assert_eq!(one.request(b"a").await.unwrap(), "1:a", "{endpoint}");
        assert_eq!(two.request(b"x").await.unwrap(), "1:x", "{endpoint}");
        assert_eq!(one.request(b"b").await.unwrap(), "2:b", "{endpoint}");
        // An empty datagram is a message too.
        assert_eq!(one.request(b"").await.unwrap(), "3:", "{endpoint}");
        stop.cancel();
        serving.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_handler_reads_and_writes_in_every_framing() {
    for (framing, sent, answered) in [
        (Framing::Line, &b"hi\nthere\n"[..], &b"1:hi\n2:there\n"[..]),
        (Framing::Line, b"crlf\r\n", b"1:crlf\n"),
        (Framing::Len32, b"\0\0\0\x02hi", b"\0\0\0\x041:hi"),
        (Framing::Raw, b"raw bytes", b"1:raw bytes"),
        (Framing::Auto, b"line\n", b"1:line\n"),
        // The seed's client: no newline, so one read is one message.
        (Framing::Auto, b"client1", b"1:client1"),
    ] {
        let server = Server::handler(numbered).framing(framing);
        let (local, stop, serving) = serve(&server, "tcp://127.0.0.1:0").await;
        let mut client = tcp(&local).await;
        client.write_all(sent).await.unwrap();
        expect(&mut client, answered).await;
        stop.cancel();
        serving.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn the_connection_limit_holds_back_or_refuses_the_next_connection() {
    // Wait (the default): the second is served once the first has gone.
    let server = Server::handler(numbered).max_connections(1);
    let (local, stop, _serving) = serve(&server, "tcp://127.0.0.1:0").await;
    let mut first = tcp(&local).await;
    first.write_all(b"a\n").await.unwrap();
    expect(&mut first, b"1:a\n").await;
    let mut second = tcp(&local).await;
    second.write_all(b"b\n").await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(300), second.read_u8()).await;
    assert!(early.is_err(), "served beside the first: {early:?}");
    drop(first);
    expect(&mut second, b"1:b\n").await;
    stop.cancel();

    // Refuse: closed at once, and the one being served is not disturbed.
    let server = Server::handler(numbered)
        .max_connections(1)
        .when_full(WhenFull::Refuse);
    let (local, stop, _serving) = serve(&server, "tcp://127.0.0.1:0").await;
    let mut first = tcp(&local).await;
    first.write_all(b"a\n").await.unwrap();
    expect(&mut first, b"1:a\n").await;
    let mut refused = tcp(&local).await;
    assert_eq!(until_closed(&mut refused).await, b"");
    first.write_all(b"b\n").await.unwrap();
    expect(&mut first, b"2:b\n").await;
    stop.cancel();
}

#[tokio::test]
async fn a_message_too_long_gets_the_error_reply_and_others_are_served() {
    let server = Server::handler(numbered).max_message(8);
    let (local, stop, _serving) = serve(&server, "tcp://127.0.0.1:0").await;
    let mut other = tcp(&local).await;
    let mut long = tcp(&local).await;
    long.write_all(b"short\nmuch too long\nnever\n").await.unwrap();
    assert_eq!(until_closed(&mut long).await, b"1:short\nERR message too long\n");
    other.write_all(b"still\n").await.unwrap();
    expect(&mut other, b"1:still\n").await;
    stop.cancel();
}

#[tokio::test]
async fn the_idle_and_read_timeouts_close_a_handlers_connection() {
    let idle = Duration::from_millis(300);
    let server = Server::handler(numbered).idle_timeout(idle).read_timeout(idle);
    let (local, stop, _serving) = serve(&server, "tcp://127.0.0.1:0").await;

    let mut silent = tcp(&local).await;
    silent.write_all(b"a\n").await.unwrap();
    expect(&mut silent, b"1:a\n").await;
    let started = Instant::now();
    assert_eq!(until_closed(&mut silent).await, b"");
    assert!(started.elapsed() >= idle, "closed after {:?}", started.elapsed());

    // Half a message, then more bytes, never the end of it.
    let mut trickle = tcp(&local).await;
    let started = Instant::now();
    let dripping = async {
        for _ in 0..20 {
            if trickle.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    dripping.await;
    let mut rest = Vec::new();
    let closed = trickle.read_to_end(&mut rest).await;
    assert!(closed.is_err() || rest.is_empty(), "{rest:?}");
    assert!(started.elapsed() >= idle, "closed after {:?}", started.elapsed());
    stop.cancel();
}

#[tokio::test]
async fn a_datagram_source_is_forgotten_after_the_idle_timeout() {
    let server = Server::handler(numbered).idle_timeout(Duration::from_millis(200));
    let (local, stop, serving) = serve(&server, "udp://127.0.0.1:0").await;
    let client = DatagramClient::connect(&local, WAIT, 0).await.unwrap();
    assert_eq!(client.request(b"a").await.unwrap(), "1:a");
    assert_eq!(client.request(b"b").await.unwrap(), "2:b");
    tokio::time::sleep(Duration::from_millis(600)).await;
    // A new conversation: the count starts again.
    assert_eq!(client.request(b"c").await.unwrap(), "1:c");
    stop.cancel();
    serving.await.unwrap().unwrap();
}

/// Greets with what the TLS handshake settled, then numbers messages.
async fn tls_details(connection: Connection) -> io::Result<()> {
    let tls = connection.tls().expect("a TLS connection").clone();
    let mut connection = connection;
    let greeting = format!(
        "sni={} alpn={}",
        tls.server_name.as_deref().unwrap_or("-"),
        String::from_utf8_lossy(tls.alpn.as_deref().unwrap_or(b"-"))
    );
    connection.send(greeting).await?;
    numbered(connection).await
}

#[tokio::test]
async fn a_handler_sees_the_tls_server_name_and_application_protocol() {
    let pki = Pki::new("handler-tls");
    let config = sockit::net::tls::server_config(&pki.path("cert.pem"), &pki.path("key.pem")).unwrap();
    let mut config = (*config).clone();
    config.alpn_protocols = vec![b"chat".to_vec(), b"kv".to_vec()];
    let server = Server::handler(tls_details).tls(Arc::new(config));
    let (addr, stop) = serve_in_background(&server, "tls://127.0.0.1:0").await;
    for (alpn, name, greeting) in [
        (&["kv"][..], "localhost", "sni=localhost alpn=kv\n"),
        (&[][..], "localhost", "sni=localhost alpn=-\n"),
        // An IP address is not sent as SNI.
        (&["chat"][..], "127.0.0.1", "sni=- alpn=chat\n"),
    ] {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let mut tls = connector(&pki, alpn).connect(name, tcp).await.unwrap();
        expect(&mut tls, greeting.as_bytes()).await;
        tls.write_all(b"secret\n").await.unwrap();
        expect(&mut tls, b"1:secret\n").await;
    }
    stop.cancel();
}

/// Answers each message with who the peer is, and what it came through.
async fn who(mut connection: Connection) -> io::Result<()> {
    while connection.receive().await.is_some() {
        let via = connection.via().map_or("-".to_owned(), ToString::to_string);
        let answer = format!("{} {} via {via}", connection.id(), connection.peer());
        connection.send(answer).await?;
    }
    Ok(())
}

#[tokio::test]
async fn behind_a_proxy_the_handler_sees_the_client_the_header_names() {
    let server = Server::handler(who).proxy_protocol(ProxyProtocol::new(["127.0.0.1".parse().unwrap()]));
    let (local, stop, _serving) = serve(&server, "tcp://127.0.0.1:0").await;
    let header = ProxyHeader::Proxied {
        source: "198.51.100.7:1234".parse().unwrap(),
        destination: "203.0.113.1:80".parse().unwrap(),
    };
    let mut client = tcp(&local).await;
    let proxy = client.local_addr().unwrap();
    client.write_all(&header.encode_v2()).await.unwrap();
    client.write_all(b"who?\n").await.unwrap();
    let mut answer = Vec::new();
    let mut byte = [0];
    while byte != *b"\n" {
        client.read_exact(&mut byte).await.unwrap();
        answer.push(byte[0]);
    }
    let answer = String::from_utf8(answer).unwrap();
    let (id, rest) = answer.split_once(' ').unwrap();
    assert!(id.starts_with('#'), "{answer:?}");
    assert_eq!(rest, format!("198.51.100.7:1234 via {proxy}\n"));
    stop.cancel();
}

#[tokio::test]
async fn a_unix_handler_sees_peer_credentials_and_tells_unnamed_clients_apart() {
    let dir = TestDir::new("handler-cred");
    let path = dir.socket("who.sock");
    let server = Server::handler(who);
    let (_local, stop, _serving) = serve(&server, &format!("unix:{path}")).await;
    let (uid, gid) = effective_ids();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut client = tokio::net::UnixStream::connect(&path).await.unwrap();
        client.write_all(b"who?\n").await.unwrap();
        let mut answer = String::new();
        let mut byte = [0];
        while byte != *b"\n" {
            client.read_exact(&mut byte).await.unwrap();
            answer.push(byte[0] as char);
        }
        let (id, rest) = answer.split_once(' ').unwrap();
        assert_eq!(
            rest,
            format!(
                "unix:unnamed (pid {}, uid {uid}, gid {gid}) via -\n",
                std::process::id()
            )
        );
        ids.push(id.to_owned());
    }
    assert_ne!(ids[0], ids[1], "two unnamed clients, one id");
    stop.cancel();
}

/// The metrics text of `metrics`.
fn metrics_text(metrics: &Metrics) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}

#[tokio::test]
async fn a_handlers_traffic_is_counted_in_the_metrics() {
    let metrics = Metrics::new();
    let server = Server::handler(numbered).metrics(&metrics);
    let (local, stop, serving) = serve(&server, "tcp://127.0.0.1:0").await;
    let mut client = tcp(&local).await;
    client.write_all(b"one\ntwo\n").await.unwrap();
    expect(&mut client, b"1:one\n2:two\n").await;
    client.shutdown().await.unwrap();
    assert_eq!(until_closed(&mut client).await, b"");
    stop.cancel();
    serving.await.unwrap().unwrap();
    let text = metrics_text(&metrics);
    for line in [
        format!("sockit_connections_total{{listener=\"{local}\"}} 1"),
        format!("sockit_connections_open{{listener=\"{local}\"}} 0"),
        format!("sockit_messages_received_total{{listener=\"{local}\"}} 2"),
        format!("sockit_replies_sent_total{{listener=\"{local}\"}} 2"),
        format!("sockit_bytes_received_total{{listener=\"{local}\"}} 8"),
        format!("sockit_bytes_sent_total{{listener=\"{local}\"}} 12"),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn limits_changed_while_serving_apply_to_handlers() {
    let server = Server::handler(numbered).max_connections(1);
    let limits = server.limits_handle();
    let (local, stop, _serving) = serve(&server, "tcp://127.0.0.1:0").await;
    let mut first = tcp(&local).await;
    first.write_all(b"a\n").await.unwrap();
    expect(&mut first, b"1:a\n").await;
    let mut second = tcp(&local).await;
    second.write_all(b"b\n").await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(300), second.read_u8()).await;
    assert!(early.is_err(), "served past the limit: {early:?}");
    // What SIGHUP does for `sockit serve`: new limits, for the open listener.
    let mut raised = limits.get();
    raised.max_connections = 2;
    raised.max_message = 4;
    limits.set(raised);
    expect(&mut second, b"1:b\n").await;
    // The new message limit applies to connections accepted from now on.
    let mut third = tcp(&local).await;
    third.write_all(b"too long\n").await.unwrap();
    drop(first);
    assert_eq!(until_closed(&mut third).await, b"ERR message too long\n");
    stop.cancel();
}

#[tokio::test]
async fn draining_lets_handlers_say_goodbye_and_cuts_the_stubborn_at_the_shutdown_timeout() {
    let server = Server::handler(|mut connection: Connection| async move {
        let Some(kind) = connection.receive().await else {
            return Ok(());
        };
        if kind == "stubborn" {
            // Ignores the drain: cut at the shutdown timeout.
            std::future::pending::<()>().await;
        }
        connection.draining().await;
        assert!(connection.is_draining());
        connection.send("bye").await
    })
    .shutdown_timeout(Duration::from_millis(500));
    let (local, stop, serving) = serve(&server, "tcp://127.0.0.1:0").await;
    let mut polite = tcp(&local).await;
    polite.write_all(b"polite\n").await.unwrap();
    let mut stubborn = tcp(&local).await;
    stubborn.write_all(b"stubborn\n").await.unwrap();
    // Both have been read before the drain starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    stop.cancel();
    assert_eq!(until_closed(&mut polite).await, b"bye\n");
    assert_eq!(until_closed(&mut stubborn).await, b"");
    // The listener says that it cut connections at the timeout: the
    // stubborn one at least (a connection still closing counts too).
    let served = tokio::time::timeout(WAIT, serving).await.unwrap().unwrap();
    assert!(
        matches!(served, Err(sockit::Error::Cut { connections, .. }) if connections >= 1),
        "{served:?}"
    );
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(450), "stopped after {took:?}");
    // New connections are not accepted once draining.
    assert!(
        TcpStream::connect(local.host_port().unwrap().socket_addr().unwrap())
            .await
            .is_err()
    );
}

/// A handler waiting in `receive` when the drain starts gets `None` at
/// once, on every kind of endpoint: none is left to the shutdown timeout.
#[tokio::test]
async fn a_handler_waiting_for_a_message_is_ended_by_the_drain() {
    for endpoint in [
        "tcp://127.0.0.1:0".to_owned(),
        format!("unix:@{}", abstract_name("handler-drain")),
    ] {
        let server = Server::handler(numbered).shutdown_timeout(Duration::from_secs(20));
        let (local, stop, serving) = serve(&server, &endpoint).await;
        let mut client = StreamClient::connect(&local, Framing::Line, WAIT).await.unwrap();
        client.send(b"a").await.unwrap();
        assert_eq!(client.receive().await.unwrap().unwrap(), "1:a");
        let started = Instant::now();
        stop.cancel();
        assert_eq!(client.receive().await.unwrap(), None, "{endpoint}");
        drop(client);
        let served = tokio::time::timeout(WAIT, serving).await.unwrap().unwrap();
        assert!(served.is_ok(), "{endpoint}: {served:?}");
        assert!(started.elapsed() < WAIT, "{endpoint}: {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn messages_that_arrived_before_the_drain_are_still_received() {
    let server = Server::handler(|mut connection: Connection| async move {
        while let Some(message) = connection.receive().await {
            if message == "wait" {
                // Busy while the next messages arrive and the drain starts:
                // they wait, unread, in the socket.
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            connection.send([&b"got "[..], &message].concat()).await?;
        }
        Ok(())
    });
    let (local, stop, serving) = serve(&server, "tcp://127.0.0.1:0").await;
    let mut client = tcp(&local).await;
    client.write_all(b"wait\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.write_all(b"a\nb\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.cancel();
    // Answered after the drain began, then closed; what comes after the
    // drain's one read is not (nothing here).
    assert_eq!(until_closed(&mut client).await, b"got wait\ngot a\ngot b\n");
    let served = tokio::time::timeout(WAIT, serving).await.unwrap().unwrap();
    assert!(served.is_ok(), "{served:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_that_stops_reading_is_let_go_and_the_rest_get_everything() {
    const LINE: usize = 1024;
    const LINES: usize = 16 * 1024;
    let room = Group::new();
    let metrics = Metrics::new();
    let server = {
        let room = room.clone();
        Server::handler(move |mut connection: Connection| {
            let room = room.clone();
            async move {
                let _member = room.join(&connection);
                while connection.receive().await.is_some() {}
                Ok(())
            }
        })
        .send_queue(64 * 1024)
        .metrics(&metrics)
    };
    let (local, stop, _serving) = serve(&server, "tcp://127.0.0.1:0").await;
    let addr = local.host_port().unwrap().socket_addr().unwrap();
    let mut fast = TcpStream::connect(addr).await.unwrap();
    // A small receive buffer, so that the kernel holds little for it.
    let slow_socket = tokio::net::TcpSocket::new_v4().unwrap();
    slow_socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = slow_socket.connect(addr).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while room.len() < 2 {
        assert!(Instant::now() < deadline, "both never joined");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reader = tokio::spawn(async move {
        let mut got = vec![0; LINE * LINES];
        tokio::time::timeout(WAIT, fast.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        got
    });
    // 16 MiB, at a pace the fast reader keeps up with.
    let mut sent = Vec::with_capacity(LINE * LINES);
    for n in 0..LINES {
        let mut line = format!("{n:>8} ").into_bytes();
        line.resize(LINE - 1, b'.');
        sent.extend_from_slice(&line);
        sent.push(b'\n');
        room.broadcast(&line);
        if n % 16 == 15 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let got = reader.await.unwrap();
    assert!(got == sent, "the fast reader's 16 MiB differ from what was sent");
    // The slow one was disconnected, and its handler's membership dropped.
    let deadline = Instant::now() + WAIT;
    while room.len() > 1 {
        assert!(Instant::now() < deadline, "the slow reader was never let go");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut read = 0;
    let mut buf = vec![0; 64 * 1024];
    while let Ok(Ok(count @ 1..)) = tokio::time::timeout(WAIT, slow.read(&mut buf)).await {
        read += count;
    }
    assert!(read < sent.len(), "the slow reader read it all ({read} bytes)");
    let text = metrics_text(&metrics);
    let fell = format!("sockit_errors_total{{listener=\"{local}\",kind=\"fell_behind\"}} 1");
    assert!(text.lines().any(|l| l == fell), "no {fell:?} in\n{text}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_waits_for_a_slow_reader_instead_of_queueing_without_bound() {
    const TOTAL: usize = 32 << 20;
    let accepted = Arc::new(AtomicUsize::new(0));
    let server = {
        let accepted = Arc::clone(&accepted);
        Server::handler(move |mut connection: Connection| {
            let accepted = Arc::clone(&accepted);
            async move {
                let piece = Bytes::from(vec![b'z'; 64 * 1024]);
                while accepted.load(Ordering::Relaxed) < TOTAL {
                    connection.write(&piece).await?;
                    accepted.fetch_add(piece.len(), Ordering::Relaxed);
                }
                Ok(())
            }
        })
        .send_queue(64 * 1024)
    };
    let (local, stop, _serving) = serve(&server, "tcp://127.0.0.1:0").await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut client = socket
        .connect(local.host_port().unwrap().socket_addr().unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stalled = accepted.load(Ordering::Relaxed);
    assert!(
        stalled < TOTAL / 2,
        "{stalled} bytes taken from a handler whose peer read nothing"
    );
    let mut got = 0;
    let mut buf = vec![0; 256 * 1024];
    loop {
        let count = tokio::time::timeout(WAIT, client.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if count == 0 {
            break;
        }
        assert!(buf[..count].iter().all(|byte| *byte == b'z'));
        got += count;
    }
    assert_eq!(got, TOTAL);
    stop.cancel();
}

#[tokio::test]
async fn a_handler_that_fails_or_panics_closes_only_its_own_connection() {
    let server = Server::handler(|mut connection: Connection| async move {
        while let Some(message) = connection.receive().await {
            match &message[..] {
                b"fail" => return Err(io::Error::other("this handler gave up")),
                b"panic" => panic!("this handler panicked"),
                _ => connection.send(message).await?,
            }
        }
        Ok(())
    });
    let (local, stop, _serving) = serve(&server, "tcp://127.0.0.1:0").await;
    let mut steady = tcp(&local).await;
    for ending in ["fail", "panic"] {
        let mut doomed = tcp(&local).await;
        doomed
            .write_all(format!("first\n{ending}\nnever\n").as_bytes())
            .await
            .unwrap();
        assert_eq!(until_closed(&mut doomed).await, b"first\n", "{ending}");
        steady.write_all(b"still here\n").await.unwrap();
        expect(&mut steady, b"still here\n").await;
    }
    stop.cancel();
}
