//! Inclusion proofs: every leaf of random trees proves, every alteration fails with the
//! right error, and the JSON form round-trips.
//!
//! Random inputs come from a seed printed by each test; re-run one with
//! `TALLY_TEST_SEED=<seed> cargo test -p tally-kernels --test merkle_proof`.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tally_kernels::merkle::{self, build_proof, verify_proof, Proof, ProofError, ProofJson};

fn seeded_rng(test: &str) -> ChaCha8Rng {
    let seed = std::env::var("TALLY_TEST_SEED")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| rand::rng().random::<u64>());
    eprintln!("{test}: seed {seed} (re-run with TALLY_TEST_SEED={seed})");
    ChaCha8Rng::seed_from_u64(seed)
}

struct Tree {
    data: Vec<u8>,
    leaf_bytes: usize,
    levels: Vec<Vec<[u8; 32]>>,
    root: [u8; 32],
}

impl Tree {
    fn random(rng: &mut ChaCha8Rng, leaf_count: usize, leaf_bytes: usize) -> Tree {
        let mut data = vec![0u8; leaf_count * leaf_bytes];
        rng.fill(&mut data[..]);
        let levels = merkle::tree_levels(&data, leaf_bytes);
        let root = merkle::root(&data, leaf_bytes);
        Tree {
            data,
            leaf_bytes,
            levels,
            root,
        }
    }

    fn leaf(&self, index: u64) -> &[u8] {
        let start = index as usize * self.leaf_bytes;
        &self.data[start..start + self.leaf_bytes]
    }
}

#[test]
fn every_leaf_of_random_trees_proves() {
    let mut rng = seeded_rng("every_leaf_of_random_trees_proves");
    let mut counts: Vec<usize> = vec![1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 100];
    counts.extend((0..6).map(|_| rng.random_range(1..700)));
    for leaf_count in counts {
        let tree = Tree::random(&mut rng, leaf_count, 192);
        for index in 0..leaf_count as u64 {
            let proof = build_proof(&tree.levels, index);
            assert_eq!(proof.leaf_count, leaf_count as u64);
            verify_proof(&tree.root, tree.leaf(index), &proof)
                .unwrap_or_else(|error| panic!("leaf {index} of {leaf_count}: {error}"));
            let json = ProofJson::new(&proof, &tree.root, tree.leaf(index));
            let text = serde_json::to_string(&json).expect("serialises");
            let parsed: ProofJson = serde_json::from_str(&text).expect("parses");
            assert_eq!(parsed, json);
            parsed.verify().expect("the JSON form verifies");
        }
    }
}

fn assert_root_mismatch(result: Result<(), ProofError>, what: &str) {
    match result {
        Err(ProofError::RootMismatch { .. }) => {}
        other => panic!("{what}: expected RootMismatch, got {other:?}"),
    }
}

#[test]
fn altered_proofs_fail_with_the_right_error() {
    let mut rng = seeded_rng("altered_proofs_fail_with_the_right_error");
    for leaf_count in [2usize, 3, 5, 8, 13, 64, 65, 200] {
        let tree = Tree::random(&mut rng, leaf_count, 160);
        for index in 0..leaf_count as u64 {
            let proof = build_proof(&tree.levels, index);
            let leaf = tree.leaf(index);
            // Each bit of each sibling.
            for sibling in 0..proof.siblings.len() {
                for bit in 0..256 {
                    let mut altered = proof.clone();
                    altered.siblings[sibling][bit / 8] ^= 1 << (bit % 8);
                    assert_root_mismatch(
                        verify_proof(&tree.root, leaf, &altered),
                        &format!("leaf {index}/{leaf_count}, sibling {sibling} bit {bit}"),
                    );
                }
            }
            // Each bit of the root, and one of the leaf.
            for bit in 0..256 {
                let mut root = tree.root;
                root[bit / 8] ^= 1 << (bit % 8);
                assert_root_mismatch(verify_proof(&root, leaf, &proof), "altered root");
            }
            let mut altered_leaf = leaf.to_vec();
            let byte = rng.random_range(0..altered_leaf.len());
            altered_leaf[byte] ^= 1;
            assert_root_mismatch(
                verify_proof(&tree.root, &altered_leaf, &proof),
                "altered leaf",
            );
            assert_root_mismatch(verify_proof(&tree.root, &leaf[1..], &proof), "shorter leaf");
            // Another leaf's bytes with this proof.
            let other = (index + 1) % leaf_count as u64;
            assert_root_mismatch(
                verify_proof(&tree.root, tree.leaf(other), &proof),
                "another leaf",
            );
            // Wrong index: out of range, or in range (wrong sibling count or wrong root).
            let out_of_range = Proof {
                leaf_index: leaf_count as u64,
                ..proof.clone()
            };
            assert_eq!(
                verify_proof(&tree.root, leaf, &out_of_range),
                Err(ProofError::IndexOutOfRange {
                    leaf_index: leaf_count as u64,
                    leaf_count: leaf_count as u64
                })
            );
            let moved = Proof {
                leaf_index: other,
                ..proof.clone()
            };
            match verify_proof(&tree.root, leaf, &moved) {
                Err(ProofError::RootMismatch { .. } | ProofError::WrongSiblingCount { .. }) => {}
                result => panic!("leaf {index} claimed at {other}: {result:?}"),
            }
            // Wrong count: a smaller or larger tree. The root does not commit to the leaf
            // count (docs/MERKLE.md, "What a proof proves"): a count whose path from this
            // leaf has the same shape verifies, which is why verifiers take the count from
            // the block header. Every other count fails.
            for wrong_count in [
                leaf_count as u64 - 1,
                leaf_count as u64 + 1,
                2 * leaf_count as u64,
            ] {
                let recounted = Proof {
                    leaf_count: wrong_count,
                    ..proof.clone()
                };
                let result = verify_proof(&tree.root, leaf, &recounted);
                if path_shape(index, wrong_count) == path_shape(index, leaf_count as u64) {
                    assert_eq!(
                        result,
                        Ok(()),
                        "same shape, {index}/{leaf_count} as of {wrong_count}"
                    );
                    continue;
                }
                match result {
                    Err(
                        ProofError::RootMismatch { .. }
                        | ProofError::WrongSiblingCount { .. }
                        | ProofError::IndexOutOfRange { .. },
                    ) => {}
                    result => panic!("leaf {index}/{leaf_count} as of {wrong_count}: {result:?}"),
                }
            }
            // A sibling removed or added.
            let mut fewer = proof.clone();
            if fewer.siblings.pop().is_some() {
                assert!(matches!(
                    verify_proof(&tree.root, leaf, &fewer),
                    Err(ProofError::WrongSiblingCount { .. })
                ));
            }
            let mut more = proof.clone();
            more.siblings.push([0; 32]);
            assert!(matches!(
                verify_proof(&tree.root, leaf, &more),
                Err(ProofError::WrongSiblingCount { .. })
            ));
        }
    }
}

