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

/// Where a store bound for `path` is written until it is complete: a name
/// of its own (process and count), so two writes of one path never share it.
pub fn staging_path(path: &Path) -> Result<PathBuf, StorageError> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    sibling(path, &format!("accel-partial-{}-{n}", std::process::id()))
}

/// The file or directory a write to `path` replaces: a symbolic link is
/// followed (its target is replaced, not the link), so the store is staged
/// beside the target, on its filesystem.
pub fn destination(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    // A link to nothing yet: what it names.
    if let (Ok(target), Some(dir)) = (std::fs::read_link(path), path.parent()) {
        return in_real_dir(&dir.join(target));
    }
    in_real_dir(path)
}

/// `path` with its directory's links resolved (the name itself kept).
fn in_real_dir(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
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
    let old = sibling(staging, "old")?;
    std::fs::rename(path, &old).map_err(fail)?;
    if let Err(e) = std::fs::rename(staging, path) {
        // Put the old store back rather than leave nothing.
        let _ = std::fs::rename(&old, path);
        return Err(fail(e));
    }
    // The new store is in place: an old one that will not go is only litter.
    if let Err(e) = remove(&old) {
        tracing::warn!("could not remove the replaced store {}: {e}", old.display());
    }
    Ok(())
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
        let name = staging.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with(".x.npy.accel-partial-"), "{name}");
        assert_ne!(staging_path(&path).unwrap(), staging);
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

    #[test]
    fn a_link_is_followed_to_the_store_it_names() {
        let d = std::fs::canonicalize(scratch("link")).unwrap();
        std::fs::create_dir_all(d.join("real")).unwrap();
        std::os::unix::fs::symlink(d.join("real/y.zarr"), d.join("y.zarr")).unwrap();
        // Dangling: the target's directory.
        assert_eq!(destination(&d.join("y.zarr")), d.join("real/y.zarr"));
        std::fs::create_dir_all(d.join("real/y.zarr")).unwrap();
        assert_eq!(destination(&d.join("y.zarr")), d.join("real/y.zarr"));
        assert_eq!(destination(&d.join("new.npy")), d.join("new.npy"));
        let _ = remove(&d);
    }
}
