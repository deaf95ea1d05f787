//! Which parts of which input chunks a stencil task reads: the output chunk
//! grown by the input's radius, wrapped around periodic edges and clipped to
//! the array (cells beyond other edges come from the boundary rule).

use crate::op::Boundary;

/// The box of one input chunk a task reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputPart {
    /// Grid index of the input chunk.
    pub chunk: Vec<usize>,
    /// The box within the chunk, in the chunk's own coordinates.
    pub lo: Vec<usize>,
    pub hi: Vec<usize>,
}

/// The parts of an input (of `shape`, chunk starts `offsets` per axis plus
/// the end) that the output chunk at `origin` of `local` shape reads,
/// `radius` cells around it, in row-major order of the input grid.
pub fn input_parts(
    shape: &[usize],
    offsets: &[Vec<usize>],
    origin: &[usize],
    local: &[usize],
    radius: &[usize],
    boundary: &[Boundary],
) -> Vec<InputPart> {
    let nd = shape.len();
    if local.contains(&0) || offsets.len() != nd {
        return Vec::new();
    }
    // Per axis: (chunk index, lo, hi) of every chunk the needed range touches.
    let mut per_axis: Vec<Vec<(usize, usize, usize)>> = Vec::with_capacity(nd);
    for d in 0..nd {
        let n = shape[d] as i64;
        let lo = origin[d] as i64 - radius[d] as i64;
        let hi = (origin[d] + local[d] + radius[d]) as i64;
        let shifts: &[i64] = if boundary.get(d) == Some(&Boundary::Periodic) {
            &[-n, 0, n]
        } else {
            &[0]
        };
        let ranges: Vec<(i64, i64)> = shifts
            .iter()
            .map(|&t| ((lo + t).max(0), (hi + t).min(n)))
            .filter(|(a, b)| a < b)
            .collect();
        let mut axis = Vec::new();
        for (k, w) in offsets[d].windows(2).enumerate() {
            let (a, b) = (w[0] as i64, w[1] as i64);
            if a == b {
                continue;
            }
            let mut got: Option<(i64, i64)> = None;
            for &(ra, rb) in &ranges {
                let (x, y) = (ra.max(a), rb.min(b));
                if x < y {
                    got = Some(match got {
                        None => (x, y),
                        Some((p, q)) => (p.min(x), q.max(y)),
                    });
                }
            }
            if let Some((x, y)) = got {
                axis.push((k, (x - a) as usize, (y - a) as usize));
            }
        }
        if axis.is_empty() {
            return Vec::new();
        }
        per_axis.push(axis);
    }
    let counts: Vec<usize> = per_axis.iter().map(Vec::len).collect();
    let mut out = Vec::new();
    let mut pick = vec![0usize; nd];
    loop {
        out.push(InputPart {
            chunk: (0..nd).map(|d| per_axis[d][pick[d]].0).collect(),
            lo: (0..nd).map(|d| per_axis[d][pick[d]].1).collect(),
            hi: (0..nd).map(|d| per_axis[d][pick[d]].2).collect(),
        });
        if !crate::shape::next_index(&mut pick, &counts) {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interior_chunk_reads_strips_of_its_neighbours() {
        // 2 × 2 grid of 4 × 4 chunks, one-cell halo: chunk (0, 0) reads itself
        // whole, a one-column strip of (0, 1), a row of (1, 0) and a corner of (1, 1).
        let offs = vec![vec![0, 4, 8], vec![0, 4, 8]];
        let parts = input_parts(
            &[8, 8],
            &offs,
            &[0, 0],
            &[4, 4],
            &[1, 1],
            &[Boundary::Nearest; 2],
        );
        let boxes: Vec<_> = parts
            .iter()
            .map(|p| (p.chunk.clone(), p.lo.clone(), p.hi.clone()))
            .collect();
        assert_eq!(
            boxes,
            vec![
                (vec![0, 0], vec![0, 0], vec![4, 4]),
                (vec![0, 1], vec![0, 0], vec![4, 1]),
                (vec![1, 0], vec![0, 0], vec![1, 4]),
                (vec![1, 1], vec![0, 0], vec![1, 1]),
            ]
        );
    }

    #[test]
    fn periodic_edges_wrap_around() {
        let offs = vec![vec![0, 4, 8, 12]];
        let parts = input_parts(&[12], &offs, &[0], &[4], &[2], &[Boundary::Periodic]);
        let boxes: Vec<_> = parts
            .iter()
            .map(|p| (p.chunk[0], p.lo[0], p.hi[0]))
            .collect();
        assert_eq!(boxes, vec![(0, 0, 4), (1, 0, 2), (2, 2, 4)]);
    }

    #[test]
    fn deep_halos_reach_past_the_nearest_chunk() {
        let offs = vec![vec![0, 2, 4, 6]];
        let parts = input_parts(&[6], &offs, &[2], &[2], &[3], &[Boundary::Reflect]);
        let boxes: Vec<_> = parts
            .iter()
            .map(|p| (p.chunk[0], p.lo[0], p.hi[0]))
            .collect();
        assert_eq!(boxes, vec![(0, 0, 2), (1, 0, 2), (2, 0, 2)]);
    }
}
