"""The README's main command, measured: ``latentguard demo`` (4 photos at 256 px), its time and its figures.

    PYTHONPATH=src python benchmarks/bench_demo.py --run runs/demo_bench       # runs the demo, writes the JSON
    PYTHONPATH=src python benchmarks/bench_demo.py --from-run runs/demo_bench  # the JSON from an existing run
    PYTHONPATH=src python benchmarks/bench_demo.py --readme README.md          # README's demo paragraph from it

``--run`` starts ``python -m latentguard demo --out DIR --device cpu`` as a child process and records its wall
time and CPU time (user + system of the child, ``resource.getrusage``), the CPU count and the load average
around it (the machine may be shared: CPU time is the figure that transfers to a fresh machine). The figures are
the run's own rows (``results.jsonl``): per method and edit, the mean over the photos of PSNR/SSIM of the edit
against the clean photo's edit (Objective 2) and against the input (Objective 1). Writes
``benchmarks/results/demo.json``; the README's paragraph between ``<!-- demo:begin -->`` and ``<!-- demo:end -->``
is :func:`render` of it (``tests/e2e/test_demo_readme.py`` checks that).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "benchmarks" / "results" / "demo.json"
BEGIN, END = "<!-- demo:begin -->\n", "<!-- demo:end -->"


def compact(run: Path) -> dict:
    """Mean figures per (method, edit family) over the photos of a demo run folder."""
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines() if line.strip()]
    ok = [r for r in rows if r.get("status") == "ok" and r.get("purification") == "none"]
    cfg = json.loads((run / "run.json").read_text())["config"]
    out: dict = {"config": {"image_size": cfg["image_size"], "images": sorted({r["image"] for r in ok}),
                            "methods": cfg["methods"], "steps": cfg["steps"],
                            "budget": cfg["budgets"][0]["label"], "targets": cfg["targets"]},
                 "cells": {}}
    for method in sorted({r["method"] for r in ok}):
        for fam in sorted({r["edit"].split("[")[0] for r in ok}):
            rs = [r for r in ok if r["method"] == method and r["edit"].split("[")[0] == fam]
            out["cells"][f"{method}|{fam}"] = {
                "n": len(rs),
                "obj2_psnr": float(np.mean([r["metrics"]["psnr"] for r in rs])),
                "obj2_ssim": float(np.mean([r["metrics"]["ssim"] for r in rs])),
                "obj1_psnr": float(np.mean([r["vs_input"]["psnr"] for r in rs])),
                "obj1_ssim": float(np.mean([r["vs_input"]["ssim"] for r in rs])),
                "clean_edit_vs_input_psnr": float(np.mean([r["clean_edit_vs_input"]["psnr"] for r in rs])),
                "protected_vs_input_psnr": float(np.mean([r["input"]["psnr"] for r in rs])),
            }
    prev = run / "preview" / "preview.json"
    if prev.exists():
        out["previews"] = [{"image": f["image"], "method": f["method"],
                            "margins_db": {e: g["margin_db"] for e, g in f["edits"].items()}}
                           for f in json.loads(prev.read_text())]
    return out


def run_demo(out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "latentguard", "demo", "--out", str(out), "--device", "cpu"],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"demo failed with exit status {proc.returncode}")
    (out / "stdout.txt").write_text(proc.stdout)
    return {"wall_s": round(wall, 1),
            "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
            "cpus": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_avg_before": [round(v, 2) for v in load0], "load_avg_after": [round(v, 2) for v in os.getloadavg()],
            "python": platform.python_version(), "machine": platform.machine()}


def render(d: dict) -> str:
    """README's demo paragraph (between the markers) from the committed JSON."""
    c, t = d["cells"], d.get("timing", {})
    cfg = d["config"]

    def v(method: str, fam: str, key: str) -> str:
        return f"{c[f'{method}|{fam}'][key]:.1f}"

    rec, i2i = "recon-sample", "img2img"
    obj1_gap = c[f"pca+|{i2i}"]["obj1_psnr"] - c[f"random-noise|{i2i}"]["obj1_psnr"]
    timing = (f"{t['cpu_s'] / 60:.1f} min of CPU time (user + system, 2 torch threads; {t['wall_s'] / 60:.0f} min wall on "
              f"this project's shared {t['cpus']}-core machine at a load average of {t['load_avg_before'][0]:.0f} to "
              f"{t['load_avg_after'][0]:.0f} from other jobs)" if t else "(not timed)")
    return (f"`runs/demo/report.html` opens with one preview grid per photo ({len(cfg['images'])} bundled photos at "
            f"{cfg['image_size']} px: clean, protected, amplified difference and random noise of the same "
            f"{cfg['budget']} budget, and what the editor makes of each), then the tables. Measured: the demo takes "
            f"{timing}. Its figures "
            f"(`benchmarks/results/demo.json`, mean over the photos): the reconstruction of PCA+-protected photos lands "
            f"{v('pca+', rec, 'obj2_psnr')} dB from the clean reconstruction against {v('random-noise', rec, 'obj2_psnr')} dB "
            f"for random noise of the same budget, the img2img edit {v('pca+', i2i, 'obj2_psnr')} dB from the clean edit "
            f"against {v('random-noise', i2i, 'obj2_psnr')} dB; on PCA+'s own objective, the edit staying close to the "
            f"input, PCA+ {'beats' if obj1_gap > 0 else 'does not beat'} noise here: its img2img edit is "
            f"{v('pca+', i2i, 'obj1_psnr')} dB from the input, noise's {v('random-noise', i2i, 'obj1_psnr')} dB.\n")


def write_readme(readme: Path, d: dict) -> None:
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme} has no {BEGIN.strip()} ... {END} block")
    head, rest = text.split(BEGIN, 1)
    readme.write_text(head + BEGIN + render(d) + END + rest.split(END, 1)[1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--run", type=Path, help="run the demo into this (new) folder, then write the JSON")
    g.add_argument("--from-run", type=Path, help="write the JSON from an existing demo folder (keeps the timing)")
    g.add_argument("--readme", type=Path, help="rewrite this README's demo paragraph from the JSON")
    ap.add_argument("--json", type=Path, default=DEFAULT)
    a = ap.parse_args(argv)
    if a.readme:
        write_readme(a.readme, json.loads(a.json.read_text()))
        return
    timing = run_demo(a.run) if a.run else json.loads(a.json.read_text()).get("timing") if a.json.exists() else None
    d = compact(a.run or a.from_run)
    if timing:
        d["timing"] = timing
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(d, indent=1) + "\n")
    print(render(d))


if __name__ == "__main__":
    main()
