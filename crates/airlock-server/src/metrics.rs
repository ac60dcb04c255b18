//! Prometheus metrics, written by hand in the text exposition format (no PHI in any label:
//! labels are route templates, methods and status codes only).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// Request counters and latency histograms by route, method and status.
#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
    decisions: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl Metrics {
    /// Record one request.
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Ok(mut m) = self.series.lock() {
            let s = m
                .entry((route.to_string(), method.to_string(), status))
                .or_default();
            s.count += 1;
            s.sum += secs;
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b
                    && let Some(c) = s.buckets.get_mut(i)
                {
                    *c += 1;
                }
            }
        }
    }

    /// Record one authorization decision.
    pub fn decision(&self, action: &'static str, effect: &'static str) {
        if let Ok(mut m) = self.decisions.lock() {
            *m.entry((action, effect)).or_default() += 1;
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP airlock_http_requests_total HTTP requests by route template, method and status.\n");
        out.push_str("# TYPE airlock_http_requests_total counter\n");
        let series = self.series.lock().map(|m| m.clone()).unwrap_or_default();
        for ((route, method, status), s) in &series {
            let _ = writeln!(
                out,
                "airlock_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP airlock_http_request_duration_seconds Request latency.\n");
        out.push_str("# TYPE airlock_http_request_duration_seconds histogram\n");
        for ((route, method, status), s) in &series {
            let labels = format!("route=\"{route}\",method=\"{method}\",status=\"{status}\"");
            for (b, c) in BUCKETS.iter().zip(s.buckets.iter()) {
                let _ = writeln!(
                    out,
                    "airlock_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {c}"
                );
            }
            let _ = writeln!(
                out,
                "airlock_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "airlock_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "airlock_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out.push_str(
            "# HELP airlock_authz_decisions_total Authorization decisions by action and effect.\n",
        );
        out.push_str("# TYPE airlock_authz_decisions_total counter\n");
        if let Ok(m) = self.decisions.lock() {
            for ((action, effect), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "airlock_authz_decisions_total{{action=\"{action}\",effect=\"{effect}\"}} {n}"
                );
            }
        }
        out
    }
}
