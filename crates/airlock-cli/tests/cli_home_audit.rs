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
    // The top-level help says what Airlock is, not what the binary is called (issue 29).
    let help = ok(&airlock(&["--help"]));
    assert!(help.contains("AI on patient data"), "{help}");
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
    // Free-text notes pass the gate as a dataset of their own.
    assert!(
        out.contains("clinic-notes --safe-harbor--> clinic-notes-deid@1"),
        "{out}"
    );
    // An expert-determination release is refused until the expert signs, then runs.
    assert!(
        out.contains("adt-hl7 --expert-determination--> refused"),
        "{out}"
    );
    assert!(out.contains("only a deid-expert signs"), "{out}");
    assert!(
        out.contains("runs the gate under expert-determination -> succeeded"),
        "{out}"
    );
    // Monitoring: the report, the rules, and the on-call receiver checking signatures.
    assert!(out.contains("sets the model's alert rules -> 200"), "{out}");
    assert!(out.contains("the on-call receiver got"), "{out}");
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

/// The verifier key `airlock init` printed.
fn init_key(init_output: &str) -> String {
    init_output
        .lines()
        .find_map(|l| l.trim().strip_prefix("ledger verifier key:"))
        .map(|k| k.trim().to_string())
        .expect("init prints the ledger verifier key")
}

/// Issue 28, finding 6: `audit verify --home` trusted the key stored in the same directory, so
/// a wholly replaced home verified. The key now comes from outside (`--key`); a check without
/// it says it is not independent.
#[test]
fn finding_06_verify_takes_the_key_from_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let h = home.to_str().unwrap();
    let key = init_key(&ok(&airlock(&["init", "--home", h, "--name", "f6"])));
    let key_file = tmp.path().join("ledger.vkey");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let at_file = format!("@{}", key_file.display());

    let home_only = ok(&airlock(&["audit", "verify", "--home", h]));
    assert!(
        home_only.contains("ledger verified") && home_only.contains("NOT INDEPENDENT"),
        "{home_only}"
    );
    for k in [key.as_str(), at_file.as_str()] {
        let out = ok(&airlock(&["audit", "verify", "--home", h, "--key", k]));
        assert!(out.contains("ledger verified"), "{out}");
        assert!(!out.contains("NOT INDEPENDENT"), "{out}");
    }

    // The whole home replaced by another deployment of the same name (same log origin).
    let other = tmp.path().join("other");
    let other_key = init_key(&ok(&airlock(&[
        "init",
        "--home",
        other.to_str().unwrap(),
        "--name",
        "f6",
    ])));
    assert_ne!(other_key, key);
    std::fs::remove_dir_all(&home).unwrap();
    std::fs::rename(&other, &home).unwrap();

    // With its own key it verifies, and says that proves nothing about the original.
    let replaced = ok(&airlock(&["audit", "verify", "--home", h]));
    assert!(replaced.contains("NOT INDEPENDENT"), "{replaced}");
    // With the original key it fails and names both keys.
    let id = |k: &str| k.split('+').take(2).collect::<Vec<_>>().join("+");
    for k in [key.as_str(), at_file.as_str()] {
        let out = airlock(&["audit", "verify", "--home", h, "--key", k]);
        assert!(!out.status.success());
        let msg = common::text(&out);
        assert!(
            msg.contains("FAILED") && msg.contains("KEY MISMATCH"),
            "{msg}"
        );
        assert!(
            msg.contains(&id(&other_key)) && msg.contains(&id(&key)),
            "{msg} does not name both keys"
        );
    }
    // A malformed key is refused before anything is checked.
    let bad = airlock(&["audit", "verify", "--home", h, "--key", "not-a-key"]);
    assert!(!bad.status.success());
    assert!(
        common::text(&bad).contains("`--key`"),
        "{}",
        common::text(&bad)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Finding 6: a rollback to an older copy of the home passed unless someone kept a newer
/// checkpoint. With `ledger.checkpoint_export` set, every checkpoint is kept there, and verify
/// checks the log extends the latest.
#[test]
fn finding_06_a_rolled_back_home_fails_against_the_checkpoint_export() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let h = home.to_str().unwrap();
    let export = tmp.path().join("elsewhere/checkpoints");
    let key = init_key(&ok(&airlock(&["init", "--home", h, "--name", "f6x"])));
    let config = home.join("airlock.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("[ledger]\n"), "{text}");
    let with_export = text.replace(
        "[ledger]\n",
        &format!("[ledger]\ncheckpoint_export = \"{}\"\n", export.display()),
    );
    std::fs::write(&config, &with_export).unwrap();

    ok(&airlock(&["audit", "checkpoint", "--home", h]));
    let old = tmp.path().join("old-copy");
    copy_dir(&home, &old);
    ok(&airlock(&[
        "users",
        "add",
        "--home",
        h,
        "dr-later",
        "--role",
        "clinician",
    ]));
    ok(&airlock(&["audit", "checkpoint", "--home", h]));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&export), 0o700);
    let files: Vec<_> = std::fs::read_dir(&export)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(files.len() >= 2, "{files:?}");
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }

    let good = ok(&airlock(&["audit", "verify", "--home", h, "--key", &key]));
    assert!(good.contains("consistent with 1 kept checkpoint"), "{good}");

    // The older copy put back: it verifies by itself, but not against the export.
    std::fs::remove_dir_all(&home).unwrap();
    copy_dir(&old, &home);
    let out = airlock(&["audit", "verify", "--home", h, "--key", &key]);
    let msg = common::text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(
        msg.contains("FAILED") && msg.contains("rolled back"),
        "{msg}"
    );
    // Removing the export from the configuration does not help when the directory is named.
    std::fs::write(&config, &text).unwrap();
    ok(&airlock(&["audit", "verify", "--home", h, "--key", &key]));
    let out = airlock(&[
        "audit",
        "verify",
        "--home",
        h,
        "--key",
        &key,
        "--checkpoints",
        export.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        common::text(&out).contains("rolled back"),
        "{}",
        common::text(&out)
    );
    // A configured export that cannot be read fails the check rather than skipping it.
    std::fs::write(
        &config,
        text.replace(
            "[ledger]\n",
            "[ledger]\ncheckpoint_export = \"/nonexistent/airlock-export\"\n",
        ),
    )
    .unwrap();
    let out = airlock(&["audit", "verify", "--home", h, "--key", &key]);
    assert!(!out.status.success());
    assert!(
        common::text(&out).contains("cannot read the checkpoint export"),
        "{}",
        common::text(&out)
    );
}

