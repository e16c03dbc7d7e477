// Test kernel `field_ops` (tests only): for each case (a, b), 8 words each, writes the
// canonical results of mul, sq(a), add, sub, neg(a), invert(a), pow22523(a), reduce(a):
// 8 results of 8 words. Needs field.wgsl.

@group(0) @binding(0) var<storage, read> cases: array<u32>;
@group(0) @binding(1) var<storage, read_write> results: array<u32>;

fn case_fe(base: u32) -> Fe {
    var r: Fe;
    for (var i = 0u; i < 8u; i++) {
        let w = cases[base + i];
        r[2u * i] = w & FE_MASK;
        r[2u * i + 1u] = w >> 16u;
    }
    return r;
}

fn put(base: u32, a: Fe) {
    let w = fe_to_words(a);
    for (var i = 0u; i < 8u; i++) {
        results[base + i] = w[i];
    }
}

@compute @workgroup_size(64)
fn field_ops(@builtin(global_invocation_id) id: vec3<u32>) {
    let c = id.x;
    if ((c + 1u) * 16u > arrayLength(&cases) || (c + 1u) * 64u > arrayLength(&results)) {
        return;
    }
    let a = case_fe(c * 16u);
    let b = case_fe(c * 16u + 8u);
    let out = c * 64u;
    put(out, fe_mul(a, b));
    put(out + 8u, fe_sq(a));
    put(out + 16u, fe_add(a, b));
    put(out + 24u, fe_sub(a, b));
    put(out + 32u, fe_neg(a));
    put(out + 40u, fe_invert(a));
    put(out + 48u, fe_pow22523(a));
    put(out + 56u, a);
}
