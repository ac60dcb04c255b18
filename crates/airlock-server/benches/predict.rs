//! Audited predictions over HTTPS on loopback, next to the same model called in process.
//!
//! `cargo bench -p airlock-server --bench predict`
//!
//! Builds a deployment in a temporary directory, trains a logistic regression on a synthetic
//! readmission-shaped table (8 numeric and 9 categorical features), takes it through the
//! registry (validated, approved by a clinical reviewer and the privacy officer, silent, canary,
//! production), and gives an EHR integration (a service identity with the clinician role) an
//! API token scoped to `predict`. Then:
//!
//! 1. in process: `LoadedModel::score` on the same record (validation, encoding, the model), no
//!    HTTP, no policy, no ledger: the baseline;
//! 2. closed loop: `C` connections sending `POST /v1/models/{name}/predict` as fast as replies
//!    come: the most the API sustains, every reply a durable ledger entry;
//! 3. open loop at `R` requests/s (the target rate): latency from each request's scheduled send
//!    time, p50/p99 against the 2 ms target;
//! 4. the same open loop with a second version in silent mode (two ledger entries per request).
//!
//! Every prediction must be 200 and leave its ledger entry (checked: entries appended equals
//! requests times versions), and the tile publisher, which runs in idle time, must have caught
//! up within 5 s of the last run (checked). `AIRLOCK_BENCH_CONNS` (16), `AIRLOCK_BENCH_SECS` (20)
//! and `AIRLOCK_BENCH_RATE` (5000) set `C`, the measured seconds and `R`; `AIRLOCK_BENCH_TRACE=DIR`
//! writes each run's requests (send time, latency) to `DIR/run-N.tsv`, which
//! `bench/slow_requests.py` lines up with a `perf` trace of the scheduler (its doc says how).
//!
//! Two floors are measured first, each for as long as a run: the disk's (back-to-back
//! `fdatasync`) and the CPU's (a thread spinning on each core, counting the times its core was
//! taken away). On the 2-core VM this was built on, the CPU floor shows a core gone for 3 to 6
//! ms about every 1.05 s (the VM's own agent, PID 1 at nice -10) and for about 1 ms every 0.5 s
//! (the kernel's DAMON thread); a request in flight then waits for it, so a run's p99 depends
//! on how many of those land in it. The default 20-second runs (100,000 requests at 5,000/s)
//! average them out; each run also shows the p99 of each 5-second slice, to show the spread.
//!
//! After each open loop it prints the server's ledger group commits meanwhile (from its
//! `airlock_ledger_commit_seconds` histogram): how many, their mean, and how many took over 2
//! and 5 ms. Each of those holds every request queued behind it.
//!
//! It also prints how idle CPUs wait (cpuidle's driver and, on a KVM guest, `haltpoll`'s
//! `guest_halt_poll_ns`) and, where they poll, the vCPU time polling took during the open loop.
//! This VM ships with 0: an idle vCPU halts at once, and the disk's completion interrupt then
//! waits for the hypervisor to resume it. With 200,000 (200 us), in 3 interleaved pairs of
//! 20 s runs, the storage floor's p50 went from 0.101-0.102 ms to 0.073-0.084 ms, the open
//! loop's p50 from 0.42-0.49 ms to 0.37-0.42 ms, its p99 from 2.61/1.92/1.18 ms to
//! 1.94/1.80/1.65 ms; the p99s overlap. The polling took 65-71 s of vCPU time in each run of
//! about 128 s (a quarter of both vCPUs), and 773 ms per second during a 4 s open loop.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests and benches fail by panicking; helpers outside #[test] are not covered by clippy.toml"
)]

mod common;

use std::path::Path;
use std::time::Instant;

use airlock_authz::{Action, Authorizer, Role};
use airlock_crypto::KdfParams;
use airlock_models::{FeatureSpec, LogisticParams, Params, Record, Table, TrainConfig, Value};
use airlock_registry::{ModelCard, ModelName, Package, Registry, State, TrainingData};
use airlock_server::{AppState, IdentityPolicy};
use airlock_store::{Home, InitOptions, Passphrase, Scope};
use airlock_types::{ActorId, Classification, ContentHash, Zone};
use common::{Outcome, Scenario, Target, env_or, report, run_open_loop, run_scenario};
use serde_json::json;

