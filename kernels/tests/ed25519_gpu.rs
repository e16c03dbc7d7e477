//! The GPU Ed25519 verifier end to end, against ed25519-zebra's single verifier (the
//! reference) item by item: Wycheproof, RFC 8032, random valid signatures, single-bit flips,
//! small-order and mixed-order points, non-canonical encodings, S >= L, a seeded
//! differential proptest on hostile batches, sub-batch boundaries, and the CPU fallback when
//! the device fails mid-batch (injected mapping failure, real device loss).
//!
//! Runs on any adapter (llvmpipe without a GPU). Without one the tests print a notice and
//! pass, or fail when TALLY_REQUIRE_GPU=1 (CI).

mod sigverify_support;

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sigverify_support::*;
use std::sync::{Mutex, OnceLock};
use tally_kernels::gpu::{gpu_required, GpuContext, REQUIRE_GPU_ENV};
use tally_kernels::sigverify::gpu::GPU_BATCH_ITEMS_MAX;
use tally_kernels::sigverify::{verify_single, Backend, SigItem, Verifier};
use tally_kernels::testing::InjectedFault;

/// One GPU verifier for the whole binary (building one compiles the pipelines), behind a
/// lock: tests register keys and set the sub-batch size on it. `None` without an adapter.
fn shared_verifier() -> Option<&'static Mutex<Verifier>> {
    static VERIFIER: OnceLock<Option<Mutex<Verifier>>> = OnceLock::new();
    VERIFIER
        .get_or_init(|| match Verifier::new(Backend::Gpu) {
            Ok(verifier) => {
                let kernels = verifier.gpu_kernels().expect("a gpu verifier has kernels");
                for (pipeline, time) in kernels.pipeline_compile_times() {
                    eprintln!(
                        "{pipeline}: compiled and ran once in {:.1} s on {}",
                        time.as_secs_f64(),
                        kernels.context().info.name
                    );
                }
                Some(Mutex::new(verifier))
            }
            Err(error) if gpu_required() => {
                panic!("{REQUIRE_GPU_ENV}=1 but the GPU verifier failed: {error}")
            }
            Err(error) => {
                eprintln!("notice: GPU test skipped: {error}");
                None
            }
        })
        .as_ref()
}

fn lock(verifier: &Mutex<Verifier>) -> std::sync::MutexGuard<'_, Verifier> {
    verifier
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The reference verdicts of `cases`.
fn reference(cases: &[Case]) -> Vec<bool> {
    cases
        .iter()
        .map(|case| verify_single(&case.item()))
        .collect()
}

/// Verifies `cases` in one batch and returns the verdicts.
fn verdicts(verifier: &Verifier, cases: &[Case]) -> Vec<bool> {
    let items: Vec<SigItem<'_>> = cases.iter().map(Case::item).collect();
    let mut verdicts = vec![false; items.len()];
    verifier.verify_batch(&items, &mut verdicts);
    verdicts
}

#[test]
fn gpu_agrees_with_zebra_on_vectors_unregistered_and_registered() {
    let Some(shared) = shared_verifier() else {
        return;
    };
    let mut verifier = lock(shared);
    let seed = seed();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (wycheproof, _) = wycheproof();
    let (valid, keys) = random_valid(&mut rng, 24, 4);
    let mut cases = wycheproof;
    cases.extend(rfc8032());
    cases.extend(valid);
    cases.extend(hostile(&mut rng));
    let valid = assert_agrees(&verifier, &cases);
    assert!(valid > 24 && valid < cases.len(), "both verdicts occur");
    // The same cases (the hostile ones thinned out, llvmpipe is slow) with their keys, and
    // hostile keys, registered: GPU tables built by the host instead of per-item
    // decompression on the GPU.
    let all_keys: Vec<[u8; 32]> = cases.iter().map(|case| case.pk).collect();
    verifier.register_keys(&keys);
    verifier.register_keys(&small_order_encodings());
    verifier.register_keys(&non_canonical_encodings());
    verifier.register_keys(&all_keys);
    let thinned: Vec<Case> = cases
        .iter()
        .enumerate()
        .filter(|(i, case)| !case.name.starts_with("weird") || i % 5 == 0)
        .map(|(_, case)| case.clone())
        .collect();
    assert_agrees(&verifier, &thinned);
}

#[test]
fn gpu_agrees_with_zebra_on_single_bit_flips() {
    let Some(shared) = shared_verifier() else {
        return;
    };
    let verifier = lock(shared);
    let seed = seed();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (valid, _) = random_valid(&mut rng, 2, 2);
    let mut cases = valid.clone();
    // Every flip of the key and the signature, and every fifth of the message, of one case
    // (its key may or may not be registered by another test: verdicts do not depend on it).
    let msg_bits = valid[0].msg.len() * 8;
    cases.extend(
        bit_flips(&valid[0])
            .into_iter()
            .enumerate()
            .filter(|(i, _)| *i < 768 || (i - 768) % 5 == 0 || msg_bits == 0)
            .map(|(_, case)| case),
    );
    let valid_count = assert_agrees(&verifier, &cases);
    assert!(valid_count >= 2, "the unflipped cases are valid");
}

