//! Every backend against ed25519-zebra's single verifier on the same corpus: Wycheproof,
//! RFC 8032, random valid signatures, every single-bit flip of some of them, small-order,
//! mixed-order and non-canonical encodings, S >= L. Verdicts must be identical per item.
//!
//! The GPU backend's agreement tests are in ed25519_gpu.rs.

mod sigverify_support;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sigverify_support::*;
use tally_kernels::sigverify::{cpu_curve_backend, verify_single, Backend, SigItem, Verifier};

/// The corpus every backend must agree on. `flip_sources` valid cases get all bit flips.
fn corpus(seed: u64, random: usize, flip_sources: usize) -> (Vec<Case>, Vec<[u8; 32]>) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (wycheproof, _) = wycheproof();
    let (valid, keys) = random_valid(&mut rng, random, 8);
    let mut cases = wycheproof;
    cases.extend(rfc8032());
    cases.extend(valid.iter().cloned());
    for case in valid.iter().take(flip_sources) {
        cases.extend(bit_flips(case));
    }
    cases.extend(hostile(&mut rng));
    (cases, keys)
}

/// Which curve arithmetic these verdicts come from. CI names the one it expects in
/// `TALLY_EXPECT_CURVE_BACKEND` (from the CPU's flags, and `avx2` for the run with the AVX2
/// backend forced), so that each run proves the path it claims.
#[test]
fn the_expected_curve_arithmetic_runs() {
    let backend = cpu_curve_backend();
    println!("curve arithmetic: {backend}");
    if let Ok(expected) = std::env::var("TALLY_EXPECT_CURVE_BACKEND") {
        assert_eq!(backend, expected, "TALLY_EXPECT_CURVE_BACKEND");
    }
}

#[test]
fn rfc8032_vectors_are_consistent_and_valid() {
    for ((secret, public, msg, sig), case) in RFC8032.iter().zip(rfc8032()) {
        let key = ed25519_zebra::SigningKey::from(
            <[u8; 32]>::try_from(hex::decode(secret).unwrap()).unwrap(),
        );
        let public_key: [u8; 32] = ed25519_zebra::VerificationKey::from(&key).into();
        assert_eq!(hex::encode(public_key), *public, "{}", case.name);
        assert_eq!(
            hex::encode(key.sign(&hex::decode(msg).unwrap()).to_bytes()),
            *sig,
            "{}",
            case.name
        );
        assert!(verify_single(&case.item()), "{}", case.name);
    }
}

/// Wycheproof follows RFC 8032 strictness in places; ZIP-215 differs there. Every difference
/// must be one of the documented kinds (docs/VERIFY_RULES.md): the test prints them.
#[test]
fn wycheproof_differences_from_zip215_are_the_documented_ones() {
    let (cases, expected) = wycheproof();
    let mut differences = 0;
    for (case, expected) in cases.iter().zip(&expected) {
        let verdict = verify_single(&case.item());
        if verdict != (expected == "valid") {
            differences += 1;
            eprintln!("ZIP-215 {verdict} vs Wycheproof {expected}: {}", case.name);
            // ZIP-215 only ever accepts more than RFC 8032 here (non-canonical encodings,
            // small-order components); it never rejects a Wycheproof-valid signature.
            assert!(
                verdict,
                "ZIP-215 rejects a Wycheproof-valid case: {}",
                case.name
            );
        }
    }
    eprintln!("{differences} Wycheproof cases differ under ZIP-215");
}

#[test]
fn cpu_agrees_with_zebra_on_the_corpus() {
    let seed = seed();
    let (cases, keys) = corpus(seed, 200, 3);
    let mut verifier = Verifier::new(Backend::Cpu).unwrap();
    let valid = assert_agrees(&verifier, &cases);
    assert!(valid >= 200 + 3, "the corpus must contain valid cases");
    assert!(
        valid < cases.len() / 2,
        "the corpus must contain invalid cases"
    );
    // The same with the keys registered (tables, cached decompression), and with a hostile
    // key registered too.
    verifier.register_keys(&keys);
    verifier.register_keys(&small_order_encodings());
    verifier.register_keys(&non_canonical_encodings());
    assert_agrees(&verifier, &cases);
}

#[test]
fn cpu_agrees_on_batch_sizes_around_the_chunk_edges() {
    let seed = seed();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (valid, keys) = random_valid(&mut rng, 700, 20);
    let hostile = hostile(&mut rng);
    let mut verifier = Verifier::new(Backend::Cpu).unwrap();
    verifier.register_keys(&keys[..10]);
    for size in [0usize, 1, 2, 3, 4, 5, 63, 64, 65, 129, 700] {
        // A mix: mostly valid, one bad item at a position that moves with the size.
        let mut cases: Vec<Case> = valid[..size].to_vec();
        if size > 0 {
            cases[size / 3] = hostile[size % hostile.len()].clone();
        }
        assert_agrees(&verifier, &cases);
    }
}

#[test]
fn empty_batch_and_length_mismatch() {
    let verifier = Verifier::new(Backend::Cpu).unwrap();
    verifier.verify_batch(&[], &mut []);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let pk = [0u8; 32];
        let sig = [0u8; 64];
        let item = SigItem {
            public_key: &pk,
            message: b"",
            signature: &sig,
        };
        verifier.verify_batch(&[item], &mut []);
    }));
    assert!(
        result.is_err(),
        "a verdict slice of the wrong length must panic"
    );
}

#[test]
fn auto_without_hardware_gpu_agrees() {
    let seed = seed();
    let (cases, _) = corpus(seed, 20, 0);
    let verifier = Verifier::new(Backend::Auto).unwrap();
    assert_agrees(&verifier, &cases);
}
