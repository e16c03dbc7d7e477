//! Shared corpus for the sigverify tests: owned (pk, msg, sig) cases, each with a name, and
//! the reference verdict from ed25519-zebra's single verifier.
#![allow(dead_code)]

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use ed25519_zebra::{SigningKey, VerificationKey};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha512};
use tally_kernels::sigverify::{verify_single, SigItem, Verifier};

/// One test case.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub pk: [u8; 32],
    pub msg: Vec<u8>,
    pub sig: [u8; 64],
}

impl Case {
    pub fn item(&self) -> SigItem<'_> {
        SigItem {
            public_key: &self.pk,
            message: &self.msg,
            signature: &self.sig,
        }
    }
}

/// The seed for randomised tests: `TALLY_TEST_SEED` or a fresh one, printed either way.
pub fn seed() -> u64 {
    let seed = std::env::var("TALLY_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::rng().next_u64());
    eprintln!("seed: {seed} (re-run with TALLY_TEST_SEED={seed})");
    seed
}

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// Wycheproof Ed25519 cases with a 64-byte signature (shorter or longer signatures cannot
/// be a `SigItem`; the test asserts Wycheproof calls them invalid). Returns the cases and
/// Wycheproof's expectation ("valid"/"invalid") per case.
pub fn wycheproof() -> (Vec<Case>, Vec<String>) {
    // Copied into the repository with its source named (tests/vectors/README.md).
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/wycheproof_ed25519_test.json"
    );
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read the Wycheproof vectors at {path}: {error}"));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for group in json["testGroups"].as_array().unwrap() {
        let pk = hex::decode(group["publicKey"]["pk"].as_str().unwrap()).unwrap();
        for test in group["tests"].as_array().unwrap() {
            let sig = hex::decode(test["sig"].as_str().unwrap()).unwrap();
            let result = test["result"].as_str().unwrap().to_string();
            let (Ok(pk), Ok(sig)) = (
                <[u8; 32]>::try_from(pk.as_slice()),
                <[u8; 64]>::try_from(sig.as_slice()),
            ) else {
                assert_eq!(
                    result, "invalid",
                    "tcId {} has a bad length but is not invalid",
                    test["tcId"]
                );
                continue;
            };
            cases.push(Case {
                name: format!(
                    "wycheproof tcId {} ({})",
                    test["tcId"],
                    test["comment"].as_str().unwrap_or("")
                ),
                pk,
                msg: hex::decode(test["msg"].as_str().unwrap()).unwrap(),
                sig,
            });
            expected.push(result);
        }
    }
    (cases, expected)
}

/// RFC 8032 section 7.1, TEST 1, 2 and 3 (Ed25519): (secret key, public key, message, signature).
pub const RFC8032: [(&str, &str, &str, &str); 3] = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
];

pub fn rfc8032() -> Vec<Case> {
    RFC8032
        .iter()
        .enumerate()
        .map(|(i, (_, pk, msg, sig))| Case {
            name: format!("RFC 8032 TEST {}", i + 1),
            pk: hex32(pk),
            msg: hex::decode(msg).unwrap(),
            sig: hex::decode(sig).unwrap().try_into().unwrap(),
        })
        .collect()
}

/// `count` valid signatures by `key_count` keys; returns the cases and the keys.
pub fn random_valid(
    rng: &mut ChaCha20Rng,
    count: usize,
    key_count: usize,
) -> (Vec<Case>, Vec<[u8; 32]>) {
    let signing: Vec<SigningKey> = (0..key_count)
        .map(|_| {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            SigningKey::from(seed)
        })
        .collect();
    let keys: Vec<[u8; 32]> = signing
        .iter()
        .map(|k| VerificationKey::from(k).into())
        .collect();
    let cases = (0..count)
        .map(|i| {
            let key = (rng.next_u32() as usize) % key_count;
            let mut msg = vec![0u8; (rng.next_u32() % 200) as usize];
            rng.fill_bytes(&mut msg);
            Case {
                name: format!("random valid {i}"),
                pk: keys[key],
                sig: signing[key].sign(&msg).to_bytes(),
                msg,
            }
        })
        .collect();
    (cases, keys)
}

