// Entry point `key_tables`: decompresses one key per thread (ZIP-215 rules) and writes the
// table j(-A), j = 0..15, into its slot. Needs field.wgsl and curve.wgsl.
//
// The host passes the base point as the encoding of -B in slot 0, so slot 0 holds jB.
// `valid[slot]` is 1 when the key decompressed; the host asserts it matches its own
// decompression (a disagreement is a bug in one of them, never tolerated).

const KEY_TABLE_ENTRY_WORDS: u32 = 64u;
const KEY_TABLE_SLOT_WORDS: u32 = 1024u;

struct KeyParams {
    key_count: u32,
    pad: u32,
}

@group(0) @binding(0) var<storage, read> keys: array<u32>;
@group(0) @binding(1) var<storage, read_write> tables: array<u32>;
@group(0) @binding(2) var<storage, read_write> valid: array<u32>;
@group(0) @binding(3) var<uniform> key_params: KeyParams;

fn store_fe(base: u32, a: Fe) {
    for (var i = 0u; i < 16u; i++) {
        tables[base + i] = a[i];
    }
}

@compute @workgroup_size(64)
fn key_tables(@builtin(global_invocation_id) id: vec3<u32>) {
    let slot = id.x;
    if (slot >= key_params.key_count || slot >= arrayLength(&valid)
        || (slot + 1u) * 8u > arrayLength(&keys)
        || (slot + 1u) * KEY_TABLE_SLOT_WORDS > arrayLength(&tables)) {
        return;
    }
    var w: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        w[i] = keys[slot * 8u + i];
    }
    let a = pt_decompress(w);
    valid[slot] = select(0u, 1u, a.valid);
    let minus_a = pt_neg(a.point);
    var entry = pt_identity();
    for (var j = 0u; j < 16u; j++) {
        let base = slot * KEY_TABLE_SLOT_WORDS + j * KEY_TABLE_ENTRY_WORDS;
        store_fe(base, entry.x);
        store_fe(base + 16u, entry.y);
        store_fe(base + 32u, entry.z);
        store_fe(base + 48u, entry.t);
        entry = pt_add(entry, minus_a);
    }
}
