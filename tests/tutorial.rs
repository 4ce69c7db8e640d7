//! Every command in `docs/tutorial.md` (and in README.md's `console run` blocks)
//! runs here as written, and prints what the text says it prints.
//!
//! The convention, for anyone writing these documents:
//!
//! - A code block tagged `console` is a shell session, run in the repository
//!   root (in README.md, only a block tagged `console run`: its other
//!   `console` blocks are samples, such as the error a mistaken file gives). A line starting with `$ ` is a command, run by `sh -c`; the lines
//!   after it, up to the next `$ ` or the end of the block, are exactly what
//!   it prints (stdout and stderr together, as on a terminal), and it must
//!   exit 0 (show a failure as `$ CMD || echo "exit status $?"`).
//! - A command ending in ` &` runs in the background, as a server for the
//!   commands after it, until `$ kill %N` (N counts the background jobs as a
//!   shell does: one more than the highest still running). The lines under
//!   the `&` command are what it prints first, and at least one is needed:
//!   the next command waits for them, so they say the server is ready. The
//!   lines under `kill %N` are everything else the job printed, up to its
//!   exit. A document ends with no job left running.
//! - In an expected line, `…` stands for any text (a timestamp, a port the
//!   system chose, a time measured), and a line that is only `…` for any
//!   number of lines (a server's log that does not matter there); use them
//!   sparingly.
//! - Commands are written as a reader types them: `sockit` is the binary
//!   under test (first on `PATH`); `cargo run [--release] [-q] -- ARGS` is
//!   `sockit ARGS` and `cargo run [...] --example NAME [-- ARGS]` the example
//!   binary built by `cargo test`; `../shared/seed/` is `$SOCKIT_SEED_DIR`
//!   (or `../shared/seed`), and python3 runs the seed's programs with
//!   `SO_REUSEADDR` set before their `bind` (their ports may be in
//!   `TIME_WAIT`) and unbuffered.
//! - Before each command, the runner waits until the background jobs have
//!   printed nothing for 150 ms, as a reader waits for a server's log line;
//!   `NO_COLOR=1` keeps the examples' logs plain.
//! - Blocks tagged `sh` are commands that are not run (installing, long
//!   runs); `text` blocks are output samples, not checked. Keep both few.
//!   A `rust` block of the tutorial is an excerpt of one of `examples/*.rs`,
//!   verbatim, so it cannot drift from code that compiles and runs.
//!
//! A document whose commands need what this machine lacks (python3 and the
//! seed, `nc`, `timeout`, `::1`, `CAP_NET_RAW` for `sockit ping`) says SKIP,
//! and fails under `CI=true`.
//!
//! The seed's fixed ports (8000, 9000), and every other fixed port and name a
//! document uses, are held with the seed ports lock for the whole document.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{peer, seed_dir, seed_ports};

/// How long a foreground command may run.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);
/// How long the background jobs must be quiet before the next command.
const SETTLE: Duration = Duration::from_millis(150);
/// How long a background job may take to print its first lines, or to exit
/// once killed.
const JOB_LIMIT: Duration = Duration::from_secs(10);

/// One `$ ` command of a `console` block, with the output it must print.
#[derive(Debug)]
struct Step {
    /// Where the command is written, `FILE:LINE`, for failures.
    at: String,
    command: String,
    expected: Vec<String>,
}

/// The `$ ` commands of every `console` block of `text`, in order.
/// Which `console` blocks of a document run.
#[derive(Clone, Copy)]
enum Blocks {
    /// Every one (the tutorial).
    All,
    /// Those tagged `console run` (README.md, whose other `console` blocks
    /// are samples a reader cannot run as written).
    Tagged,
}

