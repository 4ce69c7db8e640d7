//! `sockit nc`: netcat's habits, as real processes over loopback: raw bytes
//! both ways, half-close, listening, -k, -e/-c, -z, -w, -q, -u, -U, -C and
//! --hex-dump, every byte compared.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Server, nc, noise, run_with_input, run_with_stdin, run_with_timeout};

const LIMIT: Duration = Duration::from_secs(30);

/// A `sockit nc -l -v` running: its stdout read as it comes (so that it
/// never blocks on a full pipe), the address from its `listening on` line.
struct Listening {
    child: Child,
    addr: SocketAddr,
    stdout: std::thread::JoinHandle<Vec<u8>>,
}

/// `sockit nc -l -v ARGS` started with `stdin`; the rest of its stderr,
/// after the `listening on` line, is read on and dropped.
fn listener(args: &[&str], stdin: Stdio) -> Listening {
    let mut child = nc(&[&["-l", "-v"], args].concat())
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sockit nc -l");
    let mut stderr = BufReader::new(child.stderr.take().expect("piped"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("read stderr");
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let addr = line
        .strip_prefix("sockit nc: listening on tcp://")
        .and_then(|addr| addr.trim().parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let mut stdout = child.stdout.take().expect("piped");
    let stdout = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).expect("read stdout");
        out
    });
    Listening { child, addr, stdout }
}

impl Listening {
    fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// Waits for it to exit within `limit`; its status and all it printed.
    fn finish(mut self, limit: Duration) -> (std::process::ExitStatus, Vec<u8>) {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("sockit nc did not finish within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, self.stdout.join().expect("reader"))
    }
}

/// A server that takes one connection, reads until the client half-closes,
/// then answers with what `answer` makes of it and closes: it answers only
/// after EOF.
fn answers_after_eof(answer: fn(&[u8]) -> Vec<u8>) -> (SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = server.accept().unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).unwrap();
        stream.write_all(&answer(&got)).unwrap();
        got
    });
    (addr, handle)
}

#[test]
fn stdin_ends_in_a_half_close_and_the_answer_after_it_is_printed() {
    let (addr, server) = answers_after_eof(|got| [b"you sent ".as_slice(), got].concat());
    let port = addr.port().to_string();
    let out = run_with_input(&mut nc(&["127.0.0.1", &port]), b"GET / HTTP/1.0\r\n\r\n", LIMIT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"you sent GET / HTTP/1.0\r\n\r\n");
    assert_eq!(server.join().unwrap(), b"GET / HTTP/1.0\r\n\r\n");
}

