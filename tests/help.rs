//! `sockit --help` and each subcommand's help end with examples; each
//! example must be a command line `sockit` accepts, flags and values alike.
//! Appending `--help` to it checks every argument without running it: clap
//! refuses a bad one before it prints the help. Netcat's flags typed where
//! sockit takes none are pointed to `sockit nc`.

mod common;

use std::time::Duration;

use common::{run_with_timeout, sockit, stdout_of};

/// The `sockit` command lines in a help text's `Examples:` section, without
/// what comes before `sockit` (`printf ... |`, `taskset -c 1`) or the
/// description after two spaces; a line ending in ` \` goes on on the next.
fn examples(help: &str) -> Vec<String> {
    let section = help
        .split_once("\nExamples:\n")
        .unwrap_or_else(|| panic!("no Examples: section in\n{help}"))
        .1;
    let mut joined = Vec::new();
    let mut pending = String::new();
    for line in section.lines() {
        pending.push_str(line.trim());
        match pending.strip_suffix(" \\") {
            Some(start) => pending = format!("{start} "),
            None => joined.push(std::mem::take(&mut pending)),
        }
    }
    joined
        .iter()
        .filter_map(|line| {
            let at = line.find("sockit ")?;
            let command = &line[at..];
            let end = command.find("  ").unwrap_or(command.len());
            Some(command[..end].to_owned())
        })
        .collect()
}

#[test]
fn every_help_example_is_a_command_line_sockit_accepts() {
    for subcommand in [
        None,
        Some("serve"),
        Some("connect"),
        Some("bench"),
        Some("ping"),
        Some("relay"),
        Some("completions"),
        Some("man"),
    ] {
        let mut help = sockit();
        help.args(subcommand).arg("--help");
        let text = stdout_of(&run_with_timeout(&mut help, Duration::from_secs(10)));
        let examples = examples(&text);
        assert!(
            examples.len() >= 3,
            "sockit {} --help has {} examples",
            subcommand.unwrap_or_default(),
            examples.len()
        );
        for example in examples {
            let args: Vec<&str> = example.split_whitespace().skip(1).collect();
            let output = run_with_timeout(sockit().args(&args).arg("--help"), Duration::from_secs(10));
            assert!(
                output.status.success(),
                "`{example}` (from sockit {} --help) is refused: {}",
                subcommand.unwrap_or_default(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

#[test]
fn an_example_ends_where_its_description_begins() {
    let help = "Usage\n\nExamples:\n  \
                sockit serve                  the tutorial's server\n  \
                Lossy UDP:\n    \
                sockit relay udp://a:1 udp://b:2 \\\n        \
                --drop 0.1\n  \
                printf 'a\\n' | sockit connect 127.0.0.1:8000\n";
    assert_eq!(
        examples(help),
        [
            "sockit serve",
            "sockit relay udp://a:1 udp://b:2 --drop 0.1",
            "sockit connect 127.0.0.1:8000"
        ]
    );
}

/// Asserts `sockit ARGS` is refused with exit status 2, nothing on stdout and
/// exactly `stderr`.
fn assert_refused(args: &[&str], stderr: &str) {
    let output = run_with_timeout(sockit().args(args), Duration::from_secs(10));
    assert_eq!(
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).as_ref(),
            String::from_utf8_lossy(&output.stderr).as_ref()
        ),
        (Some(2), "", stderr),
        "sockit {args:?}"
    );
}

#[test]
fn netcats_flags_at_the_top_level_point_to_sockit_nc() {
    assert_refused(
        &["-l", "9000"],
        "sockit: error: unexpected argument '-l' found (netcat's flags are under 'sockit nc': \
         try 'sockit nc -l 9000') (see 'sockit --help')\n",
    );
    assert_refused(
        &["-z", "127.0.0.1", "20-25", "80"],
        "sockit: error: unexpected argument '-z' found (netcat's flags are under 'sockit nc': \
         try 'sockit nc -z 127.0.0.1 20-25 80') (see 'sockit --help')\n",
    );
    assert_refused(
        &["-kl", "9000"],
        "sockit: error: unexpected argument '-k' found (netcat's flags are under 'sockit nc': \
         try 'sockit nc -kl 9000') (see 'sockit --help')\n",
    );
    // Words the shell would split are quoted.
    assert_refused(
        &["-lk", "127.0.0.1", "8000", "-c", "tr a-z A-Z"],
        "sockit: error: unexpected argument '-l' found (netcat's flags are under 'sockit nc': \
         try 'sockit nc -lk 127.0.0.1 8000 -c \"tr a-z A-Z\"') (see 'sockit --help')\n",
    );
    // A line `sockit nc` would refuse too (-k needs -l) is not suggested.
    assert_refused(
        &["-k", "9000"],
        "sockit: error: unexpected argument '-k' found (netcat's flags are under 'sockit nc') \
         (see 'sockit --help')\n",
    );
}

#[test]
fn netcats_flags_given_to_connect_point_to_sockit_nc() {
    assert_refused(
        &["connect", "-l", "9000"],
        "sockit: error: unexpected argument '-l' found (netcat's flags are under 'sockit nc': \
         try 'sockit nc -l 9000') (see 'sockit connect --help')\n",
    );
}

#[test]
fn other_unknown_flags_get_no_netcat_hint() {
    assert_refused(
        &["--bogus"],
        "sockit: error: unexpected argument '--bogus' found (see 'sockit --help')\n",
    );
    // `serve` is no netcat: its -l is not `nc -l`.
    assert_refused(
        &["serve", "-l", "9000"],
        "sockit: error: unexpected argument '-l' found (see 'sockit serve --help')\n",
    );
}
