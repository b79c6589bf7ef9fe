"""The `clsbench` command: a thin argparse layer over the library."""
from __future__ import annotations

import argparse
import os
import sys

from .. import ClsbenchError, __version__
from ..runtime.outputs import OUTFMTS
from ..plan import DEFAULT_MODEL
from . import profile_cmd, tune_cmd
from .args import _add_accept_preset, _int, _real, command_line, set_argv

OUTFMT_HELP = ("txt: one line of floats per image (the guide's eval reads it); bin: raw float32; npy; "
               "parquet: one dataset of (image, label, top5, logits) rows in result/outputs_device<N>.parquet/ "
               "for runs too big for a file per image (`clsbench eval` reads it, the guide's eval does not)")



def _add_preprocessing_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("preprocessing flags (each applied on top of the model's own preset, field by field)")
    g.add_argument("--resize", type=_int(1), help="shorter side after resizing")
    g.add_argument("--crop", type=_int(1), help="square centre crop")
    g.add_argument("--interpolation", choices=("bilinear", "bicubic", "nearest"))
    g.add_argument("--mean", type=_floats3, help="three comma-separated values, e.g. 0.485,0.456,0.406")
    g.add_argument("--std", type=_floats3, help="three comma-separated values")
    g.add_argument("--exif-transpose", action="store_true",
                   help="apply EXIF orientation (off by default: the reference and torchvision ignore it)")


def _floats3(text: str) -> tuple:
    try:
        v = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not three comma-separated numbers") from None
    if len(v) != 3:
        raise argparse.ArgumentTypeError(f"{text!r}: three values needed, got {len(v)}")
    import math

    if not all(math.isfinite(x) for x in v):
        raise argparse.ArgumentTypeError(f"{text!r}: three finite numbers needed")
    return v


def _overrides(a) -> dict:
    """The preprocessing flags as given (None: not given), for plan.resolve_preset."""
    from ..plan import PRESET_FIELDS

    return {f: getattr(a, f, None) for f in PRESET_FIELDS}


def _preprocessing(a, base, base_source: str):
    """`base` (a preset, or None: the file records none) with the flags given applied on top."""
    from ..plan import resolve_preset

    return resolve_preset(base, base_source, _overrides(a)).pp


def _add_ray_timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray-timeout", type=_real(0, strict=True),
                   help="seconds to reach --ray-address before giving up (default 30; Ray itself retries forever)")


def _pairs_help() -> str:
    from ..runtime.backends import TARGETS

    by = {}
    for b, p in TARGETS:
        by.setdefault(b, []).append(p)
    return "; ".join(f"{b}: {', '.join(ps)}" for b, ps in by.items())


def _add_percentiles(p: argparse.ArgumentParser, more: str) -> None:
    from ..runtime.timing import DEFAULT_PERCENTILES

    default = ",".join(f"{x:g}" for x in DEFAULT_PERCENTILES)
    p.add_argument("--percentiles", default=default,
                   help=f"latency percentiles per batch to report, decimals accepted (default {default}){more}")


def _add_infer_args(p: argparse.ArgumentParser, backend_default: str | None) -> None:
    from ..runtime.backends import available

    p.add_argument("--backend", default=backend_default, choices=available(),
                   help="inference runtime" + (f" (default {backend_default})" if backend_default else
                                               " (default: what the model file is: IR → openvino, ONNX → the backend it "
                                               "was compiled for, else onnxruntime; a .pth → onnxruntime through an "
                                               "export, which run does and infer/loadgen/perf ask you to: give "
                                               "--backend torch to run the weights eagerly)"))
    p.add_argument("--precision", default=None,
                   help="precision, per backend: " + _pairs_help() + ". Default: the one the model file "
                        "records (a `clsbench compile` artifact knows its own), else the backend's first")
    p.add_argument("--threads", type=_int(1), default=None,
                   help="runtime threads (default: all CPUs this process may use)")
    p.add_argument("--device-id", type=_int(0),
                   help="names the output folder dumpOutput_device<ID> and perf file, as the vendor tool does")
    p.add_argument("--openvino-hint", choices=("latency", "throughput"),
                   help="openvino backend: latency = one synchronous request on all threads (default); "
                        "throughput = OpenVINO's THROUGHPUT hint, several streams and requests in flight "
                        "(outputs identical in content; the stream count is recorded)")


class _Parser(argparse.ArgumentParser):
    """A value the parser refuses (`--batch-size 0`, `--duration nan`, a bad choice) is one
    line, as every bad input is; a missing or misspelled option also shows the usage."""

    def error(self, message: str):
        if message.startswith("argument "):
            self.exit(2, f"{self.prog}: error: {message}\n")
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(
        prog="clsbench",
        description="ImageNet classifier from PyTorch weights to measured numbers: export, "
                    "preprocess, dataset info, offline inference, accuracy, throughput. Files "
                    "are compatible with the Ascend model-zoo MnasNet1.0 guide's scripts.",
        epilog="Start with `clsbench demo`, or `clsbench run --weights W.pth --data IMAGENET_DIR`.")
    ap.add_argument("--version", action="version", version=f"clsbench {__version__}")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def command(name, **kw):
        return sub.add_parser(name, parents=[common], **kw)

    _parser_export(command)
    _parser_preprocess(command)
    _parser_info(command)
    _parser_infer(command)
    _parser_eval(command)
    _parser_compile(command)
    _parser_perf(command)
    _parser_zoo(command)
    _parser_models(command)
    _parser_run(command)
    _parser_demo(command)
    _parser_report(command)
    _parser_loadgen(command)
    profile_cmd.add_parser(command)
    tune_cmd.add_parser(command)
    _apply_defaults(sub)
    return ap


def _apply_defaults(sub) -> None:
    """Every option's default from THE table (clsbench.defaults), said in its help where
    the help does not say it already: the parser writes none of its own."""
    from ..defaults import default, has_default

    for cmd, p in sub.choices.items():
        for a in p._actions:
            if a.dest and has_default(cmd, a.dest) and a.default is None:
                a.default = default(cmd, a.dest)
                if a.default is not None and a.help and "default" not in a.help:
                    a.help += f" (default {a.default})"


