//! How long does one authorization decision take?
//!
//! Criterion times `decide` for a typical allowed request (a data scientist downloading a
//! de-identified dataset in development) and a typical denied one (the same person asking for
//! PHI in the clinical zone). A manual loop of 100,000 decisions then prints p50 and p99.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use airlock_authz::{Action, Authorizer, Principal, Request, Resource, Role};
use airlock_types::{ActorId, Classification, Purpose, Zone};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let authz = Authorizer::new().unwrap();
    let alice = Principal::user(ActorId::new("alice").unwrap(), [Role::DataScientist]);
    let deidentified = Resource::Dataset {
        name: "sepsis-cohort-2024".to_owned(),
        zone: Zone::Development,
        classification: Classification::Deidentified,
    };
    let phi = Resource::Dataset {
        name: "sepsis-cohort-2024".to_owned(),
        zone: Zone::Clinical,
        classification: Classification::Phi,
    };
    let allowed = Request {
        principal: &alice,
        action: Action::DownloadDataset,
        resource: &deidentified,
        purpose: Some(Purpose::Research),
        break_glass: false,
        mfa: true,
    };
    let denied = Request {
        resource: &phi,
        ..allowed
    };
    assert!(authz.decide(&allowed).allowed());
    assert!(!authz.decide(&denied).allowed());

    let mut group = c.benchmark_group("decide");
    group.bench_function("allowed", |b| b.iter(|| authz.decide(black_box(&allowed))));
    group.bench_function("denied", |b| b.iter(|| authz.decide(black_box(&denied))));
    group.finish();

    // Percentiles, which criterion does not report: 100k decisions, alternating the two.
    let n = 100_000;
    let mut samples: Vec<Duration> = Vec::with_capacity(n);
    for i in 0..n {
        let req = if i % 2 == 0 { &allowed } else { &denied };
        let start = Instant::now();
        black_box(authz.decide(black_box(req)));
        samples.push(start.elapsed());
    }
    samples.sort();
    let pct = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
    println!(
        "authorization decision p50 {:.1} µs p99 {:.1} µs ({n} decisions)",
        pct(50).as_secs_f64() * 1e6,
        pct(99).as_secs_f64() * 1e6
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
