//! A superinstruction for stencil-style kernels: a left-to-right chain of f64
//! additions of inputs read in place, optionally scaled by a constant
//! (`((a + b) + c + d) * w`), evaluated in one pass instead of one pass per
//! instruction. The order of operations is kept, so results are bit-identical.

use super::ir::{Instr, Program, Reg};
use crate::dtype::{DType, Value};
use crate::op::BinaryOp;

/// A chain ending at some instruction: the inputs summed, in order, and the scale.
#[derive(Clone, Debug, PartialEq)]
pub struct SumChain {
    pub terms: Vec<usize>,
    pub scale: Option<f64>,
}

/// Per instruction: the chain it ends, if any; and which instructions the
/// chains absorb (not evaluated on their own). `direct[r]` is the input that
/// register r reads in place.
pub fn find(p: &Program, direct: &[Option<usize>]) -> (Vec<Option<SumChain>>, Vec<bool>) {
    let n = p.instrs.len();
    let mut uses = vec![0u32; n];
    for ins in &p.instrs {
        for r in ins.operands() {
            uses[r as usize] += 1;
        }
    }
    if let Some(u) = uses.get_mut(p.root as usize) {
        *u += 1;
    }
    let f64_at = |r: Reg| p.dtypes.get(r as usize) == Some(&DType::F64);
    let mut chains: Vec<Option<SumChain>> = vec![None; n];
    let mut absorbed = vec![false; n];
    for (k, ins) in p.instrs.iter().enumerate() {
        if !f64_at(k as Reg) {
            continue;
        }
        let input_of = |r: Reg| {
            direct
                .get(r as usize)
                .copied()
                .flatten()
                .filter(|_| f64_at(r))
        };
        match *ins {
            Instr::Binary(BinaryOp::Add, a, b) => {
                let Some(tb) = input_of(b) else { continue };
                let terms = if let Some(ta) = input_of(a) {
                    vec![ta, tb]
                } else if let Some(Some(c)) = chains.get(a as usize)
                    && c.scale.is_none()
                    && uses[a as usize] == 1
                {
                    let mut t = c.terms.clone();
                    t.push(tb);
                    absorbed[a as usize] = true;
                    chains[a as usize] = None;
                    t
                } else {
                    continue;
                };
                chains[k] = Some(SumChain { terms, scale: None });
            }
            Instr::Binary(BinaryOp::Mul, a, b) => {
                let constant = |r: Reg| match p.instrs.get(r as usize) {
                    Some(Instr::Const(Value::F64(w))) => Some(*w),
                    _ => None,
                };
                let (sum, w) = match (constant(a), constant(b)) {
                    (None, Some(w)) => (a, w),
                    (Some(w), None) => (b, w),
                    _ => continue,
                };
                if let Some(Some(c)) = chains.get(sum as usize)
                    && c.scale.is_none()
                    && uses[sum as usize] == 1
                {
                    let terms = c.terms.clone();
                    absorbed[sum as usize] = true;
                    chains[sum as usize] = None;
                    chains[k] = Some(SumChain {
                        terms,
                        scale: Some(w),
                    });
                }
            }
            _ => {}
        }
    }
    (chains, absorbed)
}

/// `out[i] = (t0[i] + t1[i] + …) * scale`, summing left to right.
pub fn eval(terms: &[&[f64]], scale: Option<f64>, out: &mut [f64]) {
    /// Lanes per step: two AVX registers of f64.
    const W: usize = 8;
    /// `out[at..at + W]`, each lane summed and scaled as in the scalar loop.
    #[inline(always)]
    fn lanes<const M: usize>(t: &[&[f64]; M], scale: Option<f64>, at: usize, out: &mut [f64]) {
        let mut acc = [0.0; W];
        acc.copy_from_slice(&t[0][at..at + W]);
        for s in &t[1..] {
            for (a, v) in acc.iter_mut().zip(&s[at..at + W]) {
                *a += v;
            }
        }
        if let Some(w) = scale {
            acc.iter_mut().for_each(|a| *a *= w);
        }
        out[at..at + W].copy_from_slice(&acc);
    }
    fn fixed<const M: usize>(t: &[&[f64]], scale: Option<f64>, out: &mut [f64]) {
        let n = out.len();
        let t: [&[f64]; M] = std::array::from_fn(|k| &t[k][..n]);
        if n < W {
            for (i, o) in out.iter_mut().enumerate() {
                let mut acc = t[0][i];
                for s in &t[1..] {
                    acc += s[i];
                }
                *o = scale.map_or(acc, |w| acc * w);
            }
            return;
        }
        for at in (0..n - W + 1).step_by(W) {
            lanes(&t, scale, at, out);
        }
        // The last lanes again, overlapping the ones before: short rows
        // (stencil levels) would otherwise end in a scalar loop. The same
        // lanes give the same bits.
        if !n.is_multiple_of(W) {
            lanes(&t, scale, n - W, out);
        }
    }
    match terms.len() {
        2 => fixed::<2>(terms, scale, out),
        3 => fixed::<3>(terms, scale, out),
        4 => fixed::<4>(terms, scale, out),
        5 => fixed::<5>(terms, scale, out),
        6 => fixed::<6>(terms, scale, out),
        7 => fixed::<7>(terms, scale, out),
        8 => fixed::<8>(terms, scale, out),
        _ => {
            out.copy_from_slice(&terms[0][..out.len()]);
            for t in &terms[1..] {
                for (o, v) in out.iter_mut().zip(t.iter()) {
                    *o += v;
                }
            }
            if let Some(w) = scale {
                out.iter_mut().for_each(|o| *o *= w);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::eval;

    #[test]
    fn sums_left_to_right_then_scales() {
        let a = [1e16, 1.0, 0.1];
        let b = [1.0, 2.0, 0.2];
        let c = [-1e16, 3.0, 0.3];
        for m in 2..=3 {
            let terms: Vec<&[f64]> = [&a[..], &b[..], &c[..]][..m].to_vec();
            let mut out = [0.0; 3];
            eval(&terms, Some(0.25), &mut out);
            for i in 0..3 {
                let mut acc = terms[0][i];
                for t in &terms[1..] {
                    acc += t[i];
                }
                assert_eq!(out[i].to_bits(), (acc * 0.25).to_bits());
            }
        }
    }

    /// Rows of every length: full lanes, the last lanes again overlapping
    /// them, and short rows, all with the scalar loop's bits.
    #[test]
    fn every_length_and_tail_matches_the_scalar_loop() {
        let term = |k: u64| -> Vec<f64> {
            (0..40u64)
                .map(|i| {
                    ((i * 2654435761 + k * 97) % 1000) as f64 * 1.0e-3 + 1.0 / (i + k + 1) as f64
                })
                .collect()
        };
        let all: Vec<Vec<f64>> = (0..9).map(term).collect();
        for m in 2..=9 {
            for n in 0..=40 {
                let terms: Vec<&[f64]> = all[..m].iter().map(|t| &t[..n]).collect();
                for scale in [None, Some(0.3)] {
                    let mut out = vec![f64::NAN; n];
                    eval(&terms, scale, &mut out);
                    for (i, o) in out.iter().enumerate() {
                        let mut acc = terms[0][i];
                        for t in &terms[1..] {
                            acc += t[i];
                        }
                        let want = scale.map_or(acc, |w| acc * w);
                        assert_eq!(o.to_bits(), want.to_bits(), "{m} terms, {n} long, at {i}");
                    }
                }
            }
        }
    }
}
