//! Stamps the build with the git commit it was made from, for lineage records
//! (`AIRLOCK_VERSION`). `AIRLOCK_GIT_COMMIT` overrides git (a build from a source tarball, a
//! reproducible build); without either the version is the package version alone.
#![allow(
    clippy::print_stdout,
    reason = "cargo reads a build script's instructions from its stdout"
)]

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=AIRLOCK_GIT_COMMIT");
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let dir = Path::new(&dir);
    let commit = match std::env::var("AIRLOCK_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => Some(c.trim().to_owned()),
        _ => {
            // Rebuild when HEAD moves: its reflog grows with every commit, checkout and reset.
            if let Some(git_dir) = git(dir, &["rev-parse", "--absolute-git-dir"]) {
                println!("cargo:rerun-if-changed={git_dir}/HEAD");
                println!("cargo:rerun-if-changed={git_dir}/logs/HEAD");
            }
            git(dir, &["rev-parse", "--short=12", "HEAD"])
        }
    };
    // Semver build metadata allows only [0-9A-Za-z-].
    let commit = commit
        .map(|c| {
            c.chars()
                .filter(|ch| ch.is_ascii_alphanumeric() || *ch == '-')
                .take(40)
                .collect::<String>()
        })
        .filter(|c| !c.is_empty());
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let build = match commit {
        Some(c) => format!("{version}+{c}"),
        None => version,
    };
    println!("cargo:rustc-env=AIRLOCK_BUILD_VERSION={build}");
}
