#!/usr/bin/env bash
# The batch sweep on an NVIDIA GPU, prepared to run unattended in under 6 minutes:
#   bash benchmarks/gpu.sh [WEIGHTS.pth]
# Needs a venv with clsbench and a CUDA build of torch (pyproject's export extra pins one);
# the GPU machine reaches no network, so carry .venv there. Prints the table and writes
# perf-gpu/perf.{md,json,png}. Backend: PyTorch fp16, channels-last, one CUDA graph per
# batch size (src/clsbench/backends/cuda.py); compute-only figures sync the device.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WEIGHTS=${1:-src/clsbench/data/proxy_mnasnet1_0.pth}
export ORT_DISABLE_TELEMETRY=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
"$PY" - <<'PYEOF'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0))
PYEOF
mkdir -p perf-gpu
"$PY" -m clsbench.cli export --weights "$WEIGHTS" --output perf-gpu/model.onnx >/dev/null
timeout 330 "$PY" -m clsbench.cli perf -q --model perf-gpu/model.onnx --weights "$WEIGHTS" \
  --configs cuda:fp16,cuda:fp32 --batches 1,4,8,16,32,64,128,256 \
  --duration 3 --iterations 20 --warmup 10 --output perf-gpu
