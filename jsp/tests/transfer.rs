//! `jsp send` and `jsp recv` as a user runs them: two real processes over loopback, a temp dir,
//! JSON lines for the script, and one clear line for a garbled ticket or an existing file.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

fn jsp() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jsp"));
    c.env_remove("JSP_LOG").env("RUST_BACKTRACE", "1");
    c
}

/// Starts `jsp send --json` on loopback; returns the child and the ticket from its first line.
fn send(
    paths: &[&Path],
) -> (
    Child,
    String,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let mut child = jsp()
        .args(["send", "--json", "--listen", "127.0.0.1:0"])
        .args(paths)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["event"], "ticket");
    let ticket = first["ticket"].as_str().unwrap().to_owned();
    (child, ticket, lines)
}

#[test]
fn send_and_recv_move_a_directory_byte_exact_and_report_in_json() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("photos");
    std::fs::create_dir_all(src.join("2024")).unwrap();
    let big: Vec<u8> = (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(src.join("2024/big.raw"), &big).unwrap();
    std::fs::write(src.join("notes.txt"), "hello\n".repeat(10_000)).unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    let (mut sender, ticket, mut sender_lines) = send(&[&src]);
    let out = tmp.path().join("got");
    let recv = jsp()
        .args(["recv", &ticket, "--json", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&recv.stdout);
    assert!(
        recv.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&recv.stderr)
    );
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    println!("recv: {last}");
    assert_eq!(last["event"], "done");
    assert_eq!(last["files"], 3);
    assert_eq!(last["bytes"], 5_000_000 + 60_000);
    for f in ["2024/big.raw", "notes.txt", "empty"] {
        assert_eq!(
            std::fs::read(out.join("photos").join(f)).unwrap(),
            std::fs::read(src.join(f)).unwrap(),
            "{f}"
        );
    }
    // The sender ends by itself once the receiver has everything.
    let status = sender.wait().unwrap();
    assert!(status.success());
    let done: Vec<serde_json::Value> = sender_lines
        .by_ref()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .filter(|v: &serde_json::Value| v["event"] == "done")
        .collect();
    println!("send: {}", done[0]);
    assert_eq!(done[0]["bytes"], 5_000_000 + 60_000);
    assert_eq!(done[0]["root"], last["root"]);
    // notes.txt compresses: fewer bytes on the wire than in the files.
    assert!(done[0]["wire_bytes"].as_u64().unwrap() < 5_000_000 + 60_000);
}

#[test]
fn a_garbled_ticket_and_an_existing_different_file_give_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a.txt");
    std::fs::write(&file, "the real contents").unwrap();
    let (mut sender, ticket, _lines) = send(&[&file]);

    // One character changed: refused before connecting.
    let mut garbled = ticket.clone().into_bytes();
    let i = garbled.len() / 2;
    garbled[i] = if garbled[i] == b'a' { b'b' } else { b'a' };
    let o = jsp()
        .args(["recv", std::str::from_utf8(&garbled).unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("error: bad ticket: the ticket is garbled"),
        "{err}"
    );
    let o = jsp().args(["recv", "not-a-ticket"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a jsp ticket"));

    // A different file of the same name is not overwritten without --force.
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("a.txt"), "something else").unwrap();
    let o = jsp()
        .args(["recv", &ticket, "--no-progress", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    println!("{err}");
    assert!(!o.status.success());
    assert!(err.contains("exists and differs"), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("a.txt")).unwrap(),
        "something else"
    );
    // With --force it is replaced, and the sender (still waiting) serves it.
    let o = jsp()
        .args(["recv", &ticket, "--no-progress", "--force", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    println!("{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(
        std::fs::read_to_string(out.join("a.txt")).unwrap(),
        "the real contents"
    );
    assert!(sender.wait().unwrap().success());
}

#[test]
fn a_recv_process_killed_midway_resumes_with_at_most_the_rest_plus_one_chunk() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("big.bin");
    let len: u64 = 256 << 20;
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..len / 8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            f.write_all(&x.to_le_bytes()).unwrap();
        }
        f.flush().unwrap();
    }
    let (mut sender, ticket, _lines) = send(&[&file]);
    let out = tmp.path().join("out");
    let mut first = jsp()
        .args(["recv", &ticket, "--json", "--streams", "1", "--out"])
        .arg(&out)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(first.stdout.take().unwrap()).lines();
    let mut killed_at = None;
    for line in lines.map_while(Result::ok) {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["event"] == "progress" {
            let done = v["bytes"].as_u64().unwrap();
            if done > 0 && done < len {
                first.kill().unwrap(); // SIGKILL: no goodbye, no flush
                killed_at = Some(done);
                break;
            }
        }
    }
    first.wait().unwrap();
    let killed_at = killed_at.expect("a progress line in the middle of the transfer");
    assert!(
        !out.join("big.bin").exists(),
        "nothing under the final name"
    );
    let o = jsp()
        .args(["recv", &ticket, "--json", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let done: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let wire = done["wire_bytes"].as_u64().unwrap();
    let resumed = done["resumed_bytes"].as_u64().unwrap();
    println!(
        "killed at {killed_at} of {len} bytes; the restart kept {resumed} and moved {wire} (bound {})",
        len - killed_at + (1 << 20)
    );
    assert!(wire <= len - killed_at + (1 << 20));
    assert_eq!(wire + resumed, len);
    assert!(std::fs::read(out.join("big.bin")).unwrap() == std::fs::read(&file).unwrap());
    assert!(sender.wait().unwrap().success());
}

/// Reads `lines` on a thread until one is a JSON object with `"event": event`, for at most 30 s.
fn wait_event(
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    event: &'static str,
) -> serde_json::Value {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if v["event"] == event {
                    let _ = tx.send(v);
                    return;
                }
            }
        }
    });
    rx.recv_timeout(std::time::Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no {event:?} event from the sender"))
}

