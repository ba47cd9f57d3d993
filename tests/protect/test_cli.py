"""``latentguard protect`` end to end on small copies of the bundled photos (real zoo:vae-a, 2 steps)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from latentguard.cli import main


@pytest.fixture()
def folder(tmp_path, vae_a):
    from latentguard.samples import sample_images
    from latentguard.io import save_image

    src = tmp_path / "in"
    x = sample_images(64)[:2]
    save_image(x[0], src / "astro.png")
    save_image(x[1, :, :48, :40], src / "cat.png")  # another size, not a multiple of anything special
    (src / "broken.png").write_bytes(b"not an image")
    return src


def _rows(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]


def test_cli_protects_reports_bad_files_and_resumes(folder, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["protect", str(folder), "--method", "pca+", "--eps", "16", "--eps-unit", "255", "--steps", "2",
               "--out", str(out), "--no-progress", "--device", "cpu"])
    assert rc == 1  # some inputs failed (broken.png); the others were protected
    err = capsys.readouterr().err
    assert "broken.png" in err
    rows = {r["input"].split("/")[-1]: r for r in _rows(out)}
    assert rows["broken.png"]["status"] == "error"
    assert rows["astro.png"]["status"] == "ok" and rows["cat.png"]["status"] == "ok"
    assert (out / "astro.png").exists() and (out / "cat.png").exists()
    assert (out / "run.json").exists() and (out / "summary.csv").exists() and (out / "summary.png").exists()
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["config"]["resolved"]["eps"] == pytest.approx(16 / 255)
    for name in ("astro.png", "cat.png"):
        a = np.asarray(Image.open(folder / name), dtype=np.int16)
        b = np.asarray(Image.open(out / name), dtype=np.int16)
        assert a.shape == b.shape
        assert 0 < np.abs(a - b).max() <= 16
        assert rows[name]["loss_after"] > rows[name]["loss_before"]
    # resume: nothing new to do, rows not duplicated
    rc = main(["protect", str(folder), "--steps", "2", "--out", str(out), "--resume", "--no-progress"])
    assert rc == 1  # broken.png is retried and fails again
    assert "2 already done" in capsys.readouterr().out
    assert sum(r["status"] == "ok" for r in _rows(out)) == 2


def test_cli_no_measure_writes_the_same_pixels_with_empty_records(folder, tmp_path):
    args = ["--method", "pca+", "--steps", "1", "--no-progress", "--device", "cpu"]
    assert main(["protect", str(folder / "astro.png"), *args, "--out", str(tmp_path / "a")]) == 0
    assert main(["protect", str(folder / "astro.png"), *args, "--no-measure", "--out", str(tmp_path / "b")]) == 0
    a, b = _rows(tmp_path / "a")[0], _rows(tmp_path / "b")[0]
    assert a["sha256"] == b["sha256"] and a["loss_before"] is not None
    assert b["loss_before"] is None and b["sigma2_after"] is None and b["psnr"] == pytest.approx(a["psnr"])
    assert (tmp_path / "b" / "summary.png").exists()


def test_cli_mask_keeps_outside_pixels(folder, tmp_path):
    from latentguard.io import save_image
    import torch

    m = torch.zeros(3, 64, 64)
    m[:, 16:40, 8:56] = 1
    save_image(m, tmp_path / "mask.png")
    out = tmp_path / "out"
    rc = main(["protect", str(folder / "astro.png"), "--steps", "2", "--mask", str(tmp_path / "mask.png"),
               "--out", str(out), "--no-progress"])
    assert rc == 0
    a = np.asarray(Image.open(folder / "astro.png"), dtype=np.int16)
    b = np.asarray(Image.open(out / "astro.png"), dtype=np.int16)
    outside = np.ones((64, 64), bool)
    outside[16:40, 8:56] = False
    assert (a[outside] == b[outside]).all()
    assert (a[~outside] != b[~outside]).any()


@pytest.mark.parametrize("argv,msg", [
    (["--method", "nope"], None),
    (["--eps", "abc"], None),
    (["--eps", "0"], "eps"),
    (["--steps", "-3"], "steps"),
    (["--eot", "sharpen"], "transforms"),
    (["--prompt", "a cat"], "prompt"),
])
def test_cli_bad_arguments(folder, tmp_path, capsys, argv, msg):
    try:
        rc = main(["protect", str(folder / "astro.png"), "--out", str(tmp_path / "o"), "--no-progress", *argv])
    except SystemExit as exc:  # argparse errors
        rc = exc.code
    assert rc == 2
    if msg:
        assert msg in capsys.readouterr().err


def test_cli_diffusion_method(tmp_path, t2i_pipe):
    from latentguard.samples import sample_images
    from latentguard.io import save_image

    save_image(sample_images(32)[0], tmp_path / "in" / "small.png")
    out = tmp_path / "out"
    rc = main(["protect", str(tmp_path / "in"), "--method", "sds-", "--steps", "2", "--prompt", "a photo",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    row = _rows(out)[0]
    assert row["status"] == "ok" and row["method"] == "sds-" and (out / "small.png").exists()
