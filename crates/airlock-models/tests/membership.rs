#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "test code: helpers outside `#[test]` fns panic to fail a test and print to its log"
)]
//! The membership-inference attack does what it claims: it finds the training rows of an
//! over-fitted model at a low false positive rate, finds nothing in a well-regularised one, and
//! is at chance when the membership labels carry no information.

use airlock_models::{
    AttackConfig, AttackTarget, GbdtParams, LogisticParams, MembershipInference, ModelsError,
    Params, Table, TrainConfig, TrainOutcome, membership_inference,
    membership_inference_for_experiment, train,
};
use airlock_types::ContentHash;

/// `n` rows: one weak signal `s`, four noise columns and a label drawn from
/// `sigmoid(s)`, so that labels are noisy and a model can only fit them by memorising rows.
fn table(n: usize, seed: u64) -> Table {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut cols: Vec<(String, Vec<String>)> = ["s", "f1", "f2", "f3", "f4", "y"]
        .iter()
        .map(|c| ((*c).to_owned(), Vec::with_capacity(n)))
        .collect();
    for _ in 0..n {
        let s = next() * 4.0 - 2.0;
        cols[0].1.push(format!("{s:.4}"));
        for c in &mut cols[1..5] {
            c.1.push(format!("{:.4}", next()));
        }
        let p = 1.0 / (1.0 + (-s).exp());
        cols[5]
            .1
            .push(if next() < p { "1" } else { "0" }.to_owned());
    }
    Table::from_columns(cols).unwrap()
}

fn fit(table: &Table, params: Params) -> TrainOutcome {
    train(
        table,
        &TrainConfig {
            dataset_hash: ContentHash::from_bytes([1; 32]),
            target: "y".into(),
            positive: "1".into(),
            features: ["s", "f1", "f2", "f3", "f4"]
                .iter()
                .map(|c| (*c).into())
                .collect(),
            params,
            seed: 3,
            test_fraction: 0.5,
        },
    )
    .unwrap()
}

fn overfitted() -> Params {
    Params::Gbdt(GbdtParams {
        n_estimators: 100,
        learning_rate: 0.3,
        max_leaves: 64,
        max_depth: 0,
        min_samples_leaf: 1,
        ..GbdtParams::default()
    })
}

fn attack(outcome: &TrainOutcome, table: &Table) -> MembershipInference {
    let config = AttackConfig {
        seed: 9,
        ..AttackConfig::default()
    };
    let mi =
        membership_inference_for_experiment(&outcome.model, &outcome.experiment, table, &config)
            .unwrap();
    println!(
        "{:?}: auc {:.3}, tpr@0.1% {:.3}, tpr@1% {:.3}, a {}",
        outcome.experiment.kind, mi.auc, mi.tpr_at_fpr_0_001, mi.tpr_at_fpr_0_01, mi.offline_a
    );
    mi
}

#[test]
fn an_overfitted_gbdt_gives_its_training_rows_away() {
    let t = table(1000, 5);
    let outcome = fit(&t, overfitted());
    let mi = attack(&outcome, &t);
    assert_eq!((mi.members, mi.non_members), (500, 500));
    assert_eq!(mi.reference_models, 4);
    assert!(mi.auc > 0.7, "{mi:?}");
    // With 500 non-members, FPR <= 0.1% means no false positive at all.
    assert!(mi.tpr_at_fpr_0_001 > 0.02, "{mi:?}");
    assert!(mi.tpr_at_fpr_0_01 > 0.05, "{mi:?}");
    // The same run again gives the same figures.
    assert_eq!(attack(&outcome, &t), mi);
    let json = serde_json::to_value(&mi).unwrap();
    assert!(json.get("tpr_at_fpr_0.001").is_some(), "{json}");
    assert!(json.get("tpr_at_fpr_0.01").is_some(), "{json}");
}

#[test]
fn a_regularised_logistic_model_leaks_nothing_measurable() {
    let t = table(1000, 5);
    let outcome = fit(
        &t,
        Params::Logistic(LogisticParams {
            l2: 10.0,
            ..LogisticParams::default()
        }),
    );
    let mi = attack(&outcome, &t);
    assert!((mi.auc - 0.5).abs() < 0.06, "{mi:?}");
    assert!(mi.tpr_at_fpr_0_01 < 0.05, "{mi:?}");
}

#[test]
fn shuffled_membership_labels_are_at_chance() {
    let t = table(1000, 5);
    let outcome = fit(&t, overfitted());
    // Claim a random half of all rows as members, whatever the model trained on.
    let mut rows: Vec<usize> = (0..t.rows()).collect();
    let mut state = 77u64;
    for i in (1..rows.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        rows.swap(i, (state >> 33) as usize % (i + 1));
    }
    let (members, non_members) = rows.split_at(500);
    let mi = membership_inference(
        &AttackTarget {
            model: &outcome.model,
            params: &outcome.experiment.params,
            table: &t,
            target: "y",
            positive: "1",
            members,
            non_members,
        },
        &AttackConfig::default(),
    )
    .unwrap();
    println!(
        "shuffled: auc {:.3}, tpr@0.1% {:.3}",
        mi.auc, mi.tpr_at_fpr_0_001
    );
    assert!((mi.auc - 0.5).abs() < 0.06, "{mi:?}");
}

#[test]
fn bad_attack_inputs_are_refused() {
    let t = table(200, 1);
    let outcome = fit(&t, overfitted());
    let target = |members: &'static [usize], non_members: &'static [usize]| {
        let o = &outcome;
        let t = &t;
        move |config: &AttackConfig| {
            membership_inference(
                &AttackTarget {
                    model: &o.model,
                    params: &o.experiment.params,
                    table: t,
                    target: "y",
                    positive: "1",
                    members,
                    non_members,
                },
                config,
            )
        }
    };
    let config = AttackConfig::default();
    assert!(matches!(
        target(&[0, 1, 2], &[2, 3])(&config),
        Err(ModelsError::InvalidParam {
            param: "non_members",
            ..
        })
    ));
    assert!(matches!(
        target(&[0, 1, 500], &[3])(&config),
        Err(ModelsError::InvalidParam {
            param: "members",
            ..
        })
    ));
    assert!(matches!(
        target(&[], &[3])(&config),
        Err(ModelsError::InvalidParam {
            param: "members",
            ..
        })
    ));
    // Another family's parameters cannot train the reference models.
    let logistic = Params::Logistic(LogisticParams::default());
    let err = membership_inference(
        &AttackTarget {
            model: &outcome.model,
            params: &logistic,
            table: &t,
            target: "y",
            positive: "1",
            members: &[0, 1],
            non_members: &[2, 3],
        },
        &config,
    );
    assert!(matches!(
        err,
        Err(ModelsError::InvalidParam {
            param: "params",
            ..
        })
    ));
    // A table that does not reproduce the experiment's split is refused.
    let other = table(300, 1);
    assert!(matches!(
        membership_inference_for_experiment(&outcome.model, &outcome.experiment, &other, &config),
        Err(ModelsError::InvalidParam { param: "table", .. }) | Err(ModelsError::OutOfRange { .. })
    ));
}
