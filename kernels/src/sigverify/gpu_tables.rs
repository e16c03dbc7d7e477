//! The GPU kernels' inputs made on the host: each item packed as words (`S < L`, the
//! challenge `k` and the key slot from `prepare.rs`'s checks), and the key tables for
//! `super::gpu::GpuEd25519::build_tables`: for the base point B and each registered key A,
//! the 16 multiples `j P` (`P` = B or -A), `j = 0..15`, as packed affine points (layout in
//! `shaders/ed25519/verify.wgsl`). The multiples come from curve25519-dalek, the reference's
//! own arithmetic; the small field arithmetic below only turns each into affine coordinates
//! with canonical limbs.

use super::gpu::{self, GPU_KEY_TABLES_MAX, PT_WORDS, TABLE_WORDS};
use super::keys::KeyRegistry;
use super::prepare::{canonical_s, challenge};
use super::SigItem;
use crate::gpu::GpuError;
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use rayon::prelude::*;

/// Host half of the GPU check for packed items (`ITEM_WORDS` words): R, A, s as given, then
/// [`gpu_key_words`].
pub(super) fn pack_gpu_item(
    registry: &KeyRegistry,
    table_keys: usize,
    item: &SigItem<'_>,
    words: &mut [u32],
) {
    let mut r = [0u8; 32];
    r.copy_from_slice(&item.signature[..32]);
    let mut s = [0u8; 32];
    s.copy_from_slice(&item.signature[32..]);
    bytes_to_words(&r, &mut words[0..8]);
    bytes_to_words(item.public_key, &mut words[8..16]);
    bytes_to_words(&s, &mut words[16..24]);
    gpu_key_words(registry, table_keys, item, &mut words[24..]);
}

/// Host half of the GPU check, the same for both input layouts: `S < L` and the challenge
/// `k`; the slot of a registered key (one of the first `table_keys`, which have GPU tables).
/// Writes `KEY_ITEM_WORDS` words: k, then the slot (`KEY_SKIP` with k = 0 when `S >= L`,
/// `KEY_DECOMPRESS` for a key without a table).
pub(super) fn gpu_key_words(
    registry: &KeyRegistry,
    table_keys: usize,
    item: &SigItem<'_>,
    words: &mut [u32],
) {
    assert_eq!(words.len(), gpu::KEY_ITEM_WORDS);
    let (k, slot) = match canonical_s(item) {
        None => ([0u8; 32], gpu::KEY_SKIP),
        Some(_) => {
            let slot = match registry.index(item.public_key) {
                Some(index) if (index as usize) < table_keys => index + 1,
                _ => gpu::KEY_DECOMPRESS,
            };
            (challenge(item).to_bytes(), slot)
        }
    };
    bytes_to_words(&k, &mut words[..8]);
    words[8] = slot;
}

/// Packs 32 little-endian bytes into 8 u32 words.
pub(super) fn bytes_to_words(bytes: &[u8; 32], words: &mut [u32]) {
    for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(4)) {
        *word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
}

/// The table words of every slot: the base point in slot 0, `-keys[i]` in slot `i + 1`, for
/// the first [`GPU_KEY_TABLES_MAX`] keys; and how many keys got tables.
///
/// Errors: `InvalidInput` when a key is not a point encoding (its ZIP-215 decompression
/// fails) or a multiple does not convert (a bug).
pub(super) fn table_words(keys: &[[u8; 32]]) -> Result<(Vec<u32>, usize), GpuError> {
    let key_count = keys.len().min(GPU_KEY_TABLES_MAX);
    let mut points = Vec::with_capacity(key_count + 1);
    points.push(ED25519_BASEPOINT_POINT);
    for (index, key) in keys[..key_count].iter().enumerate() {
        let point = CompressedEdwardsY(*key).decompress().ok_or_else(|| {
            GpuError::InvalidInput(format!(
                "registered key {index} ({}) is not a point encoding",
                hex_bytes(key)
            ))
        })?;
        points.push(-point);
    }
    let mut words = vec![0u32; points.len() * TABLE_WORDS];
    words
        .par_chunks_mut(TABLE_WORDS)
        .zip(points.par_iter())
        .try_for_each(|(table, point)| host_table(point, table))?;
    Ok((words, key_count))
}

