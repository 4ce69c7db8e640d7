//! IPv6 both ways, with Python's `socket` module (`AF_INET6`) as the peer
//! sockit did not write: Python clients against `sockit serve`, and `sockit
//! connect` against small Python servers, over TCP and UDP on `::1`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Server, peer, run_with_timeout, sockit, stdout_of};

const WAIT: Duration = Duration::from_secs(10);

/// Whether `::1` can be bound here.
fn ipv6_loopback() -> bool {
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        return true;
    }
    common::skip("::1 cannot be bound here (IPv6 disabled)");
    false
}

/// Runs a Python script with `args`; returns its stdout, which must be UTF-8.
fn python(script: &str, args: &[&str]) -> String {
    stdout_of(&run_with_timeout(
        Command::new("python3").arg("-c").arg(script).args(args),
        WAIT,
    ))
}

/// A Python AF_INET6 TCP client: prints the greeting, then `|` and each reply.
const TCP_CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(("::1", int(sys.argv[1])))
out = s.recv(1024)
for message in sys.argv[2:]:
    s.send(message.encode())
    out += b"|" + s.recv(1024)
s.send(b"exit")
out += b"|" + s.recv(1024)
sys.stdout.buffer.write(out)
"#;

/// A Python AF_INET6 UDP client: prints each reply, one per line.
const UDP_CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(10)
for message in sys.argv[2:]:
    s.sendto(message.encode(), ("::1", int(sys.argv[1])))
    print(s.recv(1024).decode())
"#;

#[test]
fn python_ipv6_clients_against_sockit_serve() {
    let Some(_) = peer("python3", "the outside IPv6 clients") else {
        return;
    };
    if !ipv6_loopback() {
        return;
    }
    let server = Server::start(&["tcp://[::1]:0", "udp://[::1]:0"]);
    let tcp_port = server.addr(0).port().to_string();
    let udp_port = server.addr(1).port().to_string();
    // After `exit` the server closes: the last recv is empty.
    assert_eq!(
        python(TCP_CLIENT, &[&tcp_port, "client1", "client2"]),
        "Hello, I am server|Hello, client1!|Hello, client2!|"
    );
    assert_eq!(
        python(UDP_CLIENT, &[&udp_port, "client1", "client2"]),
        "Hello, client1\nHello, client2\n"
    );
    server
        .process
        .wait_for_log("Accept new connection from [::1]:", WAIT);
}

/// A Python AF_INET6 TCP server speaking the seed's protocol for one
/// connection; prints its port first.
const TCP_SERVER: &str = r#"
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.bind(("::1", 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
c.send(b"Hello, I am server")
while True:
    data = c.recv(1024)
    if not data or data == b"exit":
        break
    c.send(b"Hello, " + data + b"!")
c.close()
"#;

/// A Python AF_INET6 UDP server answering two datagrams; prints its port first.
const UDP_SERVER: &str = r#"
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("::1", 0))
print(s.getsockname()[1], flush=True)
for _ in range(2):
    data, peer = s.recvfrom(1024)
    s.sendto(b"Hello, " + data, peer)
"#;

/// Starts a Python server script and reads the port it prints.
fn python_server(script: &str) -> (Child, String) {
    let mut child = Command::new("python3")
        .args(["-u", "-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut port = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut port)
        .unwrap();
    (child, port.trim().to_owned())
}

#[test]
fn sockit_connect_against_python_ipv6_servers() {
    let Some(_) = peer("python3", "the outside IPv6 servers") else {
        return;
    };
    if !ipv6_loopback() {
        return;
    }
    let (mut tcp, port) = python_server(TCP_SERVER);
    let output = run_with_timeout(
        sockit().args(["connect", &format!("tcp://[::1]:{port}"), "client1", "client2"]),
        WAIT,
    );
    assert_eq!(
        stdout_of(&output),
        "Hello, I am server\nHello, client1!\nHello, client2!\n"
    );
    assert!(tcp.wait().unwrap().success());

    let (mut udp, port) = python_server(UDP_SERVER);
    let output = run_with_timeout(
        sockit().args(["connect", &format!("udp://[::1]:{port}"), "client1", "client2"]),
        WAIT,
    );
    assert_eq!(stdout_of(&output), "Hello, client1\nHello, client2\n");
    assert!(udp.wait().unwrap().success());
}
