//! GPU Merkle backend against the CPU backend and the blake3 crate. Without a GPU this runs
//! the real WGSL on Mesa's llvmpipe; with no adapter at all the tests print a notice and
//! pass, unless TALLY_REQUIRE_GPU=1 (CI), which makes them fail.
//!
//! Random inputs come from a seed printed by each test; re-run one with
//! `TALLY_TEST_SEED=<seed> cargo test -p tally-kernels --test merkle_gpu`.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tally_kernels::gpu::GpuError;
use tally_kernels::merkle::gpu::GpuMerkle;
use tally_kernels::merkle::{self, leaf_hash, LEAF_KEY};
use tally_kernels::testing::test_context;

fn seeded_rng(test: &str) -> ChaCha8Rng {
    let seed = std::env::var("TALLY_TEST_SEED")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| rand::rng().random::<u64>());
    eprintln!("{test}: seed {seed} (re-run with TALLY_TEST_SEED={seed})");
    ChaCha8Rng::seed_from_u64(seed)
}

fn random_bytes(rng: &mut ChaCha8Rng, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes[..]);
    bytes
}

fn gpu_merkle() -> Option<GpuMerkle> {
    let context = test_context()?;
    Some(GpuMerkle::new(context).expect("the Merkle pipelines build on this adapter"))
}

#[test]
fn context_reports_its_adapter() {
    let Some(context) = test_context() else {
        return;
    };
    eprintln!("{context:?}");
    assert!(context.limits.max_storage_buffer_binding_size >= 128 << 20);
    context.check_health().expect("a fresh context is healthy");
}

#[derive(serde::Deserialize)]
struct Vectors {
    key: String,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    input_len: usize,
    keyed_hash: String,
}

/// The official BLAKE3 vectors, keyed mode, every input of one chunk or less. Each input is
/// hashed as three leaves in a row, so that odd lengths also start at unaligned bytes.
#[test]
fn wgsl_compression_matches_official_keyed_vectors() {
    let Some(mut gpu) = gpu_merkle() else { return };
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/blake3_test_vectors.json"
    );
    let path = std::env::var("TALLY_BLAKE3_VECTORS").unwrap_or_else(|_| path.to_owned());
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read BLAKE3 vectors at {path}: {error}"));
    let vectors: Vectors = serde_json::from_str(&text).expect("valid vector file");
    let key: [u8; 32] = vectors.key.as_bytes().try_into().expect("32-byte key");
    let mut checked = 0;
    for case in vectors.cases.iter().filter(|case| case.input_len <= 1024) {
        let input: Vec<u8> = (0..case.input_len)
            .map(|index| (index % 251) as u8)
            .collect();
        let expected = hex::decode(&case.keyed_hash).expect("hex");
        assert_eq!(&expected[..32], blake3::keyed_hash(&key, &input).as_bytes());
        let data = input.repeat(3);
        let hashes = gpu
            .hash_leaves_keyed(&data, case.input_len, 3, &key)
            .expect("GPU hashes the leaves");
        for hash in &hashes {
            assert_eq!(&hash[..], &expected[..32], "input_len {}", case.input_len);
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} vectors apply: wrong file?");
}

#[test]
fn leaf_hashes_match_cpu_for_edge_sizes() {
    let Some(mut gpu) = gpu_merkle() else { return };
    let mut rng = seeded_rng("leaf_hashes_match_cpu_for_edge_sizes");
    for leaf_bytes in [
        1, 2, 3, 4, 5, 31, 32, 33, 63, 64, 65, 127, 128, 129, 160, 191, 192, 193, 1023, 1024,
    ] {
        let leaf_count = 67;
        let data = random_bytes(&mut rng, leaf_bytes * leaf_count);
        let gpu_hashes = gpu.hash_leaves(&data, leaf_bytes).expect("GPU leaf hashes");
        let cpu_hashes: Vec<_> = data.chunks_exact(leaf_bytes).map(leaf_hash).collect();
        assert_eq!(gpu_hashes, cpu_hashes, "leaf_bytes {leaf_bytes}");
    }
    // The empty leaf, with the leaf key.
    let empty = gpu
        .hash_leaves_keyed(&[], 0, 2, &LEAF_KEY)
        .expect("GPU hashes empty leaves");
    assert_eq!(empty, vec![leaf_hash(b""); 2]);
}

