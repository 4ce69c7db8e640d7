//! What a relay joins: an endpoint, this process's stdin and stdout (`-`),
//! or a program (`exec:CMD`, `sh:CMD`), as socat's addresses `-`, `EXEC:`
//! and `SYSTEM:`; and the byte streams each of them gives the relay.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::pipe::{self, Program};
use crate::{Endpoint, EndpointError, Transport};

/// One side of a relay: an endpoint, this process's stdin and stdout, or
/// a program.
///
/// As the listening side, an endpoint is listened on and each client
/// relayed; stdin and stdout, or a program, is one client, relayed once
/// ([`Relay::run_once`](super::Relay::run_once)). As the target, an
/// endpoint is dialled for each client; a program is started for each
/// client; stdin and stdout take the first client only, and the relay
/// stops when it is done.
///
/// # Examples
///
/// ```
/// use sockit::relay::Side;
///
/// assert_eq!("-".parse::<Side>()?, Side::Stdio);
/// assert!(matches!("exec:cat".parse::<Side>()?, Side::Program(_)));
/// assert!(matches!("tcp://127.0.0.1:8000".parse::<Side>()?, Side::Endpoint(_)));
/// assert_eq!("sh:wc -c".parse::<Side>()?.to_string(), "sh:wc -c");
/// assert!("exec:".parse::<Side>().is_err());
/// # Ok::<(), sockit::relay::SideError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// A socket endpoint.
    Endpoint(Endpoint),
    /// This process's stdin and stdout (`-`).
    Stdio,
    /// A program, its stdin and stdout the connection (`exec:CMD`, split on
    /// whitespace; `sh:CMD`, run by `/bin/sh -c`).
    Program(Program),
}

/// Why a text is not a relay [`Side`].
#[derive(Debug, thiserror::Error)]
pub enum SideError {
    /// Not `-`, `exec:`, `sh:`, nor an endpoint.
    #[error("{0} (or - for stdin and stdout, exec:CMD or sh:CMD for a program)")]
    Endpoint(#[from] EndpointError),
    /// `exec:` or `sh:` with nothing after it.
    #[error("{0:?} names no program: write exec:CMD (CMD split on spaces) or sh:CMD (run by /bin/sh -c)")]
    NoProgram(String),
}

impl FromStr for Side {
    type Err = SideError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "-" {
            return Ok(Side::Stdio);
        }
        let program = [
            ("exec:", Program::Exec as fn(String) -> Program),
            ("sh:", Program::Shell),
        ]
        .into_iter()
        .find_map(|(prefix, make)| Some((text.strip_prefix(prefix)?, make)));
        match program {
            Some((command, _)) if command.trim().is_empty() => Err(SideError::NoProgram(text.to_owned())),
            Some((command, make)) => Ok(Side::Program(make(command.to_owned()))),
            None => Ok(Side::Endpoint(text.parse()?)),
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Side::Endpoint(endpoint) => endpoint.fmt(f),
            Side::Stdio => f.write_str("-"),
            Side::Program(Program::Exec(command)) => write!(f, "exec:{command}"),
            Side::Program(Program::Shell(command)) => write!(f, "sh:{command}"),
        }
    }
}

impl From<Endpoint> for Side {
    fn from(endpoint: Endpoint) -> Self {
        Side::Endpoint(endpoint)
    }
}

impl Side {
    /// How it carries bytes: stdin and stdout, and programs, are streams.
    pub fn transport(&self) -> Transport {
        match self {
            Side::Endpoint(endpoint) => endpoint.transport(),
            Side::Stdio | Side::Program(_) => Transport::Stream,
        }
    }

    /// The endpoint, for an endpoint side.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        match self {
            Side::Endpoint(endpoint) => Some(endpoint),
            _ => None,
        }
    }
}

/// A byte stream that is not a plain socket: TLS over TCP, stdin and
/// stdout, a program.
pub(super) trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {
    /// The TCP connection beneath, to reset.
    fn tcp(&self) -> Option<&TcpStream>;
}

impl Duplex for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> Option<&TcpStream> {
        Some(self.get_ref().0)
    }
}

impl Duplex for tokio_rustls::client::TlsStream<TcpStream> {
    fn tcp(&self) -> Option<&TcpStream> {
        Some(self.get_ref().0)
    }
}

/// A byte stream of any kind the relay joins.
pub(super) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Other(Box<dyn Duplex>),
}

impl Stream {
    /// This process's stdin and stdout.
    pub(super) fn stdio() -> io::Result<Self> {
        Ok(Stream::Other(Box::new(Piped {
            reader: tokio::io::stdin(),
            writer: Some(pipe::stdout()?),
            _child: None,
        })))
    }

    /// `program`, started: its stdout read, its stdin written; killed if
    /// still running when the stream is dropped.
    pub(super) fn program(program: &Program) -> io::Result<Self> {
        let mut child = program.start()?;
        let (Some(reader), Some(writer)) = (child.stdout.take(), child.stdin.take()) else {
            unreachable!("Program::start pipes stdin and stdout");
        };
        Ok(Stream::Other(Box::new(Piped::<ChildStdout, ChildStdin> {
            reader,
            writer: Some(writer),
            _child: Some(child),
        })))
    }

    /// The TCP connection beneath, if any.
    pub(super) fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Tcp(stream) => Some(stream),
            Stream::Unix(_) => None,
            Stream::Other(duplex) => duplex.tcp(),
        }
    }
}

/// A reader and a writer as one stream. Shutting it down closes the writer
/// (a program reading it sees its end of input).
struct Piped<R, W> {
    reader: R,
    writer: Option<W>,
    _child: Option<Child>,
}

impl<R: AsyncRead + Unpin, W: Unpin> AsyncRead for Piped<R, W> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.reader).poll_read(cx, buf)
    }
}

impl<R: Unpin, W: AsyncWrite + Unpin> AsyncWrite for Piped<R, W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.writer {
            Some(writer) => Pin::new(writer).poll_write(cx, buf),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.writer {
            Some(writer) => Pin::new(writer).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(writer) = &mut self.writer {
            std::task::ready!(Pin::new(writer).poll_flush(cx))?;
        }
        self.writer = None;
        Poll::Ready(Ok(()))
    }
}

impl<R, W> Duplex for Piped<R, W>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin,
{
    fn tcp(&self) -> Option<&TcpStream> {
        None
    }
}
