//! `sockit completions SHELL` and `sockit man`: made from the command line's
//! own definitions, `sockit nc`'s flags included, and put by the README's
//! install step where bash and man find them.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{TestDir, peer, run_with_timeout, skip, sockit, stdout_of};

/// How long any one run may take here.
const LIMIT: Duration = Duration::from_secs(10);

/// The subcommands every completion script and manual must name.
const SUBCOMMANDS: [&str; 6] = ["serve", "connect", "bench", "ping", "relay", "nc"];

/// bash-completion's loader, which finds a command's script in the user's
/// completions directory the first time the command is completed.
const BASH_COMPLETION: &str = "/usr/share/bash-completion/bash_completion";

/// Runs `sockit ARGS`; asserts it succeeded with nothing on stderr, and
/// returns its stdout.
fn sockit_ok(args: &[&str]) -> String {
    let output = run_with_timeout(sockit().args(args), LIMIT);
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "",
        "sockit {args:?}: stderr"
    );
    stdout_of(&output)
}

#[test]
fn each_shell_completes_every_subcommand_and_ncs_own_flags() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = sockit_ok(&["completions", shell]);
        for needle in SUBCOMMANDS.iter().chain(&["keep-open", "hex-dump", "sh-exec"]) {
            assert!(
                script.contains(needle),
                "the {shell} script does not name {needle:?}"
            );
        }
    }
    // nc's flags are nc's: its -q is netcat's quit, not sockit's --quiet.
    let fish = sockit_ok(&["completions", "fish"]);
    let nc = "complete -c sockit -n \"__fish_sockit_using_subcommand nc\"";
    for flag in ["-s k -l keep-open", "-l hex-dump", "-s q -d 'Quit SECS"] {
        assert!(
            fish.contains(&format!("{nc} {flag}")),
            "no `{nc} {flag}` in\n{fish}"
        );
    }
    for global in ["-l quiet", "-l log-format"] {
        assert!(!fish.contains(&format!("{nc} {global}")), "nc takes no {global}");
    }
}

#[test]
fn an_unknown_shell_is_refused_with_the_choices() {
    let output = run_with_timeout(sockit().args(["completions", "tcsh"]), LIMIT);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "sockit: error: invalid value 'tcsh' for '<SHELL>' [possible values: bash, elvish, fish, \
         powershell, zsh] (see 'sockit completions --help')\n"
    );
}

/// What bash's completion offers for `words`, the last being the word under
/// the cursor, once `setup` has run; `$SOCKIT` is the binary under test.
fn bash_completes(setup: &str, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|word| format!("'{word}'")).collect();
    let last = words.len() - 1;
    let script = format!(
        "{setup}\n\
         COMP_WORDS=({words}); COMP_CWORD={last}\n\
         _sockit sockit \"${{COMP_WORDS[{last}]}}\" \"${{COMP_WORDS[{before}]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        words = quoted.join(" "),
        before = last - 1,
    );
    let output = run_with_timeout(
        Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &script])
            .env("SOCKIT", env!("CARGO_BIN_EXE_sockit")),
        LIMIT,
    );
    stdout_of(&output).lines().map(str::to_owned).collect()
}

#[test]
fn bash_loads_the_script_and_completes_ncs_flags() {
    if peer("bash", "to load the bash completion script").is_none() {
        return;
    }
    let loaded = run_with_timeout(
        Command::new("bash")
            .args(["--norc", "--noprofile", "-c"])
            .arg("source <(\"$SOCKIT\" completions bash) && complete -p sockit")
            .env("SOCKIT", env!("CARGO_BIN_EXE_sockit")),
        LIMIT,
    );
    let spec = stdout_of(&loaded);
    assert!(spec.ends_with(" -F _sockit sockit\n"), "{spec:?}");
    let setup = "source <(\"$SOCKIT\" completions bash)";
    let subcommands = bash_completes(setup, &["sockit", ""]);
    for subcommand in SUBCOMMANDS {
        assert!(
            subcommands.iter().any(|word| word == subcommand),
            "`sockit <TAB>` offers {subcommands:?}, not {subcommand}"
        );
    }
    assert_eq!(
        bash_completes(setup, &["sockit", "nc", "--keep-o"]),
        ["--keep-open"]
    );
    assert_eq!(bash_completes(setup, &["sockit", "nc", "--hex"]), ["--hex-dump"]);
    assert_eq!(bash_completes(setup, &["sockit", "rel"]), ["relay"]);
}

#[test]
fn man_prints_sockit_1_naming_every_subcommand() {
    let page = sockit_ok(&["man"]);
    assert!(page.contains("\n.TH sockit 1 "), "not a roff page:\n{page}");
    assert!(page.contains("\n.SH SUBCOMMANDS\n"), "{page}");
    for subcommand in SUBCOMMANDS.iter().chain(&["completions", "man"]) {
        let reference = format!("\nsockit\\-{subcommand}(1)\n");
        assert!(page.contains(&reference), "no {reference:?} in\n{page}");
    }
    // There is no page for `sockit help` to refer to.
    assert!(!page.contains("sockit\\-help(1)"), "{page}");
}