fn console_steps(file: &str, text: &str, blocks: Blocks) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut fence: Option<String> = None;
    for (number, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            fence = match fence {
                None => Some(line.trim_start_matches('`').to_owned()),
                Some(_) => None,
            };
            continue;
        }
        let Some(info) = &fence else { continue };
        let mut words = info.split_whitespace();
        let runs = words.next() == Some("console")
            && match blocks {
                Blocks::All => true,
                Blocks::Tagged => words.any(|word| word == "run"),
            };
        if !runs {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                at: format!("{file}:{}", number + 1),
                command: command.to_owned(),
                expected: Vec::new(),
            });
        } else {
            let step = steps
                .last_mut()
                .unwrap_or_else(|| panic!("{file}:{}: output before any `$ ` command", number + 1));
            step.expected.push(line.to_owned());
        }
    }
    assert!(fence.is_none(), "{file}: an unclosed code block");
    steps
}

/// Whether `actual` is `pattern`, where each `…` in the pattern stands for
/// any text.
fn line_matches(pattern: &str, actual: &str) -> bool {
    let mut parts = pattern.split('…');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = actual.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Whether `actual` matches `expected` line by line, where a line that is
/// only `…` stands for any number of lines.
fn lines_match(expected: &[String], actual: &[String]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == "…" => {
            (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..]))
        }
        Some((first, rest)) => actual
            .split_first()
            .is_some_and(|(line, others)| line_matches(first, line) && lines_match(rest, others)),
    }
}

/// Fails unless `actual` matches `expected` line by line.
fn assert_output(step: &Step, expected: &[String], actual: &[String], what: &str) {
    assert!(
        lines_match(expected, actual),
        "{}: `$ {}`: {what} differs\n--- expected\n{}\n--- actual\n{}\n---",
        step.at,
        step.command,
        expected.join("\n"),
        actual.join("\n")
    );
}

/// Rewrites a command as a reader types it into one that runs here: the
/// `cargo run` forms become the binaries `cargo test` built, and the seed's
/// directory is found.
fn resolve(command: &str, seed: Option<&Path>) -> String {
    let examples = bin_dir().join("examples");
    let mut out = String::new();
    let mut rest = command;
    while let Some(at) = rest.find("cargo run") {
        out.push_str(&rest[..at]);
        let mut words = rest[at + "cargo run".len()..].split(' ').peekable();
        let mut binary = "sockit".to_owned();
        let mut consumed = "cargo run".len();
        while let Some(&word) = words.peek() {
            match word {
                "" | "-q" | "--quiet" | "--release" => {}
                "--example" => {
                    words.next();
                    consumed += word.len() + 1;
                    let name = words.next().expect("a name after --example");
                    consumed += name.len() + 1;
                    binary = examples.join(name).display().to_string();
                    continue;
                }
                "--" => {
                    words.next();
                    consumed += word.len() + 1;
                    break;
                }
                _ => break,
            }
            words.next();
            consumed += word.len() + 1;
        }
        out.push_str(&binary);
        out.push(' ');
        rest = &rest[(at + consumed).min(rest.len())..];
    }
    out.push_str(rest);
    match seed {
        Some(seed) => out.replace("../shared/seed/", &format!("{}/", seed.display())),
        None => out,
    }
}

/// The directory of the binaries `cargo test` built.
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_sockit"))
        .parent()
        .expect("the target directory")
        .to_path_buf()
}

/// Makes the seed's servers set `SO_REUSEADDR` before `bind`, without
/// changing them: Python imports `sitecustomize` from `PYTHONPATH` at start.
const SITECUSTOMIZE: &str = "\
import socket
_bind = socket.socket.bind
def bind(self, address):
    self.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return _bind(self, address)
socket.socket.bind = bind
";

/// Where and how the commands of one document run.
struct Shell {
    seed: Option<PathBuf>,
    python_path: PathBuf,
    jobs: Vec<(usize, Job)>,
}

impl Shell {
    fn new(seed: Option<PathBuf>) -> Shell {
        let python_path = std::env::temp_dir().join(format!("sockit-{}-tutorial-python", std::process::id()));
        fs::create_dir_all(&python_path).expect("create the sitecustomize directory");
        fs::write(python_path.join("sitecustomize.py"), SITECUSTOMIZE).expect("write sitecustomize.py");
        Shell {
            seed,
            python_path,
            jobs: Vec::new(),
        }
    }

