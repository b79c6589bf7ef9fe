"""clsbench: ImageNet classifier from PyTorch weights to measured numbers on real backends.

Importing clsbench switches telemetry off before any runtime can be imported: a
benchmarking tool must not phone home.
- onnxruntime >= 1.32 writes a device id under ~/.cache and looks up a vendor events host
  from long-lived Linux processes: ORT_DISABLE_TELEMETRY=1 is its switch.
- `openvino-telemetry` (pulled in by NNCF) counts a missing consent file as consent: merely
  importing openvino then writes a client id under ~/intel, and NNCF and OpenVINO's model
  converter send events. Both fall back to their own no-op stubs when the package cannot be
  imported, so clsbench makes it unimportable in its own process (sys.modules entry None).
"""
import os as _os
import sys as _sys

_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
_os.environ.setdefault("NNCF_CI", "1")  # NNCF's own switch, in case the module is already loaded
_sys.modules.setdefault("openvino_telemetry", None)

__version__ = "0.1.0"


class ClsbenchError(Exception):
    """An error a user can act on: the message names the file (and line) at fault."""