#[test]
fn man_dir_writes_a_page_for_sockit_and_each_subcommand() {
    let test = TestDir::new("man-dir");
    // Made if missing, parents too.
    let dir = test.path().join("share/man/man1");
    assert_eq!(sockit_ok(&["man", "--dir", dir.to_str().unwrap()]), "");
    let mut pages: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    assert_eq!(
        pages,
        [
            "sockit-bench.1",
            "sockit-completions.1",
            "sockit-connect.1",
            "sockit-man.1",
            "sockit-nc.1",
            "sockit-ping.1",
            "sockit-relay.1",
            "sockit-serve.1",
            "sockit.1"
        ]
    );
    assert_eq!(
        fs::read_to_string(dir.join("sockit.1")).unwrap(),
        sockit_ok(&["man"])
    );
    let nc = fs::read_to_string(dir.join("sockit-nc.1")).unwrap();
    assert!(nc.contains("\n.TH sockit-nc 1 "), "{nc}");
    assert!(
        nc.contains("\\fBsockit nc\\fR [\\fB\\-l\\fR|\\fB\\-\\-listen\\fR]"),
        "{nc}"
    );
    for flag in ["\\-\\-keep\\-open", "\\-\\-hex\\-dump", "\\-\\-sh\\-exec"] {
        assert!(nc.contains(flag), "no {flag} in sockit-nc.1:\n{nc}");
    }
    assert!(
        !nc.contains("\\-\\-quiet") && !nc.contains("\\-\\-log\\-format"),
        "{nc}"
    );
    // sockit's own flags go with each of its subcommands.
    let serve = fs::read_to_string(dir.join("sockit-serve.1")).unwrap();
    assert!(
        serve.contains("\\-\\-quiet") && serve.contains("\\-\\-log\\-format"),
        "{serve}"
    );
}

#[test]
fn man_renders_the_nc_page() {
    let Some(man) = peer("man", "man-db, to render the manual pages") else {
        return;
    };
    let test = TestDir::new("man-render");
    sockit_ok(&["man", "--dir", test.path().to_str().unwrap()]);
    let output = run_with_timeout(
        Command::new(man)
            .arg("-l")
            .arg(test.path().join("sockit-nc.1"))
            .env("MANPAGER", "cat")
            .env("LC_ALL", "C"),
        LIMIT,
    );
    let text = stdout_of(&output);
    assert!(text.contains("sockit nc [-l|--listen]"), "{text}");
    assert!(text.contains("-k, --keep-open"), "{text}");
}

/// The commands of the README's install step, one a line: the first code
/// block of its `## Install` section.
fn install_step() -> Vec<String> {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split_once("\n## Install\n")
        .expect("README.md has an ## Install section")
        .1;
    let block = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```\n"))
        .expect("an sh block in ## Install")
        .0;
    block.lines().map(str::to_owned).collect()
}

/// The README's install step, run in a home of its own with `sockit` where
/// `cargo install` puts it, puts the manual pages where `man` finds them and
/// the completion scripts where bash, fish and zsh look.
#[test]
fn the_readme_install_step_installs_the_pages_and_completions() {
    let commands = install_step();
    assert!(
        commands[0].starts_with("cargo install --locked --path ."),
        "{commands:?}"
    );
    let man = peer("man", "man-db, to look the pages up as the README does");
    let commands: Vec<&str> = commands[1..]
        .iter()
        .map(String::as_str)
        .filter(|command| man.is_some() || !command.starts_with("man "))
        .collect();
    assert!(
        commands.iter().any(|c| c.starts_with("sockit man ")),
        "{commands:?}"
    );
    let home = TestDir::new("install");
    let bin = home.path().join(".cargo/bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_sockit"), bin.join("sockit")).unwrap();
    let output = run_with_timeout(
        Command::new("sh")
            .args(["-ec", &commands.join("\n")])
            .env("HOME", home.path())
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("MANPAGER", "cat")
            .env("LC_ALL", "C")
            .env_remove("MANPATH")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("BASH_COMPLETION_USER_DIR"),
        LIMIT,
    );
    let shown = stdout_of(&output);
    if man.is_some() {
        assert!(
            shown.contains("-k, --keep-open"),
            "`man sockit-nc` shows\n{shown}"
        );
    }
    for (script, marker) in [
        (".config/fish/completions/sockit.fish", "\ncomplete -c sockit "),
        (".zfunc/_sockit", "#compdef sockit\n"),
    ] {
        let text = fs::read_to_string(home.path().join(script)).unwrap_or_default();
        assert!(
            text.contains(marker),
            "~/{script} is not sockit's completion script"
        );
    }
    if !Path::new(BASH_COMPLETION).is_file() {
        skip("bash-completion is not installed (to load the script from where the README puts it)");
        return;
    }
    // No `source` of sockit's script: bash-completion finds it by itself.
    let setup = format!(
        "export HOME='{}'; unset XDG_DATA_HOME BASH_COMPLETION_USER_DIR\n\
         source {BASH_COMPLETION}\n\
         _comp_load sockit 2>/dev/null || __load_completion sockit",
        home.path().display()
    );
    assert_eq!(
        bash_completes(&setup, &["sockit", "nc", "--keep-o"]),
        ["--keep-open"]
    );
}
