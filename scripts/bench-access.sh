#!/usr/bin/env bash
# The access benchmarks of docs/BENCHMARKS.md ("TLS and a hostile client"), back to back on
# one node alone (`tally node`, release build) with the load generator's population:
#
#   1. TLS against --insecure-plaintext: the same closed-loop load, once over TLS with the
#      load generator's identity, once over plain TCP.
#   2. An honest closed-loop client alone, then the same client while a second identity sends
#      open-loop load of which 20% are bad signatures (--invalid-pct 60: a third of the
#      invalid records are bad signatures, the rest wrong signers and unknown accounts).
#
#   scripts/bench-access.sh                 # 10 s per run
#   DURATION=20 scripts/bench-access.sh
#
# Prints one line per run: its name and the acknowledged throughput (tx/s).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
ATTACK_RATE="${ATTACK_RATE:-20000}"
TX_COUNT="${TX_COUNT:-400000}"
TALLY="${TALLY:-${CARGO_TARGET_DIR:-target}/release/tally}"
[ -x "$TALLY" ] || cargo build --release
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
POP=(--workload mixed --seed 1 --banks 20)
"$TALLY" cluster init --validators 1 --base-port 0 --dir "$WORK/c" "${POP[@]}" >/dev/null
PORT=$(grep '^listen' "$WORK/c/node-0.toml" | head -1 | sed 's/.*:\([0-9]*\)"/\1/')
ADDR="127.0.0.1:$PORT"
# A node alone (no [validator] section) on the cluster's genesis and identity.
node_config() {
  cat >"$WORK/node.toml" <<EOF
data_dir = "data-$1"
genesis = "c/genesis.toml"
listen = "$ADDR"
identity = "c/validator-0.identity"
EOF
}
# An attacker's identity: another certificate binding the same keys as the load generator's.
SIGNERS=()
while read -r key; do SIGNERS+=(--signer "$key"); done < <(
  "$TALLY" pki show "$WORK/c/participants/loadgen.identity" | awk '/^signer/ {print $2}')
"$TALLY" pki issue --ca "$WORK/c/ca" --name attacker --role central_bank "${SIGNERS[@]}" \
  --out "$WORK/attacker.identity" >/dev/null

start_node() { # $1: run name, $2...: extra flags
  node_config "$1"
  shift
  "$TALLY" node --config "$WORK/node.toml" "$@" >"$WORK/node.out" 2>"$WORK/node.err" &
  NODE=$!
  for _ in $(seq 100); do grep -q '^clients:' "$WORK/node.out" 2>/dev/null && return; sleep 0.1; done
  echo "the node did not start" >&2; cat "$WORK/node.err" >&2; exit 1
}
stop_node() { kill -TERM "$NODE"; wait "$NODE" || true; }
closed_loop() { # $1: run name, $2...: access flags
  local name=$1
  shift
  "$TALLY" loadgen --node "$ADDR" "$@" --genesis "$WORK/c/genesis.toml" "${POP[@]}" \
    --closed-loop --closed-loop-tx-count "$TX_COUNT" --duration "$DURATION" --quiet --json \
    --out "$WORK/out-$name" >"$WORK/$name.json"
  printf '%-28s %s tx/s\n' "$name" "$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(round(r["throughput_per_s"]))' "$WORK/$name.json")"
}
LOADGEN_ID=(--identity "$WORK/c/participants/loadgen.identity")

start_node plaintext --insecure-plaintext
closed_loop plaintext --insecure-plaintext
stop_node
start_node tls
closed_loop tls "${LOADGEN_ID[@]}"
stop_node

start_node alone
closed_loop honest-alone "${LOADGEN_ID[@]}"
stop_node
start_node attacked
"$TALLY" loadgen --node "$ADDR" --identity "$WORK/attacker.identity" \
  --genesis "$WORK/c/genesis.toml" "${POP[@]}" --invalid-pct 60 --rate "$ATTACK_RATE" \
  --duration "$DURATION" --quiet --json --out "$WORK/out-attacker" >"$WORK/attacker.json" 2>"$WORK/attacker.err" &
ATTACKER=$!
sleep 1
closed_loop honest-under-attack "${LOADGEN_ID[@]}"
wait "$ATTACKER" || true
echo "attacker: $(tail -1 "$WORK/attacker.err" 2>/dev/null)"; python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(\"attacker sent\", r[\"sent\"], \"acknowledged\", r[\"acknowledged\"], r[\"results\"])" "$WORK/attacker.json" 2>/dev/null || true
grep -h 'tally_client_bad_signature_closed_total\|bad signatures within' "$WORK/node.err" | tail -2 || true
stop_node
