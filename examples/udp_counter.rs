//! Answers each datagram with `N\n`, N being how many datagrams its source
//! address has sent so far; a source is forgotten after 60 s of silence.
//! Each source is a connection of its own to a handler, with its own count.
//!
//! `cargo run --example udp_counter [ENDPOINT]` (default `udp://127.0.0.1:9000`)

use std::time::Duration;

use sockit::{Connection, Endpoint, Server};

async fn count(mut source: Connection) -> std::io::Result<()> {
    let mut count = 0u64;
    while source.receive().await.is_some() {
        count += 1;
        source.send(format!("{count}\n")).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let endpoint: Endpoint = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("udp://127.0.0.1:9000")
        .parse()?;
    let server = Server::handler(count).idle_timeout(Duration::from_secs(60));
    let listener = server.bind(&endpoint).await?;
    println!("udp counter listening on {}", listener.local_endpoint());
    listener
        .serve(async { tokio::signal::ctrl_c().await.unwrap() })
        .await?;
    Ok(())
}
