//! `sockit serve --config FILE`: everything the `serve` command line can
//! say, in a TOML file, for one listener or several; read at start, and
//! again on SIGHUP for the limits.
//!
//! Every key is a `serve` flag with its dashes written as underscores (both
//! are accepted), and takes what the flag takes:
//!
//! ```toml
//! # Keys at the top apply to every listener: they are the defaults.
//! max_connections = 1000
//! idle_timeout = "5m"
//!
//! [[listener]]                   # the tutorial's TCP server
//! endpoint = "tcp://127.0.0.1:8000"
//! framing = "line"
//!
//! [[listener]]                   # an echo service on two endpoints
//! endpoints = ["unix:/run/echo.sock", "seqpacket:@echo"]
//! service = "echo"
//! max_connections = 10           # this listener's own limit
//!
//! [[listener]]
//! endpoint = "udp://[::]:9000"
//! rate_limit = "100/s"
//! reuseport = true               # a switch: true or false
//! multicast = ["239.1.2.3"]      # a repeatable flag: a list
//! ```
//!
//! A file without `[[listener]]` tables describes one listener. The flags on
//! the command line count as keys at the top of the file: a key given in
//! both places is an error, as are endpoints on the command line beside
//! `[[listener]]` tables. A key that is no flag, a value its flag would
//! refuse, and a flag's own rule broken (a `rate_burst` without its
//! `rate_limit`) are errors naming the key and its line. The process-wide
//! flags (`verbose`, `quiet`, `log_format`) may be keys at the top only.
//!
//! Each listener table is served by a server of its own: its endpoints
//! share its connection limit. On SIGHUP the file is read again and each
//! listener's limits (the keys in [`LIMIT_KEYS`]) are applied to it, and its
//! certificate and key files read again ([`TLS_KEYS`]); other changes wait
//! for a restart, and the log says so.

use std::ffi::OsString;
use std::ops::Range;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use clap::error::{ContextKind, ContextValue};
use clap::parser::ValueSource;
use clap::{ArgAction, CommandFactory, FromArgMatches};
use toml::de::{DeTable, DeValue};

use crate::{Cli, Command, logging, serve};

/// The keys a reload applies: the limits.
pub const LIMIT_KEYS: [&str; 8] = [
    "max_connections",
    "max_message",
    "idle_timeout",
    "read_timeout",
    "rate_limit",
    "rate_burst",
    "max_amplification",
    "max_reply",
];

/// The keys of the certificate a reload reads again.
pub const TLS_KEYS: [&str; 3] = ["cert", "key", "alpn"];

/// Keys of the whole process, not of one listener.
const PROCESS_WIDE: [&str; 7] = [
    "config",
    "verbose",
    "quiet",
    "log_format",
    "metrics",
    "pid_file",
    "upgrade_timeout",
];

/// The key that holds the endpoints (the flagless arguments).
const ENDPOINTS: &str = "endpoints";

/// What a command line and its file ask for.
#[derive(Debug)]
pub struct Config {
    /// How much to log, and how.
    pub verbosity: logging::Verbosity,
    /// The listener tables, in order.
    pub listeners: Vec<Listener>,
}

/// One listener table: a `serve` command line of its own.
#[derive(Debug)]
pub struct Listener {
    /// What it serves, and how.
    pub args: serve::Args,
    /// What the file sets besides limits and certificates, to tell whether
    /// a reload changes only those.
    pub fixed: Vec<OsString>,
}

impl From<serve::Args> for Listener {
    /// The one listener of a command line without a config file.
    fn from(args: serve::Args) -> Self {
        Listener {
            args,
            fixed: Vec::new(),
        }
    }
}

/// Reads the file that `argv` (the whole command line, with its
/// `--config FILE`) names at `path`, and parses the command line once for
/// each listener table in it.
pub fn load(argv: &[OsString], path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(argv, &path.display().to_string(), &text)
}

/// A key as written, where it was written, and the arguments it stands for.
#[derive(Debug, Clone)]
struct Setting {
    key: String,
    line: usize,
    args: Vec<OsString>,
}

