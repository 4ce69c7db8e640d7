//! The baseline every sockit figure is a ratio of: the canonical hand-written
//! tokio echo server, as BENCH.md describes it. One task per connection, a
//! 4 KiB read buffer each, `read` then `write_all`, `TCP_NODELAY` set, on the
//! multi-thread runtime (or `--current-thread`).
//!
//! ```text
//! cargo run --release -p sockit-bench --bin tokio_echo -- 127.0.0.1:7000 [--current-thread]
//! ```

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:7000".to_owned());
    let runtime = if args.any(|arg| arg == "--current-thread") {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()?
    };
    runtime.block_on(async {
        let listener = TcpListener::bind(&address).await?;
        loop {
            let (mut stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
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
            });
        }
    })
}
