"""AD's similarity calibration per embedder: the paper's constants for CLIP, zoo:embed's own from its pair
distributions (benchmarks/calibrate_ad_embed.py), and that the calibrated similarity separates clean from
mismatched pairs without saturating on a draw the calibration did not see."""

from __future__ import annotations

import json

import numpy as np
import pytest

from latentguard.poison.alignment import SIM_OFFSET, SIM_SCALE
from latentguard.poison.embed import CALIBRATION_FILE, PAPER_CALIBRATION, similarity_calibration


def test_clip_keeps_the_paper_constants():
    cal = similarity_calibration("clip:openai/clip-vit-base-patch32")
    assert cal is PAPER_CALIBRATION and (cal.offset, cal.scale) == (0.2, 4.0) == (SIM_OFFSET, SIM_SCALE)


def test_folder_file_is_read_and_validated(tmp_path):
    assert "uncalibrated" in similarity_calibration(str(tmp_path)).source  # no file: paper constants, said so
    assert (similarity_calibration(str(tmp_path)).offset, similarity_calibration(str(tmp_path)).scale) == (0.2, 4.0)
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"offset": -0.1, "scale": 2.5, "rule": "test rule"}))
    cal = similarity_calibration(str(tmp_path))
    assert (cal.offset, cal.scale) == (-0.1, 2.5) and "test rule" in cal.source
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"offset": 0.1, "scale": 0}))
    with pytest.raises(ValueError, match="scale > 0"):
        similarity_calibration(str(tmp_path))
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"offset": "x"}))
    with pytest.raises(ValueError, match="numeric 'offset' and 'scale'"):
        similarity_calibration(str(tmp_path))


def test_zoo_embed_calibration_separates_without_saturating():
    """On 300 test images outside the calibration draw, measured: calibrated, clean s mean 0.959 with 4.3% clipped
    at 1 (0 at 0), mismatched s mean 0.278 with 3.7% clipped at 0 (0 at 1); the paper's constants clip 99% of
    clean pairs at 1 and 84% of mismatched ones at 0 (benchmarks/results/ad_calibration.json: 2,000 pairs)."""
    from latentguard.poison.dataset import fashion_pairs, fashion_subset
    from latentguard.poison.embed import embed_pairs, load_pair_embedder
    from latentguard.testing import require_data, require_zoo
    from latentguard.io.datasets import CAPTION_TEMPLATES, FASHION_CLASSES, fashion_mnist

    require_zoo("embed")
    require_data(fashion_mnist, "test")
    cal = similarity_calibration("zoo:embed")
    assert "ad_calibration.json" in cal.source and cal.offset < 0 < cal.scale < SIM_SCALE
    seen = fashion_subset(2000, split="test", seed=0)  # the calibration draw
    x, _, _, lab, ids = fashion_pairs(300, split="test", seed=7, exclude=seen)
    assert not set(ids.tolist()) & set(seen.tolist())
    rng = np.random.default_rng(7)
    t = rng.integers(0, len(CAPTION_TEMPLATES), len(lab))
    other = (lab + rng.integers(1, len(FASHION_CLASSES), len(lab))) % len(FASHION_CLASSES)
    own = [CAPTION_TEMPLATES[i].format(FASHION_CLASSES[c]) for i, c in zip(t, lab)]
    wrong = [CAPTION_TEMPLATES[i].format(FASHION_CLASSES[c]) for i, c in zip(t, other)]
    emb = load_pair_embedder("zoo:embed")
    u, v = embed_pairs(emb, x, own)
    _, w = embed_pairs(emb, x, wrong)
    cos_clean, cos_wrong = (u * v).sum(1).double().numpy(), (u * w).sum(1).double().numpy()
    for c, o, s in ((cos_clean, cal.offset, cal.scale), (cos_wrong, cal.offset, cal.scale)):
        raw = (c - o) * s
        assert (raw <= 0).mean() < 0.12 and (raw >= 1).mean() < 0.12, ((raw <= 0).mean(), (raw >= 1).mean())
    s_clean = np.clip((cos_clean - cal.offset) * cal.scale, 0, 1)
    s_wrong = np.clip((cos_wrong - cal.offset) * cal.scale, 0, 1)
    assert s_clean.mean() > 0.85 and s_wrong.mean() < 0.4 and s_clean.mean() - s_wrong.mean() > 0.5
    paper_clean = (cos_clean - SIM_OFFSET) * SIM_SCALE
    assert (paper_clean >= 1).mean() > 0.9  # the saturation the calibration removes
