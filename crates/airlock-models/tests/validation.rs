#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test and print to its log"
)]
//! Validation through the public API: a seeded, reproducible bootstrap whose intervals hold
//! their estimates, the report's field names, too-small groups, clear refusals of bad input
//! that never quote a value, and policy verdicts that name the rules they apply.

use airlock_models::{
    Attack, DEFAULT_POLICY_TOML, Estimate, Evidence, GbdtParams, GroupMetric, MembershipInference,
    ModelsError, Params, Policy, Record, Table, TrainConfig, ValidationConfig, ValidationReport,
    Value, evaluate, testing, train, validate,
};
use airlock_types::ContentHash;

/// Labels, calibrated scores, and a table with a `grp` attribute (a, b, c and a rare d) and a
/// two-valued `sex`.
fn data(n: usize, seed: u64) -> (Vec<bool>, Vec<f64>, Table) {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut y, mut p, mut g, mut s) = (vec![], vec![], vec![], vec![]);
    for i in 0..n {
        let z = (next() - 0.5) * 5.0;
        let score = 1.0 / (1.0 + (-z).exp());
        y.push(next() < score);
        p.push(score);
        g.push(["a", "b", "c"][i % 3].to_owned());
        s.push(if next() < 0.5 { "F" } else { "M" }.to_owned());
    }
    // One rare group, far below any minimum.
    for v in g.iter_mut().take(5) {
        *v = "d".to_owned();
    }
    let t = Table::from_columns(vec![("grp".into(), g), ("sex".into(), s)]).unwrap();
    (y, p, t)
}

fn config(seed: u64) -> ValidationConfig {
    ValidationConfig {
        threshold: 0.5,
        min_group_size: 50,
        resamples: 200,
        seed,
    }
}

fn run(n: usize, seed: u64) -> ValidationReport {
    let (y, p, t) = data(n, 1);
    let cols = [t.column("grp").unwrap(), t.column("sex").unwrap()];
    validate(&y, &p, &cols, &config(seed)).unwrap()
}

fn holds(e: &Estimate) -> bool {
    let [lo, hi] = e.interval.unwrap();
    lo <= e.value && e.value <= hi
}

#[test]
fn the_bootstrap_is_seeded_and_its_intervals_hold_the_estimates() {
    let a = run(900, 7);
    assert_eq!(a, run(900, 7));
    let b = run(900, 8);
    assert_eq!(a.metrics.auroc.value, b.metrics.auroc.value);
    assert_ne!(a.metrics.auroc.interval, b.metrics.auroc.interval);
    let m = &a.metrics;
    for e in [&m.auroc, &m.auprc, &m.brier, &m.log_loss] {
        assert_eq!(e.resamples, 200);
        assert!(holds(e), "{e:?}");
    }
    // ECE is an absolute value, biased upwards, and each resample adds its own noise: for a
    // calibrated model its percentile interval lies above the estimate (see the module doc).
    let [_, hi] = m.ece.interval.unwrap();
    assert!(m.ece.value <= hi, "{:?}", m.ece);
    let (slope, intercept) = (m.slope.as_ref().unwrap(), m.intercept.as_ref().unwrap());
    assert!(holds(slope) && holds(intercept));
    // Calibrated scores: slope near 1, intercept near 0, and the interval says so.
    let [lo, hi] = slope.interval.unwrap();
    assert!(lo < 1.0 && 1.0 < hi, "{slope:?}");
    for g in a.groups.iter().filter(|g| !g.too_small) {
        for metric in GroupMetric::ALL {
            let e = g.metric(metric).unwrap();
            if metric == GroupMetric::Ece {
                assert!(e.value <= e.interval.unwrap()[1]);
            } else {
                assert!(holds(e), "{} {} {metric}: {e:?}", g.attribute, g.value);
            }
        }
    }
    for d in &a.disparities {
        assert!(holds(d.equalized_odds_difference.as_ref().unwrap()));
        assert!(holds(d.demographic_parity_ratio.as_ref().unwrap()));
    }
}

