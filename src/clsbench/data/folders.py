"""Dataset files of the guide's workflow: image folders, .info files, val_label.txt.

Every parser here names the file and line of a malformed entry instead of guessing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .. import ClsbenchError
from .._io import atomic_write_text, check_not_input

IMAGE_EXTENSIONS = {".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".gif"}


def stem(name: str) -> str:
    """The guide's key for a file: its name up to the first '.' (formats.md §3, §6)."""
    return os.path.basename(name).split(".")[0]


def check_unique(pairs, where: str, what: str = "output") -> None:
    """(name, source) pairs: two sources may not share a name (they would share an output)."""
    seen: dict[str, object] = {}
    for name, source in pairs:
        if name in seen:
            raise ClsbenchError(f"{where}: {source} and {seen[name]} would both write {what} {name}; "
                                f"file names must be unique up to their first '.'")
        seen[name] = source


@dataclass
class ImageListing:
    images: list[Path]  # sorted, relative to the root
    ignored: list[Path]  # non-image files, nested folders deeper than one level
    layout: str  # "flat", "class-folders" or "mixed"


def list_images(root: str | os.PathLike) -> ImageListing:
    """A flat `val/` or a `val/<class>/` layout (one level deep), sorted by relative path."""
    root = Path(root)
    if not root.is_dir():
        raise ClsbenchError(f"{root}: not a directory")
    images, ignored, n_flat, n_nested = [], [], 0, 0
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            for sub in sorted(os.scandir(entry.path), key=lambda e: e.name):
                rel = Path(entry.name) / sub.name
                if sub.name.startswith("."):
                    continue
                if sub.is_file() and Path(sub.name).suffix.lower() in IMAGE_EXTENSIONS:
                    images.append(rel)
                    n_nested += 1
                else:
                    ignored.append(rel)
        elif entry.is_file() and Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS:
            images.append(Path(entry.name))
            n_flat += 1
        else:
            ignored.append(Path(entry.name))
    layout = "mixed" if n_flat and n_nested else ("class-folders" if n_nested else "flat")
    return ImageListing(images, ignored, layout)


# ---------------------------------------------------------------- .info files (formats.md §4)

@dataclass(frozen=True)
class InfoEntry:
    idx: int
    path: str
    width: int
    height: int


def check_no_whitespace(path: str | os.PathLike, what: str) -> None:
    """.info lines are '<idx> <path> <W> <H>' split on whitespace: a path with a space in it
    would be read back as other fields. Called before any slow step."""
    p = os.fspath(path)
    if any(c.isspace() for c in p):
        raise ClsbenchError(f"{p}: {what} contains whitespace, which the guide's .info format "
                            f"('<idx> <path> <width> <height>', space-separated) cannot hold; "
                            f"use a path without spaces")


def format_info(entries: list[InfoEntry]) -> str:
    return "".join(f"{e.idx} {e.path} {e.width} {e.height}\n" for e in entries)


def gen_bin_info(bin_dir: str, out: str, width: int, height: int) -> list[InfoEntry]:
    """`gen_dataset_info.py bin`: one line per .bin, sorted, idx continuous from 0.

    The path is written as the reference's glob gives it: os.path.join(bin_dir, name).
    """
    if not os.path.isdir(bin_dir):
        raise ClsbenchError(f"{bin_dir}: not a directory")
    names = sorted(n for n in os.listdir(bin_dir) if n.endswith(".bin") and not n.startswith("."))
    if not names:
        raise ClsbenchError(f"{bin_dir}: holds no .bin files")
    if width < 1 or height < 1:
        raise ClsbenchError(f"width and height must be >= 1, got {width}x{height}")
    entries = [InfoEntry(i, os.path.join(bin_dir, n), int(width), int(height))
               for i, n in enumerate(names)]
    for e in entries:
        check_no_whitespace(e.path, "the .bin path")
    # OUT.info inside DIR is the guide's own habit (gen_dataset_info.py lists only *.bin): only a listed file is refused
    check_not_input(out, {"DIR": bin_dir, "one of the .bin files DIR lists": [e.path for e in entries]}, "OUT.info")
    atomic_write_text(out, format_info(entries))
    return entries


