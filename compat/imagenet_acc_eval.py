"""The guide's `python imagenet_acc_eval.py <result_dir> <val_label.txt> <out_dir> <result.json>`."""
import sys

import _path  # noqa: F401
from clsbench.cli.commands import main

if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: python imagenet_acc_eval.py <result_dir> <val_label.txt> <out_dir> <name.json>")
    sys.exit(main(["eval", *sys.argv[1:]]))
