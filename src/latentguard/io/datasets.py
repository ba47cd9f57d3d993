"""Data set loaders shared by the zoo's training recipes and the capabilities (privacy audits, poisons,
implosion), all obtained offline. numpy only (PIL, scikit-learn and scikit-image are imported by the loaders
that need them).

Sources (every one installable from a package registry; licences recorded in the model cards):

* ``nature``  12 photographs from Debian's ``mate-backgrounds`` (``/usr/share/backgrounds/mate/nature``),
  GPL-2+/CC-BY-SA. Training data of ``vae-a`` (all 12) and ``vae-b`` (the odd-indexed 6 plus the two
  scikit-learn sample photos).
* ``lomiri`` 15 photographs from Debian's ``lomiri-wallpapers-16.04`` (``/usr/share/backgrounds``), the
  Ubuntu 18.04 community wallpaper contest: CC-BY-4.0 (Aitzol Berasategi x5, Trevor "Freespace" x2, Abhishek
  Mudgal, Jakub Mede), CC-BY-SA-4.0 (Peter Nerlich x3, Sander Klootwijk, "Bolly") and CC0-1.0 (Clemens
  Engelhardt), per the package's copyright file. Extra training data of ``vae-a``'s stage 2 only.
* ``gcompris`` 115 photographs from Debian's ``gcompris-qt-data`` (``/usr/share/gcompris-qt/rcc``, packed in
  the activities' Qt resource files, read by :mod:`latentguard.io.qtres`): the animals, farm animals,
  world-music and monuments photos of five activities (:data:`GCOMPRIS_PHOTO_FOLDERS`), each at least 256 px;
  licences per file in the package's copyright file (GPL-3+, CC-BY / CC-BY-SA 2.0-4.0, GFDL, public domain;
  Wikimedia Commons sources). Not yet in any bundled model's training data.
* ``holdout`` CC0 / public-domain photos shipped in scikit-image (astronaut, coffee, chelsea, rocket,
  hubble_deep_field, motorcycle_left, retina, immunohistochemistry). Never used in training: the VAEs'
  held-out quality figures are measured on them.
* ``fashion`` Fashion-MNIST (Debian ``dataset-fashion-mnist``, MIT): 70k 28x28 product photos in 10
  labelled classes, padded to 32x32 and replicated to RGB. Training data of ``t2i``, ``t2i-members`` and
  ``embed``; the class names give the captions. :func:`member_split` declares the member / non-member ids of
  ``t2i-members`` (the privacy audits' target).

The bundled held-out photos themselves (the PNGs that ship with the package) are :mod:`latentguard.samples`.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from latentguard.io.qtres import read_qt_resources

NATURE_DIR = Path(os.environ.get("LATENTGUARD_NATURE_DIR", "/usr/share/backgrounds/mate/nature"))
LOMIRI_DIR = Path(os.environ.get("LATENTGUARD_LOMIRI_DIR", "/usr/share/backgrounds"))
FASHION_DIR = Path(os.environ.get("LATENTGUARD_FASHION_DIR", "/usr/share/datasets/fashion-mnist"))
GCOMPRIS_DIR = Path(os.environ.get("LATENTGUARD_GCOMPRIS_DIR", "/usr/share/gcompris-qt/rcc"))
GCOMPRIS_COPYRIGHT = Path(os.environ.get("LATENTGUARD_GCOMPRIS_COPYRIGHT", "/usr/share/doc/gcompris-qt-data/copyright"))

NATURE_FILES = (
    "Aqua.jpg", "Blinds.jpg", "Dune.jpg", "FreshFlower.jpg", "Garden.jpg", "GreenMeadow.jpg",
    "LadyBird.jpg", "RainDrops.jpg", "Storm.jpg", "TwoWings.jpg", "Wood.jpg", "YellowFlower.jpg",
)
LOMIRI_FILES = (
    "Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg", "Picture_0B_by_freespace.jpg",
    "Picture_1A_by_freespace.jpg", "Wine_by_Jakkub_Mede.jpg", "aitzgorri_by_Aitzol_Berasategi.jpg",
    "analogpattern_by_Peter_Nerlich.jpg", "free_by_Peter_Nerlich.jpg", "friends_by_Aitzol_Berasategi.jpg",
    "greentock_by_Peter_Nerlich.jpg", "life_by_Aitzol_Berasategi.jpg", "picosdeeuropa_by_Aitzol_Berasategi.jpg",
    "seeding_by_Clements_Engelhardt.jpg", "sunset_by_Aitzol_Berasategi.jpg", "umang_by_Abhishek_Mudgal.jpg",
)
# The two photographs of lomiri-wallpapers-20.04 (the other two files there are illustrations), CC-BY-SA-3.0.
LOMIRI20_FILES = ("Kleiber_by_Lukas_Baubkus.jpg", "Infinite-Sea_by_Aury88.jpg")
# gcompris-qt-data: the resource file of each activity and the folders in it that hold photographs (the other
# activities' images are drawings, paintings or renders; details/ mixes photos and paintings and is left out).
GCOMPRIS_PHOTO_FOLDERS = {
    "erase.rcc": ("erase/resource/",),
    "explore_world_animals.rcc": ("explore_world_animals/resource/animals/",),
    "explore_farm_animals.rcc": ("explore_farm_animals/resource/animals/",),
    "explore_world_music.rcc": ("explore_world_music/resource/music/",),
    "explore_monuments.rcc": ("explore_monuments/resource/",),
}
GCOMPRIS_MIN_SIDE = 256
HOLDOUT_PHOTOS = (
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "motorcycle_left", "retina",
    "immunohistochemistry",
)

FASHION_CLASSES = (
    "t-shirt", "pair of trousers", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)
CAPTION_TEMPLATES = (
    "a photo of a {}",
    "a {}",
    "a picture of a {}",
    "a grayscale photo of a {}",
    "a product photo of a {}",
)


class DataUnavailableError(RuntimeError):
    """A training data set is not installed; the message says which package provides it."""


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def nature_photos(which: str = "all") -> list[np.ndarray]:
    """The nature photographs as uint8 HxWx3 arrays (``which``: all | even | odd)."""
    if not NATURE_DIR.is_dir():
        raise DataUnavailableError(
            f"{NATURE_DIR} not found: install Debian's mate-backgrounds (apt-get install mate-backgrounds) "
            "or set LATENTGUARD_NATURE_DIR"
        )
    names = list(NATURE_FILES)
    if which == "even":
        names = names[0::2]
    elif which == "odd":
        names = names[1::2]
    elif which != "all":
        raise ValueError(f"which must be all|even|odd, got {which!r}")
    return [_read_rgb(NATURE_DIR / n) for n in names]


def _lomiri_package(files: tuple[str, ...], package: str) -> list[np.ndarray]:
    """``files`` of LOMIRI_DIR as uint8 HxWx3 arrays; a DataUnavailableError naming ``package`` when one is missing."""
    missing = [n for n in files if not (LOMIRI_DIR / n).is_file()]
    if missing:
        raise DataUnavailableError(
            f"{LOMIRI_DIR / missing[0]} not found: install Debian's {package} "
            f"(apt-get install {package}) or set LATENTGUARD_LOMIRI_DIR"
        )
    return [_read_rgb(LOMIRI_DIR / n) for n in files]


def lomiri_photos() -> list[np.ndarray]:
    """The 15 community photographs of ``lomiri-wallpapers-16.04`` as uint8 HxWx3 arrays."""
    return _lomiri_package(LOMIRI_FILES, "lomiri-wallpapers-16.04")


def lomiri20_photos() -> list[np.ndarray]:
    """The 2 photographs of ``lomiri-wallpapers-20.04`` (Kleiber by Lukas Baubkus, Infinite Sea by Aury88)."""
    return _lomiri_package(LOMIRI20_FILES, "lomiri-wallpapers-20.04")


def photos(spec: str) -> list[np.ndarray]:
    """The photo collections named by ``spec``, ``+``-joined: ``nature:all|even|odd``, ``lomiri``, ``lomiri20``,
    ``sklearn``, ``gcompris`` (e.g. ``"nature:all+lomiri"``, vae-a's stage 2), as uint8 HxWx3 arrays in that order."""
    out: list[np.ndarray] = []
    for part in spec.split("+"):
        if part.startswith("nature:"):
            out += nature_photos(part.split(":", 1)[1])
        elif part == "lomiri":
            out += lomiri_photos()
        elif part == "lomiri20":
            out += lomiri20_photos()
        elif part == "sklearn":
            out += sklearn_photos()
        elif part == "gcompris":
            out += gcompris_photos()
        else:
            raise ValueError(f"unknown photo source {part!r}")
    return out


def gcompris_photos(min_side: int = GCOMPRIS_MIN_SIDE) -> list[np.ndarray]:
    """The photographs of ``gcompris-qt-data`` (:data:`GCOMPRIS_PHOTO_FOLDERS`) with both sides >= ``min_side``,
    as uint8 HxWx3 arrays, in resource-path order (:func:`gcompris_photo_paths`)."""
    import io

    from PIL import Image

    out = []
    for data in _gcompris_files(min_side).values():
        with Image.open(io.BytesIO(data)) as im:
            out.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
    return out


def gcompris_photo_paths(min_side: int = GCOMPRIS_MIN_SIDE) -> list[str]:
    """The resource paths (``activity/resource/...``) of :func:`gcompris_photos`, in the same order (no image
    is decoded: the sizes come from the headers)."""
    return list(_gcompris_files(min_side))


def _gcompris_files(min_side: int) -> dict[str, bytes]:
    """``{resource path: encoded image}`` of the photographs with both sides >= ``min_side``, sorted by path."""
    import io

    from PIL import Image

    missing = [n for n in GCOMPRIS_PHOTO_FOLDERS if not (GCOMPRIS_DIR / n).is_file()]
    if missing:
        raise DataUnavailableError(
            f"{GCOMPRIS_DIR / missing[0]} not found: install Debian's gcompris-qt-data "
            "(apt-get install gcompris-qt-data) or set LATENTGUARD_GCOMPRIS_DIR"
        )
    found: dict[str, bytes] = {}
    for rcc, folders in GCOMPRIS_PHOTO_FOLDERS.items():
        for path, data in read_qt_resources(GCOMPRIS_DIR / rcc).items():
            rel = path.split("/activities/", 1)[-1]
            if not rel.startswith(folders) or not rel.lower().endswith((".webp", ".jpg", ".jpeg", ".png")):
                continue
            with Image.open(io.BytesIO(data)) as im:  # lazy: reads the header only
                if min(im.size) >= min_side:
                    found[rel] = data
    return {k: found[k] for k in sorted(found)}


def gcompris_licences(paths: list[str] | None = None, copyright_file: Path | None = None) -> dict[str, dict]:
    """``{resource path: {"license", "copyright", "files"}}`` (``files``: the matching pattern) for gcompris-qt-data photos (default: those of
    :func:`gcompris_photos`), read from the package's machine-readable copyright file (DEP-5).

    The package ships its images as WebP inside the .rcc files while the copyright file names the upstream
    sources (mostly ``.jpg``), so paths are matched by stem: the last paragraph whose ``Files:`` pattern
    matches ``src/activities/<path>`` with any extension wins, as DEP-5 specifies; ``Files: *`` is the fallback.
    """
    import fnmatch
    import gzip as _gz

    cf = Path(copyright_file or GCOMPRIS_COPYRIGHT)
    if not cf.is_file():
        raise DataUnavailableError(f"{cf} not found: install Debian's gcompris-qt-data")
    raw = cf.read_bytes()
    text = (_gz.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8", "replace")
    paragraphs: list[tuple[list[str], str, str]] = []
    for block in text.split("\n\n"):
        fields: dict[str, list[str]] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key].append(line.strip())
            elif ":" in line:
                key, _, val = line.partition(":")
                fields[key] = [val.strip()] if val.strip() else []
        if "Files" in fields and "License" in fields:
            files = " ".join(fields["Files"]).split()
            paragraphs.append((files, fields["License"][0], " ".join(fields.get("Copyright", []))))
    paths = gcompris_photo_paths() if paths is None else paths
    out = {}
    for rel in paths:
        stem = "src/activities/" + rel.rsplit(".", 1)[0]
        hit = None
        for files, lic, who in paragraphs:
            for f in files:
                pat = f.rsplit(".", 1)[0] if "." in f.rsplit("/", 1)[-1] else f
                if f == "*" or fnmatch.fnmatchcase(stem, pat):
                    hit = {"license": lic, "copyright": who, "files": f}
                    break
        out[rel] = hit or {"license": "unknown", "copyright": "", "files": ""}
    return out


def sklearn_photos() -> list[np.ndarray]:
    """scikit-learn's two sample photos (china, flower)."""
    from sklearn.datasets import load_sample_images

    return [np.asarray(im, dtype=np.uint8) for im in load_sample_images().images]


def holdout_photos() -> dict[str, np.ndarray]:
    """scikit-image's CC0 photos, never used to train a zoo model."""
    import skimage.data as skd

    out = {}
    for name in HOLDOUT_PHOTOS:
        im = np.asarray(skd.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skd, name)())
        if im.ndim == 2:
            im = np.stack([im] * 3, -1)
        out[name] = im[..., :3].astype(np.uint8)
    return out


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images (uint8 Nx28x28) and labels (int64 N) of ``split`` (train | test)."""
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"split must be train|test, got {split!r}")
    cache = os.environ.get("LATENTGUARD_FASHION_NPZ")
    if cache:
        z = np.load(cache)
        return z[f"{split}_images"], z[f"{split}_labels"].astype(np.int64)
    img = FASHION_DIR / f"{prefix}-images-idx3-ubyte.gz"
    lab = FASHION_DIR / f"{prefix}-labels-idx1-ubyte.gz"
    if not img.exists():
        raise DataUnavailableError(
            f"{img} not found: install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) "
            "or set LATENTGUARD_FASHION_DIR"
        )
    return _read_idx(img), _read_idx(lab).astype(np.int64)


def fashion_to_rgb32(images: np.ndarray) -> np.ndarray:
    """uint8 Nx28x28 -> float32 Nx3x32x32 in [0,1] (2-pixel black border, gray replicated to RGB)."""
    x = np.pad(images.astype(np.float32) / 255.0, ((0, 0), (2, 2), (2, 2)))
    return np.repeat(x[:, None], 3, axis=1)


def caption_for(label: int, template: int = 0) -> str:
    return CAPTION_TEMPLATES[template % len(CAPTION_TEMPLATES)].format(FASHION_CLASSES[label])


def all_captions() -> list[str]:
    """Every caption the training recipes use (empty prompt first, for classifier-free guidance)."""
    caps = [""]
    for t in CAPTION_TEMPLATES:
        for c in FASHION_CLASSES:
            caps.append(t.format(c))
    return caps


MEMBER_SPLIT_SEED = 1234


def member_split(n_members: int = 500, n_nonmembers: int = 500, seed: int = MEMBER_SPLIT_SEED) -> dict:
    """Declared member / non-member ids (indices into the Fashion-MNIST train split), class-balanced.

    ``zoo:t2i-members`` was trained on the members of the default split (its ``splits.json`` holds the ids);
    ``zoo:t2i`` never saw either set.
    """
    _, labels = fashion_mnist("train")
    rng = np.random.default_rng(seed)
    members, nonmembers = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        members += idx[: n_members // 10].tolist()
        nonmembers += idx[n_members // 10 : n_members // 10 + n_nonmembers // 10].tolist()
    return {"dataset": "fashion-mnist/train", "seed": seed, "members": sorted(members), "nonmembers": sorted(nonmembers)}
