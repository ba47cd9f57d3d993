"""Issue 22 item 12: protect's summary.png names the files on its x-axes and does not repeat a panel for pca+."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")


def _rows(method: str, kl_is_objective: bool) -> list[dict]:
    rows = []
    for i, name in enumerate(["beach.png", "cat.jpg", "portrait.png"]):
        kl0, kl1 = 100.0 + i, 400.0 + 10 * i
        rows.append({"status": "ok", "input": f"photos/{name}", "output": f"out/{name}", "method": method,
                     "width": 32, "height": 32, "loss_before": kl0 if kl_is_objective else 3.0 - i,
                     "loss_after": kl1 if kl_is_objective else 9.0 + i, "kl_before": kl0, "kl_after": kl1,
                     "sigma2_before": 1e-3 * (i + 1), "sigma2_after": 2e-4 * (i + 1), "linf": 16 / 255,
                     "l2": 1.0, "psnr": 30.0 + i, "seconds": 0.1})
    rows.append({"status": "error", "input": "photos/bad.png", "error": "unreadable"})
    return rows


def _figure(tmp_path, monkeypatch, rows):
    from matplotlib.figure import Figure

    from latentguard.protect.cli import _write_summary

    seen = []
    real = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (seen.append(self), real(self, *a, **k))[1])
    _write_summary(tmp_path, rows)
    assert (tmp_path / "summary.png").exists() and len(seen) == 1
    return seen[0]


def _heights(ax) -> list[float]:
    return [round(p.get_height(), 6) for p in ax.patches]


def test_pca_plus_summary_has_no_repeated_panel_and_names_the_files(tmp_path, monkeypatch):
    fig = _figure(tmp_path, monkeypatch, _rows("pca+", kl_is_objective=True))
    axes = fig.axes
    assert len(axes) == 3
    assert _heights(axes[0]) != _heights(axes[1]), "the second panel repeats the objective"
    for ax in axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["beach.png", "cat.jpg", "portrait.png"]


def test_other_methods_keep_the_kl_panel(tmp_path, monkeypatch):
    fig = _figure(tmp_path, monkeypatch, _rows("photoguard-enc", kl_is_objective=False))
    assert "KL" in fig.axes[1].get_title() and _heights(fig.axes[1])[:3] == [100.0, 101.0, 102.0]