/// [`load`] on the file's `text`; `name` is how errors call the file.
fn parse(argv: &[OsString], name: &str, text: &str) -> anyhow::Result<Config> {
    let at = |span: Range<usize>| format!("{name}:{}", line_of(text, span.start));
    let document = DeTable::parse(text).map_err(|error| {
        let place = error.span().map_or_else(|| name.to_owned(), at);
        anyhow!("{place}: {}", error.message().trim_end())
    })?;
    let command = Cli::command();
    let serve = command
        .find_subcommand("serve")
        .expect("sockit has a serve subcommand");
    let flags = Flags {
        command: &command,
        serve,
    };

    let mut top = Vec::new();
    let mut tables = Vec::new();
    for (key, value) in document.get_ref() {
        if key.get_ref() == "listener" {
            let DeValue::Array(array) = value.get_ref() else {
                bail!(
                    "{}: listener: write each listener as a [[listener]] table",
                    at(key.span())
                );
            };
            for table in array.iter() {
                let DeValue::Table(entries) = table.get_ref() else {
                    bail!(
                        "{}: listener: write each listener as a [[listener]] table",
                        at(table.span())
                    );
                };
                tables.push((line_of(text, table.span().start), entries));
            }
        } else {
            top.push(flags.setting(
                key.get_ref(),
                value,
                &at(key.span()),
                line_of(text, key.span().start),
            )?);
        }
    }
    let given = command
        .clone()
        .try_get_matches_from(argv)
        .map_err(|error| anyhow!("{}", crate::first_paragraph(&error)))?;
    let endpoints_given = given
        .subcommand_matches("serve")
        .and_then(|serve| serve.value_source(ENDPOINTS))
        == Some(ValueSource::CommandLine);

    let mut tables_settings = Vec::new();
    for (line, entries) in &tables {
        let mut settings = top.clone();
        for (key, value) in entries.iter() {
            let place = at(key.span());
            let setting = flags.setting(key.get_ref(), value, &place, line_of(text, key.span().start))?;
            if PROCESS_WIDE.contains(&setting.key.as_str()) {
                bail!(
                    "{place}: {}: sets the whole process, not one listener: put it at the top of the file",
                    setting.key
                );
            }
            if setting.key == ENDPOINTS && endpoints_given {
                bail!("{place}: endpoints are given on the command line too: give them in one place");
            }
            // A listener's own value replaces the default from the top.
            settings.retain(|s: &Setting| s.key != setting.key);
            settings.push(setting);
        }
        tables_settings.push((*line, settings));
    }
    if tables.is_empty() {
        tables_settings.push((1, top));
    }

    let mut verbosity = None;
    let mut listeners = Vec::new();
    for (line, settings) in tables_settings {
        let mut full = argv.to_vec();
        full.extend(settings.iter().flat_map(|s| s.args.iter().cloned()));
        let cli = command
            .clone()
            .try_get_matches_from(&full)
            .and_then(|matches| Cli::from_arg_matches(&matches))
            .map_err(|error| blame(&error, &settings, name, line))?;
        let Command::Serve(args) = cli.command else {
            unreachable!("a --config file is read for serve only")
        };
        verbosity.get_or_insert(cli.verbosity);
        let fixed = settings
            .iter()
            .filter(|s| !LIMIT_KEYS.contains(&s.key.as_str()) && !TLS_KEYS.contains(&s.key.as_str()))
            .flat_map(|s| s.args.iter().cloned())
            .collect();
        listeners.push(Listener { args, fixed });
    }
    Ok(Config {
        verbosity: verbosity.expect("a file describes at least one listener"),
        listeners,
    })
}

/// The flags a file's keys may name.
struct Flags<'a> {
    command: &'a clap::Command,
    serve: &'a clap::Command,
}

