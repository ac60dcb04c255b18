//! Files on disk that only the deployment's own user may read: directories 0700, files 0600.
//!
//! Modes are set explicitly (at creation, then again with `fchmod`/`chmod`) rather than left to
//! the process umask, which a service manager, a shell profile or a container may set to
//! anything: a home holds the sealed keyring, the metadata and the audit ledger, and an export
//! holds decrypted PHI.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use crate::StoreError;

/// The mode of every directory Airlock creates.
pub(crate) const DIR_MODE: u32 = 0o700;
/// The mode of every file Airlock creates.
pub(crate) const FILE_MODE: u32 = 0o600;

/// Create `dir` (not its parents) with mode 0700. `Ok(false)` when it already existed, in which
/// case its mode is left alone.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<bool> {
    match DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => {
            // The umask may have cleared bits of the mode asked for.
            std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Create `dir` and any missing parents up to (not including) `root`, each 0700.
pub(crate) fn create_private_dir_all(root: &Path, dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if dir != root
        && let Some(parent) = dir.parent()
    {
        create_private_dir_all(root, parent)?;
    }
    create_private_dir(dir).map(|_| ())
}

/// Create an empty file with mode 0600, failing if it exists.
pub(crate) fn create_private_file(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)?;
    f.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(f)
}

/// A temporary name beside `path`, unique across processes and across threads of this one, so
/// concurrent writers of one path never share a temporary file.
fn temp_beside(path: &Path) -> std::path::PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nonce: [u8; 8] = airlock_crypto::random_bytes();
    dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        hex::encode(nonce)
    ))
}

/// Write a file atomically with mode 0600: a temporary file, fsync, rename over `path`, fsync
/// the directory. A reader sees the old content or the new, never part of either.
pub(crate) fn write_atomic_io(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_beside(path);
    let res = (|| {
        let mut f = create_private_file(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// [`write_atomic_io`], naming `path` in the error.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_atomic_io(path, bytes).map_err(StoreError::io(path))
}

/// Set `path` (not following a link) to 0700 if it is a directory or 0600 if it is a file, when
/// it has any other mode; `Ok(true)` when it changed. A missing path is left alone.
pub(crate) fn make_private(path: &Path) -> io::Result<bool> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let want = if md.is_dir() {
        DIR_MODE
    } else if md.is_file() {
        FILE_MODE
    } else {
        // A link's own mode means nothing; what it points to is not ours to change.
        return Ok(false);
    };
    if md.permissions().mode() & 0o7777 == want {
        return Ok(false);
    }
    std::fs::set_permissions(path, Permissions::from_mode(want))?;
    Ok(true)
}

/// [`make_private`] on `dir` and everything under it; returns how many modes changed.
pub(crate) fn make_private_tree(dir: &Path) -> io::Result<usize> {
    let mut changed = usize::from(make_private(dir)?);
    if !std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        return Ok(changed);
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            changed += make_private_tree(&entry.path())?;
        } else {
            changed += usize::from(make_private(&entry.path())?);
        }
    }
    Ok(changed)
}

/// Whether users other than the owner have any access to `path`.
pub(crate) fn open_to_others(md: &std::fs::Metadata) -> bool {
    md.permissions().mode() & 0o077 != 0
}

#[cfg(test)]
mod tests {

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn created_files_and_directories_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        assert!(create_private_dir(&root).unwrap());
        assert!(!create_private_dir(&root).unwrap());
        let deep = root.join("a").join("b");
        create_private_dir_all(&root, &deep).unwrap();
        for d in [&root, &root.join("a"), &deep] {
            assert_eq!(mode(d), DIR_MODE, "{}", d.display());
        }
        let f = deep.join("f");
        write_atomic(&f, b"one").unwrap();
        write_atomic(&f, b"two").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        assert_eq!(mode(&f), FILE_MODE);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&deep).unwrap().count(), 1);
    }

    #[test]
    fn a_tree_is_made_private() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("d");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("sub").join("f"), b"x").unwrap();
        std::fs::set_permissions(&d, Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(d.join("sub").join("f"), Permissions::from_mode(0o644)).unwrap();
        assert!(make_private_tree(&d).unwrap() >= 2);
        assert_eq!(mode(&d), DIR_MODE);
        assert_eq!(mode(&d.join("sub")), DIR_MODE);
        assert_eq!(mode(&d.join("sub").join("f")), FILE_MODE);
        assert_eq!(make_private_tree(&d).unwrap(), 0);
    }
}
