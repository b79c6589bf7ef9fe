"""Test helpers and independent references: each re-implements a guide script's reading rule
from formats.md (never from clsbench's code), so a test compares clsbench with the guide."""
from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PROXY = ROOT / "src" / "clsbench" / "data" / "proxy_mnasnet1_0.pth"


def installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it: at collection, in each test
    process, an importorskip of nncf, ray or timm costs seconds before any test runs."""
    from importlib.util import find_spec

    return find_spec(module) is not None


def package_dir(module: str) -> Path:
    """A package's folder, found without importing it (timm's `data/_info` files)."""
    from importlib.util import find_spec

    return Path(find_spec(module).submodule_search_locations[0])


def photo(name: str) -> Image.Image:
    from clsbench.flows.demo import skimage_data_dir

    with Image.open(skimage_data_dir() / name) as im:
        im.load()
        return im.convert("RGB")


# (file name, source photo, size): shorter side already 256, portrait, landscape, tiny,
# extreme aspect, large, odd sizes for the rounding of the centre crop
PHOTO_CASES = [
    ("short256_landscape.jpg", "chelsea.png", (384, 256)),
    ("short256_portrait.png", "coffee.png", (256, 345)),
    ("portrait.jpg", "rocket.jpg", (333, 500)),
    ("landscape.jpg", "motorcycle_left.png", (741, 500)),
    ("tiny.png", "chelsea.png", (97, 61)),
    ("tiny_portrait.jpg", "coffee.png", (40, 150)),
    ("odd.png", "astronaut.png", (511, 257)),
    ("large.jpg", "hubble_deep_field.jpg", (1000, 872)),
    ("gray.png", "camera.png", (300, 400)),
]


def run_cli(*args, cwd=None, env=None, check=True) -> subprocess.CompletedProcess:
    """`clsbench ...` in a process of its own, the way a user runs it: forked from this test
    process's fork server (tests/cli_fork.py: the third-party imports done once), or a fresh
    `python -m clsbench.cli.commands` where that cannot stand in for one (CLSBENCH_TEST_SPAWN=1 forces it)."""
    e = dict(os.environ, **(env or {}))
    argv = [str(a) for a in args]
    server = _FORK_TORCH if imports_torch(argv) else _FORK
    p = _forked(server, argv, e, cwd) if server.usable(e) else None
    if p is None:
        p = subprocess.run([sys.executable, "-m", "clsbench.cli", *argv], cwd=cwd, env=e,
                           capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"clsbench {' '.join(map(str, args))} exited {p.returncode}\n"
                             f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def imports_torch(argv: list) -> bool:
    """Whether a `clsbench` call imports torch anyway: it exports or builds a model (export,
    demo, zoo; weights in a PyTorch file or stand-ins; a timm model; the torch or cuda backend)
    or quantizes for OpenVINO (NNCF imports torch). Such a call is forked from the server that
    imported torch once; any other from the one without it, because a run records the torch
    and torchvision it finds imported (perf.environment). So the rule errs towards the plain
    server: a torch-importing call it misses only costs time (none did in a logged run)."""
    words = set(argv)
    pairs = set(zip(argv, argv[1:]))
    return bool(argv) and (argv[0] in ("export", "demo", "zoo") or "--stand-in-weights" in words
                           or any(a.endswith((".pth", ".pt")) or a.startswith("timm:") for a in argv)
                           or bool({("--backend", "torch"), ("--backend", "cuda")} & pairs)
                           or ("--backend", "openvino") in pairs and ("--precision", "int8") in pairs)


class _ForkServer:
    """tests/cli_fork.py, started on this process's first CLI call, with this environment;
    `preload` names what it imports beyond its own list ("torch": torch and torchvision)."""

    # read when an interpreter or a native library starts: a call that changes one of these
    # gets a fresh interpreter, not a fork of one that started without it
    STARTUP = ("PYTHON", "LD_", "OMP_", "OPENBLAS_", "MKL_", "MALLOC_", "TORCH", "PYTORCH_")

    def __init__(self, preload: tuple = ()):
        self.preload = preload
        self.proc = self.requests = self.replies = self.env = None
        import threading

        self.lock = threading.Lock()

    def usable(self, env: dict) -> bool:
        if sys.platform != "linux" or os.environ.get("CLSBENCH_TEST_SPAWN"):
            return False
        base = self.env or os.environ
        return not any(k.startswith(self.STARTUP) and env.get(k) != base.get(k) for k in {*env, *base})

    def start(self) -> None:
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        self.env = dict(os.environ)
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("cli_fork.py")), str(req_r),
                                      str(rep_w), *self.preload], pass_fds=(req_r, rep_w), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(req_r)
        os.close(rep_w)
        self.requests, self.replies = os.fdopen(req_w, "w"), os.fdopen(rep_r, "r")

    def call(self, req: dict) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        try:
            self.requests.write(json.dumps(req) + "\n")
            self.requests.flush()
            reply = self.replies.readline()
        except OSError:
            reply = ""
        return int(reply) if reply.strip() else None  # None: the server died; the caller spawns


_FORK = _ForkServer()
_FORK_TORCH = _ForkServer(preload=("torch",))


def _forked(server: _ForkServer, argv: list, env: dict, cwd, script: str | None = None
            ) -> subprocess.CompletedProcess | None:
    import locale
    import tempfile

    if not server.lock.acquire(blocking=False):  # another thread's call is in the server
        return None
    try:
        with tempfile.TemporaryDirectory(prefix="cli-") as d:
            out, err = Path(d) / "out", Path(d) / "err"
            out.touch()
            err.touch()
            code = server.call({"argv": argv, "env": env, "cwd": str(cwd or os.getcwd()), "out": str(out),
                                "err": str(err), "script": script})
            if code is None:
                return None
            enc = locale.getpreferredencoding(False)  # as subprocess's text mode decodes
            text = [f.read_text(encoding=enc) for f in (out, err)]
    finally:
        server.lock.release()
    cmd = [sys.executable, script] if script else [sys.executable, "-m", "clsbench.cli"]
    return subprocess.CompletedProcess([*cmd, *argv], code, *text)


def run_script(script, *args, cwd=None, check=True, torch=False) -> subprocess.CompletedProcess:
    """`bash SCRIPT.sh ARGS` or `python SCRIPT.py ARGS`, the latter forked from a fork server as
    run_cli's calls are (`torch`: from the one with torch imported, for a script that imports it)."""
    argv, e = [str(a) for a in args], dict(os.environ)
    server = _FORK_TORCH if torch else _FORK
    p = None
    if str(script).endswith(".py") and server.usable(e):
        p = _forked(server, argv, e, cwd, script=str(script))
    if p is None:
        cmd = ["bash", str(script)] if str(script).endswith(".sh") else [sys.executable, str(script)]
        p = subprocess.run([*cmd, *argv], cwd=cwd, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"{script} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def default_sigint() -> None:
    """preexec_fn for a child that a test interrupts: a runner started in the background
    (nohup, `cmd &`) ignores SIGINT, and Python keeps an inherited SIG_IGN, so Ctrl-C
    would never reach the child's KeyboardInterrupt handling."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


# ---------------------------------------------------------------- the guide's reading rules

def guide_acc_eval(result_dir, label_file) -> str:
    """formats.md §6, as imagenet_acc_eval.py reads: EVERY entry of the folder is an output
    (os.listdir, no filter); key = name up to its first '.', cut at its last '_'; a key
    without a label is a KeyError (the reference crashes); the first line's floats ranked
    by argsort of the negated scores; 1001 classes shift the label; Top-k cumulative."""
    gt = {}
    for line in open(label_file):
        t = line.strip().split(" ")
        gt[t[0].split(".")[0]] = t[1]
    hit, count, n_labels = np.zeros(5), 0, 0
    for name in os.listdir(result_dir):
        temp = name.split(".")[0]
        key = temp[:temp.rfind("_")]
        with open(os.path.join(result_dir, name)) as f:  # a folder in there: IsADirectoryError
            vals = f.readline().strip().split(" ")
        pred = np.array([np.float32(v) for v in vals])
        n_labels = len(vals)
        real = int(gt[key]) + (1 if n_labels == 1001 else 0)  # KeyError: what the reference does
        for i, idx in enumerate(np.argsort(-pred, kind="stable")[:5]):
            if str(real) == str(idx):
                hit[i] += 1
                break
        count += 1
    acc = np.cumsum(hit) / count
    value = [{"key": "Number of images", "value": str(count)},
             {"key": "Number of classes", "value": str(n_labels)}]
    value += [{"key": f"Top{i + 1} accuracy", "value": str(round(acc[i] * 100, 2)) + "%"} for i in range(5)]
    return json.dumps({"title": "Overall statistical evaluation", "value": value})


def guide_top1(result_json: str) -> float:
    return float(json.loads(result_json)["value"][2]["value"].rstrip("%"))


def guide_bin_info(bin_dir) -> list[str]:
    """formats.md §4 bin mode: glob '*.bin' in the folder, in glob's order."""
    return glob.glob(os.path.join(str(bin_dir), "*.bin"))


def assert_guide_folder(folder, suffix: str) -> None:
    """A folder a guide script lists holds nothing but the files that script expects."""
    others = [n for n in os.listdir(folder) if not (n.endswith(suffix) and not n.startswith("."))]
    assert others == [], f"{folder} holds {others}: the guide's script would read them"


def guide_perf_fields(perf_txt: str) -> list[str]:
    """formats.md §5: the model zoo's parser: newlines -> ',', append ',', findall ':(.*?),'."""
    text = perf_txt.replace("\n", ",") + ","
    return [m.strip() for m in re.findall(r":(.*?),", text)]


def guide_interface_rate(perf_txt: str) -> float:
    """The 8th match (index 7) is Interface throughputRate; 'samples/s' is stripped."""
    return float(guide_perf_fields(perf_txt)[7].replace("samples/s", "").strip())


def reference_bin(path: Path, resize: int, crop: int, mean, std) -> bytes:
    """formats.md §3 read independently: what the guide's preprocessing writes."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    short, long_ = (w, h) if w <= h else (h, w)
    if short != resize:
        new_long = int(resize * long_ / short)
        img = img.resize((resize, new_long) if w <= h else (new_long, resize), Image.BILINEAR)
    w, h = img.size
    top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
    img = img.crop((left, top, left + crop, top + crop))
    a = np.array(img, dtype=np.float32).transpose(2, 0, 1)
    a = a / 255.0
    a -= np.array(mean, dtype=np.float32)[:, None, None]
    a /= np.array(std, dtype=np.float32)[:, None, None]
    return a.astype("<f4").tobytes()


# ---------------------------------------------------------------- tiny stamped models (plan tests)

def tiny_classifier(path: Path, *, meta: dict | None = None, batch=None, size=224, classes: int = 1000,
                    seed: int = 0) -> Path:
    """(N, 3, size, size) -> mean over H, W -> dense -> logits: cheap, and its outputs move
    with every preprocessing knob (size None: symbolic H, W). `meta`: clsbench.* metadata as
    an export writes it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    h, w = (size, size) if size else ("H", "W")
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch or "N", 3, h, w])
    y = helper.make_tensor_value_info("class", TensorProto.FLOAT, [batch or "N", classes])
    weight = numpy_helper.from_array(rng.standard_normal((3, classes)).astype(np.float32) * 4, "w")
    bias = numpy_helper.from_array(rng.standard_normal(classes).astype(np.float32) * 0.1, "b")
    nodes = [helper.make_node("ReduceMean", ["image"], ["m"], axes=[2, 3], keepdims=0),
             helper.make_node("MatMul", ["m", "w"], ["z"]), helper.make_node("Add", ["z", "b"], ["class"])]
    m = helper.make_model(helper.make_graph(nodes, "tiny", [x], [y], [weight, bias]),
                          opset_imports=[helper.make_opsetid("", 13)])
    for k, v in (meta or {}).items():
        e = m.metadata_props.add()
        e.key, e.value = f"clsbench.{k}", str(v)
    onnx.save(m, path)
    return path


def bin_tensors(folder: Path, count: int, size: int, seed: int = 0) -> Path:
    """`count` float32 3×size×size tensors in the guide's .bin layout (img000.bin, ...)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        rng.standard_normal((3, size, size)).astype(np.float32).tofile(folder / f"img{i:03d}.bin")
    return folder


def stamped(path: Path, key: str, provenance: str = "other", **kw) -> Path:
    """A tiny model recording `key` the way clsbench's export does (the table's preset)."""
    from clsbench.model.table import get_model

    spec = get_model(key)
    kw["size"] = kw.get("size") or spec.preprocessing.crop
    return tiny_classifier(path, meta={"architecture": spec.name, "weights_tag": spec.tag,
                                       "num_classes": spec.num_classes, "provenance": provenance,
                                       "preprocessing": json.dumps(spec.preprocessing.as_dict())}, **kw)


def run_options(**kw):
    """pipeline.RunOptions for in-process plan tests (no progress bars)."""
    from clsbench.flows.run import RunOptions

    return RunOptions(show_progress=False, **kw)