/// The reference task's numeric columns.
const NUMERIC: [&str; 8] = airlock_models::reference::READMISSION_NUMERIC;
const CATEGORICAL: [(&str, &[&str]); 9] = [
    (
        "age",
        &["[40-50)", "[50-60)", "[60-70)", "[70-80)", "[80-90)"],
    ),
    ("gender", &["Female", "Male"]),
    ("A1Cresult", &[">7", ">8", "None", "Norm"]),
    ("insulin", &["Down", "No", "Steady", "Up"]),
    ("change", &["Ch", "No"]),
    ("diabetesMed", &["No", "Yes"]),
    ("admission_type_id", &["1", "2", "3", "5", "6"]),
    ("discharge_disposition_id", &["1", "2", "3", "6", "22"]),
    ("admission_source_id", &["1", "4", "6", "7"]),
];
const MODEL: &str = "readmission-30d";

/// A deterministic readmission-shaped table.
fn table(rows: usize, seed: u64) -> Table {
    let mut s = seed;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) as f64 / (1u64 << 31) as f64
    };
    let mut cols: Vec<(String, Vec<String>)> = NUMERIC
        .iter()
        .map(|n| ((*n).to_string(), Vec::with_capacity(rows)))
        .chain(
            CATEGORICAL
                .iter()
                .map(|(n, _)| ((*n).to_string(), Vec::with_capacity(rows))),
        )
        .collect();
    let mut y = Vec::with_capacity(rows);
    for _ in 0..rows {
        let mut z = -2.0;
        for (i, col) in cols.iter_mut().enumerate() {
            if i < NUMERIC.len() {
                let v = (next() * 20.0).floor();
                z += v * 0.01 * (i as f64 - 3.0);
                col.1.push(format!("{v}"));
            } else {
                let cats = CATEGORICAL[i - NUMERIC.len()].1;
                let k = ((next() * cats.len() as f64) as usize).min(cats.len() - 1);
                z += k as f64 * 0.1;
                col.1.push(cats[k].to_string());
            }
        }
        y.push(
            if next() < 1.0 / (1.0 + (-z).exp()) {
                "<30"
            } else {
                "NO"
            }
            .to_string(),
        );
    }
    cols.push(("readmitted".into(), y));
    Table::from_columns(cols).unwrap()
}

fn record() -> Record {
    let mut r = Record::new();
    for (i, n) in NUMERIC.iter().enumerate() {
        r.insert((*n).to_string(), Value::Number(3.0 + i as f64));
    }
    for (n, cats) in CATEGORICAL {
        r.insert(n.to_string(), Value::Text(cats[0].to_string()));
    }
    r
}

fn as_actor(home: &Home, a: &str) -> Registry {
    // Straight to production: the bench measures serving, not the rollout's soak.
    Registry::new(&home.acting_as(ActorId::new(a).unwrap(), home.request_id(), Scope::all()))
        .with_rollout(airlock_store::RolloutConfig {
            max_canary_percent: 100.0,
            min_canary_minutes: 0,
            min_canary_predictions: 0,
            min_silent_minutes: 0,
            min_silent_predictions: 0,
        })
}

/// Train, register and take a version to `to` (silent or production). Returns its hash.
async fn deploy(home: &Home, seed: u64, to: State) -> String {
    let features: Vec<FeatureSpec> = NUMERIC
        .iter()
        .map(|n| FeatureSpec::Numeric((*n).into()))
        .chain(
            CATEGORICAL
                .iter()
                .map(|(n, _)| FeatureSpec::Categorical((*n).into())),
        )
        .collect();
    let outcome = airlock_models::train(
        &table(20_000, seed),
        &TrainConfig {
            dataset_hash: ContentHash::from_bytes([3; 32]),
            target: "readmitted".into(),
            positive: "<30".into(),
            features,
            params: Params::Logistic(LogisticParams::default()),
            seed,
            test_fraction: 0.2,
        },
    )
    .unwrap();
    let card = ModelCard::for_trained(
        &outcome,
        TrainingData {
            dataset: "bench@1".into(),
            dataset_hash: ContentHash::from_bytes([3; 32]),
            zone: Zone::Development,
            classification: Classification::Synthetic,
            rows: 20_000,
        },
        ActorId::new("dana").unwrap(),
        "benchmark",
        vec!["synthetic".into()],
    );
    let name = ModelName::new(MODEL).unwrap();
    let v = as_actor(home, "dana")
        .register(&name, &Package::from_trained(&outcome.model), &card)
        .await
        .unwrap();
    let h = v.hash.to_hex();
    // Validated on fresh rows of the same generator, with the training table for the attack.
    let held = table(5_000, seed + 1);
    let training = table(20_000, seed);
    let (report, _) = as_actor(home, "dana")
        .validate_on(
            &name,
            &h,
            airlock_registry::validation::ValidationData {
                dataset: "bench-holdout@1".into(),
                dataset_hash: ContentHash::from_bytes([4; 32]),
                table: &held,
                training: Some(&training),
                sensitive: vec![],
                target: None,
                threshold: 0.5,
                resamples: 200,
                held_out_split: false,
            },
            "bench",
        )
        .await
        .unwrap();
    assert!(report.body.passed, "{:?}", report.body.reasons);
    as_actor(home, "rita")
        .approve(&name, &h, "clinical-reviewer", "bench")
        .await
        .unwrap();
    as_actor(home, "pat")
        .approve(&name, &h, "privacy-officer", "bench")
        .await
        .unwrap();
    let mo = as_actor(home, "mo");
    mo.deploy(&name, &h, State::Silent, None, "bench")
        .await
        .unwrap();
    if to == State::Production {
        mo.deploy(&name, &h, State::Canary, Some(10_000), "bench")
            .await
            .unwrap();
        mo.promote(&name, "bench", 0).await.unwrap();
    }
    h
}

