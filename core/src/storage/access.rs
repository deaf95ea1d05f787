//! Which stored arrays this process's tasks may open. A worker started with
//! `--storage-root DIR` reads and writes stored arrays only under those
//! directories: a client may otherwise name any file the worker's user can
//! reach. Paths are checked at every read and write, after resolving
//! symbolic links and `..`, and the resolved path is the one opened.

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use super::StorageError;

/// The directories set for this process (canonical), if any.
static ROOTS: OnceLock<Vec<PathBuf>> = OnceLock::new();

/// Confines this process's stored reads and writes to `roots` (existing
/// directories). Set once per process: a second, different set is refused.
pub fn confine_to(roots: &[PathBuf]) -> Result<(), StorageError> {
    let mut canonical = Vec::with_capacity(roots.len());
    for root in roots {
        let c = std::fs::canonicalize(root)
            .map_err(|e| StorageError::new(root, format!("storage root: {e}")))?;
        if !c.is_dir() {
            return Err(StorageError::new(root, "storage root is not a directory"));
        }
        canonical.push(c);
    }
    if canonical.is_empty() {
        return Ok(());
    }
    let set = ROOTS.get_or_init(|| canonical.clone());
    if *set != canonical {
        return Err(StorageError::new(
            &canonical[0],
            "this process's storage roots are set already, to other directories",
        ));
    }
    Ok(())
}

/// The path to open for `path`: itself where nothing confines this process,
/// else its resolved form, refused unless it lies under a storage root.
pub fn checked(path: &Path) -> Result<PathBuf, StorageError> {
    match ROOTS.get() {
        None => Ok(path.to_path_buf()),
        Some(roots) => confined(path, roots),
    }
}

/// `path` resolved (symbolic links followed, `..` applied) and required to lie
/// under one of `roots` (canonical directories). A path that does not exist
/// yet is resolved through its longest existing ancestor.
pub fn confined(path: &Path, roots: &[PathBuf]) -> Result<PathBuf, StorageError> {
    let resolved = resolve(path)?;
    if roots.iter().any(|r| resolved.starts_with(r)) {
        return Ok(resolved);
    }
    let list: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    Err(StorageError::new(
        path,
        format!(
            "outside the directories this worker may open ({}; see accel-worker \
             --storage-root){}",
            list.join(", "),
            if resolved.as_path() == path {
                String::new()
            } else {
                format!(": it resolves to {}", resolved.display())
            }
        ),
    ))
}

fn resolve(path: &Path) -> Result<PathBuf, StorageError> {
    if !path.is_absolute() {
        return Err(StorageError::new(
            path,
            "a stored array's path must be absolute",
        ));
    }
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        match std::fs::canonicalize(existing) {
            Ok(base) => {
                let mut out = base;
                for part in rest.iter().rev() {
                    out.push(part);
                }
                return Ok(out);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let name = match existing.components().next_back() {
                    Some(Component::Normal(name)) => name,
                    // `..` or `.` past what exists cannot be resolved safely.
                    _ => {
                        return Err(StorageError::new(
                            path,
                            "names `..` or `.` below a directory that does not exist",
                        ));
                    }
                };
                rest.push(name.to_os_string());
                existing = existing
                    .parent()
                    .ok_or_else(|| StorageError::new(path, "no part of this path exists"))?;
            }
            Err(e) => return Err(StorageError::new(path, format!("resolving: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::confined;
    use std::path::PathBuf;

    /// Removes its directory when dropped.
    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tree(name: &str) -> (Scratch, PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("accel-roots-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let base = std::fs::canonicalize(&dir).expect("canonical");
        let dir = Scratch(dir);
        let root = base.join("data");
        let outside = base.join("secret");
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::write(outside.join("key.npy"), b"x").expect("write");
        std::fs::write(root.join("a.npy"), b"x").expect("write");
        (dir, root, outside)
    }

    #[test]
    fn paths_under_a_root_are_allowed_resolved() {
        let (_d, root, _) = tree("allowed");
        let roots = [root.clone()];
        assert_eq!(
            confined(&root.join("a.npy"), &roots),
            Ok(root.join("a.npy"))
        );
        // Not there yet (a store about to be written): resolved through its parent.
        assert_eq!(
            confined(&root.join("sub/new.zarr/c/0"), &roots),
            Ok(root.join("sub/new.zarr/c/0"))
        );
        assert_eq!(
            confined(&root.join("sub/../a.npy"), &roots),
            Ok(root.join("a.npy"))
        );
    }

    #[test]
    fn escapes_by_dots_links_or_absolute_paths_are_refused() {
        let (_d, root, outside) = tree("refused");
        let roots = [root.clone()];
        let refused = |p: PathBuf| {
            let e = confined(&p, &roots).expect_err("refused");
            assert!(e.message.contains("--storage-root"), "{e}");
            e
        };
        refused(outside.join("key.npy"));
        refused(root.join("../secret/key.npy"));
        refused(PathBuf::from("/etc/passwd"));
        // A link inside the root that points out of it.
        std::os::unix::fs::symlink(&outside, root.join("link")).expect("symlink");
        let e = refused(root.join("link/key.npy"));
        assert!(e.message.contains("resolves to"), "{e}");
        // Through a link, then up past what exists.
        let e = confined(&root.join("missing/../../secret/key.npy"), &roots).expect_err("refused");
        assert!(e.message.contains("`..`"), "{e}");
        // A sibling whose name starts like the root's.
        std::fs::create_dir_all(root.with_file_name("data-other")).expect("mkdir");
        refused(root.with_file_name("data-other"));
        let e = confined(std::path::Path::new("relative.npy"), &roots).expect_err("refused");
        assert!(e.message.contains("absolute"), "{e}");
    }
}
