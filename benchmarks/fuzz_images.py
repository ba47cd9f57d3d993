"""Fuzz the image loader: >= 10,000 generated malformed files; only ImageLoadError may come out, no hang, bounded memory.

Seeds: valid small images in every mode and format the loader meets (PNG RGB/RGBA/P/P+tRNS/L/LA/1-bit, 16-bit
RGB/RGBA/gray/gray+alpha via pypng, JPEG RGB/L/CMYK, WebP RGB/RGBA, animated PNG/WebP, TIFF RGB/CMYK/16-bit/multi-page,
BMP, GIF (a format outside the allow-list)). Each generated case is one seed mutated by one or more of: truncation,
bit flips, byte overwrites, a wrong header (another format's magic), a huge or zero declared size (PNG IHDR with a
valid CRC, BMP header, JPEG SOF), a corrupted chunk length; plus random bytes, empty files, text, and decompression
bombs (declared sizes far above the pixel limit; and, last, one all-zero 8000x8000 PNG exactly at the 64-Mpixel
limit, which is decoded, to show what a legal worst case costs: the ``*_malformed_only`` figures are taken before it).

Every case is written to a file and read with :func:`latentguard.io.read_image` (what ``load_image`` and ``protect``
use), each under a 30 s alarm. Writes ``benchmarks/results/fuzz_images.json``: the count of inputs, decoded vs
refused, errors by type (the ImageLoadError's reason, by kind), anything else raised (must be empty), hangs, peak RSS,
the slowest file and the seconds per file.

    OMP_NUM_THREADS=1 python benchmarks/fuzz_images.py --n 10000 --seed 0      # ~10 min on one loaded core
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import signal
import struct
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "fuzz_images.json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAGICS = [PNG_MAGIC, b"\xff\xd8\xff\xe0", b"RIFF\x00\x00\x00\x00WEBP", b"II*\x00", b"MM\x00*", b"BM", b"GIF89a",
          b"\x00\x00\x00\x0cjP  ", b"%PDF-1.4"]
ERROR_KINDS = [  # reason -> kind, first match wins
    ("decompression-bomb guard|decompression bomb", "too many pixels (bomb guard)"),
    ("not a recognised image file", "not an image"),
    ("is not allowed", "format not allowed"),
    ("corrupt or truncated", "corrupt or truncated"),
    ("empty file", "empty file"),
    ("invalid size", "invalid size"),
    ("unsupported image mode", "unsupported mode"),
    ("floating-point image", "bad float values"),
    ("EXIF rotation", "16-bit with EXIF rotation"),
    ("too large to decode", "out of memory"),
]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_raw(w: int, h: int, depth: int, ctype: int, raw_rows: bytes) -> bytes:
    return (PNG_MAGIC + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(raw_rows, 9)) + _chunk(b"IEND", b""))


def _png16(arr: np.ndarray, ctype: int) -> bytes:
    h, w = arr.shape[:2]
    rows = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    return _png_raw(w, h, 16, ctype, rows)


def seeds(rng: np.random.Generator) -> dict[str, bytes]:
    """Valid files, one per variant."""
    from PIL import Image

    rgb = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    a = rng.integers(0, 256, (24, 20), dtype=np.uint8)
    out: dict[str, bytes] = {}

    def save(name: str, im, fmt: str, **kw) -> None:
        b = io.BytesIO()
        im.save(b, format=fmt, **kw)
        out[name] = b.getvalue()

    base = Image.fromarray(rgb)
    save("png-rgb", base, "PNG")
    save("png-rgba", Image.fromarray(np.dstack([rgb, a]), "RGBA"), "PNG")
    save("png-palette", base.quantize(16), "PNG")
    pt = base.quantize(16)
    save("png-palette-trns", pt, "PNG", transparency=0)
    save("png-gray", base.convert("L"), "PNG")
    save("png-gray-alpha", Image.fromarray(np.dstack([rgb[..., 0], a]), "LA"), "PNG")
    save("png-1bit", base.convert("1"), "PNG")
    save("png-animated", base, "PNG", save_all=True, append_images=[base.rotate(90), base.transpose(0)])
    out["png16-rgb"] = _png16(rng.integers(0, 65536, (12, 10, 3)), 2)
    out["png16-rgba"] = _png16(rng.integers(0, 65536, (12, 10, 4)), 6)
    out["png16-gray"] = _png16(rng.integers(0, 65536, (12, 10)), 0)
    out["png16-gray-alpha"] = _png16(rng.integers(0, 65536, (12, 10, 2)), 4)
    save("jpeg-rgb", base, "JPEG", quality=90)
    save("jpeg-gray", base.convert("L"), "JPEG")
    save("jpeg-cmyk", base.convert("CMYK"), "JPEG")
    save("webp-rgb", base, "WEBP", quality=80)
    save("webp-rgba", Image.fromarray(np.dstack([rgb, a]), "RGBA"), "WEBP", lossless=True)
    save("webp-animated", base, "WEBP", save_all=True, append_images=[base.rotate(90)])
    save("tiff-rgb", base, "TIFF")
    save("tiff-cmyk", base.convert("CMYK"), "TIFF")
    save("tiff-16bit-gray", Image.fromarray(rng.integers(0, 65536, (12, 10)).astype(np.uint16)), "TIFF")
    save("tiff-multipage", base, "TIFF", save_all=True, append_images=[base.rotate(90)])
    save("bmp-rgb", base, "BMP")
    save("gif", base, "GIF")
    return out


def _set_png_size(data: bytes, w: int, h: int) -> bytes:
    if not data.startswith(PNG_MAGIC) or data[12:16] != b"IHDR":
        return data
    ihdr = struct.pack(">II", w, h) + data[24:29]
    return data[:8] + _chunk(b"IHDR", ihdr) + data[33:]


def _set_bmp_size(data: bytes, w: int, h: int) -> bytes:
    if not data.startswith(b"BM") or len(data) < 26:
        return data
    return data[:18] + struct.pack("<ii", w, h) + data[26:]


def _set_jpeg_size(data: bytes, w: int, h: int) -> bytes:
    i = data.find(b"\xff\xc0")
    if i < 0 or i + 9 > len(data):
        return data
    return data[:i + 5] + struct.pack(">HH", h & 0xFFFF, w & 0xFFFF) + data[i + 9:]


def mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, list[str]]:
    """One to three mutations; returns the bytes and their names."""
    ops = []
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        op = str(rng.choice(["truncate", "bitflip", "overwrite", "header", "huge-size", "zero-size", "chunk-length"],
                            p=[0.22, 0.25, 0.15, 0.08, 0.14, 0.06, 0.10]))
        ops.append(op)
        if op == "truncate" and len(b) > 1:
            b = b[: int(rng.integers(1, len(b)))]
        elif op == "bitflip" and b:
            for _ in range(int(rng.integers(1, 9))):
                i = int(rng.integers(0, len(b)))
                b[i] ^= 1 << int(rng.integers(0, 8))
        elif op == "overwrite" and b:
            i = int(rng.integers(0, len(b)))
            n = int(rng.integers(1, 17))
            b[i:i + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        elif op == "header":
            m = MAGICS[int(rng.integers(0, len(MAGICS)))]
            b = bytearray(m) + b[len(m):]
        elif op in ("huge-size", "zero-size"):
            w, h = ((int(rng.choice([2**31 - 1, 100_000, 65_535, 1 << 20])), int(rng.choice([1, 100_000, 65_535])))
                    if op == "huge-size" else (int(rng.choice([0, 1])), 0))
            b = bytearray(_set_jpeg_size(_set_bmp_size(_set_png_size(bytes(b), w, h), w, h), w, h))
        elif op == "chunk-length" and len(b) > 40:
            i = 8 if b.startswith(PNG_MAGIC) else int(rng.integers(0, len(b) - 4))
            b[i:i + 4] = struct.pack(">I", int(rng.choice([0, 1, 2**31 - 1, 2**32 - 1, len(b) * 10])))
    return bytes(b), ops


def bombs(include_limit: bool = True) -> dict[str, bytes]:
    """Declared sizes far above the limit, compressed tiny; and one legal worst case at exactly the limit."""
    out = {}
    for w, h in ((100_000, 100_000), (1 << 20, 1 << 14), (2**31 - 1, 1), (9000, 9000)):
        rows = b"\x00" * 4096  # a little data: the declared size is the bomb
        out[f"bomb-png-{w}x{h}"] = _png_raw(w, h, 8, 0, rows)
    out["bomb-bmp"] = _set_bmp_size(seeds_cache["bmp-rgb"], 100_000, 100_000)
    out["bomb-jpeg"] = _set_jpeg_size(seeds_cache["jpeg-rgb"], 65_000, 65_000)
    if include_limit:
        out["limit-png-8000x8000-zeros"] = _png_raw(8000, 8000, 8, 0, b"\x00" * (8001 * 8000))
    return out


seeds_cache: dict[str, bytes] = {}


def cases(n: int, seed: int = 0, include_limit: bool = True):
    """``n`` cases ``(variant, ops, bytes)``: the bombs, the intact seeds, garbage, then mutated seeds."""
    rng = np.random.default_rng(seed)
    seeds_cache.update(seeds(rng))
    all_bombs = bombs(include_limit)
    limit = {k: all_bombs.pop(k) for k in list(all_bombs) if k.startswith("limit")}
    fixed = [(k, ["bomb"], v) for k, v in all_bombs.items()]
    fixed += [(k, ["intact"], v) for k, v in seeds_cache.items()]
    fixed += [("empty", ["empty"], b""), ("text", ["text"], b"hello, not an image\n"),
              ("random", ["random"], rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())]
    for item in fixed[:n]:
        yield item
    names = sorted(seeds_cache)
    for _ in range(max(0, n - len(fixed) - len(limit))):
        k = names[int(rng.integers(0, len(names)))]
        data, ops = mutate(seeds_cache[k], rng)
        yield k, ops, data
    for k, v in limit.items():  # last, so that the figures before it show the malformed files alone
        yield k, ["limit"], v


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def error_kind(reason: str) -> str:
    for pattern, kind in ERROR_KINDS:
        if re.search(pattern, reason):
            return kind
    return "other: " + reason[:60]


def run(n: int, seed: int = 0, *, timeout_s: int = 30, progress: bool = True, include_limit: bool = True) -> dict:
    """Read every case from a file; count what came out."""
    from latentguard.io import ImageLoadError, read_image

    t_start = time.time()
    counts: Counter = Counter()
    by_variant: Counter = Counter()
    by_op: Counter = Counter()
    unexpected: list[dict] = []
    hangs: list[dict] = []
    slowest = (0.0, "")
    before_limit = None
    total = 0
    signal.signal(signal.SIGALRM, _alarm)
    with tempfile.TemporaryDirectory(prefix="fuzz_images_") as tmp:
        path = Path(tmp) / "case"
        for i, (variant, ops, data) in enumerate(cases(n, seed, include_limit)):
            total += 1
            by_variant[variant] += 1
            for op in ops:
                by_op[op] += 1
            if ops == ["limit"]:
                before_limit = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, slowest)
            path.write_bytes(data)
            t0 = time.perf_counter()
            signal.alarm(timeout_s)
            try:
                read_image(path)
                counts["decoded"] += 1
            except ImageLoadError as exc:
                if "\n" in str(exc):
                    unexpected.append({"i": i, "variant": variant, "ops": ops, "error": "multi-line message"})
                counts["ImageLoadError: " + error_kind(exc.reason)] += 1
            except _Hang:
                hangs.append({"i": i, "variant": variant, "ops": ops})
            except Exception as exc:  # noqa: BLE001 - the point: anything else is a finding
                unexpected.append({"i": i, "variant": variant, "ops": ops,
                                   "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
            finally:
                signal.alarm(0)
            dt = time.perf_counter() - t0
            if dt > slowest[0]:
                slowest = (dt, f"{variant} {'+'.join(ops)}")
            if progress and (i + 1) % 1000 == 0:
                print(f"{i + 1}/{n} files, {time.time() - t_start:.0f} s", file=sys.stderr)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    malformed = {} if before_limit is None else {
        "peak_rss_mb_malformed_only": round(before_limit[0] / 1024, 1),
        "max_seconds_per_file_malformed_only": round(before_limit[1][0], 3),
        "slowest_malformed_file": before_limit[1][1],
    }
    return {
        "inputs": total,
        "decoded": counts.pop("decoded", 0),
        "refused_with_ImageLoadError": sum(counts.values()),
        "errors_by_type": dict(counts.most_common()),
        "unexpected_exceptions": unexpected,
        "hangs": hangs,
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "max_seconds_per_file": round(slowest[0], 3),
        "slowest_file": slowest[1],
        **malformed,
        "mean_seconds_per_file": round((time.time() - t_start) / max(total, 1), 5),
        "seconds_total": round(time.time() - t_start, 1),
        "by_variant": dict(sorted(by_variant.items())),
        "by_mutation": dict(by_op.most_common()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=int, default=30, help="seconds per file before it counts as a hang")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    import warnings

    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")  # Pillow's notices about the corrupt files (the point of the exercise)
    res = run(args.n, args.seed, timeout_s=args.timeout)
    res = {"benchmark": "fuzz_images", "command": "python benchmarks/fuzz_images.py " + " ".join(sys.argv[1:]),
           "seed": args.seed, "threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
           "max_pixels": 64_000_000, **res}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps({k: res[k] for k in ("inputs", "decoded", "refused_with_ImageLoadError", "peak_rss_mb",
                                          "max_seconds_per_file", "seconds_total")}))
    print(f"unexpected: {len(res['unexpected_exceptions'])}, hangs: {len(res['hangs'])}", file=sys.stderr)
    return 0 if not res["unexpected_exceptions"] and not res["hangs"] else 1


if __name__ == "__main__":
    sys.exit(main())
