"""``latentguard bench --engine ray``: the runner's units run elsewhere and results.jsonl is the local one but for
the timing fields. Default suite: a stand-in engine that runs the units backwards through the same per-unit
function (no Ray). Slow: Ray actors, one of them killed mid-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latentguard.cli import main

CONFIG = """
[run]
seed = 0
device = "cpu"
images = "samples"
image_size = 32
max_images = 3
batch_size = 2
metrics = ["psnr", "ssim"]
targets = ["zoo:vae-a"]

[protect]
methods = ["pca-", "random-noise"]
budgets = ["16/255"]
steps = 2
surrogates = ["zoo:vae-a"]

[[edits]]
kind = "recon"

[[purifications]]
kind = "none"

[[purifications]]
kind = "jpeg"
quality = 75
"""


def _untimed(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]
    for r in rows:
        r.pop("seconds", None)
    return rows


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    p = tmp_path_factory.mktemp("cfg") / "tiny.toml"
    p.write_text(CONFIG)
    return p


@pytest.fixture(scope="module")
def local_out(config, tmp_path_factory, vae_a):
    out = tmp_path_factory.mktemp("local") / "out"
    assert main(["bench", str(config), "--out", str(out), "--no-progress", "--threads", "1"]) == 0
    return out


def test_units_cover_the_matrix_in_the_local_order(config, local_out):
    from latentguard.evaluate.config import BenchConfig
    from latentguard.evaluate.runner import bench_units, load_bench_images

    cfg = BenchConfig.from_toml(config)
    units = bench_units(cfg, load_bench_images(cfg))
    assert [(u.method, u.batch) for u in units] == [("pca-", 0), ("pca-", 1), ("random-noise", 0), ("random-noise", 1)]
    # 2 methods x 3 images x 1 edit x 2 purifications
    assert sum(r["status"] == "ok" for r in _untimed(local_out)) == 12


def test_an_engine_may_finish_units_in_any_order_and_results_are_the_local_ones(config, local_out, tmp_path):
    import dataclasses

    from latentguard.evaluate.config import BenchConfig
    from latentguard.evaluate.runner import RowBuffer, UnitRunner, run_bench
    from tqdm.auto import tqdm

    def backwards(cfg, out, units, done):
        buf = RowBuffer()
        runner = UnitRunner.for_config(cfg, out, buf, done)
        for k in reversed(range(len(units))):
            buf.rows = []
            counts = runner.run(units[k], tqdm(disable=True))
            yield k, list(buf.rows), counts

    backwards.engine_name = "backwards"
    cfg = dataclasses.replace(BenchConfig.from_toml(config))
    counts = run_bench(cfg, tmp_path / "out", progress=False, engine=backwards)
    assert counts["ok"] == 12 and counts["error"] == 0
    assert _untimed(tmp_path / "out") == _untimed(local_out)
    assert json.loads((tmp_path / "out" / "run.json").read_text())["engine"] == "backwards"
    assert (tmp_path / "out" / "table.md").read_text() == (local_out / "table.md").read_text()


def test_cli_engine_ray_hands_the_run_to_the_ray_engine(config, local_out, tmp_path, monkeypatch):
    """The wiring without a Ray start: `bench --engine ray` builds the Ray engine from its options."""
    from latentguard.scale import bench as scale_bench

    seen = {}
    real = scale_bench.ray_bench_engine

    def factory(args, fault=None):
        seen.update(num_actors=args.num_actors, restarts=args.max_restarts, threads=args.threads)
        return real(args)

    monkeypatch.setattr(scale_bench, "ray_bench_engine", factory)
    with pytest.raises(SystemExit):  # a bad option value is refused before anything starts
        main(["bench", str(config), "--out", str(tmp_path / "x"), "--engine", "ray", "--num-actors", "two"])
    assert main(["bench", str(config), "--out", str(tmp_path / "y"), "--engine", "ray", "--num-actors", "0"]) == 2
    assert seen == {"num_actors": 0, "restarts": 3, "threads": None}


@pytest.mark.slow  # a Ray start and two actors, one killed once: ~1 min on 2 cores
def test_ray_bench_equals_local_and_survives_a_killed_actor(ray_local, config, local_out, tmp_path):
    import argparse

    from latentguard.evaluate.config import BenchConfig
    from latentguard.evaluate.runner import run_bench
    from latentguard.scale.bench import ray_bench_engine

    marker = tmp_path / "crashed"
    engine = ray_bench_engine(argparse.Namespace(num_actors=2, cpus_per_actor=1, gpus_per_actor=0, max_restarts=2,
                                                 threads=1, address=None), fault={"crash_on": 1, "marker": str(marker)})
    out = tmp_path / "ray"
    run_bench(BenchConfig.from_toml(config), out, progress=False, engine=engine)
    assert marker.exists()
    assert _untimed(out) == _untimed(local_out)
    assert json.loads((out / "run.json").read_text())["engine"] == "ray"
