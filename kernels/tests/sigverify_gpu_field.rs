//! The WGSL field and point arithmetic against references (naga validation of every shader
//! is in `shaders_validate.rs`): `field_ops` against a u64-limb reference mod p; `point_ops`
//! against curve25519-dalek (decompression, add, double, cofactor, subtract).

mod sigverify_support;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sigverify_support::{non_canonical_encodings, seed, small_order_encodings};
use tally_kernels::gpu::shader::Shader;
use tally_kernels::testing::{run_test_kernel, test_context};

// Reference arithmetic mod p on 4 u64 limbs (a second, independent implementation).
type U256 = [u64; 4];
const P: U256 = [
    0xffff_ffff_ffff_ffed,
    u64::MAX,
    u64::MAX,
    0x7fff_ffff_ffff_ffff,
];

fn ge(a: &U256, b: &U256) -> bool {
    for i in (0..4).rev() {
        if a[i] != b[i] {
            return a[i] > b[i];
        }
    }
    true
}

fn sub_raw(a: &U256, b: &U256) -> U256 {
    let mut out = [0u64; 4];
    let mut borrow = 0u64;
    for i in 0..4 {
        let (d1, b1) = a[i].overflowing_sub(b[i]);
        let (d2, b2) = d1.overflowing_sub(borrow);
        out[i] = d2;
        borrow = u64::from(b1 || b2);
    }
    out
}

fn canon(mut a: U256) -> U256 {
    while ge(&a, &P) {
        a = sub_raw(&a, &P);
    }
    a
}

/// Reduces a 512-bit value (8 limbs) mod p by folding 2^256 = 38.
fn reduce_wide(mut t: [u128; 8]) -> U256 {
    loop {
        let mut limbs = [0u128; 5];
        for i in 0..4 {
            limbs[i] += t[i] + t[i + 4] * 38;
        }
        let mut carry = 0u128;
        let mut out = [0u64; 4];
        for i in 0..4 {
            let v = limbs[i] + carry;
            out[i] = v as u64;
            carry = v >> 64;
        }
        if carry == 0 {
            return canon(out);
        }
        t = [
            out[0] as u128,
            out[1] as u128,
            out[2] as u128,
            out[3] as u128,
            carry,
            0,
            0,
            0,
        ];
    }
}

fn mul(a: &U256, b: &U256) -> U256 {
    let mut t = [0u128; 8];
    for i in 0..4 {
        let mut carry = 0u128;
        for j in 0..4 {
            let v = t[i + j] + (a[i] as u128) * (b[j] as u128) + carry;
            t[i + j] = v as u64 as u128;
            carry = v >> 64;
        }
        t[i + 4] += carry;
    }
    reduce_wide(t)
}

fn add(a: &U256, b: &U256) -> U256 {
    let mut t = [0u128; 8];
    let mut carry = 0u128;
    for i in 0..4 {
        let v = a[i] as u128 + b[i] as u128 + carry;
        t[i] = v as u64 as u128;
        carry = v >> 64;
    }
    t[4] = carry;
    reduce_wide(t)
}

fn neg(a: &U256) -> U256 {
    let a = canon(*a);
    if a == [0; 4] {
        a
    } else {
        sub_raw(&P, &a)
    }
}

fn pow(a: &U256, exponent: &U256) -> U256 {
    let mut result = [1, 0, 0, 0];
    for i in (0..256).rev() {
        result = mul(&result, &result);
        if (exponent[i / 64] >> (i % 64)) & 1 == 1 {
            result = mul(&result, a);
        }
    }
    result
}

fn to_words(a: &U256) -> [u32; 8] {
    let mut w = [0u32; 8];
    for i in 0..4 {
        w[2 * i] = a[i] as u32;
        w[2 * i + 1] = (a[i] >> 32) as u32;
    }
    w
}

