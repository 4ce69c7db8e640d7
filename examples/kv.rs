//! A key-value store shared by every connection, one command a line:
//! `SET key value` (the value is the rest of the line) answers `OK`,
//! `GET key` the value or `NIL`, `DEL key` `OK`; anything else
//! `ERR <reason>`, and the connection stays open.
//!
//! `cargo run --example kv [ENDPOINT]` (default `tcp://127.0.0.1:8000`)

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use sockit::{Connection, Endpoint, Handler, Server};

/// The store, and the handler of every connection to it.
#[derive(Default)]
struct Store(Mutex<HashMap<Bytes, Bytes>>);

impl Store {
    /// The answer to one command line.
    fn answer(&self, line: &Bytes) -> Bytes {
        let mut words = line.splitn(2, |byte| *byte == b' ');
        let command = words.next().unwrap_or_default();
        let rest = line.slice_ref(words.next().unwrap_or_default());
        let mut store = self.0.lock().unwrap();
        let one_key = !rest.is_empty() && !rest.contains(&b' ');
        match command {
            b"SET" => match rest.iter().position(|byte| *byte == b' ') {
                Some(space) if space > 0 => {
                    store.insert(rest.slice(..space), rest.slice(space + 1..));
                    Bytes::from_static(b"OK")
                }
                _ => Bytes::from_static(b"ERR usage: SET key value"),
            },
            b"GET" if one_key => store.get(&rest).cloned().unwrap_or(Bytes::from_static(b"NIL")),
            b"DEL" if one_key => {
                store.remove(&rest);
                Bytes::from_static(b"OK")
            }
            b"GET" => Bytes::from_static(b"ERR usage: GET key"),
            b"DEL" => Bytes::from_static(b"ERR usage: DEL key"),
            _ => Bytes::from_static(b"ERR unknown command: use SET, GET or DEL"),
        }
    }
}

impl Handler for Store {
    async fn serve(&self, mut connection: Connection) -> std::io::Result<()> {
        while let Some(line) = connection.receive().await {
            let answer = self.answer(&line);
            connection.send(answer).await?;
        }
        Ok(())
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
    let listener = Server::handler(Store::default()).bind(&endpoint).await?;
    println!("kv listening on {}", listener.local_endpoint());
    listener
        .serve(async { tokio::signal::ctrl_c().await.unwrap() })
        .await?;
    Ok(())
}
