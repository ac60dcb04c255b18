//! The write-ahead log: the durable source of truth.
//!
//! File layout: the 12-byte magic `AIRLOCKWAL1\n`, then records
//! `len: u32 BE || entry (len bytes) || check (4 bytes)`, where `check` is the first four bytes
//! of the entry's RFC 6962 leaf hash. Recovery needs the leaf hash anyway, so the check costs
//! nothing extra. A record is valid when `1 <= len <= 65535`, all its bytes are there and the
//! check matches. Scanning stops at the first invalid record; everything from there on is a
//! torn tail (a write that never completed its fsync, so never acknowledged).
//!
//! Zeros after the last record are not a torn tail but preallocated space ([`Space`]): a
//! record's length is never zero, so a scan stops there, and recovery keeps them.
//!
//! # Preallocation
//! An `fdatasync` after an append must also commit the file's new size and any newly
//! allocated blocks: on ext4 that is a journal commit (more writes, and a wait for the
//! journal thread) on every group commit. Overwriting blocks that already exist needs only
//! the data write and a cache flush. So a background thread ([`Space::extend`]) keeps zeros
//! written ahead of the end, as PostgreSQL does with its zero-filled WAL segments. The zeros
//! are written with `O_DIRECT`, so they never sit in the page cache as dirty pages that the
//! committing thread's `fdatasync` would have to flush; where `O_DIRECT` is unavailable
//! (tmpfs), there is no preallocation and appends extend the file as before.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::merkle::{Hash, leaf_hash};

/// Magic bytes at the start of the WAL file.
pub const MAGIC: &[u8; 12] = b"AIRLOCKWAL1\n";
/// Largest entry (entry bundles store lengths as `u16`).
pub const MAX_ENTRY: usize = 65_535;

/// Encode one record into `out`.
pub fn encode_record(entry: &[u8], leaf: &Hash, out: &mut Vec<u8>) {
    let len = u32::try_from(entry.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(entry);
    out.extend_from_slice(leaf.get(..4).unwrap_or(&[0; 4]));
}

/// The outcome of scanning a WAL.
#[derive(Debug, Default)]
pub struct Scan {
    /// Byte offset just past the last valid record.
    pub valid_len: u64,
    /// Total file length (larger than `valid_len` when there is a torn tail).
    pub file_len: u64,
    /// Whether the magic header was present.
    pub has_header: bool,
}

/// Scan a WAL, calling `visit(index, entry, leaf_hash)` for each valid record in order.
pub fn scan(
    file: &mut File,
    mut visit: impl FnMut(u64, &[u8], &Hash) -> Result<(), io::Error>,
) -> io::Result<Scan> {
    let file_len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(1 << 20, &mut *file);
    let mut magic = [0u8; 12];
    if file_len < 12 || r.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Ok(Scan {
            valid_len: 0,
            file_len,
            has_header: false,
        });
    }
    let mut pos: u64 = 12;
    let mut index = 0u64;
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut len = [0u8; 4];
        if read_full(&mut r, &mut len)? < 4 {
            break;
        }
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > MAX_ENTRY {
            break;
        }
        buf.resize(len + 4, 0);
        if read_full(&mut r, &mut buf)? < len + 4 {
            break;
        }
        let (entry, check) = buf.split_at(len);
        let leaf = leaf_hash(entry);
        if leaf.get(..4) != Some(check) {
            break;
        }
        visit(index, entry, &leaf)?;
        index += 1;
        pos += 4 + len as u64 + 4;
    }
    Ok(Scan {
        valid_len: pos,
        file_len,
        has_header: true,
    })
}

/// Read until `buf` is full or end of file; return the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(buf.get_mut(n..).unwrap_or(&mut [])) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Read every valid entry of the WAL at `path` without modifying it.
pub fn read_all(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut f = File::open(path)?;
    let mut out = Vec::new();
    scan(&mut f, |_, e, _| {
        out.push(e.to_vec());
        Ok(())
    })?;
    Ok(out)
}