#[test]
fn field_ops_match_the_reference() {
    let Some(context) = test_context() else {
        return;
    };
    let mut rng = ChaCha20Rng::seed_from_u64(seed());
    // Edge values: loose inputs up to 2^256 - 1 are legal in the representation.
    let p_plus = |k: u64| {
        let mut v = P;
        v[0] += k;
        v
    };
    let mut values: Vec<U256> = vec![
        [0; 4],
        [1, 0, 0, 0],
        [2, 0, 0, 0],
        [38, 0, 0, 0],
        sub_raw(&P, &[1, 0, 0, 0]),
        P,
        p_plus(1),
        p_plus(18),
        [u64::MAX, u64::MAX, u64::MAX, 0x7fff_ffff_ffff_ffff],
        [u64::MAX; 4],
        [0, 0, 0, 1 << 63],
        [0xffff, 0xffff_0000, 0, 0],
    ];
    for _ in 0..40 {
        values.push([
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
        ]);
    }
    let mut pairs = Vec::new();
    for (i, a) in values.iter().enumerate() {
        pairs.push((*a, values[(i * 7 + 3) % values.len()]));
        pairs.push((*a, *a));
    }
    let mut cases = Vec::new();
    for (a, b) in &pairs {
        cases.extend(to_words(a));
        cases.extend(to_words(b));
    }
    let results = run_test_kernel(
        &context,
        Shader::Ed25519FieldTest,
        &cases,
        pairs.len(),
        pairs.len() * 64,
    )
    .unwrap();
    let p_minus_2 = sub_raw(&P, &[2, 0, 0, 0]);
    let p58 = {
        // (p - 5) / 8 = 2^252 - 3
        let mut v = [0u64, 0, 0, 1 << 60];
        v = sub_raw(&v, &[3, 0, 0, 0]);
        v
    };
    for (index, (a, b)) in pairs.iter().enumerate() {
        let got = &results[index * 64..(index + 1) * 64];
        let expected = [
            mul(a, b),
            mul(a, a),
            add(a, b),
            add(a, &neg(b)),
            neg(a),
            pow(a, &p_minus_2),
            pow(a, &p58),
            canon(*a),
        ];
        for (op, (name, value)) in [
            "mul", "sq", "add", "sub", "neg", "invert", "pow22523", "reduce",
        ]
        .iter()
        .zip(expected.iter())
        .enumerate()
        {
            assert_eq!(
                &got[op * 8..op * 8 + 8],
                &to_words(value),
                "{name} of case {index}: a = {a:x?}, b = {b:x?}"
            );
        }
    }
}

#[test]
#[ignore = "llvmpipe takes minutes to compile this kernel; run with `-- --ignored`"]
fn point_ops_match_dalek() {
    let Some(context) = test_context() else {
        return;
    };
    let mut rng = ChaCha20Rng::seed_from_u64(seed());
    let mut encodings: Vec<[u8; 32]> = small_order_encodings();
    encodings.extend(non_canonical_encodings());
    for _ in 0..24 {
        let mut wide = [0u8; 64];
        rng.fill_bytes(&mut wide);
        encodings.push(
            (ED25519_BASEPOINT_POINT * Scalar::from_bytes_mod_order_wide(&wide))
                .compress()
                .to_bytes(),
        );
        let mut random = [0u8; 32];
        rng.fill_bytes(&mut random);
        encodings.push(random);
    }
    let pairs: Vec<([u8; 32], [u8; 32])> = encodings
        .iter()
        .enumerate()
        .map(|(i, p)| (*p, encodings[(i * 5 + 1) % encodings.len()]))
        .collect();
    let mut cases = Vec::new();
    for (p, q) in &pairs {
        for bytes in [p, q] {
            cases.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
        }
    }
    let results = run_test_kernel(
        &context,
        Shader::Ed25519PointTest,
        &cases,
        pairs.len(),
        pairs.len() * 42,
    )
    .unwrap();
    let words = |bytes: [u8; 32]| -> Vec<u32> {
        bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    for (index, (p_bytes, q_bytes)) in pairs.iter().enumerate() {
        let got = &results[index * 42..(index + 1) * 42];
        let p = CompressedEdwardsY(*p_bytes).decompress();
        let q = CompressedEdwardsY(*q_bytes).decompress();
        assert_eq!(
            got[0] == 1,
            p.is_some(),
            "valid(P) for {}",
            hex::encode(p_bytes)
        );
        assert_eq!(
            got[1] == 1,
            q.is_some(),
            "valid(Q) for {}",
            hex::encode(q_bytes)
        );
        let (Some(p), Some(q)) = (p, q) else { continue };
        let name = format!("P = {}, Q = {}", hex::encode(p_bytes), hex::encode(q_bytes));
        assert_eq!(got[2..10], words(p.compress().to_bytes()), "P {name}");
        assert_eq!(
            got[10..18],
            words((p + q).compress().to_bytes()),
            "P + Q {name}"
        );
        assert_eq!(
            got[18..26],
            words((p + p).compress().to_bytes()),
            "2P {name}"
        );
        assert_eq!(
            got[26..34],
            words(p.mul_by_cofactor().compress().to_bytes()),
            "8P {name}"
        );
        assert_eq!(
            got[34..42],
            words((p - q).compress().to_bytes()),
            "P - Q {name}"
        );
    }
}
