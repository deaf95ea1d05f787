//! Writing DOT files, and SVG beside them when graphviz's `dot` is installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Writes `dot` to `path`; if graphviz is on the machine, also renders
/// `path` with an `.svg` extension and returns its path (its absence is not an error).
pub fn write_dot(path: &Path, dot: &str) -> Result<Option<PathBuf>> {
    std::fs::write(path, dot)
        .map_err(|e| Error::Invalid(format!("cannot write {}: {e}", path.display())))?;
    let svg = path.with_extension("svg");
    let rendered = Command::new("dot")
        .arg("-Tsvg")
        .arg(path)
        .arg("-o")
        .arg(&svg)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    Ok(rendered.then_some(svg))
}
