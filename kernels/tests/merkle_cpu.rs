//! CPU Merkle backend against a plain, independent restatement of docs/MERKLE.md.
//!
//! Random inputs come from a seed printed by each test; re-run one with
//! `TALLY_TEST_SEED=<seed> cargo test -p tally-kernels --test merkle_cpu`.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tally_kernels::merkle::{self, empty_root, leaf_hash, node_hash, LEAF_KEY, NODE_KEY};

fn seeded_rng(test: &str) -> ChaCha8Rng {
    let seed = std::env::var("TALLY_TEST_SEED")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| rand::rng().random::<u64>());
    eprintln!("{test}: seed {seed} (re-run with TALLY_TEST_SEED={seed})");
    ChaCha8Rng::seed_from_u64(seed)
}

/// The spec, written as plainly as possible with the blake3 crate only.
fn spec_root(data: &[u8], leaf_bytes: usize) -> [u8; 32] {
    if data.is_empty() {
        return *blake3::keyed_hash(&NODE_KEY, b"").as_bytes();
    }
    let mut level: Vec<[u8; 32]> = data
        .chunks(leaf_bytes)
        .map(|leaf| *blake3::keyed_hash(&LEAF_KEY, leaf).as_bytes())
        .collect();
    while level.len() > 1 {
        let mut next = Vec::new();
        let mut index = 0;
        while index < level.len() {
            if index + 1 < level.len() {
                let mut block = [0u8; 64];
                block[..32].copy_from_slice(&level[index]);
                block[32..].copy_from_slice(&level[index + 1]);
                next.push(*blake3::keyed_hash(&NODE_KEY, &block).as_bytes());
            } else {
                next.push(level[index]);
            }
            index += 2;
        }
        level = next;
    }
    level[0]
}

#[test]
fn hashing_rules_are_domain_separated() {
    assert_ne!(LEAF_KEY, NODE_KEY);
    let left = leaf_hash(b"a");
    let right = leaf_hash(b"b");
    let mut both = [0u8; 64];
    both[..32].copy_from_slice(&left);
    both[32..].copy_from_slice(&right);
    // A 64-byte leaf with the bytes of an inner node does not hash like that node.
    assert_ne!(leaf_hash(&both), node_hash(&left, &right));
    assert_eq!(empty_root(), *blake3::keyed_hash(&NODE_KEY, b"").as_bytes());
    assert_eq!(merkle::root(&[], 192), empty_root());
}

#[test]
fn roots_match_spec_for_edge_counts() {
    let mut rng = seeded_rng("roots_match_spec_for_edge_counts");
    let leaf_bytes = 192;
    let count_max = (1 << 16) + 1;
    let mut data = vec![0u8; leaf_bytes * count_max];
    rng.fill(&mut data[..]);
    let mut counts = vec![0, 1, 2, 3];
    for k in 2..=12 {
        counts.extend([(1 << k) - 1, 1 << k, (1 << k) + 1]);
    }
    counts.extend([1025, 3000, 5000, (1 << 16) - 1, 1 << 16, (1 << 16) + 1]);
    for leaf_count in counts {
        let data = &data[..leaf_count * leaf_bytes];
        let expected = spec_root(data, leaf_bytes);
        assert_eq!(
            merkle::root(data, leaf_bytes),
            expected,
            "{leaf_count} leaves"
        );
        let levels = merkle::tree_levels(data, leaf_bytes);
        assert_eq!(levels.last().expect("a root level"), &vec![expected]);
    }
}

#[test]
fn roots_match_spec_for_odd_leaf_sizes() {
    let mut rng = seeded_rng("roots_match_spec_for_odd_leaf_sizes");
    for leaf_bytes in [1, 31, 64, 65, 1024, 1025, 3000] {
        let leaf_count = rng.random_range(0..3000);
        let mut data = vec![0u8; leaf_bytes * leaf_count];
        rng.fill(&mut data[..]);
        assert_eq!(
            merkle::root(&data, leaf_bytes),
            spec_root(&data, leaf_bytes),
            "{leaf_count} x {leaf_bytes} bytes"
        );
    }
}

/// The leaf order matters and every leaf byte matters.
#[test]
fn any_change_changes_the_root() {
    let mut rng = seeded_rng("any_change_changes_the_root");
    let leaf_bytes = 192;
    let leaf_count = 1500;
    let mut data = vec![0u8; leaf_bytes * leaf_count];
    rng.fill(&mut data[..]);
    let root = merkle::root(&data, leaf_bytes);
    for _ in 0..20 {
        let mut altered = data.clone();
        let byte = rng.random_range(0..altered.len());
        altered[byte] ^= 1 << rng.random_range(0..8);
        assert_ne!(
            merkle::root(&altered, leaf_bytes),
            root,
            "flip in byte {byte}"
        );
    }
    let mut swapped = data.clone();
    swapped[..leaf_bytes].copy_from_slice(&data[leaf_bytes..2 * leaf_bytes]);
    swapped[leaf_bytes..2 * leaf_bytes].copy_from_slice(&data[..leaf_bytes]);
    assert_ne!(merkle::root(&swapped, leaf_bytes), root);
}

/// About a million leaves (2^20 + 1).
#[test]
fn million_leaf_root_matches_spec() {
    let mut rng = seeded_rng("million_leaf_root_matches_spec");
    let leaf_bytes = 192;
    let mut data = vec![0u8; leaf_bytes * ((1 << 20) + 1)];
    rng.fill(&mut data[..]);
    assert_eq!(
        merkle::root(&data, leaf_bytes),
        spec_root(&data, leaf_bytes)
    );
}
