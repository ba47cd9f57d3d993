"""The per-batch protect function under both engines: content seeds, manifests, atomic outputs, Ray actors.

Default suite: the local engine (no Ray) and one Ray run compared byte for byte with the local run. Slow: an
actor killed mid-batch, the driver killed with SIGKILL and the run resumed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latentguard.cli import main

# random start: the per-image seed decides the output, so equal bytes mean equal seeds
ARGS = ["--steps", "2", "--random-start", "--device", "cpu", "--threads", "1", "--no-progress"]


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]


def _digests(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.png"))
            if p.name != "summary.png"}


def _pixels(path: Path) -> bytes:
    from PIL import Image

    with Image.open(path) as im:
        return im.tobytes()


def _visible(out: Path) -> set[str]:
    return {p.name for p in out.iterdir() if not p.name.startswith(".")}


@pytest.fixture(scope="module")
def local_run(photos, tmp_path_factory):
    """The reference: the local engine on the photo folder."""
    out = tmp_path_factory.mktemp("local")
    assert main(["protect", str(photos), *ARGS, "--out", str(out)]) == 1  # 1: an input failed (broken.png)
    return out


def test_image_seed_is_a_function_of_seed_and_content():
    from latentguard.protect.batch import image_seed

    a, b = b"image one", b"image two"
    assert image_seed(0, a) == image_seed(0, a) == image_seed(0, hashlib.sha256(a).hexdigest())
    assert len({image_seed(0, a), image_seed(1, a), image_seed(0, b)}) == 3
    assert 0 <= image_seed(2**40, b) < 2**63


def test_local_outputs_do_not_depend_on_name_position_or_split(local_run, photos, tmp_path):
    ref = _digests(local_run)
    assert set(ref) == {"im0.png", "im1.png", "im2.png", "im3.png"}
    assert not (local_run / ".latentguard-staging").exists()
    rows = {Path(r["input"]).name: r for r in _rows(local_run)}
    assert rows["broken.png"]["status"] == "error" and "broken.png" in rows["broken.png"]["error"]
    assert rows["im1.png"]["sha256"] == hashlib.sha256((photos / "im1.png").read_bytes()).hexdigest()
    # im2 alone, under another name, listed after another image, in a run of its own
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(photos / "im2.png", other / "zz.png")
    out = tmp_path / "out"
    assert main(["protect", str(photos / "im3.png"), str(other / "zz.png"), *ARGS, "--out", str(out)]) == 0
    got = _digests(out)
    assert got["im3.png"] == ref["im3.png"]
    # the renamed copy: the same pixels (its PNG differs only in the `source` provenance chunk)
    assert _pixels(out / "zz.png") == _pixels(local_run / "im2.png")
    assert main(["protect", str(photos / "im3.png"), *ARGS, "--seed", "1", "--out", str(tmp_path / "s1")]) == 0
    assert _digests(tmp_path / "s1")["im3.png"] != ref["im3.png"]  # --seed still matters


def test_manifests_list_paths_and_uris(photos, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from latentguard.protect.batch import collect_items

    (tmp_path / "m.csv").write_text(f"path,label\n{photos / 'im0.png'}\n" + f"file://{photos / 'im1.png'},x\n")
    rel = tmp_path / "sub"
    rel.mkdir()
    shutil.copy(photos / "im2.png", rel / "im2.png")
    pq.write_table(pa.table({"uri": ["sub/im2.png", f"file://{photos / 'im1.png'}"]}), tmp_path / "m.parquet")
    items = collect_items([str(tmp_path / "m.csv"), str(tmp_path / "m.parquet")])
    assert [i.stem for i in items] == ["im0", "im1", "im2"]  # the repeated URI is listed once
    assert items[1].key == f"file://{photos / 'im1.png'}" and items[2].key == str((rel / "im2.png").resolve())
    out = tmp_path / "out"
    assert main(["protect", str(tmp_path / "m.csv"), *ARGS, "--out", str(out)]) == 0
    assert {r["status"] for r in _rows(out)} == {"ok"} and set(_digests(out)) == {"im0.png", "im1.png"}


@pytest.mark.slow  # a Ray start and two actors: ~25 s on 2 cores (CI's slow run has it)
def test_ray_engine_writes_the_local_bytes_and_skips_the_corrupt_file(ray_local, local_run, photos, tmp_path, capsys):
    out = tmp_path / "ray"
    rc = main(["protect", str(photos), *ARGS, "--engine", "ray", "--num-actors", "1", "--batch-size", "2",
               "--out", str(out)])
    assert rc == 1  # the corrupt input failed, the others were protected
    assert _digests(out) == _digests(local_run)  # same bytes, whichever engine and however batched
    rows = _rows(out)
    assert sorted(Path(r["input"]).name for r in rows) == ["broken.png", "im0.png", "im1.png", "im2.png", "im3.png"]
    assert [r["status"] for r in rows if r["input"].endswith("broken.png")] == ["error"]
    assert "broken.png" in capsys.readouterr().err
    assert _visible(out) == _visible(local_run)
    assert json.loads((out / "run.json").read_text())["config"]["engine"] == "ray"


@pytest.mark.slow
def test_an_actor_killed_mid_batch_is_restarted_and_nothing_is_lost_or_doubled(ray_local, local_run, photos, tmp_path):
    from latentguard.cli.app import build_parser
    from latentguard.protect import cli as protect_cli
    from latentguard.protect.batch import collect_items
    from latentguard.scale.protect import ray_engine

    out = tmp_path / "ray"
    out.mkdir()
    args = build_parser().parse_args(["protect", str(photos), *ARGS, "--engine", "ray", "--num-actors", "2",
                                      "--batch-size", "3", "--out", str(out)])
    method, models = protect_cli.build_method(args)
    marker = tmp_path / "crashed"
    # the actor dies (os._exit) at im1: the second item of the first batch, after im0's PNG was published
    rows = list(ray_engine(args, method, collect_items(args.inputs), out, provenance={
        "method": args.method, "eps": method.eps, "norm": method.norm, "steps": method.steps, "surrogates": models},
        fault={"crash_on": "im1", "marker": str(marker)}))
    assert marker.exists()
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) == 5
    assert sorted(r["status"] for r in rows) == ["error", "ok", "ok", "ok", "ok"]
    assert _digests(out) == _digests(local_run)


def _driver(photos: Path, out: Path, address: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "latentguard", "protect", str(photos), "--steps", "6", "--device", "cpu",
           "--threads", "1", "--no-progress", "--engine", "ray", "--address", address, "--num-actors", "1",
           "--batch-size", "1", "--out", str(out), *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_driver_killed_then_resumed_gives_every_output_exactly_once(ray_local, photos, tmp_path):
    from latentguard.io import load_image

    address = ray_local.get_runtime_context().gcs_address
    out = tmp_path / "run"
    proc = _driver(photos, out, address)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:  # kill once the first outputs are recorded
        if (out / "results.jsonl").exists() and sum(r["status"] == "ok" for r in _rows(out)) >= 1:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {r["key"] for r in _rows(out) if r["status"] == "ok"}
    assert 1 <= len(done_before) < 4
    for name in _visible(out):  # no partial file in sight: every visible PNG is whole
        if name.endswith(".png"):
            load_image(out / name)
    proc = _driver(photos, out, address, "--resume")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err.decode()[-2000:]  # broken.png is a failed input
    ok = [r["key"] for r in _rows(out) if r["status"] == "ok"]
    assert len(ok) == len(set(ok)) == 4 and done_before <= set(ok)
    assert set(_digests(out)) == {"im0.png", "im1.png", "im2.png", "im3.png"}
    assert not (out / ".latentguard-staging").exists()
    for name in _digests(out):
        load_image(out / name)


def test_a_row_cut_by_a_kill_does_not_swallow_the_next_one(tmp_path):
    from latentguard.io import JsonlWriter

    path = tmp_path / "results.jsonl"
    path.write_text('{"key": "a", "status": "ok"}\n{"key": "b", "sta')  # killed mid-row
    w = JsonlWriter(path, resume=True)
    w.write({"key": "c", "status": "ok"})
    assert [r["key"] for r in w.rows()] == ["a", "c"] and w.done_keys() == {"a", "c"}