    /// `sh -c COMMAND` with stdout and stderr into one pipe, in its own
    /// process group.
    fn spawn(&self, command: &str) -> (Child, Output) {
        let path = std::env::join_paths(std::iter::once(bin_dir()).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))
        .expect("a PATH");
        let (reader, writer) = std::io::pipe().expect("a pipe");
        let child = Command::new("sh")
            .args(["-c", &resolve(command, self.seed.as_deref())])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PATH", path)
            .env("PYTHONPATH", &self.python_path)
            .env("PYTHONUNBUFFERED", "1")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(writer.try_clone().expect("clone the pipe"))
            .stderr(writer)
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        (child, Output::collect(reader))
    }

    fn run(&mut self, step: &Step) {
        self.settle();
        if let Some(command) = step.command.strip_suffix(" &") {
            self.start_job(step, command);
        } else if let Some(number) = step.command.strip_prefix("kill %") {
            let number: usize = number.parse().unwrap_or_else(|_| panic!("{}: kill %N", step.at));
            self.kill_job(step, number);
        } else {
            self.run_foreground(step);
        }
    }

    /// Waits until the background jobs have printed nothing for a moment,
    /// so that what a job prints in answer to one command is not mixed up
    /// with the next command (as a reader waits for a server's log line).
    fn settle(&self) {
        if self.jobs.is_empty() {
            return;
        }
        let count = || {
            self.jobs
                .iter()
                .map(|(_, job)| job.output.lines().len())
                .sum::<usize>()
        };
        let start = Instant::now();
        let mut before = count();
        loop {
            std::thread::sleep(SETTLE);
            let now = count();
            if now == before || start.elapsed() > JOB_LIMIT {
                return;
            }
            before = now;
        }
    }

    fn run_foreground(&mut self, step: &Step) {
        let (mut child, output) = self.spawn(&step.command);
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if start.elapsed() > COMMAND_LIMIT {
                kill_group(&child, "KILL");
                let _ = child.wait();
                panic!(
                    "{}: `$ {}` still running after {COMMAND_LIMIT:?}; printed:\n{}",
                    step.at,
                    step.command,
                    output.lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let lines = output.finish(&step.at);
        assert!(
            status.success(),
            "{}: `$ {}` failed ({status}); printed:\n{}",
            step.at,
            step.command,
            lines.join("\n")
        );
        assert_output(step, &step.expected, &lines, "the output");
    }

    fn start_job(&mut self, step: &Step, command: &str) {
        assert!(
            !step.expected.is_empty(),
            "{}: `$ {}` shows nothing it prints: the first line a background job prints says it is ready",
            step.at,
            step.command
        );
        assert!(
            !step.expected.iter().any(|line| line == "…"),
            "{}: a line of only `…` cannot say when a background job is ready",
            step.at
        );
        let number = self.jobs.iter().map(|(n, _)| *n).max().unwrap_or(0) + 1;
        let (child, output) = self.spawn(command);
        let job = Job {
            child,
            output,
            shown: step.expected.len(),
        };
        self.jobs.push((number, job));
        let job = &self.jobs.last().expect("just pushed").1;
        let start = Instant::now();
        while job.output.lines().len() < step.expected.len() {
            assert!(
                !job.output.closed() && start.elapsed() < JOB_LIMIT,
                "{}: `$ {}` did not print {} lines within {JOB_LIMIT:?}; printed:\n{}",
                step.at,
                step.command,
                step.expected.len(),
                job.output.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let first = job.output.lines()[..step.expected.len()].to_vec();
        assert_output(step, &step.expected, &first, "what it printed first");
    }

    fn kill_job(&mut self, step: &Step, number: usize) {
        let index = self
            .jobs
            .iter()
            .position(|(n, _)| *n == number)
            .unwrap_or_else(|| panic!("{}: no job %{number} is running", step.at));
        let (_, mut job) = self.jobs.remove(index);
        kill_group(&job.child, "TERM");
        let start = Instant::now();
        while job.child.try_wait().expect("wait").is_none() {
            assert!(
                start.elapsed() < JOB_LIMIT,
                "{}: job %{number} still running {JOB_LIMIT:?} after kill",
                step.at
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let shown = job.shown;
        let lines = std::mem::replace(&mut job.output, Output::empty()).finish(&step.at);
        assert_output(
            step,
            &step.expected,
            &lines[shown..],
            "what the job printed after",
        );
    }

    /// Fails if a document leaves a job running.
    fn finish(&mut self, file: &str) {
        let running: Vec<usize> = self.jobs.iter().map(|(n, _)| *n).collect();
        assert!(
            running.is_empty(),
            "{file} ends with jobs {running:?} still running: `kill` them"
        );
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.python_path);
    }
}

/// Signals every process of `child`'s group.
fn kill_group(child: &Child, signal: &str) {
    let _ = Command::new("kill")
        .args([format!("-{signal}"), "--".into(), format!("-{}", child.id())])
        .status();
}

/// A background job: its shell, and what it printed.
struct Job {
    child: Child,
    output: Output,
    /// How many of its first lines the document showed under its `&`.
    shown: usize,
}

impl Drop for Job {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            kill_group(&self.child, "KILL");
            let _ = self.child.wait();
        }
    }
}

/// The lines a process group prints, read as they come.
struct Output {
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Output {
    fn collect(pipe: impl Read + Send + 'static) -> Output {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Output {
            lines,
            reader: Some(reader),
        }
    }

    fn empty() -> Output {
        Output {
            lines: Arc::default(),
            reader: None,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Whether every writer closed the pipe.
    fn closed(&self) -> bool {
        self.reader.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Every line, once every process of the group closed the pipe.
    fn finish(mut self, at: &str) -> Vec<String> {
        let start = Instant::now();
        while !self.closed() {
            assert!(
                start.elapsed() < JOB_LIMIT,
                "{at}: a process it started still holds its output open"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the reader thread");
        }
        self.lines()
    }
}

/// Runs every `console` command of the document `name` (relative to the
/// repository root); returns how many ran, or `None` if it was skipped.
fn run_document(name: &str, blocks: Blocks) -> Option<usize> {
    let text = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let steps = console_steps(name, &text, blocks);
    let uses = |program: &str| {
        steps
            .iter()
            .any(|s| s.command.split_whitespace().any(|word| word == program))
    };
    for (program, why) in [
        ("nc", "a plain TCP client"),
        ("timeout", "stops a client that would wait forever"),
        ("curl", "fetches the metrics"),
        ("openssl", "makes a certificate and speaks TLS"),
        (
            "systemd-socket-activate",
            "passes sockit a socket as systemd does",
        ),
    ] {
        if uses(program) {
            peer(program, &format!("{why}, in {name}"))?;
        }
    }
    const CAP_NET_RAW: u64 = 1 << 13;
    if steps.iter().any(|s| s.command.contains("sockit ping")) && common::capabilities() & CAP_NET_RAW == 0 {
        common::skip(&format!(
            "{name} pings on a raw socket, which needs root or CAP_NET_RAW"
        ));
        return None;
    }
    if steps.iter().any(|s| s.command.contains("[::1]")) && std::net::TcpListener::bind("[::1]:0").is_err() {
        common::skip(&format!(
            "::1 cannot be bound here (IPv6 disabled), and {name} uses it"
        ));
        return None;
    }
    let needs_seed = steps.iter().any(|s| s.command.contains("../shared/seed/"));
    let seed = if needs_seed {
        peer("python3", "runs the seed's programs")?;
        Some(seed_dir()?)
    } else {
        None
    };
    for step in &steps {
        let mut words = step.command.split_whitespace();
        while let Some(word) = words.next() {
            if word == "--example" {
                let name = words.next().unwrap_or_default();
                let binary = bin_dir().join("examples").join(name);
                assert!(
                    binary.is_file(),
                    "{}: {} is not built: run `cargo test`, which builds the examples, or `cargo build --examples`",
                    step.at,
                    binary.display()
                );
            }
        }
    }
    let _ports = seed_ports();
    let mut shell = Shell::new(seed);
    for step in &steps {
        shell.run(step);
    }
    shell.finish(name);
    Some(steps.len())
}

#[test]
fn every_command_of_the_tutorial_runs_as_written() {
    if let Some(count) = run_document("docs/tutorial.md", Blocks::All) {
        assert!(count >= 30, "docs/tutorial.md has only {count} commands");
    }
}

#[test]
fn every_console_command_of_the_readme_runs_as_written() {
    // README.md's `sh` blocks are recipes, not run; its `console run` blocks are.
    if let Some(count) = run_document("README.md", Blocks::Tagged) {
        assert!(count >= 5, "README.md has only {count} commands run");
    }
}

#[test]
fn the_tutorial_rust_blocks_are_excerpts_of_the_examples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = fs::read_to_string(root.join("docs/tutorial.md")).expect("read docs/tutorial.md");
    let examples: Vec<String> = fs::read_dir(root.join("examples"))
        .expect("read examples/")
        .map(|entry| fs::read_to_string(entry.expect("an entry").path()).expect("read an example"))
        .collect();
    let mut excerpts = 0;
    let mut rest = text.as_str();
    while let Some(at) = rest.find("\n```rust\n") {
        let body = &rest[at + "\n```rust\n".len()..];
        let end = body.find("```\n").expect("a closed rust block");
        let excerpt = &body[..end];
        assert!(
            examples.iter().any(|example| example.contains(excerpt)),
            "docs/tutorial.md: this rust block is in none of examples/*.rs:\n{excerpt}"
        );
        excerpts += 1;
        rest = &body[end..];
    }
    assert!(excerpts >= 2, "docs/tutorial.md shows {excerpts} rust blocks");
}

#[test]
fn readme_runs_only_the_blocks_tagged_to_run() {
    let text = "```console\n$ false\nno\n```\n\n```console run\n$ echo a\na\n```\n";
    let commands = |blocks| -> Vec<String> {
        console_steps("x.md", text, blocks)
            .into_iter()
            .map(|step| step.command)
            .collect()
    };
    assert_eq!(commands(Blocks::Tagged), ["echo a"]);
    assert_eq!(commands(Blocks::All), ["false", "echo a"]);
}

#[test]
fn a_line_with_an_ellipsis_matches_any_text_there() {
    assert!(line_matches("abc", "abc"));
    assert!(!line_matches("abc", "abcd"));
    assert!(line_matches(
        "… INFO listening",
        "2026-11-25T04:07:57Z  INFO listening"
    ));
    assert!(line_matches("from 127.0.0.1:…", "from 127.0.0.1:46282"));
    assert!(!line_matches("from 127.0.0.1:…", "from 127.0.0.2:46282"));
    assert!(line_matches("time=… ms", "time=0.190 ms"));
    assert!(!line_matches("a…a", "a"));
    assert!(line_matches("a…b…c", "a-b-b-c"));
    let lines = |text: &str| text.lines().map(str::to_owned).collect::<Vec<_>>();
    assert!(lines_match(&lines("a\n…\nz"), &lines("a\nb\nc\nz")));
    assert!(lines_match(&lines("a\n…\nz"), &lines("a\nz")));
    assert!(!lines_match(&lines("a\n…\nz"), &lines("a\nb")));
    assert!(lines_match(&lines("…"), &[]));
}

#[test]
fn cargo_run_is_the_binary_cargo_test_built() {
    let examples = bin_dir().join("examples");
    assert_eq!(resolve("cargo run --release -- serve", None), "sockit serve");
    assert_eq!(
        resolve("cargo run -q -- connect 127.0.0.1:8000 a", None),
        "sockit connect 127.0.0.1:8000 a"
    );
    assert_eq!(
        resolve("cargo run --example tcp_client -- [::1]:8000", None),
        format!("{} [::1]:8000", examples.join("tcp_client").display())
    );
    assert_eq!(
        resolve("printf 'a\\n' | cargo run --example tcp_server", None),
        format!("printf 'a\\n' | {} ", examples.join("tcp_server").display())
    );
    assert_eq!(
        resolve("python3 ../shared/seed/tcp_client.py", Some(Path::new("/s"))),
        "python3 /s/tcp_client.py"
    );
}
