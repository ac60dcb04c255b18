//! The load harness shared by the API benchmarks: keep-alive TLS connections driving one
//! request shape, closed loop (as fast as replies come) or open loop (at a fixed rate, latency
//! measured from each request's scheduled time, so a stalled server cannot hide its queue).
//!
//! The open loop's schedule is kept by a pacer thread sleeping with the OS's high-resolution
//! timer (tokio's timer wheel rounds every deadline up to the next millisecond, which alone
//! added about a millisecond to every measured latency); each scheduled request goes to
//! whichever connection is idle, as an integration engine's connection pool does. How late
//! the pacer itself ran is measured and printed, so the client's own error is on the page.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the shared helpers"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_authz::Role;
use airlock_crypto::Secret;
use airlock_server::AppState;
use airlock_server::client::Client;
use airlock_service::totp;
use airlock_types::ActorId;
use serde_json::{Value, json};

pub const PASSWORD: &str = "a long enough passphrase 1";
pub const WARM_UP: Duration = Duration::from_secs(1);
/// How many non-200 replies (or transport errors) each scenario prints.
pub const SHOWN_FAILURES: usize = 5;

pub fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a positive integer, not {v:?}")),
        Err(_) => default,
    }
}

/// One request shape, sent again and again on every connection.
pub struct Scenario {
    pub name: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub bearer: Option<String>,
    pub body: Option<Value>,
    /// The purpose-of-use header, if any.
    pub purpose: Option<&'static str>,
}

/// What one scenario measured.
pub struct Outcome {
    pub requests: usize,
    pub elapsed: Duration,
    /// Sorted, in microseconds.
    pub latencies_us: Vec<u64>,
    pub failures: usize,
    pub shown: Vec<String>,
    pub ledger_before: u64,
    pub ledger_after: u64,
    /// 200 replies over the whole run, warm-up included.
    pub ok_total: usize,
    /// Ledger size before the first request and after the last reply.
    pub ledger_start: u64,
    pub ledger_end: u64,
    /// Open loop: how late the pacer handed out each measured request, sorted, microseconds.
    pub pacer_late_us: Vec<u64>,
    /// p99 latency (ms) of the requests sent in each whole [`SLICE`] of the measured window:
    /// how much the tail moves between shorter windows of the same run.
    pub slice_p99_ms: Vec<f64>,
}

/// The length of the slices whose p99s [`report`] shows beside the whole run's.
pub const SLICE: Duration = Duration::from_secs(5);

/// p99 (ms) of the requests in each whole `slice` of a trace of (send time, latency) in
/// microseconds, sorted by send time; a slice with no requests is skipped.
fn slice_p99s(trace: &[(u64, u64)], window: Duration, slice: Duration) -> Vec<f64> {
    let slice_us = u64::try_from(slice.as_micros()).unwrap_or(u64::MAX).max(1);
    let whole = u64::try_from(window.as_micros()).unwrap_or(u64::MAX) / slice_us;
    trace
        .chunk_by(|a, b| a.0 / slice_us == b.0 / slice_us)
        .filter(|c| c[0].0 / slice_us < whole)
        .map(|c| {
            let mut lat: Vec<u64> = c.iter().map(|&(_, l)| l).collect();
            lat.sort_unstable();
            percentile_us(&lat, 0.99)
        })
        .collect()
}

impl Outcome {
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// Nearest-rank percentile, in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        percentile_us(&self.latencies_us, p)
    }

    pub fn max_ms(&self) -> f64 {
        self.latencies_us
            .last()
            .map_or(f64::NAN, |&v| v as f64 / 1000.0)
    }

    /// Nearest-rank percentile of the pacer's lateness, in milliseconds (`NaN` for a closed loop).
    pub fn pacer_late_ms(&self, p: f64) -> f64 {
        percentile_us(&self.pacer_late_us, p)
    }

    pub fn appended(&self) -> u64 {
        self.ledger_after.saturating_sub(self.ledger_before)
    }
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
fn percentile_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

