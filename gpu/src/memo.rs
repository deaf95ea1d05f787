//! Compiled kernels by program, so a stage's tasks skip generating and
//! hashing the kernel's source: keyed by the program's address and the
//! inputs' access patterns, confirmed by comparing the program itself (an
//! address can be reused by another plan's program once the first is gone).

use std::sync::{Arc, Mutex};

use accel_core::kernel::Program;

use crate::wgsl::Access;

/// Entries kept; past that the memo starts over (kernels stay cached by
/// source in the device, so a miss costs a generation, not a compile).
const CAPACITY: usize = 256;

struct Entry<T> {
    address: usize,
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
    /// The value for `program` read through `access`, made by `make` on a miss.
    pub fn get_or_make<E>(
        &self,
        program: &Program,
        access: &[Access],
        make: impl FnOnce() -> Result<Arc<T>, E>,
    ) -> Result<Arc<T>, E> {
        let address = program as *const Program as usize;
        if let Ok(entries) = self.0.lock()
            && let Some(e) = entries
                .iter()
                .find(|e| e.address == address && e.access == access && e.program == *program)
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
                access: access.to_vec(),
                program: program.clone(),
                value: value.clone(),
            });
        }
        Ok(value)
    }
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
        let mut get = |p: &Program, a: &[Access]| {
            memo.get_or_make(p, a, || {
                made += 1;
                Ok::<_, ()>(Arc::new(made))
            })
        };
        let mut slot = program(UnaryOp::Sin);
        assert_eq!(get(&slot, &[Access::Contiguous]), Ok(Arc::new(1)));
        assert_eq!(get(&slot, &[Access::Contiguous]), Ok(Arc::new(1)));
        assert_eq!(get(&slot, &[Access::Scalar]), Ok(Arc::new(2)));
        // Another program at the same address.
        slot = program(UnaryOp::Cos);
        assert_eq!(get(&slot, &[Access::Contiguous]), Ok(Arc::new(3)));
    }
}
