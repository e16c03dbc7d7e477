//! tally-kernels: batch Ed25519 signature verification and BLAKE3 Merkle trees.
//!
//! This crate knows nothing about ledgers. It verifies `(public key, message, signature)`
//! triples and hashes leaves into Merkle roots, on SIMD CPU threads (rayon) or on GPU compute
//! shaders (wgpu, WGSL). Every backend returns the same answer for every input: a difference
//! would be a chain split (see docs/VERIFY_RULES.md and docs/ARCHITECTURE.md).
//!
//! Layout: each operation is a module with its API and backend choice in `mod.rs` and one
//! file per backend: [`sigverify`] (`cpu.rs`, `gpu.rs`) and [`merkle`] (`cpu.rs` over the
//! `portable.rs` or `avx2.rs` hashing kernel, `gpu.rs`). [`gpu`] holds what the GPU backends
//! share: the context, the one WGSL loader ([`gpu::shader`]) and the shared-upload
//! [`gpu::GpuBlock`]. Test hooks (device-loss injection, test contexts) exist only with the
//! `testing` feature (`testing` module).
// Unsafe code is denied everywhere except the one module that allows it by name:
// `merkle::avx2` (AVX2 intrinsics behind run-time detection).
#![deny(unsafe_code)]

pub mod gpu;
pub mod merkle;
pub mod sigverify;
#[cfg(feature = "testing")]
pub mod testing;

pub use gpu::{GpuContext, GpuError};
pub use merkle::{Hash, HASH_BYTES};
pub use sigverify::{Backend, SigItem, Verifier};
