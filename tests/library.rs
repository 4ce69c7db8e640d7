//! The library API as an engineer uses it: a service written once, served on
//! TCP and UDP by one `Server`, stopped by a shutdown future the caller owns.

use std::time::Duration;

use sockit::{DatagramClient, Endpoint, Flow, Framing, Replies, Server, Service, StreamClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Answers every message in capitals; `bye` ends a stream conversation.
struct Shout;

impl Service for Shout {
    fn greeting(&self, replies: &mut Replies<'_>) {
        replies.send(b"WHAT?");
    }

    fn message(&self, message: &[u8], replies: &mut Replies<'_>) -> Flow {
        if message == b"bye" {
            return Flow::Close;
        }
        replies.send(&message.to_ascii_uppercase());
        Flow::Continue
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn one_service_serves_tcp_and_udp_until_shutdown() {
    let server = Server::new(Shout).framing(Framing::Line);
    let tcp = server.bind(&"tcp://127.0.0.1:0".parse().unwrap()).await.unwrap();
    let udp = server.bind(&"udp://[::1]:0".parse().unwrap()).await.unwrap();
    let tcp_endpoint = tcp.local_endpoint().clone();
    let udp_endpoint = udp.local_endpoint().clone();
    assert_ne!(tcp_endpoint.host_port().unwrap().port(), 0);
    assert!(
        udp_endpoint.to_string().starts_with("udp://[::1]:"),
        "{udp_endpoint}"
    );

    let stop = CancellationToken::new();
    let serving_tcp = tokio::spawn(tcp.serve(stop.clone().cancelled_owned()));
    let serving_udp = tokio::spawn(udp.serve(stop.clone().cancelled_owned()));

    let mut client = StreamClient::connect(&tcp_endpoint, Framing::Line, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(client.receive().await.unwrap().unwrap(), "WHAT?");
    client.send(b"hello").await.unwrap();
    assert_eq!(client.receive().await.unwrap().unwrap(), "HELLO");
    client.send(b"bye").await.unwrap();
    assert_eq!(client.receive().await.unwrap(), None);
    drop(client);

    let datagrams = DatagramClient::connect(&udp_endpoint, TIMEOUT, 0).await.unwrap();
    assert_eq!(datagrams.request(b"quiet").await.unwrap(), "QUIET");

    stop.cancel();
    for serving in [serving_tcp, serving_udp] {
        tokio::time::timeout(TIMEOUT, serving)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    let refused = StreamClient::connect(&tcp_endpoint, Framing::Line, TIMEOUT).await;
    assert!(
        matches!(refused, Err(sockit::Error::Connect { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn shutdown_lets_a_connection_finish_its_replies_then_closes_it() {
    let endpoint: Endpoint = "tcp://127.0.0.1:0".parse().unwrap();
    let listener = Server::new(sockit::Greet)
        .framing(Framing::Line)
        .bind(&endpoint)
        .await
        .unwrap();
    let addr = listener
        .local_endpoint()
        .host_port()
        .unwrap()
        .socket_addr()
        .unwrap();
    let stop = CancellationToken::new();
    let serving = tokio::spawn(listener.serve(stop.clone().cancelled_owned()));

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut greeting = [0; 19];
    stream.read_exact(&mut greeting).await.unwrap();
    stream.write_all(b"one\ntwo\n").await.unwrap();
    let mut replies = [0; 24];
    stream.read_exact(&mut replies).await.unwrap();
    assert_eq!(&replies, b"Hello, one!\nHello, two!\n");

    stop.cancel();
    // The server says end-of-stream, then waits for the client to close.
    let mut rest = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rest, b"");
    drop(stream);
    tokio::time::timeout(TIMEOUT, serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn bind_errors_name_the_endpoint() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = Endpoint::tcp(taken.local_addr().unwrap());
    let error = Server::new(sockit::Echo).bind(&endpoint).await.unwrap_err();
    let sockit::Error::Bind {
        endpoint: named,
        source,
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(named, &endpoint);
    assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
    assert_eq!(error.to_string(), format!("cannot listen on {endpoint}"));
}
