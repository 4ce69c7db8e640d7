//! `sockit connect`: the tutorial's clients. Send messages, print the replies.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use std::net::SocketAddr;

use anyhow::{Context, anyhow, bail};
use socket2::SockRef;
use sockit::endpoint::Host;
use sockit::{Builtin, DatagramClient, Endpoint, Escaped, Framing, Greet, StreamClient};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

use tracing::debug;

use crate::options::{self, SocketFlags, TlsFlags};
use crate::serve::parse_duration;

/// Connect, send each MESSAGE (or each line of stdin) and print every reply.
///
/// On a stream it prints the server's greeting, then sends one message at a
/// time and waits for its reply, as the tutorial's client does. On UDP each
/// message is a datagram, sent again if no reply comes (discard: sent once,
/// and no reply waited for).
///
/// A message from stdin is a line without its line ending ("\n" or
/// "\r\n"); each reply is printed on a line of its own. With --framing raw
/// and no MESSAGE, stdin is not cut into lines: its bytes are sent exactly
/// as read, and the server's bytes are printed exactly as received, nothing
/// added (with --service echo, what comes out is what went in).
///
/// It talks to sockit's services, in lockstep; for raw bytes both ways with
/// any other server, use 'sockit nc HOST PORT'.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sockit connect 127.0.0.1:8000 client1 client2 client3\n  \
    sockit connect udp://127.0.0.1:9000 client1 client2\n  \
    printf 'bob\\nalice\\n' | sockit connect tcp://127.0.0.1:8000\n  \
    sockit connect tcp://[::1]:7000 --service echo hello\n  \
    cat file.bin | sockit connect tcp://127.0.0.1:7000 --service echo --framing raw\n  \
    sockit connect tls://localhost:8443 --ca cert.pem client1\n  \
    sockit connect unix:/tmp/greet.sock client1\n  \
    sockit connect unix-dgram:@greet client1")]
pub struct Args {
    /// Where to connect: tcp://HOST:PORT, udp://HOST:PORT, tls://HOST:PORT, HOST:PORT (TCP), unix:PATH,
    /// unix-dgram:PATH or seqpacket:PATH (PATH may be @NAME, a Linux abstract name).
    #[arg(value_name = "ENDPOINT")]
    endpoint: Endpoint,

    /// The messages to send; with none, each line of stdin is one message
    /// (but see --framing raw). Empty ones are skipped on streams in auto
    /// and raw framing, which would send no bytes for them.
    #[arg(value_name = "MESSAGE")]
    messages: Vec<String>,

    /// The protocol the server speaks: greet (a greeting, then a reply per
    /// message), echo (a reply per message) or discard (no replies).
    #[arg(short, long, default_value_t = Builtin::Greet)]
    service: Builtin,

