//! How long does one authorization decision take?
//!
//! Criterion times `decide` for a typical allowed request (a data scientist downloading a
//! de-identified dataset in development) and a typical denied one (the same person asking for
//! PHI in the clinical zone), both evaluated by Cedar every time (`decide_uncached`, the
//! engine) and answered from the memo of decisions already taken (`decide`, what the server
//! calls: an integration asks the same question again and again). A manual loop of 100,000
//! decisions then prints p50 and p99 of each.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "a benchmark binary: a broken setup stops it at once, and it prints its results"
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
    group.bench_function("allowed, evaluated", |b| {
        b.iter(|| authz.decide_uncached(black_box(&allowed)))
    });
    group.bench_function("denied, evaluated", |b| {
        b.iter(|| authz.decide_uncached(black_box(&denied)))
    });
    group.bench_function("allowed, remembered", |b| {
        b.iter(|| authz.decide(black_box(&allowed)))
    });
    group.bench_function("denied, remembered", |b| {
        b.iter(|| authz.decide(black_box(&denied)))
    });
    group.finish();

    // Percentiles, which criterion does not report: 100k decisions, alternating the two.
    let percentiles = |name: &str, decide: &dyn Fn(&Request<'_>) -> bool| {
        let n = 100_000;
        let mut samples: Vec<Duration> = Vec::with_capacity(n);
        for i in 0..n {
            let req = if i % 2 == 0 { &allowed } else { &denied };
            let start = Instant::now();
            black_box(decide(black_box(req)));
            samples.push(start.elapsed());
        }
        samples.sort();
        let pct = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
        println!(
            "authorization decision, {name}: p50 {:.2} µs p99 {:.2} µs ({n} decisions)",
            pct(50).as_secs_f64() * 1e6,
            pct(99).as_secs_f64() * 1e6
        );
        pct(50)
    };
    let evaluated = percentiles("evaluated by Cedar", &|r| {
        authz.decide_uncached(r).allowed()
    });
    let remembered = percentiles("remembered", &|r| authz.decide(r).allowed());
    println!(
        "the memo answers {:.0}x faster than evaluating (p50)",
        evaluated.as_secs_f64() / remembered.as_secs_f64().max(1e-9)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
