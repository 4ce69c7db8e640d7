//! A chat room: a client's first line is its name; each line after it goes
//! to every other client as `NAME: LINE`, and the others hear `* NAME
//! joined` and `* NAME left`. Bytes pass through as sent (UTF-8 included).
//!
//! `cargo run --example chat [ENDPOINT]` (default `tcp://127.0.0.1:8000`),
//! then `nc 127.0.0.1 8000` from two terminals.

use sockit::{Connection, Endpoint, Group, Server};

/// One client's life in `room`.
async fn chat(room: Group, mut connection: Connection) -> std::io::Result<()> {
    let Some(name) = connection.receive().await else {
        return Ok(());
    };
    let me = room.join(&connection);
    room.broadcast_except(me.id(), [b"* ", &name[..], b" joined"].concat());
    while let Some(line) = connection.receive().await {
        room.broadcast_except(me.id(), [&name[..], b": ", &line[..]].concat());
    }
    drop(me);
    room.broadcast([b"* ", &name[..], b" left"].concat());
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
        .unwrap_or("tcp://127.0.0.1:8000")
        .parse()?;
    let room = Group::new();
    let server = Server::handler(move |connection| chat(room.clone(), connection));
    let listener = server.bind(&endpoint).await?;
    println!("chat listening on {}", listener.local_endpoint());
    listener
        .serve(async { tokio::signal::ctrl_c().await.unwrap() })
        .await?;
    Ok(())
}
