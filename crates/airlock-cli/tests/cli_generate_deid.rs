//! End-to-end tests of `airlock generate` and `airlock deid` (file mode, `text`, `eval`),
//! running the built binary on a small synthetic cohort.
//!
//! The leak checks here are independent of the engine's own: every identifier of
//! `truth.jsonl` (names of at least 4 characters, SSNs, MRNs, phones, emails, street lines...)
//! is searched for, case-insensitively and as a whole word, in every output file and in the
//! command's stdout and stderr.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests and benches fail by panicking; helpers outside #[test] are not covered by clippy.toml"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_airlock");
const PATIENTS: &str = "20";

fn airlock(args: &[&str], cwd: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove("AIRLOCK_LOG")
        .output()
        .expect("run airlock")
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A tempdir holding `gen/` (a generated cohort) and `key` (32 bytes).
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let o = airlock(
        &[
            "generate",
            "--patients",
            PATIENTS,
            "--out",
            "gen",
            "--seed",
            "7",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "generate failed: {}", stderr(&o));
    std::fs::write(dir.path().join("key"), b"0123456789abcdef0123456789abcdef").unwrap();
    dir
}

/// The identifying values of `truth.jsonl` a de-identified output must not hold, lowercased.
fn truth_values(cohort: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in std::fs::read_to_string(cohort.join("truth.jsonl"))
        .unwrap()
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for id in v["identifiers"].as_array().unwrap() {
            let kind = id["kind"].as_str().unwrap();
            let value = id["value"].as_str().unwrap();
            let keep = match kind {
                k if k.contains("name") => value.chars().count() >= 4,
                // Checked by the engine's own leak check; too short or too common to grep for
                // as words (a 3-digit zip prefix, a city that is also a state).
                "birth_date" | "city" | "zip" => false,
                _ => true,
            };
            if keep {
                out.push((kind.to_owned(), value.to_lowercase()));
            }
        }
    }
    assert!(out.len() > 100, "truth.jsonl too small");
    out
}

/// Whether `needle` occurs in `hay` with no letter or digit right before or after it.
fn contains_word(hay: &str, needle: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut from = 0;
    while let Some(i) = hay.get(from..).and_then(|h| h.find(needle)) {
        let start = from + i;
        let end = start + needle.len();
        if !word(hay[..start].chars().next_back()) && !word(hay[end..].chars().next()) {
            return true;
        }
        from = start + needle.chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// `(kind, file)` for every truth value found in `hay` (value never printed).
fn leaks(truth: &[(String, String)], hay: &str, label: &str) -> Vec<String> {
    let hay = hay.to_lowercase();
    truth
        .iter()
        .filter(|(_, v)| contains_word(&hay, v))
        .map(|(k, _)| format!("{k} in {label}"))
        .collect()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Runs file mode over `inputs` (relative to the tempdir) and checks that no truth value is in
/// the outputs or in what the command printed, and that the run succeeded with a report.
fn deid_files_leak_nothing(profile: &str, inputs: &[&str]) {
    let dir = setup();
    let d = dir.path();
    let mut args = vec![
        "deid",
        "--profile",
        profile,
        "--key-file",
        "key",
        "--crosswalk",
        "crosswalk.json",
        "--out",
        "out",
        "--in",
    ];
    args.extend_from_slice(inputs);
    let o = airlock(&args, d);
    let truth = truth_values(&d.join("gen"));
    let mut found = leaks(&truth, &text(&o), "stdout/stderr");
    let mut files = Vec::new();
    files_under(&d.join("out"), &mut files);
    for f in &files {
        let body = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
        found.extend(leaks(&truth, &body, &f.display().to_string()));
    }
    assert!(
        found.is_empty(),
        "{profile}: identifiers in the output: {found:#?}"
    );
    assert!(
        o.status.success(),
        "{profile}: exit {:?}; stderr:\n{}",
        o.status.code(),
        stderr(&o)
    );
    assert!(d.join("out/deid-report.json").is_file());
    assert!(d.join("out/deid-summary.txt").is_file());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("out/deid-report.json")).unwrap()).unwrap();
    assert_eq!(report["profile"], profile);
    if profile == "safe-harbor" {
        assert_eq!(report["leak_check"]["passed"], true);
    }
    assert!(report["files"].as_array().unwrap().len() >= 20);
    // Every input has its de-identified counterpart, under a neutral name (issue 29: input
    // names may hold PHI, and the output leaves with the data).
    let parts = files
        .iter()
        .filter(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("part-"))
        })
        .count();
    assert_eq!(parts, report["files"].as_array().unwrap().len());
    for input in inputs {
        let name = Path::new(input).file_name().unwrap();
        assert!(
            !d.join("out").join(name).exists(),
            "{input}: its name is in the output"
        );
    }
    if profile == "safe-harbor" {
        assert!(d.join("crosswalk.json").is_file(), "crosswalk not saved");
    }
}

