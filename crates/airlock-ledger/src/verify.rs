//! Third-party verification: of a whole ledger directory, and of an offline proof file.
//!
//! [`verify_dir`] trusts only the verifier key. It checks the signed checkpoint, reads every
//! entry bundle, compares each entry with the write-ahead log (when present) and with the
//! level-0 tile, rebuilds the tree, compares every higher tile, and checks the checkpoint
//! root; with an older checkpoint it also checks that the old tree is a prefix of the new one.
//! The first failure is reported with the index and the object path where it was found.
//!
//! Every other tile and bundle file in the store is then checked against the same tree:
//! partial tiles of earlier sizes above all, which C2SP tlog-tiles requires a log to keep
//! serving until the full tile exists (a client holding an older checkpoint fetches them), and
//! leftovers the ledger no longer names. Keeping them and checking them all, rather than
//! deleting superseded partials, is what the spec allows clients to rely on. The store is
//! listed before the WAL is read, so on a live ledger every file listed covers entries already
//! durable; a file that covers entries beyond the log (bundles, and the WAL's unsigned tail)
//! cannot be vouched for by anything and fails.
//! After the WAL's last valid entry only zeros or a torn final record may follow; anything
//! else is damage, reported with its byte offset. [`VerifyReport::unsigned_entries`] counts
//! the entries no signed checkpoint covers yet.

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::thread;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::entry::{Entry, EntryError};
use crate::ledger::{CHECKPOINT_PATH, PROOF_HEADER, WAL_FILE};
use crate::merkle::{Hash, ProofError, Tree, leaf_hash, verify_consistency, verify_inclusion};
use crate::note::{Checkpoint, NoteError, SignedCheckpoint, Verifier};
use crate::store::{FsStore, TileStore};
use crate::tiles::{
    BundleError, ObjectPath, TILE_WIDTH, bundle_path, decode_bundle, hashes_at_level,
    parse_object_path, tile_bytes, tile_path, tiles_between,
};
use crate::wal;

/// Most hashes an inclusion proof can have (a tree of 2^64 leaves).
const MAX_PROOF_HASHES: usize = 64;
/// Entry bundles decoded and hashed together (bounded memory, enough work for every core).
const BUNDLE_GROUP: usize = 64;

