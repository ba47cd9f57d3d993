"""The one per-batch function of ``latentguard protect``: run by the local loop and by Ray actors alike.

:func:`protect_batch` takes a protection (built once per process: the model stays loaded) and a batch of
:class:`ProtectItem` (key, input path or URI, output stem). Per item it reads the file's bytes, derives the
item's seed from ``--seed`` and those bytes (:func:`image_seed`), decodes, protects the image on its own,
writes ``OUT/<stem>.png`` (or ``--lossy``'s format; alpha and 16 bits kept) atomically and returns one
result row; an input that cannot be read, decoded or
protected gives a row with ``status: "error"`` and its message, never an exception. Because each image is
optimised alone with a seed that depends only on its content, the output bytes do not depend on which engine
ran it, on the batch it was in, or on its position in the input list (same device, torch build and thread
count: floating-point reductions can differ across those).

Atomic outputs: the PNG is written into ``OUT/.latentguard-staging/`` and moved into place with
``os.replace`` (one filesystem, so the move is atomic): a kill at any moment leaves either no output or a
whole one, and the staging folder is hidden and emptied by the next run (:func:`clean_staging`).

Inputs (:func:`collect_items`): image files, folders, glob patterns, URIs (``s3://``, ``gs://``, ``file://``
... anything :mod:`pyarrow.fs` opens) and manifests: a ``.csv`` or ``.parquet`` file with a column ``path``,
``uri`` or ``input`` (else its first column) listing files or URIs, relative paths being relative to the
manifest's folder.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Iterator, Sequence

from latentguard.core.cli_args import LOSSY_FORMATS
from latentguard.io import ImageLoadError, LossyFormatWarning, collect_inputs, read_image, save_image

STAGING = ".latentguard-staging"
MANIFEST_SUFFIXES = (".csv", ".parquet")
MANIFEST_COLUMNS = ("path", "uri", "input")
_SEED_SALT = b"latentguard/protect/image-seed/v1\0"


@dataclass(frozen=True)
class ProtectItem:
    """One input: ``key`` (absolute path or URI: what ``results.jsonl`` records as done), ``input`` (as the
    user named it) and ``stem`` (the output is ``OUT/<stem>.png``)."""

    key: str
    input: str
    stem: str


# ----------------------------------------------------------------------------------------------------
# seeds and inputs
# ----------------------------------------------------------------------------------------------------
def content_digest(data: bytes) -> str:
    """SHA-256 of a file's bytes (hex)."""
    return hashlib.sha256(data).hexdigest()


def image_seed(seed: int, data: bytes | str) -> int:
    """The per-image seed: SHA-256 of ``seed`` and the image file's content (its bytes, or their hex digest),
    as a 63-bit int. Independent of the file's name, position, batch and engine."""
    digest = bytes.fromhex(data) if isinstance(data, str) else hashlib.sha256(data).digest()
    h = hashlib.sha256(_SEED_SALT + int(seed).to_bytes(8, "little", signed=False) + digest).digest()
    return int.from_bytes(h[:8], "little") & (2**63 - 1)


def is_uri(s: str) -> bool:
    """``scheme://...`` (a single letter before ``:`` is a Windows drive, not a scheme)."""
    head, sep, _ = s.partition("://")
    return bool(sep) and len(head) > 1 and head.replace("+", "").replace("-", "").isalnum()


def read_bytes(source: str) -> bytes:
    """The bytes of a local file or of a URI that :mod:`pyarrow.fs` can open."""
    if not is_uri(source):
        with open(source, "rb") as fh:
            return fh.read()
    try:
        from pyarrow import fs  # deferred: pyarrow (the latentguard[scale] extra)
    except ImportError:
        raise OSError(f"{source}: reading URIs needs pyarrow: pip install 'latentguard[scale]'") from None
    filesystem, path = fs.FileSystem.from_uri(source)
    with filesystem.open_input_stream(path) as fh:
        return fh.read()


def _name_parts(source: str) -> tuple[str, str]:
    """(stem, parent folder name) of a path or URI."""
    p = PurePosixPath(source.partition("://")[2]) if is_uri(source) else Path(source)
    return p.stem, p.parent.name


def output_stems(sources: Sequence[str]) -> list[str]:
    """Output stem per input: its stem, or ``<folder>_<stem>`` when several inputs share the stem (then
    ``-1``, ``-2`` ... if still taken). Depends on the whole input list, never on batches."""
    parts = [_name_parts(s) for s in sources]
    counts = Counter(stem for stem, _ in parts)
    used: set[str] = set()
    out = []
    for stem, parent in parts:
        s = stem if counts[stem] == 1 else f"{parent}_{stem}"
        base, k = s, 1
        while s in used:
            s = f"{base}-{k}"
            k += 1
        used.add(s)
        out.append(s)
    return out