#[test]
fn generate_writes_a_cohort_and_prints_no_values() {
    let dir = tempfile::tempdir().unwrap();
    let o = airlock(
        &["generate", "--patients", PATIENTS, "--out", "gen"],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("generated 20 synthetic patients"), "{out}");
    let cohort = dir.path().join("gen");
    for f in ["cohort.csv", "truth.jsonl", "notes.jsonl", "README.txt"] {
        assert!(cohort.join(f).is_file(), "{f} missing");
    }
    assert_eq!(std::fs::read_dir(cohort.join("fhir")).unwrap().count(), 20);
    assert!(std::fs::read_dir(cohort.join("hl7")).unwrap().count() >= 20);
    assert!(leaks(&truth_values(&cohort), &text(&o), "stdout").is_empty());

    // Deterministic for a seed.
    let o2 = airlock(
        &["generate", "--patients", PATIENTS, "--out", "gen2"],
        dir.path(),
    );
    assert!(o2.status.success());
    assert_eq!(
        std::fs::read(cohort.join("truth.jsonl")).unwrap(),
        std::fs::read(dir.path().join("gen2/truth.jsonl")).unwrap()
    );
}

#[test]
fn deid_safe_harbor_hl7_leaks_nothing() {
    deid_files_leak_nothing("safe-harbor", &["gen/hl7"]);
}

#[test]
fn deid_expert_determination_fhir_hl7_leaks_nothing() {
    deid_files_leak_nothing("expert-determination", &["gen/fhir", "gen/hl7"]);
}

#[test]
fn deid_safe_harbor_all_formats_leaks_nothing() {
    deid_files_leak_nothing(
        "safe-harbor",
        &["gen/fhir", "gen/hl7", "gen/cohort.csv", "gen/notes.jsonl"],
    );
}

#[test]
fn deid_expert_determination_all_formats_leaks_nothing() {
    deid_files_leak_nothing(
        "expert-determination",
        &["gen/fhir", "gen/hl7", "gen/cohort.csv", "gen/notes.jsonl"],
    );
}

/// Issue 29: free-text notes are a dataset like any other: ingested into the clinical zone,
/// de-identified through the gate with lineage and the ledger, and no identifier of the
/// cohort's truth file is left in the released notes.
#[test]
fn notes_pass_the_gate_as_a_dataset() {
    let dir = setup();
    let d = dir.path();
    let env = |args: &[&str]| {
        let o = Command::new(BIN)
            .args(args)
            .current_dir(d)
            .env("AIRLOCK_PASSPHRASE", "a long test passphrase 123")
            .env_remove("AIRLOCK_LOG")
            .output()
            .expect("run airlock");
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        text(&o)
    };
    env(&["init", "--home", "h", "--name", "notes"]);
    let out = env(&[
        "ingest",
        "--home",
        "h",
        "--zone",
        "clinical",
        "--source-system",
        "ehr",
        "--dataset",
        "notes",
        "gen/notes.jsonl",
    ]);
    assert!(out.contains("notes@1"), "{out}");
    let out = env(&[
        "deid",
        "--home",
        "h",
        "--profile",
        "safe-harbor",
        "--dataset",
        "notes",
        "--out-dataset",
        "notes-deid",
    ]);
    assert!(out.contains("0 hits"), "{out}");
    env(&[
        "export",
        "--home",
        "h",
        "--dataset",
        "notes-deid",
        "--zone",
        "development",
        "--out",
        "released",
    ]);
    let body = std::fs::read_to_string(d.join("released/part-00000.jsonl")).unwrap();
    let notes: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let generated = std::fs::read_to_string(d.join("gen/notes.jsonl")).unwrap();
    assert_eq!(notes.len(), generated.lines().count());
    // The text is there, de-identified; the generator's gold spans (`phi`) and its patient
    // index are not released; the note id is a surrogate.
    assert!(
        notes
            .iter()
            .all(|n| n["text"].as_str().is_some_and(|t| t.len() > 50))
    );
    assert!(
        notes
            .iter()
            .all(|n| n.get("phi").is_none() && n.get("patient_index").is_none())
    );
    assert!(!generated.contains(notes[0]["note_id"].as_str().unwrap()));
    let found = leaks(&truth_values(&d.join("gen")), &body, "released notes");
    assert!(
        found.is_empty(),
        "identifiers in the released notes: {found:#?}"
    );
    let lineage = env(&["datasets", "lineage", "--home", "h", "notes-deid"]);
    assert!(lineage.contains("notes@1"), "{lineage}");
}

