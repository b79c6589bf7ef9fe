"""Opt-in JPEG decode, resize and crop on the GPU (`--decode gpu`, cuda backend only).

Files are read on the CPU; JPEGs are decoded in batches by nvJPEG through
`torchvision.io.decode_jpeg(..., device="cuda")`; images of one size are stacked and resized
together with torchvision's own tensor `resize` (antialiased, the preset's interpolation,
shorter side to `resize`) and `center_crop`. This is NOT the exact path: nvJPEG's IDCT and
upsampling and the tensor resize differ from PIL's by a few levels on some pixels; the
difference and the top-1 agreement with the exact path are measured by benchmarks/gpu_bench.py
and documented in docs/performance.md. Files that are not JPEGs (PNG, ...) and JPEGs nvJPEG
refuses (CMYK, progressive corner cases) are decoded on the CPU by torchvision instead.
torchvision 0.29 deprecates its image decoders in favour of TorchCodec; the GPU machine this
was measured on has 0.26, and the call is the same in both.
"""
from __future__ import annotations

from collections import defaultdict

from .. import ClsbenchError


class DeviceDecoder:
    def __init__(self, pp, device="cuda"):
        import torch
        from torchvision.io import ImageReadMode
        from torchvision.transforms import v2
        from torchvision.transforms.v2 import functional as F

        if pp.exif_transpose:
            raise ClsbenchError("--decode gpu does not apply EXIF orientation; use the exact (cpu) decode")
        self.torch, self.F, self.pp, self.device = torch, F, pp, torch.device(device)
        self.mode = ImageReadMode.RGB
        self.interp = {"bilinear": v2.InterpolationMode.BILINEAR, "bicubic": v2.InterpolationMode.BICUBIC,
                       "nearest": v2.InterpolationMode.NEAREST}[pp.interpolation]

    def __call__(self, blobs: list[bytes], names: list[str]):
        """Encoded files -> uint8 (n, 3, crop, crop) on the device, in order."""
        torch = self.torch
        imgs = self._decode(blobs, names)
        c = self.pp.crop
        out = torch.empty((len(imgs), 3, c, c), dtype=torch.uint8, device=self.device)
        groups: dict = defaultdict(list)
        for i, im in enumerate(imgs):
            groups[tuple(im.shape)].append(i)
        for idx in groups.values():
            x = imgs[idx[0]][None] if len(idx) == 1 else torch.stack([imgs[i] for i in idx])
            x = self.F.resize(x, [self.pp.resize], interpolation=self.interp, antialias=True)
            x = self.F.center_crop(x, [c, c])
            out[torch.tensor(idx, device=self.device)] = x
        return out

    def _decode(self, blobs, names) -> list:
        import warnings

        with warnings.catch_warnings():  # torchvision >= 0.29 points to TorchCodec on import
            warnings.simplefilter("ignore", DeprecationWarning)
            from torchvision.io import decode_image, decode_jpeg

        torch = self.torch
        datas = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
        jpeg = [i for i, b in enumerate(blobs) if b[:3] == b"\xff\xd8\xff"]
        imgs: list = [None] * len(blobs)
        if jpeg:
            try:
                for i, im in zip(jpeg, decode_jpeg([datas[i] for i in jpeg], mode=self.mode,
                                                   device=self.device)):
                    imgs[i] = im
            except RuntimeError:
                pass  # one file spoiled the batch: the ones left are done one by one below
        for i, im in enumerate(imgs):
            if im is None:
                try:
                    imgs[i] = decode_image(datas[i], mode=self.mode).to(self.device)
                except RuntimeError as e:
                    raise ClsbenchError(f"{names[i]}: cannot decode ({str(e).splitlines()[0]})") from None
        return imgs