/// The in-process baseline: nanoseconds per call, and the p50/p99 of single timed calls.
fn in_process(state: &AppState, rt: &tokio::runtime::Handle) -> (f64, f64, f64) {
    let dep = rt.block_on(state.deployment(true)).unwrap();
    let m = dep.routes(MODEL).unwrap().production.clone().unwrap();
    let rec = record();
    for _ in 0..10_000 {
        std::hint::black_box(m.score(&rec).unwrap());
    }
    let n = 200_000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(m.score(std::hint::black_box(&rec)).unwrap());
    }
    let per_call_ns = t.elapsed().as_nanos() as f64 / n as f64;
    let mut single: Vec<u64> = (0..20_000)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(m.score(&rec).unwrap());
            t.elapsed().as_nanos() as u64
        })
        .collect();
    single.sort_unstable();
    let p = |q: f64| single[((q * single.len() as f64) as usize).min(single.len() - 1)] as f64;
    (per_call_ns, p(0.5), p(0.99))
}

/// The storage floor: one `fdatasync` after a small write on this disk, done as the ledger
/// does it (over zeros written ahead of the end), back to back for as long as a measured run
/// lasts, with nothing else running: what the disk alone costs, and how often it alone stalls.
struct SyncFloor {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    over_2ms: usize,
    count: usize,
}

fn fdatasync_floor(dir: &Path, secs: u64) -> SyncFloor {
    use std::os::unix::fs::FileExt;
    let path = dir.join("fdatasync-probe");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let zeros = vec![0u8; 1 << 20];
    for k in 0..64u64 {
        f.write_all_at(&zeros, k << 20).unwrap();
    }
    f.sync_all().unwrap();
    let start = Instant::now();
    let mut lat = Vec::new();
    let mut at = 0u64;
    while start.elapsed().as_secs() < secs && at + 300 < 64 << 20 {
        f.write_all_at(&[b'x'; 300], at).unwrap();
        at += 300;
        let t = Instant::now();
        f.sync_data().unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    let _ = std::fs::remove_file(&path);
    SyncFloor {
        p50_ms: lat[lat.len() / 2],
        p99_ms: lat[lat.len() * 99 / 100],
        max_ms: lat[lat.len() - 1],
        over_2ms: lat.iter().filter(|&&l| l > 2.0).count(),
        count: lat.len(),
    }
}

/// The CPU floor: one thread per core reading the clock in a loop for as long as a measured
/// run lasts, with nothing else of ours running. A gap between two readings over 1 ms is a
/// time the thread's core was taken away (by another process, a kernel thread or the
/// hypervisor): what this machine alone costs a request in flight, and how often.
struct CpuFloor {
    over_1ms: usize,
    over_2ms: usize,
    lost_ms: f64,
    max_ms: f64,
    /// Median time between successive gaps over 2 ms on any core (a period, if they have one).
    spacing_s: Option<f64>,
}

fn cpu_floor(cores: usize, secs: u64) -> CpuFloor {
    let spinners: Vec<_> = (0..cores.max(1))
        .map(|_| {
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut last = start;
                // (seconds after start, gap in ms)
                let mut gaps = Vec::new();
                while last.duration_since(start).as_secs() < secs {
                    let now = Instant::now();
                    let gap_ms = now.duration_since(last).as_secs_f64() * 1e3;
                    if gap_ms > 1.0 {
                        gaps.push((last.duration_since(start).as_secs_f64(), gap_ms));
                    }
                    last = now;
                }
                gaps
            })
        })
        .collect();
    let mut gaps: Vec<(f64, f64)> = spinners
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    gaps.sort_by(|a, b| a.0.total_cmp(&b.0));
    let long: Vec<f64> = gaps.iter().filter(|g| g.1 > 2.0).map(|g| g.0).collect();
    let mut spacing: Vec<f64> = long.windows(2).map(|w| w[1] - w[0]).collect();
    spacing.sort_by(f64::total_cmp);
    CpuFloor {
        over_1ms: gaps.len(),
        over_2ms: long.len(),
        lost_ms: gaps.iter().map(|g| g.1).sum(),
        max_ms: gaps.iter().map(|g| g.1).fold(0.0, f64::max),
        spacing_s: spacing.get(spacing.len() / 2).copied(),
    }
}

