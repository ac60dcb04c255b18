#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests and benches fail by panicking; helpers outside #[test] are not covered by clippy.toml"
)]
//! End to end through the binary: init, ingest, zone refusals, the gate, export, audit verify,
//! proofs, tampering, and no PHI in any output.

use std::path::Path;
mod common;

use std::process::Output;

use common::ok;

const PASS: &str = "an end to end passphrase";

fn airlock(args: &[&str]) -> Output {
    common::run(
        args,
        &[("AIRLOCK_PASSPHRASE", PASS), ("AIRLOCK_LOG", "trace")],
    )
}

fn truth_values(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for line in std::fs::read_to_string(dir.join("truth.jsonl"))
        .unwrap()
        .lines()
    {
        let j: serde_json::Value = serde_json::from_str(line).unwrap();
        for id in j["identifiers"].as_array().unwrap() {
            let kind = id["kind"].as_str().unwrap();
            let value = id["value"].as_str().unwrap();
            if matches!(kind, "ssn" | "mrn" | "phone" | "email" | "street")
                || (kind.contains("name") && value.len() >= 5)
            {
                v.push(value.to_string());
            }
        }
    }
    v
}

#[test]
fn home_lifecycle_through_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let h = home.to_str().unwrap();
    let src = tmp.path().join("src");
    ok(&airlock(&[
        "generate",
        "--patients",
        "8",
        "--out",
        src.to_str().unwrap(),
    ]));
    let mut logs = String::new();
    logs += &ok(&airlock(&["init", "--home", h, "--name", "e2e"]));
    // A second init is refused; a wrong passphrase is refused.
    assert!(!airlock(&["init", "--home", h]).status.success());
    let wrong = common::run(
        &["datasets", "--home", h, "list"],
        &[("AIRLOCK_PASSPHRASE", "wrong passphrase here")],
    );
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"));

    let fhir = src.join("fhir");
    logs += &ok(&airlock(&[
        "ingest",
        "--home",
        h,
        "--zone",
        "clinical",
        "--source-system",
        "ehr",
        "--dataset",
        "raw",
        fhir.to_str().unwrap(),
    ]));
    // PHI into development: refused.
    let refused = airlock(&[
        "ingest",
        "--home",
        h,
        "--zone",
        "development",
        "--source-system",
        "ehr",
        "--dataset",
        "bad",
        fhir.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    logs += &String::from_utf8_lossy(&refused.stderr);
    // Export of PHI from development: refused; from clinical without a purpose: refused.
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    assert!(
        !airlock(&[
            "export",
            "--home",
            h,
            "--dataset",
            "raw",
            "--zone",
            "development",
            "--out",
            o
        ])
        .status
        .success()
    );
    assert!(
        !airlock(&[
            "export",
            "--home",
            h,
            "--dataset",
            "raw",
            "--zone",
            "clinical",
            "--out",
            o
        ])
        .status
        .success()
    );
    logs += &ok(&airlock(&[
        "export",
        "--home",
        h,
        "--dataset",
        "raw@1",
        "--zone",
        "clinical",
        "--purpose",
        "treatment",
        "--out",
        o,
    ]));
    // The gate.
    logs += &ok(&airlock(&[
        "deid",
        "--home",
        h,
        "--profile",
        "safe-harbor",
        "--dataset",
        "raw",
        "--out-dataset",
        "research",
    ]));
    let dev = tmp.path().join("dev");
    logs += &ok(&airlock(&[
        "export",
        "--home",
        h,
        "--dataset",
        "research",
        "--zone",
        "development",
        "--out",
        dev.to_str().unwrap(),
    ]));
    logs += &ok(&airlock(&["datasets", "--home", h, "list"]));
    let lin = ok(&airlock(&["datasets", "--home", h, "lineage", "research"]));
    assert!(
        lin.contains("research@1") && lin.contains("raw@1") && lin.contains("gate=deidentify"),
        "{lin}"
    );
    logs += &lin;
    logs += &ok(&airlock(&["keys", "--home", h, "rotate"]));

    // No identifier in any de-identified file or any output of any command.
    let truth = truth_values(&src);
    assert!(truth.len() > 20);
    for entry in std::fs::read_dir(&dev).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        for t in &truth {
            assert!(
                !text.contains(t.as_str()),
                "identifier left in {}",
                entry.path().display()
            );
        }
    }
    for t in &truth {
        assert!(!logs.contains(t.as_str()), "identifier in command output");
    }

    // The ledger verifies, proofs verify offline, and a checkpoint pins history.
    let cp = tmp.path().join("cp.txt");
    ok(&airlock(&[
        "audit",
        "checkpoint",
        "--home",
        h,
        "--out",
        cp.to_str().unwrap(),
    ]));
    let v = ok(&airlock(&[
        "audit",
        "verify",
        "--home",
        h,
        "--since",
        cp.to_str().unwrap(),
    ]));
    assert!(v.contains("ledger verified"), "{v}");
    let key = ok(&airlock(&["audit", "key", "--home", h]))
        .trim()
        .to_string();
    let proof = tmp.path().join("p.proof");
    ok(&airlock(&[
        "audit",
        "proof",
        "--home",
        h,
        "2",
        "--out",
        proof.to_str().unwrap(),
    ]));
    ok(&airlock(&[
        "audit",
        "verify-proof",
        proof.to_str().unwrap(),
        "--key",
        &key,
    ]));
    let fhir_audit = ok(&airlock(&[
        "audit", "export", "--home", h, "--format", "fhir",
    ]));
    assert!(fhir_audit.contains("AuditEvent"));
    // The ledger records the operating-system user and host, not a name from the command line.
    let me = ok(&airlock(&["whoami"]))
        .lines()
        .find(|l| l.starts_with("operator:"))
        .unwrap_or_default()
        .to_string();
    assert!(me.starts_with("operator:"), "{me}");
    let search = ok(&airlock(&[
        "audit", "search", "--home", h, "--event", "export", "--actor", &me,
    ]));
    assert!(
        search.lines().filter(|l| l.starts_with('{')).count() >= 2,
        "{search}"
    );

    let disc = ok(&airlock(&[
        "audit",
        "disclosures",
        "--home",
        h,
        "--patient-mrn",
        "0000001",
    ]));
    assert!(
        disc.contains("0 disclosures") && !disc.contains("0000001"),
        "{disc}"
    );

    // Tamper with one byte of the WAL: verify fails and names where.
    let wal = home.join("ledger/wal");
    let mut bytes = std::fs::read(&wal).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&wal, &bytes).unwrap();
    let bad = airlock(&["audit", "verify", "--home", h]);
    assert!(!bad.status.success());
    let msg = String::from_utf8_lossy(&bad.stderr);
    assert!(msg.contains("FAILED"), "{msg}");
}

