//! Time loops run on row bands. A stencil loop over a field that fits in a
//! core's cache is bound by per-task work around the chunk, not by the
//! cells inside it: on a 200² plate in 100² chunks, each fused task computes
//! its halo columns as well as its halo rows. Rechunked to bands that span
//! the whole last axis (as many bands as there were chunks), a task has halos
//! only above and below it, and none to compute beyond the plate's side
//! edges, and waits only for the bands next to it. There are as many bands
//! as the field had chunks, or as cores where fewer and known: a band per
//! core leaves no core idle and computes the fewest halo rows.
//!
//! A larger field is split further only when its chunks are fewer than the
//! cores (known): a 2000² plate in four 1000² chunks keeps four of sixteen
//! cores busy. Its rows are split into more bands, its columns kept as they
//! were, until there is a chunk per core: eight bands of 250 rows in two
//! columns. Bands are at least [`MIN_WIDE_BAND_ROWS`] rows so that their
//! halo rows stay a small part of them. Not with a GPU: it runs the tasks
//! one after another and pays per task (heat on a 2000² plate took 192 ms
//! on 424 tasks against 56 ms on 104, on an H200).
//!
//! The loop's input is rechunked into bands once and its result back to the
//! original chunks once: the values are those of the loop as written.

use crate::error::Result;
use crate::graph::{Graph, Node, NodeId};
use crate::op::{Meta, Op, Remap, Repeat};
use crate::shape::Chunks;

/// Fields up to this size (bytes) count as small.
pub const SMALL_FIELD_BYTES: usize = 2 << 20;

/// Bands are at least this many rows (fewer bands than chunks then).
const MIN_BAND_ROWS: usize = 16;

/// Bands of a field larger than [`SMALL_FIELD_BYTES`] are at least this many
/// rows: a task fusing D steps computes 2·D halo rows beyond its band.
pub const MIN_WIDE_BAND_ROWS: usize = 64;

/// Fewest steps for which a larger field is rechunked into bands: the field
/// is copied into bands and back (a copy of it in memory at a time), which
/// a loop of one to three steps would not repay.
const MIN_WIDE_STEPS: usize = 4;

/// `graph` with every small stencil loop that splits its field's last axis
/// into chunks, and (with `wide`) every larger one of fewer chunks than
/// `cores`, run on row bands (at most one per core of `cores`); the graph
/// itself when there is none.
pub fn band_loops(graph: &Graph, cores: Option<usize>, wide: bool) -> Result<Graph> {
    let banded: Vec<Option<(Meta, Repeat)>> = graph
        .nodes
        .iter()
        .map(|n| match &n.op {
            Op::Repeat(r) => {
                let input = n.inputs.first().and_then(|i| graph.nodes.get(i.index()))?;
                let input = &input.meta;
                banded_loop(r, input, cores, wide)
            }
            _ => None,
        })
        .collect();
    if banded.iter().all(Option::is_none) {
        return Ok(graph.clone());
    }
    let mut out = Graph::new();
    let mut remap: Vec<NodeId> = Vec::with_capacity(graph.len());
    for (node, band) in graph.nodes.iter().zip(banded) {
        let inputs: Vec<NodeId> = node
            .inputs
            .iter()
            .map(|i| remap.get(i.index()).copied().ok_or_else(|| dangling(*i)))
            .collect::<Result<_>>()?;
        let id = match band {
            None => out.push_checked_inputs(Node {
                op: node.op.clone(),
                inputs,
                meta: node.meta.clone(),
            })?,
            Some((meta, repeat)) => {
                let nd = meta.shape.len();
                let into = out.push(Node {
                    op: Op::Remap(Remap::identity(nd)),
                    inputs,
                    meta: meta.clone(),
                })?;
                let looped = out.push(Node {
                    op: Op::Repeat(std::sync::Arc::new(repeat)),
                    inputs: vec![into],
                    meta,
                })?;
                out.push(Node {
                    op: Op::Remap(Remap::identity(nd)),
                    inputs: vec![looped],
                    meta: node.meta.clone(),
                })?
            }
        };
        remap.push(id);
    }
    out.outputs = graph
        .outputs
        .iter()
        .map(|o| remap.get(o.index()).copied().ok_or_else(|| dangling(*o)))
        .collect::<Result<_>>()?;
    Ok(out)
}

fn dangling(id: NodeId) -> crate::error::Error {
    crate::error::Error::Graph(format!("node {} is read before it is defined", id.0))
}