/// What one connection saw during the measured window.
#[derive(Default)]
pub struct ConnResult {
    pub latencies_us: Vec<u64>,
    pub failures: usize,
    pub shown: Vec<String>,
    pub last_finish: Option<Instant>,
    pub ok_total: usize,
    pub trace: Vec<(u64, u64)>,
}

pub struct Target {
    pub addr: SocketAddr,
    pub tls: Arc<rustls::ClientConfig>,
    pub state: AppState,
}

/// Closed loop: every connection sends its next request as soon as the previous reply arrives.
pub async fn run_scenario(target: &Target, sc: &Scenario, conns: usize, secs: u64) -> Outcome {
    run(target, sc, conns, None, secs).await
}

/// Open loop: a pacer thread schedules `rate` requests per second and hands each to the next
/// idle connection; each latency runs from the request's scheduled time, so time a request
/// spends waiting for a free connection behind slow ones counts (no coordinated omission).
pub async fn run_open_loop(
    target: &Target,
    sc: &Scenario,
    conns: usize,
    rate: f64,
    secs: u64,
) -> Outcome {
    run(target, sc, conns, Some(rate), secs).await
}

async fn run(
    target: &Target,
    sc: &Scenario,
    conns: usize,
    rate: Option<f64>,
    secs: u64,
) -> Outcome {
    let sc = Arc::new((
        sc.method,
        sc.path,
        sc.bearer.as_ref().map(|t| format!("Bearer {t}")),
        // Serialised once: the client's work per request is then what any integration's is.
        sc.body
            .as_ref()
            .map(|v| hyper::body::Bytes::from(serde_json::to_vec(v).expect("body"))),
        sc.purpose,
    ));
    let mut clients = Vec::with_capacity(conns);
    for _ in 0..conns {
        clients.push(
            Client::connect(target.addr, "localhost", Arc::clone(&target.tls))
                .await
                .expect("connect"),
        );
    }
    let ledger_start = target.state.home().ledger().size().expect("ledger size");
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + WARM_UP;
    let measure_until = measure_from + Duration::from_secs(secs);
    let pacer = rate.map(|r| {
        Pacer::start(
            start,
            Duration::from_secs_f64(1.0 / r),
            measure_from,
            measure_until,
        )
    });
    let schedule = pacer.as_ref().map(|p| Arc::clone(&p.schedule));
    let mut tasks = Vec::with_capacity(conns);
    for mut client in clients {
        let sc = Arc::clone(&sc);
        let schedule = schedule.clone();
        tasks.push(tokio::spawn(async move {
            let (method, path, auth, body, purpose) = &*sc;
            let mut headers: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| vec![("authorization", a)])
                .unwrap_or_default();
            if let Some(p) = purpose {
                headers.push(("x-purpose-of-use", p));
            }
            let mut out = ConnResult::default();
            loop {
                // Open loop: the scheduled time; closed loop: now.
                let sent = match &schedule {
                    Some(schedule) => {
                        let next = schedule.lock().await.recv().await;
                        match next {
                            Some(at) => at,
                            None => break,
                        }
                    }
                    None => Instant::now(),
                };
                if sent >= measure_until {
                    break;
                }
                let reply = client
                    .send_bytes(method, path, &headers, body.clone())
                    .await;
                let done = Instant::now();
                let ok = matches!(&reply, Ok(r) if r.status == 200);
                if ok {
                    out.ok_total += 1;
                }
                // Warm-up: failures still count, latencies do not.
                if sent < measure_from && ok {
                    continue;
                }
                match reply {
                    Ok(r) if r.status == 200 => {
                        out.latencies_us.push(
                            u64::try_from(done.duration_since(sent).as_micros())
                                .unwrap_or(u64::MAX),
                        );
                        out.trace.push((
                            sent.saturating_duration_since(measure_from).as_micros() as u64,
                            done.duration_since(sent).as_micros() as u64,
                        ));
                        out.last_finish = Some(done);
                    }
                    Ok(r) => {
                        out.failures += 1;
                        if out.shown.len() < SHOWN_FAILURES {
                            let body = String::from_utf8_lossy(&r.body);
                            out.shown
                                .push(format!("HTTP {}: {}", r.status, truncate(&body, 200)));
                        }
                    }
                    Err(e) => {
                        out.failures += 1;
                        if out.shown.len() < SHOWN_FAILURES {
                            out.shown.push(format!("transport: {e}"));
                        }
                        // The connection is likely gone; stop this one rather than spin.
                        break;
                    }
                }
            }
            out
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let ledger_before = target.state.home().ledger().size().expect("ledger size");
    let mut latencies_us = Vec::new();
    let mut trace: Vec<(u64, u64)> = Vec::new();
    let mut failures = 0;
    let mut shown = Vec::new();
    let mut last = measure_from;
    let mut ok_total = 0;
    for t in tasks {
        let r = t.await.expect("client task");
        ok_total += r.ok_total;
        latencies_us.extend(r.latencies_us);
        trace.extend(r.trace);
        failures += r.failures;
        for s in r.shown {
            if shown.len() < SHOWN_FAILURES {
                shown.push(s);
            }
        }
        if let Some(f) = r.last_finish {
            last = last.max(f);
        }
    }
    let ledger_after = target.state.home().ledger().size().expect("ledger size");
    trace.sort_unstable();
    // `AIRLOCK_BENCH_TRACE=DIR`: every measured request's send time (µs after the measured
    // window opened) and latency (µs), one run per file, to see whether slow replies come
    // alone or in bursts, and at what period (a periodic burst has a periodic cause). A header
    // gives this process's id and when the window opened on `CLOCK_MONOTONIC`, the clock of
    // `perf record -k mono`, so `bench/slow_requests.py` can line the requests up with what
    // else ran on the machine.
    if let Ok(dir) = std::env::var("AIRLOCK_BENCH_TRACE") {
        static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let mono = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let opened = Duration::new(
            u64::try_from(mono.tv_sec).unwrap_or(0),
            u32::try_from(mono.tv_nsec).unwrap_or(0),
        )
        .saturating_sub(measure_from.elapsed());
        let mut text = format!(
            "# pid {} window_opened_monotonic_s {:.6}\n",
            std::process::id(),
            opened.as_secs_f64()
        );
        text.extend(trace.iter().map(|(t, l)| format!("{t}\t{l}\n")));
        let path = std::path::Path::new(&dir).join(format!("run-{n}.tsv"));
        std::fs::write(&path, text).expect("trace file");
    }
    latencies_us.sort_unstable();
    let slice_p99_ms = slice_p99s(&trace, Duration::from_secs(secs), SLICE);
    let pacer_late_us = pacer.map(Pacer::finish).unwrap_or_default();
    Outcome {
        requests: latencies_us.len(),
        elapsed: last
            .duration_since(measure_from)
            .max(Duration::from_millis(1)),
        latencies_us,
        failures,
        shown,
        ledger_before,
        ledger_after,
        ok_total,
        ledger_start,
        ledger_end: ledger_after,
        pacer_late_us,
        slice_p99_ms,
    }
}

/// The open loop's clock: a thread that sleeps to each scheduled instant with the OS's
/// high-resolution timer and queues it for the next idle connection.
struct Pacer {
    schedule: Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Instant>>>,
    thread: std::thread::JoinHandle<Vec<u64>>,
}

impl Pacer {
    fn start(start: Instant, period: Duration, measure_from: Instant, until: Instant) -> Pacer {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("bench-pacer".into())
            .spawn(move || {
                let mut late_us = Vec::new();
                let mut k: u32 = 0;
                loop {
                    let at = start + period * k;
                    k += 1;
                    if at >= until {
                        break;
                    }
                    let now = Instant::now();
                    if at > now {
                        std::thread::sleep(at - now);
                    }
                    if at >= measure_from {
                        late_us.push(
                            u64::try_from(Instant::now().duration_since(at).as_micros())
                                .unwrap_or(u64::MAX),
                        );
                    }
                    if tx.send(at).is_err() {
                        break;
                    }
                }
                late_us.sort_unstable();
                late_us
            })
            .expect("pacer thread");
        Pacer {
            schedule: Arc::new(tokio::sync::Mutex::new(rx)),
            thread,
        }
    }

    /// The pacer's lateness over the measured window, sorted, in microseconds.
    fn finish(self) -> Vec<u64> {
        self.thread.join().expect("pacer")
    }
}

pub fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

pub fn report(name: &str, o: &Outcome) {
    println!(
        "{name:<24} {:>9.0} req/s  p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms  ({} requests in {:.2} s)",
        o.throughput(),
        o.percentile_ms(0.50),
        o.percentile_ms(0.90),
        o.percentile_ms(0.99),
        o.max_ms(),
        o.requests,
        o.elapsed.as_secs_f64(),
    );
    if !o.pacer_late_us.is_empty() {
        println!(
            "{:<24} pacer (client clock) late by p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (included above)",
            "",
            o.pacer_late_ms(0.5),
            o.pacer_late_ms(0.99),
            o.pacer_late_ms(1.0),
        );
    }
    if o.slice_p99_ms.len() > 1 {
        let shown: Vec<String> = o.slice_p99_ms.iter().map(|p| format!("{p:.2}")).collect();
        println!(
            "{:<24} p99 of each {} s slice: {} ms",
            "",
            SLICE.as_secs(),
            shown.join(", ")
        );
    }
    let per_s = o.appended() as f64 / o.elapsed.as_secs_f64();
    let per_req = if o.requests == 0 {
        0.0
    } else {
        o.appended() as f64 / o.requests as f64
    };
    println!(
        "{:<24} ledger {} -> {} entries: {} appended, {per_s:.0} entries/s, {per_req:.2} per request",
        "",
        o.ledger_before,
        o.ledger_after,
        o.appended(),
    );
    if o.failures > 0 {
        println!(
            "{:<24} FAILURES: {} non-200 replies or transport errors",
            "", o.failures
        );
        for s in &o.shown {
            println!("{:<24}   {s}", "");
        }
    }
}

pub async fn session(target: &Target, user: &str, role: Role) -> String {
    let op = ActorId::new("operator").unwrap();
    let id = ActorId::new(user).unwrap();
    let enrolment = target
        .state
        .identities()
        .add_user(
            &op,
            &id,
            &[role],
            &Secret::new(PASSWORD.as_bytes().to_vec()),
        )
        .await
        .unwrap();
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    let code = totp::code_at(enrolment.secret.expose_secret(), now);
    let mut c = Client::connect(target.addr, "localhost", Arc::clone(&target.tls))
        .await
        .unwrap();
    let r = c
        .send(
            "POST",
            "/v1/auth/login",
            &[],
            Some(&json!({"username": user, "password": PASSWORD, "totp": code})),
        )
        .await
        .unwrap();
    assert_eq!(
        r.status,
        200,
        "login {user}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()["token"].as_str().unwrap().to_string()
}

/// Server-side errors (the detail behind a 500) go to stderr; `RUST_LOG` widens it.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Client and server share one runtime: as many workers as cores, no more, so the bench does
/// not add scheduler contention of its own. Returns it with the core count.
pub fn runtime() -> (tokio::runtime::Runtime, usize) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .unwrap();
    (rt, cores)
}

/// A running server on `127.0.0.1:0` over `state`'s deployment, with its own certificate.
pub struct Running {
    pub target: Target,
    pub stop: tokio::sync::oneshot::Sender<()>,
    pub server: tokio::task::JoinHandle<()>,
}

/// Serve `state` over TLS on an ephemeral loopback port.
pub async fn serve(state: AppState) -> Running {
    let (cert, key) = state.home().tls_identity().unwrap();
    let server_tls = airlock_server::tls::server_config(&cert, key.expose_secret()).unwrap();
    let listener = airlock_server::tls::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(airlock_server::tls::serve(
        listener,
        server_tls,
        airlock_server::app(state.clone()),
        async {
            let _ = stopped.await;
        },
    ));
    Running {
        target: Target {
            addr,
            tls: airlock_server::client::tls_config(&cert).unwrap(),
            state,
        },
        stop,
        server,
    }
}
