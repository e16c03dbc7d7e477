// Edwards25519 points (library: no entry point; needs field.wgsl).
//
// Extended coordinates (X : Y : Z : T) with x = X/Z, y = Y/Z, xy = T/Z, on
// -x^2 + y^2 = 1 + d x^2 y^2. The addition law is add-2008-hwcd-3 (complete on this curve:
// valid for doubling, the identity and points of small order), so doubling is pt_add(p, p):
// one point formula means one inlined copy per kernel (compilers inline every call). Decompression mirrors curve25519-dalek's CompressedEdwardsY::decompress,
// which is what ed25519-zebra (the reference) calls.

struct Pt {
    x: Fe,
    y: Fe,
    z: Fe,
    t: Fe,
}

fn pt_identity() -> Pt {
    return Pt(fe_zero(), fe_one(), fe_one(), fe_zero());
}

fn pt_add(p: Pt, q: Pt) -> Pt {
    let a = fe_mul(fe_sub(p.y, p.x), fe_sub(q.y, q.x));
    let b = fe_mul(fe_add(p.y, p.x), fe_add(q.y, q.x));
    let c = fe_mul(fe_mul(p.t, FE_D2), q.t);
    let zz = fe_mul(p.z, q.z);
    let d = fe_add(zz, zz);
    let e = fe_sub(b, a);
    let f = fe_sub(d, c);
    let g = fe_add(d, c);
    let h = fe_add(b, a);
    return Pt(fe_mul(e, f), fe_mul(g, h), fe_mul(f, g), fe_mul(e, h));
}

fn pt_neg(p: Pt) -> Pt {
    return Pt(fe_neg(p.x), p.y, p.z, fe_neg(p.t));
}

// Projective identity test: X = 0 and Y = Z (Z is never 0 for points from these formulas).
fn pt_is_identity(p: Pt) -> bool {
    return fe_is_zero(p.x) && fe_eq(p.y, p.z);
}

struct Decompressed {
    point: Pt,
    valid: bool,
}

// ZIP-215 decompression, step for step as curve25519-dalek: y is the low 255 bits, NOT
// required to be < p; u = y^2 - 1, v = d y^2 + 1; sqrt_ratio_i(u, v) gives the nonnegative
// root x and whether u/v was square; x is negated when the sign bit is set, also when x = 0
// ("negative zero" is accepted, as dalek does).
fn pt_decompress(w: array<u32, 8>) -> Decompressed {
    let y = fe_from_words(w);
    let yy = fe_sq(y);
    let u = fe_sub(yy, fe_one());
    let v = fe_add(fe_mul(yy, FE_D), fe_one());
    // sqrt_ratio_i
    let v3 = fe_mul(fe_sq(v), v);
    let v7 = fe_mul(fe_sq(v3), v);
    var r = fe_mul(fe_mul(u, v3), fe_pow22523(fe_mul(u, v7)));
    let check = fe_mul(v, fe_sq(r));
    let minus_u = fe_neg(u);
    let correct_sign = fe_eq(check, u);
    let flipped_sign = fe_eq(check, minus_u);
    let flipped_sign_i = fe_eq(check, fe_mul(minus_u, FE_SQRT_M1));
    if (flipped_sign || flipped_sign_i) {
        r = fe_mul(r, FE_SQRT_M1);
    }
    if (fe_is_negative(r)) {
        r = fe_neg(r);
    }
    if ((w[7] >> 31u) == 1u) {
        r = fe_neg(r);
    }
    let point = Pt(r, y, fe_one(), fe_mul(r, y));
    return Decompressed(point, correct_sign || flipped_sign);
}

// Encoding (y with the parity of x in bit 255) as 8 words; one inversion.
fn pt_compress(p: Pt) -> array<u32, 8> {
    let zinv = fe_invert(p.z);
    let x = fe_mul(p.x, zinv);
    var w = fe_to_words(fe_mul(p.y, zinv));
    if (fe_is_negative(x)) {
        w[7] |= 0x80000000u;
    }
    return w;
}
