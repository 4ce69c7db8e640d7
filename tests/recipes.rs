//! README.md's "sockit for netcat and socat users": every row of its table
//! runs here as written, the netcat/ncat/socat command and sockit's, against
//! the same servers, and sockit's must print (or send its clients, or exit
//! with) exactly what the other tool's does.
//!
//! The rows are read from the README itself, so a row cannot be documented
//! without being run; each row's sockit command names how it is driven
//! (`DRIVES`), and a row without a drive, or a drive without a row, fails.
//!
//! The servers the recipes talk to: `sockit serve` on the fixed ports and
//! names the table uses (greet on `tcp://127.0.0.1:8000`,
//! `udp://127.0.0.1:9000`, `unix:demo.sock`, `tls://127.0.0.1:8443`), in a
//! directory of the test's own with `cert.pem` and `key.pem` made by the
//! usual `openssl req` recipe; the fixed ports are held with the seed ports
//! lock.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Server, TestDir, peer, read_to_close, run_with_input, seed_ports};

/// How long any single wait may take.
const WAIT: Duration = Duration::from_secs(10);

/// What the greeting server answers `bob`, then `exit`, on a stream.
const GREETED_BOB: &[u8] = b"Hello, I am serverHello, bob!\n";

/// How a row's two commands are run, and what is compared.
#[derive(Debug, Clone, Copy)]
enum Drive {
    /// A client: `input` on stdin, run to its end; stdout and the exit
    /// status compared, and stdout must be `want`.
    Client {
        input: &'static [u8],
        want: &'static [u8],
    },
    /// A listener for one connection: a client connects to `port`, sends
    /// `input` and half-closes; the listener's stdout compared (it must be
    /// `input`), and it must end by itself.
    ListenOnce { port: u16, input: &'static [u8] },
    /// A server for many: `clients` plain TCP clients one after another,
    /// each sending `input`, reading as much as `want`, then half-closing
    /// and reading to the end; what each reads must be `want`.
    Serve {
        port: u16,
        input: &'static [u8],
        want: &'static [u8],
        clients: usize,
    },
    /// A TLS server: `openssl s_client` sends `input`; what it prints must
    /// be `want`.
    ServeTls {
        port: u16,
        input: &'static [u8],
        want: &'static [u8],
    },
    /// A port check: the exit status compared, the port open (as written)
    /// and closed (port 8000 replaced by 1).
    Check,
}

/// Each row's drive, by its sockit command.
const DRIVES: &[(&str, Drive)] = &[
    (
        "sockit nc 127.0.0.1 8000",
        Drive::Client {
            input: b"bob\nexit\n",
            want: GREETED_BOB,
        },
    ),
    (
        "sockit relay - 127.0.0.1:8000",
        Drive::Client {
            input: b"bob\nexit\n",
            want: GREETED_BOB,
        },
    ),
    (
        "sockit nc -u 127.0.0.1 9000",
        Drive::Client {
            input: b"bob\n",
            want: b"Hello, bob\n",
        },
    ),
    (
        "sockit nc -U demo.sock",
        Drive::Client {
            input: b"bob\nexit\n",
            want: GREETED_BOB,
        },
    ),
    (
        "sockit nc tls://localhost:8443 --ca cert.pem",
        Drive::Client {
            input: b"bob\nexit\n",
            want: GREETED_BOB,
        },
    ),
    (
        "sockit nc -l 127.0.0.1 9000",
        Drive::ListenOnce {
            port: 9000,
            input: b"raw bytes\0\xff\r\n",
        },
    ),
    (
        "sockit nc -lk 127.0.0.1 9000 -e /bin/cat",
        Drive::Serve {
            port: 9000,
            input: b"echo me\0\xff\r\n",
            want: b"echo me\0\xff\r\n",
            clients: 2,
        },
    ),
    (
        "sockit relay tcp://127.0.0.1:9000 exec:cat",
        Drive::Serve {
            port: 9000,
            input: b"echo me\0\xff\r\n",
            want: b"echo me\0\xff\r\n",
            clients: 2,
        },
    ),
    (
        "sockit relay tcp://127.0.0.1:9000 127.0.0.1:8000",
        Drive::Serve {
            port: 9000,
            input: b"bob\nexit\n",
            want: GREETED_BOB,
            clients: 2,
        },
    ),
    (
        "sockit relay tls://127.0.0.1:9443 127.0.0.1:8000 --cert cert.pem --key key.pem",
        Drive::ServeTls {
            port: 9443,
            input: b"bob\nexit\n",
            want: GREETED_BOB,
        },
    ),
    (
        "sockit relay tcp://127.0.0.1:9000 tls://localhost:8443 --ca cert.pem",
        Drive::Serve {
            port: 9000,
            input: b"bob\nexit\n",
            want: GREETED_BOB,
            clients: 2,
        },
    ),
    ("sockit nc -z 127.0.0.1 8000", Drive::Check),
];

/// A row of the table: what it is for, the other tool's command, sockit's.
#[derive(Debug)]
struct Row {
    to: String,
    theirs: String,
    ours: String,
}

/// The rows of README.md's table under "sockit for netcat and socat users".
fn rows() -> Vec<Row> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("\n## sockit for netcat and socat users\n")
        .nth(1)
        .expect("README.md has the section")
        .split("\n## ")
        .next()
        .unwrap();
    let unquote = |cell: &str| {
        let cell = cell.trim();
        cell.strip_prefix('`')
            .and_then(|c| c.strip_suffix('`'))
            .unwrap_or_else(|| panic!("a command in backquotes: {cell:?}"))
            .to_owned()
    };
    section
        .lines()
        .filter(|line| line.starts_with("| ") && !line.starts_with("| to |") && !line.starts_with("| ---"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
            assert_eq!(cells.len(), 3, "three cells: {line:?}");
            Row {
                to: cells[0].trim().to_owned(),
                theirs: unquote(cells[1]),
                ours: unquote(cells[2]),
            }
        })
        .collect()
}

