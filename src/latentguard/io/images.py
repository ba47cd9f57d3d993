"""Safe image I/O.

Loading turns any common file (PNG, JPEG, WebP, TIFF, BMP) into a float tensor ``[1,3,H,W]`` in ``[0,1]``:

* EXIF orientation is applied (a phone photo is loaded the way it is displayed);
* palette (``P``), grayscale (``L``, ``I;16``, ``I``, ``F``), ``CMYK``, ``YCbCr``, ``LAB`` are converted explicitly;
* 16-bit images are *scaled* to [0,1] (divided by 65535), never clipped to 8 bits first;
* alpha is composited over a declared background (white by default), never silently dropped; :func:`read_image`
  keeps it apart instead (with the bit depth and what a PNG cannot keep), so that ``protect`` can perturb the
  colour and write the alpha back unchanged, at the source's bit depth;
* a pixel limit guards against decompression bombs, a format allow-list against anything else;
* every failure raises :class:`ImageLoadError` with one line naming the file.

Saving writes PNG by default (8 or 16 bits per channel, RGB or RGBA), atomically (a temporary file in the same
folder, then ``os.replace``; the file gets the usual ``0666 & ~umask`` mode), with the run's provenance in PNG
text chunks. A lossy format needs ``lossy=True`` and warns: lossy re-encoding
weakens adversarial protections.
"""

from __future__ import annotations

import glob as _glob
import io
import json
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from latentguard.io.outputs import atomic_write

ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "TIFF", "BMP", "MPO"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"})
LOSSY_SUFFIXES = frozenset({".jpg", ".jpeg", ".webp"})
DEFAULT_MAX_PIXELS = 64_000_000  # 8000 x 8000