/// Lower-case hex, for error messages.
pub(super) fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fills `table` (`TABLE_WORDS`) with the packed points `j P`, `j = 0..15`, each in affine
/// extended coordinates `(x, y, 1, xy)` with canonical limbs.
fn host_table(point: &EdwardsPoint, table: &mut [u32]) -> Result<(), GpuError> {
    let mut multiple = EdwardsPoint::default();
    for (j, entry) in table.chunks_exact_mut(PT_WORDS).enumerate() {
        if j > 0 {
            multiple += point;
        }
        let encoding = multiple.compress().to_bytes();
        let (x, y) = host_field::affine(&encoding).ok_or_else(|| {
            GpuError::InvalidInput(format!(
                "table entry {j} ({}) did not decompress on the host",
                hex_bytes(&encoding)
            ))
        })?;
        let coordinates = [x, y, host_field::ONE, host_field::mul(&x, &y)];
        for (words, value) in entry.chunks_exact_mut(8).zip(coordinates.iter()) {
            words.copy_from_slice(&host_field::to_words(value));
        }
    }
    Ok(())
}

/// Arithmetic mod p = 2^255 - 19 on 4 u64 limbs, canonical (< p) after every operation: just
/// enough for the host to turn a point encoding into affine coordinates for the GPU tables.
mod host_field {
    pub(super) type Fe = [u64; 4];
    const P: Fe = [
        0xffff_ffff_ffff_ffed,
        u64::MAX,
        u64::MAX,
        0x7fff_ffff_ffff_ffff,
    ];
    pub(super) const ONE: Fe = [1, 0, 0, 0];

    fn geq_p(a: &Fe) -> bool {
        for i in (0..4).rev() {
            if a[i] != P[i] {
                return a[i] > P[i];
            }
        }
        true
    }

    fn sub_p(a: &Fe) -> Fe {
        let mut out = [0u64; 4];
        let mut borrow = 0u64;
        for i in 0..4 {
            let (d1, b1) = a[i].overflowing_sub(P[i]);
            let (d2, b2) = d1.overflowing_sub(borrow);
            out[i] = d2;
            borrow = u64::from(b1 || b2);
        }
        out
    }

    /// Reduces `low + 2^256 high` (high small) to canonical form.
    fn fold(low: Fe, high: u128) -> Fe {
        let mut out = low;
        // 2^256 = 38 mod p.
        let mut carry = high * 38;
        while carry != 0 {
            for limb in out.iter_mut() {
                let v = u128::from(*limb) + carry;
                *limb = v as u64;
                carry = v >> 64;
            }
            carry *= 38;
        }
        while geq_p(&out) {
            out = sub_p(&out);
        }
        out
    }

    pub(super) fn add(a: &Fe, b: &Fe) -> Fe {
        let mut out = [0u64; 4];
        let mut carry = 0u128;
        for i in 0..4 {
            let v = u128::from(a[i]) + u128::from(b[i]) + carry;
            out[i] = v as u64;
            carry = v >> 64;
        }
        fold(out, carry)
    }

    pub(super) fn neg(a: &Fe) -> Fe {
        if *a == [0; 4] {
            return *a;
        }
        let mut out = [0u64; 4];
        let mut borrow = 0u64;
        for i in 0..4 {
            let (d1, b1) = P[i].overflowing_sub(a[i]);
            let (d2, b2) = d1.overflowing_sub(borrow);
            out[i] = d2;
            borrow = u64::from(b1 || b2);
        }
        out
    }

