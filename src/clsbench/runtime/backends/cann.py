"""Huawei Ascend NPUs (the guide's own hardware) through ONNX Runtime's CANN execution provider.

Needs `onnxruntime-cann` (pip install 'clsbench[cann]', replacing plain onnxruntime) on a
machine with the CANN toolkit (`source /usr/local/Ascend/ascend-toolkit/set_env.sh`). The
provider options mirror the guide's ATC settings: the device id (the vendor tool's
`-device_id`) and the operator precision mode (`--precision_mode`: fp16 = force_fp16, ATC's
default for a float32 model; fp32 = force_fp32). The offline .om route (`clsbench compile
--backend cann`, through the vendor's `atc`) is in ascend.py. Nothing here could be measured
on the machines this project was built on; the options and the refusals are tested.
"""
from __future__ import annotations

from ... import ClsbenchError
from .onnxruntime import OnnxRuntimeBackend

PRECISION_MODE = {"fp16": "force_fp16", "fp32": "force_fp32"}
EP = "CANNExecutionProvider"


def provider_options(device_id: int, precision: str) -> dict:
    """The CANN execution provider's options for one run (ONNX Runtime's documented keys)."""
    if precision not in PRECISION_MODE:
        raise ClsbenchError(f"cann backend: precision {precision!r} not in {', '.join(PRECISION_MODE)}")
    return {"device_id": str(device_id), "precision_mode": PRECISION_MODE[precision],
            "enable_cann_graph": "1", "arena_extend_strategy": "kNextPowerOfTwo"}


class CannBackend(OnnxRuntimeBackend):
    name = "cann"

    def providers(self, ort) -> list:
        if EP not in ort.get_available_providers():
            raise ClsbenchError(
                f"cann backend: this ONNX Runtime ({ort.__version__}) has no {EP}; on an Ascend machine "
                f"install onnxruntime-cann (pip install 'clsbench[cann]') and source "
                f"/usr/local/Ascend/ascend-toolkit/set_env.sh")
        return [(EP, provider_options(self.device_id, self.precision)), "CPUExecutionProvider"]

    def describe(self) -> dict:
        d = super().describe()
        d.update(provider=EP, device=f"npu:{self.device_id}",
                 provider_options=provider_options(self.device_id, self.precision))
        return d
