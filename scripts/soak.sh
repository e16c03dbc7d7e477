#!/usr/bin/env bash
# Memory soak of one node process under sustained load (docs/OPERATIONS.md, "Memory soak"):
#
#   scripts/soak.sh MINUTES            # e.g. scripts/soak.sh 30
#   TALLY_SOAK_RATE=3000 scripts/soak.sh 3
#
# Builds the release binary, writes a single-node cluster (`tally cluster init --validators 1`)
# whose genesis has short windows (validity window TALLY_SOAK_VALIDITY_MS, default 15 s; refund
# window TALLY_SOAK_REFUND_MS, default 20 s), so that every window the ledger keeps turns over
# many times within the run, and checkpoints every TALLY_SOAK_CHECKPOINT_MS (default 10 s) of
# block time; starts the node, drives it with `tally loadgen` (the mixed
# workload: retail, taxed payments with refunds, interbank and central-bank traffic) over the
# client port at TALLY_SOAK_RATE tx/s (default 2000) for MINUTES, and samples the node's
# resident memory (VmRSS of /proc/PID/status) every TALLY_SOAK_SAMPLE_S seconds (default 5).
#
# The first third of the run is the warm-up (with the default windows and a run of 3 minutes or
# more, at least 60 s: one and a half turnovers of the longest window the ledger keeps, the
# closed refund ids' two refund windows, three of the refund window, four of the validity
# window, and six checkpoints). The node is a validator of one, as `tally cluster up` runs
# it; TALLY_SOAK_ALONE=1 runs it as a node alone (no consensus).
# The figure is the mean RSS of the last quarter of the samples after the warm-up against the
# mean of the first quarter after it; the script ends with the line
#
#   rss growth after warm-up: X%
#
# Every sample is in DIR/rss.tsv (seconds, VmRSS, RssAnon, RssFile in kB), the node's output in DIR/node.log, the load
# generator's in DIR/loadgen.log; DIR (a temporary directory, or TALLY_SOAK_DIR) is removed
# at the end unless TALLY_SOAK_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes="${1:?usage: scripts/soak.sh MINUTES}"
if ! [[ "$minutes" =~ ^[0-9]+([.][0-9]+)?$ ]] || [[ "$minutes" == 0 ]]; then
    echo "soak.sh: MINUTES must be a positive number, not '$minutes'" >&2
    exit 2
fi
rate="${TALLY_SOAK_RATE:-2000}"
validity_ms="${TALLY_SOAK_VALIDITY_MS:-15000}"
refund_ms="${TALLY_SOAK_REFUND_MS:-20000}"
sample_s="${TALLY_SOAK_SAMPLE_S:-5}"
checkpoint_ms="${TALLY_SOAK_CHECKPOINT_MS:-10000}"
port="${TALLY_SOAK_PORT:-0}"

cargo build --release --bin tally
tally="$(realpath "${CARGO_TARGET_DIR:-target}")/release/tally"

dir="${TALLY_SOAK_DIR:-$(mktemp -d /tmp/tally-soak.XXXXXX)}"
mkdir -p "$dir"
node_pid=""
cleanup() {
    if [[ -n "$node_pid" ]] && kill -0 "$node_pid" 2>/dev/null; then
        kill -TERM "$node_pid" 2>/dev/null || true
        wait "$node_pid" 2>/dev/null || true
    fi
    if [[ "${TALLY_SOAK_KEEP:-0}" != 1 ]]; then
        rm -rf "$dir"
    else
        echo "kept $dir"
    fi
}
trap cleanup EXIT

"$tally" cluster init --validators 1 --dir "$dir/cluster" --base-port "$port" \
    --workload mixed --seed 7 >"$dir/init.log"
genesis="$dir/cluster/genesis.toml"
# short windows: appended to the genesis's [settlement] table, or a new one
if grep -q '^\[settlement\]' "$genesis"; then
    sed -i "/^\[settlement\]/a validity_window_ms = $validity_ms\nrefund_window_ms = $refund_ms" "$genesis"
    # the table may have named a validity window already: keep the first (ours)
    awk '!(/^validity_window_ms/ && seen++)' "$genesis" >"$genesis.new" && mv "$genesis.new" "$genesis"
else
    printf '\n[settlement]\nvalidity_window_ms = %s\nrefund_window_ms = %s\n' \
        "$validity_ms" "$refund_ms" >>"$genesis"
