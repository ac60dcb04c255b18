//! What an unauthenticated client can make the deployment do: a bounded number of password
//! checks per source (Argon2id is expensive by design, so a login flood from one address took
//! other users' latency from 3.6 ms to 289 ms), and one ledger entry per source and minute for
//! refused credentials instead of one durable entry each (3,900 entries/s from one client).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A token bucket per key (a source address, a principal).
#[derive(Debug)]
pub(crate) struct Buckets<K> {
    burst: f64,
    per_second: f64,
    buckets: std::sync::Mutex<std::collections::HashMap<K, (f64, Instant)>>,
}

/// Password checks per source address.
pub(crate) type LoginBuckets = Buckets<IpAddr>;

/// Most sources tracked; past that the oldest half is forgotten (a full bucket is the same as
/// none, so forgetting only ever lets a source in sooner).
const MAX_SOURCES: usize = 65_536;

impl<K: std::hash::Hash + Eq + Clone> Buckets<K> {
    pub(crate) fn new(burst: u32, per_second: f64) -> Self {
        Buckets {
            burst: f64::from(burst.max(1)),
            per_second: per_second.max(0.0),
            buckets: std::sync::Mutex::default(),
        }
    }

    /// Take one attempt for `source`; `Err(wait)` when its bucket is empty.
    pub(crate) fn take(&self, source: K, now: Instant) -> Result<(), Duration> {
        let Ok(mut b) = self.buckets.lock() else {
            return Ok(());
        };
        if b.len() >= MAX_SOURCES && !b.contains_key(&source) {
            let mut by_age: Vec<(K, Instant)> = b.iter().map(|(k, v)| (k.clone(), v.1)).collect();
            by_age.sort_by_key(|(_, t)| *t);
            for (k, _) in by_age.into_iter().take(MAX_SOURCES / 2) {
                b.remove(&k);
            }
        }
        let (tokens, at) = b.entry(source).or_insert((self.burst, now));
        let refill = now.saturating_duration_since(*at).as_secs_f64() * self.per_second;
        *tokens = (*tokens + refill).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else if self.per_second > 0.0 {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_second))
        } else {
            Err(Duration::from_secs(60))
        }
    }
}

/// Refused requests counted by minute, source and reason, until written.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    pending: std::sync::Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    minute: i64,
    counts: BTreeMap<(String, &'static str), u64>,
}

/// One summary to write: a minute (seconds since the epoch, a multiple of 60), a source, a
/// reason and how many.
pub(crate) type Summary = (i64, String, &'static str, u64);

impl Refusals {
    /// Count one refusal at `now` (seconds since the epoch); returns the summaries of an
    /// earlier minute that this one closed.
    pub(crate) fn count(&self, now: i64, source: String, reason: &'static str) -> Vec<Summary> {
        let Ok(mut p) = self.pending.lock() else {
            return Vec::new();
        };
        let minute = now - now.rem_euclid(60);
        let closed = if p.minute != minute {
            let old = std::mem::take(&mut p.counts);
            let at = p.minute;
            p.minute = minute;
            old.into_iter().map(|((s, r), n)| (at, s, r, n)).collect()
        } else {
            Vec::new()
        };
        *p.counts.entry((source, reason)).or_default() += 1;
        closed
    }

    /// Every summary not yet written, whatever its minute.
    pub(crate) fn drain(&self) -> Vec<Summary> {
        let Ok(mut p) = self.pending.lock() else {
            return Vec::new();
        };
        let at = p.minute;
        std::mem::take(&mut p.counts)
            .into_iter()
            .map(|((s, r), n)| (at, s, r, n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let b = LoginBuckets::new(3, 1.0);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(b.take(ip, t0).is_ok());
        }
        let wait = b.take(ip, t0).err();
        assert!(
            wait.is_some_and(|w| w <= Duration::from_secs(1)),
            "{wait:?}"
        );
        assert!(b.take(other, t0).is_ok(), "another source is not held up");
        assert!(b.take(ip, t0 + Duration::from_millis(1100)).is_ok());
        assert!(b.take(ip, t0 + Duration::from_millis(1200)).is_err());
    }

    #[test]
    fn refusals_are_summarised_by_minute_source_and_reason() {
        let r = Refusals::default();
        let base = 1_800_000_040 - 1_800_000_040 % 60;
        for i in 0..100 {
            assert!(
                r.count(base + i % 60, "10.0.0.1".into(), "no credentials")
                    .is_empty()
            );
        }
        assert!(
            r.count(base + 5, "10.0.0.2".into(), "no credentials")
                .is_empty()
        );
        let closed = r.count(base + 61, "10.0.0.1".into(), "no credentials");
        assert_eq!(
            closed,
            vec![
                (base, "10.0.0.1".to_string(), "no credentials", 100),
                (base, "10.0.0.2".to_string(), "no credentials", 1),
            ]
        );
        assert_eq!(
            r.drain(),
            vec![(base + 60, "10.0.0.1".to_string(), "no credentials", 1)]
        );
        assert!(r.drain().is_empty());
    }
}
