//! Prometheus metrics, written by hand in the text exposition format (no PHI in any label:
//! labels are route templates, methods, status codes and decision names only).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Request latency bucket upper bounds, in seconds.
const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Ledger group-commit bucket upper bounds, in seconds: a commit is one write and one
/// `fdatasync`, a tenth of a millisecond on a healthy local disk.
const COMMIT_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 1.0,
];

/// A latency histogram over fixed bounds (cumulative counts, as Prometheus exposes them).
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    count: u64,
    sum: f64,
    cumulative: Vec<u64>,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            count: 0,
            sum: 0.0,
            cumulative: vec![0; bounds.len()],
        }
    }

    fn observe(&mut self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        self.count += 1;
        self.sum += secs;
        for (bound, c) in self.bounds.iter().zip(self.cumulative.iter_mut()) {
            if secs <= *bound {
                *c += 1;
            }
        }
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Their sum, in seconds.
    pub fn sum_secs(&self) -> f64 {
        self.sum
    }

    /// Observations over `secs` (which should be one of the bounds; otherwise the next bound
    /// above it is used, and `None` past the last).
    pub fn over(&self, secs: f64) -> Option<u64> {
        let i = self.bounds.iter().position(|b| *b >= secs)?;
        self.cumulative.get(i).map(|within| self.count - within)
    }

    fn render(&self, name: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.cumulative) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let count = self.count;
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braced = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braced} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braced} {count}");
    }
}

/// The ledger's group commits: how long each took and how many entries they made durable.
#[derive(Debug)]
struct Commits {
    latency: Histogram,
    entries: u64,
}

/// Per (model, rule): alerts fired, the rule's severity, and whether it is firing now.
type AlertSeries = BTreeMap<(String, String), (u64, &'static str, bool)>;

/// Request counters and latency histograms by route, method and status; authorization
/// decisions; the ledger's group commits.
#[derive(Debug)]
pub struct Metrics {
    series: Mutex<BTreeMap<(String, String, u16), Histogram>>,
    decisions: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    commits: Mutex<Commits>,
    /// Per model and rule: alerts fired, severity, and whether it is firing now.
    alerts: Mutex<AlertSeries>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            series: Mutex::default(),
            decisions: Mutex::default(),
            alerts: Mutex::default(),
            commits: Mutex::new(Commits {
                latency: Histogram::new(COMMIT_BUCKETS),
                entries: 0,
            }),
        }
    }
}

/// The application reports its commits and decisions here.
impl airlock_service::Observer for Metrics {
    fn commit(&self, entries: usize, took: Duration) {
        Metrics::commit(self, entries, took);
    }

    fn decision(&self, action: &'static str, allowed: bool) {
        Metrics::decision(self, action, if allowed { "allow" } else { "deny" });
    }

    fn alert(&self, model: &str, rule: &str, severity: &'static str, firing: bool) {
        if let Ok(mut m) = self.alerts.lock() {
            let e = m
                .entry((model.to_string(), rule.to_string()))
                .or_insert((0, severity, false));
            if firing {
                e.0 += 1;
            }
            e.1 = severity;
            e.2 = firing;
        }
    }
}

