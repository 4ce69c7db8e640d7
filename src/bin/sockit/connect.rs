//! `sockit connect`: the tutorial's clients. Send messages, print the replies.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use std::net::SocketAddr;

use anyhow::{Context, bail};
use socket2::SockRef;
use sockit::{Builtin, DatagramClient, Endpoint, Framing, Greet, StreamClient};
use tokio::io::AsyncBufReadExt;

use tracing::debug;

use crate::options::{self, SocketFlags, TlsFlags};
use crate::serve::parse_duration;

/// Connect, send each MESSAGE (or each line of stdin) and print every reply.
///
/// On a stream it prints the server's greeting, then sends one message at a
/// time and waits for its reply, as the tutorial's client does. On UDP each
/// message is a datagram, sent again if no reply comes.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sockit connect 127.0.0.1:8000 client1 client2 client3\n  \
    sockit connect udp://127.0.0.1:9000 client1 client2\n  \
    printf 'bob\\nalice\\n' | sockit connect tcp://127.0.0.1:8000\n  \
    sockit connect tcp://[::1]:7000 --service echo hello\n  \
    sockit connect tls://localhost:8443 --ca cert.pem client1\n  \
    sockit connect unix:/tmp/greet.sock client1\n  \
    sockit connect unix-dgram:@greet client1")]
pub struct Args {
    /// Where to connect: tcp://HOST:PORT, udp://HOST:PORT, tls://HOST:PORT, HOST:PORT (TCP), unix:PATH,
    /// unix-dgram:PATH or seqpacket:PATH (PATH may be @NAME, a Linux abstract name).
    #[arg(value_name = "ENDPOINT")]
    endpoint: Endpoint,

    /// The messages to send; with none, each line of stdin is one message.
    /// Empty ones are skipped on streams in auto and raw framing, which
    /// would send no bytes for them.
    #[arg(value_name = "MESSAGE")]
    messages: Vec<String>,

    /// The protocol the server speaks: greet (a greeting, then a reply per
    /// message), echo (a reply per message) or discard (no replies).
    #[arg(short, long, default_value_t = Builtin::Greet)]
    service: Builtin,

    /// How stream messages are framed: auto and raw send them bare, line adds
    /// '\n', len32 a 4-byte length.
    #[arg(short, long, default_value_t = Framing::Auto)]
    framing: Framing,

    /// How long to wait to connect, and for each reply (e.g. 5s, 500ms).
    #[arg(short, long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,

    /// Datagrams only: how many times to send a datagram again when no reply comes.
    #[arg(long, value_name = "N", default_value_t = 2)]
    retries: u32,

    /// The local address to send from (IP:PORT; port 0 lets the system choose).
    #[arg(long, value_name = "ADDR", help_heading = "Socket options")]
    bind: Option<SocketAddr>,

    #[command(flatten)]
    socket: SocketFlags,

    #[command(flatten)]
    tls: TlsFlags,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut messages = Messages::new(args.messages.clone());
    let mut out = std::io::stdout().lock();
    let mut options = args.socket.options();
    if let Some(local) = args.bind {
        options = options.bind(local);
    }
    options::warn_unused(&options, &args.endpoint);
    let tls = args.tls.client(&args.endpoint)?;
    if args.endpoint.is_datagram() {
        let client =
            DatagramClient::connect_with(&args.endpoint, args.timeout, args.retries, &options).await?;
        debug!(
            options = options.read_back(&SockRef::from(&client)),
            "socket options"
        );
        while let Some(message) = messages.next().await? {
            let reply = client.request(&message).await?;
            print_line(&mut out, &reply)?;
        }
        return Ok(ExitCode::SUCCESS);
    }

    let mut client = match &tls {
        Some(tls) => StreamClient::connect_tls(&args.endpoint, args.framing, args.timeout, &options, tls)
            .await
            .map_err(options::untrusted_hint)?,
        None => StreamClient::connect_with(&args.endpoint, args.framing, args.timeout, &options).await?,
    };
    debug!(
        options = options.read_back(&SockRef::from(&client)),
        "socket options"
    );
    if let Some(protocol) = client.alpn_protocol() {
        debug!(alpn = %sockit::Escaped(protocol), "the server chose an application protocol");
    }
    if args.service == Builtin::Greet {
        let Some(greeting) = client.receive_greeting().await? else {
            bail!("{} closed the connection without a greeting", args.endpoint);
        };
        print_line(&mut out, &greeting)?;
    }
    while let Some(message) = messages.next().await? {
        if message.is_empty() && matches!(args.framing, Framing::Auto | Framing::Raw) {
            // Bare framing cannot send an empty message: it would be no bytes at all.
            continue;
        }
        client.send(&message).await?;
        if args.service == Builtin::Greet && message == Greet::EXIT {
            // The server closes without a reply; what it still sends is printed below.
            break;
        }
        if args.service == Builtin::Discard {
            continue;
        }
        match client.receive().await? {
            Some(reply) => print_line(&mut out, &reply)?,
            None => bail!(
                "{} closed the connection before answering {:?}",
                args.endpoint,
                sockit::Escaped(&message).to_string()
            ),
        }
    }
    for rest in client.finish().await? {
        print_line(&mut out, &rest)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` and a newline, unchanged (invalid UTF-8 included), at once.
fn print_line(out: &mut impl Write, bytes: &[u8]) -> anyhow::Result<()> {
    out.write_all(bytes)?;
    out.write_all(b"\n")?;
    out.flush().context("cannot write to stdout")
}

/// The messages to send: the command line's, or each line of stdin.
enum Messages {
    Given(std::vec::IntoIter<String>),
    Stdin(tokio::io::BufReader<tokio::io::Stdin>),
}

impl Messages {
    fn new(given: Vec<String>) -> Self {
        if given.is_empty() {
            Messages::Stdin(tokio::io::BufReader::new(tokio::io::stdin()))
        } else {
            Messages::Given(given.into_iter())
        }
    }

    /// The next message, without its line ending; `None` when there are no more.
    async fn next(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        match self {
            Messages::Given(given) => Ok(given.next().map(String::into_bytes)),
            Messages::Stdin(stdin) => {
                let mut line = Vec::new();
                if stdin
                    .read_until(b'\n', &mut line)
                    .await
                    .context("cannot read stdin")?
                    == 0
                {
                    return Ok(None);
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                Ok(Some(line))
            }
        }
    }
}
