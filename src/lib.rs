//! sockit: a socket toolkit, and the seed tutorial's `SocketServer` done properly
//! for Rust.
//!
//! Write a [`Service`] once (a plain value that turns a message into replies)
//! and serve it on any [`Endpoint`], TCP, UDP or TLS, over IPv4 or IPv6, with the
//! [`Framing`] chosen per listener, a connection limit, a maximum message size
//! and graceful shutdown:
//!
//! ```no_run
//! use sockit::{Endpoint, Greet, Server};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), sockit::Error> {
//!     let endpoint: Endpoint = "tcp://127.0.0.1:8000".parse()?;
//!     let listener = Server::new(Greet).bind(&endpoint).await?;
//!     listener.serve(async { tokio::signal::ctrl_c().await.unwrap() }).await
//! }
//! ```
//!
//! The greeting protocol the built-in [`Greet`] service speaks, and how every
//! framing behaves, is defined byte for byte in `PROTOCOL.md`.
//!
//! # Layout
//!
//! A pure protocol core with a thin I/O shell:
//!
//! | module | role |
//! | --- | --- |
//! | [`endpoint`] | [`Endpoint`]: where to listen or connect, parsed once from the user's text |
//! | [`framing`] | pure: cuts messages out of bytes (`raw`, `line`, `len32`, `auto`) and frames replies |
//! | [`service`] | pure: [`Service`] and the built-ins [`Greet`], [`Echo`], [`Discard`] |
//! | [`icmp`] | pure: ICMP echo messages, the IPv4 header, checksums, ping statistics |
//! | [`proxy`] | pure: the PROXY protocol header (v1, v2) a load balancer sends first, decoded and encoded |
//! | [`limit`] | pure: the datagram limits against reflection and amplification (per-source rate, reply cap) |
//! | [`net`] | I/O: one module per socket kind; binds, accepts, connects, sets options; `net::listen`: binds any endpoint and accepts on it, riding out failed accepts (shared by the server and the relay); takes sockets handed over (systemd's socket activation); [`net::tls`] reads certificates and keys and runs handshakes |
//! | [`server`] | [`Server`]: the builder and its settings; `server::listener`: a bound [`Listener`] serving until shutdown, then draining within the shutdown timeout; `server::accept`: the accept loop, with the connection limit, trusted proxies and live limits |
//! | `live` | what a running server changes: its [`Limits`] through a [`LimitsHandle`], its certificate through a [`TlsHandle`] |
//! | `answer` | [`Answer`]: what a server answers with, a [`Service`] or a [`Handler`]; the one seam between the listeners and the two drivers of a conversation |
//! | [`handler`] | [`Handler`]: async code run once per connection (or datagram source) that holds its [`Connection`]; [`Group`] for fan-out; each connection's bounded send queue and its writer, side by side with the handler |
//! | `connection` | one stream connection served by a [`Service`] (the fast path): read, answer every message, one write, close cleanly; `connection::tls`: the same conversation through TLS (`AsyncRead`/`AsyncWrite`, after a handshake under a time limit), a task type of its own so plain connections stay small |
//! | `deadline` | a connection's idle and read timeouts, checked lazily |
//! | `datagram` | the receive loop of a datagram socket (UDP, Unix datagram), within its [`limit`]s |
//! | [`metrics`] | [`Metrics`](metrics::Metrics): what listeners count (connections, messages, bytes, errors, reply latency), in the Prometheus format, and its HTTP endpoint |
//! | `packet` | one seqpacket connection: a packet is a message, a reply is a packet |
//! | `proxied` | a stream connection behind a load balancer: its PROXY header first, within a timeout, then the conversation for the client it names |
//! | [`client`] | the client side shared by `sockit connect` and `sockit bench` |
//! | [`pipe`] | raw conversations, as netcat has them: a [`Link`](pipe::Link) of any kind dialled or accepted, copied both ways with stdin/stdout or a program's, with half-close, timeouts, CRLF and a hex dump (pure: [`pipe::Crlf`], [`pipe::HexDump`]) |
//! | [`relay`] | [`Relay`]: forwards one endpoint to another (streams to streams, datagrams to datagrams) and injects seeded faults; its [`faults`](relay::faults) plan is pure |
//! | [`load`] | the load generator of `sockit bench`: pure messages, schedule, statistics and reports; connections on one event loop |
//! | [`escape`] | bytes shown safely in logs |
//! | `fuzzing` | hidden: the bodies of the `fuzz/` targets (every decoder's properties), shared with the corpus replay in `tests/fuzz_corpus.rs` |
//!
//! The `sockit` command lives in `src/bin/sockit/`, one module per subcommand.

// The library logs through `tracing`; only the binary and examples print.
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod answer;
pub mod client;
mod connection;
mod datagram;
mod deadline;
pub mod endpoint;
mod error;
pub mod escape;
pub mod framing;
#[doc(hidden)]
pub mod fuzzing;
pub mod handler;
pub mod icmp;
pub mod limit;
mod live;
pub mod load;
pub mod metrics;
pub mod net;
mod packet;
pub mod pipe;
mod proxied;
pub mod proxy;
pub mod relay;
pub mod server;
pub mod service;

pub use client::{DatagramClient, StreamClient};
pub use endpoint::{Credentials, Endpoint, EndpointError, Peer, Transport, UnixAddr};
pub use error::Error;
pub use escape::Escaped;
pub use framing::Framing;
pub use handler::{Connection, ConnectionId, Group, Handler};
pub use relay::Relay;
pub use server::{Answer, Limits, LimitsHandle, Listener, Server, TlsHandle, WhenFull};
pub use service::{Builtin, Discard, Echo, Flow, Greet, Replies, Service};

/// The README's Rust code, compiled as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
