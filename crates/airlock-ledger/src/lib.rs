//! Airlock's audit ledger: a tamper-evident transparency log of every access and prediction.
//!
//! # Formats (public specs, so standard tools and witnesses can read the log)
//! - Hashing per RFC 6962 / 9162 ([`merkle`]): leaf `SHA-256(0x00 || entry)`, node
//!   `SHA-256(0x01 || left || right)`, split at the largest power of two below `n`.
//! - Checkpoints per C2SP `tlog-checkpoint` in a C2SP `signed-note`, Ed25519 ([`note`]).
//! - Published objects per C2SP `tlog-tiles` ([`tiles`]): `tile/<L>/<N>[.p/<W>]`,
//!   `tile/entries/<N>[.p/<W>]`, `checkpoint`, behind the [`TileStore`] trait.
//! - Witness cosigning per C2SP `tlog-witness` and `tlog-cosignature` ([`witness`]): the
//!   `add-checkpoint` request, the witness's checks and `cosignature/v1` signatures.
//! - Offline proofs per C2SP `tlog-proof` ([`Ledger::proof_file`], [`verify_proof_file`]),
//!   with the entry itself in the `extra` line.
//! - Entries: versioned canonical JSON ([`Entry`]); patients only by keyed pseudonym.
//!
//! # Design: the WAL is the truth, everything else is derived
//! [`Ledger::append`] encodes the entry, computes its leaf hash, and queues a WAL record
//! (`len || entry || first 4 bytes of the leaf hash`). **Group commit** is leader based: the
//! first appender that finds no batch in flight becomes the leader, takes everything queued,
//! writes it with one `write` and one `fdatasync`, extends the in-memory [`merkle::Tree`],
//! publishes the new durable size in an atomic, and unparks the batch's writers; it then hands
//! leadership to one writer of the next batch. Writers that are not leading sleep in
//! `thread::park` and check the atomic, so a finished batch does not send every writer back
//! through the queue lock. `append` returns only after the entry is durable, and N concurrent
//! writers share one fsync. A failed write or fsync stops the ledger
//! ([`LedgerError::Failed`]) rather than retrying an fsync whose failure may have dropped
//! dirty pages.
//!
//! Appends overwrite zeros that [`Ledger::preallocate`] wrote ahead of the end (from a
//! background thread; see [`wal`]), so a group commit's `fdatasync` writes the data and
//! flushes, without also writing the inode for a grown file: 2 device writes per commit
//! instead of 3 here, and 1.25–1.4x the durable appends per second in the ledger bench.
//!
//! Tiles, entry bundles and the checkpoint are derived from the tree: the leader writes each
//! full tile and bundle as it completes (immutable, so writing early is harmless; a failure
//! there is retried at the next checkpoint); [`Ledger::checkpoint`] writes the partial tiles,
//! fsyncs everything written since the last checkpoint, and only then writes the newly signed
//! `checkpoint` (atomically, by rename). A checkpoint therefore never names a tile that is
//! not durable.
//!
//! # Recovery ([`Ledger::open`])
//! Scan the WAL, stopping at the first record that is short, out of bounds, or whose check
//! does not match its leaf hash, and rebuild the tree from the leaf hashes. What follows must
//! be zeros (preallocated space, kept) or a torn final record (the start of one record, then
//! zeros or the end of the file: an append that never returned, cut off). Anything else (a
//! complete record that fails its check, data after the failing record) is damage:
//! opening fails with [`LedgerError::Corrupt`], naming the byte offset and entry index, and
//! leaves the WAL untouched. Cutting there would erase every acknowledged entry after the
//! damage, and the checkpoint signed next would make the shortened log verify. Then the
//! invariants are checked: the WAL holds at least the stored checkpoint's size, and its first
//! entries hash to the checkpoint's root; otherwise opening fails rather than silently losing
//! acknowledged history. Finally a fresh checkpoint signs and publishes anything durable but
//! unsigned ([`Recovery::unsigned_entries`] says how much; [`Ledger::unsigned_entries`] and
//! [`VerifyReport::unsigned_entries`] count what awaits the next checkpoint).
//!
//! # Where the invariants live
//! - Hashing and proof shapes: [`merkle`] (tested against the transparency-dev vectors and a
//!   naive reference).
//! - One encoding per event: [`Entry::parse`] (strict, re-serialises and compares).
//! - Durability before acknowledgement: `Ledger::append_records` in `ledger.rs`.
//! - Torn tails, damage and WAL/checkpoint agreement: `Ledger::open_with_store` and
//!   [`wal::inspect_end`].
//! - Third-party checks: [`verify_dir`] (streams bundles in groups, hashes them on all cores,
//!   names the first bad index or object path, then checks every other tile and bundle file
//!   stored), [`verify_proof_file`].
//! - Rollbacks and forks: [`Ledger::export_checkpoints`] keeps every signed checkpoint
//!   elsewhere, [`verify_dir_kept`] proves the log extends kept ones, and [`witness`] lets
//!   another party cosign only checkpoints that extend what it saw.
//!
//! This crate does no logging and holds no PHI: errors name files, indices and fields.

pub mod entry;
pub mod ledger;
pub mod merkle;
pub mod note;
pub mod search;
pub mod store;
pub mod tiles;
pub mod verify;
pub mod wal;
pub mod witness;

pub use entry::{
    DisclosureInfo, Display, Encoded, Entry, EntryError, EventType, Outcome, OutcomeKind,
    PatientPseudonym, Prediction, SchemaVersion, Timestamp, patient_pseudonym,
};
pub use ledger::{
    Ledger, LedgerError, MAX_DEFERRED, Recovery, Stats, export_checkpoint, latest_export,
};
pub use merkle::{Hash, ProofError, leaf_hash, verify_consistency, verify_inclusion};
pub use note::{Checkpoint, NoteError, SignedCheckpoint, Verifier};
pub use search::{
    DisclosureRecord, Filter, Tail, disclosures, read_entries, read_new_entries, search,
    to_fhir_audit_event, write_jsonl,
};
pub use store::{FsStore, TileStore};
pub use verify::{
    Kept, VerifiedProof, VerifyError, VerifyReport, verify_dir, verify_dir_kept, verify_proof_file,
    verify_store,
};
