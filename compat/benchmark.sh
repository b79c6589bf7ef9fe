#!/usr/bin/env bash
# The guide's ./benchmark.sh (§5.2) on this machine: the batch-1 run on device 0 and the
# batch-16 run on device 1, as the model zoo's eval_acc_perf.sh does, through ONNX Runtime
# on the CPU. One dynamic-batch ONNX model replaces the per-batch .om files.
#   MODEL=mnasnet1.0.onnx INFO=mnasnet_prep_bin.info BATCHES="1 16" ./compat/benchmark.sh
set -euo pipefail
MODEL=${MODEL:-mnasnet1.0.onnx}
INFO=${INFO:-mnasnet_prep_bin.info}
BATCHES=${BATCHES:-"1 16"}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if command -v clsbench >/dev/null 2>&1; then
  CLSBENCH=(clsbench)
else
  CLSBENCH=(env "PYTHONPATH=$HERE/../src${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON:-python3}" -m clsbench.cli)
fi
device=0
for bs in $BATCHES; do
  "${CLSBENCH[@]}" infer --model "$MODEL" --info "$INFO" --batch-size "$bs" \
      --device-id "$device" --output result "$@"
  device=$((device + 1))
done