/// Every single-bit flip of the key, the signature and the message of `case`.
pub fn bit_flips(case: &Case) -> Vec<Case> {
    let mut out = Vec::new();
    for bit in 0..256 {
        let mut c = case.clone();
        c.pk[bit / 8] ^= 1 << (bit % 8);
        c.name = format!("{} pk bit {bit}", case.name);
        out.push(c);
    }
    for bit in 0..512 {
        let mut c = case.clone();
        c.sig[bit / 8] ^= 1 << (bit % 8);
        c.name = format!("{} sig bit {bit}", case.name);
        out.push(c);
    }
    for bit in 0..case.msg.len() * 8 {
        let mut c = case.clone();
        c.msg[bit / 8] ^= 1 << (bit % 8);
        c.name = format!("{} msg bit {bit}", case.name);
        out.push(c);
    }
    out
}

const L_BYTES: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// Encodings of the 8 small-order points, canonical and with the sign bit flipped.
pub fn small_order_encodings() -> Vec<[u8; 32]> {
    let mut out = Vec::new();
    for point in EIGHT_TORSION.iter() {
        let bytes = point.compress().to_bytes();
        out.push(bytes);
        let mut flipped = bytes;
        flipped[31] ^= 0x80;
        out.push(flipped);
    }
    out
}

/// Every encoding with y >= p (y = p + t, t = 0..18), both sign bits: 38 encodings; some
/// are points (ZIP-215 accepts them), some are not.
pub fn non_canonical_encodings() -> Vec<[u8; 32]> {
    let mut out = Vec::new();
    for t in 0u8..19 {
        let mut bytes = [0xffu8; 32];
        bytes[0] = 0xed + t;
        bytes[31] = 0x7f;
        out.push(bytes);
        bytes[31] = 0xff;
        out.push(bytes);
    }
    out
}

fn challenge(r: &[u8], a: &[u8], msg: &[u8]) -> Scalar {
    let digest: [u8; 64] = Sha512::new()
        .chain_update(r)
        .chain_update(a)
        .chain_update(msg)
        .finalize()
        .into();
    Scalar::from_bytes_mod_order_wide(&digest)
}

