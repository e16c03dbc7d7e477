// requires: blake3_common.wgsl
//
// Keyed BLAKE3 of `count` fixed-size leaves of `leaf_bytes` bytes each (0..=1024: one chunk),
// leaf i at byte i * leaf_bytes of `data`. Writes hash i as eight words at node
// `out_offset + i` of `tree`. The leaf byte length need not be a multiple of 4: words are
// assembled from unaligned bytes, and bytes past the leaf are zero as BLAKE3 requires.

struct Params {
    key: Cv,
    count: u32,
    leaf_bytes: u32,
    in_offset: u32,
    out_offset: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> data: array<u32>;
@group(0) @binding(2) var<storage, read_write> tree: array<u32>;

// Little-endian word at byte `start + offset` of the leaf starting at byte `start`, with the
// bytes at or past `leaf_bytes` set to zero.
fn leaf_word(start: u32, offset: u32, leaf_bytes: u32) -> u32 {
    if (offset >= leaf_bytes) {
        return 0u;
    }
    let byte_index = start + offset;
    let index = byte_index / 4u;
    let shift = (byte_index % 4u) * 8u;
    var word = data[index] >> shift;
    if (shift != 0u && index + 1u < arrayLength(&data)) {
        word = word | (data[index + 1u] << (32u - shift));
    }
    let left = leaf_bytes - offset;
    if (left < 4u) {
        word = word & ((1u << (left * 8u)) - 1u);
    }
    return word;
}

@compute @workgroup_size(64)
fn hash_leaves(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let leaf = (group.y * groups.x + group.x) * 64u + lane;
    let leaf_bytes = params.leaf_bytes;
    if (leaf >= params.count || leaf_bytes > BLAKE3_CHUNK_BYTES) {
        return;
    }
    let start = leaf * leaf_bytes;
    let out = (params.out_offset + leaf) * 8u;
    // Bounds: the whole leaf must be in `data`, the whole hash in `tree`.
    if (start + leaf_bytes > arrayLength(&data) * 4u || out + 8u > arrayLength(&tree)) {
        return;
    }
    let block_count = max(1u, (leaf_bytes + BLAKE3_BLOCK_BYTES - 1u) / BLAKE3_BLOCK_BYTES);
    var cv = params.key;
    for (var b = 0u; b < block_count; b = b + 1u) {
        let block_start = b * BLAKE3_BLOCK_BYTES;
        var m: array<u32, 16>;
        for (var w = 0u; w < 16u; w = w + 1u) {
            m[w] = leaf_word(start, block_start + w * 4u, leaf_bytes);
        }
        var flags = BLAKE3_KEYED_HASH;
        if (b == 0u) {
            flags = flags | BLAKE3_CHUNK_START;
        }
        if (b + 1u == block_count) {
            flags = flags | BLAKE3_CHUNK_END | BLAKE3_ROOT;
        }
        let block_len = min(BLAKE3_BLOCK_BYTES, leaf_bytes - block_start);
        cv = blake3_compress(cv, m, 0u, block_len, flags);
    }
    tree[out + 0u] = cv.lo.x;
    tree[out + 1u] = cv.lo.y;
    tree[out + 2u] = cv.lo.z;
    tree[out + 3u] = cv.lo.w;
    tree[out + 4u] = cv.hi.x;
    tree[out + 5u] = cv.hi.y;
    tree[out + 6u] = cv.hi.z;
    tree[out + 7u] = cv.hi.w;
}
