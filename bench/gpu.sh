#!/usr/bin/env bash
# The bench table on a GPU host, one command: `bash bench/gpu.sh [--model DIR] [more pairpref bench flags]`.
# Runs cuda:0 (headline, and the in-process limit on cuda:0), cuda:0,cuda:1 when two GPUs are
# visible, and webgpu, when the CUDA provider is installed (see runtime/node/devices.ts); otherwise
# webgpu alone. Writes bench-gpu.json and bench-gpu.txt in $OUT (default: the current folder).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}"
cuda=$(node --import tsx -e "import('./runtime/node/devices.ts').then(m => console.log(m.cudaProviderInstalled() ? 1 : 0))")
# GPUs as CUDA would enumerate them: /dev/nvidia<N> nodes, filtered by CUDA_VISIBLE_DEVICES (-1 = none).
gpus=$(node --import tsx -e "import('./runtime/node/devices.ts').then(m => console.log(m.countVisibleCuda(process.env.CUDA_VISIBLE_DEVICES, require('node:fs').readdirSync('/dev').filter(f => /^nvidia[0-9]+\$/.test(f)).length)))")
if [ "$cuda" = 1 ] && [ "$gpus" -ge 1 ]; then
  lists="cuda:0"
  [ "$gpus" -ge 2 ] && lists="$lists;cuda:0,cuda:1"
  lists="$lists;webgpu"
else
  echo "bench/gpu.sh: CUDA provider installed: $cuda, GPUs visible: $gpus; measuring webgpu only" >&2
  lists="webgpu"
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >&2 || true
# GPUs take bigger batches than the 2-core default; rows/clients stay flags.
node bin/pairpref.mjs bench --devices "$lists" --rows 1500 --clients 16 --webgpu-rows 200 --json "$@" > "$out/bench-gpu.json"
node --import tsx -e "import('./bench/report.ts').then(m => console.log(m.formatReport(JSON.parse(require('node:fs').readFileSync('$out/bench-gpu.json','utf8')))))" | tee "$out/bench-gpu.txt"
