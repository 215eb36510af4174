//! Runs the file-transfer benchmark binary with tiny sizes, so that it keeps building and
//! working. No figure is judged; the run must succeed (which includes both loopback copies
//! matching the source and the simulated transfer completing verified) and print every record.

use std::process::Command;

#[test]
fn tiny_file_transfer_run_prints_every_record() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir(&corpus).expect("corpus directory");
    let text = "The quick brown fox jumps over the lazy dog; the file transfer compresses text.\n";
    std::fs::write(corpus.join("a.txt"), text.repeat(3000)).expect("corpus file");
    std::fs::write(corpus.join("b.bin"), [0u8, 1, 2, 3]).expect("binary file");
    let out = Command::new(env!("CARGO_BIN_EXE_file_transfer"))
        .args([
            "--rounds",
            "1",
            "--file-bytes",
            "3000000",
            "--sim-bytes",
            "1500000",
        ])
        .args(["--corpus-bytes", "200000", "--levels", "1,3"])
        .arg("--corpus-dir")
        .arg(&corpus)
        .arg("--tmp")
        .arg(tmp.path())
        .output()
        .expect("the benchmark binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    println!("{stdout}");
    let has = |bench: &str, implementation: &str, metric: &str| {
        stdout.lines().any(|l| {
            l.starts_with('{')
                && l.contains(&format!(
                    r#""bench":"{bench}","impl":"{implementation}","metric":"{metric}","value":"#
                ))
                && !l.contains(r#""value":null"#)
        })
    };
    for (bench, implementation, metric) in [
        ("file-loopback", "jsp", "time"),
        ("file-loopback", "quinn", "time"),
        ("file-loopback", "jsp", "time-ratio-vs-quinn"),
        ("file-sim-lossy", "jsp", "goodput"),
        ("compress-l1", "jsp", "ratio"),
        ("compress-l3", "jsp", "compress-rate"),
    ] {
        assert!(
            has(bench, implementation, metric),
            "no {bench}/{implementation}/{metric}:\n{stdout}"
        );
    }
    assert!(stdout.contains("1 text files under"), "{stdout}");
    // The benchmark's own temporary directory is gone: only the corpus is left.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("listing")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("corpus")]);
}
