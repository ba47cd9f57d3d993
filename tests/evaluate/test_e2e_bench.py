"""End to end: a tiny bench config on the bundled models through the CLI; every output file; resume."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import ClassVar

import pytest

from latentguard.cli import main
from latentguard.testing import require_zoo
from latentguard.protect import registry
from latentguard.protect.engine import Protection


@dataclass(frozen=True, kw_only=True)
class _AlwaysFails(Protection):
    """A protection that fails while the matrix runs (as a non-finite gradient would): its cells are recorded."""

    name: ClassVar[str] = "always-fails"

    def __call__(self, images, *, mask=None, generator=None):
        raise FloatingPointError("always-fails: non-finite gradient at step 0 (test)")


@pytest.fixture(scope="module", autouse=True)
def _always_fails_registered():
    """Registered for this module only: other tests check the registry's exact contents."""
    registry.register(_AlwaysFails)
    yield
    registry.unregister(_AlwaysFails.name)

TINY = """
[run]
name = "tiny"
seed = 0
device = "cpu"
images = "samples"
image_size = 32
max_images = 2
batch_size = 2
metrics = ["psnr", "ssim", "embed-dist", "embed-fid", "embed-clip-score"]
grid_images = 2
targets = ["zoo:t2i"]

[protect]
methods = ["pca+", "random-noise", "none", "always-fails"]
budgets = ["8/255", "16/255"]
steps = 3
surrogates = ["zoo:vae-a"]

[[edits]]
kind = "recon"
sample = false

[[edits]]
kind = "img2img"
prompts = ["{caption}"]
strength = 0.5
steps = 2
guidance = 3.0

[[edits]]
kind = "inpaint"
prompts = ["add some snow"]

[[purifications]]
kind = "none"

[[purifications]]
kind = "jpeg"
quality = [50]
"""


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    require_zoo("embed", "t2i", "vae-a")
    d = tmp_path_factory.mktemp("bench")
    (d / "tiny.toml").write_text(TINY)
    rc = main(["bench", str(d / "tiny.toml"), "--out", str(d / "out"), "--no-progress"])
    return d, rc


def _rows(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]


def test_outputs_exist_and_failures_are_recorded(bench_dir):
    d, rc = bench_dir
    out = d / "out"
    assert rc == 1  # the failing method's cells failed, and the run went on
    for f in ("run.json", "results.jsonl", "summary.csv", "table.md", "tables.json", "report.html"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    assert any((out / "plots").glob("bars_*.png")) and any((out / "plots").glob("vs_eps_*.png"))
    assert any((out / "plots").glob("vs_purification_*.png"))
    grids = list((out / "grids").glob("*.png"))
    assert grids
    rows = _rows(out)
    status = {r["status"] for r in rows}
    assert status == {"ok", "error", "unavailable"}
    errs = [r for r in rows if r["status"] == "error"]
    assert errs and all(r["method"] == "always-fails" for r in errs)
    assert all(r["error_type"] == "FloatingPointError" and "non-finite gradient" in r["error"] for r in errs)
    unav = [r for r in rows if r["status"] == "unavailable"]
    assert unav and all(r["edit"].startswith("inpaint") for r in unav) and "inpaint" in unav[0]["reason"]
    # methods x budgets ("none" once) x edits x purifications x images
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == (2 * 2 + 1) * 2 * 2 * 2
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "always-fails" in html and "unavailable" in html
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["config"]["methods"] == ["pca+", "random-noise", "none", "always-fails"]
    assert manifest["standard_metrics"]["lpips"]["stand_in"] == "embed-dist"


def test_table_rows_and_columns_match_config(bench_dir):
    d, _ = bench_dir
    out = d / "out"
    md = (out / "table.md").read_text()
    sections = re.split(r"^## ", md, flags=re.M)[1:]
    titles = [s.splitlines()[0] for s in sections]
    # edit families x purifications that ran (inpaint is unavailable on the zoo: no table)
    assert len(titles) == 2 * 2
    assert titles[0].startswith("recon-mean on zoo:t2i") and "purification none" in titles[0]
    for sec in sections:
        lines = [ln for ln in sec.splitlines() if ln.startswith("|")]
        header = [c.strip() for c in lines[0].strip("|").split("|")]
        assert header == ["Method", "ε", "psnr vs clean edit ↓", "ssim vs clean edit ↓", "embed-dist vs clean edit ↑",
                          "embed-fid vs clean edit ↑", "embed-clip-score vs clean edit ↓", "psnr vs input ↑",
                          "ssim vs input ↑", "embed-dist vs input ↓", "objective", "beats noise"]
        labels = [ln.strip("|").split("|")[0].strip() for ln in lines[2:]]
        assert labels == ["pca+ (ε=8/255)", "pca+ (ε=16/255)", "random noise (ε=8/255)", "random noise (ε=16/255)",
                          "no protection"]
    # the unprotected image's edit is the clean edit: PSNR hits the 100 dB cap, SSIM 1
    none_line = next(ln for ln in sections[0].splitlines() if ln.startswith("| no protection"))
    cells = [c.strip() for c in none_line.strip("|").split("|")]
    assert cells[2] == "100.00" and cells[3] == "1.0000"


def test_report_rebuilds_and_resume_skips_finished(bench_dir, capsys):
    d, _ = bench_dir
    out = d / "out"
    (out / "table.md").unlink()
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "table.md").is_file() and (out / "report.html").is_file()
    # refusing to overwrite without --resume
    assert main(["bench", str(d / "tiny.toml"), "--out", str(out), "--no-progress"]) == 2
    # simulate an interrupted run: drop the last ok rows, resume, and check only they are redone
    rows = _rows(out)
    keep = rows[:-3]
    dropped = {r["key"] for r in rows[-3:] if r["status"] == "ok"}
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
    capsys.readouterr()
    main(["bench", str(d / "tiny.toml"), "--out", str(out), "--no-progress", "--resume"])
    msg = capsys.readouterr().out
    new = _rows(out)[len(keep):]
    redone_ok = {r["key"] for r in new if r["status"] == "ok"}
    assert redone_ok == dropped, msg
    assert all(r["status"] != "ok" or r["key"] in dropped for r in new)


