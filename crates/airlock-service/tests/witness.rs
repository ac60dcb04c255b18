#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]
//! Issue 28, finding 6: one deployment witnesses another's ledger (C2SP tlog-witness). It
//! cosigns only checkpoints that extend what it cosigned before, so the log's operator can no
//! longer roll the ledger back or fork it unseen, and it keeps that state in the database
//! across restarts.

use std::path::Path;

use airlock_crypto::KdfParams;
use airlock_ledger::witness::{AddCheckpoint, AddCheckpointError};
use airlock_ledger::{Entry, EventType, OutcomeKind, SignedCheckpoint, Timestamp, Verifier};
use airlock_service::witness::{Witness, WitnessError};
use airlock_store::{Home, InitOptions, Passphrase};
use airlock_types::{ActorId, RequestId, Zone};

fn pass() -> Passphrase {
    Passphrase::new("a witness test passphrase".into())
}

fn op() -> ActorId {
    ActorId::new("operator").unwrap()
}

async fn init(dir: &Path, name: &str) -> Home {
    init_on(dir, name, None).await
}

/// A home on SQLite, or on the PostgreSQL database `url`.
async fn init_on(dir: &Path, name: &str, url: Option<&str>) -> Home {
    let opts = InitOptions {
        name: name.into(),
        kdf: KdfParams::danger_fast_for_tests(),
        database_url: url.map(str::to_owned),
    };
    Home::init(dir, &pass(), &opts, op()).await.unwrap()
}

async fn open(dir: &Path) -> Home {
    open_on(dir, None).await
}

async fn open_on(dir: &Path, url: Option<&str>) -> Home {
    Home::open_with_database(dir, &pass(), op(), url)
        .await
        .unwrap()
}

/// `n` entries, made distinct by `tag` (so two copies of one home diverge).
fn append(home: &Home, n: u64, tag: u8) {
    for i in 0..n {
        let mut rid = [tag; 16];
        rid[..8].copy_from_slice(&i.to_be_bytes());
        let e = Entry::new(
            Timestamp::now(),
            op(),
            EventType::ConfigChange,
            Zone::Clinical,
            RequestId::from_bytes(rid),
            OutcomeKind::Success,
        )
        .with_reason(format!("change {tag}/{i}"));
        home.ledger().append(&e).unwrap();
    }
}

/// The body of an add-checkpoint request for the log's latest checkpoint from `old`.
fn request(log: &Home, old: u64) -> (SignedCheckpoint, Vec<u8>) {
    let cp = log.ledger().checkpoint().unwrap();
    let proof = if old <= cp.checkpoint.size {
        log.ledger()
            .prove_consistency(old, cp.checkpoint.size)
            .unwrap()
    } else {
        Vec::new()
    };
    let body = AddCheckpoint {
        old_size: old,
        proof,
        checkpoint: cp.text.clone(),
    }
    .to_body();
    (cp, body.into_bytes())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A witness home `dir` that trusts `log_keys`.
async fn witness_home(dir: &Path, log_keys: &[String]) -> Home {
    witness_home_on(dir, log_keys, None).await
}

async fn witness_home_on(dir: &Path, log_keys: &[String], url: Option<&str>) -> Home {
    init_on(dir, "wit", url).await.close().await.unwrap();
    let config = dir.join("airlock.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    let keys: Vec<String> = log_keys.iter().map(|k| format!("\"{k}\"")).collect();
    text.push_str(&format!("\n[witness]\nlogs = [{}]\n", keys.join(", ")));
    std::fs::write(&config, text).unwrap();
    open_on(dir, url).await
}