#[test]
fn fifty_megabytes_each_way_arrive_byte_for_byte() {
    let data = noise(50 * 1024 * 1024, 0x2545_f491);
    let file = std::env::temp_dir().join(format!("sockit-nc-50m-{}", std::process::id()));
    std::fs::write(&file, &data).unwrap();

    // Client to listener: `sockit nc -l > file` receiving `sockit nc < file`.
    let listening = listener(&["127.0.0.1", "0"], Stdio::null());
    let sent = run_with_stdin(
        &mut nc(&["127.0.0.1", &listening.port()]),
        std::fs::File::open(&file).unwrap().into(),
        LIMIT,
    );
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    let (status, received) = listening.finish(LIMIT);
    assert!(status.success());
    assert!(
        received == data,
        "client to listener: {} bytes of {} arrived, or others",
        received.len(),
        data.len()
    );

    // Listener to client: the listener's stdin is the file.
    let listening = listener(&["127.0.0.1", "0"], std::fs::File::open(&file).unwrap().into());
    let fetched = run_with_timeout(&mut nc(&["127.0.0.1", &listening.port()]), LIMIT);
    assert!(
        fetched.status.success(),
        "{}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    assert!(
        fetched.stdout == data,
        "listener to client: {} bytes of {}",
        fetched.stdout.len(),
        data.len()
    );
    assert!(listening.finish(LIMIT).0.success());
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn keep_open_serves_twenty_clients_at_once_each_with_its_own_program() {
    let mut listening = listener(&["-k", "127.0.0.1", "0", "-e", "/bin/cat"], Stdio::null());
    let port = listening.port();
    let clients: Vec<_> = (0..20)
        .map(|n| {
            let port = port.clone();
            std::thread::spawn(move || {
                let line = format!("client {n} 客户端\n");
                let out = run_with_input(&mut nc(&["127.0.0.1", &port]), line.as_bytes(), LIMIT);
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                assert_eq!(String::from_utf8(out.stdout).unwrap(), line);
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    assert!(
        listening.child.try_wait().unwrap().is_none(),
        "-k keeps listening"
    );
    listening.child.kill().unwrap();
    listening.child.wait().unwrap();
}

#[test]
fn a_program_that_reads_to_eof_answers_after_it() {
    let listening = listener(&["127.0.0.1", "0", "-c", "wc -c | tr -d ' '"], Stdio::null());
    let out = run_with_input(&mut nc(&["127.0.0.1", &listening.port()]), &[b'x'; 1000], LIMIT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"1000\n");
    assert!(listening.finish(LIMIT).0.success());

    // -e on the client side: the program talks to the server.
    let (addr, server) = answers_after_eof(|got| got.to_ascii_uppercase());
    let out = run_with_timeout(
        &mut nc(&["127.0.0.1", &addr.port().to_string(), "-e", "printf hello"]),
        LIMIT,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(server.join().unwrap(), b"hello");
}

#[test]
fn zero_io_exits_zero_when_every_port_is_open_and_one_when_any_is_closed() {
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let open_port = open.local_addr().unwrap().port().to_string();
    let closed_port = {
        let gone = TcpListener::bind("127.0.0.1:0").unwrap();
        gone.local_addr().unwrap().port().to_string()
    };
    let out = run_with_timeout(&mut nc(&["-z", "127.0.0.1", &open_port]), LIMIT);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "quiet without -v");

    let out = run_with_timeout(
        &mut nc(&["-z", "-v", "127.0.0.1", &open_port, &closed_port]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        said,
        format!(
            "sockit nc: tcp://127.0.0.1:{open_port} open\n\
             sockit nc: tcp://127.0.0.1:{closed_port} closed: Connection refused (os error 111)\n"
        )
    );
}

#[test]
fn wait_ends_a_conversation_with_a_silent_peer() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let started = Instant::now();
    let out = run_with_timeout(&mut nc(&["-w", "1", "127.0.0.1", &port]), LIMIT);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "sockit: error: nothing sent or received for 1s\n"
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
    );
    drop(silent);
}

#[test]
fn quit_after_stdin_ends_even_if_the_peer_stays() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let holding = std::thread::spawn(move || {
        let (mut stream, _) = silent.accept().unwrap();
        let mut got = [0; 2];
        stream.read_exact(&mut got).unwrap();
        std::thread::sleep(Duration::from_secs(3));
        got
    });
    let out = run_with_input(&mut nc(&["-q", "0", "127.0.0.1", &port]), b"hi", LIMIT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(&holding.join().unwrap(), b"hi");
}

#[test]
fn udp_datagrams_go_and_their_answers_are_printed() {
    let server = Server::start(&["udp://127.0.0.1:0", "--service", "echo"]);
    let port = server.addr(0).port().to_string();
    let out = run_with_input(&mut nc(&["-u", "127.0.0.1", &port]), b"hello\n", LIMIT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"hello\n");
}

#[test]
fn udp_to_a_closed_port_is_refused_with_one_line() {
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let out = run_with_input(&mut nc(&["-u", "127.0.0.1", &port]), b"anyone?\n", LIMIT);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!("sockit: error: 127.0.0.1:{port} refused the datagram (nothing listens there)\n")
    );
}

#[test]
fn a_unix_socket_by_path() {
    let path = std::env::temp_dir().join(format!("sockit-nc-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let endpoint = format!("unix:{}", path.display());
    let _server = Server::start(&[&endpoint, "--service", "echo"]);
    let out = run_with_input(&mut nc(&["-U", path.to_str().unwrap()]), b"\x00\xffraw\n", LIMIT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"\x00\xffraw\n");
}

#[test]
fn crlf_line_endings_on_the_way_out() {
    let (addr, server) = answers_after_eof(|_| Vec::new());
    let out = run_with_input(
        &mut nc(&["-C", "127.0.0.1", &addr.port().to_string()]),
        b"HELO a\nQUIT\r\n",
        LIMIT,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(server.join().unwrap(), b"HELO a\r\nQUIT\r\n");
}

#[test]
fn hex_dump_shows_both_directions() {
    let (addr, _server) = answers_after_eof(|_| b"ok".to_vec());
    let dump = std::env::temp_dir().join(format!("sockit-nc-dump-{}", std::process::id()));
    let out = run_with_input(
        &mut nc(&[
            &format!("--hex-dump={}", dump.display()),
            "127.0.0.1",
            &addr.port().to_string(),
        ]),
        b"GET\n",
        LIMIT,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"ok");
    assert_eq!(
        std::fs::read_to_string(&dump).unwrap(),
        "> sent 4 bytes (0-3)\n\
         00000000  47 45 54 0a                                       |GET.|\n\
         < received 2 bytes (0-1)\n\
         00000000  6f 6b                                             |ok|\n"
    );
    std::fs::remove_file(&dump).unwrap();
}

#[test]
fn a_refused_connection_is_one_line_and_status_one() {
    let gone = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = gone.local_addr().unwrap().port().to_string();
    drop(gone);
    let out = run_with_timeout(&mut nc(&["127.0.0.1", &port]), LIMIT);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8(out.stderr).unwrap();
    assert!(
        said.starts_with("sockit: error: ") && said.ends_with('\n') && said.lines().count() == 1,
        "{said:?}"
    );
    assert!(said.contains("refused"), "{said:?}");
}

#[test]
fn seqpacket_and_unix_datagram_endpoints() {
    let name = common::abstract_name("nc-seqpacket");
    let dir = common::TestDir::new("nc-unix-dgram");
    let datagrams = dir.socket("greet.dg");
    let _server = Server::start(&[&format!("seqpacket:@{name}"), &format!("unix-dgram:{datagrams}")]);
    // A read of stdin is a packet; each packet is a message.
    let out = run_with_input(&mut nc(&[&format!("seqpacket:@{name}")]), b"bob", LIMIT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"Hello, I am serverHello, bob!");
    let out = run_with_input(&mut nc(&["-U", "-u", &datagrams]), b"bob\n", LIMIT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"Hello, bob\n");
}

#[test]
fn ipv6_and_the_family_flags() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        common::skip("::1 cannot be bound here (IPv6 disabled)");
        return;
    }
    let server = Server::start(&["tcp://[::1]:0"]);
    let port = server.addr(0).port().to_string();
    let out = run_with_input(&mut nc(&["-6", "-v", "::1", &port]), b"bob\nexit\n", LIMIT);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"Hello, I am serverHello, bob!\n");
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!("sockit nc: connected to tcp://[::1]:{port}\n")
    );
    let out = run_with_input(&mut nc(&["-4", "::1", &port]), b"", LIMIT);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!("sockit: error: cannot connect to tcp://[::1]:{port}: the host has no IPv4 address\n")
    );
}

#[test]
fn listening_on_udp_prints_the_datagram_and_answers_its_source() {
    let mut child = nc(&["-l", "-u", "-v", "127.0.0.1", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .strip_prefix("sockit nc: listening on udp://")
        .and_then(|addr| addr.trim().parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(LIMIT)).unwrap();
    client.send_to(b"from a client\n", addr).unwrap();
    let (printed, _stdout) = read_within(child.stdout.take().unwrap(), 14);
    assert_eq!(printed, b"from a client\n");
    // What stdin brings goes back to the datagram's source.
    child.stdin.as_mut().unwrap().write_all(b"answer\n").unwrap();
    let mut buf = [0; 64];
    let (n, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"answer\n"[..], addr));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_prompt_without_its_newline_is_printed_at_once() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port().to_string();
    let serving = std::thread::spawn(move || {
        let (mut stream, _) = server.accept().unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        stream.write_all(b"name? ").unwrap();
        let mut name = [0; 4];
        stream.read_exact(&mut name).unwrap();
        stream.write_all(b"hi ").unwrap();
        stream.write_all(&name).unwrap();
    });
    let mut child = nc(&["127.0.0.1", &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The prompt must show before anything is typed: nothing holds a
    // line's start back until its end comes.
    let (prompt, mut stdout) = read_within(child.stdout.take().unwrap(), 6);
    assert_eq!(prompt, b"name? ");
    child.stdin.take().unwrap().write_all(b"bob\n").unwrap();
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"hi bob\n");
    serving.join().unwrap();
    assert!(child.wait().unwrap().success());
}

/// The first `len` bytes of `pipe`, which must come within `LIMIT`; and
/// the pipe, to read on.
fn read_within<R: Read + Send + 'static>(mut pipe: R, len: usize) -> (Vec<u8>, R) {
    let (done, got) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = vec![0; len];
        let read = pipe.read_exact(&mut bytes);
        let _ = done.send(read.map(|()| (bytes, pipe)));
    });
    got.recv_timeout(LIMIT)
        .unwrap_or_else(|_| panic!("{len} bytes did not come within {LIMIT:?}"))
        .expect("read")
}
