#!/usr/bin/env bash
# The batch sweep on an NVIDIA GPU, prepared to run unattended in under 6 minutes:
#   bash benchmarks/gpu.sh [WEIGHTS.pth] [OUT_DIR]
# Runs clsbench from source (PYTHONPATH=src) with the machine's own python3 and torch, so
# only the working tree needs to travel to the GPU machine; a local .venv is used when
# present. Prints the device and the table, writes OUT_DIR/perf.{md,json,png} (default
# perf-gpu). Backend: PyTorch fp16/fp32, channels-last, one CUDA graph per batch size
# (src/clsbench/backends/cuda.py); compute-only figures sync the device.
# Without a visible CUDA device it says so and exits 2 before doing anything.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export ORT_DISABLE_TELEMETRY=1
WEIGHTS=${1:-src/clsbench/data/proxy_mnasnet1_0.pth}
OUT=${2:-perf-gpu}
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
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
mkdir -p "$OUT"
"$PY" -m clsbench.cli export --weights "$WEIGHTS" --output "$OUT/model.onnx" >/dev/null
timeout 330 "$PY" -m clsbench.cli perf -q --model "$OUT/model.onnx" --weights "$WEIGHTS" \
  --configs cuda:fp16,cuda:fp32 --batches 1,4,8,16,32,64,128,256 \
  --duration 3 --iterations 20 --warmup 10 --output "$OUT"
