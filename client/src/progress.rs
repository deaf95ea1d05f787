//! A progress bar on stderr for long computations: tasks done of the total,
//! elapsed time and an estimate of what remains. Shown only when stderr is
//! a terminal (logs and pipes stay clean) and the client allows it.

use std::io::IsTerminal;
use std::time::Duration;

/// Runs shorter than this never show a bar.
const SHOW_AFTER: Duration = Duration::from_millis(500);

pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    /// A bar for `total` tasks, if `enabled` and stderr is a terminal.
    pub fn new(enabled: bool, total: u64) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total),
            indicatif::ProgressDrawTarget::stderr_with_hz(5),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{elapsed:>4} [{bar:40}] {pos}/{len} tasks, {per_sec}, ETA {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        // Nothing is drawn until the first tick past SHOW_AFTER.
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        Progress { bar: Some(bar) }
    }

    /// `done` tasks finished (of `total`, which may have changed).
    pub fn update(&self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            if bar.is_hidden() && bar.elapsed() >= SHOW_AFTER {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(5));
            }
            bar.set_length(total);
            bar.set_position(done.min(total));
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
