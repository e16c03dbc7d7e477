// requires: blake3_common.wgsl
//
// One level of the Merkle tree: the `count` nodes at node `in_offset` of `tree` become
// ceil(count / 2) nodes at node `out_offset`. Pair (2i, 2i+1) hashes as keyed BLAKE3 of the
// 64-byte block left || right (one compression, key = NODE_KEY in `params.key`); an odd last
// node is copied up unchanged (docs/MERKLE.md).

struct Params {
    key: Cv,
    count: u32,
    leaf_bytes: u32,
    in_offset: u32,
    out_offset: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read_write> tree: array<u32>;

@compute @workgroup_size(64)
fn hash_nodes(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let parent = (group.y * groups.x + group.x) * 64u + lane;
    let count = params.count;
    let left = 2u * parent;
    if (left >= count) {
        return;
    }
    let is_promoted = left + 1u == count;
    let source_word = (params.in_offset + left) * 8u;
    let dest_word = (params.out_offset + parent) * 8u;
    // Bounds: both children (one when promoted) and the parent must lie in `tree`.
    let source_words = select(16u, 8u, is_promoted);
    let tree_words = arrayLength(&tree);
    if (source_word + source_words > tree_words || dest_word + 8u > tree_words) {
        return;
    }
    var out: Cv;
    if (is_promoted) {
        out = Cv(
            vec4<u32>(tree[source_word], tree[source_word + 1u], tree[source_word + 2u], tree[source_word + 3u]),
            vec4<u32>(tree[source_word + 4u], tree[source_word + 5u], tree[source_word + 6u], tree[source_word + 7u]),
        );
    } else {
        var m: array<u32, 16>;
        for (var w = 0u; w < 16u; w = w + 1u) {
            m[w] = tree[source_word + w];
        }
        let flags = BLAKE3_KEYED_HASH | BLAKE3_CHUNK_START | BLAKE3_CHUNK_END | BLAKE3_ROOT;
        out = blake3_compress(params.key, m, 0u, BLAKE3_BLOCK_BYTES, flags);
    }
    tree[dest_word + 0u] = out.lo.x;
    tree[dest_word + 1u] = out.lo.y;
    tree[dest_word + 2u] = out.lo.z;
    tree[dest_word + 3u] = out.lo.w;
    tree[dest_word + 4u] = out.hi.x;
    tree[dest_word + 5u] = out.hi.y;
    tree[dest_word + 6u] = out.hi.z;
    tree[dest_word + 7u] = out.hi.w;
}
