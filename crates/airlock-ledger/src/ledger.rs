//! The ledger: durable group-committed appends, derived tiles, checkpoints and proofs.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, Thread};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;

use crate::entry::{Entry, EntryError};
use crate::merkle::{Hash, ProofError, Tree, leaf_hash};
use crate::note::{Checkpoint, NoteError, SignedCheckpoint, Verifier};
use crate::store::{FsStore, TileStore, sync_dir};
use crate::tiles::{
    BundleError, TILE_HEIGHT, TILE_WIDTH, TileRef, bundle_path, decode_bundle, encode_bundle,
    tile_bytes, tiles_between,
};
use crate::wal::{self, MAGIC, MAX_ENTRY};

/// Name of the write-ahead log file inside the ledger directory.
pub const WAL_FILE: &str = "wal";
/// Path of the checkpoint object in the tile store.
pub const CHECKPOINT_PATH: &str = "checkpoint";
/// First line of a C2SP tlog-proof.
pub const PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";
/// Most entries left to a background publisher ([`Ledger::defer_publishing`]) before the
/// committing thread publishes them itself: 64 full tiles, a few megabytes of entries kept in
/// memory. A publisher that runs only in idle time falls this far behind only when the
/// machine is saturated for a while.
pub const MAX_DEFERRED: u64 = 64 * TILE_WIDTH;

