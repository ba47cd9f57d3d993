"""What the service accepts: upload size, sniffed content, pixel count, parameters. Every refusal is a
:class:`RequestError` with an HTTP status and a one-line reason (the API answers ``{"detail": reason}``).

Images are decoded only by :func:`latentguard.io.load_image` (its pixel limit reads the header before any
pixel is decoded, its format allow-list is narrowed to what the bytes' signature says); this module never
decodes pixels itself.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from latentguard.core.units import parse_budget
from latentguard.io import ImageLoadError, load_image
from latentguard.protect import available as available_methods
from latentguard.protect import get_class

# The file signatures of the formats latentguard.io loads (PIL format name, suffix to store under).
_SIGNATURES: tuple[tuple[bytes, int, str, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "PNG", ".png"),
    (b"\xff\xd8\xff", 0, "JPEG", ".jpg"),
    (b"II*\x00", 0, "TIFF", ".tif"),
    (b"MM\x00*", 0, "TIFF", ".tif"),
    (b"BM", 0, "BMP", ".bmp"),
)


class RequestError(Exception):
    """A refused request: ``status`` (4xx) and a one-line ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = int(status)
        self.reason = " ".join(str(reason).split())  # one line, whatever the source said
        super().__init__(self.reason)


def sniff_format(data: bytes) -> tuple[str, str]:
    """``(PIL format, suffix)`` from the bytes' signature; the client's file name and content type are ignored.

    Raises:
        RequestError: 400 for 0 bytes, 415 when the signature is none of PNG, JPEG, WebP, TIFF, BMP.
    """
    if not data:
        raise RequestError(400, "image: empty upload (0 bytes)")
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP", ".webp"
    for magic, offset, fmt, suffix in _SIGNATURES:
        if data[offset:offset + len(magic)] == magic:
            return fmt, suffix
    raise RequestError(415, "image: not a PNG, JPEG, WebP, TIFF or BMP file (content sniffed, not the file name)")


def load_upload(data: bytes, folder: Path, *, max_pixels: int) -> tuple[torch.Tensor, Path]:
    """Write an upload into ``folder`` (inside the data folder) and load it with :func:`latentguard.io.load_image`.

    Returns ``(image [1,3,H,W] in [0,1], stored path)``. Raises :class:`RequestError` (400 corrupt/truncated,
    413 too many pixels, 415 not an image).
    """
    fmt, suffix = sniff_format(data)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"upload{suffix}"
    path.write_bytes(data)
    formats = {"JPEG", "MPO"} if fmt == "JPEG" else {fmt}  # phones' multi-picture JPEGs are JPEG to Pillow's sniffer
    try:
        img = load_image(path, max_pixels=max_pixels, formats=formats)
    except ImageLoadError as exc:
        reason = exc.reason
        if "exceeds the limit" in reason or "decompression bomb" in reason:
            raise RequestError(413, f"image: {reason}") from None
        if "not a recognised image" in reason or "is not allowed" in reason:
            raise RequestError(415, f"image: {reason}") from None
        raise RequestError(400, f"image: {reason}") from None
    return img, path


@dataclass(frozen=True)
class JobParams:
    """A request's validated parameters."""

    method: str
    eps: float
    eps_label: str
    steps: int
    model: str
    preview: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def needs_pipeline(method: str) -> bool:
    """Whether a registered protection attacks a diffusion pipeline (it has a ``pipe`` field)."""
    return any(f.name == "pipe" for f in dataclasses.fields(get_class(method)))


def _bool(name: str, value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    v = str(value).strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise RequestError(422, f"{name}: expected true or false, got {value!r}")


ALLOWED_FIELDS = frozenset({"image", "method", "eps", "steps", "model", "preview", "wait"})


def parse_params(form: dict[str, str], *, config) -> JobParams:
    """Validate the form fields of ``POST /v1/protect`` against the server's limits (422 with one line)."""
    unknown = sorted(set(form) - ALLOWED_FIELDS)
    if unknown:
        raise RequestError(422, f"unknown field(s) {', '.join(unknown)}; accepted: {', '.join(sorted(ALLOWED_FIELDS))}")
    method = (form.get("method") or config.default_method).strip()
    if method not in available_methods():
        raise RequestError(422, f"method: unknown {method!r}; available: {', '.join(available_methods())}")
    eps_text = (form.get("eps") or config.default_eps).strip()
    try:
        eps, label = parse_budget(eps_text)
    except ValueError as exc:
        raise RequestError(422, f"eps: {exc}") from None
    if not 0 < eps <= config.max_eps:
        raise RequestError(422, f"eps: {eps_text} is outside (0, {config.max_eps * 255:g}/255] (use e.g. 16/255)")
    steps_text = (form.get("steps") or str(config.default_steps)).strip()
    try:
        steps = int(steps_text)
    except ValueError:
        raise RequestError(422, f"steps: not an integer: {steps_text!r}") from None
    if not 0 <= steps <= config.max_steps:
        raise RequestError(422, f"steps: {steps} is outside 0..{config.max_steps}")
    model = (form.get("model") or config.models[0]).strip()
    if needs_pipeline(method):
        model = config.editor  # the diffusion baselines attack the editor pipeline itself
    elif model not in config.models:
        raise RequestError(422, f"model: {model!r} is not offered by this server; offered: {', '.join(config.models)}")
    preview = _bool("preview", form.get("preview"), False)
    return JobParams(method=method, eps=eps, eps_label=label, steps=steps, model=model, preview=preview)


def parse_wait(value: str | None, *, config) -> float:
    """The ``wait`` field: seconds to wait for the PNG, in ``[0, sync_wait_s]`` (default ``sync_wait_s``)."""
    if value is None or value == "":
        return float(config.sync_wait_s)
    try:
        w = float(value)
    except ValueError:
        raise RequestError(422, f"wait: not a number: {value!r}") from None
    if not math.isfinite(w) or w < 0:
        raise RequestError(422, f"wait: must be >= 0 seconds, got {value!r}")
    return min(w, float(config.sync_wait_s))
