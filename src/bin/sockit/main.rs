//! `sockit`: serve, connect to and poke at sockets.

mod bench;
mod completions;
mod config;
mod connect;
mod logging;
mod man;
mod nc;
mod options;
mod ping;
mod relay;
mod serve;
mod upgrade;

use std::io;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// A socket toolkit: a test server and client for any socket, speaking the
/// greeting protocol of the Python socket tutorial (and echo, and discard).
#[derive(Debug, Parser)]
#[command(
    name = "sockit",
    version,
    propagate_version = true,
    after_help = "Examples:\n  \
        sockit serve                         the tutorial's server, on tcp://127.0.0.1:8000\n  \
        sockit serve tcp://127.0.0.1:8000 udp://127.0.0.1:9000\n  \
        sockit connect 127.0.0.1:8000 client1 client2 client3\n  \
        sockit connect udp://127.0.0.1:9000 client1 client2\n  \
        sockit bench 127.0.0.1:8000 -d 5s    load: msgs/s, errors, latency percentiles\n  \
        sockit ping 127.0.0.1 -c 3           ICMP echo, as iputils ping does\n  \
        sockit relay udp://127.0.0.1:9001 udp://127.0.0.1:9000 --drop 0.1 --seed 1   lossy UDP\n  \
        sockit nc -l 9000                    netcat: listen, then raw bytes both ways"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    #[command(flatten)]
    verbosity: logging::Verbosity,
}

#[derive(Debug, Subcommand)]
enum Command {
    Serve(serve::Args),
    Connect(connect::Args),
    Bench(bench::Args),
    Ping(ping::Args),
    Relay(relay::Args),
    Nc(NcLine),
    Completions(completions::Args),
    Man(man::Args),
}

/// Netcat's habits on every endpoint: raw bytes both ways, listen (-l),
/// keep listening (-k), a program per connection (-e, -c), port checks
/// (-z). See 'sockit nc --help'.
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
struct NcLine {
    /// `sockit nc`'s own flags and targets, parsed by it: its -q and -v
    /// are netcat's.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<std::ffi::OsString>,
}

/// The runtime every subcommand runs on: a single thread when the process
/// may use only one core (under `taskset -c 0`, say), where a multi-thread
/// runtime's one worker would still pay for cross-thread wake-ups; otherwise
/// a worker per core.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut builder = if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

fn main() -> ExitCode {
    // `sockit nc` parses its own command line: netcat's -q SECS and -v are
    // not sockit's logging flags.
    let argv: Vec<_> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|arg| arg == "nc") {
        return run_nc(argv.into_iter().skip(2));
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    // A config file may set anything the command line can, logging too.
    let Cli { command, verbosity } = cli;
    let command = match command {
        Command::Nc(line) => return run_nc(line.args.into_iter()),
        Command::Completions(args) => return exit_code(completions::run(&args, whole(Cli::command()))),
        // No help subcommand: it would be listed, and has no page.
        Command::Man(args) => {
            let command = whole(Cli::command().disable_help_subcommand(true));
            return exit_code(man::run(&args, command));
        }
        command => command,
    };
    let (verbosity, configured) = match &command {
        Command::Serve(serve::Args {
            config: Some(path), ..
        }) => {
            let argv: Vec<_> = std::env::args_os().collect();
            match config::load(&argv, path) {
                Ok(config) => (config.verbosity, Some(config.listeners)),
                Err(error) => return config_error(&error),
            }
        }
        _ => (verbosity, None),
    };
    logging::init(&verbosity);
    // Before the runtime starts its threads: taking them unsets variables.
    let passed = match (&configured, &command) {
        (Some(listeners), _) => serve::take_passed(listeners.iter().map(|listener| &listener.args)),
        (None, Command::Serve(args)) => serve::take_passed(std::iter::once(args)),
        (None, _) => None,
    };
    // An upgrade in place started this process: the old one hands its
    // sockets over (see `upgrade`).
    let serving = configured.is_some() || matches!(command, Command::Serve(_));
    let handed = match serving.then(upgrade::Handed::take).transpose() {
        Ok(handed) => handed.flatten(),
        Err(error) => {
            return fail(&anyhow::Error::new(error).context("upgrade: cannot take the sockets handed over"));
        }
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&anyhow::Error::new(error).context("cannot start the runtime")),
    };
    let result = runtime.block_on(async {
        if let Some(listeners) = configured {
            return serve::run(listeners, passed, handed).await;
        }
        match command {
            Command::Serve(args) => serve::run(vec![config::Listener::from(args)], passed, handed).await,
            Command::Connect(args) => connect::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Ping(args) => ping::run(args).await,
            Command::Relay(args) => relay::run(args).await,
            Command::Nc(_) | Command::Completions(_) | Command::Man(_) => {
                unreachable!("run without the runtime")
            }
        }
    });
    // Do not wait for tasks still blocked on stdin.
    runtime.shutdown_background();
    exit_code(result)
}

