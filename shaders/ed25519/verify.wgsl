// Entry point `verify`: one thread per signature, the cofactored ZIP-215 check
// [8](R - (sB + k(-A))) == identity, exactly ed25519-zebra's single-verifier equation.
// Needs field.wgsl and curve.wgsl (prepended by the host).
//
// Host-side work (CPU, rayon): S < L is checked there (items with S >= L never get here,
// they are marked KEY_SKIP), k = SHA-512(R || A || M) mod L is computed there.
//
// Item layout, ITEM_WORDS u32 words, little-endian byte order inside words:
//   [0, 8) R encoding, [8, 16) A encoding, [16, 24) s, [24, 32) k,
//   [32] key slot: a slot in `tables` (registered key, table of j(-A) already built),
//        KEY_DECOMPRESS (decompress A here), or KEY_SKIP (already invalid: verdict 0).
// Table layout: slot * 16 entries of 4 coordinates of 16 limbs; slot 0 is the base point
// (entries jB), slot i + 1 registered key i (entries j(-A)).

const ITEM_WORDS: u32 = 33u;
const KEY_DECOMPRESS: u32 = 0xffffffffu;
const KEY_SKIP: u32 = 0xfffffffeu;
const TABLE_ENTRY_WORDS: u32 = 64u;
const TABLE_SLOT_WORDS: u32 = 1024u;

struct Params {
    item_count: u32,
    slot_count: u32,
}

@group(0) @binding(0) var<storage, read> items: array<u32>;
@group(0) @binding(1) var<storage, read> tables: array<u32>;
@group(0) @binding(2) var<storage, read_write> verdicts: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

fn load_words(base: u32) -> array<u32, 8> {
    var w: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        w[i] = items[base + i];
    }
    return w;
}

fn load_fe(base: u32) -> Fe {
    var r: Fe;
    for (var i = 0u; i < 16u; i++) {
        r[i] = tables[base + i];
    }
    return r;
}

fn load_entry(slot: u32, j: u32) -> Pt {
    let base = slot * TABLE_SLOT_WORDS + j * TABLE_ENTRY_WORDS;
    return Pt(load_fe(base), load_fe(base + 16u), load_fe(base + 32u), load_fe(base + 48u));
}

fn nibble(w: array<u32, 8>, index: u32) -> u32 {
    return (w[index / 8u] >> (4u * (index % 8u))) & 15u;
}

fn check(item: u32) -> bool {
    let base = item * ITEM_WORDS;
    let slot = items[base + 32u];
    if (slot == KEY_SKIP) {
        return false;
    }
    let r = pt_decompress(load_words(base));
    if (!r.valid) {
        return false;
    }
    // Table of j(-A), j = 0..15.
    var table_a: array<Pt, 16>;
    if (slot == KEY_DECOMPRESS) {
        let a = pt_decompress(load_words(base + 8u));
        if (!a.valid) {
            return false;
        }
        let minus_a = pt_neg(a.point);
        table_a[0] = pt_identity();
        for (var j = 1u; j < 16u; j++) {
            table_a[j] = pt_add(table_a[j - 1u], minus_a);
        }
    } else {
        if (slot >= params.slot_count || (slot + 1u) * TABLE_SLOT_WORDS > arrayLength(&tables)) {
            return false;
        }
        for (var j = 0u; j < 16u; j++) {
            table_a[j] = load_entry(slot, j);
        }
    }
    let s = load_words(base + 16u);
    let k = load_words(base + 24u);
    // Straus, 4-bit fixed windows, most significant first: acc = sB + k(-A).
    var acc = pt_identity();
    for (var w = 64u; w > 0u; w--) {
        let index = w - 1u;
        if (index != 63u) {
            acc = pt_dbl(pt_dbl(pt_dbl(pt_dbl(acc))));
        }
        acc = pt_add(acc, table_a[nibble(k, index)]);
        acc = pt_add(acc, load_entry(0u, nibble(s, index)));
    }
    let difference = pt_add(r.point, pt_neg(acc));
    return pt_is_identity(pt_dbl(pt_dbl(pt_dbl(difference))));
}

@compute @workgroup_size(64)
fn verify(@builtin(global_invocation_id) id: vec3<u32>) {
    let item = id.x;
    if (item >= params.item_count || item >= arrayLength(&verdicts)
        || (item + 1u) * ITEM_WORDS > arrayLength(&items)) {
        return;
    }
    // 1 = valid, 2 = invalid; the host zeroes the buffer, so 0 means never written.
    verdicts[item] = select(2u, 1u, check(item));
}