def _parser_export(command) -> None:
    p = command("export", help="pth → ONNX with a parity check against PyTorch (guide §3.1)",
                description="Export torchvision weights to ONNX (input 'image', output "
                            "'class', dynamic batch), run onnx.checker, and compare ONNX "
                            "Runtime with PyTorch eager; the parity record is written "
                            "beside the model as <name>.parity.json. Needs clsbench[export].")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"torchvision classifier NAME[:WEIGHTS_TAG] (default {DEFAULT_MODEL}; `clsbench models` lists all)")
    p.add_argument("--stand-in-weights", action="store_true",
                   help="the weights are stand-ins (realistic random): recorded in the ONNX, so no run judges "
                        "their accuracy")
    p.add_argument("--weights", required=True, help="state-dict .pth (loaded with weights_only=True)")
    p.add_argument("--output", required=True, help="ONNX file to write")
    p.add_argument("--opset", type=_int(7), default=None,
                   help="ONNX opset (default: 11, as the guide, where the architecture exports at 11; "
                        "else the lowest that exports it: 13, 14, 17, 18)")
    p.add_argument("--parity-images", help="folder of real photos for the parity check "
                                          "(default: synthetic normal input)")
    p.add_argument("--parity-batch", type=_int(1), help="images in the parity batch")
    p.add_argument("--no-check", action="store_true", help="write the model even if parity fails")


def _parser_preprocess(command) -> None:
    p = command("preprocess", help="images → float32 CHW .bin files (guide §4.2)",
                description="Exact torchvision-preset preprocessing (PIL, resize shorter "
                            "side, centre crop, ImageNet mean/std) to <stem>.bin, byte-"
                            "identical to the guide's imagenet_torch_preprocess.py. Flat "
                            "or class-folder input; resumable; uses every core.")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="the guide's preset (mnasnet, resnet, inceptionv3, inceptionv4) or any model "
                        "NAME[:WEIGHTS_TAG], whose weights.transforms() it reproduces")
    p.add_argument("src", metavar="SRC_DIR")
    p.add_argument("dst", metavar="DST_DIR")
    p.add_argument("--workers", type=_int(1), default=None,
                   help="processes (default: one per CPU this process may use, at most one per 256 images; "
                        "fewer images are done in this process)")
    p.add_argument("--overwrite", action="store_true", help="regenerate files already present")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable image instead of skipping it")
    p.add_argument("--format", choices=("bin", "store"),
                   help="bin: the guide's float32 .bin per image (602,112 B); store: one memory-mapped "
                        "uint8 file + index (150,528 B/image), normalized per batch at inference")
    _add_preprocessing_args(p)


def _parser_info(command) -> None:
    p = command("info", help="write a dataset .info file (guide §4.3)",
                description="One '<idx> <path> <width> <height>' line per file, sorted, idx from 0.")
    isub = p.add_subparsers(dest="mode", required=True, metavar="MODE")
    b = isub.add_parser("bin", help="for .bin tensors: width/height from the command line")
    b.add_argument("dir", metavar="DIR")
    b.add_argument("out", metavar="OUT.info")
    b.add_argument("width", type=_int(1), metavar="W")
    b.add_argument("height", type=_int(1), metavar="H")
    j = isub.add_parser("jpg", help="for images: width/height read from each file")
    j.add_argument("dir", metavar="DIR")
    j.add_argument("out", metavar="OUT.info")


def _parser_infer(command) -> None:
    p = command("infer", help="offline inference over an .info file, or pure inference (guide §5)",
                description="Batched inference over --info (.bin files) or --store; writes result/dumpOutput_device<ID>/<stem>_1.txt "
                            "per input and result/perf_vision_batchsize_<N>_device_<ID>.txt "
                            "(+ .json with the environment). The last partial batch is padded; "
                            "padding outputs are not written. Rerunning resumes. With --loop N "
                            "and no --info: random input, compute-only throughput and latency.")
    p.add_argument("--model", required=True,
                   help="model: .onnx (onnxruntime, openvino), .xml IR (openvino), .pth (torch, cuda), "
                        "or a `clsbench compile` artifact (its backend and precision are read from it)")
    p.add_argument("--info", help="dataset .info file of .bin tensors")
    p.add_argument("--store", help="compact store made by `clsbench preprocess --format store` (instead of --info)")
    p.add_argument("--batch-size", type=_int(1))
    p.add_argument("--output", help="result root (default ./result)")
    p.add_argument("--outfmt", choices=OUTFMTS, help=OUTFMT_HELP)
    p.add_argument("--loop", type=_int(1), help="pure-inference mode: timed runs on random input")
    p.add_argument("--warmup", type=_int(0), help="untimed runs before --loop timing")
    _add_percentiles(p, "; each batch's latency is also saved, one per line, in a .csv beside the perf file")
    p.add_argument("--overwrite", action="store_true", help="replace outputs of another run in the output folder")
    p.add_argument("--arch", default=None,
                   help=f"NAME[:TAG] of a .pth's architecture, run with --backend torch/cuda (default {DEFAULT_MODEL}); "
                        "for an ONNX/IR it must agree with what the file records")
    _add_accept_preset(p)
    _add_infer_args(p, None)


def _parser_eval(command) -> None:
    p = command("eval", help="Top-1..5 accuracy → the guide's result.json (guide §6.1)",
                description="Reads outputs written by `clsbench infer` or the vendor tools "
                            "(.txt, .bin, .npy), or a --outfmt parquet dataset, writes the guide's exact JSON, prints a "
                            "table against the model's reference accuracy.")
    p.add_argument("result_dir", metavar="RESULT_DIR")
    p.add_argument("labels", metavar="val_label.txt")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("name", metavar="result.json")
    p.add_argument("--model", default=None,
                   help="NAME[:WEIGHTS_TAG] whose reference accuracy to compare with, for outputs that record no "
                        "model (the vendor tool's); outputs clsbench wrote are judged by the model and weights "
                        "recorded beside them, and a --model that contradicts that record is refused")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when Top-1 is more than --tolerance points below the reference")
    p.add_argument("--tolerance", type=_real(0), help="allowed Top-1 drop, points (default 1, as the guide)")
    p.add_argument("--strict", action="store_true", help="fail on outputs without labels and labels without outputs")
    _add_scoring_args(p)


def _add_scoring_args(p) -> None:
    p.add_argument("--real-labels", action="store_true",
                   help="also ImageNet-ReaL Top-1/Top-5 (Beyer et al. 2020; labels shipped, from timm): images "
                        "keyed by ImageNet's validation names, those without a ReaL label left out and counted")
    p.add_argument("--label-set", choices=("imagenet-a", "imagenet-r"), default=None,
                   help="score 1000-class outputs on the 200 classes of ImageNet-A or ImageNet-R, as timm does "
                        "(labels: ImageNet-1k indices, e.g. from val/<wnid>/ folders)")


