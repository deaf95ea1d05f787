//! A new store is written under a hidden name beside its destination and
//! renamed into place once every task has written its part. A job that fails
//! leaves the destination as it was (absent, or the previous array) instead
//! of a store that reads as complete with zeros where chunks are missing.

use std::path::{Path, PathBuf};

use super::StorageError;

/// A hidden sibling of `path` with `suffix`: same directory, so the final
/// rename stays on one filesystem and is atomic.
fn sibling(path: &Path, suffix: &str) -> Result<PathBuf, StorageError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| StorageError::new(path, "the path names no file"))?;
    Ok(path.with_file_name(format!(".{name}.{suffix}")))
}

/// Where a store bound for `path` is written until it is complete.
pub fn staging_path(path: &Path) -> Result<PathBuf, StorageError> {
    sibling(path, "accel-partial")
}

/// Moves the complete store at `staging` to `path`, replacing what is there.
/// A file replaces a file in one rename; a directory (Zarr) takes two, the
/// old one moved aside first and removed after.
pub fn commit(staging: &Path, path: &Path) -> Result<(), StorageError> {
    let fail = |e: std::io::Error| {
        StorageError::new(
            path,
            format!("cannot move the written store into place: {e}"),
        )
    };
    if !staging.is_dir() || !path.exists() {
        return std::fs::rename(staging, path).map_err(fail);
    }
    let old = sibling(path, "accel-old")?;
    remove(&old).map_err(fail)?;
    std::fs::rename(path, &old).map_err(fail)?;
    if let Err(e) = std::fs::rename(staging, path) {
        // Put the old store back rather than leave nothing.
        let _ = std::fs::rename(&old, path);
        return Err(fail(e));
    }
    remove(&old).map_err(fail)
}

/// Removes a file or directory; nothing there is fine.
pub fn remove(path: &Path) -> std::io::Result<()> {
    let r = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("accel-staging-{}-{name}", std::process::id()));
        let _ = remove(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_staged_file_replaces_the_old_one() {
        let d = scratch("file");
        let path = d.join("x.npy");
        std::fs::write(&path, b"old").unwrap();
        let staging = staging_path(&path).unwrap();
        assert_eq!(staging, d.join(".x.npy.accel-partial"));
        std::fs::write(&staging, b"new").unwrap();
        commit(&staging, &path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert!(!staging.exists());
        let _ = remove(&d);
    }

    #[test]
    fn a_staged_directory_replaces_the_old_one_and_leaves_nothing_behind() {
        let d = scratch("dir");
        let path = d.join("y.zarr");
        std::fs::create_dir_all(path.join("c")).unwrap();
        std::fs::write(path.join("c/old"), b"old").unwrap();
        let staging = staging_path(&path).unwrap();
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::write(staging.join("zarr.json"), b"{}").unwrap();
        commit(&staging, &path).unwrap();
        assert!(path.join("zarr.json").exists() && !path.join("c").exists());
        let left: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
        assert_eq!(left.len(), 1, "{left:?}");
        // Nothing to move: an error naming the destination.
        let e = commit(&staging, &path).unwrap_err();
        assert!(e.to_string().contains("y.zarr"), "{e}");
        assert!(path.join("zarr.json").exists());
        assert!(staging_path(Path::new("/")).is_err());
        let _ = remove(&d);
    }
}
