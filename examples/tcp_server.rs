//! The tutorial's threaded TCP server, retold with a sockit handler: the
//! greeting, `Hello, X!` after a one-second pause, `exit`, and its prints.
//! Each connection pauses on its own; fifty clients take as long as one.
//!
//! `cargo run --example tcp_server [ENDPOINT]` (default `tcp://127.0.0.1:8000`)

use std::time::Duration;

use sockit::{Connection, Endpoint, Framing, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tcp://127.0.0.1:8000".into());
    let server = Server::handler(|mut sock: Connection| async move {
        println!("Accept new connection from {}", sock.peer());
        sock.send("Hello, I am server").await?;
        while let Some(data) = sock.receive().await {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let data = String::from_utf8_lossy(&data);
            if data == "exit" {
                break;
            }
            println!("客户端发来的数据:{data}");
            sock.send(format!("Hello, {data}!")).await?;
        }
        println!("Connection from {} closed.", sock.peer());
        Ok(())
    });
    let listener = server
        .framing(Framing::Raw)
        .bind(&address.parse::<Endpoint>()?)
        .await?;
    println!("Waiting for connection on {}...", listener.local_endpoint());
    listener
        .serve(async { tokio::signal::ctrl_c().await.unwrap() })
        .await?;
    Ok(())
}