def _parser_compile(command) -> None:
    p = command("compile", help="ONNX → the artifact each backend runs best, per precision (guide §3.2)",
                description="onnxruntime fp32 (offline-optimized ONNX) / int8 (static QDQ, opset 13); "
                            "openvino fp32 / bf16 (IR) / int8 (NNCF); --max-drop: accuracy-controlled int8 for both; "
                            "cann fp16 / fp32: the guide's .om per batch size through the vendor's atc. "
                            "int8 calibrates on the first "
                            "--calib-images images of --data; every artifact gets a parity record "
                            "(top-1 agreement, top-5 overlap, relative logit error vs fp32) on the "
                            "held-out images after them: <artifact>.compile.json.")
    p.add_argument("--model", required=True, help="exported ONNX model")
    p.add_argument("--backend", required=True, choices=("onnxruntime", "openvino", "cann"),
                   help="cann: the guide's .om files through the vendor's atc (Ascend NPUs), one per --batches")
    p.add_argument("--precision", default=None,
                   help="onnxruntime: fp32, int8; openvino: fp32, bf16, int8; cann: fp16 (default), fp32")
    p.add_argument("--max-drop", type=_real(0), default=None,
                   help="int8: keep the operations that cost accuracy in floating point until Top-1 "
                        "drops at most this many points on labelled tuning images (openvino: NNCF's accuracy "
                        "control; onnxruntime: the most sensitive Conv/Gemm/MatMul nodes kept out of QDQ; "
                        "needs --labels); the record then reports the drop on held-out images after them")
    p.add_argument("--tune-images", type=_int(1),
                   help="with --max-drop: labelled images after the calibration ones that steer it (default 200)")
    p.add_argument("--uint8-input", action="store_true",
                   help="fold the normalization into the artifact (fp32, bf16): it takes the compact store's "
                        "uint8 crops (`infer --store`), checked against the .bin path; written as <...>.u8.onnx/.xml")
    p.add_argument("--batches", help="cann: batch sizes, one .om each (the guide's)")
    p.add_argument("--soc-version",
                   help="cann: atc --soc_version (the guide measured an Ascend 710; e.g. Ascend310)")
    p.add_argument("--data", help="folder of images (calibration and held-out parity)")
    p.add_argument("--calib-images", type=_int(1), default=None,
                   help="int8 calibration images (default 300; on a smaller folder, what it holds less the "
                        "held-out parity images, at least 8, said and recorded)")
    p.add_argument("--parity-images", type=_int(1))
    p.add_argument("--preset", default=None,
                   help="preprocessing of the images: a guide preset or NAME[:TAG] (default: what the "
                        "ONNX records, else the default model's, with a warning)")
    p.add_argument("--labels", help="val_label.txt for --data: the record then holds fp32 and compiled "
                                    "Top-1 on the held-out images, and their difference")
    _add_preprocessing_args(p)
    p.add_argument("--output", help="output folder (default ./compiled)")
    p.add_argument("--overwrite", action="store_true", help="recompile even if a matching artifact exists")


def _parser_perf(command) -> None:
    p = command("perf", help="batch sweep × backends × precisions → the guide's §7 table, JSON, PNG",
                description="Throughput in images/s (compute-only and end to end) and latency per batch "
                            "(min, mean, --percentiles, max) per batch size for each backend:precision. Each "
                            "cell's images/s is the median of --repeats consecutive windows of its timed runs; "
                            "a spread over 10 % is marked UNSTABLE. Writes perf.md (laid out like the guide's "
                            "§7.3 with its Ascend/T4 figures for reference), perf.json (with the environment and "
                            "the command), perf.png, report.html (self-contained, opens offline) and each cell's "
                            "raw latencies in latencies/*.csv. With --data, real-data figures are reported "
                            "beside random-input ones (the guide warns random data can mislead). A rerun resumes.")
    p.add_argument("--model", required=True, help="exported ONNX model (fp32)")
    p.add_argument("--weights", help=".pth for the torch backend")
    p.add_argument("--compiled", help="folder of `clsbench compile` artifacts (int8, IR)")
    p.add_argument("--configs",
                   help="comma-separated backend:precision, e.g. onnxruntime:fp32,onnxruntime:int8,"
                        "openvino:fp32,openvino:bf16,openvino:int8,torch:fp32")
    p.add_argument("--batches")
    _add_cell_timing(p)
    p.add_argument("--repeats", type=_int(1),
                   help="windows the timed runs are split into; images/s is their median (default 5)")
    _add_percentiles(p, "")
    p.add_argument("--threads", type=_int(1), default=None)
    p.add_argument("--data", help="folder of preprocessed .bin files for the real-data figures")
    p.add_argument("--output", help="output folder (default ./perf)")
    p.add_argument("--openvino-hint", choices=("latency", "throughput"),
                   help="openvino configs: latency = one synchronous request (default); throughput = "
                        "several streams and requests in flight, timed over the whole loop")
    p.add_argument("--engine", choices=("local", "ray"),
                   help="ray: each cell a Ray task reserving --threads CPUs (default a whole node's), so cells "
                        "run on every node at once and never share one node's cores; merged into one table")
    p.add_argument("--ray-address", default=None, help="with --engine ray: join this cluster (default: start one)")
    _add_ray_timeout(p)
    _add_accept_preset(p)
    p.add_argument("--profile", action="store_true",
                   help="also a per-operator profile of each cell (random input), run after the timed runs, in "
                        "OUTPUT/profiles/<backend>-<precision>-bs<N>/ (see `clsbench profile`)")


def _add_cell_timing(p) -> None:
    """How one perf or zoo cell is timed (one definition for both sweeps)."""
    p.add_argument("--duration", type=_real(0),
                   help="minimum seconds per cell (0: --iterations alone decide)")
    p.add_argument("--iterations", type=_int(1), help="minimum runs per cell")
    p.add_argument("--warmup", type=_int(0))


def _parser_zoo(command) -> None:
    p = command("zoo", help="many models × configs in one resumable run → CSV, Markdown, accuracy/speed plot",
                description="For each model: its weights (from --weights-dir, by torchvision's file name or "
                            "NAME.pth), the export with its parity check, then the perf sweep of --configs at "
                            "--batches. Writes zoo.csv (timm's benchmark columns plus backend, precision, "
                            "reference accuracy, environment), zoo.md, zoo.json and zoo.png (measured img/s "
                            "against reference Top-1: this machine's accuracy/speed frontier). A rerun "
                            "measures only what is missing.")
    p.add_argument("--models", required=True, help="comma-separated NAME[:TAG] (see `clsbench models`), or all")
    p.add_argument("--configs", help="comma-separated backend:precision")
    p.add_argument("--batches")
    p.add_argument("--weights-dir", help="folder of .pth files (torchvision's names, or NAME.pth)")
    p.add_argument("--stand-in-weights", action="store_true",
                   help="models without weights get realistic random ones: right for speed, not for accuracy "
                        "(marked in every row)")
    _add_cell_timing(p)
    p.add_argument("--threads", type=_int(1), default=None)
    p.add_argument("--output", help="output folder (default ./zoo)")


