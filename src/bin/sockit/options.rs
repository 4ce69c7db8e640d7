//! The socket option flags `serve` and `connect` share, the TLS flags of
//! `connect` and `bench`, and what they become.

use std::net::IpAddr;
use std::time::Duration;

use sockit::Endpoint;
use sockit::net::SocketOptions;
use sockit::net::tls::{ClientTls, TlsError};
use tracing::warn;

use crate::serve::parse_duration;

/// Socket options (the tutorial's `setsockopt`), each applied where it fits.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Socket options")]
pub struct SocketFlags {
    /// SO_REUSEADDR [default: on for listeners, off for clients].
    #[arg(long, overrides_with = "no_reuseaddr")]
    reuseaddr: bool,
    /// Turn SO_REUSEADDR off.
    #[arg(long, overrides_with = "reuseaddr")]
    no_reuseaddr: bool,
    /// SO_REUSEPORT: several processes may share the port.
    #[arg(long)]
    reuseport: bool,
    /// TCP_NODELAY: send small messages at once [default: on].
    #[arg(long, overrides_with = "no_nodelay")]
    nodelay: bool,
    /// Turn TCP_NODELAY off (Nagle's algorithm batches small writes).
    #[arg(long, overrides_with = "nodelay")]
    no_nodelay: bool,
    /// TCP keepalive: probe a connection idle this long (e.g. 30s).
    #[arg(long, value_name = "IDLE", value_parser = parse_duration)]
    keepalive: Option<Duration>,
    /// SO_RCVBUF in bytes, or with K, M or G (e.g. 4M; Linux reports double).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    rcvbuf: Option<usize>,
    /// SO_SNDBUF in bytes, or with K, M or G (e.g. 4M; Linux reports double).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    sndbuf: Option<usize>,
    /// IP_TTL, or IPV6_UNICAST_HOPS on IPv6.
    #[arg(long, value_name = "HOPS", value_parser = clap::value_parser!(u32).range(1..=255))]
    ttl: Option<u32>,
    /// IPV6_V6ONLY: an IPv6 listener on [::] takes no IPv4 peers [default: dual stack].
    #[arg(long)]
    ipv6_only: bool,
    /// SO_BROADCAST on UDP sockets.
    #[arg(long)]
    broadcast: bool,
}

impl SocketFlags {
    /// The options these flags set.
    pub fn options(&self) -> SocketOptions {
        let mut options = SocketOptions::default()
            .reuse_port(self.reuseport)
            .ipv6_only(self.ipv6_only)
            .broadcast(self.broadcast);
        if self.reuseaddr || self.no_reuseaddr {
            options = options.reuse_address(self.reuseaddr);
        }
        if self.nodelay || self.no_nodelay {
            options = options.nodelay(self.nodelay);
        }
        if let Some(idle) = self.keepalive {
            options = options.keepalive(idle);
        }
        if let Some(bytes) = self.rcvbuf {
            options = options.recv_buffer(bytes);
        }
        if let Some(bytes) = self.sndbuf {
            options = options.send_buffer(bytes);
        }
        if let Some(ttl) = self.ttl {
            options = options.ttl(ttl);
        }
        options
    }
}

/// How a client verifies a `tls://` server, and what it asks for.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "TLS (tls:// endpoints)")]
pub struct TlsFlags {
    /// Trust the certificate authorities in this PEM file (a self-signed server
    /// certificate is its own) [default: the system's trusted authorities].
    #[arg(long, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    /// Do not verify the server's certificate: for a test server's self-signed one only.
    #[arg(long, conflicts_with = "ca")]
    insecure: bool,
    /// The server name to ask for (SNI) and verify the certificate against [default:
    /// the endpoint's host; an IP address is checked against the certificate's IP
    /// addresses].
    #[arg(long, value_name = "NAME")]
    sni: Option<String>,
    /// Offer this application protocol (ALPN), e.g. h2; repeat for more, most preferred first.
    #[arg(long, value_name = "PROTO")]
    alpn: Vec<String>,
}

impl TlsFlags {
    /// Whether any of them was given.
    pub fn any(&self) -> bool {
        self.ca.is_some() || self.insecure || self.sni.is_some() || !self.alpn.is_empty()
    }

