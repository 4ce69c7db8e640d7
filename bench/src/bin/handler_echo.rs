//! An echo server written as a sockit handler, for measuring the handler
//! path against the hand-written tokio echo (`tokio_echo`) and sockit's own
//! `Service` echo (`sockit serve --service echo`): raw framing, every read
//! written back as it came, on the multi-thread runtime.
//!
//! ```text
//! cargo run --release -p sockit-bench --bin handler_echo -- tcp://127.0.0.1:7000
//! ```

use sockit::{Connection, Endpoint, Framing, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint: Endpoint = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("tcp://127.0.0.1:7000")
        .parse()?;
    let server = Server::handler(|mut connection: Connection| async move {
        while let Some(bytes) = connection.receive().await {
            connection.write(bytes).await?;
        }
        Ok(())
    })
    .framing(Framing::Raw)
    .max_connections(100_000);
    let listener = server.bind(&endpoint).await?;
    listener
        .serve(async { tokio::signal::ctrl_c().await.unwrap() })
        .await?;
    Ok(())
}
