//! What a workload run reports.

use std::time::Duration;

use accel::Planned;

#[derive(Clone, Debug)]
pub struct Report {
    pub name: &'static str,
    /// A second way of writing the same workload (e.g. "loop_until").
    pub variant: Option<&'static str>,
    /// Every timed run (after a warm-up); `time` is their median.
    pub times: Vec<Duration>,
    /// Human-readable problem size.
    pub size: String,
    /// Elements of the computation (for ns/element and GB/s).
    pub elements: usize,
    /// Bytes the fused kernels must read and write at least.
    pub bytes: usize,
    pub time: Duration,
    /// Tasks an unfused, one-task-per-chunk-per-op scheduler would run.
    pub tasks_unfused: usize,
    pub tasks: usize,
    /// The check against the scalar reference, e.g. "exact" or "max rel err 3e-16".
    pub check: String,
    /// Anything else worth seeing (files written, the value of pi…).
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(
        name: &'static str,
        size: String,
        planned: &Planned,
        elements: usize,
        bytes: usize,
        timing: Timing,
    ) -> Report {
        Report {
            name,
            variant: None,
            time: timing.median(),
            times: timing.times,
            size,
            elements,
            bytes,
            tasks_unfused: planned.tasks_unfused(),
            tasks: planned.tasks(),
            check: String::new(),
            notes: Vec::new(),
        }
    }

    /// This report as `variant`, with the plan's graphs written under its file stem.
    pub fn with_graphs(
        mut self,
        variant: Option<&'static str>,
        out: &std::path::Path,
        planned: &Planned,
    ) -> anyhow::Result<Report> {
        self.variant = variant;
        self.notes
            .push(write_graphs(out, &self.file_stem(), planned)?);
        Ok(self)
    }

    /// The name of this report's files: the workload, and its variant if any.
    pub fn file_stem(&self) -> String {
        match self.variant {
            None => self.name.to_string(),
            Some(v) => format!("{}-{v}", self.name),
        }
    }

    pub fn ns_per_element(&self) -> f64 {
        self.time.as_secs_f64() * 1e9 / self.elements.max(1) as f64
    }

    pub fn gbps(&self) -> f64 {
        self.bytes as f64 / self.time.as_secs_f64() / 1e9
    }

    /// The workload's name, with its variant.
    pub fn title(&self) -> String {
        match self.variant {
            Some(v) => format!("{} [{v}]", self.name),
            None => self.name.to_string(),
        }
    }

    pub fn print(&self) {
        println!("{}  ({})", self.title(), self.size);
        println!(
            "  time        {:.3} ms  ({:.2} ns/element, {:.1} GB/s)",
            self.time.as_secs_f64() * 1e3,
            self.ns_per_element(),
            self.gbps()
        );
        println!(
            "  tasks       {} unfused → {} fused",
            self.tasks_unfused, self.tasks
        );
        println!("  check       {}", self.check);
        for n in &self.notes {
            println!("  {n}");
        }
    }

    pub fn table_header() -> String {
        format!(
            "| {:<13} | {:<26} | {:>10} | {:>8} | {:>7} | {:>14} | {:<22} |\n|{}|{}|{}|{}|{}|{}|{}|",
            "workload",
            "size",
            "time (ms)",
            "ns/elem",
            "GB/s",
            "tasks (unfused → fused)",
            "check",
            "-".repeat(15),
            "-".repeat(28),
            "-".repeat(12),
            "-".repeat(10),
            "-".repeat(9),
            "-".repeat(16),
            "-".repeat(24)
        )
    }

    pub fn table_row(&self) -> String {
        format!(
            "| {:<13} | {:<26} | {:>10.2} | {:>8.3} | {:>7.1} | {:>14} | {:<22} |",
            self.title(),
            self.size,
            self.time.as_secs_f64() * 1e3,
            self.ns_per_element(),
            self.gbps(),
            format!("{} → {}", self.tasks_unfused, self.tasks),
            self.check
        )
    }
}

/// Writes the expression graph before and after fusion as DOT (and SVG when
/// graphviz is installed) into the output directory; returns a note naming them.
pub fn write_graphs(
    out: &std::path::Path,
    name: &str,
    planned: &Planned,
) -> anyhow::Result<String> {
    let before = out.join(format!("{name}.graph.dot"));
    let after = out.join(format!("{name}.fused.dot"));
    let svg = accel::dot::write_dot(&before, &planned.dot_graph())?;
    accel::dot::write_dot(&after, &planned.dot_fused())?;
    let kind = if svg.is_some() { "DOT + SVG" } else { "DOT" };
    Ok(format!(
        "graphs ({kind}): {} and {}",
        before.display(),
        after.display()
    ))
}

/// `repeats` timings of `f` (after one warm-up run), and its last result.
/// Each run's result is released before the next run's clock starts, as the
/// peers' harness does (`del out` after each timed run): freeing a large
/// result, and computing with the previous one still mapped, would
/// otherwise be timed too.
pub fn time_runs<T>(
    repeats: usize,
    mut f: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<(Timing, T)> {
    let mut last = f()?;
    let mut times = Vec::with_capacity(repeats.max(1));
    for _ in 0..repeats.max(1) {
        drop(last);
        let t = std::time::Instant::now();
        last = f()?;
        times.push(t.elapsed());
    }
    Ok((Timing { times }, last))
}

/// Wall times of the timed runs (after a warm-up run).
#[derive(Clone, Debug, Default)]
pub struct Timing {
    pub times: Vec<Duration>,
}

impl Timing {
    pub fn median(&self) -> Duration {
        let mut t = self.times.clone();
        t.sort_unstable();
        match t.len() {
            0 => Duration::ZERO,
            n if n % 2 == 1 => t[n / 2],
            n => (t[n / 2 - 1] + t[n / 2]) / 2,
        }
    }

    pub fn as_secs_f64(&self) -> f64 {
        self.median().as_secs_f64()
    }
}

/// Largest relative error of `got` against `want` (absolute where |want| < 1).
pub fn max_rel_err(got: impl Iterator<Item = f64>, want: impl Iterator<Item = f64>) -> f64 {
    got.zip(want)
        .map(|(g, w)| {
            if g == w {
                0.0
            } else {
                (g - w).abs() / w.abs().max(1.0)
            }
        })
        .fold(0.0, f64::max)
}