fi
# checkpoints every few seconds of block time, so that the warm-up holds several (each one
# copies the ledger; the allocator keeps some of what a copy used)
if grep -q '^\[limits\]' "$dir/cluster/node-0.toml"; then
    sed -i "/^\[limits\]/a checkpoint_interval_ms = $checkpoint_ms" "$dir/cluster/node-0.toml"
else
    printf '\n[limits]\ncheckpoint_interval_ms = %s\n' "$checkpoint_ms" >>"$dir/cluster/node-0.toml"
fi
# TALLY_SOAK_ALONE=1: a node alone (no [validator] section: blocks without consensus)
if [[ "${TALLY_SOAK_ALONE:-0}" == 1 ]]; then
    awk '/^\[validator\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip' "$dir/cluster/node-0.toml" \
        >"$dir/cluster/node-0.toml.new"
    mv "$dir/cluster/node-0.toml.new" "$dir/cluster/node-0.toml"
fi
client_addr="$(sed -n 's/^listen *= *"\(.*\)"/\1/p' "$dir/cluster/node-0.toml" | head -1)"

(cd "$dir/cluster" && exec "$tally" node --config node-0.toml) >"$dir/node.log" 2>&1 &
node_pid=$!
# wait for the client port
for _ in $(seq 1 300); do
    if grep -q "tally node:" "$dir/node.log" 2>/dev/null; then break; fi
    if ! kill -0 "$node_pid" 2>/dev/null; then
        echo "soak.sh: the node exited at start:" >&2
        cat "$dir/node.log" >&2
        exit 1
    fi
    sleep 0.2
done

seconds="$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')"
# records are signed valid for half the validity window: sign about an eighth of a window
# ahead (the signer may run twice that ahead)
sign_ahead="$(awk -v r="$rate" -v w="$validity_ms" 'BEGIN { n = int(r * w / 8000); print (n < 1024 ? 1024 : n) }')"
echo "soak: node pid $node_pid at $client_addr, $rate tx/s for $seconds s, validity window" \
    "${validity_ms} ms, refund window ${refund_ms} ms, checkpoints every ${checkpoint_ms} ms," \
    "sampling VmRSS every ${sample_s} s"
"$tally" loadgen --node "$client_addr" --identity "$dir/cluster/participants/loadgen.identity" \
    --genesis "$genesis" --workload mixed --seed 7 --rate "$rate" --duration "$seconds" --sign-ahead "$sign_ahead" \
    --quiet >"$dir/loadgen.log" 2>&1 &
loadgen_pid=$!

: >"$dir/rss.tsv"
start=$(date +%s)
while kill -0 "$loadgen_pid" 2>/dev/null; do
    if ! kill -0 "$node_pid" 2>/dev/null; then
        echo "soak.sh: the node exited during the run:" >&2
        tail -20 "$dir/node.log" >&2
        exit 1
    fi
    # seconds, VmRSS, and its parts: anonymous memory and file pages mapped (kB)
    awk -v t="$(($(date +%s) - start))" '
        /^VmRSS:/ { rss = $2 } /^RssAnon:/ { anon = $2 } /^RssFile:/ { file = $2 }
        END { printf "%s\t%s\t%s\t%s\n", t, rss, anon, file }' "/proc/$node_pid/status" \
        >>"$dir/rss.tsv"
    sleep "$sample_s"
done
loadgen_status=0
wait "$loadgen_pid" || loadgen_status=$?
tail -25 "$dir/loadgen.log"
echo "load average at the end (1, 5, 15 min): $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ "$loadgen_status" != 0 ]]; then
    echo "soak.sh: tally loadgen exited with status $loadgen_status" >&2
    exit 1
fi
awk -v total="$seconds" '
    { t[NR] = $1; r[NR] = $2 }
    END {
        warm = total / 3; n = 0
        for (i = 1; i <= NR; i++) if (t[i] >= warm) after[++n] = r[i]
        if (n < 8) { print "soak.sh: too few samples after the warm-up (" n ")" > "/dev/stderr"; exit 1 }
        q = int(n / 4); a = 0; b = 0
        for (i = 1; i <= q; i++) a += after[i]
        for (i = n - q + 1; i <= n; i++) b += after[i]
        a /= q; b /= q
        printf "rss: %d samples; at the end of the warm-up (first third, %d s) %.1f MiB, last quarter %.1f MiB, peak %.1f MiB\n", NR, warm, a / 1024, b / 1024, peak() / 1024
        printf "rss growth after warm-up: %.1f%%\n", (b - a) * 100 / a
    }
    function peak(  i, m) { m = 0; for (i = 1; i <= NR; i++) if (r[i] > m) m = r[i]; return m }
' "$dir/rss.tsv"