/// The steps from a leaf to the root: per level, whether the node is a left child, a right
/// child or promoted. Two (index, count) claims with the same shape hash identically.
fn path_shape(mut index: u64, mut width: u64) -> Vec<u8> {
    if index >= width {
        return vec![u8::MAX];
    }
    let mut shape = Vec::new();
    while width > 1 {
        shape.push(if index ^ 1 >= width {
            2
        } else {
            (index % 2) as u8
        });
        index /= 2;
        width = width.div_ceil(2);
    }
    shape
}

/// The documented limit, shown concretely: the first leaf of a 3-leaf tree also proves as
/// the first leaf of a 4-leaf tree (the promoted third leaf poses as the right pair).
#[test]
fn leaf_count_is_not_committed_by_the_root() {
    let mut rng = seeded_rng("leaf_count_is_not_committed_by_the_root");
    let tree = Tree::random(&mut rng, 3, 192);
    let proof = build_proof(&tree.levels, 0);
    let four = Proof {
        leaf_count: 4,
        ..proof.clone()
    };
    assert_eq!(verify_proof(&tree.root, tree.leaf(0), &four), Ok(()));
}

#[test]
fn single_leaf_tree_proof_is_empty() {
    let mut rng = seeded_rng("single_leaf_tree_proof_is_empty");
    let tree = Tree::random(&mut rng, 1, 192);
    let proof = build_proof(&tree.levels, 0);
    assert!(proof.siblings.is_empty());
    assert_eq!(tree.root, merkle::leaf_hash(tree.leaf(0)));
    verify_proof(&tree.root, tree.leaf(0), &proof).expect("verifies");
}

#[test]
fn malformed_json_is_reported_by_field() {
    let mut rng = seeded_rng("malformed_json_is_reported_by_field");
    let tree = Tree::random(&mut rng, 5, 192);
    let proof = build_proof(&tree.levels, 3);
    let good = ProofJson::new(&proof, &tree.root, tree.leaf(3));
    type Alteration = Box<dyn Fn(&mut ProofJson)>;
    let cases: [(&str, Alteration); 4] = [
        ("root", Box::new(|json| json.root.truncate(62))),
        (
            "siblings[1]",
            Box::new(|json| json.siblings[1].replace_range(0..2, "zz")),
        ),
        ("leaf", Box::new(|json| json.leaf.push('a'))),
        (
            "siblings[0]",
            Box::new(|json| json.siblings[0].push_str("00")),
        ),
    ];
    for (field, alter) in cases {
        let mut json = good.clone();
        alter(&mut json);
        match json.verify() {
            Err(ProofError::Malformed { field: found, .. }) => assert_eq!(found, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    let unknown =
        r#"{"leaf_index":0,"leaf_count":1,"siblings":[],"root":"00","leaf":"","extra":1}"#;
    assert!(serde_json::from_str::<ProofJson>(unknown).is_err());
}
