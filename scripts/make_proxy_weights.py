#!/usr/bin/env python3
"""Train the proxy MnasNet1.0 on the shapes x colours task; writes its weights.

Run once; the result is committed (src/clsbench/data/proxy_mnasnet1_0.pth) so CI never retrains.
Fixed seeds and a fixed step count (not a time budget) keep it repeatable on one machine;
multi-threaded CPU convolution backward is not bitwise deterministic across machines, so the
committed file, not a rerun, is the reference. About 7 minutes on the 2-core machine.

    python scripts/make_proxy_weights.py [--steps 260] [--out src/clsbench/data/proxy_mnasnet1_0.pth]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
import torchvision  # noqa: E402

from clsbench.data import proxy_task  # noqa: E402
from clsbench.model.table import get_model  # noqa: E402
from clsbench.model.stand_in import realistic_state_dict  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=260)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--out", default="src/clsbench/data/proxy_mnasnet1_0.pth")
    ap.add_argument("--bn-only", action="store_true",
                    help="skip training; re-estimate BatchNorm statistics of the weights in --out")
    a = ap.parse_args()
    if a.bn_only:
        model = torchvision.models.mnasnet1_0(weights=None)
        model.load_state_dict(torch.load(a.out, weights_only=True))
        return finish(model, a, trained_steps=None, seconds=0)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    spec = get_model("mnasnet1_0")
    pp = spec.preprocessing
    x0, _ = proxy_task.batch(64, seed=10_000, pp=pp)
    model = torchvision.models.mnasnet1_0(weights=None)
    model.load_state_dict(realistic_state_dict(spec, x0, seed=0))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=a.steps, pct_start=0.15)
    model.train()
    t0 = time.time()
    for step in range(a.steps):
        x, y = proxy_task.batch(a.batch, seed=step, pp=pp)
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 20 == 0 or step == a.steps - 1:
            print(f"step {step:4d} loss {loss.item():.3f} {time.time() - t0:.0f}s", flush=True)
    return finish(model, a, trained_steps=a.steps, seconds=time.time() - t0)


def reestimate_bn(model, pp, batches: int = 40, batch: int = 32) -> None:
    """MNASNet's BatchNorm momentum is 0.0003: a few hundred steps leave its running
    statistics near their start, so eval mode would be garbage. Recompute them as a
    cumulative average over fresh batches of the task (no gradients, weights untouched)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for k in range(batches):
            x, _ = proxy_task.batch(batch, seed=50_000 + k, pp=pp)
            model(torch.from_numpy(x))


def finish(model, a, trained_steps, seconds) -> int:
    pp = get_model("mnasnet1_0").preprocessing
    t0 = time.time()
    reestimate_bn(model, pp)
    model.eval()
    xv, yv = proxy_task.batch(256, seed=99_999, pp=pp)
    with torch.no_grad():
        logits = torch.cat([model(torch.from_numpy(xv[i:i + 64])) for i in range(0, 256, 64)]).numpy()
    acc = float((logits.argmax(1) == yv).mean())
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    rec = {"steps": a.steps, "batch": a.batch, "train_seconds": round(seconds),
           "bn_seconds": round(time.time() - t0), "task_accuracy": acc,
           "logit_std": float(logits.std()), "sha256": sha, "torch": torch.__version__}
    out.with_suffix(".json").write_text(json.dumps(rec, indent=2) + "\n")
    print(json.dumps(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
