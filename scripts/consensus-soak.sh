#!/usr/bin/env bash
# Soak test of the consensus simulator: many seeds in release mode. Every validator of every
# seed executes the blocks it decides on its own ledger, and honest validators' state roots
# are compared at every height (engine/tests/consensus_sim.rs).
#
#   scripts/consensus-soak.sh                  # 100000 seeds from 0
#   TALLY_SIM_SEEDS=5000 scripts/consensus-soak.sh
#   TALLY_SIM_SEED_START=100000 scripts/consensus-soak.sh   # a fresh range
#
# A failing seed is printed with the command that replays it alone
# (TALLY_SIM_SEED=<n> cargo test -p tally-engine --test consensus_sim -- --nocapture).
set -euo pipefail
cd "$(dirname "$0")/.."
export TALLY_SIM_SEEDS="${TALLY_SIM_SEEDS:-100000}"
export TALLY_SIM_SEED_START="${TALLY_SIM_SEED_START:-0}"
echo "consensus soak: ${TALLY_SIM_SEEDS} seeds from ${TALLY_SIM_SEED_START} (release build)"
exec cargo test --release -p tally-engine --test consensus_sim -- --nocapture
