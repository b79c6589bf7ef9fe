"""`--outfmt parquet`: every image's output as one row of a Parquet dataset, for runs too big
for one file per image (1.28 M files for ImageNet train; a driver writing them caps a cluster).

The dataset is a folder `result/outputs_device<N>.parquet/` of parts `part-<n>.parquet`, each
written whole to a temp file beside the folder and renamed in, so a reader (or a resumed run)
only ever sees complete parts. Rows: `image` (the key the per-image formats name their files
by), `label` (from the run's label file, null where none is known), `top5` (class indices,
best first, ties by ascending index, as evaluate ranks them) and `logits` (float32, every
class). The guide's imagenet_acc_eval.py cannot read it; `clsbench eval` reads both.

Resume: a rerun reads the `image` column of the parts already there and skips those images;
rows still buffered when a run is killed are redone (at most the rows of one part: 4,096 unless
CLSBENCH_PARQUET_ROWS says otherwise, e.g. fewer for runs that are often interrupted). Parts are
written by one process (the local engine's parent, the Ray driver; one writer thread in the
cuda feeder), in the order results arrive, so the same data and settings give the same rows in the same parts.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from .. import ClsbenchError
from .._io import ConflictError, atomic_write_bytes, claim, record_sources, remove_temp_dir, still_valid
from .scores import top5

PART_ROWS = 4096  # rows per part: ~16 MB of logits at 1,000 classes


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ClsbenchError("--outfmt parquet needs pyarrow: pip install 'clsbench[parquet]'") from None
    return pa, pq


def list_parts(folder: str | os.PathLike) -> list[Path]:
    """The parts clsbench wrote (`part-<n>.parquet`), in order; other files are not ours."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("part-*.parquet") if p.stem[5:].isdigit())


def is_dataset(folder: str | os.PathLike) -> bool:
    return str(folder).rstrip("/").endswith(".parquet") or bool(list_parts(folder))


def _check_schema(pf, part: Path, columns: list[str]) -> None:
    """A part from elsewhere (untrusted) must have clsbench's columns with clsbench's types."""
    pa, _ = _pa()
    schema = pf.schema_arrow
    want = {"image": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
            "logits": lambda t: pa.types.is_fixed_size_list(t) and pa.types.is_floating(t.value_type),
            "label": pa.types.is_integer,
            "top5": lambda t: pa.types.is_fixed_size_list(t) and pa.types.is_integer(t.value_type)}
    for c in columns:
        i = schema.get_field_index(c)
        if i < 0:
            raise ClsbenchError(f"{part}: no column {c!r}: not a clsbench Parquet part (columns: "
                                f"{', '.join(schema.names)[:200]})")
        if not want[c](schema.field(i).type):
            raise ClsbenchError(f"{part}: column {c!r} is {schema.field(i).type}, not what clsbench writes")


def _batches(part: Path, columns: list[str]):
    """The part's record batches; anything pyarrow cannot read is one error naming the part."""
    _, pq = _pa()
    try:
        pf = pq.ParquetFile(part)
    except Exception as e:  # pyarrow's errors name no file; ours do
        raise ClsbenchError(f"{part}: not a readable clsbench Parquet part ({e})") from None
    _check_schema(pf, part, columns)
    try:
        yield from pf.iter_batches(batch_size=1024, columns=columns)
    except Exception as e:
        raise ClsbenchError(f"{part}: not a readable clsbench Parquet part ({e})") from None


def iter_rows(folder: str | os.PathLike):
    """(part, keys, logits float32 (n, classes)) per record batch of every part, in part order."""
    for part in list_parts(folder):
        for b in _batches(part, ["image", "logits"]):
            col = b.column(1)
            try:
                logits = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, col.type.list_size)
            except (AttributeError, ValueError) as e:
                raise ClsbenchError(f"{part}: logits are not a fixed-size list of floats ({e})") from None
            yield part, b.column(0).to_pylist(), logits.astype(np.float32, copy=False)


