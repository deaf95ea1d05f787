//! What follows a task that failed: inputs a device could not give back are
//! lost (recomputed, then the task runs again); a device error whose inputs
//! all read back now (a read that failed once) runs the task again, once;
//! anything else fails the job.

use std::sync::Arc;

use crate::buffer::Chunk;
use crate::error::Error;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// These inputs (by position) cannot be read: make them again.
    Lost(Vec<usize>),
    /// Every input reads now: run the task again.
    RunAgain,
    /// The error stands.
    Fails,
}

/// Decides what follows `error` from a task over `args` that has run
/// `tries` times. Reading an input back here is what decides it: one that
/// reads is on the host afterwards.
pub fn after_failure(error: &Error, args: &[Arc<Chunk>], tries: u32) -> AfterFailure {
    let lost: Vec<usize> = (0..args.len())
        .filter(|&i| !args[i].on_host() && args[i].cols().is_err())
        .collect();
    if !lost.is_empty() {
        AfterFailure::Lost(lost)
    } else if matches!(error, Error::Device(_)) && tries < 2 {
        AfterFailure::RunAgain
    } else {
        AfterFailure::Fails
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::{Buffer, DeviceCopy};
    use crate::dtype::DType;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug)]
    struct Reads {
        fail_first: u32,
        reads: AtomicU32,
    }

    impl DeviceCopy for Reads {
        fn download(&self) -> Result<Buffer, String> {
            if self.reads.fetch_add(1, Ordering::Relaxed) < self.fail_first {
                Err("busy".into())
            } else {
                Ok(Buffer::F64(vec![1.0, 2.0]))
            }
        }
    }

    fn on_device(fail_first: u32) -> Arc<Chunk> {
        let copy = Arc::new(Reads {
            fail_first,
            reads: AtomicU32::new(0),
        });
        Arc::new(Chunk::on_device(vec![2], DType::F64, copy))
    }

    #[test]
    fn unreadable_inputs_are_lost_readable_ones_run_again_once() {
        let host = Arc::new(Chunk::array(vec![2], Buffer::F64(vec![0.0, 0.0])));
        let device = Error::Device("read back failed".into());
        // Still unreadable: lost, by position.
        let never = on_device(u32::MAX);
        let args = [host.clone(), never];
        assert_eq!(
            after_failure(&device, &args, 1),
            AfterFailure::Lost(vec![1])
        );
        // Read once it had failed: the task runs again, once.
        let args = [host.clone(), on_device(0)];
        assert_eq!(after_failure(&device, &args, 1), AfterFailure::RunAgain);
        assert!(args[1].on_host());
        assert_eq!(after_failure(&device, &args, 2), AfterFailure::Fails);
        // Other errors stand.
        let shape = Error::Shape("no".into());
        assert_eq!(after_failure(&shape, &args, 1), AfterFailure::Fails);
    }
}
