#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    reason = "tests fail by panicking and say why they skip"
)]
//! The README's walk-through, run as written: every block fenced as ```` ```sh walkthrough ````
//! is read from `README.md` at test time and run, in order, as one `bash` script with
//! `set -euo pipefail`, in a fresh temporary `$HOME` with the built `airlock` first on the
//! `PATH`. Nothing in the blocks is substituted: what the README tells a user to capture (the
//! administrator's password, TOTP URIs, tokens, the server's address) the script captures the
//! same way. A command that fails fails the test, so the README and the product cannot drift
//! apart.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The fence that marks a tested block.
const FENCE: &str = "```sh walkthrough";

/// Ahead of the README's commands: stop at the first failure, trace each command (the log
/// then shows which one failed), and stop the server a failed run leaves behind.
const PRELUDE: &str = "set -euo pipefail\n\
                       trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n\
                       set -x\n";

/// Far above the walk-through's few seconds: only a hung command gets here.
const TIMEOUT: Duration = Duration::from_secs(300);

/// The tested blocks, each with the README line its fence is on.
fn blocks(readme: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, line) in readme.lines().enumerate() {
        match open.as_mut() {
            None if line.trim_end() == FENCE => open = Some((i + 1, String::new())),
            None => {}
            Some(_) if line.trim_end() == "```" => out.extend(open.take()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    if let Some((line, _)) = open {
        panic!("README.md line {line}: the walk-through block is not closed");
    }
    out
}

/// The tools the walk-through uses besides `airlock` and coreutils, when one is missing.
fn missing_tool() -> Option<&'static str> {
    ["bash", "curl", "jq"].into_iter().find(|tool| {
        !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    if let Some(tool) = missing_tool() {
        eprintln!("skipped: the README's walk-through needs `{tool}`, which is not installed");
        return;
    }
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let blocks = blocks(&readme);
    let commands: String = blocks.iter().map(|(_, b)| b.as_str()).collect();
    // The path a new user walks, end to end: a walk-through cut short fails here, not silently.
    for step in [
        "airlock init",
        "airlock users add",
        "airlock ingest",
        "airlock deid",
        "airlock train",
        "airlock serve",
        "/v1/auth/login",
        "/v1/users",
        "/v1/enrol",
        "/confirm",
        "/validate",
        "/approve",
        "/deploy",
        "/predict",
        "/monitoring",
    ] {
        assert!(
            commands.contains(step),
            "the README's walk-through (```sh walkthrough blocks) no longer runs `{step}`"
        );
    }

    let tmp = tempfile::tempdir().unwrap();
    let mut script = String::from(PRELUDE);
    for (line, body) in &blocks {
        script.push_str(&format!(": README.md line {line}\n{body}"));
    }
    let script_file = tmp.path().join("readme-walkthrough.sh");
    std::fs::write(&script_file, script).unwrap();
    let log_file = tmp.path().join("readme-walkthrough.log");
    let log = File::create(&log_file).unwrap();

    let bin_dir = Path::new(env!("CARGO_BIN_EXE_airlock")).parent().unwrap();
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(&script_file)
        .current_dir(tmp.path())
        .env("HOME", tmp.path())
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // Only what the README says, not the caller's deployment or shell start-up files.
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("AIRLOCK_") || ["BASH_ENV", "ENV", "CDPATH"].contains(&&*key_text) {
            cmd.env_remove(&key);
        }
    }
    // Its own process group, so a hung run is stopped with the server it started.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&log_file).unwrap_or_default();
    let tail: String = output
        .chars()
        .skip(output.chars().count().saturating_sub(8000))
        .collect();
    match status {
        None => panic!(
            "the README's walk-through did not finish in {TIMEOUT:?}; the end of its trace:\n{tail}"
        ),
        Some(s) if !s.success() => panic!(
            "a command of the README's walk-through failed ({s}); the end of its trace (the \
             last `+ : README.md line N` names the block):\n{tail}"
        ),
        Some(_) => {}
    }
    // What the README says the answers hold.
    for said in [
        "\"display\":\"none\"",
        "\"display\":\"shown\"",
        "ledger verified",
    ] {
        assert!(
            output.contains(said),
            "the README's walk-through says its output holds `{said}`; it did not:\n{tail}"
        );
    }
}
