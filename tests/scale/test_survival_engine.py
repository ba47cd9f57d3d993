"""``latentguard survival --engine ray``: the same files as the local run, batch order restored, a dead actor's
batch redone once. Default suite: the engine hook with a shuffling stand-in engine and the CLI wiring (no Ray). Slow: on Ray, with
an actor killed at the second batch, the files equal the local run's."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from latentguard.cli import main
from latentguard.io import save_image

ARGS = ["--model", "zoo:vae-a", "--purify", "jpeg-q75,resize-0.5", "--embedder", "none", "--no-progress",
        "--device", "cpu", "--threads", "1"]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """Three protected/clean pairs in two sizes (two survival batches: batches hold one size)."""
    from latentguard.samples import sample_images

    root = tmp_path_factory.mktemp("pairs")
    clean, prot = root / "clean", root / "prot"
    for k, size in enumerate((32, 32, 16)):
        x = sample_images(size, 3)[k]
        save_image(x, clean / f"im{k}.png")
        d = 16 / 255 * torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(k)))
        save_image((x + d).clamp(0, 1), prot / f"im{k}.png", metadata={"method": "pca-", "source": f"im{k}.png"})
    return clean, prot


def _untimed(out: Path) -> tuple[list, list, list]:
    doc = json.loads((out / "survival.json").read_text())
    rows = [{k: v for k, v in r.items() if k != "seconds_per_image"} for r in doc["rows"]]
    with open(out / "survival.csv") as fh:
        table = [{k: v for k, v in r.items() if k != "seconds_per_image"} for r in csv.DictReader(fh)]
    return rows, doc["images"], table


@pytest.fixture(scope="module")
def local_out(pairs, tmp_path_factory):
    clean, prot = pairs
    out = tmp_path_factory.mktemp("local")
    assert main(["survival", str(prot), "--clean", str(clean), *ARGS, "--out", str(out)]) == 0
    return out


def test_an_engine_may_answer_in_any_order_and_the_files_are_the_local_ones(pairs, local_out, tmp_path, vae_a):
    from latentguard.evaluate.survival import SurvivalSetup, collect, pair_inputs, run_survival

    clean, prot = pairs
    items = pair_inputs(collect([str(prot)]), collect([str(clean)]))
    calls = []

    def backwards(jobs, spec):
        calls.append([[it.id for it in j] for j in jobs])
        setup = SurvivalSetup.build(spec)
        for k in reversed(range(len(jobs))):
            yield (k, *setup.score(jobs[k]))

    backwards.engine_name = "backwards"
    out = tmp_path / "eng"
    run_survival(items, out, model="zoo:vae-a", purifications=["jpeg-q75", "resize-0.5"], embedder=None,
                 device="cpu", progress=False, echo=None, engine=backwards)
    assert calls == [[["im0", "im1"], ["im2"]]]  # the batches are formed by the driver, one size each
    assert _untimed(out) == _untimed(local_out)
    assert json.loads((out / "run.json").read_text())["config"]["engine"] == "backwards"


def test_cli_engine_ray_hands_the_run_to_the_ray_engine(pairs, local_out, tmp_path, monkeypatch):
    """The wiring without a Ray start: `survival --engine ray` builds the Ray engine from its options (stood in
    by the local loop here) and run.json names it."""
    from latentguard.evaluate.survival import local_engine
    from latentguard.scale import survival as scale_survival

    seen = {}

    def factory(args, fault=None):
        seen.update(num_actors=args.num_actors, cpus=args.cpus_per_actor, threads=args.threads)

        def engine(jobs, spec):
            yield from local_engine(jobs, spec)

        engine.engine_name = "ray"
        return engine

    monkeypatch.setattr(scale_survival, "ray_survival_engine", factory)
    clean, prot = pairs
    out = tmp_path / "o"
    assert main(["survival", str(prot), "--clean", str(clean), *ARGS, "--engine", "ray", "--num-actors", "2",
                 "--out", str(out)]) == 0
    assert seen == {"num_actors": 2, "cpus": 1.0, "threads": 1}
    assert _untimed(out) == _untimed(local_out)
    assert json.loads((out / "run.json").read_text())["config"]["engine"] == "ray"


@pytest.mark.slow  # a Ray start and an actor killed once: ~1 min on 2 cores
def test_a_killed_survival_actor_is_restarted_and_its_batch_counted_once(ray_local, pairs, local_out, tmp_path):
    import argparse

    from latentguard.evaluate.survival import collect, pair_inputs, run_survival
    from latentguard.scale.survival import ray_survival_engine

    clean, prot = pairs
    marker = tmp_path / "crashed"
    engine = ray_survival_engine(argparse.Namespace(num_actors=1, cpus_per_actor=1, gpus_per_actor=0, max_restarts=2,
                                                    threads=1, address=None),
                                 fault={"crash_on": "im2", "marker": str(marker)})
    out = tmp_path / "ray"
    run_survival(pair_inputs(collect([str(prot)]), collect([str(clean)])), out, model="zoo:vae-a",
                 purifications=["jpeg-q75", "resize-0.5"], embedder=None, device="cpu", progress=False, echo=None,
                 engine=engine)
    assert marker.exists()  # the actor died once, at the second batch
    assert _untimed(out) == _untimed(local_out)