#[test]
fn malformed_input_is_quarantined_and_named_not_shown() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("key"), [7u8; 32]).unwrap();
    std::fs::create_dir(d.join("in")).unwrap();
    std::fs::write(
        d.join("in/broken-bundle.json"),
        r#"{"resourceType": "Patient", "name": [{"family": "Zyxwvutsra", "given": ["Qwertyuiop""#,
    )
    .unwrap();
    let args = [
        "deid",
        "--profile",
        "expert-determination",
        "--key-file",
        "key",
        "--in",
        "in",
        "--out",
        "out",
    ];
    let o = airlock(&args, d);
    assert!(!o.status.success(), "quarantine must fail the run");
    let all = text(&o);
    // Named by position and content hash, not by its file name.
    assert!(all.contains("files[0]"), "{all}");
    assert!(!all.contains("broken-bundle"), "{all}");
    assert!(all.contains("quarantined"), "{all}");
    for secret in ["Zyxwvutsra", "Qwertyuiop"] {
        assert!(!all.contains(secret), "a value from the input was printed");
    }
    assert!(d.join("out/deid-report.json").is_file());

    let mut allowed = args.to_vec();
    allowed.push("--allow-quarantine");
    let o = airlock(&allowed, d);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!text(&o).contains("Zyxwvutsra"));
}

#[test]
fn short_key_file_is_refused_without_printing_it() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(d.join("short"), b"hunter2pw").unwrap();
    let o = airlock(
        &[
            "deid",
            "--key-file",
            "short",
            "--in",
            "gen/hl7",
            "--out",
            "out",
        ],
        d,
    );
    assert!(!o.status.success());
    let all = text(&o);
    assert!(all.contains("at least 16"), "{all}");
    assert!(!all.contains("hunter2pw"));
    assert!(!d.join("out/deid-report.json").exists());
}

