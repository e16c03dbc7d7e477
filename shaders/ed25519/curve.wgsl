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

// add-2008-hwcd-3 as a program over a register file, so that one pt_add holds ONE inlined
// fe_mul, fe_add and fe_sub (shader compilers inline every call; written out, the 9
// multiplications made llvmpipe's compile take minutes). Registers: 0-3 = X1 Y1 Z1 T1
// (and the result), 4-7 = X2 Y2 Z2 T2, 8-14 temporaries, 15 = 2d. Step = (op, dst, a, b),
// op 0 = mul, 1 = add, 2 = sub.
var<private> PT_ADD_PROGRAM: array<vec4<u32>, 18> = array<vec4<u32>, 18>(
    vec4<u32>(2u, 8u, 1u, 0u),    // r8  = Y1 - X1
    vec4<u32>(2u, 9u, 5u, 4u),    // r9  = Y2 - X2
    vec4<u32>(0u, 8u, 8u, 9u),    // A   = r8 * r9
    vec4<u32>(1u, 9u, 1u, 0u),    // r9  = Y1 + X1
    vec4<u32>(1u, 10u, 5u, 4u),   // r10 = Y2 + X2
    vec4<u32>(0u, 9u, 9u, 10u),   // B   = r9 * r10
    vec4<u32>(0u, 10u, 3u, 15u),  // r10 = T1 * 2d
    vec4<u32>(0u, 10u, 10u, 7u),  // C   = r10 * T2
    vec4<u32>(0u, 11u, 2u, 6u),   // r11 = Z1 * Z2
    vec4<u32>(1u, 11u, 11u, 11u), // D   = 2 r11
    vec4<u32>(2u, 12u, 9u, 8u),   // E   = B - A
    vec4<u32>(2u, 13u, 11u, 10u), // F   = D - C
    vec4<u32>(1u, 14u, 11u, 10u), // G   = D + C
    vec4<u32>(1u, 9u, 9u, 8u),    // H   = B + A
    vec4<u32>(0u, 0u, 12u, 13u),  // X3  = E F
    vec4<u32>(0u, 1u, 14u, 9u),   // Y3  = G H
    vec4<u32>(0u, 2u, 13u, 14u),  // Z3  = F G
    vec4<u32>(0u, 3u, 12u, 9u));  // T3  = E H

fn pt_add(p: Pt, q: Pt) -> Pt {
    var r: array<Fe, 16>;
    r[0] = p.x;
    r[1] = p.y;
    r[2] = p.z;
    r[3] = p.t;
    r[4] = q.x;
    r[5] = q.y;
    r[6] = q.z;
    r[7] = q.t;
    r[15] = FE_D2;
    for (var i = 0u; i < 18u; i++) {
        let step = PT_ADD_PROGRAM[i];
        let a = r[step.z];
        let b = r[step.w];
        var v: Fe;
        if (step.x == 0u) {
            v = fe_mul(a, b);
        } else if (step.x == 1u) {
            v = fe_add(a, b);
        } else {
            v = fe_sub(a, b);
        }
        r[step.y] = v;
    }
    return Pt(r[0], r[1], r[2], r[3]);
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