/// `command` (a line of the table) run by `sh -c` in `dir`, `sockit` the
/// binary under test.
fn shell(dir: &Path, command: &str) -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_sockit")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut shell = Command::new("sh");
    shell
        .args(["-c", &format!("exec {command}")])
        .current_dir(dir)
        .env("PATH", path);
    shell
}

/// A server started from a row, killed when dropped.
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Connects to `port` on loopback, trying until it listens.
fn connect(port: u16) -> TcpStream {
    let start = Instant::now();
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => {
                stream.set_read_timeout(Some(WAIT)).unwrap();
                return stream;
            }
            Err(error) => assert!(start.elapsed() < WAIT, "nothing listens on {port}: {error}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `input`, half-closes, reads to the end.
fn converse(mut stream: TcpStream, input: &[u8]) -> Vec<u8> {
    stream.write_all(input).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    read_to_close(&mut stream)
}

/// Waits for `child` to end by itself within `WAIT`.
fn ends(child: &mut Child, what: &str) -> std::process::ExitStatus {
    common::exit_within(child, WAIT).unwrap_or_else(|| panic!("{what} did not end by itself"))
}

/// What running `command` as `drive` says: the bytes and statuses to compare.
fn outcome(dir: &Path, command: &str, drive: Drive) -> Vec<u8> {
    match drive {
        Drive::Client { input, .. } => {
            let out = run_with_input(&mut shell(dir, command), input, WAIT);
            assert!(
                out.status.success(),
                "{command}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
        Drive::ListenOnce { port, input } => {
            let mut child = shell(dir, command)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            assert_eq!(converse(connect(port), input), b"", "{command} sends nothing");
            let status = ends(&mut child, command);
            assert!(status.success(), "{command}: {status}");
            let mut printed = Vec::new();
            child.stdout.take().unwrap().read_to_end(&mut printed).unwrap();
            printed
        }
        Drive::Serve {
            port,
            input,
            want,
            clients,
        } => {
            let _server = Started(
                shell(dir, command)
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            );
            // Each client reads its answer before it half-closes: ncat -e
            // closes the connection as soon as the client half-closes,
            // losing what the program had still to write.
            let mut all = Vec::new();
            for _ in 0..clients {
                let mut stream = connect(port);
                stream.write_all(input).unwrap();
                let mut answer = vec![0; want.len()];
                if stream.read_exact(&mut answer).is_err() {
                    answer.clear();
                }
                all.extend(answer);
                all.extend(converse(stream, b""));
            }
            all
        }
        Drive::ServeTls { port, input, .. } => {
            let _server = Started(
                shell(dir, command)
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            );
            drop(connect(port));
            let out: Output = run_with_input(
                Command::new("openssl")
                    .args([
                        "s_client",
                        "-quiet",
                        "-verify_return_error",
                        "-CAfile",
                        "cert.pem",
                    ])
                    .args([
                        "-connect",
                        &format!("localhost:{port}"),
                        "-servername",
                        "localhost",
                    ])
                    .current_dir(dir),
                input,
                WAIT,
            );
            assert!(
                out.status.success(),
                "s_client to {command}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
        Drive::Check => {
            let status = |command: &str| {
                let out = run_with_input(&mut shell(dir, command), b"", WAIT);
                assert!(out.stdout.is_empty(), "{command} prints nothing");
                out.status.code().expect("an exit status")
            };
            let closed = command.replace(" 8000", " 1");
            vec![status(command) as u8, status(&closed) as u8]
        }
    }
}

/// What `drive` says sockit's command must give, whatever the other tool does.
fn wanted(drive: Drive) -> Vec<u8> {
    match drive {
        Drive::Client { want, .. } | Drive::ServeTls { want, .. } => want.to_vec(),
        Drive::ListenOnce { input, .. } => input.to_vec(),
        Drive::Serve { want, clients, .. } => want.repeat(clients),
        Drive::Check => vec![0, 1],
    }
}

#[test]
fn every_recipe_row_has_a_drive_and_every_drive_a_row() {
    let rows = rows();
    for row in &rows {
        assert!(
            DRIVES.iter().any(|(ours, _)| *ours == row.ours),
            "README row {:?} ({}) has no drive in tests/recipes.rs",
            row.ours,
            row.to
        );
    }
    for (ours, _) in DRIVES {
        assert!(
            rows.iter().any(|row| row.ours == *ours),
            "the drive for {ours:?} has no row in README.md"
        );
    }
}

#[test]
fn each_recipe_gives_the_same_bytes_both_ways() {
    for (tool, package) in [
        ("ncat", "ncat"),
        ("socat", "socat"),
        ("nc", "netcat-openbsd"),
        ("openssl", "openssl"),
    ] {
        if peer(
            tool,
            &format!("the other side of README's recipes, package {package}"),
        )
        .is_none()
        {
            return;
        }
    }
    let _ports = seed_ports();
    let dir = TestDir::new("recipes");
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem",
        ])
        .args(["-out", "cert.pem", "-days", "1", "-subj", "/CN=localhost"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let socket = dir.path().join("demo.sock");
    let _servers = Server::start(&[
        "tcp://127.0.0.1:8000",
        "udp://127.0.0.1:9000",
        &format!("unix:{}", socket.display()),
        "tls://127.0.0.1:8443",
        "--cert",
        &dir.path().join("cert.pem").display().to_string(),
        "--key",
        &dir.path().join("key.pem").display().to_string(),
    ]);
    let rows = rows();
    assert_eq!(rows.len(), DRIVES.len());
    for row in rows {
        let (_, drive) = DRIVES.iter().find(|(ours, _)| *ours == row.ours).unwrap();
        let theirs = outcome(dir.path(), &row.theirs, *drive);
        let ours = outcome(dir.path(), &row.ours, *drive);
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "{}: `{}` against `{}`",
            row.to,
            row.ours,
            row.theirs
        );
        assert_eq!(ours, theirs, "{}: the bytes", row.to);
        assert_eq!(ours, wanted(*drive), "{}: `{}`", row.to, row.ours);
    }
}