fn leaf_counts() -> Vec<usize> {
    let mut counts = vec![0, 1, 2, 3];
    for k in 2..=10 {
        counts.extend([(1 << k) - 1, 1 << k, (1 << k) + 1]);
    }
    counts.extend([1000, (1 << 16) - 1, 1 << 16, (1 << 16) + 1]);
    counts
}

#[test]
fn roots_match_cpu_for_edge_counts() {
    let Some(mut gpu) = gpu_merkle() else { return };
    let mut rng = seeded_rng("roots_match_cpu_for_edge_counts");
    let leaf_bytes = 192;
    let data = random_bytes(&mut rng, leaf_bytes * ((1 << 16) + 1));
    for leaf_count in leaf_counts() {
        let data = &data[..leaf_count * leaf_bytes];
        let expected = merkle::root(data, leaf_bytes);
        let root = gpu.root(data, leaf_bytes).expect("GPU root");
        assert_eq!(root, expected, "{leaf_count} leaves");
    }
}

/// Buffers are reused and grown across blocks: a small block after a large one must not
/// see stale leaves or levels, and odd leaf sizes must not read padding from earlier data.
#[test]
fn reused_buffers_give_fresh_roots() {
    let Some(mut gpu) = gpu_merkle() else { return };
    let mut rng = seeded_rng("reused_buffers_give_fresh_roots");
    for round in 0..24 {
        let leaf_bytes = [1, 7, 64, 100, 192, 1024][rng.random_range(0..6)];
        let leaf_count = match round % 3 {
            0 => rng.random_range(0..8),
            1 => rng.random_range(0..700),
            _ => rng.random_range(0..5000),
        };
        let data = random_bytes(&mut rng, leaf_bytes * leaf_count);
        let root = gpu.root(&data, leaf_bytes).expect("GPU root");
        assert_eq!(
            root,
            merkle::root(&data, leaf_bytes),
            "{leaf_count} x {leaf_bytes} bytes"
        );
    }
}

#[test]
fn bad_leaf_layouts_are_rejected() {
    let Some(mut gpu) = gpu_merkle() else { return };
    let data = vec![0u8; 2048];
    for (data, leaf_bytes) in [(&data[..], 0), (&data[..], 2048), (&data[..1000], 192)] {
        match gpu.root(data, leaf_bytes) {
            Err(GpuError::InvalidInput(message)) => eprintln!("rejected: {message}"),
            other => panic!(
                "{} bytes as {leaf_bytes}-byte leaves gave {other:?}",
                data.len()
            ),
        }
    }
    assert!(matches!(
        gpu.hash_leaves_keyed(&data[..10], 4, 3, &LEAF_KEY),
        Err(GpuError::InvalidInput(_))
    ));
}

/// About a million leaves (2^20 + 1: the odd node promotes all the way up); about 6 s on
/// llvmpipe on 2 cores, so it stays in the regular suite.
#[test]
fn million_leaf_root_matches_cpu() {
    let Some(mut gpu) = gpu_merkle() else { return };
    let mut rng = seeded_rng("million_leaf_root_matches_cpu");
    let leaf_bytes = 192;
    for leaf_count in [(1 << 20) + 1, 1 << 20] {
        let data = random_bytes(&mut rng, leaf_bytes * leaf_count);
        assert_eq!(
            gpu.root(&data, leaf_bytes).expect("GPU root"),
            merkle::root(&data, leaf_bytes)
        );
    }
}
