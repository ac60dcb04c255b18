//! Python packages as oracles, shared by the oracle tests.

use std::process::Command;

/// Whether the oracle can run: `Ok(true)` when `python3` imports `import`; `Ok(false)` (with a
/// notice) when it cannot and `require_env` is not `1`; an error when it is.
#[allow(clippy::print_stderr, reason = "the skip notice is reported")]
pub fn oracle_available(import: &str, pip: &str, require_env: &str) -> Result<bool, String> {
    let why = match Command::new("python3")
        .args(["-c", &format!("import {import}")])
        .output()
    {
        Err(e) => format!("python3 could not be run: {e}"),
        Ok(out) if !out.status.success() => format!(
            "python3 cannot import {import} ({}); install it with `python3 -m pip install {pip}`",
            // The last line of the traceback says which import failed.
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
        ),
        Ok(_) => return Ok(true),
    };
    if std::env::var(require_env).as_deref() == Ok("1") {
        return Err(format!("{require_env}=1 but {why}"));
    }
    eprintln!("skipped: {why} (set {require_env}=1 to make this a failure)");
    Ok(false)
}
