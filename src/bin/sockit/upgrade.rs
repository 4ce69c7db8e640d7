//! Upgrade in place, as nginx's USR2 and tableflip do it: on SIGUSR2,
//! `sockit serve` starts its binary again (the file at its own path, which
//! may be a new build by now) with the same command line, and hands it every
//! socket it listens on; the new process binds none of those again, reads
//! its config and certificates afresh, and says when it serves. Only then
//! does the old one stop accepting and drain. A new process that exits, or
//! is not ready in time, changes nothing: the old one serves on.
//!
//! The hand-over: the old process listens on an abstract Unix socket named
//! in `SOCKIT_UPGRADE`; the new one connects to it and receives one message,
//! the sockets' names (a 4-byte big-endian length, then the names, each
//! ended by a NUL) with the sockets themselves attached (`SCM_RIGHTS`), in
//! the same order; it answers `READY\n` on the same connection once it
//! serves. Listening sockets are shared, not copied: connections waiting
//! in a backlog are taken by whichever process accepts next, and none is
//! refused while both run.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags,
};
use sockit::Endpoint;
use sockit::net::systemd::PassedSocket;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The variable that names the old process's hand-over socket.
pub const ENV: &str = "SOCKIT_UPGRADE";

/// The most sockets one hand-over carries (the kernel's `SCM_MAX_FD`).
const MAX_SOCKETS: usize = 253;

/// The sockets an upgrading sockit handed this one, by name, and the
/// connection on which this one says that it serves.
#[derive(Debug)]
pub struct Handed {
    sockets: Vec<(String, OwnedFd)>,
    channel: UnixStream,
}

impl Handed {
    /// The sockets handed over, when an upgrade started this process
    /// (`SOCKIT_UPGRADE` is set); `None` otherwise.
    ///
    /// # Errors
    ///
    /// When the old process cannot be reached, or what it sends is not a
    /// hand-over.
    pub fn take() -> io::Result<Option<Handed>> {
        let Some(name) = std::env::var_os(ENV) else {
            return Ok(None);
        };
        let name = name.into_encoded_bytes();
        let channel = UnixStream::connect_addr(&SocketAddr::from_abstract_name(&name)?)?;
        channel.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut head = [0; 64 * 1024];
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received = rustix::net::recvmsg(
            &channel,
            &mut [IoSliceMut::new(&mut head)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        let mut sockets: Vec<OwnedFd> = Vec::new();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = message {
                sockets.extend(fds);
            }
        }
        let mut bytes = head[..received.bytes].to_vec();
        let unusable =
            |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("the hand-over {what}"));
        while bytes.len() < 4 {
            let mut more = [0; 4];
            let n = (&channel).read(&mut more)?;
            if n == 0 {
                return Err(unusable("ended before its length"));
            }
            bytes.extend_from_slice(&more[..n]);
        }
        let len = u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
        if bytes.len() < 4 + len {
            let mut rest = vec![0; 4 + len - bytes.len()];
            (&channel).read_exact(&mut rest)?;
            bytes.extend(rest);
        }
        let names: Vec<String> = bytes[4..4 + len]
            .split(|byte| *byte == 0)
            .filter(|name| !name.is_empty())
            .map(|name| String::from_utf8_lossy(name).into_owned())
            .collect();
        if names.len() != sockets.len() {
            return Err(unusable(&format!(
                "names {} sockets but carries {}",
                names.len(),
                sockets.len()
            )));
        }
        channel.set_read_timeout(None)?;
        Ok(Some(Handed {
            sockets: names.into_iter().zip(sockets).collect(),
            channel,
        }))
    }

    /// Takes the socket handed over as `name`, if there is one.
    pub fn socket(&mut self, name: &str) -> Option<OwnedFd> {
        let at = self.sockets.iter().position(|(given, _)| given == name)?;
        Some(self.sockets.remove(at).1)
    }

    /// Takes the sockets systemd passed the first process, in order, as
    /// systemd passed them.
    pub fn passed(&mut self) -> Vec<PassedSocket> {
        let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sockets)
            .into_iter()
            .partition(|(name, _)| name.starts_with(PASSED));
        self.sockets = kept;
        taken
            .into_iter()
            .map(|(name, socket)| PassedSocket {
                fd: socket.as_raw_fd(),
                socket,
                // "systemd INDEX NAME": the name systemd gave it, if any.
                name: name
                    .splitn(3, ' ')
                    .nth(2)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned),
            })
            .collect()
    }

    /// Tells the old process that this one serves: it stops accepting
    /// then. The names of the sockets not taken (the config no longer has
    /// them): they are closed.
    pub fn ready(mut self) -> io::Result<Vec<String>> {
        self.channel.write_all(b"READY\n")?;
        Ok(self.sockets.into_iter().map(|(name, _)| name).collect())
    }
}

/// The name of a socket systemd passed: the prefix, its place, its name.
const PASSED: &str = "systemd ";

/// The name an endpoint's socket is handed over by: the endpoint as the
/// command line or config file says it (a port 0 included: the new
/// process serves the port the old one got).
pub fn endpoint_name(endpoint: &Endpoint) -> String {
    format!("listen {endpoint}")
}

/// The name the metrics endpoint's socket is handed over by.
pub fn metrics_name(addr: std::net::SocketAddr) -> String {
    format!("metrics {addr}")
}