    pub(super) fn sub(a: &Fe, b: &Fe) -> Fe {
        add(a, &neg(b))
    }

    pub(super) fn mul(a: &Fe, b: &Fe) -> Fe {
        let mut t = [0u128; 8];
        for i in 0..4 {
            let mut carry = 0u128;
            for j in 0..4 {
                let v = t[i + j] + u128::from(a[i]) * u128::from(b[j]) + carry;
                t[i + j] = u128::from(v as u64);
                carry = v >> 64;
            }
            t[i + 4] = carry;
        }
        // low + 38 high, limb by limb, then fold the last carry.
        let mut out = [0u64; 4];
        let mut carry = 0u128;
        for i in 0..4 {
            let v = t[i] + t[i + 4] * 38 + carry;
            out[i] = v as u64;
            carry = v >> 64;
        }
        fold(out, carry)
    }

    fn pow(a: &Fe, exponent: &Fe) -> Fe {
        let mut result = ONE;
        for i in (0..256).rev() {
            result = mul(&result, &result);
            if (exponent[i / 64] >> (i % 64)) & 1 == 1 {
                result = mul(&result, a);
            }
        }
        result
    }

    fn from_u64(v: u64) -> Fe {
        [v, 0, 0, 0]
    }

    /// Edwards d = -121665/121666 and sqrt(-1) = 2^((p - 1) / 4).
    pub(super) static CONSTANTS: std::sync::LazyLock<(Fe, Fe)> = std::sync::LazyLock::new(|| {
        let p_minus_2 = sub(&[0; 4], &from_u64(2));
        let d = mul(
            &neg(&from_u64(121_665)),
            &pow(&from_u64(121_666), &p_minus_2),
        );
        let p14 = [
            0xffff_ffff_ffff_fffb,
            u64::MAX,
            u64::MAX,
            0x1fff_ffff_ffff_ffff,
        ];
        (d, pow(&from_u64(2), &p14))
    });

    /// The canonical value as 8 little-endian u32 words (the GPU's packed limbs).
    pub(super) fn to_words(a: &Fe) -> [u32; 8] {
        let mut w = [0u32; 8];
        for i in 0..4 {
            w[2 * i] = a[i] as u32;
            w[2 * i + 1] = (a[i] >> 32) as u32;
        }
        w
    }

