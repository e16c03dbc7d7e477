// Field arithmetic mod p = 2^255 - 19 in 32-bit-safe limbs (library: no entry point).
//
// Representation: `Fe` = array<u32, 16>, little-endian 16-bit limbs, value = sum limb[i] 2^(16 i).
// Invariant kept by every function here ("loose form"): each limb < 2^16, so the value is
// < 2^256 = 2p + 38. Values are NOT canonical (< p) in general; `fe_reduce` makes them so,
// and every comparison, parity or encoding goes through it.
//
// Why 16-bit limbs: a limb product is < 2^32 and fits a u32 exactly without SHADER_INT64;
// products are split into 16-bit halves and accumulated per column, 16 lo + 16 hi halves
// per column stay < 2^21, so no column overflows (see fe_mul).

alias Fe = array<u32, 16>;

const FE_MASK: u32 = 0xffffu;

// p in limbs.
const FE_P = Fe(0xffedu, 0xffffu, 0xffffu, 0xffffu, 0xffffu, 0xffffu, 0xffffu, 0xffffu,
                0xffffu, 0xffffu, 0xffffu, 0xffffu, 0xffffu, 0xffffu, 0xffffu, 0x7fffu);
// 4p = 2^257 - 76 spread over 16 limbs so that every limb is >= 2^17 - 76 > any loose limb:
// limb 0 = 2^17 - 76, limbs 1..15 = 2^17 - 2 (sum checked in the comment of fe_sub).
const FE_4P = Fe(0x1ffb4u, 0x1fffeu, 0x1fffeu, 0x1fffeu, 0x1fffeu, 0x1fffeu, 0x1fffeu, 0x1fffeu,
                 0x1fffeu, 0x1fffeu, 0x1fffeu, 0x1fffeu, 0x1fffeu, 0x1fffeu, 0x1fffeu, 0x1fffeu);
// Edwards d = -121665/121666, 2d, and sqrt(-1) = 2^((p-1)/4) (curve25519-dalek's SQRT_M1).
const FE_D = Fe(0x78a3u, 0x1359u, 0x4dcau, 0x75ebu, 0xd8abu, 0x4141u, 0x0a4du, 0x0070u,
                0xe898u, 0x7779u, 0x4079u, 0x8cc7u, 0xfe73u, 0x2b6fu, 0x6ceeu, 0x5203u);
const FE_D2 = Fe(0xf159u, 0x26b2u, 0x9b94u, 0xebd6u, 0xb156u, 0x8283u, 0x149au, 0x00e0u,
                 0xd130u, 0xeef3u, 0x80f2u, 0x198eu, 0xfce7u, 0x56dfu, 0xd9dcu, 0x2406u);
const FE_SQRT_M1 = Fe(0xa0b0u, 0x4a0eu, 0x1b27u, 0xc4eeu, 0xe478u, 0xad2fu, 0x1806u, 0x2f43u,
                      0xd7a7u, 0x3dfbu, 0x0099u, 0x2b4du, 0xdf0bu, 0x4fc1u, 0x2480u, 0x2b83u);

fn fe_zero() -> Fe {
    return Fe();
}

fn fe_one() -> Fe {
    var r = Fe();
    r[0] = 1u;
    return r;
}

// Carries limbs below 2^22 into loose form. A carry out of limb 15 is worth
// 2^256 = 38 (mod p) and is folded into limb 0. Two rounds suffice: after round one the carry
// is < 2^7, so limb 0 is < 2^16 + 2^13; if round two carries all the way through, every limb
// became 0 and limb 0 was < 2^13, so adding 38 cannot overflow it.
fn fe_carry(t_in: Fe) -> Fe {
    var t = t_in;
    var c = 0u;
    for (var i = 0u; i < 16u; i++) {
        let v = t[i] + c;
        t[i] = v & FE_MASK;
        c = v >> 16u;
    }
    t[0] += c * 38u;
    c = 0u;
    for (var i = 0u; i < 16u; i++) {
        let v = t[i] + c;
        t[i] = v & FE_MASK;
        c = v >> 16u;
    }
    t[0] += c * 38u;
    return t;
}

fn fe_add(a: Fe, b: Fe) -> Fe {
    var t: Fe;
    for (var i = 0u; i < 16u; i++) {
        t[i] = a[i] + b[i];
    }
    return fe_carry(t);
}

// a - b + 4p: every limb of 4p (as spread in FE_4P) exceeds any loose limb of b, so no limb
// goes negative. Sum of FE_4P: (2^17 - 76) + sum_{i=1..15} (2^17 - 2) 2^(16 i) = 2^257 - 76.
fn fe_sub(a: Fe, b: Fe) -> Fe {
    var t: Fe;
    for (var i = 0u; i < 16u; i++) {
        t[i] = a[i] + FE_4P[i] - b[i];
    }
    return fe_carry(t);
}

fn fe_neg(a: Fe) -> Fe {
    return fe_sub(fe_zero(), a);
}

// Schoolbook product: limb products < 2^32 are split into 16-bit halves; each of the 32
// columns gets at most 16 low and 16 high halves, < 2^21. After carrying, the high 16 limbs
// are folded as 2^256 = 38: limb < 2^16 + 38 * 2^16 < 2^22, within fe_carry's input bound.
fn fe_mul(a: Fe, b: Fe) -> Fe {
    var col: array<u32, 32>;
    for (var i = 0u; i < 16u; i++) {
        let ai = a[i];
        for (var j = 0u; j < 16u; j++) {
            let p = ai * b[j];
            col[i + j] += p & FE_MASK;
            col[i + j + 1u] += p >> 16u;
        }
    }
    var c = 0u;
    for (var i = 0u; i < 32u; i++) {
        let v = col[i] + c;
        col[i] = v & FE_MASK;
        c = v >> 16u;
    }
    // c == 0 here: the product of two values < 2^256 is < 2^512.
    var r: Fe;
    for (var i = 0u; i < 16u; i++) {
        r[i] = col[i] + 38u * col[i + 16u];
    }
    return fe_carry(r);
}