/// Hostile cases: small-order and non-canonical A and R with s = 0 (valid under ZIP-215
/// when both are small order), mixed-order keys A + T signed with a's secret (valid only
/// under the cofactored equation), S = L, S = L + 1, S = 2^256 - 1, and a valid signature
/// whose S is replaced by S + L (non-canonical: invalid).
pub fn hostile(rng: &mut ChaCha20Rng) -> Vec<Case> {
    let mut out = Vec::new();
    let weird: Vec<[u8; 32]> = small_order_encodings()
        .into_iter()
        .chain(non_canonical_encodings())
        .collect();
    // Small-order / non-canonical A and R with s = 0 and with s = 1.
    for (i, a) in weird.iter().enumerate() {
        for (j, r) in weird.iter().enumerate().step_by(3) {
            for s in [0u8, 1] {
                let mut sig = [0u8; 64];
                sig[..32].copy_from_slice(r);
                sig[32] = s;
                out.push(Case {
                    name: format!("weird A {i} R {j} s {s}"),
                    pk: *a,
                    msg: b"hostile".to_vec(),
                    sig,
                });
            }
        }
    }
    // Mixed-order keys: A' = aB + T, signed honestly over A' with the secret a.
    for (t, torsion) in EIGHT_TORSION.iter().enumerate() {
        let mut secret = [0u8; 64];
        rng.fill_bytes(&mut secret);
        let a = Scalar::from_bytes_mod_order_wide(&secret);
        rng.fill_bytes(&mut secret);
        let nonce = Scalar::from_bytes_mod_order_wide(&secret);
        let pk = (ED25519_BASEPOINT_POINT * a + torsion)
            .compress()
            .to_bytes();
        for torsion_r in [0usize, 1, 4] {
            let r = (ED25519_BASEPOINT_POINT * nonce + EIGHT_TORSION[torsion_r])
                .compress()
                .to_bytes();
            let msg = format!("mixed order {t} {torsion_r}").into_bytes();
            let s = nonce + challenge(&r, &pk, &msg) * a;
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&r);
            sig[32..].copy_from_slice(s.as_bytes());
            out.push(Case {
                name: format!("mixed-order A torsion {t} R torsion {torsion_r}"),
                pk,
                msg,
                sig,
            });
        }
    }
    // Non-canonical S on an otherwise valid signature, and out-of-range S values.
    let (valid, _) = random_valid(rng, 4, 2);
    for case in valid {
        let s = Scalar::from_canonical_bytes(case.sig[32..].try_into().unwrap()).unwrap();
        let mut plus_l = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = s.as_bytes()[i] as u16 + L_BYTES[i] as u16 + carry;
            plus_l[i] = v as u8;
            carry = v >> 8;
        }
        if carry == 0 {
            let mut c = case.clone();
            c.sig[32..].copy_from_slice(&plus_l);
            c.name = format!("{} with S + L", case.name);
            out.push(c);
        }
        for (label, s_bytes) in [
            ("L", L_BYTES),
            ("2^256-1", [0xff; 32]),
            ("L+1", {
                let mut b = L_BYTES;
                b[0] += 1;
                b
            }),
        ] {
            let mut c = case.clone();
            c.sig[32..].copy_from_slice(&s_bytes);
            c.name = format!("{} with S = {label}", case.name);
            out.push(c);
        }
        // A non-canonical encoding of the same R (y + p when y < 19) is rare; instead flip the
        // sign bit of R, which decompresses to -R.
        let mut c = case.clone();
        c.sig[31] ^= 0x80;
        c.name = format!("{} with -R", case.name);
        out.push(c);
    }
    // Every weird encoding decompresses (or not) exactly as dalek says: sanity of the list.
    for bytes in &weird {
        let _ = CompressedEdwardsY(*bytes).decompress();
    }
    out
}

/// Verifies `cases` with `verifier` in one batch and asserts every verdict equals
/// ed25519-zebra's single verifier. Returns the number of valid cases.
pub fn assert_agrees(verifier: &Verifier, cases: &[Case]) -> usize {
    let items: Vec<SigItem<'_>> = cases.iter().map(Case::item).collect();
    let mut verdicts = vec![false; items.len()];
    verifier.verify_batch(&items, &mut verdicts);
    let mut valid = 0;
    for ((case, item), verdict) in cases.iter().zip(&items).zip(&verdicts) {
        let reference = verify_single(item);
        assert_eq!(
            *verdict,
            reference,
            "backend {} disagrees with zebra on {}",
            verifier.backend(),
            case.name
        );
        valid += usize::from(reference);
    }
    valid
}

/// A proptest runner with a printed seed (`PROPTEST_RNG_SEED` replays it) and `cases` cases
/// (`TALLY_FUZZ_CASES` overrides).
pub fn runner(cases: u32) -> TestRunner {
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

/// A hostile batch of 1 to `len_max - 1` cases: valid signatures, each mutated one way (flipped signature bits,
/// small-order or non-canonical A or R spliced in, S at or above L, random key bytes).
pub fn hostile_batch(len_max: usize) -> impl Strategy<Value = Vec<Case>> {
    let mutation = (0usize..7, any::<usize>(), any::<u8>(), any::<[u8; 32]>());
    (
        any::<u64>(),
        proptest::collection::vec(mutation, 1..len_max),
    )
        .prop_map(|(seed, mutations)| {
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
                        5 => {
                            // Both points small order or non-canonical, S small.
                            case.pk = weird[index % weird.len()];
                            case.sig[..32].copy_from_slice(&weird[(index / 7) % weird.len()]);
                            case.sig[32..].fill(0);
                            case.sig[32] = byte & 7;
                        }
                        _ => {
                            case.pk = bytes;
                            case.sig[index % 64] = byte;
                        }
                    }
                    case.name = format!("mutation {kind} ({index}, {byte})");
                    case
                })
                .collect()
        })
}
