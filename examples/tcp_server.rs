//! The tutorial's threaded TCP server, retold with sockit: greets every
//! connection, answers `Hello, X!` to every message `X`, and closes on `exit`.
//!
//! Run it, then the tutorial's `tcp_client.py` (or `cargo run --example tcp_client`):
//!
//! ```text
//! cargo run --example tcp_server                # 127.0.0.1:8000, as the tutorial
//! cargo run --example tcp_server -- [::1]:8000  # or any address
//! ```
//!
//! Unlike the tutorial's, it does not sleep a second per message, serves each
//! connection as a task instead of a thread, and stops cleanly on Ctrl-C.

use sockit::{Endpoint, Flow, Replies, Server, Service};

/// The tutorial's `dealtcp`, as a sockit service.
struct Hello;

impl Service for Hello {
    fn greeting(&self, replies: &mut Replies<'_>) {
        replies.send(b"Hello, I am server");
    }

    fn message(&self, data: &[u8], replies: &mut Replies<'_>) -> Flow {
        if data == b"exit" {
            return Flow::Close;
        }
        replies.send_parts(&[b"Hello, ", data, b"!"]);
        Flow::Continue
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Logs "Accept new connection from ..." and "Connection from ... closed." on stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8000".into());
    let endpoint: Endpoint = address.parse()?;
    let listener = Server::new(Hello).bind(&endpoint).await?;
    println!("Waiting for connection on {}...", listener.local_endpoint());
    listener
        .serve(async { tokio::signal::ctrl_c().await.unwrap() })
        .await?;
    Ok(())
}
