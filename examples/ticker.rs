//! Sends `tick N` to each client once a second without being asked (N
//! counts from 1 for each connection), and echoes every line it receives.
//!
//! `cargo run --example ticker [ENDPOINT]` (default `tcp://127.0.0.1:8000`)

use std::time::Duration;

use sockit::{Connection, Endpoint, Server};
use tokio::time::{Instant, MissedTickBehavior, interval_at};

async fn tick(mut connection: Connection) -> std::io::Result<()> {
    let second = Duration::from_secs(1);
    let mut ticks = interval_at(Instant::now() + second, second);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut count = 0;
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                count += 1;
                connection.send(format!("tick {count}")).await?;
            }
            line = connection.receive() => match line {
                Some(line) => connection.send(line).await?,
                None => return Ok(()),
            },
        }
    }
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
        .unwrap_or("tcp://127.0.0.1:8000")
        .parse()?;
    let listener = Server::handler(tick).bind(&endpoint).await?;
    println!("ticker listening on {}", listener.local_endpoint());
    listener
        .serve(async { tokio::signal::ctrl_c().await.unwrap() })
        .await?;
    Ok(())
}