    /// The TLS settings for `endpoint`: `None` unless it is `tls://` (and
    /// then a warning for each flag given, which does not apply).
    pub fn client(&self, endpoint: &Endpoint) -> anyhow::Result<Option<ClientTls>> {
        if !matches!(endpoint, Endpoint::Tls(_)) {
            let given = [
                ("ca", self.ca.is_some()),
                ("insecure", self.insecure),
                ("sni", self.sni.is_some()),
                ("alpn", !self.alpn.is_empty()),
            ];
            for (flag, _) in given.iter().filter(|(_, given)| *given) {
                warn!("--{flag} applies to tls:// endpoints only, not {endpoint}; ignored");
            }
            return Ok(None);
        }
        let mut tls = ClientTls::new(self.ca.as_deref(), self.insecure).map_err(tls_error)?;
        if let Some(name) = &self.sni {
            tls = tls.server_name(name).map_err(|e| anyhow::anyhow!("--sni {e}"))?;
        }
        Ok(Some(tls.alpn(&self.alpn)))
    }
}

/// The certificate a listening side presents on `tls://` (`nc -l`, a
/// relay's LISTEN).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "TLS (tls:// endpoints)")]
pub struct CertFlags {
    /// Listening on tls://: the certificate chain to present (PEM).
    #[arg(long, value_name = "FILE")]
    cert: Option<std::path::PathBuf>,
    /// Listening on tls://: the certificate's private key (PEM).
    #[arg(long, value_name = "FILE")]
    key: Option<std::path::PathBuf>,
}

impl CertFlags {
    /// Whether either was given.
    pub fn any(&self) -> bool {
        self.cert.is_some() || self.key.is_some()
    }

    /// The TLS settings of a listening side `listen` that is `tls://`
    /// (`tls`) or not: both files for one that is, neither for one that
    /// is not (`None` for a `tls://` one without either: what serves it
    /// says that it needs them).
    pub fn server_config(
        &self,
        tls: bool,
        listen: &dyn std::fmt::Display,
    ) -> anyhow::Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
        match (tls, &self.cert, &self.key) {
            (true, Some(cert), Some(key)) => Ok(Some(
                sockit::net::tls::server_config(cert, key).map_err(tls_error)?,
            )),
            (_, None, None) => Ok(None),
            (true, _, _) => anyhow::bail!("listening on {listen} needs both --cert and --key"),
            (false, _, _) => anyhow::bail!("--cert and --key are for a tls:// listening side, not {listen}"),
        }
    }
}

/// A TLS file error, naming the flag that gave the file.
pub fn tls_error(error: TlsError) -> anyhow::Error {
    match error {
        TlsError::Certificate { path, reason } => anyhow::anyhow!("--cert {}: {reason}", path.display()),
        TlsError::Key { path, reason } => anyhow::anyhow!("--key {}: {reason}", path.display()),
        TlsError::Ca { path, reason } => anyhow::anyhow!("--ca {}: {reason}", path.display()),
        other => other.into(),
    }
}

/// A library error as the user should read it: an untrusted certificate
/// ends with what to do about it.
pub fn untrusted_hint(error: sockit::Error) -> anyhow::Error {
    let sockit::Error::Untrusted { reason, .. } = &error else {
        return error.into();
    };
    let fix = sockit::net::tls::untrusted_fix(reason);
    anyhow::anyhow!("{error} ({fix})")
}

/// Adds multicast groups to join to `options`.
pub fn with_multicast(mut options: SocketOptions, groups: &[IpAddr]) -> SocketOptions {
    for group in groups {
        options = options.join_multicast(*group);
    }
    options
}

/// Warns about each option set that `endpoint` cannot use.
pub fn warn_unused(options: &SocketOptions, endpoint: &Endpoint) {
    for option in options.not_applying_to(endpoint) {
        warn!("--{option} does not apply to {endpoint}; ignored there");
    }
}

/// Parses a size in bytes: `65536`, or with a binary multiple `64K`, `4M`,
/// `1G` (also written `64KiB`, `64k`).
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let invalid = || format!("{text:?} is not a size such as 4096, 64K or 4M");
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(digits_end);
    let number: usize = digits.parse().map_err(|_| invalid())?;
    let shift = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// The reply cap the command line and the config file describe: at most
/// `amplification` times the request (0: no such cap), and at most
/// `max_reply` bytes.
pub fn reply_cap(amplification: u32, max_reply: Option<usize>) -> sockit::limit::ReplyCap {
    sockit::limit::ReplyCap::none()
        .amplification(Some(amplification).filter(|&factor| factor > 0))
        .max_reply(max_reply)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_take_binary_multiples() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64K"), Ok(65_536));
        assert_eq!(parse_bytes("64KiB"), Ok(65_536));
        assert_eq!(parse_bytes("4m"), Ok(4 << 20));
        assert_eq!(parse_bytes("1 G"), Ok(1 << 30));
        assert_eq!(parse_bytes("0"), Ok(0));
        for bad in ["", "K", "4X", "-1", "1.5M", "99999999999999999999G"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_bytes("4X"),
            Err("\"4X\" is not a size such as 4096, 64K or 4M".to_owned())
        );
    }
}