/// A streaming reader of WAL records that does not hash: callers that hash the entries anyway
/// compare the check bytes themselves. Stops at the first structurally invalid record.
pub struct Reader {
    r: BufReader<Box<dyn Read + Send>>,
    ended: bool,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// Read records from `source`, which must start with the WAL header (otherwise the reader
    /// yields nothing).
    pub fn new(source: impl Read + Send + 'static) -> io::Result<Self> {
        let mut r = BufReader::with_capacity(1 << 20, Box::new(source) as Box<dyn Read + Send>);
        let mut magic = [0u8; 12];
        let ended = read_full(&mut r, &mut magic)? < 12 || &magic != MAGIC;
        Ok(Reader { r, ended })
    }

    /// Open the WAL file at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        Reader::new(File::open(path)?)
    }

    /// Read the next record's entry into `buf`; return its check bytes, or `None` at the end
    /// (or at a torn or malformed record).
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<[u8; 4]>> {
        if self.ended {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        if read_full(&mut self.r, &mut len)? < 4 {
            self.ended = true;
            return Ok(None);
        }
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > MAX_ENTRY {
            self.ended = true;
            return Ok(None);
        }
        buf.resize(len, 0);
        let mut check = [0u8; 4];
        if read_full(&mut self.r, buf)? < len || read_full(&mut self.r, &mut check)? < 4 {
            self.ended = true;
            return Ok(None);
        }
        Ok(Some(check))
    }
}

/// Open (creating if needed) the WAL for appending.
pub fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// The length of the span after `from` that holds non-zero bytes (a torn append), reading
/// `file` up to `len`; zero when everything after `from` is zeros (preallocated space).
pub fn torn_span(file: &File, from: u64, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut at = from;
    let mut last_nonzero = None;
    while at < len {
        let n = usize::try_from((len - at).min(buf.len() as u64)).unwrap_or(buf.len());
        let chunk = buf.get_mut(..n).unwrap_or_default();
        file.read_exact_at(chunk, at)?;
        if let Some(i) = chunk.iter().rposition(|&b| b != 0) {
            last_nonzero = Some(at + i as u64);
        }
        at += n as u64;
    }
    Ok(last_nonzero.map_or(0, |i| i + 1 - from))
}

// `rustix` flag values, for `std`'s `custom_flags`.
#[allow(clippy::cast_possible_wrap)]
const O_DIRECT: i32 = rustix::fs::OFlags::DIRECT.bits() as i32;
const EINVAL: i32 = rustix::io::Errno::INVAL.raw_os_error();

/// Alignment of `O_DIRECT` offsets, lengths and buffers (the largest logical block size in
/// use; 512-byte devices accept it too).
const ALIGN: u64 = 4096;
/// Bytes written per call while zero-filling, and the pause after each: the zeros go out in
/// small paced writes (at most about 250 MB/s), so a group commit's flush never queues behind
/// more than one of them (a burst of many megabytes stalled commits for tens of
/// milliseconds).
const ZERO_WRITE: usize = 256 << 10;
const ZERO_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);
/// Smallest and largest extension: a new ledger gets 1 MiB, a busy one up to 16 MiB at a
/// time (half of what it already holds), so small deployments and tests stay small.
const MIN_EXTENSION: u64 = 1 << 20;
const MAX_EXTENSION: u64 = 16 << 20;
/// Space kept between an extension and the committing writer when the writer has already
/// passed the zeros, so that it does not run into the range being filled.
const GAP: u64 = 256 << 10;

/// Zero-filled space ahead of the WAL's last record, and the coordination between the
/// committing writer ([`Space::reserve`]) and the thread that extends it ([`Space::extend`]).
/// The two never write the same bytes: an extension starts past everything the writer has
/// reserved, and a writer whose range meets an extension in progress waits for it.
#[derive(Debug)]
pub struct Space {
    path: PathBuf,
    state: Mutex<SpaceState>,
    done: Condvar,
    /// The `O_DIRECT` handle, opened on first use.
    direct: Mutex<Option<File>>,
}

