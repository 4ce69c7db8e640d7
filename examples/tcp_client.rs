//! The tutorial's TCP client, retold with sockit: prints the greeting, sends
//! `client1`, `client2`, `client3`, prints each reply, then sends `exit`.
//! Its output is the tutorial's, byte for byte.
//!
//! Start a server first (`sockit serve`, `cargo run --example tcp_server`, or
//! the tutorial's `tcp_server.py`), then:
//!
//! ```text
//! cargo run --example tcp_client                # 127.0.0.1:8000, as the tutorial
//! cargo run --example tcp_client -- [::1]:8000  # or any address
//! ```

use std::time::Duration;

use sockit::{Endpoint, Framing, StreamClient};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8000".into());
    let endpoint: Endpoint = address.parse()?;
    // The tutorial's server sleeps a second per message: wait longer than that.
    let mut client = StreamClient::connect(&endpoint, Framing::Raw, Duration::from_secs(5)).await?;
    let greeting = client.receive().await?.unwrap_or_default();
    println!("接收到的服务端数据:{}", String::from_utf8_lossy(&greeting));
    for data in ["client1", "client2", "client3"] {
        client.send(data.as_bytes()).await?;
        let reply = client.receive().await?.unwrap_or_default();
        println!("服务端又返回来的数据:{} ", String::from_utf8_lossy(&reply));
    }
    client.send(b"exit").await?;
    Ok(())
}
