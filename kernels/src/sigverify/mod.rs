//! Batch Ed25519 verification under one rule (ZIP-215, see docs/VERIFY_RULES.md).
//!
//! The API returns one verdict per item, never one bit for the whole batch: a failing batch is
//! resolved to the exact failing items.
//!
//! Backends, one file each: `cpu.rs` (rayon, curve25519-dalek) and `gpu.rs` (the host side of
//! the WGSL kernels, [`gpu::GpuEd25519`]; its key tables are computed in `gpu_tables.rs`).
//! [`Verifier`] here picks the backend per batch ([`Backend`]). Shared per-item preparation
//! (`S < L`, the challenge, decompression) is in `prepare.rs`, registered keys in `keys.rs`.

mod cpu;
pub mod gpu;
mod gpu_tables;
mod keys;
mod prepare;

pub use cpu::CHUNK_ITEMS_MAX;
pub use keys::REGISTERED_KEYS_MAX;

use crate::gpu::GpuContext;
use gpu::GpuEd25519;
use gpu_tables::pack_gpu_item;
use rayon::prelude::*;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// One item to verify. The message is borrowed; nothing is copied on the CPU path.
#[derive(Clone, Copy, Debug)]
pub struct SigItem<'a> {
    pub public_key: &'a [u8; 32],
    pub message: &'a [u8],
    pub signature: &'a [u8; 64],
}

/// Which backend verifies signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// SIMD CPU threads (rayon).
    #[default]
    Cpu,
    /// GPU compute shaders (wgpu, WGSL).
    Gpu,
    /// The GPU when a real (non-CPU-type) adapter is present and the batch is large enough,
    /// else the CPU.
    Auto,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Cpu => "cpu",
            Backend::Gpu => "gpu",
            Backend::Auto => "auto",
        })
    }
}

/// Error for a backend name that is not one of `cpu`, `gpu`, `auto`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown signature backend {0:?}: expected one of cpu, gpu, auto")]
pub struct UnknownBackend(pub String);

impl FromStr for Backend {
    type Err = UnknownBackend;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Backend::Cpu),
            "gpu" => Ok(Backend::Gpu),
            "auto" => Ok(Backend::Auto),
            other => Err(UnknownBackend(other.to_string())),
        }
    }
}

/// Errors when building a verifier.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    #[error("the gpu signature backend was requested but no usable GPU was found: {0}; use --backend cpu or auto")]
    NoGpu(String),
}

/// Batches at least this large go to the GPU under `Backend::Auto` (when a hardware GPU
/// exists). Not measured on a hardware GPU yet: the published WGSL verifier figure (slower
/// than the CPU below about 4k signatures per call) sets it until a measurement replaces it.
pub const AUTO_GPU_ITEMS_MIN: usize = 4096;

/// A batch signature verifier bound to one backend.
///
/// Contract: `verify_batch` writes `verdicts[i] == true` exactly when item `i` passes the
/// ZIP-215 rule as ed25519-zebra's single verifier decides it. It never panics on any input
/// bytes. A GPU failure (device lost, mapping failed) re-verifies the batch on the CPU.
pub struct Verifier {
    backend: Backend,
    registry: keys::KeyRegistry,
    gpu: Option<GpuEd25519>,
    /// Registered keys with GPU tables (the first ones of the registry).
    gpu_table_keys: usize,
}

impl Verifier {
    /// Builds a verifier for `backend`. `Gpu` takes any adapter (llvmpipe included: exact
    /// but slow); `Auto` takes only a hardware GPU and uses the CPU when there is none.
    ///
    /// Errors: `NoGpu` when `Backend::Gpu` is asked for and no adapter or kernel works.
    pub fn new(backend: Backend) -> Result<Self, VerifierError> {
        let gpu = match backend {
            Backend::Cpu => None,
            Backend::Gpu => {
                let context = GpuContext::shared()
                    .map_err(|error| VerifierError::NoGpu(error.to_string()))?;
                Some(
                    GpuEd25519::new(context)
                        .map_err(|error| VerifierError::NoGpu(error.to_string()))?,
                )
            }
            // `auto` must be safe to leave on in production: it picks the WGSL verifier only
            // once that has passed the vector suite, and only on a hardware adapter.
            Backend::Auto if !GPU_SIGVERIFY_VALIDATED => None,
            Backend::Auto => match GpuContext::new_hardware_only() {
                Ok(context) => match GpuEd25519::new(Arc::new(context)) {
                    Ok(gpu) => Some(gpu),
                    Err(error) => {
                        tracing::warn!(%error, "no GPU signature kernel, the auto backend uses the CPU");
                        None
                    }
                },
                Err(error) => {
                    tracing::info!(%error, "no hardware GPU, the auto backend uses the CPU");
                    None
                }
            },
        };
        let mut verifier = Verifier {
            backend,
            registry: keys::KeyRegistry::new(),
            gpu,
            gpu_table_keys: 0,
        };
        if let Some(gpu) = verifier.gpu.as_ref() {
            if let Err(error) = verifier.gpu_known_answers(gpu) {
                if backend != Backend::Auto {
                    return Err(VerifierError::NoGpu(error));
                }
                // `auto` never fails for want of a GPU: it verifies on the CPU.
                tracing::error!(%error, "the auto backend uses the CPU");
                verifier.gpu = None;
            }
        }
        Ok(verifier)
    }