    /// How stream messages are framed: auto and raw send them bare, line adds
    /// '\n' (a message with a '\n' in it, or a '\r' at its end, is refused),
    /// len32 a 4-byte length. Raw with no MESSAGE carries stdin's bytes
    /// exactly, both ways.
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

/// How much of stdin `carry_exactly` sends at a time.
const CHUNK: usize = 64 * 1024;

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
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
        let mut messages = Messages::new(args.messages);
        while let Some(message) = messages.next().await? {
            if args.service == Builtin::Discard {
                // No reply ever comes: waiting for one, and sending again, would be wrong.
                client.send(&message).await?;
                continue;
            }
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
    let talked = if args.framing == Framing::Raw && args.messages.is_empty() {
        carry_exactly(&mut client, args.service, &mut out).await
    } else {
        let messages = Messages::new(args.messages);
        converse(&mut client, args.service, args.framing, messages, &mut out).await
    };
    talked.map_err(|error| not_in_lockstep(error, &args.endpoint))?;
    Ok(ExitCode::SUCCESS)
}

/// The conversation, a message at a time: each reply is printed on a line.
async fn converse(
    client: &mut StreamClient,
    service: Builtin,
    framing: Framing,
    mut messages: Messages,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let endpoint = client.endpoint().clone();
    if service == Builtin::Greet {
        let Some(greeting) = client.receive_greeting().await? else {
            bail!(
                "{endpoint} closed the connection without a greeting ({})",
                use_nc(&endpoint)
            );
        };
        print_line(out, &greeting)?;
    }
    // Bare framing has no message boundaries: one read is not one reply.
    let bare = matches!(framing, Framing::Auto | Framing::Raw);
    while let Some(message) = messages.next().await? {
        if message.is_empty() && bare {
            // Bare framing cannot send an empty message: it would be no bytes at all.
            continue;
        }
        match client.send(&message).await {
            Err(error @ sockit::Error::Unframable { .. }) => {
                bail!("cannot send {}: {error} (--framing len32 can)", Escaped(&message));
            }
            sent => sent?,
        }
        if service == Builtin::Greet && message == Greet::EXIT {
            // The server closes without a reply; what it still sends is printed below.
            break;
        }
        if service == Builtin::Discard {
            continue;
        }
        // A reply is one message, except an echo in bare framing: it is as
        // long as the message, however many reads bring it.
        let whole = if service == Builtin::Echo && bare {
            message.len()
        } else {
            0
        };
        let mut reply = Vec::new();
        loop {
            let Some(part) = client.receive().await? else {
                let short = match reply.len() {
                    0 => String::new(),
                    got => format!(" in full (it sent {got} of {whole} bytes)"),
                };
                bail!(
                    "{endpoint} closed the connection before answering {}{short} ({})",
                    Escaped(&message),
                    use_nc(&endpoint)
                );
            };
            reply.extend_from_slice(&part);
            if reply.len() >= whole {
                break;
            }
        }
        print_line(out, &reply)?;
    }
    for rest in client.finish().await? {
        print_line(out, &rest)?;
    }
    Ok(())
}

/// `--framing raw` with no MESSAGE: sends stdin exactly as read, a read at
/// a time, and prints exactly the bytes the server sends, nothing added.
///
/// Still in lockstep: after each read it waits for the greet service's
/// reply (one read), or for the echo service to have returned every byte
/// sent so far; discard is waited for only at the end.
async fn carry_exactly(
    client: &mut StreamClient,
    service: Builtin,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let endpoint = client.endpoint().clone();
    if service == Builtin::Greet {
        let Some(greeting) = client.receive().await? else {
            bail!(
                "{endpoint} closed the connection without a greeting ({})",
                use_nc(&endpoint)
            );
        };
        print_exactly(out, &greeting)?;
    }
    let mut stdin = tokio::io::stdin();
    let mut chunk = vec![0; CHUNK];
    // Echo: the bytes sent that have not come back yet.
    let mut owed: u64 = 0;
    loop {
        let read = stdin.read(&mut chunk).await.context("cannot read stdin")?;
        if read == 0 {
            break;
        }
        let sent = &chunk[..read];
        client.send(sent).await?;
        let mut reply_owed = match service {
            Builtin::Greet if sent == Greet::EXIT => break,
            Builtin::Greet => true,
            Builtin::Echo => {
                owed += read as u64;
                false
            }
            Builtin::Discard => continue,
        };
        while owed > 0 || reply_owed {
            let Some(reply) = client.receive().await? else {
                let unanswered = match owed {
                    0 => "before answering".to_owned(),
                    owed => format!("before echoing the last {owed} bytes sent"),
                };
                bail!(
                    "{endpoint} closed the connection {unanswered} ({})",
                    use_nc(&endpoint)
                );
            };
            owed = owed.saturating_sub(reply.len() as u64);
            reply_owed = false;
            print_exactly(out, &reply)?;
        }
    }
    for rest in client.finish().await? {
        print_exactly(out, &rest)?;
    }
    Ok(())
}

/// Adds to an error that says the server did not answer in lockstep (no
/// reply in time, not a message) that `sockit nc` talks to any server.
fn not_in_lockstep(error: anyhow::Error, endpoint: &Endpoint) -> anyhow::Error {
    let unanswered = error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<sockit::Error>(),
            Some(sockit::Error::Timeout { .. } | sockit::Error::Frame { .. })
        )
    });
    if !unanswered {
        return error;
    }
    anyhow!("{error:#} ({})", use_nc(endpoint))
}

/// Where a server that is not one of sockit's services can be talked to.
fn use_nc(endpoint: &Endpoint) -> String {
    let target = match endpoint {
        Endpoint::Tcp(host_port) => match host_port.host() {
            Host::Ip(ip) => format!("{ip} {}", host_port.port()),
            Host::Name(name) => format!("{name} {}", host_port.port()),
            _ => endpoint.to_string(),
        },
        _ => endpoint.to_string(),
    };
    format!("for raw bytes both ways, use sockit nc {target}")
}

/// Writes `bytes` and a newline, unchanged (invalid UTF-8 included), at once.
fn print_line(out: &mut impl Write, bytes: &[u8]) -> anyhow::Result<()> {
    out.write_all(bytes)?;
    out.write_all(b"\n")?;
    out.flush().context("cannot write to stdout")
}

/// Writes `bytes` exactly as they are, at once.
fn print_exactly(out: &mut impl Write, bytes: &[u8]) -> anyhow::Result<()> {
    out.write_all(bytes)?;
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

    /// The next message, without its line ending (`\n` or `\r\n`; a last line
    /// may have none); `None` when there are no more.
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