fn skip_ns() -> bool {
    let skip = std::env::var_os("JSP_SKIP_NS_TESTS").is_some();
    if skip {
        println!("SKIPPED: JSP_SKIP_NS_TESTS is set");
    }
    skip
}

/// `jsp recv` into a 2 MiB tmpfs (mounted in a private mount namespace) for an 8 MiB file: a
/// real ENOSPC. Exit status 1, one line naming the path and "no space left", a JSON error object
/// with kind "no_space", the partial file kept; the sender reports the receiver's reason and
/// keeps waiting.
#[test]
fn recv_onto_a_full_disk_exits_1_with_a_clear_line_and_a_json_error() {
    if skip_ns() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("big.bin");
    let big: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(&file, &big).unwrap();
    let (mut sender, ticket, lines) = send(&[&file]);
    let out = tmp.path().join("small-disk");
    std::fs::create_dir_all(&out).unwrap();
    let listing = tmp.path().join("listing.txt");
    let script = r#"mount -t tmpfs -o size=2m tmpfs "$1" || exit 99
"$2" recv "$3" --json --no-progress --out "$1"; rc=$?
ls -a "$1" > "$4"; exit $rc"#;
    let o = Command::new("unshare")
        .args(["-rm", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(&out)
        .arg(env!("CARGO_BIN_EXE_jsp"))
        .arg(&ticket)
        .arg(&listing)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    println!("exit: {}\nstderr: {stderr}", o.status);
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{stderr}");
    let line = stderr.lines().last().unwrap();
    assert!(line.starts_with("error: cannot write "), "{line}");
    assert!(line.contains(out.to_str().unwrap()), "{line}");
    assert!(line.contains("no space left on device"), "{line}");
    let err: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    println!("json: {err}");
    assert_eq!(err["event"], "error");
    assert_eq!(err["kind"], "no_space");
    assert!(err["path"]
        .as_str()
        .unwrap()
        .starts_with(out.to_str().unwrap()));
    let ls = std::fs::read_to_string(&listing).unwrap();
    println!(
        "left on the small disk: {}",
        ls.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    assert!(ls.contains(".big.bin.jsp-part-"), "{ls}");
    assert!(!ls.lines().any(|l| l == "big.bin"), "{ls}");
    let warning = wait_event(lines, "warning");
    println!("sender: {warning}");
    assert_eq!(warning["kind"], "peer_write_failed");
    assert!(warning["message"]
        .as_str()
        .unwrap()
        .contains("big.bin: no space left on device"));
    sender.kill().unwrap();
    sender.wait().unwrap();
}

/// Permission problems as an unprivileged user (uid 65534 via `setpriv`; root would ignore the
/// permission bits): `jsp send` of a file it may not read, and `jsp recv` into a directory it
/// may not write to. Both exit 1 with one line and a JSON error of kind "permission_denied".
#[test]
fn permission_problems_exit_1_with_a_clear_line_and_a_json_error() {
    if skip_ns() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let nobody = |args: &[&str], path: &Path| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_jsp"))
            .args(args)
            .arg(path)
            .env_remove("JSP_LOG")
            .output()
            .unwrap()
    };
    let check = |o: &std::process::Output, path: &Path| {
        let stdout = String::from_utf8_lossy(&o.stdout);
        let stderr = String::from_utf8_lossy(&o.stderr);
        println!("exit: {}\nstderr: {stderr}", o.status);
        assert_eq!(o.status.code(), Some(1), "{stdout}\n{stderr}");
        let line = stderr.lines().last().unwrap();
        assert!(line.to_lowercase().contains("permission denied"), "{line}");
        assert!(line.contains(path.to_str().unwrap()), "{line}");
        let err: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        println!("json: {err}");
        assert_eq!(err["event"], "error");
        assert_eq!(err["kind"], "permission_denied");
        assert!(err["path"]
            .as_str()
            .unwrap()
            .starts_with(path.to_str().unwrap()));
    };

    // A file only root may read.
    let secret = tmp.path().join("secret.txt");
    std::fs::write(&secret, "for root only").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = nobody(&["send", "--json", "--listen", "127.0.0.1:0"], &secret);
    check(&o, &secret);

    // A directory only root may write to.
    let file = tmp.path().join("open.txt");
    std::fs::write(&file, "for everyone").unwrap();
    let (mut sender, ticket, lines) = send(&[&file]);
    let locked = tmp.path().join("root-only");
    std::fs::create_dir_all(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = nobody(
        &["recv", &ticket, "--json", "--no-progress", "--out"],
        &locked,
    );
    check(&o, &locked);
    assert_eq!(std::fs::read_dir(&locked).unwrap().count(), 0);
    let warning = wait_event(lines, "warning");
    println!("sender: {warning}");
    assert_eq!(warning["kind"], "peer_write_failed");
    assert!(warning["message"]
        .as_str()
        .unwrap()
        .contains("open.txt: permission denied"));
    sender.kill().unwrap();
    sender.wait().unwrap();
}
