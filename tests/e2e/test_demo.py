"""The README's main job, end to end on the bundled models: PCA+ must hurt the edits more than random noise."""

from __future__ import annotations

import csv
import json

import pytest

from latentguard.testing import require_zoo


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    require_zoo("vae-a", "t2i", "embed")
    from latentguard.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--device", "cpu"]) == 0
    for name in ("run.json", "results.jsonl", "summary.csv", "table.md", "report.html"):
        assert (out / name).exists(), name
    assert json.loads((out / "run.json").read_text())["command"] == "latentguard demo"
    # the report opens with the preview grids (one per photo, at the demo's 256 px), the tables after
    grids = sorted((out / "preview").glob("pca+_*.png"))
    assert len(grids) == 4
    from latentguard.evaluate.preview import grid_size
    from latentguard.io import load_image

    assert tuple(load_image(grids[0]).shape[-2:]) == grid_size(3, 256, 256)
    html = (out / "report.html").read_text()
    assert html.index("What the editor makes of the protected photos") < html.index("<h2>Tables</h2>")
    rows = list(csv.DictReader(open(out / "summary.csv")))
    psnr = {}
    for r in rows:
        if r.get("purification", "none") == "none" and r["edit"].startswith(("recon", "img2img")):
            psnr.setdefault(r["edit"].split("[")[0], {})[r["method"]] = float(r["psnr"])
    assert set(psnr) == {"recon-sample", "img2img"}
    for edit, by_method in psnr.items():
        # protected edits move clearly further from the clean edit than equal-budget random noise
        assert by_method["pca+"] < by_method["random-noise"] - 5.0, (edit, by_method)
