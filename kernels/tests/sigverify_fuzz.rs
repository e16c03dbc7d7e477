//! Differential fuzz: CPU batch verdicts against ed25519-zebra's single verifier on hostile
//! inputs (random bytes, mutated valid signatures, small-order and non-canonical encodings
//! spliced in, S near L). Seeded: `PROPTEST_RNG_SEED=<n>` re-runs a case set;
//! `TALLY_FUZZ_CASES` raises the case count. The GPU's differential fuzz is in
//! ed25519_gpu.rs.

mod sigverify_support;

use sigverify_support::*;
use tally_kernels::sigverify::{Backend, Verifier};

#[test]
fn cpu_matches_zebra_on_hostile_batches() {
    let mut verifier = Verifier::new(Backend::Cpu).unwrap();
    verifier.register_keys(&small_order_encodings());
    runner(64)
        .run(&hostile_batch(24), |cases| {
            assert_agrees(&verifier, &cases);
            Ok(())
        })
        .unwrap();
}