#[test]
fn the_report_keeps_the_contracted_field_names_and_hides_small_groups() {
    let report = run(600, 1);
    let json = serde_json::to_value(&report).unwrap();
    for key in [
        "n",
        "positives",
        "auroc",
        "auprc",
        "brier",
        "log_loss",
        "ece",
        "slope",
        "intercept",
    ] {
        assert!(json["metrics"].get(key).is_some(), "metrics.{key}");
    }
    assert!(json["metrics"]["auroc"]["interval"].is_array());
    let group = &json["groups"][0];
    for key in [
        "attribute",
        "value",
        "n",
        "positives",
        "auroc",
        "tpr",
        "fpr",
        "ppv",
        "selection_rate",
        "ece",
    ] {
        assert!(group.get(key).is_some(), "groups[].{key}");
    }
    let disparity = &json["disparities"][0];
    assert!(disparity["difference"]["tpr"]["value"].is_number());
    assert!(disparity["ratio"]["selection_rate"]["value"].is_number());
    assert!(disparity["equalized_odds_difference"]["value"].is_number());
    assert!(disparity["demographic_parity_ratio"]["value"].is_number());
    assert!(json.get("membership_inference").is_some());

    // `d` has five rows: reported by name as too small, with no number, not even its size.
    let d = report
        .groups
        .iter()
        .find(|g| g.attribute == "grp" && g.value == "d")
        .unwrap();
    assert!(d.too_small);
    assert_eq!((d.n, d.positives), (None, None));
    assert!(GroupMetric::ALL.iter().all(|m| d.metric(*m).is_none()));
    let grp = &report.disparities[0];
    assert_eq!((grp.groups_measured, grp.groups_too_small), (3, 1));
    // A round trip through JSON gives the same report.
    let back: ValidationReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);
}

#[test]
fn bad_input_is_refused_by_field_never_by_value() {
    let (y, p, t) = data(300, 2);
    let grp = t.column("grp").unwrap();
    let cfg = config(0);
    let short = validate(&y, &p[..299], &[grp], &cfg).unwrap_err();
    assert_eq!(
        short,
        ModelsError::LengthMismatch {
            field: "scores".into(),
            expected: 300,
            found: 299
        }
    );
    let half = Table::from_columns(vec![("site".into(), vec!["x".to_owned(); 150])]).unwrap();
    assert!(matches!(
        validate(&y, &p, &[half.column("site").unwrap()], &cfg),
        Err(ModelsError::LengthMismatch { field, .. }) if field == "site"
    ));
    let one =
        Table::from_columns(vec![("ward".into(), vec!["secret-ward-7".to_owned(); 300])]).unwrap();
    let err = validate(&y, &p, &[one.column("ward").unwrap()], &cfg).unwrap_err();
    assert_eq!(
        err,
        ModelsError::SingleGroup {
            attribute: "ward".into()
        }
    );
    assert!(err.to_string().contains("`ward`"));
    assert!(!err.to_string().contains("secret"), "{err}");
    let mut nan = p.clone();
    nan[17] = f64::NAN;
    let err = validate(&y, &nan, &[grp], &cfg).unwrap_err();
    assert_eq!(
        err,
        ModelsError::InvalidScore {
            field: "scores",
            row: 17
        }
    );
    assert_eq!(
        err.to_string(),
        "`scores` row 17: not a probability in [0, 1]"
    );
    let mut big = p.clone();
    big[3] = 1.5;
    assert!(validate(&y, &big, &[grp], &cfg).is_err());
    assert!(matches!(
        validate(&vec![true; 300], &p, &[grp], &cfg),
        Err(ModelsError::SingleClass { .. })
    ));
    assert!(matches!(
        validate(&y, &p, &[grp, grp], &cfg),
        Err(ModelsError::DuplicateColumn { .. })
    ));
    let few = ValidationConfig {
        resamples: 199,
        ..cfg.clone()
    };
    assert!(matches!(
        validate(&y, &p, &[grp], &few),
        Err(ModelsError::InvalidParam {
            param: "resamples",
            ..
        })
    ));
    let off = ValidationConfig {
        threshold: f64::NAN,
        ..cfg
    };
    assert!(matches!(
        validate(&y, &p, &[grp], &off),
        Err(ModelsError::InvalidParam {
            param: "threshold",
            ..
        })
    ));
}

