//! The command line: bad input is one clear line on stderr and a non-zero exit.

use std::process::Command;

use crate::harness::{Cinder, cinder_bin};

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(cinder_bin())
        .args(args)
        .output()
        .expect("run cinder");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_flag_is_one_line_and_a_nonzero_exit() {
    let (code, stderr) = run(&["--no-such-flag"]);
    assert_ne!(code, 0);
    assert_eq!(stderr.trim().lines().count(), 1, "stderr: {stderr}");
    assert!(stderr.contains("--no-such-flag"), "stderr: {stderr}");
}

#[test]
fn a_bad_retention_names_the_problem() {
    let (code, stderr) = run(&["--retention", "fortnight"]);
    assert_ne!(code, 0);
    assert_eq!(stderr.trim().lines().count(), 1, "stderr: {stderr}");
    assert!(stderr.contains("fortnight"), "stderr: {stderr}");
}

#[test]
fn a_port_in_use_is_one_clear_line() {
    let server = Cinder::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let listen = server.addr.to_string();
    let data = tmp.path().to_str().unwrap();
    let (code, stderr) = run(&["--listen", &listen, "--data-dir", data]);
    assert_ne!(code, 0);
    let lines: Vec<&str> = stderr.trim().lines().collect();
    assert_eq!(lines.len(), 1, "stderr: {stderr}");
    assert!(
        lines[0].contains("cannot listen on") && lines[0].contains(&listen),
        "stderr: {stderr}"
    );
}

#[test]
fn help_lists_the_documented_flags() {
    let out = Command::new(cinder_bin()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--data-dir",
        "--listen",
        "--retention",
        "--log-level",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}