/// The banded field and loop, when `r` over a field of `input` qualifies: a
/// field of two or more axes, small with its last axis split into chunks,
/// or (`wide`) larger and in fewer chunks than `cores`; and a step of elementwise
/// work and neighbour reads only (nothing whose values depend on how the
/// field is chunked) that reads neighbours.
fn banded_loop(
    r: &Repeat,
    input: &Meta,
    cores: Option<usize>,
    wide: bool,
) -> Option<(Meta, Repeat)> {
    let nd = input.shape.len();
    let bytes = crate::shape::size(&input.shape).saturating_mul(input.dtype.size());
    if nd < 2 || bytes == 0 {
        return None;
    }
    let bands = if bytes <= SMALL_FIELD_BYTES {
        let last_split = input.chunks.0.last().is_some_and(|c| c.len() > 1);
        if !last_split {
            return None;
        }
        bands(input, cores)?
    } else if wide && r.times >= MIN_WIDE_STEPS {
        bands_for_cores(input, cores?)?
    } else {
        return None;
    };
    let plain = r
        .body
        .nodes
        .iter()
        .all(|n| matches!(n.op, Op::RepeatArg) || n.op.is_elementwise() || n.op.is_stencil());
    let reads_neighbours = r.body.nodes.iter().any(|n| n.op.is_stencil());
    if !plain || !reads_neighbours {
        return None;
    }
    let rechunk = |m: &Meta| -> Meta {
        let off = nd.saturating_sub(m.shape.len());
        let chunks = m
            .chunks
            .0
            .iter()
            .enumerate()
            .map(|(d, c)| match bands.0.get(off + d) {
                Some(b) if m.shape.get(d) == input.shape.get(off + d) => b.clone(),
                _ => c.clone(),
            })
            .collect();
        Meta {
            chunks: Chunks(chunks),
            ..m.clone()
        }
    };
    let mut body = Graph::new();
    for n in &r.body.nodes {
        body.push(Node {
            op: n.op.clone(),
            inputs: n.inputs.clone(),
            meta: rechunk(&n.meta),
        })
        .ok()?;
    }
    body.outputs = r.body.outputs.clone();
    let meta = rechunk(input);
    let repeat = Repeat {
        times: r.times,
        body,
    };
    super::repeat::check(&repeat, &meta).ok()?;
    Some((meta, repeat))
}

/// The band chunks of a field: the last axis whole, the first split into as
/// many bands as the field had chunks or as there are `cores`, whichever is
/// fewer (each at least [`MIN_BAND_ROWS`] rows), the others as they were.
fn bands(input: &Meta, cores: Option<usize>) -> Option<Chunks> {
    let chunks: usize = input.chunks.0.iter().map(Vec::len).product();
    let rows = *input.shape.first()?;
    let count = chunks
        .min(cores.unwrap_or(chunks))
        .min(rows / MIN_BAND_ROWS)
        .max(1);
    spanning(input, count)
}

/// The chunks of a larger field run on one task per core, where its chunks
/// are fewer than `cores`: the first axis split into `count` bands whose
/// heights differ by at most one row (each at least [`MIN_WIDE_BAND_ROWS`]
/// rows) so that, with the other axes' chunks as they were, there are about
/// as many chunks as cores; None where that makes no more chunks than there
/// are. The other axes keep their splits: a band as wide as a 2000-cell row
/// would leave the kernel cache bands of a few rows, each computing its halo
/// rows again.
fn bands_for_cores(input: &Meta, cores: usize) -> Option<Chunks> {
    let along = |d: usize| input.chunks.0.get(d).map_or(1, Vec::len);
    let others: usize = (1..input.shape.len()).map(along).product();
    let rows = *input.shape.first()?;
    let count = cores.div_ceil(others.max(1)).min(rows / MIN_WIDE_BAND_ROWS);
    if count <= along(0) || input.chunks.0.len() != input.shape.len() {
        return None;
    }
    // The first `rows % count` bands take one row more.
    let (base, taller) = (rows / count, rows % count);
    let mut out = input.chunks.0.clone();
    out[0] = (0..count).map(|b| base + usize::from(b < taller)).collect();
    Some(Chunks(out))
}