    /// Affine (x, y) of a canonical point encoding (y < p, as curve25519-dalek's `compress`
    /// writes it); `None` when it is not a point or not canonical. x is the root whose parity
    /// is the sign bit (x = 0 only with the sign bit clear).
    pub(super) fn affine(encoding: &[u8; 32]) -> Option<(Fe, Fe)> {
        let mut y = [0u64; 4];
        for (i, limb) in y.iter_mut().enumerate() {
            *limb = u64::from_le_bytes(encoding[8 * i..8 * i + 8].try_into().ok()?);
        }
        let sign = y[3] >> 63;
        y[3] &= 0x7fff_ffff_ffff_ffff;
        if geq_p(&y) {
            return None;
        }
        let (d, sqrt_m1) = *CONSTANTS;
        let yy = mul(&y, &y);
        let u = sub(&yy, &ONE);
        let v = add(&mul(&d, &yy), &ONE);
        // x^2 = u / v; x = u v^3 (u v^7)^((p - 5) / 8), times sqrt(-1) when that squares to -u/v.
        let v3 = mul(&mul(&v, &v), &v);
        let v7 = mul(&mul(&v3, &v3), &v);
        let p58 = [
            0xffff_ffff_ffff_fffd,
            u64::MAX,
            u64::MAX,
            0x0fff_ffff_ffff_ffff,
        ];
        let mut x = mul(&mul(&u, &v3), &pow(&mul(&u, &v7), &p58));
        let check = mul(&v, &mul(&x, &x));
        if check == neg(&u) {
            x = mul(&x, &sqrt_m1);
        } else if check != u {
            return None;
        }
        if mul(&v, &mul(&x, &x)) != u {
            return None;
        }
        if x[0] & 1 != sign {
            if x == [0; 4] {
                return None;
            }
            x = neg(&x);
        }
        Some((x, y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::scalar::Scalar;

    #[test]
    fn host_constants_match_the_shader_constants() {
        let (d, sqrt_m1) = *host_field::CONSTANTS;
        // FE_D and FE_SQRT_M1 of field.wgsl, as 16-bit limbs packed two per word.
        assert_eq!(
            host_field::to_words(&d),
            [
                0x1359_78a3,
                0x75eb_4dca,
                0x4141_d8ab,
                0x0070_0a4d,
                0x7779_e898,
                0x8cc7_4079,
                0x2b6f_fe73,
                0x5203_6cee
            ]
        );
        assert_eq!(
            host_field::to_words(&sqrt_m1),
            [
                0x4a0e_a0b0,
                0xc4ee_1b27,
                0xad2f_e478,
                0x2f43_1806,
                0x3dfb_d7a7,
                0x2b4d_0099,
                0x4fc1_df0b,
                0x2b83_2480
            ]
        );
    }

    /// The host's affine coordinates re-encode to dalek's encoding and lie on the curve.
    #[test]
    fn host_affine_coordinates_match_dalek() {
        let (d, _) = *host_field::CONSTANTS;
        let mut points: Vec<EdwardsPoint> = curve25519_dalek::constants::EIGHT_TORSION.to_vec();
        for i in 1..40u64 {
            points.push(
                ED25519_BASEPOINT_POINT * Scalar::from(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            );
            points.push(-points[points.len() - 1]);
        }
        for point in &points {
            let encoding = point.compress().to_bytes();
            let (x, y) = host_field::affine(&encoding).expect("a dalek encoding decompresses");
            let mut words = [0u32; 8];
            bytes_to_words(&encoding, &mut words);
            let sign = words[7] >> 31;
            words[7] &= 0x7fff_ffff;
            assert_eq!(
                host_field::to_words(&y),
                words,
                "y of {}",
                hex_bytes(&encoding)
            );
            assert_eq!(
                x[0] as u32 & 1,
                sign,
                "sign of x of {}",
                hex_bytes(&encoding)
            );
            let xx = host_field::mul(&x, &x);
            let yy = host_field::mul(&y, &y);
            let left = host_field::sub(&yy, &xx);
            let right = host_field::add(
                &host_field::ONE,
                &host_field::mul(&d, &host_field::mul(&xx, &yy)),
            );
            assert_eq!(left, right, "curve equation for {}", hex_bytes(&encoding));
        }
        // Not points, or not canonical: refused.
        let mut not_canonical = [0xffu8; 32];
        not_canonical[0] = 0xee;
        not_canonical[31] = 0x7f;
        assert_eq!(host_field::affine(&not_canonical), None);
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        assert!(CompressedEdwardsY(not_a_point).decompress().is_none());
        assert_eq!(host_field::affine(&not_a_point), None);
    }

    #[test]
    fn host_table_entries_are_the_multiples() {
        let point = ED25519_BASEPOINT_POINT * Scalar::from(12345u64);
        let mut table = vec![0u32; TABLE_WORDS];
        host_table(&point, &mut table).unwrap();
        for j in 0..16u64 {
            let expected = (point * Scalar::from(j)).compress().to_bytes();
            let entry = &table[j as usize * PT_WORDS..(j as usize + 1) * PT_WORDS];
            let mut y = [0u32; 8];
            bytes_to_words(&expected, &mut y);
            y[7] &= 0x7fff_ffff;
            assert_eq!(&entry[8..16], &y, "y of entry {j}");
            assert_eq!(&entry[16..24], &[1, 0, 0, 0, 0, 0, 0, 0], "z of entry {j}");
        }
    }
}
