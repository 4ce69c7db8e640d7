//! Sends FILE's bytes to each connection, then closes it: streamed a piece
//! at a time with backpressure, so a slow reader of a large file costs the
//! server its send queue (256 KiB), not the file.
//!
//! `cargo run --example file_server [ENDPOINT] FILE` (default endpoint `tcp://127.0.0.1:8000`)

use std::path::{Path, PathBuf};

use sockit::{Connection, Endpoint, Server};
use tokio::io::AsyncReadExt;

async fn send_file(path: &Path, mut connection: Connection) -> std::io::Result<()> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut piece = vec![0; 64 * 1024];
    loop {
        let read = file.read(&mut piece).await?;
        if read == 0 {
            return Ok(());
        }
        connection.write(&piece[..read]).await?;
    }
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
    let [endpoint, file] = <[String; 2]>::try_from(args).map_err(|_| "usage: file_server [ENDPOINT] FILE")?;
    let (endpoint, file): (Endpoint, PathBuf) = (endpoint.parse()?, file.into());
    std::fs::File::open(&file).map_err(|error| format!("{}: {error}", file.display()))?;
    let server = Server::handler(move |connection| {
        let file = file.clone();
        async move { send_file(&file, connection).await }
    });
    let listener = server.bind(&endpoint).await?;
    println!("file server listening on {}", listener.local_endpoint());
    listener
        .serve(async { tokio::signal::ctrl_c().await.unwrap() })
        .await?;
    Ok(())
}
