// Entry point `prepare`: decompresses R, and A when the key has no table.
// Needs field.wgsl, curve.wgsl and verify.wgsl (prepended by the host, in that order).

// Two threads per item: even ones decompress R, odd ones A (when the key has no table).
@compute @workgroup_size(64)
fn prepare(@builtin(global_invocation_id) id: vec3<u32>) {
    let item = checked_item(id.x / 2u);
    if (item == 0xffffffffu) {
        return;
    }
    let which = id.x % 2u;
    let slot = keys[key_base(item) + 8u];
    let sbase = item * STATE_WORDS;
    if (which == 1u && slot != KEY_DECOMPRESS) {
        return;
    }
    // KEY_SKIP (S >= L) and a slot without a table fail here, on the R thread.
    var ok = slot == KEY_DECOMPRESS
        || (slot < params.slot_count && (slot + 1u) * TABLE_WORDS <= arrayLength(&tables));
    if (ok) {
        let offset = select(params.r_word, params.a_word, which == 1u);
        let d = pt_decompress(record_words(record_base(item, offset)));
        ok = d.valid;
        if (which == 0u) {
            state_store_pt(sbase + STATE_R, d.point);
        } else {
            // The item's own table: entry 0 the identity, entry 1 -A; ladder fills the rest.
            state_store_pt(sbase, pt_identity());
            state_store_pt(sbase + PT_WORDS, pt_neg(d.point));
        }
    }
    state[sbase + STATE_FLAGS + which] = select(0u, 1u, ok);
}
