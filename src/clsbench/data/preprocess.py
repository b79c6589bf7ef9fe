"""Exact ImageNet-val preprocessing to the guide's float32 CHW .bin files.

Default mode is pixel-exact to torchvision's MNASNet1_0_Weights.IMAGENET1K_V1.transforms()
on PIL images and byte-identical to the guide's imagenet_torch_preprocess.py (formats.md §3):
PIL decode, convert('RGB') (EXIF orientation ignored, as the reference does), shorter side
to `resize` with PIL bilinear (long side truncated; untouched when already `resize`), centre
crop with round(), then float32 /255, -mean, /std, in that order: the order fixes the bits.
"""
from __future__ import annotations

import contextlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from .. import ClsbenchError, __version__
from .._io import ConflictError, atomic_write_bytes, atomic_write_json, check_not_input, folder_lock, matching_record, remove_temp_dir, sidecar, temp_dir
from .folders import check_unique, list_images, stem
from ..model.table import Preprocessing

LEGACY_MANIFEST = ".clsbench_preprocess.json"  # 0.1.0 kept it inside the folder
_FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


_WIDE_GRAY = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


MAX_IMAGE_BYTES = 256 << 20  # no photo a classifier is evaluated on comes near it


def check_image_size(path: str | os.PathLike, size: int) -> None:
    """The one size rule of both engines (the Ray engine reads files whole, before decoding)."""
    if size > MAX_IMAGE_BYTES:
        raise ClsbenchError(f"{path}: {size:,} bytes, larger than any image clsbench decodes "
                            f"({MAX_IMAGE_BYTES >> 20} MB); skipped unread")


def load_rgb(path: str | os.PathLike, exif_transpose: bool = False) -> Image.Image:
    """Decode and convert to RGB as the reference does: Image.open(p).convert('RGB').

    The format is found from the content, not the extension (a PNG named .JPEG decodes as
    the PNG it is). Palette, RGBA (alpha dropped), CMYK and 8-bit grayscale go through
    PIL's convert, exactly as in the reference. 16-bit grayscale is the one deliberate
    exception: PIL's convert clips it at 255 (an almost white image), so it is scaled to
    8 bits instead.
    """
    if isinstance(path, (str, os.PathLike)) and os.path.isfile(path):
        check_image_size(path, os.path.getsize(path))
    try:
        with Image.open(path) as im:
            im.load()  # decode now, so a truncated file fails here and names itself
            if exif_transpose:
                from PIL import ImageOps

                im = ImageOps.exif_transpose(im)
            if im.mode in _WIDE_GRAY:
                a = np.asarray(im, dtype=np.float64)
                if a.min() < 0 or a.max() > 65535:
                    raise ValueError(f"{im.mode} pixel values outside 0..65535")
                im = Image.fromarray(np.rint(a * (255 / 65535)).astype(np.uint8), "L")
            elif im.mode == "F":
                raise ValueError("floating-point image; convert it to 8-bit first")
            # convert('RGB') of an RGB image is a plain copy: skip it (same pixels, less work)
            return im if im.mode == "RGB" else im.convert("RGB")
    except FileNotFoundError:
        raise ClsbenchError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ClsbenchError(f"{path}: is a directory, not an image") from None
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... for bad data
        raise ClsbenchError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None


def resize_shorter(img: Image.Image, size: int, interpolation: str = "bilinear") -> Image.Image:
    w, h = img.size
    if (w <= h and w == size) or (h <= w and h == size):
        return img
    if w < h:
        return img.resize((size, int(size * h / w)), _FILTERS[interpolation])
    return img.resize((int(size * w / h), size), _FILTERS[interpolation])


