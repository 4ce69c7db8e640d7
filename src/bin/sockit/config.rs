//! `sockit serve --config FILE`: the limits of stream connections, in a TOML
//! file read at start and again on SIGHUP.
//!
//! ```toml
//! max_connections = 10000
//! max_message = "64K"     # bytes, or with K, M, G
//! idle_timeout = "5m"     # "0" or absent: never
//! read_timeout = "30s"
//! rate_limit = "100/s"    # each datagram source; absent: unlimited
//! rate_burst = 100
//! max_amplification = 3   # a datagram reply at most 3 × its request; 0: no cap
//! max_reply = "1K"
//! ```
//!
//! A key left out takes its default; an unknown key is an error, so a typo
//! is not silently ignored.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use sockit::server::Limits;

use crate::options::parse_bytes;
use crate::serve::parse_duration;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    max_connections: Option<usize>,
    max_message: Option<Size>,
    idle_timeout: Option<Text>,
    read_timeout: Option<Text>,
    rate_limit: Option<Text>,
    rate_burst: Option<u32>,
    max_amplification: Option<u32>,
    max_reply: Option<Size>,
}

/// A size: a number of bytes, or text such as `64K`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(usize),
    Text(String),
}

/// A duration (`30s`) or a rate (`100/s`) as text, or a bare number: of
/// seconds, or a count per second.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Text {
    Seconds(u64),
    Text(String),
}

/// Reads the limits in `path`.
pub fn read(path: &Path) -> anyhow::Result<Limits> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text).with_context(|| format!("{}", path.display()))
}

/// The limits `text` (TOML) sets, over the defaults.
fn parse(text: &str) -> anyhow::Result<Limits> {
    let file: File = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let defaults = Limits::default();
    let duration = |key: &str, value: Option<Text>| -> anyhow::Result<_> {
        let duration = match value {
            None => return Ok(None),
            Some(Text::Seconds(seconds)) => std::time::Duration::from_secs(seconds),
            Some(Text::Text(text)) => parse_duration(&text).map_err(|e| anyhow::anyhow!("{key}: {e}"))?,
        };
        Ok(Some(duration).filter(|d| !d.is_zero()))
    };
    let max_message = match file.max_message {
        None => defaults.max_message,
        Some(Size::Bytes(bytes)) => bytes,
        Some(Size::Text(text)) => parse_bytes(&text).map_err(|e| anyhow::anyhow!("max_message: {e}"))?,
    };
    if max_message == 0 {
        anyhow::bail!("max_message: must be at least 1");
    }
    let rate_limit = match file.rate_limit {
        None => None,
        Some(Text::Seconds(count)) => Some(format!("{count}/s")),
        Some(Text::Text(text)) => Some(text),
    };
    let rate_limit = rate_limit
        .map(|text| text.parse::<sockit::limit::RateLimit>())
        .transpose()
        .map_err(|e| anyhow::anyhow!("rate_limit: {e}"))?;
    let rate_limit = match (rate_limit, file.rate_burst) {
        (Some(rate), Some(burst)) if burst > 0 => Some(rate.burst(burst)),
        (_, Some(_)) => anyhow::bail!("rate_burst: needs a rate_limit, and at least 1"),
        (rate, None) => rate,
    };
    let max_reply = match file.max_reply {
        None => None,
        Some(Size::Bytes(bytes)) => Some(bytes),
        Some(Size::Text(text)) => Some(parse_bytes(&text).map_err(|e| anyhow::anyhow!("max_reply: {e}"))?),
    };
    let amplification = file
        .max_amplification
        .unwrap_or(sockit::limit::DEFAULT_MAX_AMPLIFICATION);
    let reply_cap = crate::options::reply_cap(amplification, max_reply);
    let max_connections = file.max_connections.unwrap_or(defaults.max_connections);
    if max_connections == 0 {
        anyhow::bail!("max_connections: must be at least 1");
    }
    Ok(Limits {
        max_connections,
        max_message,
        idle_timeout: duration("idle_timeout", file.idle_timeout)?,
        read_timeout: duration("read_timeout", file.read_timeout)?,
        rate_limit,
        reply_cap,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_key_and_the_defaults() {
        let limits =
            parse("max_connections = 7\nmax_message = \"4K\"\nidle_timeout = \"5m\"\nread_timeout = 30\n")
                .unwrap();
        assert_eq!(
            limits,
            Limits {
                max_connections: 7,
                max_message: 4096,
                idle_timeout: Some(Duration::from_secs(300)),
                read_timeout: Some(Duration::from_secs(30)),
                ..Limits::default()
            }
        );
        let datagrams =
            parse("rate_limit = \"10/m\"\nrate_burst = 4\nmax_amplification = 0\nmax_reply = \"1K\"")
                .unwrap();
        assert_eq!(
            datagrams.rate_limit,
            Some("10/m".parse::<sockit::limit::RateLimit>().unwrap().burst(4))
        );
        assert_eq!(
            datagrams.reply_cap,
            sockit::limit::ReplyCap::none().max_reply(Some(1024))
        );
        assert_eq!(
            parse("rate_limit = 5").unwrap().rate_limit,
            Some(sockit::limit::RateLimit::per_second(5))
        );
        assert_eq!(parse("").unwrap(), Limits::default());
        assert_eq!(
            parse("max_message = 100\nidle_timeout = \"0\"")
                .unwrap()
                .idle_timeout,
            None
        );
    }

    #[test]
    fn mistakes_are_named() {
        let error = |text: &str| format!("{:#}", parse(text).unwrap_err());
        assert!(
            error("max_conections = 3").contains("unknown field `max_conections`"),
            "{}",
            error("max_conections = 3")
        );
        assert!(error("max_message = \"4X\"").starts_with("max_message: \"4X\" is not a size"));
        assert!(error("idle_timeout = \"soon\"").starts_with("idle_timeout: \"soon\" is not a duration"));
        assert_eq!(
            error("max_connections = 0"),
            "max_connections: must be at least 1"
        );
        assert_eq!(error("max_connections = ["), "unclosed array, expected `]`");
        assert_eq!(
            error("rate_burst = 3"),
            "rate_burst: needs a rate_limit, and at least 1"
        );
        assert!(
            error("rate_limit = \"fast\"").starts_with("rate_limit: "),
            "{}",
            error("rate_limit = \"fast\"")
        );
    }
}