fn refused(r: Result<String, WitnessError>) -> AddCheckpointError {
    match r {
        Err(WitnessError::Refused(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn one_deployment_witnesses_another_and_refuses_rollbacks_and_forks() {
    let tmp = tempfile::tempdir().unwrap();
    let log_dir = tmp.path().join("log");
    let log = init(&log_dir, "log").await;
    let origin = log.config().ledger.origin.clone();
    let log_key = Verifier::parse(&log.verifier_key()).unwrap();
    let wit_dir = tmp.path().join("wit");
    let wit_home = witness_home(&wit_dir, &[log.verifier_key()]).await;
    let witness = Witness::new(&wit_home).unwrap();
    let wkey = witness.verifier();
    assert!(wkey.to_string().starts_with("airlock.local/wit/witness+"));
    assert_eq!(witness.origins().collect::<Vec<_>>(), [origin.as_str()]);

    // First contact: old size 0, taken on trust; the cosignature verifies under the
    // witness's key beside the log's own signature.
    append(&log, 5, 1);
    let (cp5, body) = request(&log, 0);
    let lines = witness.add_checkpoint(&body).await.unwrap();
    assert!(
        lines.starts_with("\u{2014} airlock.local/wit/witness "),
        "{lines}"
    );
    let cosigned = format!("{}{lines}", cp5.text);
    let ok = wkey.verify(&cosigned).unwrap();
    assert_eq!(ok.checkpoint, cp5.checkpoint);
    SignedCheckpoint::open(&cosigned, &log_key).unwrap();

    // Growing: the client names the old size and proves consistency; old 0 gets 409 and the
    // size the witness holds, as the spec's way of learning it.
    append(&log, 5, 1);
    let err = witness
        .add_checkpoint(&request(&log, 0).1)
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.conflict_size()),
        (409, Some(cp5.checkpoint.size))
    );
    let size5 = cp5.checkpoint.size;
    witness
        .add_checkpoint(&request(&log, size5).1)
        .await
        .unwrap();
    log.close().await.unwrap();

    // Two copies kept: an older one (a rollback) and one that will fork.
    let old_dir = tmp.path().join("log-old");
    copy_dir(&log_dir, &old_dir);
    let fork_dir = tmp.path().join("log-fork");
    copy_dir(&log_dir, &fork_dir);
    let log = open(&log_dir).await;
    let size10 = log.ledger().checkpoint().unwrap().checkpoint.size;
    append(&log, 10, 1);
    let (cp20, body) = request(&log, size10);
    witness.add_checkpoint(&body).await.unwrap();
    let size20 = cp20.checkpoint.size;

    // The rolled-back copy: it still believes in size 10; the witness answers 409 with 20.
    let old = open(&old_dir).await;
    let err = refused(witness.add_checkpoint(&request(&old, size10).1).await);
    assert_eq!(err, AddCheckpointError::Conflict { recorded: size20 });
    // Claiming the witnessed size needs a proof from a tree it no longer has.
    let (_, body) = request(&old, size20);
    assert_eq!(refused(witness.add_checkpoint(&body).await).status(), 400);
    old.close().await.unwrap();

    // A fork signed by the same key: at the witnessed size (another root) 409, grown past it
    // 422 (its proof does not start from the witnessed root).
    let fork = open(&fork_dir).await;
    append(&fork, size20 - size10, 2);
    let (fork20, body) = request(&fork, size20);
    assert_eq!(fork20.checkpoint.size, size20);
    assert_ne!(fork20.checkpoint.root, cp20.checkpoint.root);
    assert_eq!(
        refused(witness.add_checkpoint(&body).await),
        AddCheckpointError::Conflict { recorded: size20 }
    );
    append(&fork, 7, 2);
    let err = refused(witness.add_checkpoint(&request(&fork, size20).1).await);
    assert_eq!(err.status(), 422, "{err}");
    fork.close().await.unwrap();

    // Unknown origin (404) and a checkpoint not signed by the trusted key (403).
    let stranger = init(&tmp.path().join("stranger"), "stranger").await;
    append(&stranger, 2, 3);
    assert_eq!(
        refused(witness.add_checkpoint(&request(&stranger, 0).1).await).status(),
        404
    );
    stranger.close().await.unwrap();
    let impostor = init(&tmp.path().join("impostor"), "log").await;
    assert_eq!(impostor.config().ledger.origin, origin);
    assert_eq!(
        refused(witness.add_checkpoint(&request(&impostor, size20).1).await).status(),
        403
    );
    impostor.close().await.unwrap();
    assert_eq!(
        refused(witness.add_checkpoint(b"old 1\n\nnot a note").await).status(),
        400
    );

    // The state survives a restart of the witness.
    drop(witness);
    wit_home.close().await.unwrap();
    let wit_home = open(&wit_dir).await;
    let witness = Witness::new(&wit_home).unwrap();
    let held = witness.latest(&origin).await.unwrap().unwrap();
    assert_eq!(held.recorded.size, size20);
    assert_eq!(held.recorded.root, cp20.checkpoint.root);
    assert_eq!(held.checkpoint, cp20.text);
    assert_eq!(witness.verifier(), wkey, "the witness key is stable");
    assert!(witness.latest("nobody/else").await.unwrap().is_none());
    // And the genuine log goes on.
    append(&log, 3, 1);
    witness
        .add_checkpoint(&request(&log, size20).1)
        .await
        .unwrap();
    log.close().await.unwrap();
    wit_home.close().await.unwrap();
}

/// Two requests checked against one recorded state: only one may land (the spec's race, where
/// the later write would roll the witness back).
#[tokio::test]
async fn concurrent_requests_from_one_state_record_only_one() {
    concurrent_requests(None).await;
}

/// The same on PostgreSQL, where servers sharing the database race through the
/// compare-and-swap rather than SQLite's write lock.
#[tokio::test]
async fn concurrent_requests_from_one_state_record_only_one_on_postgres() {
    let Some(url) = airlock_store::testing::fresh_postgres_url("witness")
        .await
        .unwrap()
    else {
        eprintln!(
            "skipping: AIRLOCK_TEST_POSTGRES is not set (scripts/test-postgres.sh starts a server)"
        );
        return;
    };
    concurrent_requests(Some(&url)).await;
}

async fn concurrent_requests(url: Option<&str>) {
    let tmp = tempfile::tempdir().unwrap();
    let log = init(&tmp.path().join("log"), "log").await;
    let wit_home = witness_home_on(&tmp.path().join("wit"), &[log.verifier_key()], url).await;
    let witness = Witness::new(&wit_home).unwrap();
    append(&log, 3, 1);
    let (first, body) = request(&log, 0);
    witness.add_checkpoint(&body).await.unwrap();
    let base = first.checkpoint.size;
    append(&log, 4, 1);
    let (small, small_body) = request(&log, base);
    append(&log, 4, 1);
    let (large, large_body) = request(&log, base);
    let (a, b) = tokio::join!(
        witness.add_checkpoint(&small_body),
        witness.add_checkpoint(&large_body)
    );
    assert!(a.is_ok() != b.is_ok(), "{a:?} / {b:?}");
    let winner = if a.is_ok() { &small } else { &large };
    let loser = if a.is_ok() { b } else { a };
    assert_eq!(
        loser.unwrap_err().conflict_size(),
        Some(winner.checkpoint.size)
    );
    let held = witness
        .latest(&log.config().ledger.origin)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.recorded.size, winner.checkpoint.size);
    log.close().await.unwrap();
    wit_home.close().await.unwrap();
}

/// A route handler can await both on a multi-threaded runtime (this fails to compile if not).
#[allow(dead_code, reason = "checked by compiling it, never called")]
fn futures_are_send(w: &Witness) {
    fn send<T: Send>(_: T) {}
    send(w.add_checkpoint(b""));
    send(w.latest(""));
}