class _FakeStandard:
    """Stands for LPIPS/FID/CLIP with weights (none exist offline): checks the runner's wiring only."""

    def __init__(self, device="cpu"):
        pass

    def lpips(self, a, b):

        return (a - b).abs().flatten(1).mean(1).double()

    def clip_score(self, images, texts):
        import torch

        return torch.full((len(images),), 0.25, dtype=torch.float64)

    def fid(self, real, fake):
        return float((real.mean() - fake.mean()).abs()) + 1.0


def test_standard_metrics_wired_when_available(tmp_path, monkeypatch):
    from latentguard.evaluate import config as C
    from latentguard.ops import metrics as M
    from latentguard.evaluate import runner as B

    require_zoo("vae-a")
    status = {k: {"available": True, "reason": "fake", "stand_in": v}
              for k, v in (("lpips", "embed-dist"), ("fid", "embed-fid"), ("clip-score", "embed-clip-score"))}
    monkeypatch.setattr(M, "standard_metric_status", lambda: status)
    monkeypatch.setattr(M, "StandardMetrics", _FakeStandard)
    cfg = C.BenchConfig.from_dict({
        "run": {"targets": ["zoo:vae-a"], "image_size": 32, "max_images": 2, "device": "cpu",
                "metrics": ["psnr", "lpips", "fid", "clip-score"], "grid_images": 0},
        "protect": {"methods": ["random-noise", "none"], "budgets": ["16/255"], "surrogates": ["zoo:vae-a"]},
        "edits": [{"kind": "recon"}]})
    B.run_bench(cfg, tmp_path / "o", progress=False)
    rows = _rows(tmp_path / "o")
    assert all(r["status"] == "ok" and {"lpips", "clip-score"} <= set(r["metrics"]) for r in rows)
    md = (tmp_path / "o" / "table.md").read_text()
    assert "| lpips vs clean edit ↑ | fid vs clean edit ↑ | clip-score vs clean edit ↓ |" in md.replace(
        "psnr vs clean edit ↓ | ", "")
    none_line = next(ln for ln in md.splitlines() if ln.startswith("| no protection"))
    assert none_line.split("|")[5].strip() == "1.00"  # fake FID of identical sets


def test_progress_bar_counts_the_cells_the_summary_counts(tmp_path, monkeypatch):
    """Issue 22 item 12: the bar's unit and total are the summary line's cells (ok + failed + done + unavailable)."""
    require_zoo("vae-a")
    from latentguard.evaluate import runner as R
    from latentguard.evaluate.cli import cell_counts
    from latentguard.evaluate.config import BenchConfig

    bars = []

    class Recorder:
        def __init__(self, total=None, disable=False, **kw):
            self.total, self.n, self.disable = total, 0, disable
            bars.append(self)

        def update(self, k=1):
            self.n += k

        def set_postfix_str(self, *a, **k):
            pass

        def close(self):
            pass

    monkeypatch.setattr(R, "tqdm", Recorder)
    cfg = BenchConfig.from_dict({
        "run": {"name": "count", "targets": ["zoo:vae-a"], "images": "samples", "image_size": 32, "max_images": 2,
                "batch_size": 2, "seed": 0, "device": "cpu", "metrics": ["psnr"], "grid_images": 1},
        "protect": {"methods": ["none", "random-noise"], "budgets": ["8/255"], "steps": 1, "surrogates": ["zoo:vae-a"]},
        "edits": [{"kind": "recon", "sample": [False, True]}, {"kind": "img2img", "prompts": [""], "steps": 2}],
        "purifications": [{"kind": "none"}, {"kind": "jpeg", "quality": [50]}],
    })
    counts = R.run_bench(cfg, tmp_path / "o", progress=True)
    (bar,) = bars
    cells = 2 * 2 * 3 * 2  # methods x images x edits x purifications (img2img is unavailable on a bare VAE)
    assert bar.total == bar.n == counts["total"] == cells
    assert counts["ok"] + counts["error"] + counts["skipped"] + counts["unavailable"] == cells
    assert counts["unavailable"] == 2 * 2 * 2 and counts["ok"] == 2 * 2 * 2 * 2
    assert cell_counts(counts).startswith(f"{counts['ok']} cells ok") and f"(of {cells})" in cell_counts(counts)
    again = R.run_bench(cfg, tmp_path / "o", resume=True, progress=True)  # resumed: the same cells, now done
    assert bars[1].total == bars[1].n == cells and again["skipped"] == counts["ok"] and again["ok"] == 0
