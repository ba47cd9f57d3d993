"""AD over Parquet embedding shards equals the single-process AD (exact: to float tolerance; sampled: bit for bit)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install 'latentguard[scale]')")

from latentguard.cli import main  # noqa: E402
from latentguard.poison.alignment import alignment_difficulty, naive_alignment_difficulty  # noqa: E402
from latentguard.scale.ad import alignment_difficulty_sharded, list_shards, write_embedding_shards  # noqa: E402


@pytest.fixture(scope="module")
def pairs():
    g = np.random.default_rng(3)
    u = g.normal(size=(530, 16)).astype(np.float32)
    v = (0.7 * u + g.normal(size=u.shape)).astype(np.float32)
    v[:40] = g.normal(size=(40, 16))  # a block of mismatched pairs: structure not uniform
    return u, v


@pytest.fixture(scope="module")
def shards(tmp_path_factory, pairs):
    u, v = pairs
    d = tmp_path_factory.mktemp("shards")
    concepts = [f"c{i % 5}" for i in range(len(u))]
    write_embedding_shards(d, u, v, rows_per_shard=137, row_group_rows=50,
                           columns={"concept": concepts, "caption": [f"a {c}" for c in concepts],
                                    "poisoned": [int(i < 40) for i in range(len(u))]})
    return d


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_exact_over_shards_equals_one_process(shards, pairs, dtype, tol):
    u, v = pairs
    ref = alignment_difficulty(u, v, method="exact", block_size=64, dtype=dtype)
    # task blocks (96 rows) cut across shards (137) and row groups (50); tiles (40) do not divide the blocks
    res, run = alignment_difficulty_sharded(str(shards), method="exact", task_rows=96, block_size=40, dtype=dtype,
                                            engine="local")
    assert res.n == 530 and res.method == "exact"
    assert res.ad == pytest.approx(ref.ad, rel=tol) and res.structure == pytest.approx(ref.structure, rel=tol)
    assert res.feature == pytest.approx(ref.feature, rel=1e-12)
    np.testing.assert_allclose(res.row_structure, ref.row_structure, rtol=tol * 10, atol=1e-9)
    nb = -(-530 // 96)
    assert run.n_tasks == 4 + nb * (nb + 1) // 2  # one cosine task per shard + the upper-triangle blocks
    if dtype == torch.float64:
        assert res.ad == pytest.approx(naive_alignment_difficulty(u, v)[0], rel=1e-12)


def test_sampled_over_shards_is_the_single_process_estimate(shards, pairs):
    u, v = pairs
    for num_samples in (530 * 10, 700):  # stratified (per-row estimates) and i.i.d. pairs
        ref = alignment_difficulty(u, v, method="sampled", num_samples=num_samples, seed=7)
        res, _ = alignment_difficulty_sharded(str(shards), method="sampled", num_samples=num_samples, seed=7,
                                              engine="local")
        assert (res.ad, res.structure, res.structure_se, res.structure_ci) == \
            (ref.ad, ref.structure, ref.structure_se, ref.structure_ci)
        if ref.row_structure is not None:
            np.testing.assert_array_equal(res.row_structure, ref.row_structure)


def test_bad_shards_are_refused(tmp_path, pairs):
    from latentguard.core.errors import UserError

    u, v = pairs
    write_embedding_shards(tmp_path / "a", u[:10], v[:10])
    write_embedding_shards(tmp_path / "b", u[:10, :8], v[:10, :8])
    (tmp_path / "b" / "shard-00000.parquet").rename(tmp_path / "a" / "shard-00001.parquet")
    with pytest.raises(UserError, match="width 8"):
        list_shards(str(tmp_path / "a"))
    bad = u[:10].copy()
    bad[3] = 0
    write_embedding_shards(tmp_path / "z", bad, v[:10])
    with pytest.raises(ValueError, match="all-zero row .index 3"):
        alignment_difficulty_sharded(str(tmp_path / "z"), engine="local")
    with pytest.raises(UserError, match="no Parquet shards"):
        list_shards(str(tmp_path / "nothing-*.parquet"))


def test_cli_audits_shards_and_refuses_ray_on_a_caption_dataset(shards, pairs, tmp_path, capsys):
    u, v = pairs
    out = tmp_path / "audit"
    rc = main(["audit", "alignment", str(shards), "--engine", "local", "--method", "exact", "--block-size", "64",
               "--task-rows", "200", "--sim-offset", "0.2", "--sim-scale", "4", "--dtype", "float64",
               "--out", str(out)])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    ref = alignment_difficulty(u, v, method="exact", dtype=torch.float64)
    assert summary["ad"] == pytest.approx(ref.ad, rel=1e-12) and summary["n"] == 530
    assert summary["scale"]["engine"] == "local" and summary["shards"] == 4
    assert summary["detection"]["n_poisoned"] == 40  # the shards' `poisoned` column reached the audit
    lines = (out / "pairs.csv").read_text().splitlines()
    assert len(lines) == 531 and "c0" in lines[1]
    capsys.readouterr()
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "captions.csv").write_text("file,caption\n")
    assert main(["audit", "alignment", str(ds), "--engine", "ray", "--out", str(tmp_path / "x")]) == 2
    assert "Parquet shards" in capsys.readouterr().err


@pytest.mark.slow
def test_ray_tasks_give_the_same_ad(ray_local, shards, pairs):
    """On a local Ray instance: exact (one task per block) and sampled (one per chunk group)."""
    u, v = pairs
    ref = alignment_difficulty(u, v, method="exact", dtype=torch.float64)
    res, run = alignment_difficulty_sharded(str(shards), method="exact", task_rows=200, dtype=torch.float64,
                                            engine="ray")
    assert res.ad == pytest.approx(ref.ad, rel=1e-12) and run.cluster["cpus"] >= 1
    np.testing.assert_allclose(res.row_structure, ref.row_structure, rtol=1e-11)
    ref_s = alignment_difficulty(u, v, method="sampled", num_samples=530 * 20, seed=1)
    res_s, _ = alignment_difficulty_sharded(str(shards), method="sampled", num_samples=530 * 20, seed=1, engine="ray")
    assert (res_s.ad, res_s.structure_ci) == (ref_s.ad, ref_s.structure_ci)
