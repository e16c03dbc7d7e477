// Library of the verification kernels prepare.wgsl and ladder.wgsl (no entry point): together,
// per signature, they make the cofactored ZIP-215 check [8](R - (sB + k(-A))) == identity,
// exactly ed25519-zebra's single-verifier equation. Needs field.wgsl and curve.wgsl
// (prepended by the host).
//
// The check is split over several dispatches so that each pipeline stays small enough for
// shader compilers (llvmpipe did not finish compiling the whole check as one kernel in 14
// minutes): `prepare` decompresses R, and A when the key has no table (two threads per
// item, one per point); `ladder` runs a range [op_start, op_end) of the point additions (one
// thread per item), keeping its accumulator in the `state` buffer between dispatches, and
// writes the verdict after the last one. Each pipeline holds one inlined fe_mul: pt_add and
// pt_decompress loop around theirs, and the ladder loops around its one pt_add.
//
// Host-side work (CPU, rayon): S < L is checked there (items with S >= L never get here,
// they are marked KEY_SKIP), k = SHA-512(R || A || M) mod L is computed there.
//
// Inputs: per item, R, A and s are read from `records` and k and the key slot from `keys`,
// each at a stride and word offsets given in `params`, so that one set of pipelines serves
// two layouts (little-endian byte order inside words in both):
// - packed items (the host's `verify_with`): `records` and `keys` are the same buffer of
//   ITEM_WORDS (33) words per item, [0, 8) R, [8, 16) A, [16, 24) s, [24, 32) k, [32] slot:
//   record_stride = key_stride = 33, r_word 0, a_word 8, s_word 16, k_word 24 (132 B/item);
// - records already on the GPU (a block's transaction records, also the Merkle leaves):
//   `records` holds the block, record i at word (first_record + i) * record_stride, with R,
//   A, s at the given word offsets; `keys` holds KEY_ITEM_WORDS (9) words per item of this
//   sub-batch, [0, 8) k, [8] slot (36 B/item uploaded beside the records).
// The key slot is a slot in `tables` (registered key, table of j(-A) built by the host),
// KEY_DECOMPRESS (decompress A here), or KEY_SKIP (already invalid).
// Points in buffers are "packed": 4 coordinates of 8 words, each word two 16-bit limbs
// (lossless: loose limbs are < 2^16). A table is 16 points j P, j = 0..15 (TABLE_WORDS).
// `tables`: slot 0 is the base point (entries jB), slot i + 1 registered key i (entries
// j(-A)). `state`, STATE_WORDS per item: the item's own table of j(-A) (unregistered keys),
// then R, then the accumulator, then two flags (R, A decompressed: 1, else 0).
// Verdicts: 0 = pending (the host zeroes them), 1 = valid, 2 = invalid.

const KEY_DECOMPRESS: u32 = 0xffffffffu;
const KEY_SKIP: u32 = 0xfffffffeu;
const PT_WORDS: u32 = 32u;
const TABLE_WORDS: u32 = 512u;
const STATE_R: u32 = 512u;
const STATE_ACC: u32 = 544u;
const STATE_FLAGS: u32 = 576u;
const STATE_WORDS: u32 = 578u;
const VERDICT_PENDING: u32 = 0u;
const VERDICT_VALID: u32 = 1u;
const VERDICT_INVALID: u32 = 2u;

// Point additions per item: TABLE_OPS to fill entries 2..15 of an item's own table (only for
// KEY_DECOMPRESS), then 64 windows of (4 doublings, + k_w(-A), + s_w B), then R + (-acc),
// then 3 doublings (the cofactor).
const TABLE_OPS: u32 = 14u;
const MAIN_OPS: u32 = 384u;
const TAIL_OPS: u32 = 4u;

struct Params {
    item_count: u32,
    slot_count: u32,
    op_start: u32,
    op_end: u32,
    // Item i of this dispatch is record first_record + i of `records`.
    first_record: u32,
    record_stride: u32,
    r_word: u32,
    a_word: u32,
    s_word: u32,
    // k of item i at keys[i * key_stride + k_word], its slot 8 words further.
    key_stride: u32,
    k_word: u32,
    pad: u32,
}

@group(0) @binding(0) var<storage, read> records: array<u32>;
@group(0) @binding(1) var<storage, read> tables: array<u32>;
@group(0) @binding(2) var<storage, read_write> state: array<u32>;
@group(0) @binding(3) var<storage, read_write> verdicts: array<u32>;
@group(0) @binding(4) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read> keys: array<u32>;

// Packed field elements: 8 words, two 16-bit limbs each. Explicit per-coordinate calls
// (no arrays of field elements indexed at run time: compilers turn those into large
// selects or scratch memory).
fn state_load_fe(base: u32) -> Fe {
    var r: Fe;
    for (var i = 0u; i < 8u; i++) {
        let w = state[base + i];
        r[2u * i] = w & FE_MASK;
        r[2u * i + 1u] = w >> 16u;
    }
    return r;
}

fn table_load_fe(base: u32) -> Fe {
    var r: Fe;
    for (var i = 0u; i < 8u; i++) {
        let w = tables[base + i];
        r[2u * i] = w & FE_MASK;
        r[2u * i + 1u] = w >> 16u;
    }
    return r;
}

fn state_store_fe(base: u32, a: Fe) {
    for (var i = 0u; i < 8u; i++) {
        state[base + i] = a[2u * i] | (a[2u * i + 1u] << 16u);
    }
}

fn state_load_pt(base: u32) -> Pt {
    return Pt(state_load_fe(base), state_load_fe(base + 8u), state_load_fe(base + 16u),
              state_load_fe(base + 24u));
}

fn table_load_pt(base: u32) -> Pt {
    return Pt(table_load_fe(base), table_load_fe(base + 8u), table_load_fe(base + 16u),
              table_load_fe(base + 24u));
}

fn state_store_pt(base: u32, p: Pt) {
    state_store_fe(base, p.x);
    state_store_fe(base + 8u, p.y);
    state_store_fe(base + 16u, p.z);
    state_store_fe(base + 24u, p.t);
}

fn record_words(base: u32) -> array<u32, 8> {
    var w: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        w[i] = records[base + i];
    }
    return w;
}

// Word of item `item`'s record at word offset `offset` (R, A or s).
fn record_base(item: u32, offset: u32) -> u32 {
    return (params.first_record + item) * params.record_stride + offset;
}

// Word of item `item`'s k in `keys` (its slot is 8 words further).
fn key_base(item: u32) -> u32 {
    return item * params.key_stride + params.k_word;
}

// Nibble `index` (0 = least significant) of the scalar at records[base .. base + 8).
fn record_nibble(base: u32, index: u32) -> u32 {
    return (records[base + index / 8u] >> (4u * (index % 8u))) & 15u;
}

// Nibble `index` of the scalar at keys[base .. base + 8).
fn key_nibble(base: u32, index: u32) -> u32 {
    return (keys[base + index / 8u] >> (4u * (index % 8u))) & 15u;
}

// `item` when it is one of this dispatch's items, else 0xffffffff (also when a buffer is
// too small for it: never with the host's sizes, which also keep R, A, s inside the record).
fn checked_item(item: u32) -> u32 {
    if (item >= params.item_count || item >= arrayLength(&verdicts)
        || (params.first_record + item + 1u) * params.record_stride > arrayLength(&records)
        || key_base(item) + 9u > arrayLength(&keys)
        || (item + 1u) * STATE_WORDS > arrayLength(&state)) {
        return 0xffffffffu;
    }
    return item;
}
