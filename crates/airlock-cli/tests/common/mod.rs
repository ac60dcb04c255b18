//! Running the built `airlock` binary, shared by the end-to-end tests.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the shared helpers"
)]

use std::path::Path;
use std::process::{Command, Output};

/// The passphrase the directory-based tests create their deployments with.
pub const PASSPHRASE: &str = "a long test passphrase 123";

/// Run the binary with `args` in `cwd`, with the test passphrase and none of the caller's
/// `AIRLOCK_*` settings that would change what it does.
pub fn run_in(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .current_dir(cwd)
        .env("AIRLOCK_PASSPHRASE", PASSPHRASE)
        .env_remove("AIRLOCK_LOG")
        .env_remove("AIRLOCK_HOME")
        .env_remove("AIRLOCK_ACTOR")
        .output()
        .expect("run airlock")
}

/// [`run_in`], which must succeed; what it printed.
pub fn ok_in(args: &[&str], cwd: &Path) -> String {
    let o = run_in(args, cwd);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    text(&o)
}

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
