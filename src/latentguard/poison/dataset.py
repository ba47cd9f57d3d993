"""Text-image datasets on disk: a folder of images plus one captions file.

Format (documented in ``docs/poison.md``)::

    DATASET/
      captions.csv        # or captions.jsonl
      images/00000.png    # any layout; paths in the captions file are relative to DATASET/

``captions.csv`` has a header row with at least ``file,caption``; ``concept`` is optional (the label the
caption names, used for per-concept reports). ``captions.jsonl`` has one object per line with the same
keys. Other columns are kept as strings; two have a meaning here:

* ``poisoned`` (``0``/``1``): ground truth written by ``latentguard poison``; ``audit alignment`` uses it
  only to report the precision of its ranking, never to compute AD.
* ``source_concept``: the concept the image really shows (differs from ``concept`` in dirty-label pairs).

Paths must be relative and stay inside the folder (``..`` and absolute paths are refused).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from latentguard.io.datasets import CAPTION_TEMPLATES, FASHION_CLASSES, caption_for, fashion_mnist, fashion_to_rgb32
from latentguard.io import atomic_write_text, load_image, save_image

CAPTION_FILES = ("captions.csv", "captions.jsonl")
STANDARD_COLUMNS = ("file", "caption", "concept")


@dataclass(frozen=True)
class PairRecord:
    """One text-image pair: ``file`` relative to the dataset root, its caption, optional concept, extras."""

    file: str
    caption: str
    concept: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.file, str) or not self.file:
            raise ValueError(f"file must be a non-empty relative path, got {self.file!r}")
        p = Path(self.file)
        if p.is_absolute() or ".." in p.parts:
            raise ValueError(f"file must be a relative path inside the dataset folder, got {self.file!r}")
        if not isinstance(self.caption, str):
            raise ValueError(f"caption must be a string, got {type(self.caption).__name__} for {self.file!r}")

    @property
    def poisoned(self) -> bool | None:
        v = self.extra.get("poisoned")
        if v is None or v == "":
            return None
        return str(v).strip().lower() in ("1", "true", "yes")

    def to_row(self) -> dict[str, str]:
        row = {"file": self.file, "caption": self.caption}
        if self.concept is not None:
            row["concept"] = self.concept
        row.update({k: str(v) for k, v in self.extra.items()})
        return row


@dataclass(frozen=True)
class CaptionDataset:
    """A dataset folder and its records (order = the captions file's order)."""

    root: Path
    records: tuple[PairRecord, ...]
    captions_file: Path | None = None

    def __len__(self) -> int:
        return len(self.records)

    @property
    def captions(self) -> list[str]:
        return [r.caption for r in self.records]

    @property
    def concepts(self) -> list[str | None]:
        return [r.concept for r in self.records]

    @property
    def paths(self) -> list[Path]:
        return [self.root / r.file for r in self.records]

    def column(self, name: str) -> list[str | None]:
        """Values of a column (``file``, ``caption``, ``concept`` or an extra one; None where missing)."""
        if name in ("file", "caption", "concept"):
            return [getattr(r, name) for r in self.records]
        return [r.extra.get(name) for r in self.records]

    def poisoned_mask(self) -> np.ndarray | None:
        """Boolean ground-truth mask from the ``poisoned`` column, or None if the column is absent."""
        vals = [r.poisoned for r in self.records]
        if all(v is None for v in vals):
            return None
        return np.array([bool(v) for v in vals])

    def load_images(self, size: int | None = None, *, progress: bool = False) -> torch.Tensor:
        """All images as ``[N,3,H,W]`` in [0,1]. ``size`` resizes to ``size x size`` (bilinear, antialiased);
        without it all images must share one size. Raises ``ImageLoadError`` naming a bad file."""

        it = self.paths
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc="load images", unit="img", leave=False)
        out = []
        for p in it:
            x = load_image(p)
            if size is not None and x.shape[-2:] != (size, size):
                x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                                    align_corners=False).clamp(0, 1)
            out.append(x)
        shapes = {tuple(x.shape[-2:]) for x in out}
        if len(shapes) > 1:
            raise ValueError(f"images of {self.root} have several sizes {sorted(shapes)}; pass size= to resize")
        return torch.cat(out) if out else torch.empty(0, 3, size or 0, size or 0)


