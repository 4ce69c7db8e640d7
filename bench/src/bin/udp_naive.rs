//! The UDP baseline sockit's datagram figures are a ratio of: the naive
//! tokio loop a user would write first. One `UdpSocket` on the default
//! (multi-thread) runtime, `recv_from` then `send_to`, one datagram at a
//! time, answering every datagram `M` with `Hello, M` (the greeting
//! protocol for datagrams in PROTOCOL.md: no greeting, no `!`).
//!
//! ```text
//! cargo run --release -p sockit-bench --bin udp_naive -- 127.0.0.1:9000
//! ```

use tokio::net::UdpSocket;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".to_owned());
    let socket = UdpSocket::bind(&address).await?;
    let mut buf = vec![0u8; 65_536];
    let mut reply = Vec::with_capacity(buf.len() + 7);
    loop {
        let (n, peer) = socket.recv_from(&mut buf).await?;
        reply.clear();
        reply.extend_from_slice(b"Hello, ");
        reply.extend_from_slice(&buf[..n]);
        // A reply too long for one datagram fails alone; the loop goes on.
        let _ = socket.send_to(&reply, peer).await;
    }
}
