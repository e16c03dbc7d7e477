//! `tally verify-proof FILE`: checks a Merkle inclusion proof (the JSON form of
//! `tally_kernels::merkle::ProofJson`, docs/MERKLE.md) without trusting any node.

use std::path::PathBuf;

use anyhow::Context;
use tally_kernels::merkle::ProofJson;

/// Largest proof file accepted: a proof of a 2^32-leaf tree with a one-chunk leaf is under
/// 5 KiB; anything far larger is not a proof.
const PROOF_FILE_BYTES_MAX: u64 = 1 << 20;

/// Arguments of `tally verify-proof`.
#[derive(Debug, clap::Args)]
pub struct VerifyProofArgs {
    /// JSON proof file: {leaf_index, leaf_count, siblings: [hex], root: hex, leaf: hex}.
    pub file: PathBuf,
}

/// Reads the proof, verifies it, prints `OK ...` on success.
///
/// Errors (the process then exits non-zero): the file cannot be read or is too large, is not
/// a proof in JSON, a field is malformed, or the proof does not verify (each says why).
pub fn run_verify(args: &VerifyProofArgs) -> anyhow::Result<()> {
    let path = &args.file;
    let bytes = std::fs::metadata(path)
        .with_context(|| format!("cannot read proof file {}", path.display()))?
        .len();
    anyhow::ensure!(
        bytes <= PROOF_FILE_BYTES_MAX,
        "proof file {} is {bytes} bytes, more than the {PROOF_FILE_BYTES_MAX} a proof can be",
        path.display()
    );
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read proof file {}", path.display()))?;
    let proof: ProofJson = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a proof: expected JSON {{leaf_index, leaf_count, siblings, root, leaf}}",
            path.display()
        )
    })?;
    proof
        .verify()
        .with_context(|| format!("proof in {} does NOT verify", path.display()))?;
    println!(
        "OK: the leaf ({} bytes) is leaf {} of {} under root {}",
        proof.leaf.len() / 2,
        proof.leaf_index,
        proof.leaf_count,
        proof.root
    );
    // The root does not commit to the leaf count (docs/MERKLE.md): say what to compare.
    println!(
        "check that the block header has tx_root {} and tx_count {}",
        proof.root, proof.leaf_count
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_kernels::merkle::{build_proof, root, tree_levels};

    fn write_proof(dir: &tempfile::TempDir, json: &ProofJson) -> VerifyProofArgs {
        let file = dir.path().join("proof.json");
        std::fs::write(
            &file,
            serde_json::to_string_pretty(json).expect("serialises"),
        )
        .expect("writes");
        VerifyProofArgs { file }
    }

    #[test]
    fn verifies_good_proofs_and_rejects_altered_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data: Vec<u8> = (0..7 * 192).map(|index| (index % 251) as u8).collect();
        let levels = tree_levels(&data, 192);
        let tree_root = root(&data, 192);
        let proof = build_proof(&levels, 5);
        let good = ProofJson::new(&proof, &tree_root, &data[5 * 192..6 * 192]);
        run_verify(&write_proof(&dir, &good)).expect("a good proof verifies");

        let mut bad = good.clone();
        let flipped = if bad.siblings[0].starts_with('0') {
            "1"
        } else {
            "0"
        };
        bad.siblings[0].replace_range(0..1, flipped);
        let error = run_verify(&write_proof(&dir, &bad)).expect_err("altered sibling");
        assert!(format!("{error:#}").contains("does not match"), "{error:#}");

        let mut bad = good.clone();
        bad.root.truncate(10);
        let error = run_verify(&write_proof(&dir, &bad)).expect_err("short root");
        assert!(format!("{error:#}").contains("root"), "{error:#}");

        std::fs::write(dir.path().join("proof.json"), "not json").expect("writes");
        let args = VerifyProofArgs {
            file: dir.path().join("proof.json"),
        };
        assert!(format!("{:#}", run_verify(&args).expect_err("not json")).contains("not a proof"));
        let missing = VerifyProofArgs {
            file: dir.path().join("missing.json"),
        };
        assert!(run_verify(&missing).is_err());
    }
}