class ImageLoadError(ValueError):
    """An image could not be loaded; ``str(exc)`` is one line naming the file."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class LossyFormatWarning(UserWarning):
    """Saving a protected image in a lossy format weakens the protection."""


@dataclass
class LoadedImage:
    """An image as read, before any compositing: what a writer needs to give the user back the same kind of file.

    Attributes:
        rgb: ``[1,3,H,W]`` float in [0,1]; the colour channels as stored (*not* composited over a background).
        alpha: ``[1,1,H,W]`` float in [0,1], or None when the file has no transparency.
        bits: bits per channel of the source (8 or 16; 32-bit float/int sources report 16, what PNG can hold).
        mode: the source's PIL mode (``RGB``, ``RGBA``, ``LA``, ``P``, ``I;16``, ``CMYK``, ...), or ``RGB;16`` /
            ``RGBA;16`` / ``LA;16`` for 16-bit colour PNGs (read with pypng: Pillow would reduce them to 8 bits).
        notes: what a PNG written from ``rgb``/``alpha``/``bits`` cannot keep of the source (one phrase each).
    """

    rgb: torch.Tensor
    alpha: torch.Tensor | None
    bits: int
    mode: str
    notes: list[str] = field(default_factory=list)

    def composite(self, background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> torch.Tensor:
        """``[1,3,H,W]``: the colour composited over ``background`` where the image is transparent."""
        if self.alpha is None:
            return self.rgb
        bg = torch.tensor(background, dtype=self.rgb.dtype).view(1, 3, 1, 1)
        return (self.rgb * self.alpha + bg * (1.0 - self.alpha)).clamp_(0.0, 1.0)


def _gray3(arr: np.ndarray) -> np.ndarray:
    return np.repeat(arr[..., None], 3, axis=-1)


def _decode(im, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None, int, list[str]]:
    """PIL image (orientation already applied) -> (float32 HxWx3 colour in [0,1], HxWx1 alpha or None, bits, notes)."""
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    elif mode in ("PA", "LA") or (mode == "L" and "transparency" in im.info):
        im = im.convert("RGBA")
        mode = "RGBA"
    elif mode == "RGB" and "transparency" in im.info:
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return _gray3(np.asarray(im, dtype=np.uint16).astype(np.float32) / 65535.0), None, 16, []
    if mode == "I":  # 32-bit int; PNG 16-bit gray decodes to this mode in Pillow
        arr = np.asarray(im, dtype=np.int64)
        deep = arr.max(initial=0) > 255 or im.info.get("bits", 8) == 16 or arr.dtype != np.uint8
        arr = np.clip(arr.astype(np.float64) / (65535.0 if deep else 255.0), 0.0, 1.0).astype(np.float32)
        return _gray3(arr), None, 16 if deep else 8, []
    if mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        if not np.isfinite([lo, hi]).all():
            raise ImageLoadError(path, "floating-point image contains NaN or infinity")
        if lo < 0.0 or hi > 1.0:
            raise ImageLoadError(path, f"floating-point image has values in [{lo:.3g}, {hi:.3g}], expected [0,1]")
        return _gray3(arr), None, 16, ["32-bit floating-point gray written as 16-bit"]
    if mode == "1":
        im = im.convert("L")
        mode = "L"
    notes: list[str] = []
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        if mode == "CMYK":
            notes.append("CMYK converted to RGB (PNG has no CMYK)")
        im = im.convert("RGB")
        mode = "RGB"
    if mode == "L":
        return _gray3(np.asarray(im, dtype=np.float32) / 255.0), None, 8, notes
    if mode == "RGBA":
        arr = np.asarray(im, dtype=np.float32) / 255.0
        return arr[..., :3], arr[..., 3:4], 8, notes
    if mode == "RGB":
        return np.asarray(im, dtype=np.float32) / 255.0, None, 8, notes
    try:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0, None, 8, [f"{mode} converted to RGB"]
    except Exception as exc:  # noqa: BLE001
        raise ImageLoadError(path, f"unsupported image mode {mode!r}") from exc


def _png_header(path: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) of a PNG file, from its IHDR chunk; None when it is not a PNG."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _read_png16(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """16-bit RGB / RGBA / gray+alpha PNG at full depth (Pillow would reduce it to 8 bits): (HxWx3, HxWx1 or None)."""
    import png  # pypng: pure Python, reads every PNG bit depth

    w, h, rows, info = png.Reader(filename=str(path)).asDirect()
    planes = info["planes"]
    arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(h, w, planes).astype(np.float32) / 65535.0
    if planes == 2:  # gray + alpha
        return _gray3(arr[..., 0]), arr[..., 1:2]
    return arr[..., :3], (arr[..., 3:4] if planes == 4 else None)


def read_image(
    path: str | os.PathLike,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    formats: Iterable[str] = ALLOWED_FORMATS,
) -> LoadedImage:
    """Read one image file as it is: colour, alpha (kept apart), bit depth and what a PNG of it cannot keep.

    :func:`load_image` is this, composited over a background. The same checks and the same single error type.

    Raises:
        ImageLoadError: one line naming the file, for any unreadable, unsupported, truncated or oversized input.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise ImageLoadError(path, "file not found")
    if path.is_dir():
        raise ImageLoadError(path, "is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageLoadError(path, "empty file (0 bytes)")
    allowed = {f.upper() for f in formats}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.format not in allowed:
                    raise ImageLoadError(path, f"format {im.format} is not allowed (allowed: {', '.join(sorted(allowed))})")
                w, h = im.size
                if w * h > max_pixels:
                    raise ImageLoadError(path, f"{w}x{h} = {w * h} pixels exceeds the limit of {max_pixels} (decompression-bomb guard)")
                if w < 1 or h < 1:
                    raise ImageLoadError(path, f"invalid size {w}x{h}")
                src_mode = im.mode
                im.load()
                header = _png_header(path) if im.format == "PNG" else None
                if header is not None and header[0] == 16 and header[1] in (2, 4, 6):
                    # Pillow decodes 16-bit colour (and gray+alpha) PNGs to 8 bits: read them at full depth instead.
                    if im.getexif().get(0x0112, 1) not in (1, None):
                        raise ImageLoadError(path, "16-bit colour PNG with an EXIF rotation is not supported")
                    rgb, alpha = _read_png16(path)
                    bits, notes = 16, []
                    src_mode = {2: "RGB;16", 4: "LA;16", 6: "RGBA;16"}[header[1]]
                else:
                    rgb, alpha, bits, notes = _decode(ImageOps.exif_transpose(im), path)
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(path, "not a recognised image file") from None
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(path, f"decompression bomb refused ({exc})") from None
    except Image.DecompressionBombWarning as exc:
        raise ImageLoadError(path, f"decompression bomb refused ({exc})") from None
    except MemoryError:
        raise ImageLoadError(path, "too large to decode in the memory available") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure (Pillow or pypng) is a corrupt file to the caller
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageLoadError(path, f"corrupt or truncated image ({msg})") from None

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float().unsqueeze(0).clamp_(0.0, 1.0)

    return LoadedImage(tensor(rgb), None if alpha is None else tensor(alpha), bits, src_mode, notes)


def load_image(
    path: str | os.PathLike,
    *,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    max_pixels: int = DEFAULT_MAX_PIXELS,
    formats: Iterable[str] = ALLOWED_FORMATS,
) -> torch.Tensor:
    """Load one image file as a float tensor ``[1,3,H,W]`` in ``[0,1]`` (transparency composited over ``background``).

    Args:
        path: the file.
        background: RGB in [0,1] that transparent pixels are composited on (default white).
        max_pixels: refuse images with more pixels than this (decompression-bomb guard).
        formats: allowed PIL format names.

    Raises:
        ImageLoadError: one line naming the file, for any unreadable, unsupported, truncated or oversized input.
    """
    if not all(0.0 <= float(c) <= 1.0 for c in background) or len(tuple(background)) != 3:
        raise ValueError(f"background must be 3 floats in [0,1], got {background!r}")
    return read_image(path, max_pixels=max_pixels, formats=formats).composite(background)


def _channels_hwc(img: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    """Validated ``[3,H,W]`` (+ alpha ``[1,H,W]``) -> float HxWxC in [0,1] (C = 3 or 4), on the CPU."""
    if not isinstance(img, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor, got {type(img).__name__}")
    if img.ndim == 4:
        if img.shape[0] != 1:
            raise ValueError(f"save_image takes one image; got a batch of {img.shape[0]}")
        img = img[0]
    if img.ndim != 3 or img.shape[0] != 3:
        raise ValueError(f"image must have shape [3,H,W] or [1,3,H,W], got {tuple(img.shape)}")
    if not torch.isfinite(img).all():
        raise ValueError("image contains NaN or infinity")
    x = img.detach().float().cpu()
    if alpha is not None:
        a = alpha.detach().float().cpu().reshape(-1, *alpha.shape[-2:])
        if a.shape != (1, *x.shape[-2:]):
            raise ValueError(f"alpha must be [H,W], [1,H,W] or [1,1,H,W] of the image's size, got {tuple(alpha.shape)}")
        if not torch.isfinite(a).all():
            raise ValueError("alpha contains NaN or infinity")
        x = torch.cat([x, a])
    return x.clamp(0, 1).permute(1, 2, 0)


def _to_uint8_hwc(img: torch.Tensor, alpha: torch.Tensor | None = None) -> np.ndarray:
    return _channels_hwc(img, alpha).mul(255.0).round().to(torch.uint8).numpy()


def _text_chunk(key: str, value: str) -> tuple[bytes, bytes]:
    """A PNG ``tEXt`` chunk, or ``iTXt`` (UTF-8) when the text is not Latin-1, as Pillow's ``add_text`` writes."""
    try:
        return b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1")
    except UnicodeEncodeError:
        return b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8")


def _write_png16(fh, arr: np.ndarray, texts: dict[str, str]) -> None:
    """HxWxC uint16 (C = 3 or 4) as a 16-bit PNG (pypng; Pillow writes 16 bits for gray only), text chunks kept."""
    import png  # pypng: pure Python, writes every PNG bit depth

    h, w, c = arr.shape
    buf = io.BytesIO()
    png.Writer(w, h, greyscale=False, alpha=c == 4, bitdepth=16).write_array(buf, arr.reshape(-1).tolist())
    chunks = list(png.Reader(bytes=buf.getvalue()).chunks())
    extra = [_text_chunk(k, v) for k, v in texts.items()]
    png.write_chunks(fh, chunks[:1] + extra + chunks[1:])  # text right after IHDR


def save_image(
    img: torch.Tensor,
    path: str | os.PathLike,
    *,
    metadata: dict | None = None,
    lossy: bool = False,
    quality: int = 95,
    alpha: torch.Tensor | None = None,
    bits: int = 8,
) -> Path:
    """Save an image tensor in ``[0,1]`` atomically. PNG by default; provenance in PNG ``tEXt`` chunks.

    Args:
        img: ``[3,H,W]`` or ``[1,3,H,W]`` float tensor in [0,1] (values outside are clamped).
        path: destination; its suffix picks the format (``.png`` unless ``lossy=True``).
        metadata: JSON-serialisable provenance, stored as PNG text chunks (``latentguard:<key>``).
        lossy: required to write JPEG/WebP; a :class:`LossyFormatWarning` is emitted.
        quality: JPEG/WebP quality when lossy.
        alpha: optional ``[1,1,H,W]`` (or ``[H,W]``) transparency in [0,1], written unchanged as the alpha channel
            (PNG, WebP, TIFF); JPEG and BMP cannot hold one (``ValueError``).
        bits: 8, or 16 for a 16-bit-per-channel PNG (``ValueError`` for other formats).
    """
    from PIL import Image, PngImagePlugin

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"{path}: unsupported output format {suffix or '(none)'}; use .png")
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    if bits == 16 and suffix != ".png":
        raise ValueError(f"{path}: 16 bits per channel are written as PNG only")
    if alpha is not None and suffix in (".jpg", ".jpeg", ".bmp"):
        raise ValueError(f"{path}: {suffix} has no alpha channel; save as .png or .webp")
    if suffix in LOSSY_SUFFIXES:
        if not lossy:
            raise ValueError(
                f"{path}: {suffix} is lossy and weakens protections; save as .png, or pass lossy=True (--lossy) to accept"
            )
        warnings.warn(f"saving {path} in a lossy format ({suffix}); re-encoding weakens adversarial protections",
                      LossyFormatWarning, stacklevel=2)
    texts = {f"latentguard:{k}": v if isinstance(v, str) else json.dumps(v, default=str)
             for k, v in (metadata or {}).items()}
    if bits == 16:
        arr16 = _channels_hwc(img, alpha).mul(65535.0).round().to(torch.int32).numpy().astype(np.uint16)
        with atomic_write(path, "wb") as fh:
            _write_png16(fh, arr16, texts)
        return path
    arr = _to_uint8_hwc(img, alpha)
    pil = Image.fromarray(arr, mode="RGBA" if alpha is not None else "RGB")
    with atomic_write(path, "wb") as fh:
        if suffix == ".png":
            info = PngImagePlugin.PngInfo()
            for k, v in texts.items():
                info.add_text(k, v)
            pil.save(fh, format="PNG", pnginfo=info)
        elif suffix in (".jpg", ".jpeg"):
            pil.save(fh, format="JPEG", quality=int(quality), subsampling=0)
        elif suffix == ".webp":
            pil.save(fh, format="WEBP", quality=int(quality), exact=alpha is not None)
        elif suffix in (".tif", ".tiff"):
            pil.save(fh, format="TIFF")
        else:
            pil.save(fh, format="BMP")
    return path


def read_provenance(path: str | os.PathLike) -> dict:
    """The ``latentguard:*`` text chunks of a PNG written by :func:`save_image`."""
    from PIL import Image

    with Image.open(path) as im:
        text = getattr(im, "text", {}) or {}
    out = {}
    for k, v in text.items():
        if k.startswith("latentguard:"):
            try:
                out[k[len("latentguard:"):]] = json.loads(v)
            except json.JSONDecodeError:
                out[k[len("latentguard:"):]] = v
    return out


def collect_inputs(inputs: Iterable[str | os.PathLike], *, recursive: bool = False) -> list[Path]:
    """Expand files, folders and glob patterns into a sorted, de-duplicated list of candidate image paths.

    Folders contribute files with an image suffix; explicit files are kept whatever their suffix (so that
    a bad file is reported by the loader, not silently ignored). A pattern or path matching nothing raises.
    """
    out: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        s = str(item)
        p = Path(s)
        if p.is_dir():
            it = p.rglob("*") if recursive else p.iterdir()
            found = sorted(q for q in it if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.exists():
            found = [p]
        elif any(ch in s for ch in "*?["):
            found = sorted(Path(q) for q in _glob.glob(s, recursive=True) if Path(q).is_file())
        else:
            raise FileNotFoundError(f"input {s!r} does not exist")
        if not found and not p.is_dir():
            raise FileNotFoundError(f"input pattern {s!r} matched no files")
        for q in found:
            r = q.resolve()
            if r not in seen:
                seen.add(r)
                out.append(q)
    return out


def iter_images(
    paths: Iterable[str | os.PathLike], **load_kwargs
) -> Iterator[tuple[Path, torch.Tensor | None, ImageLoadError | None]]:
    """Yield ``(path, image, None)`` for good files and ``(path, None, error)`` for bad ones; never stops early."""
    for p in paths:
        p = Path(p)
        try:
            yield p, load_image(p, **load_kwargs), None
        except ImageLoadError as exc:
            yield p, None, exc


def iter_read(
    paths: Iterable[str | os.PathLike], **read_kwargs
) -> Iterator[tuple[Path, LoadedImage | None, ImageLoadError | None]]:
    """:func:`iter_images` with :func:`read_image`: ``(path, LoadedImage, None)`` or ``(path, None, error)``."""
    for p in paths:
        p = Path(p)
        try:
            yield p, read_image(p, **read_kwargs), None
        except ImageLoadError as exc:
            yield p, None, exc
