//! The examples retell the seed's four programs: each one, run against the
//! seed's own counterpart, produces the seed's output byte for byte (the
//! server with the seed's one-second pause, each connection on its own). The
//! examples use the seed's fixed ports, so each test holds the seed ports lock.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Running, run_with_timeout, seed_dir, seed_ports, seed_program, seed_server, stdout_of, wait_for_count,
};

/// An example binary, built by `cargo test` beside the `sockit` binary.
fn example(name: &str) -> PathBuf {
    let sockit = PathBuf::from(env!("CARGO_BIN_EXE_sockit"));
    let path = sockit.parent().expect("target dir").join("examples").join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo test`, which builds the examples",
        path.display()
    );
    path
}

/// What the seed's TCP client prints, and the tcp_client example too.
const TCP_CLIENT_OUTPUT: &str = "接收到的服务端数据:Hello, I am server\n\
                                 服务端又返回来的数据:Hello, client1! \n\
                                 服务端又返回来的数据:Hello, client2! \n\
                                 服务端又返回来的数据:Hello, client3! \n";

const UDP_CLIENT_OUTPUT: &str = "Received Hello, client1\nReceived Hello, client2\n";

#[test]
fn tcp_server_example_serves_the_seed_client_and_prints_what_the_seed_prints() {
    let Some(seed) = seed_dir() else { return };
    let _ports = seed_ports();
    let server = Running::start_merged(example("tcp_server"), [] as [&str; 0]);
    server.wait_for_log(
        "Waiting for connection on tcp://127.0.0.1:8000...",
        Duration::from_secs(10),
    );
    let started = Instant::now();
    let output = run_with_timeout(&mut seed_program(&seed, "tcp_client.py"), Duration::from_secs(20));
    assert_eq!(stdout_of(&output), TCP_CLIENT_OUTPUT);
    // Three answers, each a second after its message, as in the seed.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "the client finished in {took:?}: no pause?"
    );
    let closed = server.wait_for_log("Connection from 127.0.0.1:", Duration::from_secs(5));
    let peer = closed
        .strip_prefix("Connection from ")
        .and_then(|rest| rest.strip_suffix(" closed."))
        .expect("the seed's closing line");
    assert_eq!(
        server.log(),
        format!(
            "Waiting for connection on tcp://127.0.0.1:8000...\n\
             Accept new connection from {peer}\n\
             客户端发来的数据:client1\n\
             客户端发来的数据:client2\n\
             客户端发来的数据:client3\n\
             Connection from {peer} closed."
        )
    );
}

#[test]
fn fifty_seed_clients_at_once_each_pause_on_their_own() {
    let Some(seed) = seed_dir() else { return };
    let _ports = seed_ports();
    let server = Running::start_merged(example("tcp_server"), [] as [&str; 0]);
    server.wait_for_log("Waiting for connection on", Duration::from_secs(10));
    let started = Instant::now();
    let clients: Vec<_> = (0..50)
        .map(|_| {
            seed_program(&seed, "tcp_client.py")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start the seed's client")
        })
        .collect();
    for client in clients {
        let output = client.wait_with_output().expect("wait for a seed client");
        assert_eq!(stdout_of(&output), TCP_CLIENT_OUTPUT);
    }
    // One client takes about 3 s (three one-second pauses). One after the
    // other, fifty would take 150 s; side by side, about as long as one.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "50 clients took {took:?}");
    wait_for_count(&server, "closed.", 50, Duration::from_secs(10));
    assert_eq!(server.count_log("Accept new connection from 127.0.0.1:"), 50);
    assert_eq!(server.count_log("客户端发来的数据:client"), 150);
}

#[test]
fn tcp_client_example_talks_to_the_seed_server() {
    let Some(seed) = seed_dir() else { return };
    let _ports = seed_ports();
    let _server = seed_server(&seed, "tcp_server.py");
    let output = run_with_timeout(&mut Command::new(example("tcp_client")), Duration::from_secs(30));
    assert_eq!(stdout_of(&output), TCP_CLIENT_OUTPUT);
}

#[test]
fn udp_server_example_serves_the_seed_client() {
    let Some(seed) = seed_dir() else { return };
    let _ports = seed_ports();
    let server = Running::start_merged(example("udp_server"), [] as [&str; 0]);
    server.wait_for_log("Bind udp://127.0.0.1:9000", Duration::from_secs(10));
    let output = run_with_timeout(&mut seed_program(&seed, "udp_client.py"), Duration::from_secs(20));
    assert_eq!(stdout_of(&output), UDP_CLIENT_OUTPUT);
    server.wait_for_log("Received from 127.0.0.1:", Duration::from_secs(5));
}

#[test]
fn udp_client_example_talks_to_the_seed_server() {
    let Some(seed) = seed_dir() else { return };
    let _ports = seed_ports();
    let _server = seed_server(&seed, "udp_server.py");
    let output = run_with_timeout(&mut Command::new(example("udp_client")), Duration::from_secs(20));
    assert_eq!(stdout_of(&output), UDP_CLIENT_OUTPUT);
}

#[test]
fn the_examples_talk_to_each_other_on_any_address() {
    let server = Running::start_merged(example("tcp_server"), ["[::1]:0"]);
    let line = server.wait_for_log("Waiting for connection on tcp://", Duration::from_secs(10));
    let endpoint = line.split("on tcp://").nth(1).unwrap().trim_end_matches("...");
    let output = run_with_timeout(
        Command::new(example("tcp_client")).arg(endpoint),
        Duration::from_secs(20),
    );
    assert_eq!(stdout_of(&output), TCP_CLIENT_OUTPUT);
}
