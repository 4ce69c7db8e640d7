//! The tutorial's UDP client, retold with sockit: sends `client1` and
//! `client2` as datagrams and prints each reply. Its output is the tutorial's,
//! byte for byte; unlike the tutorial's, it sends again when a reply is lost
//! and gives up with an error instead of waiting forever.
//!
//! Start a server first (`sockit serve udp://127.0.0.1:9000`,
//! `cargo run --example udp_server`, or the tutorial's `udp_server.py`), then:
//!
//! ```text
//! cargo run --example udp_client                # 127.0.0.1:9000, as the tutorial
//! cargo run --example udp_client -- [::1]:9000  # or any address
//! ```

use std::time::Duration;

use sockit::{DatagramClient, Endpoint};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9000".into());
    let endpoint: Endpoint = format!("udp://{address}").parse()?;
    let client = DatagramClient::connect(&endpoint, Duration::from_secs(1), 2).await?;
    for data in ["client1", "client2"] {
        let reply = client.request(data.as_bytes()).await?;
        println!("Received {}", String::from_utf8_lossy(&reply));
    }
    Ok(())
}