#[derive(Debug)]
struct SpaceState {
    /// The file is at least this long (records and zeros).
    allocated: u64,
    /// End of what the writer has written or is writing.
    reserved: u64,
    /// The range an extension is filling.
    extending: Option<(u64, u64)>,
    /// `O_DIRECT` is unavailable here: no preallocation.
    unsupported: bool,
    /// The zeros found at open have been read into the page cache.
    warmed: bool,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the state consistent, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Space {
    /// The space of the WAL at `path`, `file_len` long, whose records end at `end`.
    pub fn new(path: &Path, file_len: u64, end: u64) -> Space {
        Space {
            path: path.to_path_buf(),
            state: Mutex::new(SpaceState {
                allocated: file_len.max(end),
                reserved: end,
                extending: None,
                unsupported: false,
                warmed: false,
            }),
            done: Condvar::new(),
            direct: Mutex::new(None),
        }
    }

    /// Before the writer writes `len` bytes at `at`: waits while an extension is filling any of
    /// them (only when the writer has caught up with an extension), then records the range.
    pub fn reserve(&self, at: u64, len: u64) {
        let end = at + len;
        let mut st = guard(&self.state);
        while st.extending.is_some_and(|(s, e)| at < e && s < end) {
            st = self.done.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        st.reserved = st.reserved.max(end);
    }

    /// Zero-fills the next extension when less than half an extension is left ahead of the
    /// writer; returns the bytes added (0 when there was enough, another extension was in
    /// progress, or `O_DIRECT` is unavailable). Blocks for the writes and one `fdatasync`: call
    /// it from a background thread.
    pub fn extend(&self) -> io::Result<u64> {
        // Zeros left by an earlier run: read them into the page cache once (see [`warm`]).
        let found = {
            let mut st = guard(&self.state);
            let found = (!st.warmed && st.allocated > st.reserved)
                .then(|| (st.reserved, st.allocated - st.reserved));
            st.warmed = true;
            found
        };
        if let Some((offset, len)) = found {
            let file = File::open(&self.path)?;
            let mut at = offset;
            while at < offset + len {
                let n = (offset + len - at).min(ZERO_WRITE as u64);
                warm(&file, at, n);
                at += n;
                std::thread::sleep(ZERO_PAUSE);
            }
        }
        let (start, end) = {
            let mut st = guard(&self.state);
            if st.unsupported || st.extending.is_some() {
                return Ok(0);
            }
            let size = (st.reserved / 2)
                .clamp(MIN_EXTENSION, MAX_EXTENSION)
                .div_ceil(ALIGN)
                * ALIGN;
            if st.allocated >= st.reserved + size / 2 {
                return Ok(0);
            }
            let from = if st.allocated > st.reserved {
                st.allocated
            } else {
                st.reserved + GAP
            };
            let start = from.div_ceil(ALIGN) * ALIGN;
            let end = start + size;
            st.extending = Some((start, end));
            (start, end)
        };
        let result = self.fill(start, end);
        let mut st = guard(&self.state);
        st.extending = None;
        match &result {
            Ok(true) => st.allocated = st.allocated.max(end),
            Ok(false) => st.unsupported = true,
            Err(_) => {}
        }
        self.done.notify_all();
        drop(st);
        result.map(|filled| if filled { end - start } else { 0 })
    }

    /// Writes zeros over `start..end` with `O_DIRECT` and syncs them; `false` when `O_DIRECT`
    /// is unavailable.
    fn fill(&self, start: u64, end: u64) -> io::Result<bool> {
        let mut direct = guard(&self.direct);
        if direct.is_none() {
            match OpenOptions::new()
                .write(true)
                .custom_flags(O_DIRECT)
                .open(&self.path)
            {
                Ok(f) => *direct = Some(f),
                Err(e) if e.raw_os_error() == Some(EINVAL) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        let Some(file) = direct.as_ref() else {
            return Ok(false);
        };
        // An aligned slice of zeros, without unsafe allocation.
        let raw = vec![0u8; ZERO_WRITE + ALIGN as usize];
        let skew = raw.as_ptr().align_offset(ALIGN as usize);
        let zeros = raw.get(skew..skew + ZERO_WRITE).unwrap_or_default();
        let mut at = start;
        while at < end {
            let n = usize::try_from((end - at).min(ZERO_WRITE as u64)).unwrap_or(ZERO_WRITE);
            match file.write_all_at(zeros.get(..n).unwrap_or_default(), at) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(EINVAL) && at == start => {
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
            // Read back into the page cache as it goes (a burst of 16 MiB of reads stalled
            // commits as a burst of writes did).
            warm(file, at, n as u64);
            at += n as u64;
            if at < end {
                std::thread::sleep(ZERO_PAUSE);
            }
        }
        file.sync_data()?;
        Ok(true)
    }
}

/// Asks the kernel to read `len` bytes at `offset` into the page cache (advice; failures are
/// ignored; callers pace it in small pieces). Zeros written with `O_DIRECT` are not cached, and a buffered write of part of a
/// page that is not cached first reads that page: without this, every 4 KiB of records began
/// with a synchronous disk read inside a group commit (0.07 reads per commit; p99 of one
/// write + fdatasync 0.197 ms without, 0.152 ms with, max 1.2-4.0 ms without, 0.45 ms with).
fn warm(file: &File, offset: u64, len: u64) {
    let _ = rustix::fs::fadvise(
        file,
        offset,
        std::num::NonZeroU64::new(len),
        rustix::fs::Advice::WillNeed,
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Whether files in `dir` can be opened with `O_DIRECT` (not on tmpfs).
    fn direct_io(dir: &Path) -> bool {
        let probe = dir.join("probe");
        std::fs::write(&probe, b"").unwrap();
        OpenOptions::new()
            .write(true)
            .custom_flags(O_DIRECT)
            .open(&probe)
            .is_ok()
    }

    #[test]
    fn extensions_never_overwrite_what_the_writer_wrote() {
        // On disk (the crate's directory), not a tmpfs /tmp without O_DIRECT.
        let d = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = d.path().join("wal");
        let file = open_rw(&path).unwrap();
        file.write_all_at(MAGIC, 0).unwrap();
        let space = Arc::new(Space::new(&path, 12, 12));
        let stop = Arc::new(AtomicBool::new(false));
        let extender = {
            let (space, stop) = (space.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut added = 0;
                while !stop.load(Ordering::Acquire) {
                    added += space.extend().unwrap();
                }
                added
            })
        };
        // The writer: records of varying sizes with non-zero bytes, each reserved first.
        let mut end = 12u64;
        let mut expected = MAGIC.to_vec();
        for i in 0..6000u32 {
            let len = 100 + (i * 37) % 900;
            let rec: Vec<u8> = (0..len).map(|k| 1 + ((i + k) % 251) as u8).collect();
            space.reserve(end, rec.len() as u64);
            file.write_all_at(&rec, end).unwrap();
            end += rec.len() as u64;
            expected.extend_from_slice(&rec);
        }
        stop.store(true, Ordering::Release);
        let added = extender.join().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            &bytes[..expected.len()],
            expected.as_slice(),
            "a record was overwritten"
        );
        assert!(bytes[expected.len()..].iter().all(|&b| b == 0));
        assert_eq!(torn_span(&file, end, bytes.len() as u64).unwrap(), 0);
        if direct_io(d.path()) {
            // About 3 MB written: the extensions kept ahead of it.
            assert!(added >= 2 << 20, "only {added} bytes preallocated");
            assert!(bytes.len() as u64 > end, "no zeros ahead of the end");
        } else {
            assert_eq!(added, 0);
        }
    }

    #[test]
    fn torn_span_ends_at_the_last_non_zero_byte() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("wal");
        let mut bytes = vec![7u8; 20];
        bytes.extend_from_slice(&[0, 0, 5, 0, 0, 0]);
        bytes.extend(std::iter::repeat_n(0u8, 3 << 20));
        std::fs::write(&path, &bytes).unwrap();
        let f = File::open(&path).unwrap();
        let len = bytes.len() as u64;
        assert_eq!(torn_span(&f, 20, len).unwrap(), 3);
        assert_eq!(torn_span(&f, 23, len).unwrap(), 0);
        assert_eq!(torn_span(&f, 10, len).unwrap(), 13);
        assert_eq!(torn_span(&f, len, len).unwrap(), 0);
    }
}
