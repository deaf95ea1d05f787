//! Compiled kernels by program, so a stage's tasks skip generating and
//! hashing the kernel's source: keyed by the program's address and the
//! inputs' access patterns, confirmed by comparing the program itself (an
//! address can be reused by another plan's program once the first is gone).

use std::sync::{Arc, Mutex};

use accel_core::exec::Fold;
use accel_core::kernel::Program;
use accel_core::kernel::ir::Instr;

use crate::wgsl::Access;

/// Entries kept; past that the memo starts over (kernels stay cached by
/// source in the device, so a miss costs a generation, not a compile).
const CAPACITY: usize = 256;

struct Entry<T> {
    address: usize,
    /// Which kernel of the program: 0 its map, 1 + [`Fold::index`] a fold.
    tag: usize,
    access: Vec<Access>,
    program: Program,
    value: Arc<T>,
}

pub(crate) struct ProgramMemo<T>(Mutex<Vec<Entry<T>>>);

impl<T> Default for ProgramMemo<T> {
    fn default() -> Self {
        ProgramMemo(Mutex::new(Vec::new()))
    }
}

impl<T> ProgramMemo<T> {
    /// The value for `program` read through `access` (its map, `fold` None,
    /// or a fold of it), made by `make` on a miss.
    pub fn get_or_make<E>(
        &self,
        program: &Program,
        access: &[Access],
        fold: Option<Fold>,
        make: impl FnOnce() -> Result<Arc<T>, E>,
    ) -> Result<Arc<T>, E> {
        let address = program as *const Program as usize;
        let tag = fold.map_or(0, |f| 1 + f.index());
        if let Ok(entries) = self.0.lock()
            && let Some(e) = entries.iter().find(|e| {
                e.address == address
                    && e.tag == tag
                    && e.access == access
                    && same(&e.program, program)
            })
        {
            return Ok(e.value.clone());
        }
        let value = make()?;
        if let Ok(mut entries) = self.0.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.push(Entry {
                address,
                tag,
                access: access.to_vec(),
                program: program.clone(),
                value: value.clone(),
            });
        }
        Ok(value)
    }
}

/// Equal programs whose constants have the same bits: `==` takes -0.0 for
/// 0.0, and the kernels differ (`x + 0.0` is not `x + -0.0`).
fn same(a: &Program, b: &Program) -> bool {
    a == b && same_constants(a, b)
}

fn same_constants(a: &Program, b: &Program) -> bool {
    a.instrs.iter().zip(&b.instrs).all(|pair| match pair {
        (Instr::Const(x), Instr::Const(y)) => x.bits() == y.bits(),
        (Instr::Loop(x), Instr::Loop(y)) => same_constants(&x.body, &y.body),
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use accel_core::dtype::DType;
    use accel_core::kernel::ir::{InputSpec, Instr, ProgramBuilder};
    use accel_core::op::UnaryOp;

    fn program(op: UnaryOp) -> Program {
        let mut b = ProgramBuilder::new();
        let x = b.input(InputSpec {
            dtype: DType::F64,
            shape: vec![4],
        });
        let r = b.push(Instr::Unary(op, x), DType::F64);
        b.finish(r, vec![4])
    }

    #[test]
    fn a_program_is_made_once_and_a_reused_address_is_not_trusted() {
        let memo = ProgramMemo::<u32>::default();
        let mut made = 0;
        let mut get = |p: &Program, a: &[Access], fold: Option<Fold>| {
            memo.get_or_make(p, a, fold, || {
                made += 1;
                Ok::<_, ()>(Arc::new(made))
            })
        };
        let mut slot = program(UnaryOp::Sin);
        assert_eq!(get(&slot, &[Access::Contiguous], None), Ok(Arc::new(1)));
        assert_eq!(get(&slot, &[Access::Contiguous], None), Ok(Arc::new(1)));
        assert_eq!(get(&slot, &[Access::Scalar], None), Ok(Arc::new(2)));
        // Another program at the same address.
        slot = program(UnaryOp::Cos);
        assert_eq!(get(&slot, &[Access::Contiguous], None), Ok(Arc::new(3)));
        // The same program with a constant of other bits: -0.0 == 0.0.
        let with = |c: f64| {
            let mut b = ProgramBuilder::new();
            let x = b.input(InputSpec {
                dtype: DType::F64,
                shape: vec![4],
            });
            let z = b.push(Instr::Const(accel_core::dtype::Value::F64(c)), DType::F64);
            let r = b.push(
                Instr::Binary(accel_core::op::BinaryOp::Add, x, z),
                DType::F64,
            );
            b.finish(r, vec![4])
        };
        slot = with(0.0);
        assert_eq!(get(&slot, &[Access::Contiguous], None), Ok(Arc::new(4)));
        slot = with(-0.0);
        assert_eq!(slot, with(0.0), "equal as programs");
        assert_eq!(get(&slot, &[Access::Contiguous], None), Ok(Arc::new(5)));
        assert_eq!(get(&slot, &[Access::Contiguous], None), Ok(Arc::new(5)));
        // Each fold of a program is a kernel of its own.
        let sum = Some(Fold::Sum);
        assert_eq!(get(&slot, &[Access::Contiguous], sum), Ok(Arc::new(6)));
        assert_eq!(get(&slot, &[Access::Contiguous], sum), Ok(Arc::new(6)));
        assert_eq!(
            get(&slot, &[Access::Contiguous], Some(Fold::Max)),
            Ok(Arc::new(7))
        );
        assert_eq!(get(&slot, &[Access::Contiguous], None), Ok(Arc::new(5)));
    }
}
