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
    fn fixed<const M: usize>(t: &[&[f64]], scale: Option<f64>, out: &mut [f64]) {
        let n = out.len();
        let t: [&[f64]; M] = std::array::from_fn(|k| &t[k][..n]);
        match scale {
            Some(w) => {
                for (i, o) in out.iter_mut().enumerate() {
                    let mut acc = t[0][i];
                    for s in &t[1..] {
                        acc += s[i];
                    }
                    *o = acc * w;
                }
            }
            None => {
                for (i, o) in out.iter_mut().enumerate() {
                    let mut acc = t[0][i];
                    for s in &t[1..] {
                        acc += s[i];
                    }
                    *o = acc;
                }
            }
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
}
