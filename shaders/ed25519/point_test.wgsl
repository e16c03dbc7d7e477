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

@compute @workgroup_size(64)
fn point_ops(@builtin(global_invocation_id) id: vec3<u32>) {
    let c = id.x;
    if ((c + 1u) * 16u > arrayLength(&cases) || (c + 1u) * 42u > arrayLength(&results)) {
        return;
    }
    var points: array<Pt, 2>;
    let out = c * 42u;
    for (var i = 0u; i < 2u; i++) {
        let d = pt_decompress(case_words(c * 16u + 8u * i));
        points[i] = d.point;
        results[out + i] = select(0u, 1u, d.valid);
    }
    let p = points[0];
    let q = points[1];
    // Every addition through one call site, as the verify kernel does:
    // sums = [P + Q, 2P, 8P, P - Q].
    var sums: array<Pt, 4>;
    var acc = p;
    for (var op = 0u; op < 5u; op++) {
        var x = p;
        var y = q;
        if (op == 1u) {
            y = p;
        } else if (op == 2u || op == 3u) {
            x = acc;
            y = acc;
        } else if (op == 4u) {
            y = pt_neg(q);
        }
        let sum = pt_add(x, y);
        acc = sum;
        if (op == 0u) {
            sums[0] = sum;
        } else if (op == 1u) {
            sums[1] = sum;
        } else if (op == 3u) {
            sums[2] = sum;
        } else if (op == 4u) {
            sums[3] = sum;
        }
    }
    // One compression call site too.
    for (var i = 0u; i < 5u; i++) {
        var point = p;
        if (i > 0u) {
            point = sums[i - 1u];
        }
        let w = pt_compress(point);
        for (var j = 0u; j < 8u; j++) {
            results[out + 2u + 8u * i + j] = w[j];
        }
    }
}