impl Metrics {
    /// Record one request.
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        if let Ok(mut m) = self.series.lock() {
            m.entry((route.to_string(), method.to_string(), status))
                .or_insert_with(|| Histogram::new(REQUEST_BUCKETS))
                .observe(elapsed);
        }
    }

    /// Record one authorization decision.
    pub fn decision(&self, action: &'static str, effect: &'static str) {
        if let Ok(mut m) = self.decisions.lock() {
            *m.entry((action, effect)).or_default() += 1;
        }
    }

    /// Record one group commit of the ledger: `entries` made durable in `elapsed` (the write
    /// and the `fdatasync`, as the committing thread saw them).
    pub fn commit(&self, entries: usize, elapsed: Duration) {
        if let Ok(mut c) = self.commits.lock() {
            c.latency.observe(elapsed);
            c.entries += entries as u64;
        }
    }

    /// The group-commit latency histogram so far.
    pub fn commits(&self) -> Option<Histogram> {
        self.commits.lock().ok().map(|c| c.latency.clone())
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
            s.render("airlock_http_request_duration_seconds", &labels, &mut out);
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
        if let Ok(c) = self.commits.lock() {
            out.push_str("# HELP airlock_ledger_commit_seconds Ledger group commits (one write and one fdatasync each) by duration.\n");
            out.push_str("# TYPE airlock_ledger_commit_seconds histogram\n");
            c.latency
                .render("airlock_ledger_commit_seconds", "", &mut out);
            out.push_str("# HELP airlock_ledger_committed_entries_total Ledger entries made durable by the server's group commits.\n");
            out.push_str("# TYPE airlock_ledger_committed_entries_total counter\n");
            let _ = writeln!(out, "airlock_ledger_committed_entries_total {}", c.entries);
        }
        if let Ok(m) = self.alerts.lock() {
            // Model and rule names are checked names (letters, digits, `-`, `_`, `.`).
            out.push_str("# HELP airlock_monitoring_alerts_total Monitoring alerts fired, by model, rule and severity.\n");
            out.push_str("# TYPE airlock_monitoring_alerts_total counter\n");
            for ((model, rule), (n, severity, _)) in m.iter() {
                let _ = writeln!(
                    out,
                    "airlock_monitoring_alerts_total{{model=\"{model}\",rule=\"{rule}\",severity=\"{severity}\"}} {n}"
                );
            }
            out.push_str("# HELP airlock_monitoring_alert_firing Whether a monitoring rule is firing now (1) or not (0).\n");
            out.push_str("# TYPE airlock_monitoring_alert_firing gauge\n");
            for ((model, rule), (_, _, firing)) in m.iter() {
                let _ = writeln!(
                    out,
                    "airlock_monitoring_alert_firing{{model=\"{model}\",rule=\"{rule}\"}} {}",
                    u8::from(*firing)
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_count_by_bound_and_render_cumulatively() {
        let m = Metrics::default();
        m.observe("/v1/x", "GET", 200, Duration::from_micros(700));
        m.observe("/v1/x", "GET", 200, Duration::from_millis(3));
        m.commit(3, Duration::from_micros(80));
        m.commit(1, Duration::from_micros(300));
        m.commit(2, Duration::from_millis(7));
        let text = m.render();
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        has("airlock_http_requests_total{route=\"/v1/x\",method=\"GET\",status=\"200\"} 2");
        has(
            "airlock_http_request_duration_seconds_bucket{route=\"/v1/x\",method=\"GET\",status=\"200\",le=\"0.0005\"} 0",
        );
        has(
            "airlock_http_request_duration_seconds_bucket{route=\"/v1/x\",method=\"GET\",status=\"200\",le=\"0.001\"} 1",
        );
        has(
            "airlock_http_request_duration_seconds_bucket{route=\"/v1/x\",method=\"GET\",status=\"200\",le=\"0.005\"} 2",
        );
        has(
            "airlock_http_request_duration_seconds_count{route=\"/v1/x\",method=\"GET\",status=\"200\"} 2",
        );
        has("airlock_ledger_commit_seconds_bucket{le=\"0.0001\"} 1");
        has("airlock_ledger_commit_seconds_bucket{le=\"0.0005\"} 2");
        has("airlock_ledger_commit_seconds_bucket{le=\"0.005\"} 2");
        has("airlock_ledger_commit_seconds_bucket{le=\"0.01\"} 3");
        has("airlock_ledger_commit_seconds_bucket{le=\"+Inf\"} 3");
        has("airlock_ledger_commit_seconds_count 3");
        has("airlock_ledger_committed_entries_total 6");
        let commits = m.commits().unwrap();
        assert_eq!(commits.count(), 3);
        assert_eq!(commits.over(0.002), Some(1));
        assert_eq!(commits.over(0.0001), Some(2));
        assert_eq!(commits.over(5.0), None);
        assert!((commits.sum_secs() - 0.00738).abs() < 1e-9);
    }
}
