//! Inclusion proofs: the sibling hashes from a leaf up to the root.

use super::{leaf_hash, node_hash, Hash};

/// Proof that leaf `leaf_index` of a tree of `leaf_count` leaves is under a root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    pub leaf_index: u64,
    pub leaf_count: u64,
    /// Siblings from the leaf level upwards; levels where the node was promoted (odd node at
    /// the end of a level) have no sibling and no entry.
    pub siblings: Vec<Hash>,
}

/// Why a proof does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("leaf index {leaf_index} is outside a tree of {leaf_count} leaves")]
    IndexOutOfRange { leaf_index: u64, leaf_count: u64 },
    #[error("the proof has {found} sibling hashes but a tree of {leaf_count} leaves needs {expected} for leaf {leaf_index}")]
    WrongSiblingCount {
        leaf_index: u64,
        leaf_count: u64,
        expected: usize,
        found: usize,
    },
    #[error("the recomputed root {computed} does not match the expected root {expected}: the leaf, a sibling or the root was altered")]
    RootMismatch { computed: String, expected: String },
    #[error("the proof's field `{field}` is malformed: {reason}; hashes are 64 lowercase hex digits, the leaf is its bytes in hex")]
    Malformed { field: String, reason: String },
}

/// Builds the proof for `leaf_index` from the levels of `tree_levels`.
///
/// Panics if `leaf_index` is outside the tree.
pub fn build_proof(levels: &[Vec<Hash>], leaf_index: u64) -> Proof {
    let leaf_count = levels[0].len() as u64;
    assert!(leaf_index < leaf_count, "leaf index outside the tree");
    let mut siblings = Vec::new();
    let mut index = leaf_index as usize;
    for level in &levels[..levels.len() - 1] {
        let sibling = index ^ 1;
        if sibling < level.len() {
            siblings.push(level[sibling]);
        }
        index /= 2;
    }
    Proof {
        leaf_index,
        leaf_count,
        siblings,
    }
}

/// Checks that `leaf` (the leaf's bytes) is leaf `proof.leaf_index` under `root`.
pub fn verify_proof(root: &Hash, leaf: &[u8], proof: &Proof) -> Result<(), ProofError> {
    let Proof {
        leaf_index,
        leaf_count,
        ref siblings,
    } = *proof;
    if leaf_index >= leaf_count {
        return Err(ProofError::IndexOutOfRange {
            leaf_index,
            leaf_count,
        });
    }
    let expected = sibling_count(leaf_index, leaf_count);
    if siblings.len() != expected {
        return Err(ProofError::WrongSiblingCount {
            leaf_index,
            leaf_count,
            expected,
            found: siblings.len(),
        });
    }
    let mut hash = leaf_hash(leaf);
    let mut index = leaf_index;
    let mut width = leaf_count;
    let mut next_sibling = siblings.iter();
    while width > 1 {
        let sibling = index ^ 1;
        if sibling < width {
            let other = next_sibling.next().expect("sibling count checked above");
            hash = if index % 2 == 0 {
                node_hash(&hash, other)
            } else {
                node_hash(other, &hash)
            };
        }
        index /= 2;
        width = width.div_ceil(2);
    }
    if hash != *root {
        return Err(ProofError::RootMismatch {
            computed: hex(&hash),
            expected: hex(root),
        });
    }
    Ok(())
}

fn sibling_count(mut index: u64, mut width: u64) -> usize {
    let mut count = 0;
    while width > 1 {
        if (index ^ 1) < width {
            count += 1;
        }
        index /= 2;
        width = width.div_ceil(2);
    }
    count
}

fn hex(hash: &Hash) -> String {
    hex_bytes(hash)
}

/// The JSON form of a proof, self-contained for an auditor: the leaf's bytes, the root it is
/// claimed to be under, and the sibling hashes, all in lowercase hex (docs/MERKLE.md).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofJson {
    pub leaf_index: u64,
    pub leaf_count: u64,
    /// Sibling hashes from the leaf level upwards, 64 hex digits each.
    pub siblings: Vec<String>,
    /// The Merkle root, 64 hex digits.
    pub root: String,
    /// The leaf's bytes (not its hash), hex.
    pub leaf: String,
}

impl ProofJson {
    /// The JSON form of `proof` for `leaf` under `root`. Does not check the proof.
    pub fn new(proof: &Proof, root: &Hash, leaf: &[u8]) -> ProofJson {
        ProofJson {
            leaf_index: proof.leaf_index,
            leaf_count: proof.leaf_count,
            siblings: proof.siblings.iter().map(hex).collect(),
            root: hex(root),
            leaf: hex_bytes(leaf),
        }
    }

    /// Decodes the hex fields into a proof, the root and the leaf bytes.
    ///
    /// Errors: `Malformed` naming the field that is not valid hex or not 32 bytes.
    pub fn decode(&self) -> Result<(Proof, Hash, Vec<u8>), ProofError> {
        let siblings = self
            .siblings
            .iter()
            .enumerate()
            .map(|(index, sibling)| decode_hash(&format!("siblings[{index}]"), sibling))
            .collect::<Result<Vec<_>, _>>()?;
        let root = decode_hash("root", &self.root)?;
        let leaf = decode_hex("leaf", &self.leaf)?;
        let proof = Proof {
            leaf_index: self.leaf_index,
            leaf_count: self.leaf_count,
            siblings,
        };
        Ok((proof, root, leaf))
    }

    /// Decodes and verifies: `Ok` when the leaf is leaf `leaf_index` of a tree of
    /// `leaf_count` leaves under `root`.
    ///
    /// Errors: `Malformed` for bad hex, else those of [`verify_proof`].
    pub fn verify(&self) -> Result<(), ProofError> {
        let (proof, root, leaf) = self.decode()?;
        verify_proof(&root, &leaf, &proof)
    }
}

fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn decode_hex(field: &str, text: &str) -> Result<Vec<u8>, ProofError> {
    let malformed = |reason: String| ProofError::Malformed {
        field: field.to_owned(),
        reason,
    };
    if !text.len().is_multiple_of(2) {
        return Err(malformed(format!(
            "{} hex digits is an odd number",
            text.len()
        )));
    }
    text.as_bytes()
        .chunks_exact(2)
        .enumerate()
        .map(|(index, pair)| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| malformed(format!("not a hex digit pair at byte {index}")))
        })
        .collect()
}

fn decode_hash(field: &str, text: &str) -> Result<Hash, ProofError> {
    let bytes = decode_hex(field, text)?;
    bytes
        .try_into()
        .map_err(|bytes: Vec<u8>| ProofError::Malformed {
            field: field.to_owned(),
            reason: format!("{} bytes where a hash has 32", bytes.len()),
        })
}
