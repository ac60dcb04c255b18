//! The write-ahead log: the durable source of truth.
//!
//! File layout: the 12-byte magic `AIRLOCKWAL1\n`, then records
//! `len: u32 BE || entry (len bytes) || check (4 bytes)`, where `check` is the first four bytes
//! of the entry's RFC 6962 leaf hash. Recovery needs the leaf hash anyway, so the check costs
//! nothing extra. A record is valid when `1 <= len <= 65535`, all its bytes are there and the
//! check matches. Scanning stops at the first invalid record; everything from there on is a
//! torn tail (a write that never completed its fsync, so never acknowledged).

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::path::Path;

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
