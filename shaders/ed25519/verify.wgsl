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

// Count of point additions after the table: 64 windows of (4 doublings, + k_w(-A), + s_w B),
// then R + (-acc), then 3 doublings (the cofactor).
const MAIN_OPS: u32 = 384u;
const TAIL_OPS: u32 = 4u;

fn check(item: u32) -> bool {
    let base = item * ITEM_WORDS;
    let slot = items[base + 32u];
    if (slot == KEY_SKIP) {
        return false;
    }
    if (slot != KEY_DECOMPRESS
        && (slot >= params.slot_count || (slot + 1u) * TABLE_SLOT_WORDS > arrayLength(&tables))) {
        return false;
    }
    // Decompress R, and A when it has no table, in one loop: one inlined decompression.
    let decompress_count = select(1u, 2u, slot == KEY_DECOMPRESS);
    var points: array<Pt, 2>;
    var valid = true;
    for (var i = 0u; i < decompress_count; i++) {
        let d = pt_decompress(load_words(base + 8u * i));
        points[i] = d.point;
        valid = valid && d.valid;
    }
    if (!valid) {
        return false;
    }
    // Table of j(-A), j = 0..15: loaded, or built below by the first 15 additions.
    var table_a: array<Pt, 16>;
    table_a[0] = pt_identity();
    var table_ops = 15u;
    if (slot != KEY_DECOMPRESS) {
        for (var j = 0u; j < 16u; j++) {
            table_a[j] = load_entry(slot, j);
        }
        table_ops = 0u;
    }
    let minus_a = pt_neg(points[1]);
    let s = load_words(base + 16u);
    let k = load_words(base + 24u);
    // Every point operation of the check runs through this loop: a single pt_add call site.
    // acc = sB + k(-A) by Straus with 4-bit windows, most significant first; then
    // acc = [8](R - acc).
    var acc = pt_identity();
    let total_ops = table_ops + MAIN_OPS + TAIL_OPS;
    for (var op = 0u; op < total_ops; op++) {
        var x = acc;
        var y = acc;
        if (op < table_ops) {
            x = table_a[op];
            y = minus_a;
        } else {
            let m = op - table_ops;
            if (m < MAIN_OPS) {
                let window = 63u - m / 6u;
                let phase = m % 6u;
                if (phase == 4u) {
                    y = table_a[nibble(k, window)];
                } else if (phase == 5u) {
                    y = load_entry(0u, nibble(s, window));
                }
            } else if (m == MAIN_OPS) {
                x = points[0];
                y = pt_neg(acc);
            }
        }
        let sum = pt_add(x, y);
        if (op < table_ops) {
            table_a[op + 1u] = sum;
        } else {
            acc = sum;
        }
    }
    return pt_is_identity(acc);
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
