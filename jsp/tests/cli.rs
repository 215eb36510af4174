//! The `jsp` binary as a user runs it: bad arguments, unreachable peers and wrong keys end with
//! one clear line and a non-zero exit; the demo and a real serve/connect session succeed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};

fn jsp() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jsp"));
    c.env_remove("JSP_LOG").env("RUST_BACKTRACE", "1");
    c
}

fn run(args: &[&str]) -> Output {
    jsp().args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure is one line on stderr, starting with "error:", with no panic or backtrace.
fn assert_one_line_failure(o: &Output, expect: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    assert!(
        lines[0].contains(expect),
        "{:?} should mention {expect:?}",
        lines[0]
    );
}

/// Starts `jsp serve` on a free loopback port; returns the child, its address and its key.
fn serve(dir: &std::path::Path) -> (Child, String, String) {
    let key_path = dir.join("server.key");
    let out = run(&["keygen", "--out", key_path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let public = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(public.starts_with("jsp1:"), "{public}");
    let mut child = jsp()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--key",
            key_path.to_str().unwrap(),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .strip_prefix("listening on ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    // Keep draining the server's log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr, public)
}

#[test]
fn bad_arguments_fail_with_a_usage_error_and_no_panic() {
    let o = run(&["connect", "not-an-address", "--server-key", "jsp1:00"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("invalid value 'not-an-address'"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let o = run(&["connect", "127.0.0.1:9", "--server-key", "nonsense"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("jsp1:"), "{}", stderr(&o));
    let o = run(&["serve", "--key", "/nonexistent/key"]);
    assert_one_line_failure(&o, "jsp keygen");
}

#[test]
fn connecting_where_nothing_listens_fails_with_one_clear_line() {
    // A port that is bound (so nothing else takes it) but never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let key = String::from_utf8(run(&["keygen", "--out", "/dev/null", "--force"]).stdout).unwrap();
    let o = run(&[
        "connect",
        &addr,
        "--server-key",
        key.trim(),
        "--timeout",
        "1",
    ]);
    assert_one_line_failure(&o, "no answer from");
}

#[test]
fn connecting_with_a_wrong_server_key_fails_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr, _) = serve(dir.path());
    let wrong =
        String::from_utf8(run(&["keygen", "--out", "/dev/null", "--force"]).stdout).unwrap();
    let o = run(&[
        "connect",
        &addr,
        "--server-key",
        wrong.trim(),
        "--timeout",
        "5",
    ]);
    server.kill().unwrap();
    let _ = server.wait();
    assert_one_line_failure(&o, "pinned");
}

#[test]
fn connect_echoes_lines_and_measures_throughput_against_serve() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr, key) = serve(dir.path());
    let mut client = jsp()
        .args(["connect", &addr, "--server-key", &key])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    client
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\nworld\n")
        .unwrap();
    let o = client.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello\nworld\n");
    let o = run(&["connect", &addr, "--server-key", &key, "--bytes", "2M"]);
    server.kill().unwrap();
    let _ = server.wait();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("sent 2 MiB"));
}

#[test]
fn the_demo_prints_its_table_and_exits_zero() {
    let o = run(&["demo", "--bytes", "4M", "--no-progress"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    for row in [
        "cipher suite",
        "X25519MLKEM768",
        "goodput",
        "RTT",
        "packets sent / lost",
        "0-RTT",
    ] {
        assert!(table.contains(row), "missing {row:?} in\n{table}");
    }
    assert!(table.contains("0-RTT accepted"), "{table}");
}