/// A failure of the ledger engine. Messages name files, indices and sizes, never entry
/// contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// An I/O failure on a named file.
    #[error("i/o error on `{path}`")]
    Io {
        /// The file or object path.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Another process holds the ledger open.
    #[error(
        "the ledger in `{path}` is open in another process (a running `airlock serve`? stop it, or do this through its API)"
    )]
    Locked {
        /// The WAL path.
        path: String,
    },
    /// The WAL does not start with the expected header.
    #[error("`{path}` is not an airlock ledger write-ahead log")]
    NotAWal {
        /// The WAL path.
        path: String,
    },
    /// The WAL holds fewer entries than the stored checkpoint commits to.
    #[error("write-ahead log holds {wal} entries but the checkpoint covers {checkpoint}")]
    WalBehindCheckpoint {
        /// Entries in the WAL.
        wal: u64,
        /// Size in the checkpoint.
        checkpoint: u64,
    },
    /// The WAL is damaged at `offset`: a record there fails its check and is not a torn final
    /// record, so cutting it off would erase the entries after it. The WAL is left exactly as
    /// it was found, for an incident and a person to look at.
    #[error(
        "write-ahead log `{path}` is damaged at byte {offset} (entry {index}): {defect}; \
         refusing to open it, and it was left unchanged"
    )]
    Corrupt {
        /// The WAL path.
        path: String,
        /// Byte offset of the record that fails.
        offset: u64,
        /// Its entry index (the entries before it verify).
        index: u64,
        /// What is wrong there.
        defect: wal::Defect,
    },
    /// The WAL's first entries do not hash to the stored checkpoint's root.
    #[error("write-ahead log does not match the checkpoint of size {size}")]
    WalMismatch {
        /// The checkpoint size.
        size: u64,
    },
    /// An entry failed validation.
    #[error("invalid entry")]
    Entry(#[from] EntryError),
    /// An entry at a known index failed strict parsing.
    #[error("entry {index} is invalid")]
    EntryAt {
        /// The index.
        index: u64,
        /// The cause.
        #[source]
        source: EntryError,
    },
    /// An entry bundle could not be decoded.
    #[error("entry bundle `{path}` is malformed")]
    Bundle {
        /// The bundle path.
        path: String,
        /// The cause.
        #[source]
        source: BundleError,
    },
    /// A stored entry does not match the tree.
    #[error("stored entry {index} does not match the log")]
    StoredEntry {
        /// The index.
        index: u64,
    },
    /// A checkpoint or key problem.
    #[error("checkpoint: {0}")]
    Note(#[from] NoteError),
    /// A proof could not be built.
    #[error("proof: {0}")]
    Proof(#[from] ProofError),
    /// An earlier write or fsync failed; the ledger refuses further appends until reopened
    /// (retrying an fsync after a failure can silently lose data).
    #[error("the ledger stopped after a failed write; reopen it to recover")]
    Failed,
    /// A lock was poisoned by a panicking thread.
    #[error("internal lock poisoned")]
    Poisoned,
    /// The checkpoint export directory already holds a different checkpoint of this size: two
    /// signed views of one size are a fork, and the file there, the earlier one, is left as
    /// evidence.
    #[error("`{path}` already holds a different checkpoint of size {size}; left unchanged")]
    ExportDiffers {
        /// The file in the export directory.
        path: String,
        /// The tree size.
        size: u64,
    },
}

fn io_err(path: impl Into<String>) -> impl FnOnce(io::Error) -> LedgerError {
    let path = path.into();
    move |source| LedgerError::Io { path, source }
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, LedgerError> {
    m.lock().map_err(|_| LedgerError::Poisoned)
}

/// The group-commit queue.
#[derive(Debug, Default)]
struct Queue {
    /// Index the next appended entry gets.
    next: u64,
    /// A leader is writing a batch.
    leader: bool,
    /// Batches committed since open.
    commits: u64,
    /// Encoded WAL records waiting for the next batch.
    buf: Vec<u8>,
    /// Their leaf hashes and entries, in index order.
    pending: Vec<(Hash, Arc<[u8]>)>,
    /// The threads waiting for them.
    waiters: Vec<Thread>,
}

/// The WAL file and where its records end (appends write there, over preallocated zeros
/// when there are some).
#[derive(Debug)]
struct WalEnd {
    file: File,
    end: u64,
}

/// The files of full tiles, copied out of [`Derived`]: tiles as bytes, bundles as their
/// entries (shared, encoded by [`TileWork::files`] without the lock).
struct TileWork {
    tiles: Vec<(String, Vec<u8>)>,
    bundles: Vec<(String, Vec<Arc<[u8]>>)>,
    full_end: u64,
}

impl TileWork {
    /// Every file's path and bytes.
    fn files(self) -> Result<Vec<(String, Vec<u8>)>, LedgerError> {
        let mut files = self.tiles;
        for (path, entries) in self.bundles {
            let bytes = encode_bundle(entries.iter().map(|e| &e[..])).map_err(|source| {
                LedgerError::Bundle {
                    path: path.clone(),
                    source,
                }
            })?;
            files.push((path, bytes));
        }
        Ok(files)
    }
}

/// State derived from the WAL: the tree and what is published.
#[derive(Debug)]
struct Derived {
    tree: Tree,
    /// Full tiles and bundles for leaves `0..tiles_done` are written (a multiple of 256).
    tiles_done: u64,
    /// Entries `tiles_done..tree.size()`, kept for the next bundles (shared with a publisher
    /// that is writing them).
    entries: Vec<Arc<[u8]>>,
    /// Objects written but not yet fsynced.
    unsynced: Vec<String>,
    /// Partial tiles and bundles written since open, as `(level, index, path)` (bundles count
    /// as level 0); deleted once their full tile exists and a newer checkpoint is durable.
    partials: Vec<(u32, u64, String)>,
    /// The latest stored checkpoint.
    checkpoint: Option<SignedCheckpoint>,
    /// Where every signed checkpoint is also written ([`Ledger::export_checkpoints`]).
    export: Option<Export>,
}

/// A checkpoint export directory and the size last written to it.
#[derive(Debug)]
struct Export {
    dir: PathBuf,
    done: Option<u64>,
}

/// Group-commit counters since the ledger was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Entries made durable.
    pub appended: u64,
    /// Write + fsync batches (so `appended / commits` is the mean batch size).
    pub commits: u64,
}

/// What [`Ledger::open`] found and repaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recovery {
    /// Entries recovered from the WAL.
    pub entries: u64,
    /// Bytes of torn tail cut from the WAL (an append that never completed).
    pub torn_bytes: u64,
    /// Zero-filled bytes found after the last record (preallocated space, kept).
    pub preallocated_bytes: u64,
    /// Size of the checkpoint found on disk (0 if none).
    pub checkpoint_size: u64,
    /// Entries the WAL held beyond that checkpoint: left unsigned by a kill, a crash or a
    /// stop without a checkpoint, and signed by the checkpoint that opening writes.
    pub unsigned_entries: u64,
}

/// An open ledger. Thread-safe: share it with `Arc<Ledger>` and call [`Ledger::append`] from
/// any thread; concurrent appends share one write and one fsync.
pub struct Ledger {
    dir: PathBuf,
    origin: String,
    signer: SigningKey,
    verifier: Verifier,
    store: Box<dyn TileStore>,
    queue: Mutex<Queue>,
    /// Entries `0..durable` are fsynced and in the tree. Waiters poll it without the queue
    /// lock, so completing a batch does not make its members fight over that lock.
    durable: AtomicU64,
    /// A write or fsync failed.
    failed: AtomicBool,
    wal: Mutex<WalEnd>,
    /// Zero-filled space ahead of the WAL's end ([`Ledger::preallocate`]).
    space: wal::Space,
    derived: Mutex<Derived>,
    /// Held by whoever writes tiles and bundles (taken before `derived`), so the files of full
    /// tiles are written without holding `derived`, and appends go on meanwhile.
    publishing: Mutex<()>,
    /// Appends leave full tiles to [`Ledger::publish`] (a background publisher) instead of
    /// writing them on the committing thread.
    deferred: AtomicBool,
    /// `Derived::tiles_done`, readable without the lock (for the backlog check after a commit).
    published: AtomicU64,
    recovery: Recovery,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger")
            .field("dir", &self.dir)
            .field("origin", &self.origin)
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

/// Asks ext2/3/4 to place directories made under `dir` (the tile tree, made on the first
/// publish) as it places top-level ones, in another block group, by setting the directory's
/// `FS_TOPDIR_FL` (`chattr +T`). Best effort: other file systems refuse it, and it changes
/// nothing for a tile tree that already exists.
///
/// Without it the tile directories' inodes were allocated in the WAL's inode-table block (seen
/// with `ls -i` on this machine's ext4, which has no journal there), so every tile file created
/// dirtied the block each group commit's fdatasync writes for the WAL's own inode. In 4
/// interleaved pairs of predict-bench runs at 5,000 requests/s, open-loop p99 went from
/// 1.79/2.35/2.19/1.48 ms to 1.47/1.05/2.19/1.30 ms.
fn spread_subdirectories(dir: &Path) {
    use rustix::fs::{IFlags, ioctl_getflags, ioctl_setflags};
    let Ok(d) = File::open(dir) else {
        return;
    };
    if let Ok(flags) = ioctl_getflags(&d)
        && !flags.contains(IFlags::TOPDIR)
    {
        let _ = ioctl_setflags(&d, flags | IFlags::TOPDIR);
    }
}

/// Create `dir` (and missing parents) 0700.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Write `cp` to `dir/<tree size>`: created 0600 under a temporary name, fsynced, renamed into
/// place and the directory fsynced, so the file is there whole or not at all. A file of that
/// size already there is kept: if its bytes differ, [`LedgerError::ExportDiffers`].
pub fn export_checkpoint(dir: &Path, cp: &SignedCheckpoint) -> Result<(), LedgerError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let size = cp.checkpoint.size;
    private_dir(dir).map_err(io_err(dir.display().to_string()))?;
    let path = dir.join(size.to_string());
    let shown = path.display().to_string();
    match fs::read(&path) {
        Ok(existing) if existing == cp.text.as_bytes() => return Ok(()),
        Ok(_) => return Err(LedgerError::ExportDiffers { path: shown, size }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(shown)(e)),
    }
    // A dot name: never taken for a checkpoint by `latest_export`.
    let tmp = dir.join(format!(".{size}.tmp"));
    let write = || -> io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(cp.text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        sync_dir(dir)
    };
    write().map_err(io_err(shown))
}

/// The largest tree size exported to `dir` by [`Ledger::export_checkpoints`] and that file's
/// path; `None` if there is none. Names that are not a decimal size without leading zeros are
/// not checkpoints and are skipped.
pub fn latest_export(dir: &Path) -> io::Result<Option<(u64, PathBuf)>> {
    let mut best: Option<u64> = None;
    for e in fs::read_dir(dir)? {
        let name = e?.file_name();
        let Some(name) = name.to_str() else { continue };
        let canonical = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_digit())
            && (name == "0" || !name.starts_with('0'));
        if let Some(size) = canonical.then(|| name.parse::<u64>().ok()).flatten() {
            best = best.max(Some(size));
        }
    }
    Ok(best.map(|size| (size, dir.join(size.to_string()))))
}

