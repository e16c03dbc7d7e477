//! Differential fuzz: CPU batch verdicts against ed25519-zebra's single verifier on hostile
//! inputs (random bytes, mutated valid signatures, small-order and non-canonical encodings
//! spliced in, S near L). Seeded: `PROPTEST_RNG_SEED=<n>` re-runs a case set;
//! `TALLY_FUZZ_CASES` raises the case count. The GPU's differential fuzz is in
//! ed25519_gpu.rs.

mod sigverify_support;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sigverify_support::*;
use tally_kernels::sigverify::{Backend, Verifier};

fn runner(cases: u32) -> TestRunner {
    let seed: u64 = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("proptest seed: {seed} (re-run with PROPTEST_RNG_SEED={seed})");
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let cases = std::env::var("TALLY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    )
}

/// A batch of hostile cases built from a valid base set and a list of mutations.
fn hostile_batch() -> impl Strategy<Value = Vec<Case>> {
    let mutation = (0usize..6, any::<usize>(), any::<u8>(), any::<[u8; 32]>());
    (any::<u64>(), proptest::collection::vec(mutation, 1..24)).prop_map(|(seed, mutations)| {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (valid, _) = random_valid(&mut rng, mutations.len(), 3);
        let weird: Vec<[u8; 32]> = small_order_encodings()
            .into_iter()
            .chain(non_canonical_encodings())
            .collect();
        valid
            .into_iter()
            .zip(mutations)
            .map(|(mut case, (kind, index, byte, bytes))| {
                match kind {
                    0 => {}
                    1 => case.sig[index % 64] ^= byte | 1,
                    2 => case.pk = weird[index % weird.len()],
                    3 => case.sig[..32].copy_from_slice(&weird[index % weird.len()]),
                    4 => {
                        // S near or above L: top byte 0x10..0x1f.
                        case.sig[32..].copy_from_slice(&bytes);
                        case.sig[63] = 0x10 | (byte & 0x0f);
                    }
                    _ => {
                        case.pk = bytes;
                        case.sig[index % 64] = byte;
                    }
                }
                case.name = format!("mutation {kind}");
                case
            })
            .collect()
    })
}

#[test]
fn cpu_matches_zebra_on_hostile_batches() {
    let mut verifier = Verifier::new(Backend::Cpu).unwrap();
    verifier.register_keys(&small_order_encodings());
    runner(64)
        .run(&hostile_batch(), |cases| {
            assert_agrees(&verifier, &cases);
            Ok(())
        })
        .unwrap();
}