def center_crop(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def crop_uint8(img: Image.Image, pp: Preprocessing) -> np.ndarray:
    """Resized and cropped RGB pixels, HWC uint8: everything before normalization."""
    return np.asarray(center_crop(resize_shorter(img, pp.resize, pp.interpolation), pp.crop))


def crop_chw(path: str | os.PathLike, pp: Preprocessing) -> np.ndarray:
    """Decoded, resized, cropped image as contiguous uint8 CHW: the compact store's slot."""
    return np.ascontiguousarray(crop_uint8(load_rgb(path, pp.exif_transpose), pp).transpose(2, 0, 1))


def normalize_batch(u8: np.ndarray, pp: Preprocessing, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 (B, 3, H, W) -> float32 (B, 3, H, W): /255, -mean, /std in float32, in that
    order, as ToTensor+Normalize do; the order fixes the bits. Elementwise, so per image or
    per batch, in any layout, gives the same bits."""
    x = np.divide(u8, np.float32(255.0), out=out, dtype=np.float32)
    x -= np.asarray(pp.mean, dtype=np.float32)[None, :, None, None]
    x /= np.asarray(pp.std, dtype=np.float32)[None, :, None, None]
    return x


def normalize(hwc: np.ndarray, pp: Preprocessing) -> np.ndarray:
    """uint8 HWC -> float32 CHW, bit-identical to ToTensor+Normalize."""
    return normalize_batch(hwc.transpose(2, 0, 1)[None], pp)[0]


def preprocess_image(path: str | os.PathLike, pp: Preprocessing) -> np.ndarray:
    return normalize(crop_uint8(load_rgb(path, pp.exif_transpose), pp), pp)


def to_bin_bytes(chw: np.ndarray) -> bytes:
    return np.ascontiguousarray(chw, dtype="<f4").tobytes()


# ---------------------------------------------------------------- directory conversion

@dataclass
class PreprocessReport:
    written: int = 0
    resumed: int = 0  # already present from an earlier, interrupted run
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    ignored: list[str] = field(default_factory=list)  # non-image entries
    layout: str = "flat"
    outputs: list[str] = field(default_factory=list)  # every .bin name, sorted
    removed: int = 0  # .bin files of images no longer in the source, removed



@contextlib.contextmanager
def sigint_ignored():
    """Start worker processes inside this: they inherit SIGINT ignored from their first
    instruction, so a Ctrl-C that reaches the whole process group while they are still
    importing cannot print their tracebacks; the parent's Ctrl-C handling is back after."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


# A spawned worker costs ~0.3 s of CPU to start (Python, numpy, PIL, clsbench) and an image
# ~5 ms to decode, resize and crop: measured (`clsbench preprocess`, 2-core VM, proxy JPEGs
# of 260-500 px), 29 images took 0.62 s inline and 0.92 s with 2 workers, 160 images 1.36 s
# and 1.40 s. So by default a worker is started only for every 256 images.
JOBS_PER_WORKER = 256


def pool_size(workers: int | None, jobs: int) -> int:
    """Processes for `jobs` jobs: 1 means inline. `workers` None: one per usable CPU, at most
    one per JOBS_PER_WORKER jobs; asked for: as asked, but never more than the jobs, and
    inline under 8 jobs."""
    from .._io import usable_cpus

    if workers is None:
        workers = min(usable_cpus(), jobs // JOBS_PER_WORKER)
    return 1 if jobs < 8 else max(1, min(workers, jobs))


@contextlib.contextmanager
def parallel_map(fn, jobs: list, workers: int | None):
    """Yields fn's results over jobs, in order: inline for few jobs, else in `workers`
    spawned processes (spawn: no inherited torch/onnxruntime thread pools) that ignore
    Ctrl-C; pending work is cancelled when the caller stops early."""
    workers = pool_size(workers, len(jobs))
    if workers == 1:
        yield map(fn, jobs)
        return
    from .._io import worker_start

    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=worker_start,
                               initargs=(os.getpid(),))
    try:
        with sigint_ignored():  # map submits every chunk now, which starts every worker
            results = pool.map(fn, jobs, chunksize=max(1, min(32, len(jobs) // (4 * workers))))
        yield results
    finally:
        pool.shutdown(cancel_futures=True)


@dataclass
class Loaded:
    x: np.ndarray  # (N, 3, crop, crop) float32
    names: list[str]  # image stems, in order
    skipped: int  # unreadable images passed over
    end: int  # listing position after the last image looked at


def load_folder(src: str | os.PathLike, pp: Preprocessing, start: int = 0,
                count: int | None = None) -> Loaded:
    """`count` readable images from position `start` of a folder's sorted listing,
    preprocessed; unreadable ones are skipped (they are preprocess's to report)."""
    out, names, skipped = [], [], 0
    images = list_images(src).images
    pos = start
    for pos in range(start, len(images) + 1):
        if pos == len(images) or (count is not None and len(out) == count):
            break
        try:
            out.append(preprocess_image(Path(src) / images[pos], pp))
            names.append(stem(images[pos].name))
        except ClsbenchError:
            skipped += 1
    if not out:
        raise ClsbenchError(f"{src}: no readable images from position {start}")
    return Loaded(np.stack(out), names, skipped, pos)


def _convert_one(job: tuple[str, str, Preprocessing, str]) -> tuple[str, str | None]:
    src, dst, pp, tmp = job
    try:
        atomic_write_bytes(dst, to_bin_bytes(preprocess_image(src, pp)), tmp)
        return src, None
    except ClsbenchError as e:
        return src, str(e)
    except OSError as e:  # disk full, permissions: fatal for the whole run
        raise ClsbenchError(f"{dst}: cannot write ({e.strerror or e})") from None


def _check_folder(dst: Path, pp: Preprocessing, overwrite: bool) -> dict:
    """dst holds nothing but .bin files (gen_dataset_info.py lists it); what made them is
    recorded beside it, in `<dst>.clsbench.json`. Returns the source fingerprint recorded for
    each .bin ({} when there is no record, or with --overwrite)."""
    legacy = dst / LEGACY_MANIFEST
    if legacy.exists() and not sidecar(dst).exists():
        os.replace(legacy, sidecar(dst))
    identity = {"preprocessing": pp.as_dict()}
    if overwrite:
        return {}
    old = matching_record(sidecar(dst), identity, str(dst))
    if old is None and any(n.endswith(".bin") for n in os.listdir(dst)):
        raise ConflictError(f"{dst}: holds .bin files that clsbench did not write "
                            f"(no {sidecar(dst).name} beside it)")
    return (old or {}).get("sources", {})


def _plan_jobs(src: Path, dst: Path, pp: Preprocessing, owners: dict, recorded: dict, report, tmp: str) -> tuple:
    """Which .bin files are redone: any whose source is not the very file recorded for it
    (another folder, the same name replaced, a changed size or mtime). Stale files are
    removed first, and so are the .bin files of images no longer in the source, so the
    record written next never vouches for a file that no longer matches."""
    from .._io import file_fingerprint

    sources, jobs = {}, []
    for name, rel in owners.items():
        out = dst / name
        sources[name] = file_fingerprint(src / rel)
        if out.is_file() and out.stat().st_size == pp.bin_bytes and recorded.get(name) == sources[name]:
            report.resumed += 1
            continue
        out.unlink(missing_ok=True)
        jobs.append((str(src / rel), str(out), pp, tmp))
    gone = [n for n in os.listdir(dst) if n.endswith(".bin") and n not in owners]
    for n in gone:
        (dst / n).unlink()
    report.removed = len(gone)
    return jobs, sources


def preprocess_dir(src: str | os.PathLike, dst: str | os.PathLike, pp: Preprocessing, *,
                   workers: int | None = None, overwrite: bool = False, strict: bool = False,
                   show_progress: bool = True) -> PreprocessReport:
    """Convert every image under `src` (flat or one level of class folders) to `dst/<stem>.bin`.

    Resumable: a .bin is reused only when its source is the very file it was made from (same
    resolved path, size and mtime_ns, recorded beside the folder) with the same preprocessing;
    everything else is redone (writes are atomic, so an existing file is a finished one).
    Undecodable images are listed in the report; with strict=True they stop the run instead.
    """

    src, dst = Path(src), Path(dst)
    check_not_input(dst, what="DST_DIR", folders={"SRC_DIR": src})  # .bin files never among the images
    listing = list_images(src)
    report = PreprocessReport(layout=listing.layout, ignored=[str(p) for p in listing.ignored])
    if not listing.images:
        raise ClsbenchError(f"{src}: holds no images ({len(listing.ignored)} other entries)")
    owners = {stem(rel.name) + ".bin": rel for rel in listing.images}
    check_unique([(stem(rel.name) + ".bin", src / rel) for rel in listing.images], str(src))
    dst.mkdir(parents=True, exist_ok=True)
    with folder_lock(dst):
        recorded = _check_folder(dst, pp, overwrite)
        tmp = str(temp_dir(dst))
        jobs, sources = _plan_jobs(src, dst, pp, owners, recorded, report, tmp)
        atomic_write_json(sidecar(dst), {"tool": f"clsbench {__version__}", "source": str(src.resolve()),
                                         "identity": {"preprocessing": pp.as_dict()}, "sources": sources})
        try:
            _convert(jobs, dst, workers, strict, report, show_progress)
        finally:
            remove_temp_dir(dst)
    failed_names = {stem(Path(s).name) + ".bin" for s, _ in report.failed}
    report.outputs = sorted(n for n in owners if n not in failed_names)
    return report


def _convert(jobs, dst, workers, strict, report, show_progress) -> None:
    from ..ui import progress, warn

    with progress(len(jobs), f"preprocess → {dst}", show_progress) as advance, \
            parallel_map(_convert_one, jobs, workers) as results:
        for source, err in results:
            if err is None:
                report.written += 1
            else:
                if strict:
                    raise ClsbenchError(err)
                report.failed.append((source, err))
            advance()
    for _, err in report.failed:
        warn(f"skipped: {err}")
