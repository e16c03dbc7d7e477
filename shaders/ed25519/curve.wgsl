// Edwards25519 points (library: no entry point; needs field.wgsl).
//
// Extended coordinates (X : Y : Z : T) with x = X/Z, y = Y/Z, xy = T/Z, on
// -x^2 + y^2 = 1 + d x^2 y^2. The addition law is add-2008-hwcd-3 (complete on this curve:
// valid for doubling, the identity and points of small order), so doubling is pt_add(p, p):
// one point formula means one inlined copy per kernel (compilers inline every call).
// Decompression mirrors curve25519-dalek's CompressedEdwardsY::decompress, which is what
// ed25519-zebra (the reference) calls.

struct Pt {
    x: Fe,
    y: Fe,
    z: Fe,
    t: Fe,
}

fn pt_identity() -> Pt {
    return Pt(fe_zero(), fe_one(), fe_one(), fe_zero());
}

// add-2008-hwcd-3 (a = -1, k = 2d): 9 multiplications, complete on this curve. Written as a
// loop around ONE fe_mul: shader compilers inline every call, and nine inlined (unrolled)
// multiplications per point addition are what made llvmpipe's compile take minutes. Each
// step stores its product and sets the operands of the next one.
fn pt_add(p: Pt, q: Pt) -> Pt {
    var a = fe_sub(p.y, p.x);
    var b = fe_sub(q.y, q.x);
    var pa: Fe;
    var pb: Fe;
    var pc: Fe;
    var e: Fe;
    var f: Fe;
    var g: Fe;
    var h: Fe;
    var out = p;
    for (var step = 0u; step < 9u; step++) {
        let prod = fe_mul(a, b);
        if (step == 0u) {
            pa = prod; // A = (Y1 - X1)(Y2 - X2)
            a = fe_add(p.y, p.x);
            b = fe_add(q.y, q.x);
        } else if (step == 1u) {
            pb = prod; // B = (Y1 + X1)(Y2 + X2)
            a = p.t;
            b = FE_D2;
        } else if (step == 2u) {
            a = prod; // T1 2d
            b = q.t;
        } else if (step == 3u) {
            pc = prod; // C = T1 2d T2
            a = p.z;
            b = q.z;
        } else if (step == 4u) {
            let d = fe_add(prod, prod); // D = 2 Z1 Z2
            e = fe_sub(pb, pa);
            f = fe_sub(d, pc);
            g = fe_add(d, pc);
            h = fe_add(pb, pa);
            a = e;
            b = f;
        } else if (step == 5u) {
            out.x = prod; // X3 = E F
            a = g;
            b = h;
        } else if (step == 6u) {
            out.y = prod; // Y3 = G H
            a = f;
            b = g;
        } else if (step == 7u) {
            out.z = prod; // Z3 = F G
            a = e;
            b = h;
        } else {
            out.t = prod; // T3 = E H
        }
    }
    return out;
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
//
// Every multiplication runs through ONE fe_mul in a loop (see pt_add for why): 7 steps
// before the power, DECOMPRESS_POW_STEPS for (u v^7)^((p - 5) / 8) by plain square and
// multiply (the exponent 2^252 - 3 has bits 251..2 and 0 set; a step on a clear bit
// multiplies by 1), then 7 steps after it.
const DECOMPRESS_PRE_STEPS: u32 = 7u;
const DECOMPRESS_POW_STEPS: u32 = 502u;
const DECOMPRESS_STEPS: u32 = 517u;

fn pt_decompress(w: array<u32, 8>) -> Decompressed {
    let y = fe_from_words(w);
    var a = y;
    var b = y;
    var u: Fe;
    var v: Fe;
    var v3: Fe;
    var z: Fe;
    var t: Fe;
    var r: Fe;
    var check: Fe;
    var minus_u_i: Fe;
    var r_i: Fe;
    var xy: Fe;
    var xy_i: Fe;
    let pow_end = DECOMPRESS_PRE_STEPS + DECOMPRESS_POW_STEPS;
    for (var step = 0u; step < DECOMPRESS_STEPS; step++) {
        let prod = fe_mul(a, b);
        if (step < DECOMPRESS_PRE_STEPS) {
            if (step == 0u) {
                u = fe_sub(prod, fe_one()); // y^2 - 1
                a = prod;
                b = FE_D;
            } else if (step == 1u) {
                v = fe_add(prod, fe_one()); // d y^2 + 1
                a = v;
                b = v;
            } else if (step == 2u) {
                a = prod; // v^2
                b = v;
            } else if (step == 3u) {
                v3 = prod;
                a = prod;
                b = prod;
            } else if (step == 4u) {
                a = prod; // v^6
                b = v;
            } else if (step == 5u) {
                a = u; // v^7
                b = prod;
            } else {
                z = prod; // u v^7, the base of the power
                t = prod;
                a = prod;
                b = prod;
            }
        } else if (step < pow_end) {
            // Half-step h: even h squares t, odd h multiplies by z when bit 250 - h/2 is set.
            t = prod;
            let next = step + 1u - DECOMPRESS_PRE_STEPS;
            a = t;
            b = t;
            if (next == DECOMPRESS_POW_STEPS) {
                a = u;
                b = v3;
            } else if ((next & 1u) == 1u) {
                b = z;
                if (250u - next / 2u == 1u) {
                    b = fe_one();
                }
            }
        } else {
            let q = step - pow_end;
            if (q == 0u) {
                a = prod; // u v^3
                b = t;
            } else if (q == 1u) {
                r = prod; // r = u v^3 (u v^7)^((p - 5) / 8)
                a = r;
                b = r;
            } else if (q == 2u) {
                a = v;
                b = prod;
            } else if (q == 3u) {
                check = prod; // v r^2
                a = fe_neg(u);
                b = FE_SQRT_M1;
            } else if (q == 4u) {
                minus_u_i = prod;
                a = r;
                b = FE_SQRT_M1;
            } else if (q == 5u) {
                r_i = prod; // r sqrt(-1)
                a = r;
                b = y;
            } else if (q == 6u) {
                xy = prod; // r y
                a = r_i;
                b = y;
            } else {
                xy_i = prod; // r sqrt(-1) y
            }
        }
    }
    // After the loop, once: pick the root, then its sign (negating x negates T = xy too).
    let correct_sign = fe_eq(check, u);
    let flipped_sign = fe_eq(check, fe_neg(u));
    let flipped_sign_i = fe_eq(check, minus_u_i);
    if (flipped_sign || flipped_sign_i) {
        r = r_i;
        xy = xy_i;
    }
    if (fe_is_negative(r) != ((w[7] >> 31u) == 1u)) {
        r = fe_neg(r);
        xy = fe_neg(xy);
    }
    return Decompressed(Pt(r, y, fe_one(), xy), correct_sign || flipped_sign);
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
