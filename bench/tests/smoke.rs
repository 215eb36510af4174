//! Runs the loopback benchmark binary with tiny sizes, so that it keeps building and working.
//! No figure is judged (timings on a shared machine mean nothing in a test); the run must finish
//! and print every record, well formed, for both stacks.

use std::process::Command;

#[test]
fn tiny_loopback_run_prints_every_record() {
    let out = Command::new(env!("CARGO_BIN_EXE_vs_quinn_loopback"))
        .args([
            "--rounds",
            "1",
            "--bulk-bytes",
            "300000",
            "--chunk",
            "65536",
            "--ceiling-ms",
            "20",
            "--handshakes",
            "3",
            "--concurrent-handshakes",
            "6",
            "--concurrency",
            "3",
            "--idle-conns",
            "8",
            "--echo-messages",
            "20",
            "--echo-size",
            "32",
            "--threads",
            "0",
        ])
        .output()
        .expect("the benchmark binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    println!("{stdout}");

    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with('{')).collect();
    let has = |bench: &str, implementation: &str, metric: &str| {
        lines.iter().any(|l| {
            l.contains(&format!(
                r#""bench":"{bench}","impl":"{implementation}","metric":"{metric}""#
            ))
        })
    };
    for (bench, metric) in [
        ("bulk", "goodput"),
        ("bulk", "cpu_per_gb"),
        ("handshake", "sequential"),
        ("handshake", "concurrent"),
        ("idle", "heap_per_conn"),
        ("idle", "rss_per_conn"),
        ("echo", "p50"),
        ("echo", "p99"),
    ] {
        for implementation in ["jsp", "quinn"] {
            assert!(
                has(bench, implementation, metric),
                "missing {bench}/{implementation}/{metric} in:\n{stdout}"
            );
        }
    }
    assert!(has("bulk", "ceiling", "aead_seal"), "{stdout}");
    for l in &lines {
        assert!(
            l.ends_with('}') && l.contains(r#""unit":""#),
            "malformed line {l}"
        );
        assert!(!l.contains(r#""value":null"#), "a figure is missing: {l}");
    }
    // Goodput, handshake rates and the ceiling are rates of work that happened: positive.
    for l in lines
        .iter()
        .filter(|l| l.contains("goodput") || l.contains("sequential") || l.contains("aead_seal"))
    {
        assert!(
            !l.contains(r#""value":0,"#) && !l.contains(r#""value":-"#),
            "{l}"
        );
    }
    assert!(stdout.contains("| bulk | goodput |"), "no table:\n{stdout}");
}
