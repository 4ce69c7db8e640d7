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
//! An address `unix:@NAME` (abstract) or `unix:PATH` serves a Unix stream
//! socket instead of TCP, with the same loops: the baseline for sockit's
//! Unix figures.
//!
//! With `--tls CERT KEY` (PEM files) it echoes over TLS: tokio-rustls on
//! the same `ring` provider as sockit, the echo loop unchanged but for a
//! `flush` after each write (rustls holds what it has not sent).
//!
//! ```text
//! cargo run --release -p sockit-bench --bin tokio_echo -- 127.0.0.1:7000 [--current-thread] [--greet]
//! cargo run --release -p sockit-bench --bin tokio_echo -- 127.0.0.1:7000 --tls cert.pem key.pem
//! cargo run --release -p sockit-bench --bin tokio_echo -- unix:@echo [--greet]
//! ```

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio_rustls::TlsAcceptor;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|arg| arg == name);
    let mut address = "127.0.0.1:7000".to_owned();
    let mut tls = None;
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "--tls" => match (words.next(), words.next()) {
                (Some(cert), Some(key)) => tls = Some(acceptor(cert, key)?),
                _ => return Err(std::io::Error::other("--tls needs CERT and KEY")),
            },
            flag if flag.starts_with("--") => {}
            _ => address.clone_from(word),
        }
    }
    let greet = flag("--greet");
    let runtime = if flag("--current-thread") {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()?
    };
    runtime.block_on(async {
        if let Some(path) = address.strip_prefix("unix:") {
            return serve_unix(unix_listener(path)?, greet).await;
        }
        let listener = TcpListener::bind(&address).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            if let Some(tls) = &tls {
                let tls = tls.clone();
                tokio::spawn(async move {
                    if let Ok(stream) = tls.accept(stream).await {
                        echo_connection(stream).await;
                    }
                });
            } else if greet {
                tokio::spawn(async move {
                    let mut stream = stream;
                    let (reader, writer) = stream.split();
                    greet_connection(reader, writer).await;
                });
            } else {
                tokio::spawn(echo_connection(stream));
            }
        }
    })
}

/// Binds `@NAME` (an abstract name) or `PATH`.
fn unix_listener(path: &str) -> std::io::Result<UnixListener> {
    let listener = match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            std::os::unix::net::UnixListener::bind_addr(&address)?
        }
        None => std::os::unix::net::UnixListener::bind(path)?,
    };
    listener.set_nonblocking(true)?;
    UnixListener::from_std(listener)
}

/// Serves Unix stream connections with the echo or greet loop.
async fn serve_unix(listener: UnixListener, greet: bool) -> std::io::Result<()> {
    loop {
        let (mut stream, _) = listener.accept().await?;
        if greet {
            tokio::spawn(async move {
                let (reader, writer) = stream.split();
                greet_connection(reader, writer).await;
            });
        } else {
            tokio::spawn(echo_connection(stream));
        }
    }
}

/// The TLS setting of `--tls CERT KEY`.
fn acceptor(cert: &str, key: &str) -> std::io::Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| std::io::Error::other(format!("{cert}: {e}")))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| std::io::Error::other(format!("{key}: {e}")))?;
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
            .map_err(std::io::Error::other)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Returns every byte read, until the peer closes or an error.
async fn echo_connection(mut stream: impl AsyncRead + AsyncWrite + Unpin) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
}

/// Greets, then answers every line `M` with `Hello, M!\n` until `exit`, the
/// end of the stream or an error.
async fn greet_connection(reader: impl AsyncRead + Unpin, mut writer: impl AsyncWrite + Unpin) {
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
