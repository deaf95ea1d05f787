//! How much memory a task of each stage needs, projected from the plan alone
//! (before anything runs): the input chunks it reads (or the boxes of them a
//! stencil reads, or the boxes of stored arrays a fused read takes), the chunk
//! it makes, and its working space (a stencil's padded fields). A plan whose
//! task cannot fit under any worker's memory limit is refused at submission,
//! with a chunking that would fit.

use std::fmt;

use crate::plan::{ChunkKey, Plan, StageId, StageKind};
use crate::shape;

/// The projected peak memory of one task of a stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageMemory {
    pub stage: StageId,
    pub label: String,
    /// Bytes of the inputs a task holds while it runs.
    pub inputs: u64,
    /// Bytes of the chunk it makes.
    pub output: u64,
    /// Working space beyond its inputs and output.
    pub scratch: u64,
}

impl StageMemory {
    pub fn task_bytes(&self) -> u64 {
        self.inputs + self.output + self.scratch
    }
}

/// Bytes in human units.
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0 as f64;
        if b >= (1u64 << 40) as f64 {
            write!(f, "{:.1} TiB", b / (1u64 << 40) as f64)
        } else if b >= (1u64 << 30) as f64 {
            write!(f, "{:.1} GiB", b / (1u64 << 30) as f64)
        } else if b >= (1u64 << 20) as f64 {
            write!(f, "{:.1} MiB", b / (1u64 << 20) as f64)
        } else if b >= 1024.0 {
            write!(f, "{:.1} KiB", b / 1024.0)
        } else {
            write!(f, "{} bytes", self.0)
        }
    }
}

/// The tasks of a stage looked at: the first, one in the middle and the last
/// (edge chunks are smaller, interior ones read the most).
fn sample(count: usize) -> Vec<usize> {
    let mut v = vec![0, count / 2, count.saturating_sub(1)];
    v.dedup();
    v.retain(|&c| c < count);
    v
}

impl Plan {
    fn chunk_bytes(&self, key: ChunkKey) -> u64 {
        let st = self.stage(key.stage);
        (shape::size(&self.chunk_shape(key)) * st.meta.dtype.size()) as u64
    }

    /// The projected peak memory of a task of every stage.
    pub fn memory_projection(&self) -> Vec<StageMemory> {
        let same = self.same_as_earlier();
        let mut out: Vec<StageMemory> = Vec::with_capacity(self.stages.len());
        for (s, st) in self.stages.iter().enumerate() {
            let stage = StageId(s as u32);
            let m = match same[s].and_then(|e| out.get(e.index())) {
                Some(e) => StageMemory {
                    stage,
                    label: st.label.clone(),
                    ..e.clone()
                },
                None => self.stage_memory(stage),
            };
            out.push(m);
        }
        out
    }

    fn stage_memory(&self, stage: StageId) -> StageMemory {
        let st = self.stage(stage);
        let mut worst = StageMemory {
            stage,
            label: st.label.clone(),
            inputs: 0,
            output: 0,
            scratch: 0,
        };
        for c in sample(st.task_count()) {
            let key = ChunkKey {
                stage,
                chunk: c as u32,
            };
            let local = self.chunk_shape(key);
            let elems = shape::size(&local) as u64;
            let inputs: u64 = match self.input_regions(key) {
                // A stencil reads boxes of its inputs.
                Some(regions) => regions
                    .iter()
                    .zip(self.task_inputs(key))
                    .map(|((lo, hi), k)| {
                        let n: usize = lo.iter().zip(hi).map(|(l, h)| h - l).product();
                        (n * self.stage(k.stage).meta.dtype.size()) as u64
                    })
                    .sum(),
                None => self
                    .task_inputs(key)
                    .iter()
                    .map(|&k| self.chunk_bytes(k))
                    .sum(),
            };
            let (fused, scratch) = match &st.kind {
                StageKind::Map(exe) | StageKind::Partial { exe, .. } => {
                    let reads: u64 = exe
                        .program
                        .stored
                        .iter()
                        .map(|(_, s)| elems * s.dtype.size() as u64)
                        .sum();
                    (reads, 0)
                }
                StageKind::Stencil(k) => {
                    // Every field lives in the chunk grown by the halo.
                    let grown: usize = local.iter().zip(&k.halo).map(|(n, h)| n + 2 * h).product();
                    let fields = k.levels.len() as u64 + k.inputs.len() as u64;
                    (0, grown as u64 * st.meta.dtype.size() as u64 * fields)
                }
                _ => (0, 0),
            };
            let m = StageMemory {
                stage,
                label: st.label.clone(),
                inputs: inputs + fused,
                output: elems * st.meta.dtype.size() as u64,
                scratch,
            };
            if m.task_bytes() > worst.task_bytes() {
                worst = m;
            }
        }
        worst
    }

    /// Refuses a plan whose task cannot fit in `limit` bytes, naming the
    /// stage, the projected bytes and the limit, and suggesting chunks that fit.
    pub fn check_memory(&self, limit: u64, whose: &str) -> Result<(), String> {
        let Some(worst) = self
            .memory_projection()
            .into_iter()
            .max_by_key(StageMemory::task_bytes)
        else {
            return Ok(());
        };
        let need = worst.task_bytes();
        if need <= limit {
            return Ok(());
        }
        let st = self.stage(worst.stage);
        let chunk = st.meta.chunks.max_chunk();
        // Aim at half the limit: the worker runs other tasks and holds chunks too.
        let factor = need as f64 / (limit as f64 / 2.0);
        let per_axis = factor.powf(1.0 / chunk.len().max(1) as f64);
        let fits: Vec<usize> = chunk
            .iter()
            .map(|&c| ((c as f64 / per_axis).floor() as usize).max(1))
            .collect();
        let what = if worst.label.is_empty() {
            st.kind_name().to_string()
        } else {
            format!("{} [{}]", st.kind_name(), worst.label)
        };
        Err(format!(
            "stage {} ({what}) needs about {} per task ({} of inputs, {} of output, {} of working \
             space), more than {whose} ({}): chunks of {chunk:?} are too large; chunks of about \
             {fits:?} would need about half of it (rechunk the inputs, or create them so)",
            worst.stage.0,
            Bytes(need),
            Bytes(worst.inputs),
            Bytes(worst.output),
            Bytes(worst.scratch),
            Bytes(limit),
        ))
    }
}