fn attack(tpr: f64) -> MembershipInference {
    MembershipInference {
        attack: Attack::RmiaOffline,
        auc: 0.51,
        tpr_at_fpr_0_001: tpr,
        tpr_at_fpr_0_01: 0.012,
        reference_models: 4,
        members: 1000,
        non_members: 1000,
        offline_a: 0.3,
        seed: 0,
    }
}

#[test]
fn policy_verdicts_name_every_failed_rule() {
    let mut report = run(900, 3);
    let policy = Policy::default();
    // The attack was not run: the membership rule cannot pass.
    let verdict = evaluate(&report, &policy);
    assert!(!verdict.passed);
    let rules: Vec<&str> = verdict.reasons.iter().map(|r| r.rule.as_str()).collect();
    assert_eq!(rules, ["max_membership_tpr_at_fpr_0_001"], "{verdict:?}");
    assert_eq!(verdict.reasons[0].observed, None);
    report.membership_inference = Some(attack(0.002));
    let verdict = evaluate(&report, &policy);
    assert!(verdict.passed, "{verdict:?}");
    report.membership_inference = Some(attack(0.05));
    assert!(!evaluate(&report, &policy).passed);
    report.membership_inference = Some(attack(0.002));

    // Tight rules, one overridden for `sex`, one for an attribute that was not measured.
    let strict = Policy::from_toml(
        r#"
        version = 3
        min_auroc = 0.99
        max_ece = 0.5
        min_group_size = 20
        [fairness]
        max_difference = { tpr = 0.0 }
        min_demographic_parity_ratio = 0.9999
        [attributes.sex]
        max_difference = { tpr = 1.0 }
        [attributes.race]
        min_ratio = { tpr = 0.8 }
        "#,
    )
    .unwrap();
    let verdict = evaluate(&report, &strict);
    assert!(!verdict.passed);
    let named: Vec<(String, Option<String>)> = verdict
        .reasons
        .iter()
        .map(|r| (r.rule.clone(), r.attribute.clone()))
        .collect();
    let want = |rule: &str, attr: Option<&str>| {
        assert!(
            named.contains(&(rule.to_owned(), attr.map(str::to_owned))),
            "{rule} {attr:?} missing from {named:?}"
        );
    };
    want("min_auroc", None);
    // The report measured groups down to 50 rows; the policy wants them down to 20.
    want("min_group_size", None);
    want("fairness.max_difference.tpr", Some("grp"));
    want("fairness.min_demographic_parity_ratio", Some("sex"));
    want("attributes.race", Some("race"));
    // `sex`'s own TPR rule allows any gap, so nothing is reported for it.
    assert!(
        !named
            .iter()
            .any(|(r, _)| r.contains("max_difference.tpr") && r.contains("sex"))
    );
    assert!(!named.iter().any(|(r, _)| r == "max_ece"));
    let text = verdict.reasons[0].to_string();
    assert!(text.starts_with("`min_auroc`: "), "{text}");
    // The verdict serialises with its reasons.
    let json = serde_json::to_value(&verdict).unwrap();
    assert_eq!(json["passed"], false);
    assert!(json["reasons"].as_array().unwrap().len() >= 5);
}