#[test]
fn finding_12_ingest_outside_clinical_is_an_attested_import() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let h = home.to_str().unwrap();
    let src = tmp.path().join("src");
    ok(&airlock(&[
        "generate",
        "--patients",
        "4",
        "--out",
        src.to_str().unwrap(),
    ]));
    ok(&airlock(&["init", "--home", h, "--name", "attest"]));
    let cohort = src.join("cohort.csv");
    let c = cohort.to_str().unwrap();
    let ingest = |dataset: &str, file: &str, extra: &[&str]| {
        let mut args = vec![
            "ingest",
            "--home",
            h,
            "--zone",
            "development",
            "--classification",
            "deidentified",
            "--source-system",
            "partner",
            "--dataset",
            dataset,
        ];
        args.extend_from_slice(extra);
        args.push(file);
        airlock(&args)
    };
    let mut logs = String::new();
    // Without an attestation: refused, whatever the classification claims.
    let r = ingest("leak", c, &[]);
    assert!(!r.status.success());
    let msg = common::text(&r);
    assert!(msg.contains("attested import"), "{msg}");
    logs += &msg;
    // With one, the scan finds the identifiers, and says where and what, never the value.
    let r = ingest(
        "leak",
        c,
        &[
            "--attest-basis",
            "data-use-agreement",
            "--attest-reference",
            "DUA-17",
        ],
    );
    assert!(!r.status.success());
    let msg = common::text(&r);
    assert!(msg.contains("`files[0]` line 2"), "{msg}");
    assert!(msg.contains("found"), "{msg}");
    logs += &msg;
    // An attestation has no place in the clinical zone.
    assert!(
        !airlock(&[
            "ingest",
            "--home",
            h,
            "--source-system",
            "ehr",
            "--dataset",
            "raw",
            "--attest-basis",
            "synthetic",
            c
        ])
        .status
        .success()
    );
    // A table without identifiers goes in; its lineage names the attestation.
    let clean = tmp.path().join("clean.csv");
    std::fs::write(&clean, "age_band,sex,dx\n40-49,F,E11\n70-79,M,I10\n").unwrap();
    logs += &ok(&ingest(
        "synth",
        clean.to_str().unwrap(),
        &[
            "--attest-basis",
            "synthetic",
            "--attest-reference",
            "airlock-synth seed 7",
        ],
    ));
    let lineage = ok(&airlock(&["datasets", "--home", h, "lineage", "synth"]));
    assert!(
        // The attester is the operator the ledger records (finding 13), not a claimed name.
        lineage.contains("attested by operator:")
            && lineage.contains("(synthetic, reference `airlock-synth seed 7`)"),
        "{lineage}"
    );
    assert!(lineage.contains("transform=attested-import"), "{lineage}");
    logs += &lineage;
    // Refusals are in the ledger, without values.
    let failures = ok(&airlock(&[
        "audit", "search", "--home", h, "--event", "ingest",
    ]));
    assert!(failures.contains("ingest failed"), "{failures}");
    assert!(failures.contains("found"), "{failures}");
    logs += &failures;
    for t in &truth_values(&src) {
        assert!(!logs.contains(t.as_str()), "identifier in command output");
    }
}

