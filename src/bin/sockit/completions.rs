//! `sockit completions`: a shell's completion script, made from the command
//! line's own definitions.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap_complete::Shell;

/// Print a shell's completion script: every subcommand and flag, nc's
/// included.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sockit completions bash   save as ~/.local/share/bash-completion/completions/sockit\n  \
    sockit completions zsh    save as _sockit in a directory of $fpath\n  \
    sockit completions fish   save as ~/.config/fish/completions/sockit.fish")]
pub struct Args {
    /// The shell to complete in.
    #[arg(value_name = "SHELL")]
    shell: Shell,
}

/// Writes the script for `command` (the whole of `sockit`) to stdout.
pub fn run(args: &Args, mut command: clap::Command) -> anyhow::Result<ExitCode> {
    // Made whole first: the generator panics on a failed write.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "sockit", &mut script);
    std::io::stdout()
        .lock()
        .write_all(&script)
        .context("cannot write the completion script")?;
    Ok(ExitCode::SUCCESS)
}
