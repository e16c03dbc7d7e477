// BLAKE3 compression function, u32 operations only (runs on every adapter, no SHADER_INT64).
// A library file: no entry point. Files that need it say so with a line
//     // requires: blake3_common.wgsl
// and the one loader (kernels/src/gpu/shader.rs, which the host and the naga test use)
// prepends it.
//
// The 16-word state is held as four rows of vec4<u32> (row a = words 0..3, b = 4..7,
// c = 8..11, d = 12..15), so each G step works on four columns (or four diagonals) at once.

const BLAKE3_IV_LO = vec4<u32>(0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au);

const BLAKE3_CHUNK_START: u32 = 1u;
const BLAKE3_CHUNK_END: u32 = 2u;
const BLAKE3_ROOT: u32 = 8u;
const BLAKE3_KEYED_HASH: u32 = 16u;
const BLAKE3_BLOCK_BYTES: u32 = 64u;
const BLAKE3_CHUNK_BYTES: u32 = 1024u;

// A chaining value or an output: eight words as two vectors.
struct Cv {
    lo: vec4<u32>,
    hi: vec4<u32>,
}

struct Rows {
    a: vec4<u32>,
    b: vec4<u32>,
    c: vec4<u32>,
    d: vec4<u32>,
}

fn rotr4(x: vec4<u32>, n: u32) -> vec4<u32> {
    return (x >> vec4<u32>(n)) | (x << vec4<u32>(32u - n));
}

// Four G functions side by side.
fn g4(r: Rows, mx: vec4<u32>, my: vec4<u32>) -> Rows {
    var a = r.a;
    var b = r.b;
    var c = r.c;
    var d = r.d;
    a = a + b + mx;
    d = rotr4(d ^ a, 16u);
    c = c + d;
    b = rotr4(b ^ c, 12u);
    a = a + b + my;
    d = rotr4(d ^ a, 8u);
    c = c + d;
    b = rotr4(b ^ c, 7u);
    return Rows(a, b, c, d);
}

fn blake3_round(r: Rows, m: array<u32, 16>) -> Rows {
    // Columns: G(0,4,8,12) G(1,5,9,13) G(2,6,10,14) G(3,7,11,15).
    var s = g4(r, vec4<u32>(m[0], m[2], m[4], m[6]), vec4<u32>(m[1], m[3], m[5], m[7]));
    // Diagonals: G(0,5,10,15) G(1,6,11,12) G(2,7,8,13) G(3,4,9,14): rotate rows b, c, d.
    s = Rows(s.a, s.b.yzwx, s.c.zwxy, s.d.wxyz);
    s = g4(s, vec4<u32>(m[8], m[10], m[12], m[14]), vec4<u32>(m[9], m[11], m[13], m[15]));
    return Rows(s.a, s.b.wxyz, s.c.zwxy, s.d.yzwx);
}

// The message permutation of the BLAKE3 specification, applied between rounds.
fn blake3_permute(m: array<u32, 16>) -> array<u32, 16> {
    return array<u32, 16>(
        m[2], m[6], m[3], m[10], m[7], m[0], m[4], m[13],
        m[1], m[11], m[12], m[5], m[9], m[14], m[15], m[8]
    );
}

// The first eight output words of the compression function (the new chaining value, or
// the 32-byte hash when `flags` has ROOT). The counter's high word is always zero here:
// one-chunk inputs only.
fn blake3_compress(cv: Cv, block: array<u32, 16>, counter_low: u32, block_len: u32, flags: u32) -> Cv {
    var s = Rows(cv.lo, cv.hi, BLAKE3_IV_LO, vec4<u32>(counter_low, 0u, block_len, flags));
    var m = block;
    for (var r = 0u; r < 7u; r = r + 1u) {
        s = blake3_round(s, m);
        m = blake3_permute(m);
    }
    return Cv(s.a ^ s.c, s.b ^ s.d);
}