def _parser_models(command) -> None:
    p = command("models", help="the model table: every torchvision classifier, its weights, preset, accuracy",
                description="Every torchvision classification architecture and weights entry: the preset "
                            "of its weights.transforms(), reference Top-1/Top-5, GFLOPS, parameters. "
                            "Any NAME[:TAG] works with --model in export, preprocess, run, compile, perf.")
    p.add_argument("filter", nargs="?",
                   help="show only NAME:TAG with a word starting with this ('vit', 'b0', 'v2'; words split at _ and :)")
    p.add_argument("--json", action="store_true", help="machine-readable rows")


def _parser_run(command) -> None:
    p = command("run", help="everything above in one resumable command",
                description="export → preprocess → info → infer → eval on an ImageNet-"
                            "layout directory (val/ + val_label.txt, or val/<class>/ folders), "
                            "ending with an accuracy table, throughput, and where every file is.")
    p.add_argument("--data", required=True, help="ImageNet-layout directory")
    p.add_argument("--work-dir", help="where every output goes (default runs/latest)")
    _add_run_args(p, True)


def _parser_demo(command) -> None:
    p = command("demo", help="build a small labelled dataset from shipped photos and `run` on it",
                description="Makes a few hundred ImageNet-layout JPEGs from scikit-image's "
                            "sample photographs and runs the whole flow. Without --weights it "
                            "uses realistic random weights: the accuracy is then meaningless.")
    p.add_argument("--work-dir")
    p.add_argument("--per-class", type=_int(1), help="images per source photo (5 photos)")
    p.add_argument("--proxy-images", type=_int(1),
                   help="images of the trained proxy's own task (at least 64: the first 32 calibrate int8); "
                        "more narrow the margin its Top-1 is judged with")
    _add_run_args(p, False)


def _parser_report(command) -> None:
    p = command("report", help="report.html from a run's or perf sweep's records; compare several runs",
                description="One folder: (re)writes FOLDER/report.html from its records (summary.json of "
                            "`clsbench run`, or perf.json of `clsbench perf`). Several folders of the same "
                            "kind: one comparison page, the first folder the baseline: images/s and accuracy "
                            "side by side with their differences, regressions marked, and what differs in "
                            "the environment (versions, CPU, revision). The pages are self-contained: they "
                            "open offline and load nothing.")
    p.add_argument("folders", nargs="+", metavar="RUN_DIR")
    p.add_argument("--output", help="the comparison page (default ./compare.html; "
                                                            "compare.json is written beside it)")
    p.add_argument("--threshold", type=_real(0),
                   help="a throughput lower than the baseline's by more than this %% is a regression (default 5)")
    p.add_argument("--fail-on-regression", action="store_true", help="exit 1 when any figure regressed (for CI)")


def _parser_loadgen(command) -> None:
    p = command("loadgen", help="MLPerf scenarios (Offline, Server, SingleStream, MultiStream) through the real LoadGen",
                description="Runs MLPerf Inference's LoadGen (pip install 'clsbench[loadgen]') against the model on "
                            "any backend and precision `run` accepts. LoadGen's own logs land in --output untouched; "
                            "clsbench reads them into loadgen.json, a table and report.html. VALID means LoadGen "
                            "found every constraint of the scenario met (duration, query count, the latency bound "
                            "at its percentile with early stopping).")
    p.add_argument("--model", required=True, help="a model file (ONNX, IR, a compiled artifact) or a .pth with "
                                                  "--backend torch/cuda")
    p.add_argument("--data", required=True, help="an image folder (preprocessed into memory with the model's preset "
                                                 "first), a compact store, or a folder of the guide's .bin tensors")
    p.add_argument("--scenario", choices=("offline", "server", "single-stream", "multi-stream"))
    p.add_argument("--mode", choices=("performance", "accuracy", "both"))
    p.add_argument("--arch", default=None, help="NAME[:TAG] of a .pth's architecture (as run's --model)")
    p.add_argument("--batch-size", type=_int(1), help="offline/server: the largest batch (default 8)")
    p.add_argument("--samples-per-query", type=_int(1), help="multi-stream: samples per query (default 8)")
    p.add_argument("--target-qps", type=_real(0, strict=True), default=None,
                   help="server: the Poisson arrival rate (default: half the measured batch throughput); "
                        "offline: the expected QPS LoadGen sizes its query by (default: 1.5x the measured rate)")
    p.add_argument("--latency-bound-ms", type=_real(0, strict=True), default=None, help="server: the p99 bound (default 15, MLPerf's)")
    p.add_argument("--max-wait-ms", type=_real(0),
                   help="server: how long the batcher waits for a batch to fill after its first sample "
                        "(default 0: it takes what arrived while the last batch ran, as Triton does by default)")
    p.add_argument("--duration", type=_real(0, strict=True), help="minimum seconds of each LoadGen run (default 5)")
    p.add_argument("--official-durations", action="store_true",
                   help="MLPerf's own minimums: 600 s and the scenario's query count (hours on a CPU)")
    p.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                   help="a LoadGen user.conf key (min_duration, min_query_count, performance_sample_count_override, "
                        "target_qps, target_latency, target_latency_percentile, samples_per_query, ...); repeatable")
    p.add_argument("--find-peak", action="store_true",
                   help="server: the highest target QPS LoadGen judges VALID at p99 <= --latency-bound-ms "
                        "(doubling, then bisecting; each try a run of --duration)")
    p.add_argument("--peak-steps", type=_int(0), help="bisection steps of --find-peak (default 6)")
    p.add_argument("--workers", type=_int(1),
                   help="backend instances, each with its own session and thread, all fed by the one batcher's "
                        "queue (MLPerf's CPU instances); --threads is per worker (without it, each worker gets "
                        "the usable CPUs divided by the workers, at least 1)")
    p.add_argument("--labels", default=None, help="accuracy mode: label file (default: the data's val_label.txt)")
    p.add_argument("--output", help="output folder (default ./loadgen)")
    p.add_argument("--cuda-mode", choices=("graph", "eager", "compile"))
    _add_accept_preset(p)
    _add_infer_args(p, None)


