"""The guide's `python mnasnet_pth2onnx.py <weights.pth> <out.onnx>` (opset 11, dynamic batch)."""
import sys

import _path  # noqa: F401
from clsbench.cli.commands import main

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python mnasnet_pth2onnx.py <weights.pth> <out.onnx>")
    sys.exit(main(["export", "--model", "mnasnet1_0", "--weights", sys.argv[1], "--output", sys.argv[2]]))