impl Flags<'_> {
    /// The arguments `key = value` stands for; `place` is where it is written.
    fn setting(
        &self,
        key: &str,
        value: &toml::Spanned<DeValue<'_>>,
        place: &str,
        line: usize,
    ) -> anyhow::Result<Setting> {
        let wanted = key.replace('_', "-");
        let endpoints = matches!(key, "endpoint" | "endpoints");
        let arg = self
            .serve
            .get_arguments()
            .chain(self.command.get_arguments())
            .find(|arg| {
                if endpoints {
                    arg.get_id() == ENDPOINTS
                } else {
                    arg.get_long() == Some(wanted.as_str())
                }
            });
        let Some(arg) = arg else {
            let known = self
                .serve
                .get_arguments()
                .chain(self.command.get_arguments())
                .filter_map(|arg| arg.get_long())
                .map(|long| long.replace('-', "_"))
                .filter(|known| !matches!(known.as_str(), "help" | "version"));
            let closest = known
                .map(|known| (strsim::jaro_winkler(key, &known), known))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            return Err(match closest {
                Some((_, known)) => anyhow!("{place}: unknown key `{key}` (did you mean `{known}`?)"),
                None => anyhow!("{place}: unknown key `{key}`: the keys are `sockit serve`'s flags"),
            });
        };
        let key = if endpoints {
            ENDPOINTS.to_owned()
        } else {
            wanted.replace('-', "_")
        };
        if matches!(key.as_str(), "help" | "version" | "config") {
            bail!("{place}: `{key}` has no place in a config file");
        }
        let wrong = |what: &str| anyhow!("{place}: {key}: expected {what}");
        let flag = format!("--{}", arg.get_long().unwrap_or_default());
        let args = match arg.get_action() {
            ArgAction::SetTrue => match value.get_ref() {
                DeValue::Boolean(true) => vec![flag.into()],
                DeValue::Boolean(false) => Vec::new(),
                _ => return Err(wrong("true or false")),
            },
            ArgAction::Count => match value.get_ref() {
                DeValue::Integer(count) => {
                    let count = usize::from_str_radix(count.as_str(), count.radix())
                        .map_err(|_| wrong("a count such as 1 or 2"))?;
                    vec![flag.into(); count]
                }
                _ => return Err(wrong("a count such as 1 or 2")),
            },
            ArgAction::Append if endpoints => scalars(value.get_ref())
                .ok_or_else(|| wrong("an endpoint, or a list of them"))?
                .into_iter()
                .map(OsString::from)
                .collect(),
            ArgAction::Append => scalars(value.get_ref())
                .ok_or_else(|| wrong("a value, or a list of them"))?
                .into_iter()
                .map(|scalar| format!("{flag}={scalar}").into())
                .collect(),
            _ => match value.get_ref() {
                DeValue::Array(_) | DeValue::Table(_) => return Err(wrong("one value")),
                other => vec![format!("{flag}={}", scalar(other).ok_or_else(|| wrong("one value"))?).into()],
            },
        };
        Ok(Setting { key, line, args })
    }
}

/// A value as a command line would write it.
fn scalar(value: &DeValue<'_>) -> Option<String> {
    match value {
        DeValue::String(text) => Some(text.to_string()),
        DeValue::Integer(integer) => {
            let number = i128::from_str_radix(integer.as_str(), integer.radix()).ok()?;
            Some(number.to_string())
        }
        DeValue::Float(float) => Some(float.as_str().to_owned()),
        DeValue::Boolean(boolean) => Some(boolean.to_string()),
        DeValue::Datetime(_) | DeValue::Array(_) | DeValue::Table(_) => None,
    }
}

/// One value, or each value of a list.
fn scalars(value: &DeValue<'_>) -> Option<Vec<String>> {
    match value {
        DeValue::Array(array) => array.iter().map(|item| scalar(item.get_ref())).collect(),
        other => scalar(other).map(|one| vec![one]),
    }
}

/// The line of byte `offset` in `text`, from 1.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&byte| byte == b'\n')
        .count()
        + 1
}

/// A command line that the file's `settings` made wrong, said of the key to
/// blame and its line (or of the listener table starting at `table`).
fn blame(error: &clap::Error, settings: &[Setting], name: &str, table: usize) -> anyhow::Error {
    let message = in_keys(&crate::first_paragraph(error));
    let named = [ContextKind::InvalidArg, ContextKind::PriorArg]
        .into_iter()
        .filter_map(|kind| match error.get(kind) {
            Some(ContextValue::String(arg)) => Some(key_of(arg)),
            Some(ContextValue::Strings(args)) => args.first().map(|arg| key_of(arg)),
            _ => None,
        });
    let culprit = named
        .into_iter()
        .find_map(|key| settings.iter().find(|setting| setting.key == key));
    let duplicate =
        error.kind() == clap::error::ErrorKind::ArgumentConflict && message.contains("multiple times");
    match culprit {
        Some(setting) if duplicate => anyhow!(
            "{name}:{}: {}: also given on the command line: give it in one place",
            setting.line,
            setting.key
        ),
        Some(setting) => anyhow!("{name}:{}: {message}", setting.line),
        None => anyhow!("{name}:{table}: {message}"),
    }
}