def gen_jpg_info(img_dir: str, out: str) -> list[InfoEntry]:
    """`gen_dataset_info.py jpg`: width/height read from each image header (no decode).

    Unlike the reference, every extension shares one sorted, continuous index, and the
    size is the stored one: EXIF orientation is ignored, as the preprocessing ignores it.
    """
    from PIL import Image

    listing = list_images(img_dir)
    if not listing.images:
        raise ClsbenchError(f"{img_dir}: holds no images")
    listed = [os.path.join(img_dir, str(rel)) for rel in listing.images]
    check_not_input(out, {"DIR": img_dir, "one of the images DIR lists": listed}, "OUT.info")  # before reading
    entries = []
    for i, rel in enumerate(listing.images):
        p = os.path.join(img_dir, str(rel))
        check_no_whitespace(p, "the image path")
        try:
            with Image.open(p) as im:
                w, h = im.size
        except Exception as e:  # PIL raises several unrelated types for bad files
            raise ClsbenchError(f"{p}: not a readable image ({e})") from None
        entries.append(InfoEntry(i, p, w, h))
    atomic_write_text(out, format_info(entries))
    return entries


def _lines(path: str | os.PathLike, what: str):
    """(line number, fields, line) of each non-blank line; CRLF and a trailing blank line are fine."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is not data
    except FileNotFoundError:
        raise ClsbenchError(f"{path}: {what} not found") from None
    except UnicodeDecodeError as e:
        raise ClsbenchError(f"{path}: not a text file ({e})") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield lineno, line.split(), line


def read_info(path: str | os.PathLike) -> list[InfoEntry]:
    entries, seen = [], {}
    for lineno, fields, line in _lines(path, "info file"):
        if len(fields) != 4:
            raise ClsbenchError(
                f"{path}:{lineno}: expected '<idx> <path> <width> <height>', got {line!r}")
        try:
            idx, w, h = int(fields[0]), int(fields[2]), int(fields[3])
        except ValueError:
            raise ClsbenchError(f"{path}:{lineno}: idx, width and height must be integers: {line!r}") from None
        if w <= 0 or h <= 0 or idx < 0:
            raise ClsbenchError(f"{path}:{lineno}: negative or zero value in {line!r}")
        if idx in seen:
            raise ClsbenchError(f"{path}:{lineno}: duplicate idx {idx} (first on line {seen[idx]})")
        seen[idx] = lineno
        entries.append(InfoEntry(idx, fields[1], w, h))
    if not entries:
        raise ClsbenchError(f"{path}: info file is empty")
    entries.sort(key=lambda e: e.idx)
    return entries


# ---------------------------------------------------------------- labels (formats.md §6)

def read_labels(path: str | os.PathLike, num_classes: int | None = None) -> dict[str, int]:
    """`val_label.txt`: `<file name> <label>` per line; keyed by stem like the guide's eval."""
    labels: dict[str, int] = {}
    where: dict[str, int] = {}
    for lineno, fields, line in _lines(path, "label file"):
        if len(fields) != 2:
            raise ClsbenchError(f"{path}:{lineno}: expected '<image name> <label>', got {line!r}")
        try:
            label = int(fields[1])
        except ValueError:
            raise ClsbenchError(f"{path}:{lineno}: label {fields[1]!r} is not an integer") from None
        if label < 0 or (num_classes is not None and label >= num_classes):
            raise ClsbenchError(f"{path}:{lineno}: label {label} out of range 0..{(num_classes or 0) - 1}")
        key = stem(fields[0])
        if key in labels:
            raise ClsbenchError(f"{path}:{lineno}: duplicate image {key!r} (first on line {where[key]})")
        labels[key] = label
        where[key] = lineno
    if not labels:
        raise ClsbenchError(f"{path}: label file is empty")
    return labels


def write_labels(path: str | os.PathLike, pairs: list[tuple[str, int]]) -> None:
    atomic_write_text(path, "".join(f"{name} {label}\n" for name, label in pairs))


def imagenet_wnids() -> list[str]:
    """ImageNet-1k's 1000 WordNet ids in class-index order (package data, from timm)."""
    from importlib.resources import files

    return files("clsbench").joinpath("data/imagenet_synsets.txt").read_text().split()


def labels_from_class_folders(listing: ImageListing) -> list[tuple[str, int]]:
    """Labels of a `val/<wnid>/` layout: each folder's ImageNet class index (n01440764 -> 0,
    n02123045 -> 281, ...), not its rank among the folders present, which would be right
    only for a complete 1000-folder set. Folders that are not ImageNet wnids are refused:
    their classes are unknowable without a label file."""
    index = {w: i for i, w in enumerate(imagenet_wnids())}
    folders = sorted({p.parts[0] for p in listing.images if len(p.parts) == 2})
    unknown = [f for f in folders if f not in index]
    if unknown:
        raise ClsbenchError(f"class folders {', '.join(unknown[:3])}{' ...' if len(unknown) > 3 else ''} "
                            f"are not ImageNet wnids (n01440764 ... n15075141), so their class indices "
                            f"are unknown; give a label file (val_label.txt: '<image name> <class index>' per line)")
    return [(p.name, index[p.parts[0]]) for p in listing.images if len(p.parts) == 2]
