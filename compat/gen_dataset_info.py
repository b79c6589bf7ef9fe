"""The guide's `python gen_dataset_info.py bin <dir> <out.info> <W> <H>` / `... jpg <dir> <out.info>`."""
import sys

import _path  # noqa: F401
from clsbench.cli.commands import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] not in ("bin", "jpg") or len(args) != (5 if args[0] == "bin" else 3):
        sys.exit("usage: python gen_dataset_info.py bin <dir> <out.info> <width> <height>\n"
                 "       python gen_dataset_info.py jpg <dir> <out.info>")
    sys.exit(main(["info", *args]))