/// Finding 6: another Airlock deployment witnesses the ledger (C2SP tlog-witness). It cosigns
/// only checkpoints that extend the last one it cosigned, so a rolled-back or forked ledger is
/// refused, and `verify` checks the cosignature with the witness's key from outside.
#[test]
fn finding_06_another_deployment_witnesses_the_ledger() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("log");
    let h = home.to_str().unwrap();
    let wit = tmp.path().join("wit");
    let w = wit.to_str().unwrap();
    let key = init_key(&ok(&airlock(&["init", "--home", h, "--name", "wlog"])));
    ok(&airlock(&["init", "--home", w, "--name", "wwit"]));
    // Before the witness trusts the log: unknown origin.
    let out = airlock(&["audit", "witness", "--home", h, "--witness-home", w]);
    assert!(!out.status.success());
    assert!(
        common::text(&out).contains("status 404"),
        "{}",
        common::text(&out)
    );
    let config = wit.join("airlock.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("\n[witness]\nlogs = [\"{key}\"]\n"));
    std::fs::write(&config, text).unwrap();
    // Standard output only: the log lines go to standard error.
    let witness_key = |home: &str| {
        let out = airlock(&["audit", "witness-key", "--home", home]);
        ok(&out);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let wkey = witness_key(w);
    assert!(wkey.starts_with("airlock.local/wwit/witness+"), "{wkey}");

    let out = ok(&airlock(&[
        "audit",
        "witness",
        "--home",
        h,
        "--witness-home",
        w,
    ]));
    assert!(out.contains("cosigned by the witness"), "{out}");
    let verify = |extra: &[&str]| {
        let mut args = vec!["audit", "verify", "--home", h, "--key", &key];
        args.extend_from_slice(extra);
        airlock(&args)
    };
    let v = ok(&verify(&["--witness-key", &wkey]));
    assert!(v.contains("witnessed: the checkpoint of size"), "{v}");
    let v = ok(&verify(&[]));
    assert!(v.contains("cosignatures are not"), "{v}");
    // Another witness's key finds no cosignature.
    let other = tmp.path().join("other");
    ok(&airlock(&[
        "init",
        "--home",
        other.to_str().unwrap(),
        "--name",
        "other",
    ]));
    let other_key = witness_key(other.to_str().unwrap());
    let out = verify(&["--witness-key", &other_key]);
    assert!(!out.status.success());
    assert!(
        common::text(&out).contains("no checkpoint next to the ledger"),
        "{}",
        common::text(&out)
    );

    // Copies kept: one to put back later (a rollback) and one to fork.
    let old = tmp.path().join("log-old");
    copy_dir(&home, &old);
    let fork = tmp.path().join("log-fork");
    copy_dir(&home, &fork);
    ok(&airlock(&[
        "users",
        "add",
        "--home",
        h,
        "dr-real",
        "--role",
        "clinician",
    ]));
    ok(&airlock(&[
        "audit",
        "witness",
        "--home",
        h,
        "--witness-home",
        w,
    ]));
    ok(&verify(&["--witness-key", &wkey, "--witness-home", w]));

    // The fork, signed by the same key, grows past the witnessed size: refused (422).
    let f = fork.to_str().unwrap();
    for user in ["dr-fake", "dr-fake-2"] {
        ok(&airlock(&[
            "users",
            "add",
            "--home",
            f,
            user,
            "--role",
            "clinician",
        ]));
    }
    let out = airlock(&["audit", "witness", "--home", f, "--witness-home", w]);
    assert!(!out.status.success());
    let msg = common::text(&out);
    assert!(msg.contains("REFUSED (status 422)"), "{msg}");

    // The older copy put back: it verifies by itself (its own witnessed checkpoint is older
    // too), but the witness knows better, both when asked to cosign and when verifying.
    std::fs::remove_dir_all(&home).unwrap();
    copy_dir(&old, &home);
    ok(&verify(&["--witness-key", &wkey]));
    let out = airlock(&["audit", "witness", "--home", h, "--witness-home", w]);
    assert!(!out.status.success());
    assert!(
        common::text(&out).contains("ROLLED BACK"),
        "{}",
        common::text(&out)
    );
    let out = verify(&["--witness-home", w]);
    assert!(!out.status.success());
    assert!(
        common::text(&out).contains("rolled back"),
        "{}",
        common::text(&out)
    );
}

