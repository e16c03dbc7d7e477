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
