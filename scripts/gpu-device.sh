#!/usr/bin/env bash
# The GPU check for a machine with a hardware GPU (docs/BENCHMARKS.md, "GPU"), in two steps:
#
#   scripts/gpu-device.sh prepare      # here: builds the release binary and the GPU test
#                                      # suites, strips them into gpu-bin.tar.xz, and fetches
#                                      # the Vulkan loader packages into .gl/
#   scripts/gpu-device.sh run OUT      # there (no Rust toolchain needed): unpacks, runs the
#                                      # GPU vector suites and the GPU bench, writes OUT/
#
# With the device tool: prepare here, then one call that carries gpu-bin.tar.xz and .gl and
# runs `scripts/gpu-device.sh run $OUT` (timeout about 540 s). OUT gets nvidia-smi.txt,
# vectors.txt (every suite's verdicts against the reference), bench.txt, bench.md and
# bench.json (sigverify with the auto crossover, the Merkle tree and the GPU block, the
# single node on the GPU backend beside the CPU backend).
set -euo pipefail
cd "$(dirname "$0")/.."
suites=(ed25519_gpu block_gpu merkle_gpu)

case "${1:-}" in
prepare)
    cargo build --release --locked
    paths=$(cargo test --release --locked -p tally-kernels \
        $(printf -- '--test %s ' "${suites[@]}") --no-run --message-format=json |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])')
    staging=$(mktemp -d)
    cp target/release/tally "$staging/tally"
    for path in $paths; do
        cp "$path" "$staging/$(basename "$path" | sed 's/-[0-9a-f]*$//')"
    done
    strip "$staging"/*
    tar -C "$staging" -cJf gpu-bin.tar.xz .
    rm -rf "$staging"
    mkdir -p .gl
    (cd .gl && apt-get download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
    du -ch gpu-bin.tar.xz .gl | tail -1
    echo "carry: gpu-bin.tar.xz .gl (both ignored by git)"
    ;;
run)
    out=${2:?usage: scripts/gpu-device.sh run OUT}
    mkdir -p "$out"
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
        export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    fi
    nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true
    bin=$(mktemp -d)
    tar -C "$bin" -xJf gpu-bin.tar.xz
    # The suites read their vectors where they were built: point that path at this copy.
    built=$(strings "$bin/ed25519_gpu" | grep -o '/[^ ]*/kernels/tests/vectors' | head -1 || true)
    if [ -n "$built" ] && [ ! -e "$built" ]; then
        mkdir -p "$(dirname "${built%/kernels/tests/vectors}")"
        ln -sfn "$PWD" "${built%/kernels/tests/vectors}"
    fi
    export TALLY_REQUIRE_GPU=1
    for suite in "${suites[@]}"; do
        echo "== $suite" | tee -a "$out/vectors.txt"
        "$bin/$suite" --test-threads 1 2>&1 | tee -a "$out/vectors.txt"
    done
    "$bin/tally" bench --parts sigverify,merkle,pipeline --gpu --scratch-dir /tmp \
        --markdown "$out/bench.md" --json "$out/bench.json" 2>&1 | tee "$out/bench.txt"
    ;;
*)
    echo "usage: scripts/gpu-device.sh prepare | run OUT" >&2
    exit 2
    ;;
esac
