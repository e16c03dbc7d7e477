#!/usr/bin/env bash
# More SIGKILL rounds than the regular suite: TALLY_CRASH_ROUNDS=200 scripts/crash-soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export TALLY_CRASH_ROUNDS="${TALLY_CRASH_ROUNDS:-200}"
cargo test --release --test crash -- --nocapture
