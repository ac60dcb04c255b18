//! Running the built `airlock` binary, shared by the end-to-end tests.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the shared helpers"
)]

use std::process::{Command, Output};

/// Run the binary with `args` and these environment variables set.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_airlock"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run airlock")
}

/// Everything the command printed: stdout, then stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// [`text`] of a command that must have succeeded.
pub fn ok(out: &Output) -> String {
    let s = text(out);
    assert!(out.status.success(), "{s}");
    s
}
