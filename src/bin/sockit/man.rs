//! `sockit man`: the manual pages, made from the command line's own
//! definitions.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap_mangen::Man;

/// Print sockit's manual page, sockit.1 (roff), or write it and a page per
/// subcommand into a directory.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sockit man                                  sockit.1 on stdout: 'sockit man | man -l -'\n  \
    sockit man --dir ~/.cargo/share/man/man1    beside ~/.cargo/bin, where man looks\n  \
    sockit man --dir /usr/local/share/man/man1  for every user")]
pub struct Args {
    /// Write sockit.1 and sockit-SUBCOMMAND.1 for each subcommand
    /// (sockit-serve.1 ...) into DIR, made if missing, instead of printing
    /// sockit.1.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Prints or writes the pages of `command` (the whole of `sockit`).
pub fn run(args: &Args, command: clap::Command) -> anyhow::Result<ExitCode> {
    let Some(dir) = &args.dir else {
        let mut page = Vec::new();
        page_of(command).render(&mut page)?;
        std::io::stdout()
            .lock()
            .write_all(&page)
            .context("cannot write the manual page")?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
    let subcommands: Vec<clap::Command> = command
        .get_subcommands()
        .filter(|subcommand| !subcommand.is_hide_set())
        .cloned()
        .collect();
    write_page(page_of(command), dir)?;
    for subcommand in subcommands {
        write_page(page_of(subcommand), dir)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The page of `command`, from sockit's version (rather than clap's default,
/// the subcommand's own name).
fn page_of(command: clap::Command) -> Man {
    Man::new(command).source(format!("sockit {}", env!("CARGO_PKG_VERSION")))
}

/// Writes `page` into `dir`, named after its command (`sockit-serve.1`).
fn write_page(page: Man, dir: &Path) -> anyhow::Result<()> {
    let path = dir.join(page.get_filename());
    let mut text = Vec::new();
    page.render(&mut text)?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}