def finished_keys(folder: str | os.PathLike) -> set[str]:
    return {k for part in list_parts(folder) for b in _batches(part, ["image"]) for k in b.column(0).to_pylist()}


class ParquetOutput:
    """The Parquet dataset with OutputFolder's interface (prepare, name, write, finish,
    count). `central`: written by one process only, so the local streaming engine sends
    its workers' rows to the parent instead of writing in each worker."""

    outfmt = "parquet"
    central = True

    def __init__(self, folder: str | os.PathLike, labels: dict[str, int] | None = None):
        _pa()
        self.dir = Path(folder)
        self.labels = labels or {}
        self.keys: list[str] = []
        self.rows: list[np.ndarray] = []
        self.lock = threading.Lock()
        self.next_part = 0
        env = os.environ.get("CLSBENCH_PARQUET_ROWS", "")
        if env and not (env.isdigit() and int(env) > 0):
            raise ClsbenchError(f"CLSBENCH_PARQUET_ROWS must be a whole number of rows >= 1, got {env!r}")
        self.part_rows = int(env) if env else PART_ROWS

    def name(self, key: str) -> str:
        return key

    def prepare(self, identity: dict, overwrite: bool, sources: dict) -> set[str]:
        """Refuse to mix outputs of different runs; returns the images already in parts. A
        row cannot be taken out of a part: rows of inputs that changed, or that this run does
        not have, are refused with the reason (--overwrite starts afresh)."""
        self.tmp, recorded = claim(self.dir, identity, overwrite, lambda: list_parts(self.dir), self.clear,
                                   "parts")
        parts = list_parts(self.dir)
        self.next_part = 1 + max((int(p.stem[5:]) for p in parts), default=-1)
        present = finished_keys(self.dir)
        stale = sorted(present - still_valid(present, recorded, sources))
        if stale:
            raise ConflictError(f"{self.dir}: {len(stale)} row(s) come from inputs this run does not have or that "
                                f"changed since (e.g. {stale[0]}); rows cannot be replaced in a part")
        record_sources(self.dir, identity, sources)
        return present

    def clear(self) -> None:
        for p in list_parts(self.dir):
            p.unlink()

    def write(self, keys, logits: np.ndarray) -> None:
        with self.lock:
            self.keys.extend(keys)
            self.rows.append(np.array(logits, dtype=np.float32))
            while len(self.keys) >= self.part_rows:  # parts of exactly part_rows, however batches arrive
                self._flush(self.part_rows)

    def _flush(self, n: int | None = None) -> None:
        if not self.keys:
            return
        pa, pq = _pa()
        logits = np.concatenate(self.rows)
        n = len(self.keys) if n is None else n
        keys, self.keys = self.keys[:n], self.keys[n:]
        logits, rest = logits[:n], logits[n:]
        self.rows = [rest] if len(rest) else []
        best = top5(logits)  # (n, 5), or (n, classes) for fewer than five classes
        table = pa.table({
            "image": pa.array(keys, pa.string()),
            "label": pa.array([self.labels.get(k) for k in keys], pa.int32()),
            "top5": pa.FixedSizeListArray.from_arrays(pa.array(best.ravel()), best.shape[1]),
            "logits": pa.FixedSizeListArray.from_arrays(pa.array(logits.ravel()), logits.shape[1]),
        })
        sink = pa.BufferOutputStream()
        # float32 logits barely compress; keys are unique (no dictionary); statistics only where a
        # reader can filter on them
        pq.write_table(table, sink, compression="none", row_group_size=n, use_dictionary=False,
                       write_statistics=["image", "label"])
        atomic_write_bytes(self.dir / f"part-{self.next_part:05d}.parquet", sink.getvalue().to_pybytes(), self.tmp)
        self.next_part += 1

    def finish(self) -> None:
        with self.lock:
            self._flush()
        remove_temp_dir(self.dir)

    def count(self) -> int:
        _, pq = _pa()
        return sum(pq.read_metadata(p).num_rows for p in list_parts(self.dir))
