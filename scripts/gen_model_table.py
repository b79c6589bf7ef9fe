"""Generate clsbench's model table (src/clsbench/data/models.json) from torchvision itself.

    .venv/bin/python scripts/gen_model_table.py [--out src/clsbench/data/models.json] [--check]

For every classification architecture (`torchvision.models.list_models(module=
torchvision.models)`) and every weights entry of each: the builder arguments torchvision
sets when it loads those weights (recorded by spying on its `_ovewrite_named_param`, e.g.
inception_v3's transform_input=True, ViT's image_size), the auxiliary heads inference
drops, the preset of `weights.transforms()`, the reference Top-1/Top-5, GFLOPS, parameters,
the official file name and its SHA-256 prefix. Nothing is downloaded: a build stops at the
model's constructor once the builder has recorded its arguments; only builds with auxiliary
heads are finished (on the meta device, with an empty state dict).
The inference path reads the committed JSON and never imports torch; `--check` (and a
test) regenerates it and compares.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "clsbench" / "data" / "models.json"
AUX = ("AuxLogits", "aux1", "aux2")


def _spy_builders(record: list):
    import torchvision.models as tvm
    from torchvision.models import _api, _utils

    real = _utils._ovewrite_named_param

    def spy(kwargs, param, new_value):
        record.append((param, new_value))
        return real(kwargs, param, new_value)

    for mod in list(sys.modules.values()):  # builders import the helper into their own module
        if getattr(mod, "__name__", "").startswith("torchvision.models") and hasattr(mod, "_ovewrite_named_param"):
            mod._ovewrite_named_param = spy
    _api.WeightsEnum.get_state_dict = lambda self, *a, **k: {}
    return tvm


def _build(tvm, name, w, record):
    import torch

    record.clear()
    real_load = torch.nn.Module.load_state_dict
    torch.nn.Module.load_state_dict = lambda self, *a, **k: None  # the fetched state dict is empty
    try:  # only the builds with auxiliary heads come here (inception_v3, googlenet): meta suffices
        with torch.device("meta"):
            return tvm.get_model(name, weights=w)
    finally:
        torch.nn.Module.load_state_dict = real_load


class _Constructing(Exception):
    """Raised by the first nn.Module.__init__ of a build: every builder records its argument
    overrides before it constructs the model, so nothing after that is needed for them."""


def _record_args(tvm, name, w, record) -> dict:
    import torch

    record.clear()
    real_init = torch.nn.Module.__init__

    def stop(self, *a, **k):
        raise _Constructing

    torch.nn.Module.__init__ = stop
    try:
        tvm.get_model(name, weights=w)
    except _Constructing:
        pass
    finally:
        torch.nn.Module.__init__ = real_init
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in record if k != "num_classes"}


def entry(tvm, name, w, record) -> dict:
    args = _record_args(tvm, name, w, record)
    # aux heads: present after the weights' build with aux_logits=True (torchvision drops
    # googlenet's itself afterwards, keeps inception's); inference never uses them. Only
    # those builds are finished (the rest stop at the model's constructor: ~14 -> ~2 s)
    aux = []
    if "aux_logits" in args:
        model = _build(tvm, name, w, record)
        aux = [a for a in AUX if hasattr(model, a)]
    t = w.transforms()
    metrics = w.meta["_metrics"]["ImageNet-1K"]
    fname = w.url.rsplit("/", 1)[-1]
    return {
        "builder_args": args, "aux_heads": aux,
        "preset": {"resize": t.resize_size[0], "crop": t.crop_size[0], "interpolation": t.interpolation.value,
                   "mean": list(t.mean), "std": list(t.std)},
        "top1": metrics["acc@1"], "top5": metrics["acc@5"], "gflops": w.meta.get("_ops"),
        "params": w.meta["num_params"], "file_mb": w.meta.get("_file_size"),
        "num_classes": len(w.meta["categories"]), "file": fname,
        "sha256_prefix": fname.rsplit("-", 1)[-1].split(".")[0] if "-" in fname else None,
    }


def generate() -> dict:
    import torchvision

    record: list = []
    tvm = _spy_builders(record)
    models = {}
    for name in tvm.list_models(module=tvm):
        enum = tvm.get_model_weights(name)
        # vgg16's IMAGENET1K_FEATURES is a feature extractor (no classifier, no categories,
        # no accuracy): not a classifier clsbench can evaluate
        models[name] = {"default": enum.DEFAULT.name,
                        "weights": {w.name: entry(tvm, name, w, record) for w in enum if w.meta.get("categories")}}
    return {"generated_by": "scripts/gen_model_table.py", "torchvision": torchvision.__version__.split("+")[0],
            "models": models}


def render(table: dict) -> str:
    return json.dumps(table, indent=1, sort_keys=False) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    a = ap.parse_args()
    text = render(generate())
    if a.check:
        same = Path(a.out).read_text() == text
        print("models.json is current" if same else "models.json differs from what torchvision gives")
        return 0 if same else 1
    Path(a.out).write_text(text)
    t = json.loads(text)["models"]
    print(f"wrote {a.out}: {len(t)} architectures, {sum(len(m['weights']) for m in t.values())} weights")
    return 0


if __name__ == "__main__":
    sys.exit(main())
