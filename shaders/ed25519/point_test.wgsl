// Test kernel `point_ops` (tests only): for each case (P, Q) as two 8-word encodings,
// writes valid(P), valid(Q), then the encodings of P, P + Q, 2P, 8P, P - Q: 2 + 5 * 8 words.
// Needs field.wgsl and curve.wgsl.

@group(0) @binding(0) var<storage, read> cases: array<u32>;
@group(0) @binding(1) var<storage, read_write> results: array<u32>;

fn case_words(base: u32) -> array<u32, 8> {
    var w: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        w[i] = cases[base + i];
    }
    return w;
}

fn put_point(base: u32, p: Pt) {
    let w = pt_compress(p);
    for (var i = 0u; i < 8u; i++) {
        results[base + i] = w[i];
    }
}

@compute @workgroup_size(64)
fn point_ops(@builtin(global_invocation_id) id: vec3<u32>) {
    let c = id.x;
    if ((c + 1u) * 16u > arrayLength(&cases) || (c + 1u) * 42u > arrayLength(&results)) {
        return;
    }
    let p = pt_decompress(case_words(c * 16u));
    let q = pt_decompress(case_words(c * 16u + 8u));
    let out = c * 42u;
    results[out] = select(0u, 1u, p.valid);
    results[out + 1u] = select(0u, 1u, q.valid);
    put_point(out + 2u, p.point);
    put_point(out + 10u, pt_add(p.point, q.point));
    put_point(out + 18u, pt_dbl(p.point));
    put_point(out + 26u, pt_dbl(pt_dbl(pt_dbl(p.point))));
    put_point(out + 34u, pt_add(p.point, pt_neg(q.point)));
}
