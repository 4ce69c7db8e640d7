//! `deploy/kubernetes.yaml` as sockit sees it: the container's args are a
//! command line `sockit` serves (its ports made free ones), and the
//! probes' paths and port answer as the manifest expects: the liveness
//! probe 200, the readiness probe 200 while it accepts and 503 once it
//! drains.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Running, sockit};

const WAIT: Duration = Duration::from_secs(10);

fn manifest() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes.yaml")).unwrap()
}

/// The value after `key` on the first line that has it, trimmed.
fn value_of<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.trim().strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key:?} in deploy/kubernetes.yaml"))
        .trim()
}

/// `GET path` on `addr`: the status line and the body.
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let (status, _, body) = common::http(addr, "GET", path, WAIT);
    (status, body)
}

#[test]
fn the_kubernetes_manifest_runs_and_its_probes_answer() {
    let text = manifest();
    // The args, a flow sequence of strings on one line: JSON as it is.
    let args: Vec<String> = serde_json::from_str(value_of(&text, "args:")).expect("args as [\"...\", ...]");
    let metrics = args
        .iter()
        .position(|arg| arg == "--metrics")
        .map(|at| args[at + 1].clone())
        .expect("--metrics in the args");
    let metrics_port = metrics.rsplit(':').next().unwrap();
    let liveness = value_of(&text, "httpGet: {path: /healthz, port:");
    let readiness = value_of(&text, "httpGet: {path: /readyz, port:");
    for probe in [liveness, readiness] {
        assert_eq!(
            probe.trim_end_matches('}').trim(),
            metrics_port,
            "probes go to --metrics"
        );
    }
    assert!(
        text.contains("livenessProbe:\n            httpGet: {path: /healthz"),
        "{text}"
    );
    assert!(
        text.contains("readinessProbe:\n            httpGet: {path: /readyz"),
        "{text}"
    );

    // Run the args, on loopback and free ports.
    let args: Vec<String> = args
        .iter()
        .map(|arg| {
            arg.replace("0.0.0.0:8000", "127.0.0.1:0")
                .replace(&metrics, "127.0.0.1:0")
        })
        .collect();
    let server = Running::start(sockit().args(&args));
    let line = server.wait_for_log("metrics on http://", WAIT);
    let addr: SocketAddr = line
        .split("metrics on http://")
        .nth(1)
        .and_then(|rest| rest.trim().strip_suffix("/metrics"))
        .and_then(|addr| addr.parse().ok())
        .expect("the metrics address");
    server.wait_for_log("listening on tcp://", WAIT);
    assert_eq!(
        get(addr, "/healthz"),
        ("HTTP/1.1 200 OK".to_owned(), "ok\n".to_owned())
    );
    assert_eq!(
        get(addr, "/readyz"),
        ("HTTP/1.1 200 OK".to_owned(), "ready\n".to_owned())
    );

    // The grace period leaves room for the preStop sleep and the drain.
    let grace: u64 = value_of(&text, "terminationGracePeriodSeconds:").parse().unwrap();
    let pause: u64 = value_of(&text, "sleep: {seconds:")
        .trim_end_matches('}')
        .trim()
        .parse()
        .unwrap();
    let drain = args
        .iter()
        .position(|arg| arg == "--shutdown-timeout")
        .map(|at| humantime_secs(&args[at + 1]))
        .expect("--shutdown-timeout in the args");
    assert!(grace > pause + drain, "{grace} s for {pause} s and {drain} s");
}

/// `10s` as 10.
fn humantime_secs(text: &str) -> u64 {
    text.strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .expect("seconds")
}