/// `airlock serve` running in the background, stopped when dropped (a failed assertion too).
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serve `home` on a free loopback port; the server and its `https://` URL.
fn serve(home: &str) -> (Served, String) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["serve", "--home", home, "--listen", "127.0.0.1:0"])
        .env("AIRLOCK_PASSPHRASE", PASS)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let served = Served(child);
    let (tx, rx) = std::sync::mpsc::channel();
    // Read to the end: a closed pipe would fail the server's next print.
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.split_whitespace().find(|w| w.starts_with("https://")) {
                let _ = tx.send(url.to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the server says where it listens");
    (served, url)
}

/// Finding 6, over the network: the witness is another deployment's `airlock serve`, reached
/// at its URL, trusted by its certificate, and its cosignatures checked with its key given out
/// of band; a different key is refused before anything is sent.
#[test]
fn finding_06_a_remote_witness_cosigns_over_https() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("log");
    let h = home.to_str().unwrap();
    let wit = tmp.path().join("wit");
    let w = wit.to_str().unwrap();
    let other = tmp.path().join("other");
    let o = other.to_str().unwrap();
    let key = init_key(&ok(&airlock(&["init", "--home", h, "--name", "rlog"])));
    ok(&airlock(&["init", "--home", w, "--name", "rwit"]));
    ok(&airlock(&["init", "--home", o, "--name", "rother"]));
    let config = wit.join("airlock.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("\n[witness]\nlogs = [\"{key}\"]\n"));
    std::fs::write(&config, text).unwrap();
    // Standard output only: the log lines go to standard error.
    let stdout = |args: &[&str]| {
        let out = airlock(args);
        ok(&out);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let wkey = stdout(&["audit", "witness-key", "--home", w])
        .trim()
        .to_string();
    let other_key = stdout(&["audit", "witness-key", "--home", o])
        .trim()
        .to_string();
    // The witness's certificate, as its operator would hand it over.
    let ca = tmp.path().join("witness-ca.pem");
    std::fs::write(&ca, stdout(&["keys", "--home", w, "renew-tls"])).unwrap();
    let c = ca.to_str().unwrap();
    let (_server, url) = serve(w);

    let witness = |home: &str, wkey: &str| {
        airlock(&[
            "audit",
            "witness",
            "--home",
            home,
            "--witness-url",
            &url,
            "--witness-ca",
            c,
            "--witness-key",
            wkey,
        ])
    };
    let witnessed = home.join("ledger").join("witnessed");
    // A key other than the witness's: refused before the witness is asked, nothing kept.
    let out = witness(h, &other_key);
    assert!(!out.status.success());
    let msg = common::text(&out);
    assert!(msg.contains("than the `--witness-key` given"), "{msg}");
    assert!(!witnessed.exists(), "{msg}");
    // A log the witness does not know: its status, in the spec's words, not its body.
    let out = witness(o, &wkey);
    assert!(!out.status.success());
    let msg = common::text(&out);
    assert!(msg.contains("REFUSED (status 404)"), "{msg}");
    assert!(!msg.contains("unknown log origin"), "{msg}");

    let out = ok(&witness(h, &wkey));
    assert!(out.contains("cosigned by the witness"), "{out}");
    let verify = |wkey: &str| {
        airlock(&[
            "audit",
            "verify",
            "--home",
            h,
            "--key",
            &key,
            "--witness-key",
            wkey,
        ])
    };
    let v = ok(&verify(&wkey));
    assert!(v.contains("witnessed: the checkpoint of size"), "{v}");
    assert!(!verify(&other_key).status.success());

    // More entries, and the cosigned checkpoint kept here lost: the witness answers 409 with
    // the size it holds, and the second request proves consistency from there.
    ok(&airlock(&[
        "users",
        "add",
        "--home",
        h,
        "dr-remote",
        "--role",
        "clinician",
    ]));
    std::fs::remove_dir_all(&witnessed).unwrap();
    let out = ok(&witness(h, &wkey));
    assert!(out.contains("cosigned by the witness"), "{out}");
    // More entries again, from the size kept here this time.
    ok(&airlock(&[
        "users",
        "add",
        "--home",
        h,
        "dr-remote-2",
        "--role",
        "clinician",
    ]));
    ok(&witness(h, &wkey));
    ok(&verify(&wkey));
}