/// `count` bands of equal height (the last one shorter) along the first
/// axis, the last axis whole, the others as they were.
fn spanning(input: &Meta, count: usize) -> Option<Chunks> {
    let nd = input.shape.len();
    let rows = *input.shape.first()?;
    let height = rows.div_ceil(count.max(1));
    if height == 0 {
        return None;
    }
    let mut first = vec![height; rows / height];
    if rows % height != 0 {
        first.push(rows % height);
    }
    let mut out = input.chunks.0.clone();
    if out.len() != nd || nd < 2 {
        return None;
    }
    out[0] = first;
    out[nd - 1] = vec![input.shape[nd - 1]];
    Some(Chunks(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;

    fn meta(shape: &[usize], chunks: Vec<Vec<usize>>) -> Meta {
        Meta {
            shape: shape.to_vec(),
            dtype: DType::F64,
            chunks: Chunks(chunks),
        }
    }

    #[test]
    fn bands_span_the_last_axis_as_many_as_the_chunks() {
        // 2 × 2 chunks: four bands of 50 rows.
        let m = meta(&[200, 200], vec![vec![100, 100], vec![100, 100]]);
        assert_eq!(bands(&m, None).unwrap().0, vec![vec![50; 4], vec![200]]);
        // One per core where there are fewer cores than chunks.
        assert_eq!(bands(&m, Some(2)).unwrap().0, vec![vec![100; 2], vec![200]]);
        assert_eq!(bands(&m, Some(1)).unwrap().0, vec![vec![200], vec![200]]);
        assert_eq!(bands(&m, Some(16)).unwrap().0, vec![vec![50; 4], vec![200]]);
        // Uneven: 3 × 3 chunks of 70 rows → nine bands of ⌈70/9⌉... at least 16 rows.
        let m = meta(&[70, 90], vec![vec![30, 30, 10], vec![30, 30, 30]]);
        assert_eq!(
            bands(&m, None).unwrap().0,
            vec![vec![18, 18, 18, 16], vec![90]]
        );
        // Middle axes keep their chunks.
        let m = meta(&[64, 8, 40], vec![vec![32, 32], vec![4, 4], vec![20, 20]]);
        assert_eq!(
            bands(&m, None).unwrap().0,
            vec![vec![16; 4], vec![4, 4], vec![40]]
        );
        // Fewer rows than a band: one band.
        let m = meta(&[5, 40], vec![vec![5], vec![20, 20]]);
        assert_eq!(bands(&m, None).unwrap().0, vec![vec![5], vec![40]]);
    }

    #[test]
    fn larger_fields_take_a_task_per_core_only_where_chunks_are_fewer() {
        // 2000² in four chunks on 16 cores: 8 bands of 250 rows, the
        // columns' two chunks kept.
        let m = meta(&[2000, 2000], vec![vec![1000; 2], vec![1000; 2]]);
        assert_eq!(
            bands_for_cores(&m, 16).unwrap().0,
            vec![vec![250; 8], vec![1000; 2]]
        );
        // As many cores as chunks, or fewer: left as it is.
        assert_eq!(bands_for_cores(&m, 4), None);
        assert_eq!(bands_for_cores(&m, 2), None);
        // One chunk on 2 cores: two bands.
        let m = meta(&[2000, 2000], vec![vec![2000], vec![2000]]);
        assert_eq!(
            bands_for_cores(&m, 2).unwrap().0,
            vec![vec![1000; 2], vec![2000]]
        );
        // Bands of at least MIN_WIDE_BAND_ROWS rows: 300 rows make 4 of 75.
        let m = meta(&[300, 5000], vec![vec![300], vec![5000]]);
        assert_eq!(
            bands_for_cores(&m, 16).unwrap().0,
            vec![vec![75; 4], vec![5000]]
        );
        // Too few rows for more bands than chunks.
        let m = meta(&[100, 50000], vec![vec![100], vec![25000; 2]]);
        assert_eq!(bands_for_cores(&m, 16), None);
        // Rows that do not divide: 16 bands of 64 or 65 rows, none shorter.
        let m = meta(&[1025, 3000], vec![vec![1025], vec![3000]]);
        assert_eq!(
            bands_for_cores(&m, 16).unwrap().0,
            vec![[vec![65], vec![64; 15]].concat(), vec![3000]]
        );
        let m = meta(&[4097, 100], vec![vec![4097], vec![100]]);
        let b = bands_for_cores(&m, 64).unwrap().0;
        assert_eq!(b[0].len(), 64);
        assert!(b[0].iter().all(|&h| h == 64 || h == 65), "{b:?}");
        assert_eq!(b[0].iter().sum::<usize>(), 4097);
        // Middle axes keep their chunks and count: 2 × 4 chunks, 16 cores.
        let m = meta(&[512, 8, 600], vec![vec![512], vec![2; 4], vec![600]]);
        assert_eq!(
            bands_for_cores(&m, 16).unwrap().0,
            vec![vec![128; 4], vec![2; 4], vec![600]]
        );
    }
}
