//! The tutorial's UDP server, retold with sockit: answers every datagram `X`
//! with `Hello, X`.
//!
//! Run it, then the tutorial's `udp_client.py` (or `cargo run --example udp_client`):
//!
//! ```text
//! cargo run --example udp_server                # 127.0.0.1:9000, as the tutorial
//! cargo run --example udp_server -- [::1]:9000  # or any address
//! ```

use sockit::{Endpoint, Flow, Replies, Server, Service};

/// The tutorial's receive loop body, as a sockit service. Each datagram is
/// one message; everything sent in reply goes back as one datagram.
struct Hello;

impl Service for Hello {
    fn message(&self, data: &[u8], replies: &mut Replies<'_>) -> Flow {
        println!("Received from {}", replies.peer());
        replies.send_parts(&[b"Hello, ", data]);
        Flow::Continue
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9000".into());
    let endpoint: Endpoint = format!("udp://{address}").parse()?;
    let listener = Server::new(Hello).bind(&endpoint).await?;
    println!("Bind {}...", listener.local_endpoint());
    listener
        .serve(async { tokio::signal::ctrl_c().await.unwrap() })
        .await?;
    Ok(())
}
