//! The one path by which the application appends to the ledger while serving: a group-commit
//! thread that drains every waiting caller's encoded entries into one durable write (one
//! fsync), a tile publisher that runs in idle time, and an in-memory index of the ledger for
//! audit searches that reads only what was appended since its last use.

use std::sync::Arc;
use std::time::Duration;

use airlock_ledger::Entry;
use airlock_store::Home;

use crate::ServiceError;

/// What the application reports as it works, for metrics. The HTTP server counts these; a
/// caller that keeps no metrics passes [`NoObserver`].
pub trait Observer: Send + Sync {
    /// A group commit made `entries` durable in `took`.
    fn commit(&self, entries: usize, took: Duration);
    /// A policy decision on `action`.
    fn decision(&self, action: &'static str, allowed: bool);
    /// A monitoring rule fired (`firing`) or resolved on a model.
    fn alert(&self, _model: &str, _rule: &str, _severity: &'static str, _firing: bool) {}
}

/// An [`Observer`] that keeps nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn commit(&self, _entries: usize, _took: Duration) {}
    fn decision(&self, _action: &'static str, _allowed: bool) {}
}

/// The ledger's entries kept in memory for the audit routes, read incrementally from the
/// write-ahead log (each search reads only what was appended since the last one).
#[derive(Default)]
pub(crate) struct AuditIndex {
    pub(crate) tail: airlock_ledger::Tail,
    pub(crate) entries: Vec<(u64, Entry)>,
}

/// One request's encoded entries and where to send their first index.
type Batch = (
    Vec<airlock_ledger::Encoded>,
    tokio::sync::oneshot::Sender<Result<u64, String>>,
);

/// The server's ledger writer: one thread that drains every request waiting to append, writes
/// them in one durable group (one fsync), and answers each request with its first index. A
/// request's entries stay consecutive. Entries are validated and encoded on the request's task
/// (so one bad entry fails its own request, not the group), never again by the writer.
///
/// The tiles and bundles of each full tile (every 256 entries) are written by a second
/// thread that runs in idle time ([`run_in_idle_time`]), nudged when a group completes 16 of
/// them (and at least every second, for entries appended elsewhere), so no request
/// waits for those files; checkpoints make them durable as before. The same thread keeps
/// zero-filled space ahead of the WAL's end ([`airlock_ledger::Ledger::preallocate`]), so a
/// group commit's fsync carries no journal commit for a grown file.
pub(crate) struct LedgerWriter {
    sink: Arc<WriterSink>,
}

/// The writer's queue, which the deployment's own appends ([`Home::audit`]) also join while
/// the service runs ([`Home::route_ledger_to`]): one append path per process.
struct WriterSink {
    tx: std::sync::mpsc::Sender<Batch>,
}

impl WriterSink {
    async fn append(&self, entries: Vec<Entry>) -> Result<u64, String> {
        let encoded = entries
            .iter()
            .map(Entry::encode)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| format!("ledger entry: {err}"))?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = || "the ledger writer stopped".to_string();
        self.tx.send((encoded, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl airlock_store::LedgerSink for WriterSink {
    fn append(
        &self,
        entries: Vec<Entry>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, String>> + Send + '_>> {
        Box::pin(WriterSink::append(self, entries))
    }
}

/// The tile publisher's pause after each file it writes and starts writing to disk
/// ([`airlock_ledger::Ledger::publish_paced`]).
const WRITE_BEHIND_PAUSE: Duration = Duration::from_millis(1);

/// How often the publisher signs a checkpoint of what was appended (when anything was).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

/// How long the tile publisher waits for a nudge before publishing anyway.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Entries per nudge of the tile publisher: 16 full tiles (their entries wait in memory
/// meanwhile). Creating tile files delays the commits around it a little; batched, that
/// happens 16 times less often (measurements in BENCHMARKS.md, "Ledger writer").
const PUBLISH_BATCH: u64 = 16 * airlock_ledger::tiles::TILE_WIDTH;

/// Lets the calling thread run only in the time other threads leave: `SCHED_IDLE`, or the
/// weakest nice value where that is refused. Best effort: a failure only logs.
///
/// At a nice value the publisher's file writes still delayed requests once per tile; under
/// `SCHED_IDLE` they do not (BENCHMARKS.md, "Ledger writer"). A publisher starved this way
/// falls behind only while the machine is saturated, and the ledger then publishes from the
/// committing thread ([`airlock_ledger::MAX_DEFERRED`]).
fn run_in_idle_time() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_current_thread_priority, set_thread_priority_and_policy, thread_native_id,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if let Err(err) = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
    {
        tracing::warn!(error = %err, "SCHED_IDLE refused for the tile publisher; lowering its nice value instead");
        if let Err(err) = set_current_thread_priority(ThreadPriority::Min) {
            tracing::warn!(error = %err, "lowering the tile publisher's priority");
        }
    }
}

impl LedgerWriter {
    pub(crate) fn start(
        home: Home,
        observer: Arc<dyn Observer>,
    ) -> Result<LedgerWriter, ServiceError> {
        let (tx, rx) = std::sync::mpsc::channel::<Batch>();
        let (nudge, nudged) = std::sync::mpsc::channel::<()>();
        let publisher = home.clone();
        let home_for_sink = home.clone();
        home.ledger().defer_publishing(true);
        std::thread::Builder::new()
            .name("airlock-tiles".into())
            .spawn(move || {
                use std::sync::mpsc::RecvTimeoutError;
                // Publishing and preallocating must not take a core from the requests.
                run_in_idle_time();
                let mut signed = std::time::Instant::now();
                loop {
                    // Zeros ahead of the WAL's end, so group commits overwrite existing blocks
                    // (see `Ledger::preallocate`); checked at start, then with every publish.
                    if let Err(err) = publisher.ledger().preallocate() {
                        tracing::warn!(error = %err, "preallocating ledger space");
                    }
                    let last = match nudged.recv_timeout(PUBLISH_EVERY) {
                        Ok(()) | Err(RecvTimeoutError::Timeout) => false,
                        Err(RecvTimeoutError::Disconnected) => true,
                    };
                    while nudged.try_recv().is_ok() {}
                    if last {
                        publisher.ledger().defer_publishing(false);
                    }
                    if let Err(err) = publisher.ledger().publish_paced(WRITE_BEHIND_PAUSE) {
                        // Not lost: the next checkpoint writes them.
                        tracing::warn!(error = %err, "publishing ledger tiles");
                    }
                    // A signed checkpoint every few seconds, so a crash or a kill leaves at
                    // most that much of the log unsigned (an unsigned tail is what a forger
                    // would edit; signing costs one Ed25519 signature and a small file).
                    if signed.elapsed() >= CHECKPOINT_EVERY || last {
                        if let Err(err) = publisher.ledger().checkpoint() {
                            tracing::warn!(error = %err, "signing a ledger checkpoint");
                        }
                        signed = std::time::Instant::now();
                    }
                    if last {
                        break;
                    }
                }
            })
            .map_err(ServiceError::internal)?;
        // The group-commit thread runs at normal priority and commits as soon as it has work:
        // SCHED_FIFO, committing on the request threads and lingering for more requests were
        // each tried and were slower (BENCHMARKS.md, "Ledger writer").
        std::thread::Builder::new()
            .name("airlock-commit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batches = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        batches.push(more);
                    }
                    let mut entries = Vec::new();
                    let mut replies = Vec::with_capacity(batches.len());
                    for (e, reply) in batches {
                        replies.push((e.len() as u64, reply));
                        entries.extend(e);
                    }
                    let n_ent = entries.len();
                    let began = std::time::Instant::now();
                    let result = home.ledger().append_encoded(entries);
                    if result.is_ok() {
                        observer.commit(n_ent, began.elapsed());
                    }
                    if let Ok(first) = &result
                        && *first / PUBLISH_BATCH != (*first + n_ent as u64) / PUBLISH_BATCH
                    {
                        let _ = nudge.send(());
                    }
                    let mut at = 0u64;
                    for (n, reply) in replies {
                        let answer = match &result {
                            Ok(first) => Ok(first + at),
                            Err(err) => Err(err.to_string()),
                        };
                        at += n;
                        let _ = reply.send(answer);
                    }
                }
            })
            .map_err(ServiceError::internal)?;
        let sink = Arc::new(WriterSink { tx });
        let weak: std::sync::Weak<dyn airlock_store::LedgerSink> =
            Arc::downgrade(&(Arc::clone(&sink) as Arc<dyn airlock_store::LedgerSink>));
        home_for_sink.route_ledger_to(weak);
        Ok(LedgerWriter { sink })
    }

    pub(crate) async fn append(&self, entries: Vec<Entry>) -> Result<u64, ServiceError> {
        self.sink
            .append(entries)
            .await
            .map_err(|e| ServiceError::internal(format!("ledger: {e}")))
    }
}

#[cfg(test)]
mod tests {
    /// The scheduling policy of the calling thread, from `/proc/thread-self/stat` (field 41).
    fn policy_of_this_thread() -> Option<u32> {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
        // Fields after the command name (which may hold spaces) start at field 3.
        let rest = stat.rsplit_once(')')?.1;
        rest.split_whitespace().nth(41 - 3)?.parse().ok()
    }

    #[test]
    fn the_tile_publisher_runs_in_idle_time() {
        const SCHED_IDLE: u32 = 5;
        let policy = std::thread::spawn(|| {
            let before = policy_of_this_thread();
            super::run_in_idle_time();
            (before, policy_of_this_thread())
        })
        .join()
        .unwrap_or_default();
        match policy {
            (Some(before), Some(after)) => {
                assert_ne!(before, SCHED_IDLE, "a new thread starts under SCHED_OTHER");
                assert_eq!(after, SCHED_IDLE);
            }
            _ => eprintln!("skipping: no /proc/thread-self/stat on this system"),
        }
    }
}