/// Batches cross sub-batch boundaries (both buffers in turn); verdicts stay in place.
#[test]
fn gpu_sub_batches_keep_verdicts_in_order() {
    let Some(shared) = shared_verifier() else {
        return;
    };
    let verifier = lock(shared);
    let seed = seed();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (valid, _) = random_valid(&mut rng, 30, 3);
    let hostile = hostile(&mut rng);
    let mut cases = Vec::new();
    for (i, case) in valid.into_iter().enumerate() {
        cases.push(case);
        if i % 3 == 0 {
            cases.push(hostile[(i * 37) % hostile.len()].clone());
        }
    }
    let kernels = verifier.gpu_kernels().unwrap();
    for sub_batch in [1, 7, 16, GPU_BATCH_ITEMS_MAX] {
        kernels.set_sub_batch_items(sub_batch);
        let got = verdicts(&verifier, &cases[..cases.len().min(sub_batch * 5)]);
        assert_eq!(
            got,
            reference(&cases[..got.len()]),
            "sub-batches of {sub_batch}"
        );
    }
    kernels.set_sub_batch_items(GPU_BATCH_ITEMS_MAX);
    verifier.verify_batch(&[], &mut []);
}

/// A mapping failure on the third sub-batch: the whole batch is verified on the CPU, with
/// the reference verdicts, and the next batch uses the GPU again.
#[test]
fn gpu_mapping_failure_mid_batch_falls_back_to_the_cpu() {
    let Some(shared) = shared_verifier() else {
        return;
    };
    let verifier = lock(shared);
    let seed = seed();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (mut cases, _) = random_valid(&mut rng, 24, 2);
    for case in cases.iter_mut().step_by(5) {
        case.sig[40] ^= 4;
    }
    let expected = reference(&cases);
    let kernels = verifier.gpu_kernels().unwrap();
    kernels.set_sub_batch_items(6);
    // The GPU alone reports the failure...
    kernels.inject_fault(Some(InjectedFault::MapFailure { sub_batch: 2 }));
    // (Items left zeroed: the verdicts do not matter, the call must fail.)
    let mut gpu_verdicts = vec![false; cases.len()];
    let error = kernels
        .verify_with(cases.len(), |_range, _words| {}, &mut gpu_verdicts)
        .expect_err("the injected fault fails the GPU call");
    assert!(
        error
            .to_string()
            .contains("injected mapping failure on sub-batch 2"),
        "{error}"
    );
    // ...and the verifier recovers on the CPU with every verdict right.
    kernels.inject_fault(Some(InjectedFault::MapFailure { sub_batch: 2 }));
    assert_eq!(verdicts(&verifier, &cases), expected);
    assert_eq!(verdicts(&verifier, &cases), expected, "after the fault");
    kernels.set_sub_batch_items(GPU_BATCH_ITEMS_MAX);
}

/// A real device loss (the device destroyed) before the second sub-batch: the batch is
/// verified on the CPU; later batches too.
#[test]
fn gpu_device_loss_mid_batch_falls_back_to_the_cpu() {
    // Its own device: losing it must not disturb the other tests. The shared verifier is
    // built first, so that this second build of the same pipelines finds them in the
    // driver's shader cache instead of compiling them concurrently.
    let _ = shared_verifier();
    let context = match GpuContext::new() {
        Ok(context) => std::sync::Arc::new(context),
        Err(error) if gpu_required() => panic!("{REQUIRE_GPU_ENV}=1 but: {error}"),
        Err(error) => {
            eprintln!("notice: GPU test skipped: {error}");
            return;
        }
    };
    let verifier = Verifier::gpu_on(context.clone()).expect("kernels build on a new device");
    let seed = seed();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (mut cases, _) = random_valid(&mut rng, 12, 2);
    cases.extend(hostile(&mut rng).into_iter().step_by(97));
    let expected = reference(&cases);
    let kernels = verifier.gpu_kernels().unwrap();
    kernels.set_sub_batch_items(5);
    kernels.inject_fault(Some(InjectedFault::DeviceLoss { sub_batch: 1 }));
    assert_eq!(verdicts(&verifier, &cases), expected);
    assert!(context.is_lost(), "the device was destroyed");
    assert_eq!(verdicts(&verifier, &cases), expected, "after the loss");
}

/// `auto` never takes a CPU-type adapter (llvmpipe) for speed, whatever the validation
/// state of the kernels.
#[test]
fn auto_never_uses_a_cpu_adapter() {
    let verifier = Verifier::new(Backend::Auto).unwrap();
    if let Some(kernels) = verifier.gpu_kernels() {
        assert!(
            !kernels.context().is_cpu_adapter(),
            "auto picked {}",
            kernels.context().info.name
        );
    }
    let cases = rfc8032();
    assert_eq!(verdicts(&verifier, &cases), reference(&cases));
}

#[test]
fn gpu_matches_zebra_on_hostile_batches_proptest() {
    let Some(shared) = shared_verifier() else {
        return;
    };
    let verifier = lock(shared);
    runner(12)
        .run(&hostile_batch(40), |cases| {
            let got = verdicts(&verifier, &cases);
            for ((case, got), expected) in cases.iter().zip(&got).zip(reference(&cases)) {
                prop_assert_eq!(
                    *got,
                    expected,
                    "GPU disagrees with zebra on {} (pk {}, sig {}, msg {})",
                    case.name,
                    hex::encode(case.pk),
                    hex::encode(case.sig),
                    hex::encode(&case.msg)
                );
            }
            Ok(())
        })
        .unwrap();
}

/// Prints what each pipeline costs to compile on this adapter, without the shader cache
/// when run as `MESA_SHADER_CACHE_DISABLE=true cargo test ... -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement (prints compile times), not a check"]
fn print_pipeline_compile_times() {
    let context = std::sync::Arc::new(GpuContext::new().expect("an adapter"));
    let kernels = tally_kernels::sigverify::gpu::GpuEd25519::new(context).expect("kernels build");
    for (pipeline, time) in kernels.pipeline_compile_times() {
        eprintln!(
            "{pipeline}: compiled and ran once in {:.1} s on {}",
            time.as_secs_f64(),
            kernels.context().info.name
        );
    }
}