    /// Runs valid, altered and hostile signatures through the GPU kernel and compares every
    /// verdict with the reference rule. A kernel that disagrees once is never used: a
    /// differing verdict would split the chain.
    fn gpu_known_answers(&self, gpu: &GpuEd25519) -> Result<(), String> {
        let cases = known_answer_cases();
        let items = items_of(&cases);
        let mut verdicts = vec![false; items.len()];
        let pack = |range: std::ops::Range<usize>, words: &mut [u32]| {
            for (item, words) in items[range].iter().zip(words.chunks_mut(gpu::ITEM_WORDS)) {
                pack_gpu_item(&self.registry, self.gpu_table_keys, item, words);
            }
        };
        gpu.verify_with(items.len(), pack, &mut verdicts)
            .map_err(|error| {
                format!("the GPU signature kernel failed its known-answer check: {error}")
            })?;
        for (index, (item, verdict)) in items.iter().zip(&verdicts).enumerate() {
            if *verdict != verify_single(item) {
                return Err(format!(
                    "the GPU signature kernel disagrees with the reference rule on known-answer case {index}: it is not used"
                ));
            }
        }
        Ok(())
    }

    /// A `Backend::Gpu` verifier on the given context (not the shared one), so that a test
    /// can lose that device without disturbing others (feature `testing`).
    ///
    /// Errors: `NoGpu` when the kernels fail to build or fail the known-answer check.
    #[cfg(feature = "testing")]
    pub fn gpu_on(context: Arc<GpuContext>) -> Result<Self, VerifierError> {
        let gpu =
            GpuEd25519::new(context).map_err(|error| VerifierError::NoGpu(error.to_string()))?;
        let verifier = Verifier {
            backend: Backend::Gpu,
            registry: keys::KeyRegistry::new(),
            gpu: Some(gpu),
            gpu_table_keys: 0,
        };
        if let Some(gpu) = verifier.gpu.as_ref() {
            verifier
                .gpu_known_answers(gpu)
                .map_err(VerifierError::NoGpu)?;
        }
        Ok(verifier)
    }

    /// The GPU kernels this verifier uses, if any: their context, pipeline compile times and
    /// upload figures (benchmarks report them; with the `testing` feature, tests also inject
    /// faults and shrink sub-batches through them).
    pub fn gpu_kernels(&self) -> Option<&GpuEd25519> {
        self.gpu.as_ref()
    }

    /// The name of the GPU adapter this verifier uses, `None` when it has none.
    pub fn gpu_adapter_name(&self) -> Option<String> {
        self.gpu.as_ref().map(|gpu| gpu.context().info.name.clone())
    }

    /// The backend this verifier was built for.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Registers keys that will sign many items (the ledger's account keys), so that a
    /// backend can decompress them once and keep precomputed tables. Keys that are not valid
    /// point encodings are ignored (items signed by them fail either way). Registration
    /// never changes a verdict, only speed.
    pub fn register_keys(&mut self, keys: &[[u8; 32]]) {
        self.registry.register(keys);
        if let Some(gpu) = self.gpu.as_mut() {
            match gpu.build_tables(self.registry.keys()) {
                Ok(count) => self.gpu_table_keys = count,
                Err(error) => {
                    // Verdicts from a GPU whose tables failed would be void: drop it.
                    tracing::error!(%error, "GPU key tables failed, signatures now verify on the CPU");
                    self.gpu = None;
                    self.gpu_table_keys = 0;
                }
            }
        }
    }

    /// Whether a batch of `items` goes to the GPU: always with `gpu`, from
    /// [`AUTO_GPU_ITEMS_MIN`] items on with `auto` (when it found a hardware GPU), never on
    /// the CPU backend or without a GPU.
    pub fn uses_gpu_for(&self, items: usize) -> bool {
        self.gpu.is_some()
            && match self.backend {
                Backend::Cpu => false,
                Backend::Gpu => true,
                Backend::Auto => items >= AUTO_GPU_ITEMS_MIN,
            }
    }

