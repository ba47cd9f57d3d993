"""The Qt resource reader (io/qtres.py) on a resource file written here byte by byte, and the gcompris photo loader."""

from __future__ import annotations

import struct
import zlib

import pytest

from latentguard.io import datasets
from latentguard.io.qtres import read_qt_resources


def _rcc(files: dict[str, tuple[bytes, bool]], version: int = 3) -> bytes:
    """A Qt resource file holding ``files`` (``"dir/name": (bytes, compress)``) under one directory level."""
    dirs: dict[str, list[str]] = {}
    for path in files:
        d, n = path.split("/")
        dirs.setdefault(d, []).append(n)
    names, name_at = b"", {}
    for n in sorted({*dirs, *(n for v in dirs.values() for n in v)}):
        name_at[n] = len(names)
        enc = n.encode("utf-16-be")
        names += struct.pack(">HI", len(n), 0) + enc
    data, data_at = b"", {}
    for path, (blob, compress) in files.items():
        data_at[path] = len(data)
        body = struct.pack(">I", len(blob)) + zlib.compress(blob) if compress else blob
        data += struct.pack(">I", len(body)) + body
    tail = b"\0" * 8 if version >= 2 else b""
    # entries: 0 root, 1..D directories, then the files of each directory in order
    order = sorted(dirs)
    first_file = 1 + len(order)
    entries = [struct.pack(">IHII", 0, 2, len(order), 1) + tail]
    k = first_file
    for d in order:
        entries.append(struct.pack(">IHII", name_at[d], 2, len(dirs[d]), k) + tail)
        k += len(dirs[d])
    for d in order:
        for n in dirs[d]:
            path = f"{d}/{n}"
            entries.append(struct.pack(">IHHHI", name_at[n], 1 if files[path][1] else 0, 0, 0, data_at[path]) + tail)
    head = 24 if version >= 3 else 20
    data_off = head
    names_off = data_off + len(data)
    tree_off = names_off + len(names)
    header = b"qres" + struct.pack(">IIII", version, tree_off, data_off, names_off)
    if version >= 3:
        header += struct.pack(">I", 0)
    return header + data + names + b"".join(entries)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_reads_every_file_raw_and_compressed(tmp_path, version):
    files = {"a/x.txt": (b"hello" * 50, True), "a/y.bin": (bytes(range(256)), False), "b/z.txt": (b"", False)}
    p = tmp_path / "t.rcc"
    p.write_bytes(_rcc(files, version))
    assert read_qt_resources(p) == {k: v for k, (v, _) in files.items()}


def test_refuses_what_it_cannot_read(tmp_path):
    p = tmp_path / "bad.rcc"
    p.write_bytes(b"not a resource file")
    with pytest.raises(ValueError, match="not a Qt resource file"):
        read_qt_resources(p)
    blob = bytearray(_rcc({"a/x": (b"data", False)}))
    blob[4:8] = struct.pack(">I", 9)
    p.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="version 9"):
        read_qt_resources(p)


def test_gcompris_photos_missing_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "GCOMPRIS_DIR", tmp_path)
    with pytest.raises(datasets.DataUnavailableError, match="gcompris-qt-data"):
        datasets.gcompris_photos()


def test_gcompris_photos_from_the_installed_package():
    if not all((datasets.GCOMPRIS_DIR / n).is_file() for n in datasets.GCOMPRIS_PHOTO_FOLDERS):
        pytest.skip("Debian's gcompris-qt-data is not installed")
    photos = datasets.gcompris_photos()
    # measured on gcompris-qt-data 3.1-2: 115 photographs of at least 256 px in the five activities
    assert len(photos) >= 100
    assert all(p.dtype.name == "uint8" and p.ndim == 3 and p.shape[2] == 3 and min(p.shape[:2]) >= 256 for p in photos)
    assert len(datasets.photos("gcompris")) == len(photos)


def test_gcompris_licences_match_by_stem_last_paragraph_wins(tmp_path):
    """DEP-5 matching as the loader needs it: the rcc's .webp matches the copyright file's .jpg by stem, a
    glob matches, the last matching paragraph wins, ``Files: *`` is the fallback, and the pattern is reported."""
    cf = tmp_path / "copyright"
    cf.write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: The authors\nLicense: GPL-3+\n\n"
        "Files: src/activities/erase/resource/cat1.jpg\n       src/activities/erase/resource/maki*.jpg\n"
        "Copyright: A. Photographer\n           and another\nLicense: CC-BY-SA-3.0\n comment text\n\n"
        "Files: src/activities/erase/resource/maki2.jpg\nCopyright: B\nLicense: public-domain\n"
    )
    got = datasets.gcompris_licences(["erase/resource/cat1.webp", "erase/resource/maki1.webp",
                                      "erase/resource/maki2.webp", "erase/resource/dog.webp"], copyright_file=cf)
    assert got["erase/resource/cat1.webp"] == {"license": "CC-BY-SA-3.0", "copyright": "A. Photographer and another",
                                               "files": "src/activities/erase/resource/cat1.jpg"}
    assert got["erase/resource/maki1.webp"]["license"] == "CC-BY-SA-3.0"
    assert got["erase/resource/maki2.webp"]["license"] == "public-domain"
    assert got["erase/resource/dog.webp"] == {"license": "GPL-3+", "copyright": "The authors", "files": "*"}
    with pytest.raises(datasets.DataUnavailableError, match="gcompris-qt-data"):
        datasets.gcompris_licences(["x.webp"], copyright_file=tmp_path / "missing")


def test_ldm_photo_licence_page_is_current():
    """The card's licence page is what ``--write-licences`` renders from the installed package."""
    try:
        from latentguard.io.datasets import gcompris_photo_paths

        gcompris_photo_paths()
    except datasets.DataUnavailableError as e:
        pytest.skip(str(e))
    from latentguard.models.registry import cards_root
    from latentguard.zoo.train.ldm_photo import LICENCES_CARD, licence_table

    assert (cards_root() / LICENCES_CARD).read_text() == licence_table()
