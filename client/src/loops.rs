//! User kernels with loops: `loop_until`, an elementwise loop with an early
//! exit, compiled into the fused kernel of whatever surrounds it.

use std::sync::atomic::{AtomicU64, Ordering};

use accel_core::shape::Chunks;
use accel_core::{DType, Meta, Op, infer};

use crate::expr::Array;
use crate::operand::Operand;

/// Ids tie a loop's arguments to the loop; unique within this process.
static NEXT_LOOP: AtomicU64 = AtomicU64::new(1);

/// An elementwise loop with an early exit: the `for` loop with a `return`
/// inside that a `numba.vectorize` function would hold.
///
/// Each element starts with the state `init` (arrays or scalars, broadcast
/// together). `body(state, trip)` describes one trip on 0-d stand-ins for
/// the element's state and the trip counter (int64, from 0): it returns the
/// next state and a bool flag. An element stops after the first trip whose
/// flag is true (keeping the state that trip computed), or after `max_trips`
/// trips. The body may use any elementwise operation, `where_` for branches,
/// and arrays from outside (read at the element's position); it becomes part
/// of the fused kernel of the expression around it, on a cluster too, and
/// elements that stopped cost nothing in later trips.
///
/// Returns the final value of every state variable. A next value is cast to
/// its state's dtype when that loses nothing (a float state may take an
/// integer); otherwise the loop is an error, as are a non-bool flag and a
/// body that reduces.
///
/// ```
/// # use accel::{Operand, linspace, loop_until, where_, DType};
/// // Steps of the Collatz map until 1, per element.
/// let n = (linspace(1.0, 8.0, 8, 4) * 1.0).astype(DType::I64);
/// let steps = &loop_until(&[Operand::from(&n), 0i64.into()], 1000, |s, _trip| {
///     let odd = (&s[0] % 2).equal(1);
///     let next = where_(&odd, &s[0] * 3 + 1, s[0].floor_divide(2));
///     (vec![next.clone(), &s[1] + 1], next.le(1))
/// })[1];
/// # let v = steps.compute::<i64>().unwrap();
/// # assert_eq!(v.as_slice().unwrap(), &[3, 1, 7, 2, 5, 8, 16, 3]);
/// ```
#[track_caller]
pub fn loop_until<F>(init: &[Operand], max_trips: u32, body: F) -> Vec<Array>
where
    F: FnOnce(&[Array], &Array) -> (Vec<Array>, Array),
{
    let caller = std::panic::Location::caller();
    let fail = |msg: String| {
        vec![Array::failed(crate::Error::Build {
            op: "loop_until".into(),
            location: format!("{}:{}", caller.file(), caller.line()),
            source: accel_core::Error::Invalid(msg),
        })]
    };
    if init.is_empty() {
        return fail("a loop needs at least one state variable".into());
    }
    let states = init.len() as u32;
    let id = NEXT_LOOP.fetch_add(1, Ordering::Relaxed);
    let init: Vec<Array> = init.iter().map(|o| o.clone().into_array(None)).collect();
    let arg = |index: u32, dtype: DType| {
        Array::from_expr(
            Op::LoopArg { id, index },
            vec![],
            Meta {
                shape: vec![],
                dtype,
                chunks: Chunks(vec![]),
            },
        )
    };
    let mut args = Vec::with_capacity(init.len());
    for (k, a) in init.iter().enumerate() {
        match a.dtype() {
            Ok(dt) => args.push(arg(k as u32, dt)),
            Err(_) => return vec![a.clone()],
        }
    }
    let (next, stop) = body(&args, &arg(states, DType::I64));
    if next.len() != init.len() {
        return fail(format!(
            "the body returns {} next values for {} state variables",
            next.len(),
            init.len()
        ));
    }
    let mut inputs: Vec<Array> = init.clone();
    for (k, (n, i)) in next.iter().zip(&init).enumerate() {
        let (Ok(nd), Ok(id)) = (n.dtype(), i.dtype()) else {
            inputs.push(n.clone());
            continue;
        };
        if nd != id && DType::promote(nd, id) != id {
            return fail(format!(
                "loop state {k} starts as {id} but the body makes it {nd}; \
                 start it as {} (e.g. with astype)",
                DType::promote(nd, id)
            ));
        }
        inputs.push(if nd == id { n.clone() } else { n.astype(id) });
    }
    inputs.push(stop);
    let refs: Vec<&Array> = inputs.iter().collect();
    (0..states)
        .map(|result| {
            Array::build("loop_until", &refs, |m| {
                let op = Op::Loop {
                    id,
                    states,
                    max_trips,
                    result,
                };
                Ok((op, infer::loop_(m, states, result)?))
            })
        })
        .collect()
}