def _read_manifest(path: Path) -> list[str]:
    """Paths or URIs listed by a CSV or Parquet manifest (column path|uri|input, else the first)."""
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq  # deferred: pyarrow (the latentguard[scale] extra)
        except ImportError:
            raise ValueError(f"{path}: Parquet manifests need pyarrow: pip install 'latentguard[scale]'") from None
        table = pq.read_table(path)
        names = table.column_names
        col = next((c for c in MANIFEST_COLUMNS if c in names), names[0] if names else None)
        if col is None:
            raise ValueError(f"manifest {path} has no columns")
        values = table.column(col).to_pylist()
    else:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
        if not rows:
            raise ValueError(f"manifest {path} is empty")
        header = [h.strip().lower() for h in rows[0]]
        col = next((header.index(c) for c in MANIFEST_COLUMNS if c in header), None)
        values = [r[col if col is not None else 0] for r in (rows[1:] if col is not None else rows) if r]
    out = []
    for v in values:
        if v is None or not str(v).strip():
            continue
        v = str(v).strip()
        out.append(v if is_uri(v) or Path(v).is_absolute() else str(path.parent / v))
    if not out:
        raise ValueError(f"manifest {path} lists no inputs")
    return out


def collect_items(inputs: Iterable[str | os.PathLike]) -> list[ProtectItem]:
    """Expand files, folders, globs, URIs and manifests into items with their keys and output stems
    (de-duplicated by key, in the order given; folders and globs sorted)."""
    sources: list[str] = []
    for item in inputs:
        s = str(item)
        if is_uri(s):
            sources.append(s)
        elif Path(s).is_file() and Path(s).suffix.lower() in MANIFEST_SUFFIXES:
            for entry in _read_manifest(Path(s)):
                sources.extend([entry] if is_uri(entry) or not Path(entry).is_dir() else map(str, collect_inputs([entry])))
        else:
            sources.extend(str(p) for p in collect_inputs([s]))
    seen: set[str] = set()
    uniq = []
    for s in sources:
        key = s if is_uri(s) else str(Path(s).resolve())
        if key not in seen:
            seen.add(key)
            uniq.append((key, s))
    stems = output_stems([s for _, s in uniq])
    return [ProtectItem(k, s, st) for (k, s), st in zip(uniq, stems)]


# ----------------------------------------------------------------------------------------------------
# atomic outputs
# ----------------------------------------------------------------------------------------------------
def clean_staging(out_dir: str | os.PathLike) -> None:
    """Remove what a killed run left in the staging folder (call before a run and after it)."""
    shutil.rmtree(Path(out_dir) / STAGING, ignore_errors=True)


def _publish(img, out_dir: Path, stem: str, suffix: str, save_kw: dict) -> Path:
    """Write ``OUT/<stem><suffix>`` atomically: encode in the staging folder, then ``os.replace`` into place."""
    staging = out_dir / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    dst = out_dir / f"{stem}{suffix}"
    fd, tmp = tempfile.mkstemp(prefix=f"{stem}.", suffix=suffix, dir=staging)  # unique per attempt
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LossyFormatWarning)  # the command says it once
            save_image(img, tmp, **save_kw)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst


# ----------------------------------------------------------------------------------------------------
# the per-batch function
# ----------------------------------------------------------------------------------------------------
def _load(item: ProtectItem, data: bytes):
    if not is_uri(item.input):
        return read_image(item.input)
    with tempfile.TemporaryDirectory(prefix="latentguard-") as d:  # decoded from a private copy, never in OUT
        suffix = PurePosixPath(item.input.partition("://")[2]).suffix or ".img"
        tmp = Path(d) / f"input{suffix}"
        tmp.write_bytes(data)
        try:
            return read_image(tmp)
        except ImageLoadError as exc:
            raise ImageLoadError(item.input, exc.reason) from None


