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
    rows = list(csv.DictReader(open(out / "summary.csv")))
    psnr = {}
    for r in rows:
        if r.get("purification", "none") == "none" and r["edit"].startswith(("recon", "img2img")):
            psnr.setdefault(r["edit"].split("[")[0], {})[r["method"]] = float(r["psnr"])
    assert set(psnr) == {"recon-sample", "img2img"}
    for edit, by_method in psnr.items():
        # protected edits move clearly further from the clean edit than equal-budget random noise
        assert by_method["pca+"] < by_method["random-noise"] - 5.0, (edit, by_method)
