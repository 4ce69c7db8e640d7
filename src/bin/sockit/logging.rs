//! Logs on stderr through `tracing`, at a level set by `-v`/`-q` or `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How much to log.
#[derive(Debug, clap::Args)]
pub struct Verbosity {
    /// Log more: -v shows every message received, -vv everything.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "quiet", display_order = 100)]
    verbose: u8,
    /// Log less: -q only warnings, -qq only errors, -qqq nothing.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, display_order = 100)]
    quiet: u8,
    /// How log lines look: text for people, or json (one object a line) for log
    /// collectors.
    #[arg(
        long,
        value_name = "FORMAT",
        global = true,
        default_value = "text",
        display_order = 101
    )]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `2026-11-25T01:00:00Z  INFO listening on …`, colored on a terminal.
    Text,
    /// One JSON object a line: `timestamp`, `level`, `fields` (with `message`).
    Json,
}

impl Verbosity {
    fn level(&self) -> &'static str {
        match (self.verbose, self.quiet) {
            (0, 0) => "info",
            (1, _) => "debug",
            (_, 0) => "trace",
            (_, 1) => "warn",
            (_, 2) => "error",
            _ => "off",
        }
    }
}

/// Logs at `level` (`warn`, `debug` ...) as text on stderr; `RUST_LOG`,
/// when set, overrides it.
pub fn init_level(level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Sends logs to stderr, colored only on a terminal. `RUST_LOG`, when set,
/// overrides the flags.
pub fn init(verbosity: &Verbosity) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(verbosity.level()));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match verbosity.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
}