/// The key of a flag as clap writes it: `--max-connections <N>` is
/// `max_connections`, `[ENDPOINT]...` is `endpoints`.
fn key_of(arg: &str) -> String {
    match arg.strip_prefix("--") {
        Some(flag) => flag.split([' ', '=']).next().unwrap_or(flag).replace('-', "_"),
        None => ENDPOINTS.to_owned(),
    }
}

/// clap's `message` with each flag it names (`'--max-connections <N>'`,
/// quoted or not) written as its key (`max_connections`).
fn in_keys(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find("--") {
        let quoted = rest[..start].ends_with('\'');
        out.push_str(&rest[..start - usize::from(quoted)]);
        let flag = &rest[start..];
        let name_end = flag[2..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .map_or(flag.len(), |end| end + 2);
        out.push_str(&key_of(&flag[..name_end]));
        let mut after = &flag[name_end..];
        // The value's placeholder: ` <N>`.
        if let Some(value) = after.strip_prefix(" <")
            && let Some(end) = value.find('>')
        {
            after = &value[end + 1..];
        }
        if quoted {
            after = after.strip_prefix('\'').unwrap_or(after);
        }
        rest = after;
    }
    out.push_str(rest);
    out.replace("'[ENDPOINT]...'", ENDPOINTS)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sockit::Limits;

    use super::*;

    const FILE: &str = "sockit.toml";

    fn argv(args: &str) -> Vec<OsString> {
        std::iter::once("sockit")
            .chain(args.split_whitespace())
            .map(OsString::from)
            .collect()
    }

    fn read(args: &str, text: &str) -> anyhow::Result<Config> {
        parse(&argv(&format!("serve --config {FILE} {args}")), FILE, text)
    }

    fn error(args: &str, text: &str) -> String {
        format!("{:#}", read(args, text).unwrap_err())
    }

    fn limits(listener: &Listener) -> Limits {
        listener.args.limits()
    }

    #[test]
    fn the_limits_alone_as_before() {
        let config = read(
            "",
            "max_connections = 7\nmax_message = \"4K\"\nidle_timeout = \"5m\"\nread_timeout = 30\n",
        )
        .unwrap();
        assert_eq!(config.listeners.len(), 1);
        assert_eq!(
            limits(&config.listeners[0]),
            Limits {
                max_connections: 7,
                max_message: 4096,
                idle_timeout: Some(Duration::from_secs(300)),
                read_timeout: Some(Duration::from_secs(30)),
                ..Limits::default()
            }
        );
        let datagrams = read(
            "",
            "rate_limit = \"10/m\"\nrate_burst = 4\nmax_amplification = 0\nmax_reply = \"1K\"",
        )
        .unwrap();
        let datagrams = limits(&datagrams.listeners[0]);
        assert_eq!(
            datagrams.rate_limit,
            Some("10/m".parse::<sockit::limit::RateLimit>().unwrap().burst(4))
        );
        assert_eq!(
            datagrams.reply_cap,
            sockit::limit::ReplyCap::none().max_reply(Some(1024))
        );
        assert_eq!(limits(&read("", "").unwrap().listeners[0]), Limits::default());
    }

    #[test]
    fn several_listeners_with_defaults_from_the_top() {
        let text = "max_connections = 50\nverbose = 1\n\
                    [[listener]]\nendpoint = \"tcp://127.0.0.1:8000\"\nframing = \"line\"\n\
                    [[listener]]\nendpoints = [\"udp://127.0.0.1:9000\", \"unix:/tmp/x.sock\"]\n\
                    service = \"echo\"\nmax_connections = 3\nreuseport = true\nmulticast = [\"239.1.2.3\"]\n";
        let config = read("--shutdown-timeout 2s", text).unwrap();
        let [first, second] = &config.listeners[..] else {
            panic!("{config:?}");
        };
        assert_eq!(first.args.endpoints, ["tcp://127.0.0.1:8000".parse().unwrap()]);
        assert_eq!(first.args.framing, Some(sockit::Framing::Line));
        assert_eq!(limits(first).max_connections, 50);
        assert_eq!(second.args.endpoints.len(), 2);
        assert_eq!(second.args.service, sockit::Builtin::Echo);
        assert_eq!(limits(second).max_connections, 3);
        assert_eq!(
            second.args.multicast,
            ["239.1.2.3".parse::<std::net::IpAddr>().unwrap()]
        );
        // The command line's flags apply to every listener.
        assert_eq!(second.args.shutdown_timeout, Duration::from_secs(2));
        assert!(format!("{:?}", config.verbosity).contains("verbose: 1"));
        // What a reload compares: everything but the limits.
        assert!(
            !first
                .fixed
                .iter()
                .any(|arg| arg.to_str().unwrap().contains("max-connections"))
        );
        assert!(second.fixed.contains(&OsString::from("--reuseport")));

        // A repeatable flag's list, and a switch that another flag requires.
        let proxied = read(
            "",
            "proxy_protocol = true\ntrusted_proxy = [\"127.0.0.1\", \"10.0.0.0/8\"]\nproxy_timeout = \"2s\"",
        )
        .unwrap();
        let proxied = &proxied.listeners[0].args;
        assert!(proxied.proxy_protocol);
        assert_eq!(proxied.trusted_proxy.len(), 2);
        assert_eq!(proxied.proxy_timeout, Duration::from_secs(2));
    }

    #[test]
    fn the_readme_example_is_a_good_file() {
        let readme = include_str!("../../../README.md");
        let example = readme
            .split("```toml\n")
            .skip(1)
            .filter_map(|block| block.split("```").next())
            .find(|block| block.contains("[[listener]]"))
            .expect("README.md shows a file with listener tables");
        let config = read("", example).unwrap();
        assert_eq!(config.listeners.len(), 3);
        assert_eq!(limits(&config.listeners[1]).max_connections, 10);
        assert_eq!(limits(&config.listeners[2]).max_connections, 1000);
        assert_eq!(
            limits(&config.listeners[0]).idle_timeout,
            Some(Duration::from_secs(300))
        );
    }

    #[test]
    fn mistakes_name_the_key_and_its_line() {
        assert_eq!(
            error("", "max_connections = 3\nmax_conections = 3"),
            "sockit.toml:2: unknown key `max_conections` (did you mean `max_connections`?)"
        );
        assert_eq!(
            error("", "\n\nmax_message = \"4X\""),
            "sockit.toml:3: invalid value '4X' for max_message: \"4X\" is not a size such as 4096, 64K or 4M"
        );
        assert_eq!(
            error(
                "",
                "[[listener]]\nendpoint = \"tcp://127.0.0.1:1\"\nmax_connections = 0"
            ),
            "sockit.toml:3: invalid value '0' for max_connections: must be at least 1"
        );
        assert_eq!(
            error("", "max_connections = ["),
            "sockit.toml:1: unclosed array, expected `]`"
        );
        assert_eq!(
            error("", "rate_burst = 3"),
            "sockit.toml:1: the following required arguments were not provided: rate_limit"
        );
        assert_eq!(
            error("--max-connections 5", "idle_timeout = 1\nmax_connections = 3"),
            "sockit.toml:2: max_connections: also given on the command line: give it in one place"
        );
        assert_eq!(
            error("", "reuseport = \"yes\""),
            "sockit.toml:1: reuseport: expected true or false"
        );
        assert_eq!(
            error("", "[[listener]]\nlog_format = \"json\""),
            "sockit.toml:2: log_format: sets the whole process, not one listener: put it at the top of the file"
        );
        assert_eq!(
            error(
                "tcp://127.0.0.1:1",
                "[[listener]]\nendpoint = \"udp://127.0.0.1:2\""
            ),
            "sockit.toml:2: endpoints are given on the command line too: give them in one place"
        );
        let endpoint = error("", "endpoint = \"ftp://x\"");
        assert!(
            endpoint
                .starts_with("sockit.toml:1: invalid value 'ftp://x' for endpoints: unknown scheme \"ftp\""),
            "{endpoint}"
        );
        assert_eq!(
            error("", "service = [\"echo\"]"),
            "sockit.toml:1: service: expected one value"
        );
    }
}
