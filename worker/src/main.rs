//! `accel-worker http://HOST:PORT`: runs tasks for a scheduler. Workers that
//! offer their own `map_blocks` functions call [`accel_worker::cli::main_with`]
//! from a binary of their own.

fn main() -> std::process::ExitCode {
    accel_worker::cli::main_with(accel_worker::Functions::new())
}
