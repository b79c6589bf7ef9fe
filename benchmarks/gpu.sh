#!/usr/bin/env bash
# MnasNet1.0 on one NVIDIA GPU, prepared to run unattended in under 6 minutes:
#   bash benchmarks/gpu.sh [OUT_DIR] [BUDGET_S] [gpu_bench.py options: --sections, --batches, ...]
# Runs clsbench from source (PYTHONPATH=src) with the machine's own python3 and torch, so
# only the working tree needs to travel to the GPU machine (no .venv; PY=... overrides).
# Prints the machine and the tables, writes OUT_DIR/gpu.{md,json} (default perf-gpu):
# parity of fp32/fp16/bf16 vs PyTorch fp32 on the CPU, compute-only img/s and p50/p99 per
# batch size 1..1024 per precision and mode (eager, CUDA graph, torch.compile), the GPU
# decode path's pixel difference, and JPEG -> result.json end to end with both decode paths
# (benchmarks/gpu_bench.py says how each is measured).
# Without a visible CUDA device it says so and exits 2 before doing anything.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
export PYTHONPATH="$PWD/src:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 ORT_DISABLE_TELEMETRY=1
OUT=${1:-perf-gpu}
BUDGET=${2:-300}
shift $(( $# < 2 ? $# : 2 ))
"$PY" - <<'PYEOF' || exit 2
import sys
try:
    import torch
except ImportError:
    sys.exit("gpu.sh: PyTorch is not installed for this python; nothing was measured")
if not torch.cuda.is_available():
    sys.exit("gpu.sh: no CUDA device is visible to PyTorch (torch.cuda.is_available() is False); "
             "nothing was measured")
print("torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0))
PYEOF
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu --format=csv || true
mkdir -p "$OUT"
timeout $((BUDGET + 50)) "$PY" benchmarks/gpu_bench.py --out "$OUT" --budget-s "$BUDGET" "$@"
