//! Where tiles, entry bundles and the checkpoint are kept: a small trait, so an object-store
//! backend can sit beside the local file system one.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// A key-value store of published log objects, addressed by tlog-tiles paths
/// (`checkpoint`, `tile/0/000`, `tile/entries/x001/002.p/7`...).
pub trait TileStore: Send + Sync + fmt::Debug {
    /// Read an object; `Ok(None)` if it does not exist.
    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>>;
    /// Write an object, replacing any old one atomically (readers see old or new bytes,
    /// never a mix). Not necessarily durable until [`TileStore::sync`].
    fn write(&self, path: &str, data: &[u8]) -> io::Result<()>;
    /// Make the named objects, written earlier, durable.
    fn sync(&self, paths: &[String]) -> io::Result<()>;
    /// Start writing an object written earlier to storage in the background, without waiting
    /// and without making it durable ([`TileStore::sync`] still does): a hint, so that a busy
    /// log's objects reach the disk as they are made rather than in the operating system's
    /// periodic bursts. Does nothing by default.
    fn write_behind(&self, _path: &str) -> io::Result<()> {
        Ok(())
    }
    /// Delete an object; deleting a missing object succeeds.
    fn delete(&self, path: &str) -> io::Result<()>;
    /// Every object path under `prefix` (a directory-like prefix such as `tile`), in no
    /// particular order; none if nothing is there. A verifier checks each one, since whatever
    /// is stored may be served.
    fn list(&self, prefix: &str) -> io::Result<Vec<String>>;
}

/// A [`TileStore`] on the local file system under one directory.
#[derive(Clone)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsStore { root: root.into() }
    }

    fn full(&self, path: &str) -> io::Result<PathBuf> {
        // Only tlog-tiles paths: no absolute paths, no `..`, no empty components.
        let ok = !path.is_empty()
            && path
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..")
            && !path.contains('\\');
        if !ok {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bad object path",
            ));
        }
        Ok(self.root.join(path))
    }
}

impl fmt::Debug for FsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsStore").field("root", &self.root).finish()
    }
}

/// fsync a directory so a rename or creation inside it is durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl TileStore for FsStore {
    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.full(path)?) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write(&self, path: &str, data: &[u8]) -> io::Result<()> {
        let full = self.full(path)?;
        let dir = full.parent().unwrap_or(&self.root);
        // The ledger names patients by keyed pseudonym only, but who did what is still nobody
        // else's business: directories 0700, files 0600, whatever the umask.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut tmp = full.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        drop(f);
        fs::rename(&tmp, &full)
    }

    fn delete(&self, path: &str) -> io::Result<()> {
        match fs::remove_file(self.full(path)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// `POSIX_FADV_DONTNEED` on the whole file (no length: to its end), which starts writeback
    /// of its dirty pages.
    fn write_behind(&self, path: &str) -> io::Result<()> {
        let f = File::open(self.full(path)?)?;
        rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed)?;
        Ok(())
    }

    /// Walks the directory tree without following links to directories (a loop cannot hold
    /// it up); a link to a file is listed, and reading it reads its target.
    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        let mut todo = vec![prefix.trim_end_matches('/').to_owned()];
        while let Some(rel) = todo.pop() {
            let entries = match fs::read_dir(self.full(&rel)?) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for e in entries {
                let e = e?;
                // A name that is not UTF-8 is no tlog-tiles path; skipped.
                let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let path = format!("{rel}/{name}");
                if e.file_type()?.is_dir() {
                    todo.push(path);
                } else {
                    out.push(path);
                }
            }
        }
        Ok(out)
    }

    fn sync(&self, paths: &[String]) -> io::Result<()> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for p in paths {
            let full = self.full(p)?;
            File::open(&full)?.sync_all()?;
            let mut d = full.parent().map(Path::to_path_buf);
            // Every directory from the object up to the root may be new.
            while let Some(dir) = d {
                if !dirs.contains(&dir) {
                    dirs.push(dir.clone());
                }
                if dir == self.root {
                    break;
                }
                d = dir.parent().map(Path::to_path_buf);
            }
        }
        for d in &dirs {
            sync_dir(d)?;
        }
        Ok(())
    }
}
