"""Realistic stand-in weights when the official file is not at hand (tests, demo).

torchvision's random initialisation gives MnasNet logits near 1e-8: every parity check on
them is vacuous (any two runtimes "agree"). Re-estimating BatchNorm statistics with
train-mode passes over real photos, then scaling the classifier so logits have std ~1,
gives activations and logits of the magnitude trained weights have (for LayerNorm models,
whose statistics are not re-estimated, the rescaled classifier alone does that). Accuracy with these
weights is meaningless; numerical behaviour is realistic. Deterministic for a given seed.
"""
from __future__ import annotations

import numpy as np

from .weights import _torch
from .table import ModelSpec


def realistic_state_dict(spec: ModelSpec, images: np.ndarray, *, seed: int = 0,
                         logit_std: float = 1.0, chunk: int = 16) -> dict:
    """`images`: float32 (N, 3, H, W), preprocessed real photos (N >= 16 advisable)."""
    from .weights import build_model

    torch, _ = _torch()
    torch.manual_seed(seed)
    model = build_model(spec)  # the architecture as built for the spec's weights (no state dict)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over all passes
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    with torch.no_grad():
        if bns:  # train-mode passes only re-estimate BatchNorm: without any they change nothing
            model.train()
            for i in range(0, len(x), chunk):
                model(x[i:i + chunk])
        model.eval()
        # the classifier: the last Linear, or the last 1x1 conv (SqueezeNet), giving the classes
        fc = [m for m in model.modules() if (isinstance(m, torch.nn.Linear) and m.out_features == spec.num_classes)
              or (isinstance(m, torch.nn.Conv2d) and m.out_channels == spec.num_classes)][-1]
        torch.nn.init.normal_(fc.weight, std=0.01)
        if fc.bias is not None:  # MaxViT's head has none
            torch.nn.init.normal_(fc.bias, std=0.01)
        logits = model(x)
        scale = logit_std / float(logits.std())
        fc.weight.mul_(scale)
        if fc.bias is not None:
            fc.bias.mul_(scale)
    return model.state_dict()  # keeps _metadata (MNASNet checks its layout version)


def save_realistic_weights(spec: ModelSpec, images: np.ndarray, path: str, seed: int = 0) -> str:
    torch, _ = _torch()
    torch.save(realistic_state_dict(spec, images, seed=seed), path)
    return path