impl Ledger {
    /// Open (or create) the ledger in `dir`: the WAL at `dir/wal`, tiles and the checkpoint
    /// under `dir`. `origin` names the log and its key (e.g. `airlock.example/ledger`).
    pub fn open(dir: &Path, origin: &str, signer: SigningKey) -> Result<Ledger, LedgerError> {
        private_dir(dir).map_err(io_err(dir.display().to_string()))?;
        spread_subdirectories(dir);
        Ledger::open_with_store(dir, Box::new(FsStore::new(dir)), origin, signer)
    }

    /// Open with the WAL in `dir` and the published objects in `store`.
    pub fn open_with_store(
        dir: &Path,
        store: Box<dyn TileStore>,
        origin: &str,
        signer: SigningKey,
    ) -> Result<Ledger, LedgerError> {
        let verifier = Verifier::new(origin, signer.verifying_key())?;
        private_dir(dir).map_err(io_err(dir.display().to_string()))?;
        let wal_path = dir.join(WAL_FILE);
        let wal_name = wal_path.display().to_string();
        let mut file = wal::open_rw(&wal_path).map_err(io_err(&wal_name))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(LedgerError::Locked { path: wal_name });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&wal_name)(e)),
        }

        let checkpoint = match store
            .read(CHECKPOINT_PATH)
            .map_err(io_err(CHECKPOINT_PATH))?
        {
            Some(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| NoteError::Malformed {
                    line: 1,
                    reason: "not utf-8",
                })?;
                Some(SignedCheckpoint::open(&text, &verifier)?)
            }
            None => None,
        };
        let cp_size = checkpoint.as_ref().map_or(0, |c| c.checkpoint.size);
        let keep_from = cp_size / TILE_WIDTH * TILE_WIDTH;

        let mut tree = Tree::new();
        let mut entries = Vec::new();
        let scan = wal::scan(&mut file, |index, entry, leaf| {
            tree.push(*leaf);
            if index >= keep_from {
                entries.push(Arc::from(entry));
            }
            Ok(())
        })
        .map_err(io_err(&wal_name))?;

        if !scan.has_header {
            // Only an empty file or a torn header write is acceptable here.
            let mut head = vec![0u8; scan.file_len.min(12) as usize];
            file.seek(SeekFrom::Start(0)).map_err(io_err(&wal_name))?;
            file.read_exact(&mut head).map_err(io_err(&wal_name))?;
            if scan.file_len >= 12 || MAGIC.get(..head.len()) != Some(head.as_slice()) {
                return Err(LedgerError::NotAWal { path: wal_name });
            }
        }
        let size = tree.size();
        // After the last record: zeros are preallocated space (kept); a torn final record is
        // an append that never returned, cut off below with the zeros after it. Anything else
        // is damage: refused before anything is written, so the bytes stay as they are. Checked
        // before the checkpoint, which damage inside the signed part also fails, because this
        // names the offset.
        let torn_bytes = if scan.has_header {
            match wal::inspect_end(&file, scan.valid_len, size).map_err(io_err(&wal_name))? {
                wal::LogEnd::Corrupt {
                    offset,
                    index,
                    defect,
                } => {
                    return Err(LedgerError::Corrupt {
                        path: wal_name,
                        offset,
                        index,
                        defect,
                    });
                }
                wal::LogEnd::Torn { offset, bytes } if offset == scan.valid_len => bytes,
                wal::LogEnd::Clean { offset, .. } if offset == scan.valid_len => 0,
                // INVARIANT: the scan and `inspect_end` accept the same records, and the file
                // is locked, so the end is where the scan stopped. Refuse rather than cut.
                _ => {
                    return Err(io_err(&wal_name)(io::Error::other(
                        "write-ahead log changed while it was read",
                    )));
                }
            }
        } else {
            // A torn header write (checked above), rewritten below.
            wal::torn_span(&file, 0, scan.file_len).map_err(io_err(&wal_name))?
        };
        if size < cp_size {
            return Err(LedgerError::WalBehindCheckpoint {
                wal: size,
                checkpoint: cp_size,
            });
        }
        if let Some(cp) = &checkpoint
            && tree.root(cp_size)? != cp.checkpoint.root
        {
            return Err(LedgerError::WalMismatch { size: cp_size });
        }
        let mut file_len = scan.file_len;
        if torn_bytes > 0 {
            file.set_len(scan.valid_len).map_err(io_err(&wal_name))?;
            file.sync_all().map_err(io_err(&wal_name))?;
            file_len = scan.valid_len;
        }
        let mut end = scan.valid_len;
        if !scan.has_header {
            file.write_all_at(MAGIC, 0).map_err(io_err(&wal_name))?;
            file.sync_all().map_err(io_err(&wal_name))?;
            sync_dir(dir).map_err(io_err(dir.display().to_string()))?;
            end = MAGIC.len() as u64;
            file_len = file_len.max(end);
        }

        let ledger = Ledger {
            dir: dir.to_path_buf(),
            origin: origin.to_owned(),
            signer,
            verifier,
            store,
            queue: Mutex::new(Queue {
                next: size,
                ..Queue::default()
            }),
            durable: AtomicU64::new(size),
            failed: AtomicBool::new(false),
            wal: Mutex::new(WalEnd { file, end }),
            space: wal::Space::new(&wal_path, file_len, end),
            derived: Mutex::new(Derived {
                tree,
                tiles_done: keep_from,
                entries,
                unsynced: Vec::new(),
                partials: Vec::new(),
                checkpoint: checkpoint.clone(),
                export: None,
            }),
            publishing: Mutex::new(()),
            deferred: AtomicBool::new(false),
            published: AtomicU64::new(keep_from),
            recovery: Recovery {
                entries: size,
                torn_bytes,
                preallocated_bytes: file_len - end,
                checkpoint_size: cp_size,
                unsigned_entries: size.saturating_sub(cp_size),
            },
        };
        if checkpoint.is_none() || size > cp_size {
            ledger.checkpoint()?;
        }
        Ok(ledger)
    }

    /// What opening found: entries recovered, torn bytes cut, checkpoint size, entries it
    /// found unsigned.
    pub fn recovery(&self) -> Recovery {
        self.recovery
    }

    /// The log origin (also the key name).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The directory holding the WAL.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The public verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The verifier key string, `<origin>+<hex key id>+<base64 key>`, for third parties.
    pub fn verifier_key(&self) -> String {
        self.verifier.to_string()
    }

    /// Number of durable entries.
    pub fn size(&self) -> Result<u64, LedgerError> {
        Ok(lock(&self.derived)?.tree.size())
    }

    /// Durable entries that no signed checkpoint covers yet (appended since the latest
    /// [`Ledger::checkpoint`]). Until one is signed, only the WAL's check bytes protect them:
    /// callers sign often (and on shutdown) to keep this small.
    pub fn unsigned_entries(&self) -> Result<u64, LedgerError> {
        let d = lock(&self.derived)?;
        let signed = d.checkpoint.as_ref().map_or(0, |c| c.checkpoint.size);
        Ok(d.tree.size().saturating_sub(signed))
    }

    /// Append an entry; returns its index once it is durable (written and fsynced).
    pub fn append(&self, entry: &Entry) -> Result<u64, LedgerError> {
        let bytes = entry.to_canonical_json()?;
        self.append_bytes(bytes)
    }

    /// Append an already encoded canonical entry (checked with [`Entry::parse`]).
    pub fn append_canonical(&self, bytes: Vec<u8>) -> Result<u64, LedgerError> {
        Entry::parse(&bytes)?;
        self.append_bytes(bytes)
    }

    /// Append several entries at once (one fsync); returns the index of the first. They get
    /// consecutive indices.
    pub fn append_many(&self, entries: &[Entry]) -> Result<u64, LedgerError> {
        let encoded = entries
            .iter()
            .map(Entry::to_canonical_json)
            .collect::<Result<Vec<_>, _>>()?;
        self.append_records(encoded)
    }

    fn append_bytes(&self, bytes: Vec<u8>) -> Result<u64, LedgerError> {
        self.append_records(vec![bytes])
    }

    /// Queue records and wait until they are durable (group commit). Returns the first index.
    /// Append entries encoded earlier with [`Entry::encode`] (one fsync); returns the index of
    /// the first. They get consecutive indices.
    pub fn append_encoded(&self, entries: Vec<crate::entry::Encoded>) -> Result<u64, LedgerError> {
        self.append_records(
            entries
                .into_iter()
                .map(crate::entry::Encoded::into_bytes)
                .collect(),
        )
    }

    fn append_records(&self, records: Vec<Vec<u8>>) -> Result<u64, LedgerError> {
        if records.is_empty() {
            return self.size();
        }
        let mut encoded = Vec::with_capacity(records.len());
        for bytes in records {
            if bytes.is_empty() || bytes.len() > MAX_ENTRY {
                return Err(EntryError::TooLarge { len: bytes.len() }.into());
            }
            let leaf = leaf_hash(&bytes);
            // Shared from here on (the tree's entries, a publisher's bundles): made by each
            // appender, not by the leader its batch waits for.
            encoded.push((leaf, Arc::<[u8]>::from(bytes)));
        }
        let mut q = lock(&self.queue)?;
        if self.failed.load(Ordering::Acquire) {
            return Err(LedgerError::Failed);
        }
        let first = q.next;
        q.next += encoded.len() as u64;
        let last = q.next - 1;
        for (leaf, bytes) in encoded {
            wal::encode_record(&bytes, &leaf, &mut q.buf);
            q.pending.push((leaf, bytes));
        }
        q.waiters.push(thread::current());
        loop {
            if self.durable.load(Ordering::Acquire) > last {
                return Ok(first);
            }
            if !q.leader && !q.pending.is_empty() {
                // Become the leader: write and fsync everything queued, then wake its members.
                q.leader = true;
                let buf = std::mem::take(&mut q.buf);
                let pending = std::mem::take(&mut q.pending);
                let waiters = std::mem::take(&mut q.waiters);
                let end = q.next;
                drop(q);
                let ok = self.commit(&buf, pending, end).is_ok();
                if !ok {
                    self.failed.store(true, Ordering::Release);
                }
                for w in &waiters {
                    w.unpark();
                }
                q = lock(&self.queue)?;
                q.leader = false;
                q.commits += u64::from(ok);
                if q.buf.capacity() == 0 {
                    let mut buf = buf;
                    buf.clear();
                    q.buf = buf;
                }
                // Hand over first: wake one writer of the next batch to lead it (all of them
                // if the ledger failed, so they see it), so its write and fsync overlap the
                // tile publishing below instead of waiting for it.
                if !ok {
                    q.waiters.iter().for_each(Thread::unpark);
                    return Err(LedgerError::Failed);
                }
                if let Some(next) = q.waiters.first() {
                    next.unpark();
                }
                drop(q);
                // Best effort: anything not written now is written by the next publish or
                // checkpoint. A background publisher that has fallen behind is helped out.
                if !self.deferred.load(Ordering::Acquire)
                    || end - self.published.load(Ordering::Acquire) > MAX_DEFERRED
                {
                    let _ = self.publish();
                }
                return Ok(first);
            }
            drop(q);
            // Wait for the batch holding our entries, or for our turn to lead.
            loop {
                if self.durable.load(Ordering::Acquire) > last {
                    return Ok(first);
                }
                if self.failed.load(Ordering::Acquire) {
                    return Err(LedgerError::Failed);
                }
                q = lock(&self.queue)?;
                if !q.leader {
                    break;
                }
                drop(q);
                thread::park();
            }
        }
    }

    /// Counters since open: durable entries appended and fsynced batches.
    pub fn stats(&self) -> Result<Stats, LedgerError> {
        let q = lock(&self.queue)?;
        Ok(Stats {
            appended: self.durable.load(Ordering::Acquire) - self.recovery.entries,
            commits: q.commits,
        })
    }

    /// Write and fsync one batch, extend the tree, and mark entries up to `end` durable.
    fn commit(
        &self,
        buf: &[u8],
        pending: Vec<(Hash, Arc<[u8]>)>,
        end: u64,
    ) -> Result<(), LedgerError> {
        {
            let mut w = lock(&self.wal)?;
            let at = w.end;
            self.space.reserve(at, buf.len() as u64);
            w.file.write_all_at(buf, at).map_err(io_err(WAL_FILE))?;
            w.end = at + buf.len() as u64;
            w.file.sync_data().map_err(io_err(WAL_FILE))?;
        }
        let mut d = lock(&self.derived)?;
        for (leaf, bytes) in pending {
            d.tree.push(leaf);
            d.entries.push(bytes);
        }
        self.durable.store(end, Ordering::Release);
        Ok(())
    }

    /// Zero-fills space ahead of the WAL's end when less than half an extension is left (1 MiB
    /// for a new ledger, up to 16 MiB for a large one), so that appends overwrite blocks that
    /// already exist and each group commit's `fdatasync` writes data only, without a journal
    /// commit for the new size. Returns the bytes added (0 when none were needed, or where the
    /// file system offers no `O_DIRECT`). Blocks for the writes: call it from a background
    /// thread (the server's tile publisher does). Appends go on meanwhile.
    pub fn preallocate(&self) -> Result<u64, LedgerError> {
        self.space.extend().map_err(io_err(WAL_FILE))
    }

    /// Leave the tiles and bundles of full tiles to [`Ledger::publish`] (`true`), called by a
    /// background publisher, instead of writing them on the thread that commits a batch, so
    /// no append waits for them. [`Ledger::checkpoint`] still publishes everything, and a
    /// commit that finds more than [`MAX_DEFERRED`] entries unpublished publishes them itself,
    /// so a publisher starved of CPU never lets the entries held in memory grow unbounded.
    pub fn defer_publishing(&self, deferred: bool) {
        self.deferred.store(deferred, Ordering::Release);
    }

    /// Write the tiles and bundles of the full tiles completed since the last publish (not
    /// fsynced: the next checkpoint makes them durable). The tree is locked only to copy them
    /// out; appends go on while the files are written.
    pub fn publish(&self) -> Result<(), LedgerError> {
        self.publish_with(None)
    }

    /// [`Ledger::publish`] for a background publisher: after each file it asks the store to
    /// start writing the file to disk ([`TileStore::write_behind`]) and pauses for `pause`, so
    /// the files reach the disk as a trickle the WAL's fsyncs do not queue behind. Left to the
    /// kernel, a busy ledger's files (megabytes a second) were written 30 s later in one burst
    /// every 5 s: in 20-second predict-bench runs at 5,000 requests/s, stalls of 50 to 120 ms
    /// every 5.1 s. In 2 interleaved pairs of such runs, silent-mode p99 went from 9.41 and
    /// 23.65 ms to 2.11 and 2.08 ms (max 64 and 61 ms to 12 and 14 ms).
    pub fn publish_paced(&self, pause: std::time::Duration) -> Result<(), LedgerError> {
        self.publish_with(Some(pause))
    }

    fn publish_with(&self, pace: Option<std::time::Duration>) -> Result<(), LedgerError> {
        let _one = lock(&self.publishing)?;
        // Under the tree's lock only what the files need is copied out (the tiles' hashes and
        // the entries' shared bytes): the commits waiting for that lock wait microseconds.
        let work = {
            let d = lock(&self.derived)?;
            match Ledger::full_tile_work(&d)? {
                Some(work) => work,
                None => return Ok(()),
            }
        };
        let written = self.write_work(work, pace)?;
        self.mark_published(&mut *lock(&self.derived)?, written);
        Ok(())
    }

    /// [`Ledger::publish`] with `publishing` and `derived` already held (the checkpoint).
    fn publish_locked(&self, d: &mut Derived) -> Result<(), LedgerError> {
        let Some(work) = Ledger::full_tile_work(d)? else {
            return Ok(());
        };
        let written = self.write_work(work, None)?;
        self.mark_published(d, written);
        Ok(())
    }

    /// Writes the files of `work` (not fsynced), paced as [`Ledger::publish_paced`] describes
    /// when `pace` is given; returns their paths and the new `tiles_done`.
    fn write_work(
        &self,
        work: TileWork,
        pace: Option<std::time::Duration>,
    ) -> Result<(Vec<String>, u64), LedgerError> {
        let full_end = work.full_end;
        let mut paths = Vec::new();
        for (path, bytes) in work.files()? {
            self.store.write(&path, &bytes).map_err(io_err(&path))?;
            if let Some(pause) = pace {
                // A hint: a failure leaves the file to the kernel's writeback.
                let _ = self.store.write_behind(&path);
                thread::sleep(pause);
            }
            paths.push(path);
        }
        Ok((paths, full_end))
    }

    /// What the full tiles completed since `tiles_done` need written: their tiles, the
    /// entries of their bundles, and the new `tiles_done`; `None` when there is none.
    fn full_tile_work(d: &Derived) -> Result<Option<TileWork>, LedgerError> {
        let full_end = d.tree.size() / TILE_WIDTH * TILE_WIDTH;
        if full_end <= d.tiles_done {
            return Ok(None);
        }
        let mut tiles = Vec::new();
        for t in tiles_between(d.tiles_done, full_end) {
            if t.width == TILE_WIDTH {
                tiles.push((t.path(), Ledger::tile_of(d, &t)?));
            }
        }
        let first = d.tiles_done / TILE_WIDTH;
        let bundles = d
            .entries
            .chunks(TILE_WIDTH as usize)
            .take(((full_end - d.tiles_done) / TILE_WIDTH) as usize)
            .enumerate()
            .map(|(k, chunk)| (bundle_path(first + k as u64, TILE_WIDTH), chunk.to_vec()))
            .collect();
        Ok(Some(TileWork {
            tiles,
            bundles,
            full_end,
        }))
    }

    /// Record files written for the full tiles up to `full_end`: they await the next fsync, and
    /// their entries leave memory.
    fn mark_published(&self, d: &mut Derived, (paths, full_end): (Vec<String>, u64)) {
        d.unsynced.extend(paths);
        let done = full_end.saturating_sub(d.tiles_done) as usize;
        d.entries.drain(..done.min(d.entries.len()));
        d.tiles_done = full_end;
        self.published.store(full_end, Ordering::Release);
    }

    /// Entries durable in the WAL whose full tiles and bundles are not yet written (always
    /// under [`TILE_WIDTH`] unless publishing is deferred).
    pub fn unpublished(&self) -> u64 {
        self.durable
            .load(Ordering::Acquire)
            .saturating_sub(self.published.load(Ordering::Acquire))
    }

    fn tile_of(d: &Derived, t: &TileRef) -> Result<Vec<u8>, LedgerError> {
        Ok(tile_bytes(&d.tree, t).ok_or(ProofError::SizeOutOfRange {
            size: (t.index + 1) * TILE_WIDTH,
            available: d.tree.size(),
        })?)
    }

    fn write_tile(&self, d: &mut Derived, t: &TileRef) -> Result<(), LedgerError> {
        let path = t.path();
        let bytes = Ledger::tile_of(d, t)?;
        self.store.write(&path, &bytes).map_err(io_err(&path))?;
        d.unsynced.push(path);
        Ok(())
    }

    /// Publish everything durable: full and partial tiles, entry bundles, and a freshly signed
    /// checkpoint (written last, atomically, after the tiles are durable).
    pub fn checkpoint(&self) -> Result<SignedCheckpoint, LedgerError> {
        let _one = lock(&self.publishing)?;
        let mut d = lock(&self.derived)?;
        let n = d.tree.size();
        if let Some(cp) = &d.checkpoint
            && cp.checkpoint.size == n
        {
            let cp = cp.clone();
            // An export that failed last time is tried again.
            Ledger::export_latest(&mut d)?;
            return Ok(cp);
        }
        self.publish_locked(&mut d)?;
        let floor = n / TILE_WIDTH * TILE_WIDTH;
        for t in tiles_between(floor, n) {
            self.write_tile(&mut d, &t)?;
            if t.width < TILE_WIDTH {
                d.partials.push((t.level, t.index, t.path()));
            }
        }
        if n > floor {
            let path = bundle_path(floor / TILE_WIDTH, n - floor);
            let bytes = encode_bundle(d.entries.iter().map(|e| &e[..])).map_err(|source| {
                LedgerError::Bundle {
                    path: path.clone(),
                    source,
                }
            })?;
            self.store.write(&path, &bytes).map_err(io_err(&path))?;
            d.unsynced.push(path.clone());
            d.partials.push((0, floor / TILE_WIDTH, path));
        }
        self.store.sync(&d.unsynced).map_err(io_err("tile"))?;
        d.unsynced.clear();
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size: n,
            root: d.tree.root(n)?,
            extensions: Vec::new(),
        }
        .sign(&self.signer)?;
        self.store
            .write(CHECKPOINT_PATH, cp.text.as_bytes())
            .map_err(io_err(CHECKPOINT_PATH))?;
        self.store
            .sync(&[CHECKPOINT_PATH.to_owned()])
            .map_err(io_err(CHECKPOINT_PATH))?;
        d.checkpoint = Some(cp.clone());
        // Partial tiles whose full tile now exists are no longer needed by any checkpoint
        // (readers of older checkpoints fall back to the full tile, of which they are a
        // prefix). Best effort: a leftover partial is harmless.
        let done = d.tiles_done;
        let mut keep = Vec::new();
        for (level, index, path) in std::mem::take(&mut d.partials) {
            let full_at = (index + 1)
                .saturating_mul(TILE_WIDTH)
                .checked_shl(TILE_HEIGHT * level)
                .unwrap_or(u64::MAX);
            if full_at <= done {
                let _ = self.store.delete(&path);
            } else {
                keep.push((level, index, path));
            }
        }
        d.partials = keep;
        // Last: a failed export leaves the checkpoint signed and stored, and is retried by the
        // next call.
        Ledger::export_latest(&mut d)?;
        Ok(cp)
    }

    /// From now on, also write every checkpoint this ledger signs to `dir` (created 0700 if
    /// missing), starting with the latest one now: each as a file named by its tree size, 0600,
    /// written whole or not at all ([`export_checkpoint`]). Pointed at storage the operator of
    /// this deployment cannot rewrite, the files pin the log's history: a rollback of the
    /// ledger to an older copy, or a rewrite, no longer verifies against the latest of them
    /// ([`latest_export`], [`crate::verify_dir_kept`]). Every later [`Ledger::checkpoint`]
    /// fails while the export does (after storing its checkpoint), so the failure is seen.
    pub fn export_checkpoints(&self, dir: &Path) -> Result<(), LedgerError> {
        let _one = lock(&self.publishing)?;
        let mut d = lock(&self.derived)?;
        d.export = Some(Export {
            dir: dir.to_path_buf(),
            done: None,
        });
        Ledger::export_latest(&mut d)
    }

    /// Write the latest checkpoint to the export directory, unless it is there already.
    fn export_latest(d: &mut Derived) -> Result<(), LedgerError> {
        let (Some(export), Some(cp)) = (d.export.as_mut(), d.checkpoint.as_ref()) else {
            return Ok(());
        };
        if export.done == Some(cp.checkpoint.size) {
            return Ok(());
        }
        export_checkpoint(&export.dir, cp)?;
        export.done = Some(cp.checkpoint.size);
        Ok(())
    }

    /// The latest checkpoint written (without making a new one).
    pub fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, LedgerError> {
        Ok(lock(&self.derived)?.checkpoint.clone())
    }

    /// The root of the tree of the first `size` entries.
    pub fn root(&self, size: u64) -> Result<Hash, LedgerError> {
        Ok(lock(&self.derived)?.tree.root(size)?)
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries.
    pub fn prove_inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
        Ok(lock(&self.derived)?.tree.inclusion_proof(index, size)?)
    }

    /// The consistency proof from the tree of `old` entries to that of `new` entries.
    pub fn prove_consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, LedgerError> {
        Ok(lock(&self.derived)?.tree.consistency_proof(old, new)?)
    }

    /// The canonical bytes of entry `index`.
    pub fn entry_bytes(&self, index: u64) -> Result<Vec<u8>, LedgerError> {
        let d = lock(&self.derived)?;
        let size = d.tree.size();
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size }.into());
        }
        let bytes = if index >= d.tiles_done {
            d.entries
                .get((index - d.tiles_done) as usize)
                .map(|e| e.to_vec())
                .ok_or(LedgerError::StoredEntry { index })?
        } else {
            let path = bundle_path(index / TILE_WIDTH, TILE_WIDTH);
            let raw = self
                .store
                .read(&path)
                .map_err(io_err(&path))?
                .ok_or(LedgerError::StoredEntry { index })?;
            let entries = decode_bundle(&raw).map_err(|source| LedgerError::Bundle {
                path: path.clone(),
                source,
            })?;
            entries
                .get((index % TILE_WIDTH) as usize)
                .map(|e| e.to_vec())
                .ok_or(LedgerError::StoredEntry { index })?
        };
        let expected = d.tree.level(0).get(index as usize).copied();
        if expected != Some(leaf_hash(&bytes)) {
            return Err(LedgerError::StoredEntry { index });
        }
        Ok(bytes)
    }

    /// A C2SP tlog-proof for entry `index` against the latest checkpoint (a new one is made
    /// if the latest does not cover `index`). The entry itself rides in the `extra` line, so
    /// the file alone, with the verifier key, proves what was logged.
    pub fn proof_file(&self, index: u64) -> Result<String, LedgerError> {
        let cp = match self.latest_checkpoint()? {
            Some(cp) if cp.checkpoint.size > index => cp,
            _ => self.checkpoint()?,
        };
        let proof = self.prove_inclusion(index, cp.checkpoint.size)?;
        let entry = self.entry_bytes(index)?;
        let mut out = format!(
            "{PROOF_HEADER}\nextra {}\nindex {index}\n",
            B64.encode(entry)
        );
        for h in &proof {
            out.push_str(&B64.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&cp.text);
        Ok(out)
    }

    /// Write a final checkpoint and close.
    pub fn close(self) -> Result<SignedCheckpoint, LedgerError> {
        self.checkpoint()
    }
}