/// Why a ledger or proof does not verify. Each variant names where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The verifier key is malformed.
    #[error("verifier key: {0}")]
    Key(#[source] NoteError),
    /// An object could not be read.
    #[error("cannot read `{path}`")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// No checkpoint.
    #[error("no checkpoint at `checkpoint`")]
    MissingCheckpoint,
    /// The checkpoint is malformed or its signature does not verify.
    #[error("checkpoint `{path}` does not verify: {source}")]
    Checkpoint {
        /// Which checkpoint (`checkpoint` or the older one given).
        path: String,
        /// The cause.
        #[source]
        source: NoteError,
    },
    /// An entry bundle the checkpoint needs is missing.
    #[error("entry bundle `{path}` is missing (entries from index {index} on)")]
    MissingBundle {
        /// The bundle path.
        path: String,
        /// Its first index.
        index: u64,
    },
    /// An entry bundle cannot be decoded.
    #[error("entry bundle `{path}` is malformed: {source}")]
    Bundle {
        /// The bundle path.
        path: String,
        /// The cause.
        #[source]
        source: BundleError,
    },
    /// An entry bundle holds the wrong number of entries.
    #[error("entry bundle `{path}` holds {found} entries, expected {expected}")]
    BundleWidth {
        /// The bundle path.
        path: String,
        /// Entries expected.
        expected: u64,
        /// Entries found.
        found: u64,
    },
    /// The write-ahead log ends before the checkpoint's size.
    #[error("write-ahead log ends at index {index} but the checkpoint covers {size} entries")]
    WalShort {
        /// Entries in the WAL.
        index: u64,
        /// The checkpoint size.
        size: u64,
    },
    /// The write-ahead log is damaged after its last valid entry: not zeros, not a torn final
    /// record (see [`wal::inspect_end`]). The entries after the damage cannot be read, so the
    /// log cannot be said to hold them.
    #[error("write-ahead log is damaged at byte {offset} (entry {index}): {defect}")]
    WalCorrupt {
        /// Byte offset of the first record that fails.
        offset: u64,
        /// Its entry index.
        index: u64,
        /// What is wrong there.
        defect: wal::Defect,
    },
    /// A published entry differs from the write-ahead log.
    #[error("entry {index} in `{path}` differs from the write-ahead log")]
    WalMismatch {
        /// The index.
        index: u64,
        /// The bundle path.
        path: String,
    },
    /// A tile the checkpoint needs is missing.
    #[error("tile `{path}` is missing")]
    MissingTile {
        /// The tile path.
        path: String,
    },
    /// An entry's leaf hash differs from its level-0 tile.
    #[error("entry {index} in `{bundle}` does not match its hash in tile `{tile}`")]
    LeafMismatch {
        /// The index.
        index: u64,
        /// The bundle path.
        bundle: String,
        /// The tile path.
        tile: String,
    },
    /// An entry in a bundle the checkpoint does not need (a partial bundle of an earlier size,
    /// a leftover) differs from the log.
    #[error("entry {index} in `{path}` differs from the log")]
    EntryMismatch {
        /// The entry's index in the log.
        index: u64,
        /// The bundle path.
        path: String,
    },
    /// A tile or bundle that covers entries the log does not hold: no checkpoint, bundle or
    /// write-ahead log entry vouches for it.
    #[error("`{path}` covers entries beyond the log's {size}")]
    BeyondLog {
        /// The object path.
        path: String,
        /// Entries the log holds.
        size: u64,
    },
    /// A tile differs from the recomputed tree.
    #[error("tile `{path}` differs from the recomputed tree at hash {position}")]
    TileMismatch {
        /// The tile path.
        path: String,
        /// The first differing hash in the tile.
        position: u64,
    },
    /// The recomputed root differs from the signed checkpoint.
    #[error("the entries do not hash to the signed root of checkpoint size {size}")]
    RootMismatch {
        /// The checkpoint size.
        size: u64,
    },
    /// The log is smaller than a checkpoint it signed earlier and that was kept elsewhere:
    /// rolled back to an older copy, or cut.
    #[error(
        "rolled back: the log holds {size} entries but the checkpoint `{source_name}` signed {kept}"
    )]
    RolledBack {
        /// Where the kept checkpoint came from.
        source_name: String,
        /// Its size.
        kept: u64,
        /// The log's checkpoint size.
        size: u64,
    },
    /// The older checkpoint is not a prefix of the current log.
    #[error("history rewritten: the log is not an extension of the checkpoint of size {old}")]
    Inconsistent {
        /// The old size.
        old: u64,
        /// The new size.
        new: u64,
    },
    /// A proof file is malformed (line numbers are 1-based).
    #[error("proof file is malformed at line {line}: {reason}")]
    ProofFormat {
        /// The line.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A proof does not verify.
    #[error("proof does not verify: {0}")]
    Proof(#[from] ProofError),
    /// The entry carried in a proof file is not a valid entry.
    #[error("entry in proof file is invalid: {0}")]
    Entry(#[from] EntryError),
}

fn io_err(path: &str) -> impl FnOnce(io::Error) -> VerifyError + '_ {
    move |source| VerifyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a successful [`verify_dir`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The verified checkpoint.
    pub checkpoint: Checkpoint,
    /// Entries found in bundles (may exceed the checkpoint size after a crash before the next
    /// checkpoint; all of them are checked against the tiles).
    pub entries: u64,
    /// Entries in the write-ahead log, if one was present.
    pub wal_entries: Option<u64>,
    /// Tiles compared.
    pub tiles: u64,
    /// Entry bundles read.
    pub bundles: u64,
    /// The older checkpoint's size, if consistency with it was proved.
    pub consistent_with: Option<u64>,
}

impl VerifyReport {
    /// Entries that no signed checkpoint covers: in the write-ahead log (or published) beyond
    /// the verified checkpoint. Only the WAL's check bytes protect them until the next
    /// checkpoint is signed; a crash, kill or stop without a checkpoint leaves them so.
    pub fn unsigned_entries(&self) -> u64 {
        self.wal_entries
            .unwrap_or(0)
            .max(self.entries)
            .saturating_sub(self.checkpoint.size)
    }
}

/// A signed checkpoint of the log kept somewhere else (saved earlier, exported to storage the
/// deployment's operator does not control, cosigned by a witness), which the log must extend.
#[derive(Debug, Clone, Copy)]
pub struct Kept<'a> {
    /// Where it came from, named in errors (a file path, `since`).
    pub source: &'a str,
    /// The signed note, as kept (other signatures on it, such as cosignatures, are ignored).
    pub text: &'a str,
}

/// Verify the ledger in `dir` with only the public `verifier_key`; with `since` (the text of
/// an older signed checkpoint), also prove the log extends it. What follows the write-ahead
/// log's last valid entry must be zeros or a torn final record ([`wal::inspect_end`]):
/// damage there fails with [`VerifyError::WalCorrupt`], since the entries after it are lost
/// to every reader.
pub fn verify_dir(
    dir: &Path,
    verifier_key: &str,
    since: Option<&str>,
) -> Result<VerifyReport, VerifyError> {
    let kept: Vec<Kept<'_>> = since
        .map(|text| Kept {
            source: "since",
            text,
        })
        .into_iter()
        .collect();
    verify_dir_kept(dir, verifier_key, &kept)
}

/// [`verify_dir`], proving the log extends each of the `kept` checkpoints: each must be signed
/// by `verifier_key`, no larger than the log's checkpoint ([`VerifyError::RolledBack`]), and
/// a prefix of it ([`VerifyError::Inconsistent`]). [`VerifyReport::consistent_with`] names the
/// largest.
pub fn verify_dir_kept(
    dir: &Path,
    verifier_key: &str,
    kept: &[Kept<'_>],
) -> Result<VerifyReport, VerifyError> {
    let wal_path = dir.join(WAL_FILE);
    let name = wal_path.display().to_string();
    let mut reader = if wal_path.exists() {
        Some(wal::Reader::open(&wal_path).map_err(io_err(&name))?)
    } else {
        None
    };
    let (report, wal_stop) =
        verify_store_at(&FsStore::new(dir), reader.as_mut(), verifier_key, kept)?;
    if let (Some(offset), Some(index)) = (wal_stop, report.wal_entries) {
        let file = std::fs::File::open(&wal_path).map_err(io_err(&name))?;
        let end = || wal::inspect_end(&file, offset, index).map_err(io_err(&name));
        if let wal::LogEnd::Corrupt { offset, .. } = end()? {
            // A live writer's append, read half-copied, can look like damage for an instant:
            // only damage seen twice at the same place counts.
            if let wal::LogEnd::Corrupt {
                offset: again,
                index,
                defect,
            } = end()?
                && again == offset
            {
                return Err(VerifyError::WalCorrupt {
                    offset,
                    index,
                    defect,
                });
            }
        }
    }
    Ok(report)
}

fn read_checkpoint(text: &[u8], path: &str, v: &Verifier) -> Result<Checkpoint, VerifyError> {
    let bad = |source| VerifyError::Checkpoint {
        path: path.to_owned(),
        source,
    };
    let text = std::str::from_utf8(text).map_err(|_| {
        bad(NoteError::Malformed {
            line: 1,
            reason: "not utf-8",
        })
    })?;
    Ok(SignedCheckpoint::open(text, v).map_err(bad)?.checkpoint)
}

/// Verify published objects in `store`, cross-checking entries against the write-ahead log
/// when a reader for it is given.
pub fn verify_store(
    store: &dyn TileStore,
    wal: Option<&mut wal::Reader>,
    verifier_key: &str,
    since: Option<&str>,
) -> Result<VerifyReport, VerifyError> {
    let kept: Vec<Kept<'_>> = since
        .map(|text| Kept {
            source: "since",
            text,
        })
        .into_iter()
        .collect();
    verify_store_at(store, wal, verifier_key, &kept).map(|(report, _)| report)
}

/// [`verify_store`], also returning where the WAL's valid records end (its byte offset, when a
/// WAL with a header was read), for [`verify_dir`] to inspect what follows.
fn verify_store_at(
    store: &dyn TileStore,
    wal: Option<&mut wal::Reader>,
    verifier_key: &str,
    kept: &[Kept<'_>],
) -> Result<(VerifyReport, Option<u64>), VerifyError> {
    let verifier = Verifier::parse(verifier_key).map_err(VerifyError::Key)?;
    let cp_bytes = store
        .read(CHECKPOINT_PATH)
        .map_err(io_err(CHECKPOINT_PATH))?
        .ok_or(VerifyError::MissingCheckpoint)?;
    let cp = read_checkpoint(&cp_bytes, CHECKPOINT_PATH, &verifier)?;
    let n = cp.size;
    // Listed before the WAL is read: see the module docs.
    let mut listed = store.list("tile").map_err(io_err("tile"))?;
    listed.sort();
    // Objects compared whole below, which the pass over `listed` need not read again.
    let mut checked: HashSet<String> = HashSet::new();

    // Stream the bundles in groups (those the checkpoint needs, then any full ones published
    // after it): decode, hash on all cores, and check each entry against the WAL and its
    // level-0 tile in index order, so the first failure named is the first bad index.
    let mut tree = Tree::new();
    let mut bundles_read = 0u64;
    let mut width_error = None;
    let mut wal = wal;
    let mut wal_buf = Vec::new();
    let mut wal_end: Option<u64> = None;
    let mut tile0: Option<(u64, String, Vec<u8>)> = None;
    let mut i = 0u64;
    let mut done = false;
    while !done {
        let mut group: Vec<(String, u64, Vec<u8>)> = Vec::new();
        while group.len() < BUNDLE_GROUP && !done {
            let start = i * TILE_WIDTH;
            let needed = start < n;
            let width = if needed {
                (n - start).min(TILE_WIDTH)
            } else {
                TILE_WIDTH
            };
            // A full bundle supersedes the partial one a checkpoint names (its prefix).
            let full = bundle_path(i, TILE_WIDTH);
            if let Some(b) = store.read(&full).map_err(io_err(&full))? {
                group.push((full, TILE_WIDTH, b));
                i += 1;
                continue;
            }
            done = true;
            if needed {
                let path = bundle_path(i, width);
                match store.read(&path).map_err(io_err(&path))? {
                    Some(b) if width < TILE_WIDTH => group.push((path, width, b)),
                    _ => return Err(VerifyError::MissingBundle { path, index: start }),
                }
            }
        }
        bundles_read += group.len() as u64;
        checked.extend(group.iter().map(|(path, _, _)| path.clone()));

        // An entry count that differs from the width is reported after the index checks,
        // which name the exact entry.
        let mut entries: Vec<&[u8]> = Vec::new();
        let mut owner: Vec<&str> = Vec::new();
        for (path, width, raw) in &group {
            let es = decode_bundle(raw).map_err(|source| VerifyError::Bundle {
                path: path.clone(),
                source,
            })?;
            let found = es.len() as u64;
            if found != *width {
                width_error.get_or_insert(VerifyError::BundleWidth {
                    path: path.clone(),
                    expected: *width,
                    found,
                });
            }
            owner.extend(std::iter::repeat_n(path.as_str(), es.len()));
            entries.extend(es);
        }
        let leaves = hash_leaves(&entries);

        for ((entry, leaf), bundle) in entries.iter().zip(&leaves).zip(&owner) {
            let index = tree.size();
            if let Some(w) = wal.as_deref_mut()
                && wal_end.is_none()
            {
                match w.next_into(&mut wal_buf).map_err(io_err(WAL_FILE))? {
                    Some(check) if wal_buf == *entry && leaf.get(..4) == Some(&check[..]) => {}
                    Some(_) => {
                        return Err(VerifyError::WalMismatch {
                            index,
                            path: (*bundle).to_owned(),
                        });
                    }
                    None if index < n => return Err(VerifyError::WalShort { index, size: n }),
                    None => wal_end = Some(index),
                }
            }
            let t = index / TILE_WIDTH;
            if tile0.as_ref().map(|x| x.0) != Some(t) {
                let start = t * TILE_WIDTH;
                let width = if start < n {
                    (n - start).min(TILE_WIDTH)
                } else {
                    TILE_WIDTH
                };
                let (path, bytes) = read_tile(store, 0, t, width, index < n)?;
                tile0 = Some((t, path, bytes.unwrap_or_default()));
            }
            if let Some((_, path, bytes)) = &tile0 {
                let off = (index % TILE_WIDTH) as usize * 32;
                if index < n && bytes.get(off..off + 32) != Some(leaf.as_slice()) {
                    return Err(VerifyError::LeafMismatch {
                        index,
                        bundle: (*bundle).to_owned(),
                        tile: path.clone(),
                    });
                }
            }
            tree.push(*leaf);
        }
    }
    let m = tree.size();
    let mut wal_stop = None;
    let wal_entries = match wal {
        None => None,
        Some(w) => Some(match wal_end {
            Some(end) => {
                wal_stop = Some(w.offset());
                end
            }
            None => {
                // Entries beyond the published ones (unsigned, so nothing else vouches for
                // them): each must pass its check, and the first that fails ends the log.
                let mut extra = 0u64;
                loop {
                    let at = w.offset();
                    match w.next_into(&mut wal_buf).map_err(io_err(WAL_FILE))? {
                        Some(check) if leaf_hash(&wal_buf).get(..4) == Some(&check[..]) => {
                            // In the tree too, for the tiles of a crash before their
                            // checkpoint (`m` still counts only published entries).
                            tree.push(leaf_hash(&wal_buf));
                            extra += 1;
                        }
                        Some(_) => {
                            wal_stop = Some(at);
                            break;
                        }
                        None => {
                            wal_stop = Some(w.offset());
                            break;
                        }
                    }
                }
                m + extra
            }
        }),
    };
    // A WAL without a header has no records to inspect after.
    let wal_stop = wal_stop.filter(|&at| at > 0);
    if let Some(len) = wal_entries
        && len < n
    {
        return Err(VerifyError::WalShort {
            index: len,
            size: n,
        });
    }
    if let Some(e) = width_error {
        return Err(e);
    }

    // Check every higher tile the checkpoint needs, and any later full one.
    let mut tiles = 0u64;
    for t in tiles_between(0, n).into_iter().chain(
        tiles_between(n / TILE_WIDTH * TILE_WIDTH, m / TILE_WIDTH * TILE_WIDTH)
            .into_iter()
            .filter(|t| t.width == TILE_WIDTH),
    ) {
        let needed = (t.index * TILE_WIDTH + t.width) << (8 * t.level) <= n;
        let (path, bytes) = read_tile(store, t.level, t.index, t.width, needed)?;
        let Some(bytes) = bytes else { continue };
        let want = tile_bytes(&tree, &t).unwrap_or_default();
        if let Some(pos) = first_diff(&bytes, &want) {
            return Err(VerifyError::TileMismatch {
                path,
                position: pos,
            });
        }
        // A partial read from its full tile checked only a prefix of that file.
        if path == t.path() {
            checked.insert(path);
        }
        tiles += 1;
    }

    let (more_tiles, more_bundles) = verify_other_objects(store, &listed, &checked, &tree)?;
    tiles += more_tiles;
    bundles_read += more_bundles;

    if tree
        .root(n)
        .map_err(|_| VerifyError::RootMismatch { size: n })?
        != cp.root
    {
        return Err(VerifyError::RootMismatch { size: n });
    }

    let mut consistent_with = None;
    for k in kept {
        let old = read_checkpoint(k.text.as_bytes(), k.source, &verifier)?;
        if old.size > n {
            return Err(VerifyError::RolledBack {
                source_name: k.source.to_owned(),
                kept: old.size,
                size: n,
            });
        }
        let proof = tree.consistency_proof(old.size, n)?;
        verify_consistency(old.size, n, &proof, &old.root, &cp.root).map_err(|_| {
            VerifyError::Inconsistent {
                old: old.size,
                new: n,
            }
        })?;
        consistent_with = consistent_with.max(Some(old.size));
    }

    Ok((
        VerifyReport {
            checkpoint: cp,
            entries: m,
            wal_entries,
            tiles,
            bundles: bundles_read,
            consistent_with,
        },
        wal_stop,
    ))
}

/// Check every listed tile and bundle not `checked` already against `tree`; returns how many
/// tiles and bundles were read. A file gone since the listing is skipped (the ledger deletes
/// partials once their full tile is durable), and so are names that are no tlog-tiles path.
fn verify_other_objects(
    store: &dyn TileStore,
    listed: &[String],
    checked: &HashSet<String>,
    tree: &Tree,
) -> Result<(u64, u64), VerifyError> {
    let size = tree.size();
    let leaves = tree.level(0);
    let (mut tiles, mut bundles) = (0u64, 0u64);
    for path in listed {
        if checked.contains(path) {
            continue;
        }
        let Some(object) = parse_object_path(path) else {
            continue;
        };
        let beyond = || VerifyError::BeyondLog {
            path: path.clone(),
            size,
        };
        match object {
            ObjectPath::Tile(t) => {
                let end = t
                    .index
                    .checked_mul(TILE_WIDTH)
                    .and_then(|s| s.checked_add(t.width));
                if end.is_none_or(|end| end > hashes_at_level(size, t.level)) {
                    return Err(beyond());
                }
                let Some(bytes) = store.read(path).map_err(io_err(path))? else {
                    continue;
                };
                let want = tile_bytes(tree, &t).ok_or_else(beyond)?;
                if let Some(position) = first_diff(&bytes, &want) {
                    return Err(VerifyError::TileMismatch {
                        path: path.clone(),
                        position,
                    });
                }
                tiles += 1;
            }
            ObjectPath::Bundle { index, width } => {
                let start = index.checked_mul(TILE_WIDTH).ok_or_else(beyond)?;
                let want = usize::try_from(start)
                    .ok()
                    .and_then(|s| leaves.get(s..s.checked_add(width as usize)?))
                    .ok_or_else(beyond)?;
                let Some(raw) = store.read(path).map_err(io_err(path))? else {
                    continue;
                };
                let entries = decode_bundle(&raw).map_err(|source| VerifyError::Bundle {
                    path: path.clone(),
                    source,
                })?;
                let got = hash_leaves(&entries);
                if let Some(k) = got.iter().zip(want).position(|(g, w)| g != w) {
                    return Err(VerifyError::EntryMismatch {
                        index: start + k as u64,
                        path: path.clone(),
                    });
                }
                if got.len() as u64 != width {
                    return Err(VerifyError::BundleWidth {
                        path: path.clone(),
                        expected: width,
                        found: got.len() as u64,
                    });
                }
                bundles += 1;
            }
        }
    }
    Ok((tiles, bundles))
}

/// Read a tile at `width`, falling back to the full tile (whose prefix it is).
fn read_tile(
    store: &dyn TileStore,
    level: u32,
    index: u64,
    width: u64,
    needed: bool,
) -> Result<(String, Option<Vec<u8>>), VerifyError> {
    let path = tile_path(level, index, width);
    if let Some(b) = store.read(&path).map_err(io_err(&path))? {
        return Ok((path, Some(b)));
    }
    if width < TILE_WIDTH {
        let full = tile_path(level, index, TILE_WIDTH);
        if let Some(mut b) = store.read(&full).map_err(io_err(&full))? {
            b.truncate((width * 32) as usize);
            return Ok((full, Some(b)));
        }
    }
    if needed {
        Err(VerifyError::MissingTile { path })
    } else {
        Ok((path, None))
    }
}

/// The index of the first differing 32-byte hash, or `None` if equal.
fn first_diff(a: &[u8], b: &[u8]) -> Option<u64> {
    let pos = a.chunks(32).zip(b.chunks(32)).position(|(x, y)| x != y);
    match pos {
        Some(p) => Some(p as u64),
        None if a.len() != b.len() => Some((a.len().min(b.len()) / 32) as u64),
        None => None,
    }
}

/// Leaf hashes of all entries, on all cores.
pub(crate) fn hash_leaves(entries: &[&[u8]]) -> Vec<Hash> {
    let threads = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(16);
    if threads <= 1 || entries.len() < 4096 {
        return entries.iter().map(|e| leaf_hash(e)).collect();
    }
    let chunk = entries.len().div_ceil(threads);
    let mut out = vec![[0u8; 32]; entries.len()];
    thread::scope(|s| {
        for (es, os) in entries.chunks(chunk).zip(out.chunks_mut(chunk)) {
            s.spawn(move || {
                for (e, o) in es.iter().zip(os.iter_mut()) {
                    *o = leaf_hash(e);
                }
            });
        }
    });
    out
}

/// A verified proof file.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedProof {
    /// The entry's index.
    pub index: u64,
    /// The entry's canonical bytes.
    pub entry_bytes: Vec<u8>,
    /// The entry, parsed strictly.
    pub entry: Entry,
    /// The checkpoint it is included in.
    pub checkpoint: Checkpoint,
}

/// Verify a C2SP tlog-proof file made by [`crate::Ledger::proof_file`] with only the public
/// verifier key. The entry is taken from the `extra` line (authenticated by the inclusion
/// proof, since its leaf hash must be in the signed tree).
pub fn verify_proof_file(text: &str, verifier_key: &str) -> Result<VerifiedProof, VerifyError> {
    let verifier = Verifier::parse(verifier_key).map_err(VerifyError::Key)?;
    let bad = |line, reason| VerifyError::ProofFormat { line, reason };
    let mut rest = text;
    let mut next_line = |line: usize| -> Result<&str, VerifyError> {
        let (l, r) = rest.split_once('\n').ok_or(bad(line, "unexpected end"))?;
        rest = r;
        Ok(l)
    };
    if next_line(1)? != PROOF_HEADER {
        return Err(bad(1, "missing `c2sp.org/tlog-proof@v1` header"));
    }
    let extra = next_line(2)?
        .strip_prefix("extra ")
        .ok_or(bad(2, "missing `extra` entry"))?;
    let entry_bytes = B64
        .decode(extra)
        .map_err(|_| bad(2, "extra is not base64"))?;
    if B64.encode(&entry_bytes) != extra {
        return Err(bad(2, "extra is not canonical base64"));
    }
    let idx = next_line(3)?
        .strip_prefix("index ")
        .ok_or(bad(3, "missing `index` line"))?;
    if idx.is_empty()
        || !idx.bytes().all(|b| b.is_ascii_digit())
        || (idx.len() > 1 && idx.starts_with('0'))
    {
        return Err(bad(3, "index is not a decimal without leading zeros"));
    }
    let index: u64 = idx.parse().map_err(|_| bad(3, "index too large"))?;
    let mut proof: Vec<Hash> = Vec::new();
    let mut line = 4;
    loop {
        let l = next_line(line)?;
        if l.is_empty() {
            break;
        }
        if proof.len() >= MAX_PROOF_HASHES {
            return Err(bad(line, "too many proof hashes"));
        }
        let h = B64
            .decode(l)
            .map_err(|_| bad(line, "proof hash is not base64"))?;
        let h: Hash = h
            .try_into()
            .map_err(|_| bad(line, "proof hash is not 32 bytes"))?;
        if B64.encode(h) != l {
            return Err(bad(line, "proof hash is not canonical base64"));
        }
        proof.push(h);
        line += 1;
    }
    let cp = SignedCheckpoint::open(rest, &verifier)
        .map_err(|source| VerifyError::Checkpoint {
            path: "proof file".into(),
            source,
        })?
        .checkpoint;
    verify_inclusion(index, cp.size, &leaf_hash(&entry_bytes), &proof, &cp.root)?;
    let entry = Entry::parse(&entry_bytes)?;
    Ok(VerifiedProof {
        index,
        entry_bytes,
        entry,
        checkpoint: cp,
    })
}
