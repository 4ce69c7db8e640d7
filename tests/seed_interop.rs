//! Byte-exact interoperability with the seed's own Python programs, both ways,
//! as PROTOCOL.md states it. The seed's ports are fixed (8000, 9000), so each
//! test holds the seed ports lock.

mod common;

use std::time::Duration;

use common::{Server, run_with_timeout, seed_dir, seed_ports, seed_program, seed_server, sockit, stdout_of};

const SEED_TCP_CLIENT_OUTPUT: &str = "接收到的服务端数据:Hello, I am server\n\
                                      服务端又返回来的数据:Hello, client1! \n\
                                      服务端又返回来的数据:Hello, client2! \n\
                                      服务端又返回来的数据:Hello, client3! \n";

#[test]
fn seed_tcp_client_against_sockit_serve_on_its_defaults() {
    let Some(seed) = seed_dir() else { return };
    let _ports = seed_ports();
    // No arguments at all: the README's main job.
    let server = Server::start(&[]);
    assert_eq!(server.endpoints, ["tcp://127.0.0.1:8000"]);
    let output = run_with_timeout(&mut seed_program(&seed, "tcp_client.py"), Duration::from_secs(20));
    assert_eq!(stdout_of(&output), SEED_TCP_CLIENT_OUTPUT);
    server
        .process
        .wait_for_log("Connection from 127.0.0.1:", Duration::from_secs(5));
    assert_eq!(
        server.process.count_log("Accept new connection from 127.0.0.1:"),
        1
    );
    assert!(server.terminate(Duration::from_secs(5)).success());
}

#[test]
fn seed_udp_client_against_sockit_serve() {
    let Some(seed) = seed_dir() else { return };
    let _ports = seed_ports();
    let server = Server::start(&["udp://127.0.0.1:9000"]);
    let output = run_with_timeout(&mut seed_program(&seed, "udp_client.py"), Duration::from_secs(20));
    assert_eq!(
        stdout_of(&output),
        "Received Hello, client1\nReceived Hello, client2\n"
    );
    assert!(server.terminate(Duration::from_secs(5)).success());
}

#[test]
fn sockit_connect_against_the_seed_tcp_server() {
    let Some(seed) = seed_dir() else { return };
    let _ports = seed_ports();
    let server = seed_server(&seed, "tcp_server.py");
    // The seed's server sleeps a second per message: this takes about four.
    let output = run_with_timeout(
        sockit().args(["connect", "tcp://127.0.0.1:8000", "client1", "client2", "client3"]),
        Duration::from_secs(30),
    );
    assert_eq!(
        stdout_of(&output),
        "Hello, I am server\nHello, client1!\nHello, client2!\nHello, client3!\n"
    );
    server.wait_for_log("Connection from 127.0.0.1:", Duration::from_secs(5));
    for message in ["client1", "client2", "client3"] {
        assert_eq!(
            server.count_log(&format!("客户端发来的数据:{message}")),
            1,
            "{}",
            server.log()
        );
    }
}

#[test]
fn sockit_connect_against_the_seed_udp_server() {
    let Some(seed) = seed_dir() else { return };
    let _ports = seed_ports();
    let server = seed_server(&seed, "udp_server.py");
    let output = run_with_timeout(
        sockit().args(["connect", "udp://127.0.0.1:9000", "client1", "client2"]),
        Duration::from_secs(20),
    );
    assert_eq!(stdout_of(&output), "Hello, client1\nHello, client2\n");
    // The server's output is read by another thread: wait for it, do not race it.
    common::wait_for_count(&server, "Received from 127.0.0.1:", 2, Duration::from_secs(5));
    assert_eq!(
        server.count_log("Received from 127.0.0.1:"),
        2,
        "{}",
        server.log()
    );
}