#[test]
fn every_command_has_a_valid_definition() {
    // clap checks argument definitions when a command's help is built.
    for args in [
        vec!["--help"],
        vec!["audit", "search", "--help"],
        vec!["audit", "verify", "--help"],
        vec!["audit", "disclosures", "--help"],
        vec!["deid", "--help"],
        vec!["deid", "text", "--help"],
        vec!["deid", "eval", "--help"],
        vec!["datasets", "--help"],
        vec!["keys", "rotate", "--help"],
        vec!["demo", "--help"],
    ] {
        let out = airlock(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_demo_runs_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = ok(&airlock(&[
        "demo",
        "--dir",
        dir.to_str().unwrap(),
        "--patients",
        "6",
        "--no-serve",
        "--listen",
        "127.0.0.1:0",
    ]));
    assert!(out.contains("leak check passed"), "{out}");
    // The API step ran over a real TLS socket.
    assert!(out.contains("without credentials -> 401"), "{out}");
    assert!(out.contains("logs in with password + TOTP -> 200"), "{out}");
    assert!(out.contains("ehr-fhir -> 404"), "{out}");
    assert!(out.contains("verified=true"), "{out}");
    assert!(out.contains("refused"), "{out}");
    assert!(out.contains("ledger verified"), "{out}");
    let truth = truth_values(&dir.join("source-ehr-extract"));
    for t in &truth {
        assert!(!out.contains(t.as_str()), "identifier in demo output");
    }
}

#[test]
fn identities_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    let h = home.to_str().unwrap();
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "a long admin passphrase\n").unwrap();
    let out = ok(&airlock(&[
        "init",
        "--home",
        h,
        "--admin",
        "root-admin",
        "--admin-password-file",
        pw.to_str().unwrap(),
    ]));
    assert!(out.contains("administrator:       root-admin"), "{out}");
    assert!(out.contains("otpauth://totp/"), "{out}");
    assert!(!out.contains("a long admin passphrase"), "password echoed");
    let out = ok(&airlock(&[
        "users",
        "add",
        "--home",
        h,
        "ehr-bridge",
        "--role",
        "clinician",
        "--service",
    ]));
    assert!(out.contains("service `ehr-bridge` created"), "{out}");
    let out = ok(&airlock(&[
        "users",
        "add",
        "--home",
        h,
        "dr-who",
        "--role",
        "clinician",
    ]));
    assert!(out.contains("password (shown once)"), "{out}");
    let out = ok(&airlock(&[
        "tokens",
        "issue",
        "--home",
        h,
        "--principal",
        "ehr-bridge",
        "--scope",
        "predict",
        "--days",
        "30",
    ]));
    assert!(out.contains("bearer (shown once): alk_"), "{out}");
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    ok(&airlock(&["tokens", "revoke", "--home", h, &id]));
    // A person cannot be issued a token; an unknown role is refused at parse time.
    assert!(
        !airlock(&[
            "tokens",
            "issue",
            "--home",
            h,
            "--principal",
            "dr-who",
            "--scope",
            "predict"
        ])
        .status
        .success()
    );
    assert!(
        !airlock(&["users", "add", "--home", h, "x", "--role", "wizard"])
            .status
            .success()
    );
    ok(&airlock(&["users", "disable", "--home", h, "dr-who"]));
    let out = ok(&airlock(&["users", "reset-mfa", "--home", h, "root-admin"]));
    assert!(out.contains("otpauth://"), "{out}");
    let out = ok(&airlock(&["users", "list", "--home", h]));
    assert!(
        out.contains("root-admin") && out.contains("security-admin"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("dr-who") && l.contains("disabled=true")),
        "{out}"
    );
    // Every change is in the ledger, and it verifies.
    let out = ok(&airlock(&[
        "audit",
        "search",
        "--home",
        h,
        "--event",
        "config_change",
    ]));
    assert!(out.matches("config_change").count() >= 6, "{out}");
    ok(&airlock(&["audit", "verify", "--home", h]));
    // A policy file that does not validate is refused at start.
    let bad = tmp.path().join("bad.cedar");
    std::fs::write(
        &bad,
        "@id(\"oops\") permit (principal, action, resource) when { resource.nonexistent == 1 };",
    )
    .unwrap();
    let out = airlock(&[
        "serve",
        "--home",
        h,
        "--listen",
        "127.0.0.1:0",
        "--policies",
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("oops"), "{err}");
}

/// Issue 28, finding 13: `AIRLOCK_ACTOR=dr-nobody airlock export ...` exported PHI and the
/// ledger believed it. The ledger now records the operating-system user and host, and a
/// claimed name only as "on behalf of".
#[test]
fn finding_13_the_ledger_records_the_operator_not_a_claimed_name() {
    let who = |env: &[(&str, &str)]| {
        ok(&common::run(&["whoami"], env))
            .lines()
            .find(|l| l.starts_with("operator:"))
            .unwrap_or_default()
            .to_string()
    };
    let alice = who(&[("USER", "alice")]);
    assert!(alice.starts_with("operator:alice@"), "{alice}");
    let claimed = who(&[("USER", "alice"), ("AIRLOCK_ACTOR", "dr-nobody")]);
    assert!(claimed.starts_with("operator:alice@"), "{claimed}");
    assert!(claimed.ends_with(":dr-nobody"), "{claimed}");
    assert_ne!(claimed, "dr-nobody");
}
