//! Zero-copy forwarding between two sockets, as HAProxy's `option splice-*`
//! does: `splice(2)` moves what one socket received into a pipe and from
//! the pipe into the other socket, page references and not bytes, so the
//! data never enters this process. The relay uses it for a pair whose two
//! sides are plain TCP or Unix stream sockets and to whose bytes no fault
//! applies (nothing to cut, delay or count toward a reset); anything else
//! (TLS, stdin and stdout, a program, a fault) is copied.
//!
//! The pipe is made when the first bytes arrive, so an idle pair holds no
//! pipe; it is nonblocking, and only ever holds what one splice put in, so
//! neither splice blocks on it: a direction waits only for its sockets'
//! readiness, through tokio.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::pipe::{PipeFlags, SpliceFlags};
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

use super::side::Stream;
use super::{DirectionCounters, add, count};

/// How much a pipe is asked to hold: each splice moves up to this much.
const PIPE_SIZE: usize = 256 * 1024;

/// A plain socket, borrowed: what a direction splices from or to.
#[derive(Clone, Copy)]
pub(super) enum Socket<'a> {
    Tcp(&'a TcpStream),
    Unix(&'a UnixStream),
}

impl<'a> Socket<'a> {
    /// The socket beneath `stream`, when it is a plain one.
    pub(super) fn of(stream: &'a Stream) -> Option<Self> {
        match stream {
            Stream::Tcp(stream) => Some(Socket::Tcp(stream)),
            Stream::Unix(stream) => Some(Socket::Unix(stream)),
            Stream::Other(_) => None,
        }
    }

    async fn ready(self, interest: Interest) -> io::Result<()> {
        match self {
            Socket::Tcp(stream) => stream.ready(interest).await.map(drop),
            Socket::Unix(stream) => stream.ready(interest).await.map(drop),
        }
    }

    /// Runs `splice` when the socket is ready for `interest`, until it
    /// does not say `WouldBlock` (which clears the readiness it was run on).
    async fn when_ready(
        self,
        interest: Interest,
        splice: impl Fn() -> io::Result<usize>,
    ) -> io::Result<usize> {
        loop {
            let tried = match self {
                Socket::Tcp(stream) => stream.try_io(interest, &splice),
                Socket::Unix(stream) => stream.try_io(interest, &splice),
            };
            match tried {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => self.ready(interest).await?,
                done => return done,
            }
        }
    }

    fn fd(self) -> BorrowedFd<'a> {
        match self {
            Socket::Tcp(stream) => stream.as_fd(),
            Socket::Unix(stream) => stream.as_fd(),
        }
    }

    fn shutdown_write(self) -> io::Result<()> {
        match self {
            Socket::Tcp(stream) => SockRef::from(stream).shutdown(Shutdown::Write),
            Socket::Unix(stream) => SockRef::from(stream).shutdown(Shutdown::Write),
        }
    }
}

/// A pipe's two ends.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Self> {
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        // A larger pipe moves more a splice; the system's limit may refuse
        // it, and the default (64 KiB) works as well, in more calls.
        let _ = rustix::pipe::fcntl_setpipe_size(&write, PIPE_SIZE);
        Ok(Pipe { read, write })
    }
}

/// Moves everything `from` receives to `to`, until the end of stream,
/// passed on as a half-close; counts as the copying pump does (a receive
/// per splice in, a forward per splice out).
pub(super) async fn pump(from: Socket<'_>, to: Socket<'_>, counters: &DirectionCounters) -> io::Result<()> {
    let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    let mut pipe: Option<Pipe> = None;
    loop {
        let pipe = match &mut pipe {
            Some(pipe) => pipe,
            None => {
                from.ready(Interest::READABLE).await?;
                pipe.insert(Pipe::new()?)
            }
        };
        let moved = from
            .when_ready(Interest::READABLE, || {
                Ok(rustix::pipe::splice(
                    from.fd(),
                    None,
                    &pipe.write,
                    None,
                    PIPE_SIZE,
                    flags,
                )?)
            })
            .await?;
        if moved == 0 {
            return to.shutdown_write();
        }
        count(&counters.received);
        add(&counters.bytes_in, moved);
        let mut left = moved;
        while left > 0 {
            let sent = to
                .when_ready(Interest::WRITABLE, || {
                    Ok(rustix::pipe::splice(
                        &pipe.read,
                        None,
                        to.fd(),
                        None,
                        left,
                        flags,
                    )?)
                })
                .await?;
            count(&counters.forwarded);
            add(&counters.bytes_out, sent);
            left -= sent;
        }
    }
}
