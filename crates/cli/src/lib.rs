//! The `tollgate` command's pieces that are worth testing and benchmarking on their own.
//! Argument parsing lives in `main.rs`; the logic lives in the libraries.

pub mod batch;
pub mod keygen;
pub mod target;
pub mod units;