def _add_run_args(p, weights_required: bool) -> None:
    """The options run and demo share (one definition for both)."""
    p.add_argument("--weights", required=weights_required,
                   help="the model: a state-dict .pth (exported and checked first), an .onnx or an "
                        "OpenVINO IR .xml (used as is); recognised by content")
    p.add_argument("--model", default=None,
                   help=f"NAME[:WEIGHTS_TAG] (default: what an ONNX/IR --weights records, else {DEFAULT_MODEL} "
                        "for a .pth; `clsbench models` lists all)")
    p.add_argument("--stand-in-weights", action="store_true",
                   help="the weights are stand-ins (realistic random): their accuracy is reported, never judged")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (model, provenance, preset with each field's source, target, data "
                        "fingerprint) and stop before any slow step")
    p.add_argument("--json", action="store_true", help="with --dry-run: the plan as JSON (the schema every record's "
                                                      "\"plan\" has)")
    p.add_argument("--batch-size", type=_int(1))
    p.add_argument("--outfmt", choices=OUTFMTS, help=OUTFMT_HELP)
    p.add_argument("--workers", type=_int(1), default=None,
                   help="preprocessing processes (default: one per usable CPU, at most one per 256 images); "
                        "with --stream: pipelines, one runtime thread each (default: one per usable CPU)")
    p.add_argument("--check", action="store_true", help="exit 1 when Top-1 misses the reference by more than --tolerance")
    p.add_argument("--tolerance", type=_real(0))
    p.add_argument("--overwrite", action="store_true", help="redo every step from scratch")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first unreadable image or unmatched label instead of skipping/reporting it")
    p.add_argument("--stream", action="store_true",
                   help="one decode..infer..write pipeline per CPU, straight from the JPEGs: no .bin files, "
                        "memory flat in the number of images")
    p.add_argument("--decode", choices=("cpu", "gpu"),
                   help="with --stream and --backend cuda: cpu = the exact path (PIL) on all CPUs "
                        "feeding the GPU (default); gpu = nvJPEG decode, resize and crop on the GPU, "
                        "faster but not pixel-exact (its difference is in docs/performance.md)")
    p.add_argument("--cuda-mode", choices=("graph", "eager", "compile"),
                   help="cuda backend: one CUDA graph per batch size (default), eager, or "
                        "torch.compile (inductor) under the graph (compile time is reported)")
    p.add_argument("--calib-data", help="images to calibrate an int8 model on, apart from the evaluation "
                                        "set (default: the first --calib-images images of the data, "
                                        "and the accuracy is also reported without them)")
    p.add_argument("--calib-images", type=_int(1), default=None,
                   help="calibration images for int8 (default 300; on a smaller folder, what it holds less the "
                        "held-out parity images, at least 8, said and recorded)")
    _add_percentiles(p, "")
    p.add_argument("--engine", choices=("local", "ray"),
                   help="local: this machine's cores (default); ray: Ray Data — decode tasks feeding a pool "
                        "of inference actors (--workers actors, default one per CPU but one, each reserving one CPU and "
                        "running --threads threads, default 1), same outputs and "
                        "result.json; implies --stream; needs pip install 'clsbench[ray]'")
    _add_ray_timeout(p)
    _add_scoring_args(p)
    p.add_argument("--ray-address", default=None,
                   help="with --engine ray: join this cluster (e.g. 10.0.0.1:6379); without it a local "
                        "instance is started. Images and model must be at the same path on every node")
    _add_preprocessing_args(p)
    _add_infer_args(p, None)



# What to do about a folder holding another run's results, in the flags of each command.
ADVICE = {
    "infer": "use another --output or --device-id, or --overwrite to replace them",
    "run": "use another --work-dir, or --overwrite to redo every step",
    "demo": "use another --work-dir, or --overwrite to redo every step",
    "preprocess": "use another DST_DIR, or --overwrite to regenerate the files",
}


