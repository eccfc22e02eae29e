//! Running the `scoresde` binary in tests, and the one-clear-line check for
//! its failures. Included with `#[path = "common/cli.rs"] mod cli;`.
#![allow(dead_code)] // each test file uses part of it

use std::ffi::OsStr;
use std::fmt::Debug;
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_scoresde");

/// Runs the binary with `args` and waits for it.
pub fn run<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// Fails with one `error:` line on stderr containing every `needles` entry,
/// and no panic.
pub fn assert_fails<S: AsRef<OsStr> + Debug>(args: &[S], needles: &[&str]) {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one line, got {err}");
    assert!(lines[0].starts_with("error: "), "{args:?}: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "{args:?}: '{n}' not in: {err}");
    }
}
