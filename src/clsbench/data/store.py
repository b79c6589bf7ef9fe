"""Compact preprocessed store: uint8 CHW crops in one memory-mapped file plus an index.

The guide's float32 .bin files cost 602,112 bytes per image (30 GB for ImageNet val); the
crop before normalization is 150,528 bytes (7.5 GB), and normalization is cheap to redo per
batch. Normalizing a uint8 batch here runs the exact path's float32 operations in the same
order, so the tensors are bit-identical to the .bin files (a test checks it).

Layout of STORE_DIR: `crops.u8` (N x 3 x crop x crop uint8, C order), `index.json` (names,
source files, preprocessing), `done.u8` (one byte per slot: written).
Slots are written in place with pwrite and marked done afterwards, so a killed run loses at
most the slots in flight and a rerun fills only what is missing.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .. import ClsbenchError, __version__
from .._io import atomic_write_json, check_not_input, matching_record
from .._io import file_fingerprint
from .folders import check_unique, list_images, stem
from ..model.table import Preprocessing


def _crop_job(job):
    src, pp = job
    from .preprocess import crop_chw

    try:
        return crop_chw(src, pp).tobytes(), None
    except ClsbenchError as e:
        return None, str(e)


class Store:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        try:
            self.index = json.loads((self.root / "index.json").read_text())
        except FileNotFoundError:
            raise ClsbenchError(f"{self.root}: not a clsbench store (no index.json)") from None
        d = self.index["preprocessing"]
        self.pp = Preprocessing.from_dict(d)
        self.names: list[str] = self.index["names"]
        c = self.pp.crop
        n = len(self.names)
        expect = n * 3 * c * c
        size = (self.root / "crops.u8").stat().st_size
        if size != expect:
            raise ClsbenchError(f"{self.root / 'crops.u8'}: {size} bytes, expected {expect} for {n} crops")
        self.crops = np.memmap(self.root / "crops.u8", dtype=np.uint8, mode="r", shape=(n, 3, c, c))
        self.done = np.fromfile(self.root / "done.u8", dtype=np.uint8).astype(bool)

    def fingerprint(self, i: int) -> list | None:
        """The source file's fingerprint slot i was made from (None in a store from before they were recorded)."""
        fps = self.index.get("fingerprints")
        return fps[i] if fps else None

    def __len__(self) -> int:
        return len(self.names)

    @property
    def complete(self) -> bool:
        return bool(self.done.all())

    def batch(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        from .preprocess import normalize_batch

        return normalize_batch(self.crops[start:stop], self.pp, out)


def build_store(src: str | os.PathLike, dst: str | os.PathLike, pp: Preprocessing, *,
                workers: int | None = None, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Decode every image of `src` once into `dst`; resumable. Returns a report."""
    from .preprocess import parallel_map
    from ..ui import progress, warn

    src, dst = Path(src), Path(dst)
    check_not_input(dst, what="DST_DIR", folders={"SRC_DIR": src})  # the store never among the images
    listing = list_images(src)
    if not listing.images:
        raise ClsbenchError(f"{src}: holds no images")
    names = [stem(p.name) for p in listing.images]
    check_unique(zip(names, (src / p for p in listing.images)), str(src), "slot")
    c = pp.crop
    slot = 3 * c * c
    dst.mkdir(parents=True, exist_ok=True)
    index = {"tool": f"clsbench {__version__}", "format": "clsbench-store-1", "source": str(src.resolve()),
             "preprocessing": pp.as_dict(), "layout": "NCHW uint8", "names": names,
             "files": [str(p) for p in listing.images]}
    index["identity"] = {"preprocessing": pp.as_dict(), "names": names}
    index["fingerprints"] = [file_fingerprint(src / p) for p in listing.images]
    ipath = dst / "index.json"
    old = None if overwrite else matching_record(ipath, index["identity"],
                                                 f"{dst} (a store of other images or preprocessing)")
    if old is None:
        with open(dst / "crops.u8", "wb") as f:
            f.truncate(len(names) * slot)
        np.zeros(len(names), np.uint8).tofile(dst / "done.u8")
    done = np.fromfile(dst / "done.u8", dtype=np.uint8)
    was = (old or {}).get("fingerprints") or [None] * len(names)
    stale = [i for i in range(len(names)) if done[i] and was[i] != index["fingerprints"][i]]
    if stale:  # a source replaced since its slot was written: the slot is redone
        with open(dst / "done.u8", "r+b") as f:
            for i in stale:
                f.seek(i)
                f.write(b"\x00")
        done[stale] = 0
    atomic_write_json(ipath, index)
    todo = [i for i in range(len(names)) if not done[i]]
    failed = []
    fd = os.open(dst / "crops.u8", os.O_WRONLY)
    dfd = os.open(dst / "done.u8", os.O_WRONLY)
    jobs = [(str(src / listing.images[i]), pp) for i in todo]
    try:
        with progress(len(todo), f"store → {dst}", show_progress) as advance, \
                parallel_map(_crop_job, jobs, workers) as results:
            for i, (data, err) in zip(todo, results):
                if err:
                    failed.append((str(src / listing.images[i]), err))
                else:
                    os.pwrite(fd, data, i * slot)
                    os.pwrite(dfd, b"\x01", i)  # marked only once the crop is whole
                advance()
    finally:
        os.close(fd)
        os.close(dfd)
    for _, e in failed:
        warn(f"skipped: {e}")
    return {"store": str(dst), "images": len(names), "written": len(todo) - len(failed),
            "resumed": len(names) - len(todo), "failed": failed, "bytes_per_image": slot}
