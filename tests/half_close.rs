//! Half-close and reset semantics, the same on every stream family (TCP,
//! Unix stream, seqpacket): a peer that ends its side still gets every reply
//! it is owed; replies written before the server closes survive input the
//! server never read (no reset destroys them); a peer that leaves while owed
//! replies (`EPIPE` on the server's writes, never `SIGPIPE`) costs the server
//! nothing.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use common::{Server, TestDir};

/// The greeting, as the stream families send it in auto framing and
/// seqpacket as one packet.
const GREETING: &[u8] = b"Hello, I am server";
/// How long any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(10);

/// One stream family under test.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Family {
    Tcp,
    Unix,
    Seqpacket,
}

const FAMILIES: [Family; 3] = [Family::Tcp, Family::Unix, Family::Seqpacket];

/// A running server of one family, and how to reach it.
struct Listening {
    family: Family,
    server: Server,
    _dir: TestDir,
}

impl Listening {
    fn start(family: Family, test: &str) -> Listening {
        let dir = TestDir::new(test);
        let endpoint = match family {
            Family::Tcp => "tcp://127.0.0.1:0".to_owned(),
            Family::Unix => format!("unix:{}", dir.socket("s.sock")),
            Family::Seqpacket => format!("seqpacket:{}", dir.socket("s.sock")),
        };
        let server = Server::start(&[&endpoint]);
        Listening {
            family,
            server,
            _dir: dir,
        }
    }

    /// A connected client socket with the greeting read.
    fn greeted(&self) -> Socket {
        let (domain, kind, addr) = match self.family {
            Family::Tcp => (Domain::IPV4, Type::STREAM, SockAddr::from(self.server.addr(0))),
            Family::Unix | Family::Seqpacket => {
                let path = self.server.endpoints[0].split_once(':').unwrap().1;
                let kind = if self.family == Family::Unix {
                    Type::STREAM
                } else {
                    Type::SEQPACKET
                };
                (Domain::UNIX, kind, SockAddr::unix(path).unwrap())
            }
        };
        let socket = Socket::new(domain, kind, None).expect("a socket");
        socket.connect(&addr).expect("connect");
        socket.set_read_timeout(Some(WAIT)).unwrap();
        assert_eq!(
            read_exactly(&socket, GREETING.len()),
            GREETING,
            "{:?}",
            self.family
        );
        socket
    }

    /// Sends `messages`: as lines in one write on streams, a packet each on
    /// seqpacket.
    fn send(&self, socket: &Socket, messages: &[Vec<u8>]) {
        if self.family == Family::Seqpacket {
            for message in messages {
                assert_eq!(socket.send(message).unwrap(), message.len());
            }
        } else {
            let bytes: Vec<u8> = messages.iter().flat_map(|m| [&m[..], b"\n"].concat()).collect();
            (&*socket).write_all(&bytes).unwrap();
        }
    }

    /// The replies `messages` are owed, back to back as a stream reads them.
    fn replies(&self, messages: &[Vec<u8>]) -> Vec<u8> {
        let newline: &[u8] = if self.family == Family::Seqpacket {
            b""
        } else {
            b"\n"
        };
        messages
            .iter()
            .flat_map(|m| [b"Hello, ", &m[..], b"!", newline].concat())
            .collect()
    }

    /// Still serves a new client exactly.
    fn still_serves(&self) {
        let socket = self.greeted();
        let message = vec![b"still here".to_vec()];
        self.send(&socket, &message);
        let want = self.replies(&message);
        assert_eq!(read_exactly(&socket, want.len()), want, "{:?}", self.family);
    }
}

fn read_exactly(socket: &Socket, len: usize) -> Vec<u8> {
    let mut got = Vec::with_capacity(len);
    let mut buf = vec![0; 1 << 16];
    while got.len() < len {
        let n = (&*socket)
            .read(&mut buf[..(len - got.len()).min(1 << 16)])
            .expect("read");
        assert!(n > 0, "end of stream after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// Reads until the end of stream; a reset instead of it fails the test.
fn read_to_end(socket: &Socket, family: Family) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0; 1 << 16];
    loop {
        match (&*socket).read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(error) => panic!(
                "{family:?}: {error} after {} bytes instead of a clean end of stream",
                got.len()
            ),
        }
    }
}

fn messages(prefix: &str, count: usize) -> Vec<Vec<u8>> {
    (0..count).map(|n| format!("{prefix}{n}").into_bytes()).collect()
}

#[test]
fn after_half_close_every_owed_reply_comes_then_the_end() {
    for family in FAMILIES {
        let listening = Listening::start(family, "half-close-owed");
        let socket = listening.greeted();
        let sent = messages("m", 300);
        listening.send(&socket, &sent);
        socket.shutdown(Shutdown::Write).unwrap();
        let got = read_to_end(&socket, family);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&listening.replies(&sent)),
            "{family:?}"
        );
        listening.still_serves();
    }
}

#[test]
fn replies_written_before_exit_survive_input_never_read() {
    for family in FAMILIES {
        let listening = Listening::start(family, "half-close-unread");
        let socket = listening.greeted();
        // `exit` ends the conversation with 64 messages after it unread.
        let mut sent = messages("before", 3);
        sent.push(b"exit".to_vec());
        sent.extend(messages(&"x".repeat(1000), 64));
        listening.send(&socket, &sent);
        let got = read_to_end(&socket, family);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&listening.replies(&sent[..3])),
            "{family:?}"
        );
        listening.still_serves();
    }
}

#[test]
fn a_peer_gone_while_owed_replies_costs_the_server_nothing() {
    for family in FAMILIES {
        let listening = Listening::start(family, "half-close-gone");
        for _ in 0..20 {
            let socket = listening.greeted();
            listening.send(&socket, &messages(&"y".repeat(100), 500));
            // Gone without reading: the server's writes fail (EPIPE or a reset).
            drop(socket);
        }
        listening.still_serves();
        let log = listening.server.log();
        assert!(!log.contains("panicked"), "{family:?}: {log}");
    }
}
