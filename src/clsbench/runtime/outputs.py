"""Per-image outputs, the vendor tool's format (formats.md §5): the one owner of their names,
encodings, writing and reading back.

An output folder `result/dumpOutput_device<N>/` holds nothing but `<stem>_1.<fmt>` files,
because the guide's imagenet_acc_eval.py takes every file in it as an output: the record
of what wrote them is `dumpOutput_device<N>.clsbench.json` beside it, temp files go to
`.dumpOutput_device<N>.tmp/` beside it.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from .. import ClsbenchError
from .._io import atomic_write_bytes, claim, record_sources, remove_temp_dir, still_valid

FILE_FORMATS = ("txt", "bin", "npy")  # one file per image, in dumpOutput_device<N>/
OUTFMTS = (*FILE_FORMATS, "parquet")  # parquet: one dataset, outputs_device<N>.parquet/
SUFFIXES = tuple(f".{f}" for f in FILE_FORMATS)


def output_name(key: str, outfmt: str, k: int = 1) -> str:
    """The vendor tool's name: `<input stem>_<k>.<fmt>`, k = output index from 1."""
    return f"{key}_{k}.{outfmt}"


def image_key(output_file: str) -> str:
    """The guide's eval's reading of a name: up to the first '.', then cut at the last '_'."""
    temp = os.path.basename(output_file).split(".")[0]
    cut = temp.rfind("_")
    return temp[:cut] if cut >= 0 else temp


# ---------------------------------------------------------------- encoding