/// `sockit`'s command line (`Cli::command()`) made whole, as completions and
/// manual pages show it: `sockit nc`'s own flags in place of the placeholder
/// that passes them on.
fn whole(mut command: clap::Command) -> clap::Command {
    // Built before nc joins, so that sockit's global -q and --log-format are
    // not given to nc, whose -q is netcat's.
    command.build();
    command.mut_subcommand("nc", |placeholder| {
        let mut nc = nc::Args::command()
            .name("nc")
            .bin_name("sockit nc")
            .display_name("sockit-nc")
            .display_order(placeholder.get_display_order());
        nc.build();
        nc
    })
}

/// Runs `sockit nc` with its own command line (what follows `nc`).
fn run_nc(args: impl Iterator<Item = std::ffi::OsString>) -> ExitCode {
    let args = match nc::parse(args) {
        Ok(args) => args,
        Err(error) => return nc_usage_error(&error),
    };
    logging::init_level(nc::log_level(&args));
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&anyhow::Error::new(error).context("cannot start the runtime")),
    };
    let result = runtime.block_on(nc::run(args));
    runtime.shutdown_background();
    exit_code(result)
}

/// As [`usage_error`], for `sockit nc`'s own command line.
fn nc_usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(error.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    usage(&first_paragraph(error), "nc")
}

/// A config file that cannot be used: one line, exit status 2, as for a bad
/// command line.
fn config_error(error: &anyhow::Error) -> ExitCode {
    eprintln!("sockit: error: {error:#}");
    ExitCode::from(2)
}

/// A command's exit status, or its error printed by [`fail`].
fn exit_code(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(error) => fail(&error),
    }
}

/// Prints an error with its causes on one line; a closed stdout (`| head`)
/// is not an error.
fn fail(error: &anyhow::Error) -> ExitCode {
    let broken_pipe = error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe);
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("sockit: error: {error:#}");
    ExitCode::FAILURE
}

/// Help and version go to stdout as clap prints them; a bad command line
/// gets one line naming what is wrong, and exit status 2.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let command = Cli::command();
    let subcommand = std::env::args_os()
        .skip(1)
        .filter_map(|arg| arg.into_string().ok())
        .find(|arg| command.find_subcommand(arg).is_some());
    let what = match nc_hint(error, subcommand.as_deref()) {
        Some(hint) => format!("{} ({hint})", first_paragraph(error)),
        None => first_paragraph(error),
    };
    usage(&what, subcommand.as_deref().unwrap_or_default())
}

/// Points netcat's flags, typed where `sockit` (or `sockit connect`) takes
/// none of them, to `sockit nc`: `sockit -l 9000` is `sockit nc -l 9000`.
/// The command line is suggested only when `sockit nc` would take it.
fn nc_hint(error: &clap::Error, subcommand: Option<&str>) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::UnknownArgument || !matches!(subcommand, None | Some("connect")) {
        return None;
    }
    let Some(ContextValue::String(flag)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = flag.split_once('=').map_or(flag.as_str(), |(flag, _)| flag);
    let is_nc_flag = nc::Args::command().get_arguments().any(|arg| {
        arg.get_short().is_some_and(|short| flag == format!("-{short}"))
            || arg.get_long().is_some_and(|long| flag == format!("--{long}"))
    });
    if !is_nc_flag {
        return None;
    }
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if let Some(at) = subcommand.and_then(|name| args.iter().position(|arg| arg == name)) {
        args.remove(at);
    }
    let hint = "netcat's flags are under 'sockit nc'";
    if nc::parse(args.clone()).is_err() {
        return Some(hint.to_owned());
    }
    let line: Vec<String> = args
        .iter()
        .map(|arg| shell_word(&arg.to_string_lossy()))
        .collect();
    Some(format!("{hint}: try 'sockit nc {}'", line.join(" ")))
}

/// `word` as a shell reads it back: as it is when plain, else in double
/// quotes.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%_+=:,./-".contains(c));
    if plain {
        return word.to_owned();
    }
    let mut quoted = String::from('"');
    for c in word.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// What clap says is wrong, on one line: its first paragraph, without the
/// `error: ` before it.
pub fn first_paragraph(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let paragraph: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let paragraph = paragraph.join(" ");
    paragraph.strip_prefix("error: ").unwrap_or(&paragraph).to_owned()
}

/// Says on one line that the command line is wrong (`what`), and where to
/// read how to write it; exit status 2.
pub fn usage(what: &str, subcommand: &str) -> ExitCode {
    let help = if subcommand.is_empty() {
        "sockit --help".to_owned()
    } else {
        format!("sockit {subcommand} --help")
    };
    eprintln!("sockit: error: {what} (see '{help}')");
    ExitCode::from(2)
}
