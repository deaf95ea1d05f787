//! `accel-worker http://HOST:PORT`: runs tasks for a scheduler. Workers that
//! offer their own `map_blocks` functions call [`accel_worker::cli::main_with`]
//! from a binary of their own.

/// mimalloc for the millions of small blocks tasks allocate, the system
/// allocator for chunk buffers (see [`accel_worker::alloc`]); a worker
/// binary of your own can use the same line.
#[global_allocator]
static ALLOCATOR: accel_worker::alloc::WorkerAlloc = accel_worker::alloc::WorkerAlloc;

fn main() -> std::process::ExitCode {
    accel_worker::alloc::map_large_blocks();
    accel_worker::cli::main_with(accel_worker::Functions::new())
}
