//! Proofs that trust no node (`tally_engine::proof`): the size of a proof and the time to
//! verify it offline, for a network of `n` validators whose certificates are signed with real
//! keys in this process ([`SampleNetwork`]). Two cases: a block of the genesis epoch (no set
//! change), and a block after one set change (a validator added by a quorum of votes, each
//! vote in its own certified block). The ceiling is the same number of single Ed25519
//! verifications (ed25519-zebra, the key decompressed once) as the proof holds signatures,
//! timed in the same run.

use ed25519_zebra::{Signature, SigningKey, VerificationKey};
use std::time::{Duration, Instant};
use tally_engine::proof::sample::SampleNetwork;
use tally_engine::proof::{self, TxProof};

/// Heights per epoch: a quorum of 100 validators votes in blocks of one vote each within
/// the first epoch.
const EPOCH: u64 = 128;

/// Records in the block proved (a full-ish block: the path has 10 siblings).
const BLOCK_RECORDS: usize = 1_000;

/// What one case measured.
#[derive(Clone, Debug)]
pub struct ProofFigures {
    pub validators: usize,
    pub set_changes: bool,
    /// Validator votes the proof carries.
    pub votes: usize,
    /// The JSON `tally prove` writes.
    pub json_bytes: usize,
    /// Signatures the verifier checks: certificate signatures and records.
    pub signatures: usize,
    /// Median time of one `verify` (JSON already parsed).
    pub verify: Duration,
    /// Median time of the same number of single ed25519-zebra verifications.
    pub ceiling: Duration,
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The proof of a transfer in a block of `validators` validators, after one added validator
/// when `set_changes`.
pub fn sample_proof(validators: usize, set_changes: bool) -> (SampleNetwork, TxProof) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut network = SampleNetwork::new(validators, 1, EPOCH, validators as u64);
    if set_changes {
        let quorum = network.current_set().quorum();
        for voter in 0..quorum {
            let vote = network.vote(voter, true, validators);
            network.push_block(&[vote]);
        }
    }
    while network.height() % EPOCH != EPOCH - 1 {
        network.push_block(&[]);
    }
    network.push_block(&[]);
    let records: Vec<_> = (0..BLOCK_RECORDS)
        .map(|i| network.transfer(i % validators, 1 + i as u64))
        .collect();
    let id = records[BLOCK_RECORDS / 2].id();
    network.push_block(&records);
    let log = network.write_log(dir.path()).expect("the log is written");
    let proof = proof::build(
        &log,
        network.anchor.network_id,
        network.anchor.heights_per_epoch,
        id,
        None,
    )
    .expect("the proof builds");
    (network, proof)
}

/// Measures one case, `rounds` verifications (and as many ceiling rounds).
pub fn measure(validators: usize, set_changes: bool, rounds: usize) -> ProofFigures {
    let (network, proof) = sample_proof(validators, set_changes);
    let json_bytes = serde_json::to_string_pretty(&proof)
        .expect("serialises")
        .len()
        + 1;
    let verified = proof::verify(&proof, &network.anchor).expect("an honest proof verifies");
    let mut signatures = verified.signers + 1;
    for vote_block in &proof.set_changes {
        let certificate = tally_engine::consensus::Certificate::decode(
            &hex::decode(&vote_block.block.certificate).expect("hex"),
        )
        .expect("a certificate");
        signatures += certificate.signatures.len() + vote_block.votes.len();
    }
    let verify = median(
        (0..rounds)
            .map(|_| {
                let start = Instant::now();
                let verified = proof::verify(&proof, &network.anchor);
                let elapsed = start.elapsed();
                assert!(verified.is_ok());
                elapsed
            })
            .collect(),
    );
    let key = SigningKey::from([7u8; 32]);
    let public = VerificationKey::from(&key);
    let message = [3u8; 120];
    let signature: Signature = key.sign(&message);
    let ceiling = median(
        (0..rounds)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..signatures {
                    assert!(public.verify(&signature, &message).is_ok());
                }
                start.elapsed()
            })
            .collect(),
    );
    ProofFigures {
        validators,
        set_changes,
        votes: verified.votes,
        json_bytes,
        signatures,
        verify,
        ceiling,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sample_proofs_verify_with_and_without_a_set_change() {
        for set_changes in [false, true] {
            let figures = super::measure(4, set_changes, 1);
            assert!(figures.json_bytes > 1_000);
            // 3 of 4 sign each certificate and the record is signed; with a change, 3 votes
            // in 3 blocks certified by 3, and 4 of the 5 validators sign the proved block
            let expected = if set_changes {
                4 + 1 + 3 * (3 + 1)
            } else {
                3 + 1
            };
            assert_eq!(figures.signatures, expected);
        }
    }
}
