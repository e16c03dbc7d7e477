//! What the GPU backends share: one [`GpuContext`] (`context.rs`), the one WGSL loader
//! ([`shader`]: every file of `shaders/` and every module the kernels compile), and
//! [`GpuBlock`] (`block.rs`), which verifies a block's signatures and computes its Merkle
//! root from one upload of its records.
//!
//! The kernels themselves live under the operation they implement:
//! `crate::sigverify::gpu` (Ed25519) and `crate::merkle::gpu` (BLAKE3 Merkle tree). Each has
//! a CPU mirror in the same shape and is tested against it on the same edge cases. Without a
//! hardware GPU the tests run the same WGSL on Mesa's llvmpipe.

pub mod block;
mod context;
pub mod shader;

pub use block::GpuBlock;
pub use context::{gpu_required, GpuContext, GpuError, REQUIRE_GPU_ENV};

/// For tests: the shared context, or `None` with a notice on stderr when no adapter exists.
///
/// Panics when no adapter exists and [`gpu_required`] is true (CI sets `TALLY_REQUIRE_GPU=1`
/// so that a missing driver fails the build instead of silently skipping GPU tests).
#[doc(hidden)]
pub fn test_context() -> Option<std::sync::Arc<GpuContext>> {
    match GpuContext::shared() {
        Ok(context) => Some(context),
        Err(error) if gpu_required() => {
            panic!("{REQUIRE_GPU_ENV}=1 but no GPU context could be created: {error}")
        }
        Err(error) => {
            eprintln!("notice: GPU test skipped, no GPU context: {error}");
            None
        }
    }
}
