"""The guide's `python imagenet_torch_preprocess.py <model_type> <src_dir> <save_dir>`.

model_type is one of the reference's presets: mnasnet, resnet, inceptionv3, inceptionv4.
"""
import sys

import _path  # noqa: F401
from clsbench.cli.commands import main
from clsbench.model.table import PRESETS

if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit("usage: python imagenet_torch_preprocess.py [model_type] [src_path] [save_path]")
    if sys.argv[1] not in PRESETS:
        sys.exit("model type: " + " ".join(PRESETS))
    sys.exit(main(["preprocess", "--model", sys.argv[1], sys.argv[2], sys.argv[3]]))
