//! The scheduler file (`accel-scheduler --scheduler-file PATH`): the
//! scheduler's address as JSON on a shared filesystem, for workers and
//! clients started by a batch system before they know where it runs.

use std::path::Path;
use std::time::{Duration, Instant};

/// The scheduler's address in the file at `path`, waiting up to `wait` for
/// the file to appear (the scheduler may start after its workers).
pub fn read(path: &Path, wait: Duration) -> Result<String, String> {
    let start = Instant::now();
    loop {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    format!("the scheduler file {} is not JSON: {e}", path.display())
                })?;
                return v["address"].as_str().map(str::to_string).ok_or_else(|| {
                    format!("the scheduler file {} has no address", path.display())
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && start.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => {
                return Err(format!(
                    "cannot read the scheduler file {}: {e}",
                    path.display()
                ));
            }
        }
    }
}
