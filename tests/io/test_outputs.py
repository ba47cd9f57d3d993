"""Atomic writes get the usual file mode; output folders are checked before anything is written (issue 22, 1/6/7)."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from latentguard.core.errors import UserError
from latentguard.io import atomic_write_text, prepare_out_dir, save_image, write_manifest


@pytest.fixture()
def umask():
    old = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.mark.parametrize("mask,expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_every_writer_gives_the_mode_open_would(tmp_path, umask, mask, expected):
    umask(mask)
    img = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    written = [save_image(img, tmp_path / "p.png"), atomic_write_text(tmp_path / "t.txt", "x"),
               write_manifest(tmp_path, "test", {})]
    with open(tmp_path / "plain.txt", "w") as fh:
        fh.write("x")
    assert _mode(tmp_path / "plain.txt") == expected
    for p in written:
        assert _mode(p) == expected, p
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left


def test_overwriting_keeps_the_usual_mode(tmp_path, umask):
    p = tmp_path / "p.png"
    save_image(torch.zeros(3, 4, 4), p)
    save_image(torch.ones(3, 4, 4), p)
    assert _mode(p) == 0o644


def test_prepare_out_dir(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UserError, match="is a file"):
        prepare_out_dir(f)
    with pytest.raises(UserError, match="is a file"):
        prepare_out_dir(f / "sub")
    d = prepare_out_dir(tmp_path / "a" / "b")
    assert d.is_dir()
    (d / "results.jsonl").write_text("{}\n")
    with pytest.raises(UserError, match="already holds results .*--resume.*--overwrite"):
        prepare_out_dir(d)
    assert prepare_out_dir(d, resume=True) == d and prepare_out_dir(d, overwrite=True) == d
    with pytest.raises(UserError, match="exclude"):
        prepare_out_dir(d, resume=True, overwrite=True)
    (d / "summary.json").write_text("{}")
    with pytest.raises(UserError) as exc:
        prepare_out_dir(d, markers=("summary.json",), resumable=False)
    assert "--resume" not in str(exc.value) and "--overwrite" in str(exc.value)