_P10 = 10.0 ** np.arange(-60, 61)
_PAIRS = np.array([[48 + i // 10, 48 + i % 10] for i in range(100)], np.uint8)


def format_scores(a: np.ndarray) -> list[bytes]:
    """float32 (B, C) -> B text lines, each value as Python's '%+.8e', space-separated.

    Vectorized (about 2x faster than %-formatting, which dominated the writer's CPU time
    on 2 cores) and byte-identical to it (tests check random bit patterns). Nine
    significant digits round-trip every float32, so scores read back rank identically;
    the explicit sign keeps every field the same width.
    """
    b, c = a.shape
    x = a.astype(np.float64).ravel()
    ax = np.abs(x)
    nz = ax > 0
    with np.errstate(divide="ignore"):
        e = np.floor(np.log10(np.where(nz, ax, 1.0))).astype(np.int32)
    m = np.rint(ax * _P10[68 - e])  # the 9-digit mantissa
    off = (m >= 1e9) | (nz & (m < 1e8))  # log10 landed one decade off
    if off.any():
        i = np.flatnonzero(off)
        e[i] += np.where(m[i] >= 1e9, 1, -1)
        m[i] = np.rint(ax[i] * _P10[68 - e[i]])
    m = m.astype(np.int32)
    out = np.empty((x.size, 16), np.uint8)
    out[:, 0] = np.where(np.signbit(x), 45, 43)  # '-' / '+'
    lead, rest = np.divmod(m, 100_000_000)
    out[:, 1] = lead + 48
    out[:, 2] = 46  # '.'
    hi, lo = np.divmod(rest, 10_000)
    for col, part in ((3, hi // 100), (5, hi % 100), (7, lo // 100), (9, lo % 100)):
        out[:, col:col + 2] = _PAIRS[part]
    out[:, 11] = 101  # 'e'
    out[:, 12] = np.where(e < 0, 45, 43)
    out[:, 13:15] = _PAIRS[np.abs(e)]
    out[:, 15] = 32
    out = out.reshape(b, c * 16)
    out[:, -1] = 10  # each line ends in a newline instead of the last space
    return [r.tobytes() for r in out]


def check_outfmt(outfmt: str) -> str:
    if outfmt not in OUTFMTS:
        raise ClsbenchError(f"unknown output format {outfmt!r}; choose from {', '.join(OUTFMTS)}")
    return outfmt


def encode(rows: np.ndarray, outfmt: str) -> list[bytes]:
    """One file's bytes per row of a (B, classes) float32 batch."""
    if outfmt == "txt":
        return format_scores(rows)
    if outfmt == "bin":
        return [np.ascontiguousarray(r, dtype="<f4").tobytes() for r in rows]
    blobs = []
    for r in rows:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(r, dtype="<f4"), allow_pickle=False)
        blobs.append(buf.getvalue())
    return blobs


# ---------------------------------------------------------------- reading back

_POW10 = 10.0 ** np.arange(-107, 92)  # index 107 + e - 8: every exponent '%+.8e' writes
_PLACES = 10.0 ** np.arange(7, -1, -1)  # the eight digits after the point


def _parse_e8(line: bytes) -> np.ndarray | None:
    """Vectorized reader for clsbench's own text outputs ('%+.8e' fields, one space apart).

    Exact: each field is a 9-significant-digit decimal within 5e-9 (relative) of the float32
    it was written from, float64 arithmetic rebuilds it to ~1e-16, and the nearest float32 is
    then the original (rounding boundaries are >= 3e-8 away). Returns None for any other
    layout, which the general parser handles.
    """
    body = line.rstrip(b"\r\n")
    if len(body) % 16 != 15:
        return None
    a = np.frombuffer(body + b" ", np.uint8).reshape(-1, 16)
    d = a.astype(np.int16) - 48  # digits 0..9 where digits belong
    frac, lead, e_hi, e_lo = d[:, 3:11], d[:, 1], d[:, 13], d[:, 14]
    if not ((a[:, 2] == 46).all() and (a[:, 11] == 101).all() and (a[:, 15] == 32).all()
            and (np.abs(a[:, [0, 12]].astype(np.int16) - 44) == 1).all()  # '+' (43) or '-' (45)
            and 0 <= frac.min() and frac.max() <= 9 and 0 <= lead.min() and lead.max() <= 9
            and 0 <= min(e_hi.min(), e_lo.min()) and max(e_hi.max(), e_lo.max()) <= 9):
        return None
    e = (e_hi * 10 + e_lo) * (44 - a[:, 12].astype(np.int16))  # esign: '+' -> +1, '-' -> -1
    mant = lead * 1e8 + frac @ _PLACES  # exact integer < 1e9
    v = mant * _POW10[107 + e - 8] * (44 - a[:, 0].astype(np.int16))
    return v.astype(np.float32)


def load_scores(path: str | os.PathLike) -> np.ndarray:
    """One output file (clsbench's or the vendor tools': .txt, .bin, .npy) as float32 scores."""
    path = str(path)
    try:
        if path.endswith(".txt"):
            with open(path, "rb") as f:
                raw = f.readline()
            scores = _parse_e8(raw)
            if scores is None:
                scores = np.array(raw.decode("ascii").split(), dtype=np.float32)
        elif path.endswith(".npy"):
            scores = np.load(path, allow_pickle=False).astype(np.float32, copy=False).ravel()
        else:
            size = os.path.getsize(path)
            if size % 4:
                raise ClsbenchError(f"{path}: {size} bytes is not a whole number of float32 scores")
            scores = np.fromfile(path, dtype="<f4")
    except ClsbenchError:
        raise
    except (ValueError, UnicodeDecodeError) as e:
        raise ClsbenchError(f"{path}: not a line of numbers ({e})") from None
    if scores.size == 0:
        raise ClsbenchError(f"{path}: holds no scores")
    if not np.all(np.isfinite(scores)):
        raise ClsbenchError(f"{path}: holds NaN or infinite scores")
    return scores


def list_outputs(folder: str | os.PathLike) -> list[str]:
    """Output file names of a folder, sorted (other entries are the eval's to report)."""
    return sorted(n for n in os.listdir(folder) if n.endswith(SUFFIXES) and not n.startswith("."))


# ---------------------------------------------------------------- the output folder

def dump_dir(result_root: str | os.PathLike, device_id: int, outfmt: str = "txt") -> Path:
    """Where a run's outputs go: the vendor tool's `dumpOutput_device<N>/` for the per-image
    formats (the guide's eval reads it), `outputs_device<N>.parquet/` for the dataset."""
    if outfmt == "parquet":
        return Path(result_root) / f"outputs_device{device_id}.parquet"
    return Path(result_root) / f"dumpOutput_device{device_id}"


def open_outputs(result_root: str | os.PathLike, device_id: int, outfmt: str, labels: dict | None = None):
    """The writer for `outfmt`: an OutputFolder (one file per image) or a ParquetOutput."""
    folder = dump_dir(result_root, device_id, check_outfmt(outfmt))
    if outfmt == "parquet":
        from .parquet import ParquetOutput

        return ParquetOutput(folder, labels)
    return OutputFolder(folder, outfmt)


class OutputFolder:
    """`dumpOutput_device<N>/`: prepared once per run (compatible-run check, --overwrite),
    then written a batch at a time, each file atomically."""

    central = False  # every process may write its own files

    def __init__(self, folder: str | os.PathLike, outfmt: str):
        self.dir = Path(folder)
        self.outfmt = check_outfmt(outfmt)
        if self.outfmt not in FILE_FORMATS:
            raise ClsbenchError(f"{outfmt} is not a per-image format; use outputs.open_outputs")

    def name(self, key: str) -> str:
        return output_name(key, self.outfmt)

    def prepare(self, identity: dict, overwrite: bool, sources: dict) -> set[str]:
        """Refuse to mix outputs of different runs; returns the names already finished from
        the same inputs (`sources`: output name -> input fingerprint). Outputs of other or
        changed inputs are removed: the guide's eval would count every file here."""
        self.tmp, recorded = claim(self.dir, identity, overwrite, lambda: list_outputs(self.dir), self.clear,
                                   "outputs")
        present = list_outputs(self.dir)
        done = still_valid(present, recorded, sources)
        for n in present:
            if n not in done:
                (self.dir / n).unlink()
        record_sources(self.dir, identity, sources)
        return done

    def clear(self) -> None:
        for n in list_outputs(self.dir):
            (self.dir / n).unlink()

    def write(self, keys, logits: np.ndarray) -> None:
        for key, blob in zip(keys, encode(logits, self.outfmt)):
            atomic_write_bytes(self.dir / self.name(key), blob, self.tmp)

    def finish(self) -> None:
        remove_temp_dir(self.dir)

    def count(self) -> int:
        return len(list_outputs(self.dir))