#[test]
fn crosswalk_inside_the_output_is_refused() {
    let dir = setup();
    let o = airlock(
        &[
            "deid",
            "--key-file",
            "key",
            "--crosswalk",
            "out/cw.json",
            "--in",
            "gen/hl7",
            "--out",
            "out",
        ],
        dir.path(),
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("must not be inside the output"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn deid_text_jsonl_adds_deid_text_and_phi() {
    let dir = setup();
    let d = dir.path();
    let o = airlock(
        &[
            "deid",
            "text",
            "--in",
            "gen/notes.jsonl",
            "--out",
            "notes.deid.jsonl",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(
        summary.contains("MB/s") && summary.contains("NAME"),
        "{summary}"
    );
    let input = std::fs::read_to_string(d.join("gen/notes.jsonl")).unwrap();
    let output = std::fs::read_to_string(d.join("notes.deid.jsonl")).unwrap();
    assert_eq!(input.lines().count(), output.lines().count());
    let mut spans = 0;
    for line in output.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = v["deid_text"].as_str().unwrap();
        assert!(!t.is_empty());
        spans += v["phi"].as_array().unwrap().len();
        assert!(v["note_id"].is_string(), "other fields pass through");
    }
    assert!(spans > 0);
    assert!(leaks(&truth_values(&d.join("gen")), &text(&o), "stdout/stderr").is_empty());

    // Surrogate mode needs a key; a malformed line is reported by number, non-zero exit.
    let o = airlock(
        &[
            "deid",
            "text",
            "--in",
            "gen/notes.jsonl",
            "--out",
            "s.jsonl",
            "--mode",
            "surrogate",
        ],
        d,
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--key-file"), "{}", stderr(&o));
    std::fs::write(
        d.join("bad.jsonl"),
        "{\"id\": 1, \"text\": \"Seen by Dr. Adams on 3/14/2021.\"}\n{\"id\": 2, \"text\": \"Zyxwvutsra\n",
    )
    .unwrap();
    let o = airlock(
        &[
            "deid",
            "text",
            "--in",
            "bad.jsonl",
            "--out",
            "bad.out.jsonl",
            "--mode",
            "surrogate",
            "--key-file",
            "key",
        ],
        d,
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("line 2"), "{}", stderr(&o));
    assert!(!text(&o).contains("Zyxwvutsra"));
    let out = std::fs::read_to_string(d.join("bad.out.jsonl")).unwrap();
    assert_eq!(out.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let deid = v["deid_text"].as_str().unwrap();
    assert!(
        !deid.contains("Adams") && !deid.contains("3/14/2021"),
        "{deid}"
    );
    assert!(deid.starts_with("Seen by "), "{deid}");
}

#[test]
fn deid_text_plain_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("note.txt"),
        "Seen by Dr. Adams on 3/14/2021. Call 617-555-0143.\nSSN 123-45-6789.\n",
    )
    .unwrap();
    let o = airlock(
        &["deid", "text", "--in", "note.txt", "--out", "note.out.txt"],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = std::fs::read_to_string(d.join("note.out.txt")).unwrap();
    for v in ["Adams", "3/14/2021", "617-555-0143", "123-45-6789"] {
        assert!(!out.contains(v), "{v} survived: {out}");
    }
    assert!(out.contains("[NAME]") && out.contains("[SSN]"), "{out}");
}

#[test]
fn deid_eval_jsonl_on_generated_notes() {
    let dir = setup();
    let d = dir.path();
    let o = airlock(
        &[
            "deid",
            "eval",
            "--corpus",
            "gen/notes.jsonl",
            "--format",
            "jsonl",
            "--json",
            "eval.json",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("ALL (tokens)"), "{table}");
    assert!(table.contains("recall"), "{table}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("eval.json")).unwrap()).unwrap();
    assert_eq!(report["system"], "airlock");
    assert!(report["entries"].as_u64().unwrap() > 20);
    assert!(leaks(&truth_values(&d.join("gen")), &text(&o), "stdout/stderr").is_empty());

    // Scoring another system's predictions, JSON on stdout (as bench/text_anchors.py reads it).
    let n = std::fs::read_to_string(d.join("gen/notes.jsonl"))
        .unwrap()
        .lines()
        .count();
    std::fs::write(d.join("empty.jsonl"), "{\"phi\": []}\n".repeat(n)).unwrap();
    let o = airlock(
        &[
            "deid",
            "eval",
            "--corpus",
            "gen/notes.jsonl",
            "--format",
            "jsonl",
            "--predictions",
            "empty.jsonl",
            "--system",
            "nothing",
            "--json",
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["system"], "nothing");
    assert_eq!(v["tokens"]["recall"], 0.0);
}

#[test]
fn deid_eval_asq_on_shared_corpus() {
    let data = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"));
    let corpus = data.join("notes/asq-phi-dev.txt");
    if !corpus.is_file() {
        println!("skipped: {} is absent", corpus.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let o = airlock(
        &[
            "deid",
            "eval",
            "--corpus",
            corpus.to_str().unwrap(),
            "--format",
            "asq",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("ALL (tokens)"), "{table}");
    assert!(table.contains("PHI-free entries altered"), "{table}");
}
