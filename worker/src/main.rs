//! `accel-worker http://HOST:PORT`: runs tasks for a scheduler. Workers that
//! offer their own `map_blocks` functions call [`accel_worker::cli::main_with`]
//! from a binary of their own.

/// Tiny chunks (partial states, small tasks) are allocated and freed by the
/// million on several threads: glibc's allocator spent as much time as the
/// kernels did on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    accel_worker::cli::main_with(accel_worker::Functions::new())
}
