//! A front for another server: each line from a client goes to BACKEND
//! (any sockit stream endpoint, over a connection of that client's own),
//! and the backend's one-line answer comes back. A slow backend holds up
//! only the clients waiting for it; one that cannot be reached gets that
//! client `ERR <reason>`, and everyone else is served.
//!
//! `cargo run --example backend [ENDPOINT] BACKEND` (default endpoint `tcp://127.0.0.1:8000`)

use std::io;
use std::time::Duration;

use sockit::{Connection, Endpoint, Framing, Server, StreamClient};

/// How long the backend has to connect, and to answer.
const PATIENCE: Duration = Duration::from_secs(10);

/// Why the backend gave no answer.
type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Asks `backend` about `line` over `upstream`, connecting first if need be.
async fn ask(
    backend: &Endpoint,
    upstream: &mut Option<StreamClient>,
    line: &[u8],
) -> Result<Vec<u8>, Failure> {
    let client = match upstream {
        Some(client) => client,
        None => upstream.insert(StreamClient::connect(backend, Framing::Line, PATIENCE).await?),
    };
    client.send(line).await?;
    match client.receive().await? {
        Some(answer) => Ok(answer.to_vec()),
        None => Err("the backend closed the connection".into()),
    }
}

async fn front(backend: Endpoint, mut connection: Connection) -> io::Result<()> {
    let mut upstream = None;
    while let Some(line) = connection.receive().await {
        match ask(&backend, &mut upstream, &line).await {
            Ok(answer) => connection.send(answer).await?,
            Err(error) => {
                upstream = None;
                // The error and what caused it: "cannot connect to …: Connection refused".
                let causes = std::iter::successors(Some(&*error as &dyn std::error::Error), |e| e.source());
                let reason: Vec<String> = causes.map(ToString::to_string).collect();
                connection.send(format!("ERR {}", reason.join(": "))).await?;
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() == 1 {
        args.insert(0, "tcp://127.0.0.1:8000".into());
    }
    let [endpoint, backend] =
        <[String; 2]>::try_from(args).map_err(|_| "usage: backend [ENDPOINT] BACKEND")?;
    let (endpoint, backend): (Endpoint, Endpoint) = (endpoint.parse()?, backend.parse()?);
    let listener = Server::handler(move |connection| front(backend.clone(), connection))
        .bind(&endpoint)
        .await?;
    println!("backend front listening on {}", listener.local_endpoint());
    listener
        .serve(async { tokio::signal::ctrl_c().await.unwrap() })
        .await?;
    Ok(())
}
