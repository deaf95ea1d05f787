//! Fault injection for the resilience tests, off unless a hidden flag of the
//! binary turns it on: a task of a chosen stage either kills its worker the
//! way a crashing kernel would, or stalls (holding its thread) until a gate
//! file appears or the task is no longer wanted.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Abort the process when a task whose stage label contains this starts.
    pub crash_on: Option<String>,
    /// Stall tasks whose stage label contains this...
    pub stall_on: Option<String>,
    /// ...until this file exists (or forever, while the task is wanted).
    pub gate: Option<PathBuf>,
    /// Take the GPU for lost when a task whose stage label contains this starts.
    pub lose_gpu_on: Option<String>,
}

impl Faults {
    /// Whether a task of stage `label` starting takes the GPU for lost.
    pub(crate) fn loses_gpu(&self, label: &str) -> bool {
        self.lose_gpu_on
            .as_deref()
            .is_some_and(|p| label.contains(p))
    }

    /// Called when a task starts, after its start was reported.
    pub(crate) fn on_start(&self, label: &str, still_wanted: impl Fn() -> bool) {
        if self.crash_on.as_deref().is_some_and(|p| label.contains(p)) {
            tracing::error!(label, "fault injection: this task aborts the worker");
            // Let the start report reach the scheduler first, as it would
            // for a kernel that crashes after running a while.
            std::thread::sleep(Duration::from_millis(300));
            std::process::abort();
        }
        if self.stall_on.as_deref().is_some_and(|p| label.contains(p)) {
            tracing::warn!(label, gate = ?self.gate, "fault injection: stalling");
            while still_wanted() && !self.gate.as_ref().is_some_and(|g| g.exists()) {
                std::thread::sleep(Duration::from_millis(20));
            }
            tracing::info!(label, "fault injection: stall over");
        }
    }
}
