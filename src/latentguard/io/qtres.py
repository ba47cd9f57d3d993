"""Read the files packed in a Qt resource file (``.rcc``, the binary ``rcc`` writes), without Qt.

Used for the photographs Debian's ``gcompris-qt-data`` ships inside its activities' ``.rcc`` files
(:func:`latentguard.io.datasets.gcompris_photos`). The format (Qt's ``rcc``, format versions 1-3): a 20-byte
header ``qres``, version, and the offsets of the tree, the data and the names (big-endian u32; version 3 adds
a u32 of flags); a tree of entries (u32 name offset, u16 flags, then for a directory u32 child count and u32
first child index, for a file u16 country, u16 language and u32 data offset; a u64 modification time follows
from version 2); names as u16 length, u32 hash and UTF-16BE characters; each file's data as a u32 size and
the bytes, zlib-compressed (after a u32 uncompressed size) when the entry's flag 1 is set. zstd-compressed
entries (flag 4, Qt 6's default for text) are refused with a clear error.
"""

from __future__ import annotations

import struct
import zlib
from os import PathLike
from pathlib import Path

_COMPRESSED, _DIRECTORY, _ZSTD = 1, 2, 4


def read_qt_resources(path: str | PathLike) -> dict[str, bytes]:
    """Every file in the Qt resource file ``path``: ``{"dir/sub/name.ext": bytes}`` in the file's tree order."""
    b = Path(path).read_bytes()
    if len(b) < 20 or b[:4] != b"qres":
        raise ValueError(f"{path}: not a Qt resource file (no 'qres' header)")
    version, tree, data, names = struct.unpack(">IIII", b[4:20])
    if version not in (1, 2, 3):
        raise ValueError(f"{path}: Qt resource format version {version} is not supported (1-3 are)")
    entry = 14 if version == 1 else 22

    def name(offset: int) -> str:
        (n,) = struct.unpack(">H", b[names + offset:names + offset + 2])
        return b[names + offset + 6:names + offset + 6 + 2 * n].decode("utf-16-be")

    out: dict[str, bytes] = {}
    stack = [(0, "")]
    while stack:
        i, prefix = stack.pop()
        p = tree + i * entry
        name_offset, flags = struct.unpack(">IH", b[p:p + 6])
        here = prefix + (name(name_offset) if i else "")
        if flags & _DIRECTORY:
            count, first = struct.unpack(">II", b[p + 6:p + 14])
            sep = "/" if i else ""
            stack.extend((c, here + sep) for c in reversed(range(first, first + count)))
            continue
        (offset,) = struct.unpack(">I", b[p + 10:p + 14])
        q = data + offset
        (size,) = struct.unpack(">I", b[q:q + 4])
        raw = b[q + 4:q + 4 + size]
        if flags & _ZSTD:
            raise ValueError(f"{path}: {here} is zstd-compressed, which this reader does not support")
        if flags & _COMPRESSED:
            raw = zlib.decompress(raw[4:])
        out[here] = raw
    return out