def _find_captions(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"dataset {path} does not exist")
    for name in CAPTION_FILES:
        if (path / name).is_file():
            return path / name
    raise ValueError(f"dataset {path} has no captions file ({' or '.join(CAPTION_FILES)})")


def _record(row: dict, where: str) -> PairRecord:
    if "file" not in row or "caption" not in row:
        raise ValueError(f"{where}: needs the fields 'file' and 'caption', got {sorted(row)}")
    concept = row.get("concept")
    concept = None if concept is None or str(concept) == "" else str(concept)
    extra = {k: "" if v is None else str(v) for k, v in row.items() if k not in STANDARD_COLUMNS}
    try:
        return PairRecord(str(row["file"]), "" if row["caption"] is None else str(row["caption"]), concept, extra)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def read_dataset(path: str | os.PathLike, *, check_files: bool = True) -> CaptionDataset:
    """Read a dataset folder (or its captions file directly).

    Raises:
        FileNotFoundError: the folder is missing.
        ValueError: no captions file, a malformed row (file and line named), an unsafe path, an empty
            dataset, or (``check_files``) an image file that does not exist.
    """
    cap = _find_captions(Path(path))
    root = cap.parent
    records: list[PairRecord] = []
    if cap.suffix.lower() == ".csv":
        with open(cap, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or "file" not in reader.fieldnames or "caption" not in reader.fieldnames:
                raise ValueError(f"{cap}: the header must name at least 'file' and 'caption', got {reader.fieldnames}")
            for lineno, row in enumerate(reader, start=2):
                if None in row:
                    raise ValueError(f"{cap}:{lineno}: more fields than the header has")
                records.append(_record(row, f"{cap}:{lineno}"))
    elif cap.suffix.lower() == ".jsonl":
        with open(cap, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{cap}:{lineno}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{cap}:{lineno}: each line must be a JSON object")
                records.append(_record(row, f"{cap}:{lineno}"))
    else:
        raise ValueError(f"{cap}: captions file must be .csv or .jsonl")
    if not records:
        raise ValueError(f"{cap}: the dataset has no pairs")
    if check_files:
        for r in records:
            if not (root / r.file).is_file():
                raise ValueError(f"{cap}: image {r.file!r} not found under {root}")
    return CaptionDataset(root=root, records=tuple(records), captions_file=cap)


def write_captions(root: str | os.PathLike, records: Sequence[PairRecord], fmt: str = "csv") -> Path:
    """Write ``captions.csv`` (union of columns, standard ones first) or ``captions.jsonl`` atomically."""

    root = Path(root)
    if fmt == "csv":
        cols = ["file", "caption"]
        if any(r.concept is not None for r in records):
            cols.append("concept")
        for r in records:
            for k in r.extra:
                if k not in cols:
                    cols.append(k)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        for r in records:
            w.writerow(r.to_row())
        return atomic_write_text(root / "captions.csv", buf.getvalue())
    if fmt == "jsonl":
        text = "".join(json.dumps(r.to_row()) + "\n" for r in records)
        return atomic_write_text(root / "captions.jsonl", text)
    raise ValueError(f"fmt must be csv|jsonl, got {fmt!r}")


def write_dataset(
    out_dir: str | os.PathLike,
    images: torch.Tensor | Sequence[torch.Tensor],
    captions: Sequence[str],
    *,
    concepts: Sequence[str | None] | None = None,
    extra: dict[str, Sequence] | None = None,
    names: Sequence[str] | None = None,
    fmt: str = "csv",
    progress: bool = False,
) -> CaptionDataset:
    """Write images (PNG, under ``images/``) and the captions file; returns the dataset as read back.

    Args:
        out_dir: the dataset folder (created).
        images: ``[N,3,H,W]`` in [0,1] or a sequence of ``[3,H,W]`` / ``[1,3,H,W]`` tensors.
        captions: one caption per image.
        concepts: optional concept label per image.
        extra: further columns, each a sequence with one value per image.
        names: relative file names (default ``images/00000.png`` ...).
        fmt: ``csv`` or ``jsonl``.
    """

    n = len(images)
    if len(captions) != n:
        raise ValueError(f"captions must have one entry per image ({n}), got {len(captions)}")
    if concepts is not None and len(concepts) != n:
        raise ValueError(f"concepts must have one entry per image ({n}), got {len(concepts)}")
    extra = dict(extra or {})
    for k, col in extra.items():
        if k in STANDARD_COLUMNS:
            raise ValueError(f"extra column {k!r} clashes with a standard column")
        if len(col) != n:
            raise ValueError(f"extra column {k!r} must have one entry per image ({n}), got {len(col)}")
    width = max(5, len(str(n - 1)))
    names = list(names) if names is not None else [f"images/{i:0{width}d}.png" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"names must have one entry per image ({n}), got {len(names)}")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        records.append(PairRecord(names[i], str(captions[i]), None if concepts is None or concepts[i] is None
                                  else str(concepts[i]), {k: str(col[i]) for k, col in extra.items()}))
    it = range(n)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="write images", unit="img", leave=False)
    for i in it:
        save_image(images[i], root / names[i])
    write_captions(root, records, fmt)
    return CaptionDataset(root=root, records=tuple(records), captions_file=root / f"captions.{fmt}")


def fashion_subset(n: int, *, split: str = "train", seed: int = 0, balanced: bool = True,
                   exclude: Sequence[int] | None = None) -> np.ndarray:
    """Indices of ``n`` Fashion-MNIST images (class-balanced when ``balanced``), seeded, sorted."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _, labels = fashion_mnist(split)
    rng = np.random.default_rng(seed)
    pool = np.ones(len(labels), bool)
    if exclude is not None:
        pool[np.asarray(exclude, dtype=np.int64)] = False
    if not balanced:
        cand = np.flatnonzero(pool)
        if n > len(cand):
            raise ValueError(f"n={n} exceeds the {len(cand)} available images")
        return np.sort(rng.choice(cand, n, replace=False))
    k = len(FASHION_CLASSES)
    per = [n // k + (1 if c < n % k else 0) for c in range(k)]
    out = []
    for c in range(k):
        cand = np.flatnonzero(pool & (labels == c))
        if per[c] > len(cand):
            raise ValueError(f"n={n} needs {per[c]} images of class {c}, only {len(cand)} available")
        out.append(rng.choice(cand, per[c], replace=False))
    return np.sort(np.concatenate(out))


def fashion_pairs(n: int, *, split: str = "train", seed: int = 0, template: int | str = 0,
                  exclude: Sequence[int] | None = None):
    """An in-memory Fashion-MNIST caption set: ``(images [n,3,32,32], captions, concepts, labels, ids)``.

    ``template``: index into ``io.datasets.CAPTION_TEMPLATES`` or ``"random"`` (seeded per image).
    Concepts are the class names (``io.datasets.FASHION_CLASSES``).
    """
    ids = fashion_subset(n, split=split, seed=seed, exclude=exclude)
    imgs, labels = fashion_mnist(split)
    lab = labels[ids]
    if template == "random":
        tmpl = np.random.default_rng(seed + 1).integers(0, len(CAPTION_TEMPLATES), len(ids))
    elif isinstance(template, int) and 0 <= template < len(CAPTION_TEMPLATES):
        tmpl = np.full(len(ids), template)
    else:
        raise ValueError(f"template must be 0..{len(CAPTION_TEMPLATES) - 1} or 'random', got {template!r}")
    x = torch.from_numpy(fashion_to_rgb32(imgs[ids]))
    caps = [caption_for(int(c), int(t)) for c, t in zip(lab, tmpl)]
    concepts = [FASHION_CLASSES[int(c)] for c in lab]
    return x, caps, concepts, lab, ids


def export_fashion_mnist(out_dir: str | os.PathLike, n: int = 2000, *, split: str = "train", seed: int = 0,
                         template: int | str = 0, fmt: str = "csv", progress: bool = False) -> CaptionDataset:
    """Export a class-balanced Fashion-MNIST subset (32x32 RGB PNGs) as a caption dataset.

    Columns: ``file, caption, concept`` (class name), ``label`` (0-9), ``index`` (into the split),
    ``source_concept`` (= concept: the images are clean), ``poisoned`` (0).
    """
    x, caps, concepts, lab, ids = fashion_pairs(n, split=split, seed=seed, template=template)
    return write_dataset(out_dir, x, caps, concepts=concepts, fmt=fmt, progress=progress,
                         extra={"label": lab.tolist(), "index": ids.tolist(), "source_concept": concepts,
                                "poisoned": [0] * len(ids)})


@dataclass(frozen=True, eq=False)
class PairSet:
    """An in-memory text-image dataset: what the poisons take and return (inputs are never mutated).

    Attributes:
        images: ``[N,3,H,W]`` in [0,1].
        captions: one caption per image.
        concepts: the concept each caption names (None where unknown).
        source_concepts: the concept each image shows (None where unknown).
        poisoned: ground-truth mask ``[N]`` (all False for clean data).
        extra: further per-pair columns (tuples of length N), e.g. ``label``, ``index``, ``latent_target``.
    """

    images: torch.Tensor
    captions: tuple[str, ...]
    concepts: tuple[str | None, ...]
    source_concepts: tuple[str | None, ...]
    poisoned: np.ndarray
    extra: dict[str, tuple] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.captions)
        if self.images.ndim != 4 or self.images.shape[0] != n:
            raise ValueError(f"images must be [N,3,H,W] with N = {n} captions, got {tuple(self.images.shape)}")
        for name in ("concepts", "source_concepts"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} must have one entry per pair ({n})")
        if np.asarray(self.poisoned).shape != (n,):
            raise ValueError(f"poisoned must be a boolean mask of length {n}")
        for k, col in self.extra.items():
            if len(col) != n:
                raise ValueError(f"extra column {k!r} must have one entry per pair ({n})")

    def __len__(self) -> int:
        return len(self.captions)

    @classmethod
    def from_lists(cls, images: torch.Tensor, captions: Sequence[str], concepts: Sequence[str | None],
                   source_concepts: Sequence[str | None] | None = None, poisoned: Sequence[bool] | None = None,
                   extra: dict[str, Sequence] | None = None) -> "PairSet":
        n = len(captions)
        return cls(images, tuple(captions), tuple(concepts),
                   tuple(source_concepts) if source_concepts is not None else tuple(concepts),
                   np.asarray(poisoned if poisoned is not None else np.zeros(n, bool), dtype=bool),
                   {k: tuple(v) for k, v in (extra or {}).items()})

    @classmethod
    def from_dataset(cls, ds: CaptionDataset, size: int | None = None, *, progress: bool = False) -> "PairSet":
        """Load a :class:`CaptionDataset` (``source_concept`` and ``poisoned`` columns used when present)."""
        images = ds.load_images(size, progress=progress)
        src = ds.column("source_concept")
        src = [s if s not in (None, "") else c for s, c in zip(src, ds.concepts)]
        mask = ds.poisoned_mask()
        reserved = {"source_concept", "poisoned"}
        keys = [k for r in ds.records for k in r.extra if k not in reserved]
        extra = {k: tuple(r.extra.get(k, "") for r in ds.records) for k in dict.fromkeys(keys)}
        return cls(images, tuple(ds.captions), tuple(ds.concepts), tuple(src),
                   mask if mask is not None else np.zeros(len(ds), bool), extra)

    def write(self, out_dir: str | os.PathLike, *, fmt: str = "csv", progress: bool = False) -> CaptionDataset:
        """Write as a dataset folder, with the ``source_concept`` and ``poisoned`` ground-truth columns."""
        extra = dict(self.extra)
        extra["source_concept"] = ["" if s is None else s for s in self.source_concepts]
        extra["poisoned"] = [int(p) for p in self.poisoned]
        return write_dataset(out_dir, self.images, self.captions, concepts=self.concepts, extra=extra, fmt=fmt,
                             progress=progress)