/// The name of the `index`th socket systemd passed, named `name`.
pub fn passed_name(index: usize, name: Option<&str>) -> String {
    format!("{PASSED}{index} {}", name.unwrap_or_default())
}

/// What this process hands over on an upgrade: each socket it serves on,
/// by a name the new process finds it by.
#[derive(Debug, Default)]
pub struct Sockets(Vec<(String, OwnedFd)>);

impl Sockets {
    /// Keeps a duplicate of `socket` to hand over as `name`.
    pub fn add(&mut self, name: String, socket: BorrowedFd<'_>) -> io::Result<()> {
        self.0.push((name, socket.try_clone_to_owned()?));
        Ok(())
    }

    /// The hand-over message: the names, and the sockets to attach.
    fn message(&self) -> (Vec<u8>, Vec<BorrowedFd<'_>>) {
        let mut names = Vec::new();
        for (name, _) in &self.0 {
            names.extend_from_slice(name.as_bytes());
            names.push(0);
        }
        let mut message = u32::try_from(names.len())
            .expect("names of a few hundred sockets")
            .to_be_bytes()
            .to_vec();
        message.extend(names);
        (message, self.0.iter().map(|(_, fd)| fd.as_fd()).collect())
    }
}

/// How an upgrade ended.
#[derive(Debug)]
pub enum Upgraded {
    /// The new process serves: this one is to drain and exit.
    Ready { pid: u32 },
    /// It did not come to serve; this one serves on.
    Failed { why: String },
}

/// Starts `exe` with this process's arguments, hands it `sockets`, and
/// waits (at most `timeout`) until it says it serves.
pub async fn start(exe: &Path, sockets: &Sockets, timeout: Duration) -> Upgraded {
    match run(exe, sockets, timeout).await {
        Ok(pid) => Upgraded::Ready { pid },
        Err(why) => Upgraded::Failed { why },
    }
}

async fn run(exe: &Path, sockets: &Sockets, timeout: Duration) -> Result<u32, String> {
    if sockets.0.len() > MAX_SOCKETS {
        return Err(format!(
            "{} sockets are more than one hand-over carries ({MAX_SOCKETS})",
            sockets.0.len()
        ));
    }
    static UPGRADES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let number = UPGRADES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("sockit-upgrade-{}-{number}", std::process::id());
    let listener = SocketAddr::from_abstract_name(name.as_bytes())
        .and_then(|addr| UnixListener::bind_addr(&addr))
        .and_then(|listener| {
            listener.set_nonblocking(true)?;
            tokio::net::UnixListener::from_std(listener)
        })
        .map_err(|error| format!("cannot listen for the new process: {error}"))?;
    let mut child = Starting(Some(
        tokio::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(ENV, &name)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", exe.display()))?,
    ));
    let pid = child.process().id().unwrap_or_default();
    let handing = async {
        let (stream, _) = listener
            .accept()
            .await
            .map_err(|error| format!("accepting the new process: {error}"))?;
        let (message, fds) = sockets.message();
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        control.push(SendAncillaryMessage::ScmRights(&fds));
        let mut sent = 0;
        while sent < message.len() {
            stream
                .writable()
                .await
                .map_err(|error| format!("handing the sockets over: {error}"))?;
            let chunk = &message[sent..];
            let written = stream.try_io(tokio::io::Interest::WRITABLE, || {
                if sent == 0 {
                    Ok(rustix::net::sendmsg(
                        &stream,
                        &[IoSlice::new(chunk)],
                        &mut control,
                        SendFlags::empty(),
                    )?)
                } else {
                    Ok(rustix::net::send(&stream, chunk, SendFlags::empty())?)
                }
            });
            match written {
                Ok(n) => sent += n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(format!("handing the sockets over: {error}")),
            }
        }
        let mut line = String::new();
        BufReader::new(stream)
            .read_line(&mut line)
            .await
            .map_err(|error| format!("waiting for the new process: {error}"))?;
        if line == "READY\n" {
            Ok(())
        } else {
            Err("it closed its hand-over connection before it was ready".to_owned())
        }
    };
    let outcome = tokio::select! {
        handed = handing => handed,
        status = child.process().wait() => Err(match status {
            Ok(status) => format!("it exited ({status}) before it was ready"),
            Err(error) => format!("waiting for it: {error}"),
        }),
        () = tokio::time::sleep(timeout) => {
            Err(format!("it was not ready within {}", humantime::format_duration(timeout)))
        }
    };
    match outcome {
        Ok(()) => {
            child.serves();
            Ok(pid)
        }
        Err(why) => {
            // Whatever it was doing, it is not to serve beside this one.
            let _ = child.process().start_kill();
            let _ = child.process().wait().await;
            Err(format!("pid {pid}: {why}"))
        }
    }
}

/// The new process until it serves: killed if the upgrade is dropped
/// before then (this process stopping meanwhile), left to run after.
struct Starting(Option<tokio::process::Child>);

impl Starting {
    fn process(&mut self) -> &mut tokio::process::Child {
        self.0.as_mut().expect("until it serves")
    }

    /// It serves: it outlives this process (and is reaped meanwhile).
    fn serves(mut self) {
        self.0.take();
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.start_kill();
        }
    }
}
