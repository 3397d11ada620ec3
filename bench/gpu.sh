#!/usr/bin/env bash
# The bench table on a GPU host, one command: `bash bench/gpu.sh [--dry-run] [more pairpref bench flags]`.
# Measures, in one `pairpref bench` run: cuda:0 (the headline; the in-process limit, the naive server
# and the PyTorch peer on the same GPU), cuda:0,cuda:1 when two GPUs are visible (CUDA_VISIBLE_DEVICES
# honoured as CUDA reads it), and webgpu when a hardware Vulkan adapter is present (never SwiftShader).
# Before it starts it checks that the CUDA provider is installed and a test session on cuda:0 runs
# (bench/gpu-plan.ts); it exits 2 with the reason when not. Writes bench-gpu.json and bench-gpu.txt
# in $OUT (default: the current folder), then checks that each of two GPUs ran about half of the
# tokens (exit 1 when not).
# --dry-run: prints the device lists and the command it would run, measures nothing; with
# GPU_SH_FAKE_ROOT / GPU_SH_FAKE_CUDA_PROVIDER / GPU_SH_FAKE_TORCH_CUDA (see bench/gpu-plan.ts) it
# plans for a faked host.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}"
dry=0
pass=()
for a in "$@"; do
  if [ "$a" = --dry-run ]; then dry=1; else pass+=("$a"); fi
done
plan=(node --import tsx bench/gpu-plan.ts plan)
[ "$dry" = 1 ] && plan+=(--dry-run)
rc=0
lists=$("${plan[@]}") || rc=$?
# GPUs take bigger batches than the 2-core default; rows/clients stay flags (later flags win).
bench=(node bin/pairpref.mjs bench --devices "$lists" --rows 1500 --clients 16 --webgpu-rows 200 --peer-device auto --json ${pass[@]+"${pass[@]}"})
if [ "$dry" = 1 ]; then
  if [ "$rc" = 0 ]; then
    echo "device lists: ${lists//;/ | }"
    echo "would run: $(printf '%q ' "${bench[@]}")> $out/bench-gpu.json"
    echo "then: node --import tsx bench/gpu-plan.ts check $out/bench-gpu.json | tee $out/bench-gpu.txt"
  else
    echo "would not run (exit $rc): see the reasons above"
  fi
  exit "$rc"
fi
[ "$rc" = 0 ] || exit "$rc"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader >&2 || true
"${bench[@]}" > "$out/bench-gpu.json"
node --import tsx bench/gpu-plan.ts check "$out/bench-gpu.json" | tee "$out/bench-gpu.txt"
exit "${PIPESTATUS[0]}"
