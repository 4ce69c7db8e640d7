//! The baseline every sockit figure is a ratio of: the canonical hand-written
//! tokio echo server, as BENCH.md describes it. One task per connection, a
//! 4 KiB read buffer each, `read` then `write_all`, `TCP_NODELAY` set, on the
//! multi-thread runtime (or `--current-thread`).
//!
//! With `--greet` it speaks the greeting protocol of PROTOCOL.md instead, in
//! `line` framing, the way a tokio user would write it: a `BufReader` and a
//! `read_until(b'\n')` loop, `Hello, I am server\n` on accept, `Hello, M!\n`
//! for every line `M`, and the connection closed at `exit`.
//!
//! ```text
//! cargo run --release -p sockit-bench --bin tokio_echo -- 127.0.0.1:7000 [--current-thread] [--greet]
//! ```

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|arg| arg == name);
    let address = args
        .iter()
        .find(|arg| !arg.starts_with("--"))
        .map_or("127.0.0.1:7000", String::as_str)
        .to_owned();
    let greet = flag("--greet");
    let runtime = if flag("--current-thread") {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()?
    };
    runtime.block_on(async {
        let listener = TcpListener::bind(&address).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            if greet {
                tokio::spawn(greet_connection(stream));
            } else {
                tokio::spawn(echo_connection(stream));
            }
        }
    })
}

/// Returns every byte read, until the peer closes or an error.
async fn echo_connection(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Greets, then answers every line `M` with `Hello, M!\n` until `exit`, the
/// end of the stream or an error.
async fn greet_connection(mut stream: TcpStream) {
    let (reader, mut writer) = stream.split();
    let mut reader = BufReader::new(reader);
    if writer.write_all(b"Hello, I am server\n").await.is_err() {
        return;
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let message = line.strip_suffix(b"\n").unwrap_or(&line);
        let message = message.strip_suffix(b"\r").unwrap_or(message);
        if message == b"exit" {
            return;
        }
        let reply = [b"Hello, ", message, b"!\n"].concat();
        if writer.write_all(&reply).await.is_err() {
            return;
        }
    }
}
