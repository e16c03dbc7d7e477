#!/usr/bin/env bash
# Restart time of a node with a large population and a long history (docs/OPERATIONS.md,
# "Restart time at scale"):
#
#   scripts/restart-scale.sh ACCOUNTS TRANSACTIONS     # e.g. 10000000 100000000
#
# Builds the release binary, writes a single-node cluster whose genesis opens ACCOUNTS bank
# customers (`tally cluster init --workload transfer --custody bank`: 20 banks, each signing
# for its customers), with `archive_dir` set so that the log before the older kept checkpoint
# moves out of the live directory as a long-running node's does. Starts the node alone (no
# consensus; TALLY_RESTART_VALIDATOR=1 keeps it a validator of one), sends it TRANSACTIONS
# plain transfers over the client port (`tally loadgen --closed-loop`, uniform over the
# population), stops it (SIGTERM: every accepted transaction finishes), then starts it again
# TALLY_RESTART_STARTS times (default 3) and prints each start's time split as `tally node`
# prints it (its `start:` line): total, log open, journals, checkpoint load, state tree, replay, verifier
# keys, history index. Ends with the data directory's size per part.
#
# The node's output is in DIR/node-*.log, the load generator's in DIR/loadgen.log; DIR (a
# temporary directory, or TALLY_RESTART_DIR) is removed at the end unless
# TALLY_RESTART_KEEP=1. An existing DIR/cluster is loaded again only with
# TALLY_RESTART_REUSE=1 (the restarts measured again without sending the load).
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: scripts/restart-scale.sh ACCOUNTS TRANSACTIONS"
accounts="${1:?$usage}"
transactions="${2:?$usage}"
for value in "$accounts" "$transactions"; do
    if ! [[ "$value" =~ ^[1-9][0-9]*$ ]]; then
        echo "restart-scale.sh: ACCOUNTS and TRANSACTIONS are positive integers, not '$value'" >&2
        exit 2
    fi
done
starts="${TALLY_RESTART_STARTS:-3}"
in_flight="${TALLY_RESTART_IN_FLIGHT:-16384}"

cargo build --release --bin tally
tally="$(realpath "${CARGO_TARGET_DIR:-target}")/release/tally"

dir="${TALLY_RESTART_DIR:-$(mktemp -d /tmp/tally-restart.XXXXXX)}"
mkdir -p "$dir"
dir="$(realpath "$dir")"
node_pid=""
cleanup() {
    if [[ -n "$node_pid" ]] && kill -0 "$node_pid" 2>/dev/null; then
        kill -TERM "$node_pid" 2>/dev/null || true
        wait "$node_pid" 2>/dev/null || true
    fi
    if [[ "${TALLY_RESTART_KEEP:-0}" != 1 ]]; then
        rm -rf "$dir"
    else
        echo "kept $dir"
    fi
}
trap cleanup EXIT

# Starts the node, its output in $1; returns once the client port is open.
start_node() {
    (cd "$dir/cluster" && exec "$tally" node --config node-0.toml) >"$1" 2>&1 &
    node_pid=$!
    while ! grep -q "tally node:" "$1" 2>/dev/null; do
        if ! kill -0 "$node_pid" 2>/dev/null; then
            echo "restart-scale.sh: the node exited at start:" >&2
            tail -20 "$1" >&2
            exit 1
        fi
        sleep 0.1
    done
}

stop_node() {
    kill -TERM "$node_pid"
    wait "$node_pid" || true
    node_pid=""
}

if [[ "${TALLY_RESTART_REUSE:-0}" != 1 || ! -d "$dir/cluster" ]]; then
    rm -rf "$dir/cluster"
    "$tally" cluster init --validators 1 --dir "$dir/cluster" --base-port 0 \
        --workload transfer --accounts "$accounts" --custody bank --seed 7 >"$dir/init.log"
    config="$dir/cluster/node-0.toml"
    sed -i '/^data_dir/a archive_dir = "archive-0"' "$config"
    if [[ "${TALLY_RESTART_VALIDATOR:-0}" != 1 ]]; then
        awk '/^\[validator\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip' "$config" >"$config.new"
        mv "$config.new" "$config"
    fi
    client_addr="$(sed -n 's/^listen *= *"\(.*\)"/\1/p' "$config" | head -1)"

    start_node "$dir/node-load.log"
    echo "restart-scale: $accounts accounts, sending $transactions transfers to $client_addr"
    loading=$(date +%s)
    "$tally" loadgen --node "$client_addr" \
        --identity "$dir/cluster/participants/loadgen.identity" \
        --genesis "$dir/cluster/genesis.toml" --workload transfer --seed 7 \
        --accounts "$accounts" --custody bank --closed-loop \
        --closed-loop-tx-count "$transactions" --in-flight "$in_flight" \
        --duration 86400 --quiet >"$dir/loadgen.log" 2>&1
    echo "restart-scale: load sent in $(($(date +%s) - loading)) s"
    tail -12 "$dir/loadgen.log"
    stop_node
fi

for start in $(seq 1 "$starts"); do
    start_node "$dir/node-start-$start.log"
    echo "start $start: $(sed -n 's/^start: //p' "$dir/node-start-$start.log")"
    echo "start $start: resident $(awk '/^VmRSS:/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$node_pid/status")"
    stop_node
done

echo "load average at the end (1, 5, 15 min): $(cut -d' ' -f1-3 /proc/loadavg)"
echo "data directory (bytes):"
du -sb "$dir/cluster/data-0"/* "$dir/cluster/archive-0" 2>/dev/null | sed "s|$dir/cluster/||"