def main(argv: list[str] | None = None) -> int:
    import warnings

    set_argv(argv)
    args = _parse(build_parser(), sys.argv[1:] if argv is None else list(argv))
    from rich.markup import escape as rich_escape

    from ..ui import console, install_log_handler, printable

    # clsbench itself issues no Python warnings; the libraries' (torch FutureWarnings,
    # export tracer notes) are noise to a user, and some give unsafe advice
    warnings.simplefilter("ignore")
    install_log_handler()
    try:
        return COMMANDS[args.cmd](args)
    except ClsbenchError as e:
        advice = ADVICE.get(args.cmd) if getattr(e, "advice", None) == "conflict" else None
        console.print(f"[bold red]error:[/] {rich_escape(printable(str(e)))}" + (f"; {advice}" if advice else ""),
                      soft_wrap=True)
        return 2
    except OSError as e:  # unwritable folder, full disk...: name the file, no traceback
        where = e.filename or ""
        console.print(f"[bold red]error:[/] {rich_escape(printable(str(where)))}: "
                      f"{rich_escape(printable(e.strerror or str(e)))}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        from ..ui import current

        done = (f" during {current['task']}: {current['done']} of {current['total']} finished"
                if current["task"] else "")
        console.print(f"\n[bold]interrupted[/]{rich_escape(done)}. Every finished file is kept "
                      f"(each is written atomically); rerun the same command to resume:\n"
                      f"  clsbench {rich_escape(' '.join(argv if argv is not None else sys.argv[1:]))}",
                      soft_wrap=True)
        return 130


def _parse(ap: argparse.ArgumentParser, argv: list[str]):
    """parse_args, but a mistyped command or option is answered by the parser it belongs to
    (the subcommand's usage, not the top-level one) with the nearest spelling."""
    import difflib

    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    first = next((x for x in argv if not x.startswith("-")), None)
    if first is not None and first not in sub.choices:
        near = difflib.get_close_matches(first, sub.choices, n=1)
        ap.error(f"no command {first!r}" + (f"; did you mean {near[0]!r}?" if near else "")
                 + f" (commands: {', '.join(sub.choices)})")
    if first is not None:
        _check_options(sub.choices[first], argv[argv.index(first) + 1:], first)
    args, extra = ap.parse_known_args(argv)
    if extra:
        p = sub.choices[args.cmd]
        options = [o for a in p._actions for o in a.option_strings]
        flag = next((x for x in extra if x.startswith("-")), None)
        near = difflib.get_close_matches(flag.split("=")[0], options, n=1, cutoff=0.6) if flag else []
        p.error(f"unrecognized argument{'s' if len(extra) > 1 else ''}: {' '.join(extra)}"
                + (f"; did you mean {near[0]}?" if near else f"; `clsbench {args.cmd} --help` lists them"))
    return args


def _check_options(p: argparse.ArgumentParser, argv: list[str], cmd: str) -> None:
    """A --flag the command does not have (nor abbreviates) is refused first, before argparse
    would complain of a missing required one that it was a misspelling of."""
    import difflib

    def flags(q):
        for a in q._actions:
            yield from (o for o in a.option_strings if o.startswith("--"))
            for sub in (a.choices.values() if isinstance(a, argparse._SubParsersAction) else ()):
                yield from flags(sub)  # `info bin --width`: the nested command's flags

    options = sorted(set(flags(p)))
    for x in argv:
        if x == "--":
            return
        name = x.split("=")[0]
        if not name.startswith("--") or any(o.startswith(name) for o in options):
            continue
        near = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
        p.error(f"unrecognized argument {x}" + (f"; did you mean {near[0]}?" if near
                                                 else f"; `clsbench {cmd} --help` lists them"))


# ---------------------------------------------------------------- commands



def cmd_export(a) -> int:
    from ..compile.export import export_onnx, parity_path
    from ..ui import out

    rec = export_onnx(a.weights, a.output, model=a.model, opset=a.opset,
                      parity_images=a.parity_images, parity_batch=a.parity_batch, check=not a.no_check,
                      provenance="stand-in" if a.stand_in_weights else None)
    p = rec["parity"]
    out.print(f"wrote {a.output} (opset {rec['opset']}, input 'image', output 'class', dynamic batch)")
    out.print(f"weights: {rec['weights']['verdict']}")
    out.print(f"parity vs PyTorch float64 on {p['inputs']}: rel. L2 error {p['rel_l2_error']:.3e} "
              f"(PyTorch fp32's own: {p['torch_fp32_vs_float64']['rel_l2_error']:.3e}; bound "
              f"{p['bound_rel_l2_error']:.3e}), top-1 agreement {p['top1_agreement']:.1%} "
              f"→ {'PASS' if rec['passed'] else 'FAIL: ' + '; '.join(p['reasons'])} ({parity_path(a.output)})")
    return 0 if rec["passed"] else 1


def cmd_preprocess(a) -> int:
    from ..model.table import get_preprocessing
    from ..data.preprocess import preprocess_dir
    from ..ui import out

    pp = _preprocessing(a, get_preprocessing(a.model), f"the preset of {a.model}")
    if a.workers is not None and a.workers < 1:
        raise ClsbenchError(f"--workers must be >= 1, got {a.workers}")
    if a.format == "store":
        from ..data.store import build_store

        r = build_store(a.src, a.dst, pp, workers=a.workers, overwrite=a.overwrite, show_progress=not a.quiet)
        if r["failed"] and a.strict:
            raise ClsbenchError(r["failed"][0][1])
        out.print(f"{a.dst}: store of {r['images']} images ({r['bytes_per_image']:,} B each): "
                  f"{r['written']} written, {r['resumed']} already done, {len(r['failed'])} unreadable")
        return 0
    rep = preprocess_dir(a.src, a.dst, pp, workers=a.workers, overwrite=a.overwrite,
                         strict=a.strict, show_progress=not a.quiet)
    out.print(f"{a.dst}: {rep.written} written, {rep.resumed} already done, {len(rep.failed)} "
              f"unreadable (skipped, listed above), {len(rep.ignored)} non-image entries ignored "
              f"[{rep.layout} layout; resize {pp.resize}, crop {pp.crop}, mean {pp.mean}, std {pp.std}]")
    return 0


def cmd_info(a) -> int:
    from ..data.folders import gen_bin_info, gen_jpg_info
    from ..ui import out

    if a.mode == "bin":
        entries = gen_bin_info(a.dir, a.out, a.width, a.height)
    else:
        entries = gen_jpg_info(a.dir, a.out)
    out.print(f"{a.out}: {len(entries)} entries")
    return 0


def _hint_option(a) -> dict:
    return {"hint": a.openvino_hint} if getattr(a, "openvino_hint", "latency") != "latency" else {}


def cmd_infer(a) -> int:
    from ..measure.infer import infer_offline, pure_inference
    from ..runtime.timing import parse_percentiles
    from ..report.tables import backend_line, perf_table
    from ..ui import out

    if a.loop is not None:
        if a.info or a.store:
            raise ClsbenchError("--loop (pure inference) excludes --info and --store (offline inference)")
        rec = pure_inference(a.model, a.loop, warmup=a.warmup, batch_size=a.batch_size, backend=a.backend,
                             threads=a.threads, device_id=a.device_id, precision=a.precision, output=a.output,
                             percentiles=parse_percentiles(a.percentiles), backend_options=_hint_option(a),
                             arch=a.arch)
        out.print(f"ave_throughputRate = {rec['ave_throughputRate']:.2f} samples/s, "
                  f"ave_latency = {rec['ave_latency']:.3f} ms")
        out.print(perf_table(rec, f"pure inference, {backend_line(rec)}"))
        return 0
    if not (a.info or a.store):
        raise ClsbenchError("give --info X.info or --store DIR (offline inference), or --loop N (pure inference)")
    rec = infer_offline(a.model, a.info, store=a.store, batch_size=a.batch_size, output=a.output,
                        device_id=a.device_id, outfmt=a.outfmt, backend=a.backend, precision=a.precision,
                        threads=a.threads, overwrite=a.overwrite, show_progress=not a.quiet,
                        backend_options=_hint_option(a), percentiles=parse_percentiles(a.percentiles),
                        arch=a.arch, accept_preset_mismatch=a.accept_preset_mismatch)
    if rec.get("from_earlier_run"):
        out.print(f"nothing left to do: all {rec['total']} outputs exist → {rec['outputs']}")
        out.print(perf_table(rec, f"figures of the earlier run ({rec.get('finished_at', '?')}), {backend_line(rec)}"))
        return 0
    if rec["samples"]:
        out.print(perf_table(rec, f"offline inference, {backend_line(rec)}"))
    out.print(f"{rec['samples']} inferred, {rec['resumed']} already done → {rec['outputs']}")
    return 0


def cmd_eval(a) -> int:
    from ..accuracy.evaluate import check_result_path, evaluate, write_result
    from ..plan import judge_accuracy, outputs_reference
    from ..report.tables import accuracy_table
    from ..ui import out, warn

    from ..accuracy.evaluate import Scoring

    scoring = Scoring(a.label_set, a.real_labels)
    if a.check and a.label_set:
        raise ClsbenchError(f"--check: the reference is ImageNet-1k's validation accuracy, not {a.label_set}'s")
    ref = outputs_reference(a.result_dir, a.model) if not a.label_set else None
    if a.check and ref is None:
        raise ClsbenchError("--check judges against a reference: the outputs record no model; name it with "
                            "--model NAME[:TAG]")
    check_result_path(a.out_dir, a.name, a.result_dir, a.labels)  # before the outputs are read
    acc = evaluate(a.result_dir, a.labels, strict=a.strict, scoring=scoring)
    path = write_result(acc, a.out_dir, a.name)
    if acc.unlabelled_outputs:
        warn(f"{len(acc.unlabelled_outputs)} outputs have no label and are not counted, "
             f"e.g. {acc.unlabelled_outputs[0]}")
    if acc.labels_without_output:
        warn(f"{acc.labels_without_output} labelled images have no output and are not counted")
    title = (f"Accuracy vs {ref.reference_source}" if ref and ref.reference_top1 is not None
             else f"Accuracy (no verdict: {ref.reference_source})" if ref
             else f"Accuracy on {a.label_set} (no reference)" if a.label_set
             else "Accuracy (no reference named: give --model NAME[:TAG] to compare)")
    out.print(accuracy_table(acc, _judged_spec(ref), title))
    out.print(f"wrote {path}")
    if acc.real:
        r = acc.real
        out.print(f"ReaL: Top-1 {r['top1']:.2f} %, Top-5 {r['top5']:.2f} % on {r['images']} images "
                  f"({r['without_real_label']} without a ReaL label left out, {r['not_validation_names']} "
                  f"not named as ImageNet validation images)")
    if not a.check:
        return 0
    from ..data.folders import read_labels

    top_label = max(read_labels(a.labels).values(), default=None)  # off the reference's task: no verdict (as run)
    return _check(a, judge_accuracy(ref, acc.percent(1), acc.images, a.tolerance, top_label))


def _judged_spec(ref):
    """The table's entry with the reference this provenance is judged against (none for stand-ins)."""
    import dataclasses

    if ref is None or ref.spec is None:
        return None
    return dataclasses.replace(ref.spec, top1=ref.reference_top1, top5=ref.reference_top5)


def _check(a, verdict: dict) -> int:
    """--check: exit 1 on a failed accuracy verdict (plan.judge_accuracy)."""
    from ..ui import out

    if not verdict["judged"]:
        raise ClsbenchError(f"--check: no accuracy verdict ({verdict['reference_source']})")
    ref, drop, allowed = verdict["reference_top1"], verdict["top1_drop"], verdict["allowed_drop"]
    how = (f"tolerance {a.tolerance}" if allowed <= a.tolerance else
           f"the 95 % sampling margin {allowed:.2f} of this many images, wider than --tolerance {a.tolerance}")
    if not verdict["within_tolerance"]:
        out.print(f"[bold red]FAIL[/]: Top-1 {ref - drop:.2f} is {drop:.2f} points below the reference {ref} ({how})")
        return 1
    out.print(f"PASS: Top-1 {ref - drop:.2f} within {allowed:.2f} point(s) of the reference {ref} ({how})")
    return 0


def _run_options(a):
    from ..runtime.timing import parse_percentiles
    from ..flows.run import RunOptions

    return RunOptions(model=a.model, **_overrides(a), batch_size=a.batch_size, work_dir=a.work_dir,
                      device_id=a.device_id, threads=a.threads, backend=a.backend, precision=a.precision,
                      outfmt=a.outfmt, workers=a.workers, tolerance=a.tolerance, check=a.check,
                      stand_in_weights=a.stand_in_weights, overwrite=a.overwrite, strict=a.strict,
                      stream=a.stream, calib_data=a.calib_data, calib_images=a.calib_images,
                      decode=a.decode, cuda_mode=a.cuda_mode, openvino_hint=a.openvino_hint,
                      show_progress=not a.quiet, command=command_line(),
                      percentiles=parse_percentiles(a.percentiles), engine=a.engine, ray_address=a.ray_address,
                      ray_timeout=a.ray_timeout, real_labels=a.real_labels, label_set=a.label_set)


def _dry_run(a, weights: str, data: str) -> int:
    from ..plan import resolve
    from ..ui import out

    p = resolve(weights, data, _run_options(a))
    if a.json:
        import json

        out.print(json.dumps(p.as_dict(), indent=1), markup=False, soft_wrap=True, highlight=False)
    else:
        out.print("\n".join(p.describe()), markup=False)
    return 0


def _run(a, weights: str, data: str) -> int:
    from ..flows.run import run
    from ..report.tables import print_run_summary

    if a.dry_run:
        return _dry_run(a, weights, data)
    s = run(weights, data, _run_options(a))
    print_run_summary(s, s["_spec"])
    return _check(a, s["accuracy"]) if a.check else 0


def cmd_run(a) -> int:
    return _run(a, a.weights, a.data)


def cmd_demo(a) -> int:
    from ..flows.demo import demo

    if a.proxy_images < 64:
        raise ClsbenchError(f"--proxy-images must be >= 64 (32 calibrate int8, the rest are judged), "
                            f"got {a.proxy_images}")
    return demo(a.work_dir, per_class=a.per_class, weights=a.weights, options=_run_options(a),
                check=lambda verdict: _check(a, verdict) if a.check else 0, proxy_images=a.proxy_images)


def cmd_compile(a) -> int:
    from ..compile.artifacts import compile_model, record_path
    from ..data.folders import read_labels
    from ..ui import out

    from ..runtime.backends import DEFAULT_PRECISION
    from ..runtime.timing import parse_batches

    labels = read_labels(a.labels) if a.labels else None
    precision = a.precision or DEFAULT_PRECISION[a.backend]
    if a.backend == "cann":
        rec = compile_model(a.model, backend="cann", precision=precision, output_dir=a.output,
                            cann={"batches": parse_batches(a.batches), "soc_version": a.soc_version,
                                  "log": lambda line: out.print(line, markup=False)})
        out.print(f"wrote {', '.join(x['om'] for x in rec['artifacts'])}")
        return 0
    rec = compile_model(a.model, backend=a.backend, precision=precision, output_dir=a.output,
                        data=a.data, calib_images=a.calib_images, parity_images=a.parity_images,
                        pp=_compile_preprocessing(a), labels=labels, overwrite=a.overwrite,
                        max_drop=a.max_drop, tune_images=a.tune_images, uint8_input=a.uint8_input)
    verb = "reused (same source and settings)" if rec.get("reused") else "wrote"
    out.print(f"{verb} {rec['artifact']} ({rec['compile_seconds']} s): " + "; ".join(rec["notes"]))
    p = rec.get("parity")
    if p:
        out.print(f"parity vs fp32 on {p['inputs']}: top-1 agreement {p['top1_agreement']:.1%}, "
                  f"top-5 overlap {p['top5_overlap']:.1%}, rel. logit error {p['rel_l2_error']:.2e}")
        if "accuracy" in p:
            q = p["accuracy"]
            out.print(f"Top-1 on {q['labelled_images']} labelled held-out images: fp32 {q['fp32_top1']:.2f} %, "
                      f"{rec['precision']} {q['top1']:.2f} % (drop {q['top1_drop']:+.2f} points)")
    else:
        out.print("no --data: no parity record (give a folder of images to measure one)")
    out.print(f"record: {record_path(rec['artifact'])}")
    c = rec.get("accuracy_control")
    if c:
        out.print(f"accuracy control on {c['tuning_images']} tuning images: Top-1 fp32 {c['tuning_fp32_top1']:.2f} %, "
                  f"int8 {c['tuning_top1']:.2f} % (drop {c['tuning_drop']:+.2f}, bound {c['max_drop_points']})")
        if c.get("kept_in_float") is not None:
            out.print(f"kept in float: {len(c['kept_in_float'])} of {c['candidates']} compute nodes "
                      f"({', '.join(c['kept_in_float']) or 'none needed'}) after {len(c['tries'])} tries")
        if not c["bound_met"]:
            out.print("[bold red]bound not met[/]: even with the reverted operations the drop exceeds --max-drop")
            return 1
    return 0


def _compile_preprocessing(a):
    from ..model.files import identity_of
    from ..model.table import get_preprocessing

    if a.preset:
        return _preprocessing(a, get_preprocessing(a.preset), f"--preset {a.preset}")
    return _preprocessing(a, identity_of(a.model)[1], "the model file")


def cmd_models(a) -> int:
    from ..model.table import all_models
    from ..report.tables import models_json, models_table
    from ..ui import out

    rows = all_models(a.filter)
    if not rows:
        raise ClsbenchError(f"no model matches {a.filter!r} (a filter matches from the start of a word of "
                            f"NAME:TAG: 'vit' finds vit_b_16, not maxvit_t); `clsbench models` lists all")
    if a.json:
        out.print_json(data=models_json(rows))
    else:
        out.print(models_table(rows))
    return 0


def cmd_zoo(a) -> int:
    from ..ui import out
    from ..flows.zoo import run_zoo

    r = run_zoo(a.models, configs=a.configs, batches=a.batches, output=a.output, weights_dir=a.weights_dir,
                stand_in_weights=a.stand_in_weights, duration=a.duration, iterations=a.iterations,
                warmup=a.warmup, threads=a.threads, show_progress=not a.quiet)
    f = r["files"]
    out.print(open(f["md"]).read(), markup=False)
    out.print(f"wrote {f['csv']}, {f['md']}, {f['json']}" + (f", {f['png']}" if f["png"] else " (no matplotlib: no plot)"))
    return 0


def cmd_perf(a) -> int:
    from ..measure.sweep import run_perf
    from ..ui import out

    r = run_perf(a.model, configs=a.configs, batches=a.batches, output=a.output, weights=a.weights,
                 compiled=a.compiled, data=a.data, duration=a.duration, iterations=a.iterations,
                 warmup=a.warmup, threads=a.threads, show_progress=not a.quiet, openvino_hint=a.openvino_hint,
                 repeats=a.repeats, percentiles=a.percentiles, command=command_line(), engine=a.engine,
                 ray_address=a.ray_address, ray_timeout=a.ray_timeout, accept_preset_mismatch=a.accept_preset_mismatch,
                 profile=a.profile)
    out.print(r["markdown"], markup=False)
    f = r["files"]
    out.print(f"wrote {f['md']}, {f['json']}" + (f", {f['png']}" if f["png"] else " (no matplotlib: no plot)"))
    out.print(f"report: {f['html']}", markup=False)
    if a.profile:
        out.print(f"profiles: {os.path.join(a.output, 'profiles')}/ (one folder per cell; `clsbench report A B` "
                  f"compares two)", markup=False)
    return 0


def cmd_report(a) -> int:
    from ..report.html import compare, write_report
    from ..report import profiles
    from ..ui import out

    if any(profiles.is_profile_folder(f) for f in a.folders):  # `clsbench profile` folders
        return profiles.report_command(a.folders, a.output, a.threshold, out)
    if len(a.folders) == 1:
        out.print(f"report: {write_report(a.folders[0])}", markup=False)
        return 0
    r = compare(a.folders, a.output, threshold=a.threshold)
    out.print(r["table"])
    if not r["judged"]:
        out.print(f"comparison: {r['html']} (and {r['json']}); not comparable (the runs differ in "
                  f"{', '.join(r['not_judged_because'])}): no regression verdict", markup=False)
        if a.fail_on_regression:
            raise ClsbenchError(f"--fail-on-regression: the runs differ in {', '.join(r['not_judged_because'])}; "
                                f"compare runs of the same model, weights, preset, data and batch")
        return 0
    out.print(f"comparison: {r['html']} (and {r['json']}); {r['regressions']} regression(s)", markup=False)
    return 1 if a.fail_on_regression and r["regressions"] else 0


def cmd_loadgen(a) -> int:
    from ..measure.loadgen import LoadgenOptions, loadgen
    from ..report.tables import print_loadgen
    from ..ui import out

    settings = {}
    for kv in a.setting:
        k, sep, v = kv.partition("=")
        if not sep:
            raise ClsbenchError(f"--setting {kv!r}: give KEY=VALUE")
        settings[k.strip()] = v.strip()
    o = LoadgenOptions(scenario=a.scenario, mode=a.mode, batch_size=a.batch_size, backend=a.backend,
                       precision=a.precision, threads=a.threads, model_name=a.arch, target_qps=a.target_qps,
                       latency_bound_ms=a.latency_bound_ms, max_wait_ms=a.max_wait_ms,
                       samples_per_query=a.samples_per_query, duration_s=a.duration,
                       official_durations=a.official_durations, settings=settings, find_peak=a.find_peak,
                       peak_steps=a.peak_steps, workers=a.workers, output=a.output, labels=a.labels, cuda_mode=a.cuda_mode,
                       openvino_hint=a.openvino_hint, command=command_line(),
                       accept_preset_mismatch=a.accept_preset_mismatch)
    rec = loadgen(a.model, a.data, o)
    print_loadgen(rec)
    out.print(f"report: {a.output}/report.html", markup=False)
    runs = [r for r in rec["runs"].values() if "summary" in r]
    no_peak = rec["peak"] is not None and rec["peak"]["peak_qps"] is None
    return 0 if all(r["summary"]["valid"] for r in runs) and not no_peak else 1


COMMANDS = {"loadgen": cmd_loadgen, "report": cmd_report, "models": cmd_models, "export": cmd_export, "compile": cmd_compile, "perf": cmd_perf, "zoo": cmd_zoo, "preprocess": cmd_preprocess, "info": cmd_info,
            "infer": cmd_infer, "eval": cmd_eval, "run": cmd_run, "demo": cmd_demo,
            "profile": profile_cmd.cmd_profile, "tune": tune_cmd.cmd_tune}

if __name__ == "__main__":
    sys.exit(main())