def _one_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def protect_batch(method: Any, items: Sequence[ProtectItem], out_dir: str | os.PathLike, *, seed: int,
                  method_name: str, mask=None, provenance: dict | None = None, lossy: tuple[str, int] | None = None,
                  on_item: Callable[[ProtectItem], None] | None = None,
                  log: Callable[[str], None] | None = None, callback: Callable | None = None) -> list[dict]:
    """Protect a batch of inputs, one image at a time; write their PNGs; return one row per item.

    Args:
        method: a built :class:`~latentguard.protect.engine.Protection` (its model loaded once by the caller).
        items: the batch.
        out_dir: the output folder (exists).
        seed: the run's ``--seed``; each image's generator is seeded with :func:`image_seed` of it and the
            image's bytes.
        method_name: the registry name recorded in the rows (``pca+``, ...).
        mask: optional ``[1,1,H,W]`` region mask; an image of another size is an error row.
        provenance: PNG text chunks for every output (method, budget, surrogates); ``source`` is added.
        lossy: ``(format, quality)`` of ``--lossy`` (JPEG/WebP instead of PNG), or None. The colour is protected
            and any alpha channel written back unchanged, at the input's bit depth where the format holds it;
            ``notes`` in the row say what the format could not keep.
        on_item: called before each item (progress, fault injection in tests).
        log: one-line messages about skipped or failed inputs (default: none).
        callback: passed to :meth:`Protection.protect`: called after every step with a ``StepInfo``
            (the command line's per-step bar).

    Returns:
        Rows ``{"key", "input", "method", "status": "ok"|"error", ...}``: ``ok`` rows add ``output``,
        ``height``, ``width``, ``alpha``, ``bits``, ``notes`` (when any), ``seed``, ``sha256``, the engine's
        :class:`ProtectRecord` fields and ``finished_at`` (Unix time the output was in place); ``error`` rows add
        ``error``.
    """
    from latentguard.ops.runtime import torch_generator  # deferred: torch (ops.runtime imports it)

    out = Path(out_dir)
    rows = []
    for item in items:
        if on_item is not None:
            on_item(item)
        row: dict = {"key": item.key, "input": item.input, "method": method_name}
        try:
            data = read_bytes(item.input)
            digest = content_digest(data)
            loaded = _load(item, data)
        except (ImageLoadError, OSError) as exc:
            msg = _one_line(exc if isinstance(exc, ImageLoadError) else ImageLoadError(item.input, _one_line(exc)))
            if log:
                log(f"latentguard: skipped {msg}")
            rows.append({**row, "status": "error", "error": msg})
            continue
        img = loaded.rgb  # the colour; an alpha channel goes back on unchanged
        if mask is not None and mask.shape[-2:] != img.shape[-2:]:
            msg = f"{item.input}: mask size {tuple(mask.shape[-2:])} != image size {tuple(img.shape[-2:])}"
            if log:
                log(f"latentguard: skipped {msg}")
            rows.append({**row, "status": "error", "error": msg})
            continue
        s = image_seed(seed, digest)
        try:
            res = method.protect(img, mask=mask, generator=torch_generator(s, method.device), callback=callback)
        except (ValueError, FloatingPointError, RuntimeError) as exc:
            msg = _one_line(exc)
            if log:
                log(f"latentguard: failed {item.input}: {msg}")
            rows.append({**row, "status": "error", "error": msg})
            continue
        rec = res.records[0].to_dict()
        rec.pop("index", None)
        protected, alpha, bits, notes = res.images[0], loaded.alpha, loaded.bits, list(loaded.notes)
        if lossy and bits > 8:
            notes.append(f"written at 8 bits per channel ({lossy[0].upper()} holds no more; PNG keeps 16)")
            bits = 8
        if lossy and alpha is not None and lossy[0] == "jpeg":
            notes.append("transparency flattened onto white (JPEG has no alpha; PNG or --lossy webp keep it)")
            a = alpha[0].to(protected.device)
            protected = (protected * a + (1 - a)).clamp(0, 1)
            alpha = None
        if notes and log:
            log(f"latentguard: note: {item.input}: {'; '.join(notes)}")
        name = PurePosixPath(item.input.partition("://")[2]).name if is_uri(item.input) else Path(item.input).name
        suffix = LOSSY_FORMATS[lossy[0]] if lossy else ".png"
        try:
            dst = _publish(protected, out, item.stem, suffix, {
                "alpha": alpha, "bits": bits, "lossy": bool(lossy), "quality": lossy[1] if lossy else 95,
                "metadata": {**(provenance or {}), "source": name}})
        except (ValueError, OSError) as exc:
            msg = _one_line(exc)
            if log:
                log(f"latentguard: failed {item.input}: {msg}")
            rows.append({**row, "status": "error", "error": msg})
            continue
        rows.append({**row, "status": "ok", "output": str(dst), "height": int(img.shape[-2]),
                     "width": int(img.shape[-1]), "alpha": alpha is not None, "bits": bits,
                     **({"notes": notes} if notes else {}), "seed": s, "sha256": digest, **rec,
                     "finished_at": time.time()})
    return rows


def local_engine(args: Any, method: Any, items: Sequence[ProtectItem], out_dir: str | os.PathLike, *,
                 provenance: dict, mask=None, log: Callable[[str], None] | None = None,
                 callback: Callable | None = None) -> Iterator[dict]:
    """The default engine: :func:`protect_batch` in this process, one item per batch, rows yielded as they
    finish (``--engine ray`` swaps in :func:`latentguard.scale.protect.ray_engine`, same signature), ``callback``
    called after every protection step."""
    for item in items:
        yield from protect_batch(method, [item], out_dir, seed=args.seed, method_name=args.method, mask=mask,
                                 provenance=provenance, lossy=getattr(args, "lossy", None), log=log,
                                 callback=callback)
