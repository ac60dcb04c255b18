#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]
//! One append path (issue 18): while a service runs, the deployment's own entries (a dataset
//! refused, a model transition, an identity change from the CLI) go through the service's
//! group-commit writer, not a second, synchronous append beside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use airlock_authz::Authorizer;
use airlock_crypto::KdfParams;
use airlock_ledger::{Entry, EventType, OutcomeKind, Timestamp};
use airlock_service::{IdentityPolicy, Observer, Service};
use airlock_store::{Home, InitOptions, Passphrase};
use airlock_types::{ActorId, RequestId, Zone};

/// Counts the entries the writer commits.
#[derive(Default)]
struct Commits(AtomicUsize);

impl Observer for Commits {
    fn commit(&self, entries: usize, _took: Duration) {
        self.0.fetch_add(entries, Ordering::SeqCst);
    }
    fn decision(&self, _action: &'static str, _allowed: bool) {}
}

fn entry(i: u8) -> Entry {
    Entry::new(
        Timestamp::now(),
        ActorId::new("operator").unwrap(),
        EventType::ConfigChange,
        Zone::Clinical,
        RequestId::from_bytes([i; 16]),
        OutcomeKind::Success,
    )
}

#[tokio::test]
async fn the_deployments_own_entries_join_the_services_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = InitOptions {
        name: "append".into(),
        kdf: KdfParams::danger_fast_for_tests(),
        database_url: None,
    };
    let pass = Passphrase::new("an append path passphrase".into());
    let home = Home::init(tmp.path(), &pass, &opts, ActorId::new("operator").unwrap())
        .await
        .unwrap();

    // Without a service, the store appends by itself.
    let before = home.audit(entry(1)).await.unwrap();

    let commits = Arc::new(Commits::default());
    let service = Service::new(
        home.clone(),
        Authorizer::new().unwrap(),
        IdentityPolicy::default(),
        Arc::clone(&commits) as Arc<dyn Observer>,
    )
    .unwrap();
    let first = home
        .audit_many(vec![entry(2), entry(3), entry(4)])
        .await
        .unwrap();
    assert_eq!(first, before + 1);
    assert_eq!(
        commits.0.load(Ordering::SeqCst),
        3,
        "the store's entries went around the service's writer"
    );

    // When the service stops, the store appends by itself again.
    drop(service);
    let last = home.audit(entry(5)).await.unwrap();
    assert_eq!(last, first + 3);
    assert_eq!(commits.0.load(Ordering::SeqCst), 3);
    assert_eq!(home.ledger().size().unwrap(), last + 1);
}
