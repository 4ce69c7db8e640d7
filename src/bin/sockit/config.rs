//! `sockit serve --config FILE`: the limits of stream connections, in a TOML
//! file read at start and again on SIGHUP.
//!
//! ```toml
//! max_connections = 10000
//! max_message = "64K"     # bytes, or with K, M, G
//! idle_timeout = "5m"     # "0" or absent: never
//! read_timeout = "30s"
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
}

/// A size: a number of bytes, or text such as `64K`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(usize),
    Text(String),
}

/// A duration: text such as `30s`, or a number of seconds.
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
    let max_connections = file.max_connections.unwrap_or(defaults.max_connections);
    if max_connections == 0 {
        anyhow::bail!("max_connections: must be at least 1");
    }
    Ok(Limits {
        max_connections,
        max_message,
        idle_timeout: duration("idle_timeout", file.idle_timeout)?,
        read_timeout: duration("read_timeout", file.read_timeout)?,
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
            }
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
    }
}
