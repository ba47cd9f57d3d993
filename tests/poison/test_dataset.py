"""Dataset folder format: CSV/JSONL round trips, errors naming the file and line, Fashion-MNIST export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from latentguard.poison.dataset import PairSet, read_dataset, write_dataset


def _imgs(n=4, size=8):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 3, size, size, generator=g) * 255).round() / 255


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_round_trip(tmp_path, fmt):
    x = _imgs()
    caps = ["a cat", "a, quoted \"dog\"", "a bird", ""]
    ds = write_dataset(tmp_path / "d", x, caps, concepts=["cat", "dog", "bird", None], extra={"poisoned": [0, 1, 0, 0]},
                       fmt=fmt)
    back = read_dataset(tmp_path / "d")
    assert back.captions == caps
    assert back.concepts == ["cat", "dog", "bird", None]
    assert back.poisoned_mask().tolist() == [False, True, False, False]
    assert torch.equal(back.load_images(), x)  # 8-bit values survive PNG exactly
    assert len(ds) == 4


def test_pairset_round_trip(tmp_path):
    x = _imgs(3)
    ps = PairSet.from_lists(x, ["a", "b", "c"], ["A", "B", "C"], ["A", "A", "C"], [False, True, False],
                            extra={"label": [0, 1, 2]})
    ps.write(tmp_path / "d")
    back = PairSet.from_dataset(read_dataset(tmp_path / "d"))
    assert back.source_concepts == ("A", "A", "C")
    assert back.poisoned.tolist() == [False, True, False]
    assert back.extra["label"] == ("0", "1", "2")
    assert torch.equal(back.images, x)


def test_minimal_csv_and_resize(tmp_path):
    from latentguard.io import save_image

    save_image(torch.rand(3, 8, 8), tmp_path / "a.png")
    save_image(torch.rand(3, 16, 12), tmp_path / "b.png")
    (tmp_path / "captions.csv").write_text("file,caption\na.png,one\nb.png,two\n")
    ds = read_dataset(tmp_path)
    assert ds.concepts == [None, None] and ds.poisoned_mask() is None
    with pytest.raises(ValueError, match="several sizes"):
        ds.load_images()
    assert ds.load_images(size=8).shape == (2, 3, 8, 8)


@pytest.mark.parametrize("content,match", [
    ("name,caption\na.png,x\n", "header"),
    ("file,caption\n../a.png,x\n", "inside the dataset"),
    ("file,caption\n/etc/passwd,x\n", "inside the dataset"),
    ("file,caption\nmissing.png,x\n", "not found"),
    ("file,caption\n", "no pairs"),
    ("file,caption\na.png,x,extra\n", ":2: more fields"),
])
def test_bad_csv(tmp_path, content, match):
    (tmp_path / "captions.csv").write_text(content)
    with pytest.raises(ValueError, match=match):
        read_dataset(tmp_path)


def test_bad_jsonl_names_line(tmp_path):
    (tmp_path / "captions.jsonl").write_text(json.dumps({"file": "a.png", "caption": "x"}) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"captions.jsonl:2: not valid JSON"):
        read_dataset(tmp_path, check_files=False)


def test_missing_dataset(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_dataset(tmp_path / "nope")
    with pytest.raises(ValueError, match="no captions file"):
        read_dataset(tmp_path)


def test_fashion_export(tmp_path):
    from latentguard.poison.dataset import export_fashion_mnist
    from latentguard.testing import require_data
    from latentguard.io.datasets import FASHION_CLASSES, fashion_mnist

    require_data(fashion_mnist, "test")
    ds = export_fashion_mnist(tmp_path / "fm", 30, split="test", seed=1)
    back = read_dataset(tmp_path / "fm")
    assert len(back) == 30
    counts = {c: back.concepts.count(c) for c in FASHION_CLASSES}
    assert set(counts.values()) == {3}  # class-balanced
    imgs, labels = fashion_mnist("test")
    i = int(back.records[0].extra["index"])
    x = back.load_images()
    assert x.shape == (30, 3, 32, 32)
    assert np.allclose(x[0, 0, 2:30, 2:30].numpy() * 255, imgs[i], atol=0.5)
    assert back.captions[0] == f"a photo of a {FASHION_CLASSES[labels[i]]}"
    assert ds.captions == back.captions