    /// Verifies every item; `verdicts.len()` must equal `items.len()` (panics otherwise).
    pub fn verify_batch(&self, items: &[SigItem<'_>], verdicts: &mut [bool]) {
        assert_eq!(items.len(), verdicts.len(), "one verdict slot per item");
        let use_gpu = self.uses_gpu_for(items.len());
        match self.gpu.as_ref() {
            Some(gpu) if use_gpu => self.verify_gpu(gpu, items, verdicts),
            _ => cpu::verify_batch(&self.registry, items, verdicts),
        }
    }

    fn verify_gpu(&self, gpu: &GpuEd25519, items: &[SigItem<'_>], verdicts: &mut [bool]) {
        let pack = |range: std::ops::Range<usize>, words: &mut [u32]| {
            items[range]
                .par_iter()
                .zip(words.par_chunks_mut(gpu::ITEM_WORDS))
                .for_each(|(item, words)| {
                    pack_gpu_item(&self.registry, self.gpu_table_keys, item, words)
                });
        };
        if let Err(error) = gpu.verify_with(items.len(), pack, verdicts) {
            tracing::warn!(%error, items = items.len(), "GPU verification failed, the batch is verified on the CPU");
            cpu::verify_batch(&self.registry, items, verdicts);
        }
    }
}

/// Whether the WGSL verifier has passed the whole vector suite (`kernels/tests/
/// ed25519_gpu.rs`, run on llvmpipe: WGSL integer arithmetic does not depend on the adapter);
/// `auto` uses it only then, only on a hardware adapter, and only after the known-answer
/// check passed on that adapter. See docs/VERIFY_RULES.md.
pub const GPU_SIGVERIFY_VALIDATED: bool = true;

/// Deterministic known-answer cases: valid signatures, each with a flipped bit in R, in S
/// and in the message, a non-canonical S (S + L) and a small-order public key.
pub(crate) fn known_answer_cases() -> Vec<([u8; 32], Vec<u8>, [u8; 64])> {
    let mut cases = Vec::new();
    for seed in 1..=4u8 {
        let key = ed25519_zebra::SigningKey::from([seed; 32]);
        let public_key: [u8; 32] = ed25519_zebra::VerificationKey::from(&key).into();
        let message = vec![seed; 40 + usize::from(seed)];
        let signature = key.sign(&message).to_bytes();
        cases.push((public_key, message.clone(), signature));
        let mut bad_r = signature;
        bad_r[3] ^= 0x20;
        cases.push((public_key, message.clone(), bad_r));
        let mut bad_s = signature;
        bad_s[40] ^= 0x01;
        cases.push((public_key, message.clone(), bad_s));
        let mut bad_message = message.clone();
        bad_message[0] ^= 0x80;
        cases.push((public_key, bad_message, signature));
        // S + L: same point equation, non-canonical scalar, must be rejected.
        let l: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut s_plus_l = signature;
        let mut carry = 0u16;
        for i in 0..32 {
            let sum = u16::from(signature[32 + i]) + u16::from(l[i]) + carry;
            s_plus_l[32 + i] = sum as u8;
            carry = sum >> 8;
        }
        cases.push((public_key, message, s_plus_l));
    }
    // The identity as public key with R = identity and S = 0: valid under the cofactored rule.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&identity);
    cases.push((identity, b"small order".to_vec(), signature));
    cases
}

/// Items borrowing owned (public key, message, signature) triples.
pub(crate) fn items_of(cases: &[([u8; 32], Vec<u8>, [u8; 64])]) -> Vec<SigItem<'_>> {
    cases
        .iter()
        .map(|(public_key, message, signature)| SigItem {
            public_key,
            message,
            signature,
        })
        .collect()
}

/// The curve arithmetic that verifies signatures on the CPU in this process, as
/// curve25519-dalek picks it at start: `avx512-ifma` when the build has that backend
/// (`.cargo/config.toml`) and the CPU has AVX-512 IFMA and VL, else `avx2` when the CPU has
/// AVX2, else `portable`. For reports and the tests that must know which path ran.
pub fn cpu_curve_backend() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        #[cfg(curve25519_dalek_backend = "avx512")]
        if std::arch::is_x86_feature_detected!("avx512ifma")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            return "avx512-ifma";
        }
        #[cfg(not(any(curve25519_dalek_backend = "serial", curve25519_dalek_backend = "fiat")))]
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    "portable"
}

/// Verifies one signature with ed25519-zebra's single verifier: the reference rule.
pub fn verify_single(item: &SigItem<'_>) -> bool {
    cpu::verify_single(item)
}

#[cfg(test)]
mod known_answer_tests {
    use super::*;

    #[test]
    fn known_answer_cases_cover_both_verdicts_under_the_reference_rule() {
        let cases = known_answer_cases();
        let items = items_of(&cases);
        let verdicts: Vec<bool> = items.iter().map(verify_single).collect();
        // Per key: valid, bad R, bad S, bad message, S + L; then the small-order case.
        let mut expected = Vec::new();
        for _ in 0..4 {
            expected.extend([true, false, false, false, false]);
        }
        expected.push(true);
        assert_eq!(verdicts, expected);
        // The CPU batch path agrees item by item.
        let mut batch = vec![false; items.len()];
        Verifier::new(Backend::Cpu)
            .unwrap()
            .verify_batch(&items, &mut batch);
        assert_eq!(batch, expected);
    }
}