#[test]
fn interval_evidence_fails_a_disparity_only_when_the_interval_is_beyond_the_limit() {
    let mut report = run(900, 3);
    let gap = |lo: f64| Estimate {
        value: 0.2,
        interval: Some([lo, 0.4]),
        resamples: 200,
    };
    let mut policy = Policy::from_toml(
        "version = 1\nmin_group_size = 50\n[fairness]\nmax_difference = { tpr = 0.1 }\n",
    )
    .unwrap();
    report.disparities[0]
        .difference
        .insert(GroupMetric::Tpr, gap(0.05));
    let rules = |report: &ValidationReport, policy: &Policy| -> Vec<(String, Option<f64>)> {
        evaluate(report, policy)
            .reasons
            .into_iter()
            .filter(|r| r.attribute.as_deref() == Some("grp"))
            .map(|r| (r.rule, r.observed))
            .collect()
    };
    // The estimate is beyond the limit, the interval's lower end is not.
    assert_eq!(
        rules(&report, &policy),
        [("fairness.max_difference.tpr".to_owned(), Some(0.2))]
    );
    policy.disparity_evidence = Evidence::Interval;
    assert!(rules(&report, &policy).is_empty());
    // The whole interval beyond the limit fails, reporting the end it read.
    report.disparities[0]
        .difference
        .insert(GroupMetric::Tpr, gap(0.12));
    let verdict = evaluate(&report, &policy);
    let reason = verdict
        .reasons
        .iter()
        .find(|r| r.attribute.as_deref() == Some("grp"))
        .unwrap();
    assert_eq!(
        (reason.observed, reason.evidence),
        (Some(0.12), Evidence::Interval)
    );
    assert!(reason.to_string().contains("interval"), "{reason}");
}

#[test]
fn the_default_policy_ships_as_toml() {
    assert_eq!(
        Policy::from_toml(DEFAULT_POLICY_TOML).unwrap(),
        Policy::default()
    );
    let err = Policy::from_toml("version = 1\nmin_group_size = 5\nmax_eec = 0.1\n").unwrap_err();
    assert!(matches!(err, ModelsError::PolicySyntax { .. }));
    assert!(err.to_string().contains("max_eec"), "{err}");
}

#[test]
fn a_trained_model_validates_on_its_held_out_rows() {
    let table = testing::separable_table(1200, 4).unwrap();
    let outcome = train(
        &table,
        &TrainConfig {
            dataset_hash: ContentHash::from_bytes([2; 32]),
            target: "y".into(),
            positive: "yes".into(),
            features: vec!["x".into(), "c".into()],
            params: Params::Gbdt(GbdtParams {
                n_estimators: 20,
                ..GbdtParams::default()
            }),
            seed: 1,
            test_fraction: 0.3,
        },
    )
    .unwrap();
    let scores = outcome.model.predict_table(&table).unwrap();
    assert_eq!(scores.len(), 1200);
    // The table path scores as the record path does.
    for r in [0usize, 17, 999] {
        let x: f64 = table.column("x").unwrap().cells()[r].parse().unwrap();
        let c = table.column("c").unwrap().cells()[r].clone();
        let record = Record::from([
            ("x".to_owned(), Value::Number(x)),
            ("c".to_owned(), Value::Text(c)),
        ]);
        assert_eq!(outcome.model.predict(&record).unwrap(), scores[r]);
    }
    let held_out = &outcome.split.test;
    let labels: Vec<bool> = held_out
        .iter()
        .map(|&r| table.column("y").unwrap().cells()[r] == "yes")
        .collect();
    let s: Vec<f64> = held_out.iter().map(|&r| scores[r]).collect();
    let c: Vec<String> = held_out
        .iter()
        .map(|&r| table.column("c").unwrap().cells()[r].clone())
        .collect();
    let groups = Table::from_columns(vec![("c".into(), c)]).unwrap();
    let report = validate(
        &labels,
        &s,
        &[groups.column("c").unwrap()],
        &ValidationConfig {
            resamples: 200,
            ..ValidationConfig::default()
        },
    )
    .unwrap();
    // The same AUROC as the experiment's held-out metrics.
    assert!((report.metrics.auroc.value - outcome.experiment.metrics.auroc).abs() < 1e-12);
    assert!(report.metrics.auroc.value > 0.8);
}
