#!/usr/bin/env bash
# Soak tests of both simulators, many seeds in release mode:
# - the machine simulator (engine/tests/consensus_sim.rs): the Tendermint state machine
#   with a model application, every validator executing decided blocks on its own ledger;
# - the cluster simulator (engine/tests/cluster_sim.rs): validators running the production
#   consensus stage over simulated links and disks (crashes, torn writes, Byzantine
#   proposers).
#
#   scripts/consensus-soak.sh                  # 100000 machine seeds, 5000 cluster seeds
#   TALLY_SIM_SEEDS=5000 TALLY_CLUSTER_SIM_SEEDS=500 scripts/consensus-soak.sh
#   TALLY_SIM_SEED_START=100000 TALLY_CLUSTER_SIM_SEED_START=5000 scripts/consensus-soak.sh
#
# A failing seed is printed with the command that replays it alone
# (TALLY_SIM_SEED=<n> ... --test consensus_sim, TALLY_CLUSTER_SIM_SEED=<n> ... --test cluster_sim).
set -euo pipefail
cd "$(dirname "$0")/.."
export TALLY_SIM_SEEDS="${TALLY_SIM_SEEDS:-100000}"
export TALLY_SIM_SEED_START="${TALLY_SIM_SEED_START:-0}"
export TALLY_CLUSTER_SIM_SEEDS="${TALLY_CLUSTER_SIM_SEEDS:-5000}"
export TALLY_CLUSTER_SIM_SEED_START="${TALLY_CLUSTER_SIM_SEED_START:-0}"
echo "machine simulator: ${TALLY_SIM_SEEDS} seeds from ${TALLY_SIM_SEED_START} (release build)"
cargo test --release -p tally-engine --test consensus_sim -- --nocapture
echo "cluster simulator: ${TALLY_CLUSTER_SIM_SEEDS} seeds from ${TALLY_CLUSTER_SIM_SEED_START} (release build)"
cargo test --release -p tally-engine --test cluster_sim -- --nocapture simulated_validators