/// How this machine's idle CPUs wait for work, where Linux says: the cpuidle driver and, on a
/// KVM guest with the `haltpoll` driver, how long an idle vCPU polls before it halts. A halted
/// vCPU is resumed by the hypervisor for each interrupt, so with no polling every disk
/// completion and every wake-up of a thread on an idle vCPU waits for the host.
fn idle_policy() -> String {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_owned());
    let Ok(driver) = read("/sys/devices/system/cpu/cpuidle/current_driver") else {
        return "cpuidle: not reported".into();
    };
    match read("/sys/module/haltpoll/parameters/guest_halt_poll_ns").map(|ns| ns.parse::<u64>()) {
        Ok(Ok(0)) if driver == "haltpoll" => "cpuidle driver haltpoll, guest_halt_poll_ns 0: an idle vCPU halts at once, and each disk completion or thread wake-up on it waits for the hypervisor to run it again".into(),
        Ok(Ok(ns)) if driver == "haltpoll" => format!(
            "cpuidle driver haltpoll, guest_halt_poll_ns {ns}: an idle vCPU polls for up to {} us before it halts",
            ns / 1000
        ),
        _ => format!("cpuidle driver {driver}"),
    }
}

/// Microseconds all CPUs have spent in cpuidle's polling state so far (0 where it has none).
fn idle_poll_us() -> u64 {
    let Ok(cpus) = std::fs::read_dir("/sys/devices/system/cpu") else {
        return 0;
    };
    let mut total = 0;
    for cpu in cpus.flatten() {
        let is_cpu = cpu
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix("cpu"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !is_cpu {
            continue;
        }
        let Ok(states) = std::fs::read_dir(cpu.path().join("cpuidle")) else {
            continue;
        };
        for state in states.flatten() {
            let name = std::fs::read_to_string(state.path().join("name")).unwrap_or_default();
            if name.trim() == "POLL" {
                total += std::fs::read_to_string(state.path().join("time"))
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total
}

/// The server's ledger group commits between two snapshots of its histogram (warm-up
/// included): how many, their mean, and how many took over 2 and 5 ms. A commit over 2 ms holds
/// every request queued behind it past the target.
fn print_commits(before: &airlock_server::Histogram, after: &airlock_server::Histogram) {
    let n = after.count() - before.count();
    let over = |ms: f64| after.over(ms / 1e3).unwrap_or(0) - before.over(ms / 1e3).unwrap_or(0);
    println!(
        "                         ledger group commits meanwhile: {n}, mean {:.3} ms; {} over 2 ms, {} over 5 ms",
        (after.sum_secs() - before.sum_secs()) * 1e3 / n.max(1) as f64,
        over(2.0),
        over(5.0)
    );
}

fn main() {
    common::init_tracing();
    let conns = usize::try_from(env_or("AIRLOCK_BENCH_CONNS", 16).max(1)).unwrap();
    let secs = env_or("AIRLOCK_BENCH_SECS", 20).max(1);
    let rate = env_or("AIRLOCK_BENCH_RATE", 5000).max(1) as f64;
    let (rt, cores) = common::runtime();
    let tmp = tempfile::tempdir().unwrap();
    let (state, target, stop, server, bearer) = rt.block_on(setup(tmp.path()));
    let (per_call_ns, p50_ns, p99_ns) = in_process(&state, rt.handle());
    let floor = fdatasync_floor(tmp.path(), secs);
    let sync_p99 = floor.p99_ms;
    let cpu = cpu_floor(cores, secs);
    rt.block_on(async {
        println!(
            "airlock-server audited prediction benchmark: HTTPS (rustls, TLS 1.3) on loopback, HTTP/1.1 keep-alive"
        );
        println!(
            "model: logistic regression, 17 features (8 numeric, 9 categorical; 43 encoded inputs); caller: an EHR service token scoped to predict"
        );
        println!(
            "note: client and server share this machine's {cores} core(s); every prediction is an fsynced ledger entry (group commit)"
        );
        println!();
        println!(
            "in-process LoadedModel::score (validate + encode + model; no HTTP, policy or ledger): {:.0} ns/call = {:.0} calls/s; single calls p50 {:.2} us, p99 {:.2} us",
            per_call_ns,
            1e9 / per_call_ns,
            p50_ns / 1000.0,
            p99_ns / 1000.0
        );
        println!(
            "storage floor: one fdatasync after a 300-byte write over preallocated zeros, back to back for {secs} s: p50 {:.3} ms, p99 {:.3} ms, max {:.2} ms; {} of {} took over 2 ms",
            floor.p50_ms, floor.p99_ms, floor.max_ms, floor.over_2ms, floor.count
        );
        println!(
            "idle CPUs: {}",
            idle_policy()
        );
        println!(
            "CPU floor: a thread spinning on each of the {cores} cores for {secs} s lost its core {} times for over 1 ms ({:.0} ms in all, max {:.2} ms); {} times for over 2 ms{}",
            cpu.over_1ms,
            cpu.lost_ms,
            cpu.max_ms,
            cpu.over_2ms,
            cpu.spacing_s
                .map(|s| format!(", a median {s:.2} s apart"))
                .unwrap_or_default()
        );
        let sc = Scenario {
            name: "POST predict",
            method: "POST",
            path: "/v1/models/readmission-30d/predict",
            bearer: Some(bearer),
            body: Some(json!({"patient_mrn": "MRN-0042", "features": serde_json::to_value(record()).unwrap()})),
            purpose: Some("treatment"),
        };
        // The transport floor: the same open loop on `GET /healthz` (TLS, HTTP, the request
        // middleware; no authentication, policy, model or ledger).
        let health = Scenario {
            name: "GET /healthz",
            method: "GET",
            path: "/healthz",
            bearer: None,
            body: None,
            purpose: None,
        };
        let floor = run_open_loop(&target, &health, conns, rate, secs).await;
        report(&format!("healthz at {rate:.0}/s"), &floor);
        // The target rate next, on a quiet machine (a saturating run leaves the disk with
        // writeback that would land in the next run's tail).
        let (polled_us, began) = (idle_poll_us(), Instant::now());
        let commits = state.metrics().commits().unwrap();
        let open = run_open_loop(&target, &sc, conns, rate, secs).await;
        report(&format!("open loop at {rate:.0}/s"), &open);
        print_commits(&commits, &state.metrics().commits().unwrap());
        let polled_us = idle_poll_us().saturating_sub(polled_us);
        if polled_us > 0 {
            println!(
                "                         idle CPUs polled {:.0} ms per second meanwhile (the cost of halt polling)",
                polled_us as f64 / 1e3 / began.elapsed().as_secs_f64()
            );
        }
        let closed = run_scenario(&target, &sc, conns, secs).await;
        report(&format!("closed loop, {conns} conns"), &closed);
        // The tile publisher runs in idle time: how far behind saturation left it.
        println!(
            "                         tile publisher (idle-time thread) behind by {} entries at the end (the committer takes over past {})",
            state.home().ledger().unpublished(),
            airlock_ledger::MAX_DEFERRED
        );
        // A second version in silent mode: every request now scores two models and writes two
        // entries.
        deploy(state.home(), 2, State::Silent).await;
        state.deployment(true).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let commits = state.metrics().commits().unwrap();
        let silent = run_open_loop(&target, &sc, conns, rate, secs).await;
        report(&format!("+1 silent at {rate:.0}/s"), &silent);
        print_commits(&commits, &state.metrics().commits().unwrap());
        // The server's own view (the request middleware's histogram): time inside the server,
        // without the client or the TLS records on the wire.
        for line in state.metrics().render().lines() {
            if line.contains("predict") && line.contains("_bucket") && line.contains("status=\"200\"") {
                println!("server-side {line}");
            }
        }
        println!();
        let ratio = |o: &Outcome, name: &str| {
            println!(
                "{name}: throughput {:.4} of in-process ({:.0} vs {:.0} calls/s); p50 latency {:.0}x, p99 {:.0}x the in-process single call",
                o.throughput() / (1e9 / per_call_ns),
                o.throughput(),
                1e9 / per_call_ns,
                o.percentile_ms(0.5) * 1e6 / p50_ns,
                o.percentile_ms(0.99) * 1e6 / p99_ns,
            );
        };
        println!(
            "open loop at {rate:.0}/s, predict vs healthz (the cost of authentication, policy, model and a durable ledger entry over the bare transport): p50 +{:.2} ms, p99 +{:.2} ms",
            open.percentile_ms(0.5) - floor.percentile_ms(0.5),
            open.percentile_ms(0.99) - floor.percentile_ms(0.99)
        );
        ratio(&closed, "governance cost, closed loop");
        ratio(&open, "governance cost, open loop");
        let target_met = open.percentile_ms(0.99) < 2.0 && open.throughput() >= rate * 0.98;
        println!(
            "target p99 < 2 ms at {rate:.0} req/s: {} (p99 {:.2} ms at {:.0} req/s over {secs} s achieved; the disk's own fdatasync p99 is {sync_p99:.2} ms, and this machine took a core away {} times for over 2 ms in as long)",
            if target_met { "MET" } else { "NOT MET" },
            open.percentile_ms(0.99),
            open.throughput(),
            cpu.over_2ms
        );
        let mut bad = Vec::new();
        for (name, o, per) in [("closed", &closed, 1u64), ("open", &open, 1), ("silent", &silent, 2)] {
            if o.failures > 0 {
                bad.push(format!("{name}: {} failures", o.failures));
            }
            // Every 200 reply of the run (warm-up included) left `per` entries, and nothing else
            // wrote to the ledger meanwhile.
            let written = o.ledger_end - o.ledger_start;
            if written != o.ok_total as u64 * per {
                bad.push(format!(
                    "{name}: {written} ledger entries for {} predictions x {per}",
                    o.ok_total
                ));
            }
        }
        println!(
            "ledger: every prediction's entries durable before its reply ({} predictions, {} entries in the three runs)",
            closed.ok_total + open.ok_total + silent.ok_total,
            (closed.ledger_end - closed.ledger_start)
                + (open.ledger_end - open.ledger_start)
                + (silent.ledger_end - silent.ledger_start)
        );
        // The idle-time publisher catches up once the load stops.
        let ledger = state.home().ledger();
        let caught_up = Instant::now();
        while ledger.unpublished() >= airlock_ledger::tiles::TILE_WIDTH
            && caught_up.elapsed().as_secs() < 5
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        println!(
            "tile publisher: caught up to {} unpublished entries (under one tile) {:.0} ms after the last run",
            ledger.unpublished(),
            caught_up.elapsed().as_secs_f64() * 1e3
        );
        if ledger.unpublished() >= airlock_ledger::tiles::TILE_WIDTH {
            bad.push(format!("tile publisher: {} entries unpublished 5 s after the load", ledger.unpublished()));
        }
        let _ = stop.send(());
        let _ = server.await;
        if !bad.is_empty() {
            panic!("{}", bad.join("; "));
        }
    });
    drop(tmp);
}

type Setup = (
    AppState,
    Target,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
    String,
);

async fn setup(dir: &Path) -> Setup {
    let home = Home::init(
        &dir.join("home"),
        &Passphrase::new("bench passphrase".into()),
        &InitOptions {
            name: "bench".into(),
            kdf: KdfParams::danger_fast_for_tests(),
            database_url: None,
        },
        ActorId::new("operator").unwrap(),
    )
    .await
    .unwrap();
    deploy(&home, 1, State::Production).await;
    let state = AppState::new(home, Authorizer::new().unwrap(), IdentityPolicy::default()).unwrap();
    let op = ActorId::new("operator").unwrap();
    let svc = ActorId::new("ehr-integration").unwrap();
    state
        .identities()
        .add_service(&op, &svc, &[Role::Clinician])
        .await
        .unwrap();
    let bearer = state
        .identities()
        .issue_token(&svc, &[Action::Predict], 30)
        .await
        .unwrap()
        .bearer();
    let common::Running {
        target,
        stop,
        server,
    } = common::serve(state.clone()).await;
    (state, target, stop, server, bearer)
}
