//! `iterate`: a time loop recorded once. The step is built on a placeholder
//! twice; when both builds agree, the array is one [`Op::Repeat`] node, which
//! the planner lowers for a few steps and repeats (planning does not grow
//! with the number of steps). Otherwise the two builds become the first two
//! steps and the loop goes on as written, so the step runs exactly `n` times
//! either way.

use std::sync::Arc;

use accel_core::Op;
use accel_core::fast_hash::FastMap;

use crate::expr::{Array, Expr};

impl Array {
    /// Applies `step` `n` times: `t.iterate(nt, |t| step(t))` reads like the
    /// loop `for _ in 0..nt { t = step(t) }` and, like it, keeps only the
    /// latest field (intermediate steps are never stored whole).
    ///
    /// When the step builds the same computation every time (the usual time
    /// step), it is recorded once and the plan repeats it: planning takes the
    /// same time for 100 steps or 100,000; `step` is then called twice. A
    /// step that changes from call to call (a closure counting its calls,
    /// another array each time) runs as the loop would, called `n` times in
    /// order. The step builds lazy arrays: to look at values between steps
    /// (`compute`), write the loop.
    pub fn iterate(&self, n: usize, mut step: impl FnMut(&Array) -> Array) -> Array {
        let Ok(input) = self.expr() else {
            return self.clone();
        };
        if n < 2 {
            return if n == 1 { step(self) } else { self.clone() };
        }
        let placeholder = || {
            Arc::new(Expr {
                op: Op::RepeatArg,
                inputs: vec![],
                meta: input.meta.clone(),
            })
        };
        let (arg1, arg2) = (placeholder(), placeholder());
        let first = step(&Array {
            node: Ok(arg1.clone()),
        });
        let second = step(&Array {
            node: Ok(arg2.clone()),
        });
        if let Some(repeated) = repeat(input, n, &first, &second) {
            return repeated;
        }
        // The two builds are steps 1 and 2 of the written loop.
        let t = substitute(&first, &arg1, input);
        let Ok(after_first) = t.expr() else {
            return t;
        };
        let mut t = substitute(&second, &arg2, after_first);
        for _ in 2..n {
            t = step(&t);
        }
        t
    }
}

/// The repeat node for `n` steps, when both builds are the same step and it
/// keeps the field's shape, dtype and chunks.
fn repeat(input: &Arc<Expr>, n: usize, first: &Array, second: &Array) -> Option<Array> {
    let body = crate::lower::to_graph(&[first]).ok()?;
    let again = crate::lower::to_graph(&[second]).ok()?;
    // Loop ids must stay unique per step: such steps are unrolled.
    let loops = body
        .nodes
        .iter()
        .any(|n| matches!(n.op, Op::Loop { .. } | Op::LoopArg { .. }));
    if loops || !accel_core::optimize::same_graph(&body, &again) {
        return None;
    }
    let repeat = accel_core::op::Repeat { times: n, body };
    accel_core::optimize::check_repeat(&repeat, &input.meta).ok()?;
    Some(Array::from_expr(
        Op::Repeat(Arc::new(repeat)),
        vec![input.clone()],
        input.meta.clone(),
    ))
}

/// `a` with the expression `arg` replaced by `with` (walked without
/// recursion; shared subexpressions stay shared).
fn substitute(a: &Array, arg: &Arc<Expr>, with: &Arc<Expr>) -> Array {
    let Ok(root) = a.expr() else {
        return a.clone();
    };
    let mut done: FastMap<*const Expr, Arc<Expr>> = FastMap::default();
    done.insert(Arc::as_ptr(arg), with.clone());
    let mut stack: Vec<(&Arc<Expr>, bool)> = vec![(root, false)];
    while let Some((e, expanded)) = stack.pop() {
        let key = Arc::as_ptr(e);
        if done.contains_key(&key) {
            continue;
        }
        if !expanded {
            stack.push((e, true));
            stack.extend(e.inputs.iter().map(|x| (x, false)));
            continue;
        }
        let inputs: Vec<Arc<Expr>> = e
            .inputs
            .iter()
            .map(|x| done[&Arc::as_ptr(x)].clone())
            .collect();
        let same = inputs.iter().zip(&e.inputs).all(|(x, y)| Arc::ptr_eq(x, y));
        let new = if same {
            e.clone()
        } else {
            Arc::new(Expr {
                op: e.op.clone(),
                inputs,
                meta: e.meta.clone(),
            })
        };
        done.insert(key, new);
    }
    Array {
        node: Ok(done[&Arc::as_ptr(root)].clone()),
    }
}