fn fe_sq(a: Fe) -> Fe {
    return fe_mul(a, a);
}

// Subtracts p when a >= p (a loose).
fn fe_sub_p_if_ge(a: Fe) -> Fe {
    var t: Fe;
    var borrow = 0u;
    for (var i = 0u; i < 16u; i++) {
        let v = (a[i] + 0x10000u) - FE_P[i] - borrow;
        t[i] = v & FE_MASK;
        borrow = 1u - (v >> 16u);
    }
    if (borrow == 0u) {
        return t;
    }
    return a;
}

// Canonical form (< p). A loose value is < 2p + 38 < 3p, so two conditional subtractions.
fn fe_reduce(a: Fe) -> Fe {
    return fe_sub_p_if_ge(fe_sub_p_if_ge(a));
}

fn fe_eq(a: Fe, b: Fe) -> bool {
    let x = fe_reduce(a);
    let y = fe_reduce(b);
    var same = true;
    for (var i = 0u; i < 16u; i++) {
        same = same && (x[i] == y[i]);
    }
    return same;
}

fn fe_is_zero(a: Fe) -> bool {
    return fe_eq(a, fe_zero());
}

// The low bit of the canonical encoding ("negative" in RFC 8032 terms).
fn fe_is_negative(a: Fe) -> bool {
    return (fe_reduce(a)[0] & 1u) == 1u;
}

// Addition chains as data, so that the whole chain has ONE fe_mul call site: shader
// compilers inline every call, and a chain written out (265 multiplications in ~25 call
// sites, twice per kernel) made llvmpipe's compile take minutes. Registers: r[0] = z,
// r[1..3] = t0..t2. A step
// (dst, src, squarings, mul) computes r[dst] = r[src]^(2^squarings) * r[mul] (no multiply
// when mul == 7). The result is r[1].
// ref10 fe_pow22523: z^((p-5)/8) = z^(2^252 - 3).
var<private> CHAIN_POW22523: array<vec4<u32>, 12> = array<vec4<u32>, 12>(
    vec4<u32>(1u, 0u, 1u, 7u), vec4<u32>(2u, 1u, 2u, 0u), vec4<u32>(1u, 1u, 0u, 2u),
    vec4<u32>(1u, 1u, 1u, 2u), vec4<u32>(1u, 1u, 5u, 1u), vec4<u32>(2u, 1u, 10u, 1u),
    vec4<u32>(2u, 2u, 20u, 2u), vec4<u32>(1u, 2u, 10u, 1u), vec4<u32>(2u, 1u, 50u, 1u),
    vec4<u32>(2u, 2u, 100u, 2u), vec4<u32>(1u, 2u, 50u, 1u), vec4<u32>(1u, 1u, 2u, 0u));
// ref10 fe_invert: z^(p-2); its t3 always overwrites a dead t2, so it shares r[3].
var<private> CHAIN_INVERT: array<vec4<u32>, 12> = array<vec4<u32>, 12>(
    vec4<u32>(1u, 0u, 1u, 7u), vec4<u32>(2u, 1u, 2u, 0u), vec4<u32>(1u, 1u, 0u, 2u),
    vec4<u32>(2u, 1u, 1u, 2u), vec4<u32>(2u, 2u, 5u, 2u), vec4<u32>(3u, 2u, 10u, 2u),
    vec4<u32>(3u, 3u, 20u, 3u), vec4<u32>(2u, 3u, 10u, 2u), vec4<u32>(3u, 2u, 50u, 2u),
    vec4<u32>(3u, 3u, 100u, 3u), vec4<u32>(2u, 3u, 50u, 2u), vec4<u32>(1u, 2u, 5u, 1u));

fn fe_chain(z: Fe, invert: bool) -> Fe {
    var r: array<Fe, 4>;
    r[0] = z;
    for (var step_index = 0u; step_index < 12u; step_index++) {
        var step = CHAIN_POW22523[step_index];
        if (invert) {
            step = CHAIN_INVERT[step_index];
        }
        var t = r[step.y];
        let total = step.z + select(1u, 0u, step.w == 7u);
        for (var i = 0u; i < total; i++) {
            var y = t;
            if (i == step.z) {
                y = r[step.w];
            }
            t = fe_mul(t, y);
        }
        r[step.x] = t;
    }
    return r[1];
}

// a^((p-5)/8) = a^(2^252 - 3).
fn fe_pow22523(z: Fe) -> Fe {
    return fe_chain(z, false);
}

// a^(p-2) = 1/a (0 for a = 0).
fn fe_invert(z: Fe) -> Fe {
    return fe_chain(z, true);
}

// 32 little-endian bytes as 8 u32 words -> loose Fe, bit 255 cleared (the y of a point
// encoding; not reduced: y >= p is kept as is, as ZIP-215 and curve25519-dalek do).
fn fe_from_words(w: array<u32, 8>) -> Fe {
    var r: Fe;
    for (var i = 0u; i < 8u; i++) {
        r[2u * i] = w[i] & FE_MASK;
        r[2u * i + 1u] = w[i] >> 16u;
    }
    r[15] &= 0x7fffu;
    return r;
}

// Canonical encoding as 8 u32 words.
fn fe_to_words(a: Fe) -> array<u32, 8> {
    let r = fe_reduce(a);
    var w: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        w[i] = r[2u * i] | (r[2u * i + 1u] << 16u);
    }
    return w;
}
