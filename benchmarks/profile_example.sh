#!/usr/bin/env bash
# docs/profile.md's example, end to end: the trained proxy (MnasNet1.0's architecture, a
# 16-class head trained on clsbench's procedural task; no official weights offline) exported
# to ONNX, compiled to ONNX Runtime static int8 (QDQ) on 32 of its own task's images, each
# profiled at batch 1 and 8, and fp32 against int8 compared node by node.
#   bash benchmarks/profile_example.sh [WORK_DIR]   (from the repository root; ~3 min on 2 cores)
#   EXTRA="--threads 1" bash benchmarks/profile_example.sh ...   (flags added to every profile)
set -euo pipefail
W=${1:-/tmp/clsbench-profile-example}
PY=${PY:-.venv/bin/python}
CB=${CB:-.venv/bin/clsbench}
EXTRA=${EXTRA:-}
mkdir -p "$W"
lscpu | grep -E '^(Model name|CPU\(s\)|Flags)' | sed -E 's/^Flags: .*/Flags (excerpt): '"$(grep -o -w -E 'avx2|avx512f|avx512_vnni|avx_vnni|avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"'/'
[ -d "$W/data/val" ] || "$PY" -c "from clsbench.data.proxy_task import write_images; write_images('$W/data', 64, seed=7)"
[ -f "$W/mnasnet_proxy.onnx" ] || "$CB" export -q --weights src/clsbench/data/proxy_mnasnet1_0.pth --output "$W/mnasnet_proxy.onnx"
uptime
"$CB" compile -q --model "$W/mnasnet_proxy.onnx" --backend onnxruntime --precision int8 --data "$W/data/val" \
    --calib-images 32 --parity-images 32 --output "$W/compiled"
INT8=$(ls "$W"/compiled/*.onnxruntime.int8.onnx)
for bs in 1 8; do
  "$CB" profile --model "$W/mnasnet_proxy.onnx" --batch-size $bs --runs 20 --timed-runs 40 --top 12 $EXTRA --output "$W/fp32-bs$bs"
  "$CB" profile --model "$INT8" --batch-size $bs --runs 20 --timed-runs 40 --top 12 $EXTRA --output "$W/int8-bs$bs"
  "$CB" report "$W/fp32-bs$bs" "$W/int8-bs$bs" --output "$W/compare-bs$bs.html"
done
"$CB" profile --model "$W/mnasnet_proxy.onnx" --backend openvino --batch-size 8 --runs 20 --top 8 $EXTRA --output "$W/openvino-fp32-bs8"
