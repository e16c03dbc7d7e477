// Entry point `ladder`: a range [op_start, op_end) of the point additions of the check, the
// accumulator kept in `state` between dispatches; the last range writes the verdict.
// Needs field.wgsl, curve.wgsl and verify.wgsl (prepended by the host, in that order).

@compute @workgroup_size(64)
fn ladder(@builtin(global_invocation_id) id: vec3<u32>) {
    let item = checked_item(id.x);
    if (item == 0xffffffffu || verdicts[item] != VERDICT_PENDING) {
        return;
    }
    let kbase = key_base(item);
    let s_at = record_base(item, params.s_word);
    let sbase = item * STATE_WORDS;
    let slot = keys[kbase + 8u];
    let own_table = slot == KEY_DECOMPRESS;
    if (params.op_start == 0u) {
        let decompressed = state[sbase + STATE_FLAGS] == 1u
            && (!own_table || state[sbase + STATE_FLAGS + 1u] == 1u);
        if (!decompressed) {
            verdicts[item] = VERDICT_INVALID;
            return;
        }
    }
    let table_ops = select(0u, TABLE_OPS, own_table);
    let total = table_ops + MAIN_OPS + TAIL_OPS;
    let start = params.op_start;
    let end = min(params.op_end, total);
    var acc = pt_identity();
    if (start > 0u) {
        acc = state_load_pt(sbase + STATE_ACC);
    }
    // Every point operation runs through this loop: a single inlined pt_add.
    // acc = sB + k(-A) by Straus with 4-bit windows, most significant first; then
    // acc = [8](R - acc).
    for (var op = start; op < end; op++) {
        var x = acc;
        var y = acc;
        var store_at = 0xffffffffu;
        if (op < table_ops) {
            // entry[op + 2] = entry[op + 1] + entry[1]
            x = state_load_pt(sbase + PT_WORDS * (op + 1u));
            y = state_load_pt(sbase + PT_WORDS);
            store_at = sbase + PT_WORDS * (op + 2u);
        } else {
            let m = op - table_ops;
            if (m < MAIN_OPS) {
                let window = 63u - m / 6u;
                let phase = m % 6u;
                if (phase == 4u) {
                    let digit = key_nibble(kbase, window);
                    if (own_table) {
                        y = state_load_pt(sbase + PT_WORDS * digit);
                    } else {
                        y = table_load_pt(slot * TABLE_WORDS + PT_WORDS * digit);
                    }
                } else if (phase == 5u) {
                    y = table_load_pt(PT_WORDS * record_nibble(s_at, window));
                }
            } else if (m == MAIN_OPS) {
                x = state_load_pt(sbase + STATE_R);
                y = pt_neg(acc);
            }
        }
        let sum = pt_add(x, y);
        if (store_at != 0xffffffffu) {
            state_store_pt(store_at, sum);
        } else {
            acc = sum;
        }
    }
    if (end >= total) {
        verdicts[item] = select(VERDICT_INVALID, VERDICT_VALID, pt_is_identity(acc));
    } else if (end > start) {
        state_store_pt(sbase + STATE_ACC, acc);
    }
}
