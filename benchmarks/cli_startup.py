"""Start-up time of the ``latentguard`` command next to ``import torch``, measured in one run.

    PYTHONPATH=src python benchmarks/cli_startup.py [--runs 15] [--baseline-src OTHER/src]
        [--out benchmarks/results/cli_startup.json]

Each round runs, in a fresh interpreter each and in this order, ``python -m latentguard --help``,
``python -m latentguard protect --help`` and ``python -c "import torch"`` (stdout discarded), so the three
share the machine's load; the JSON holds every wall time and every CPU time (user + system of the child:
on a loaded host the better estimate of the wall time on an idle core), the median and the spread of each,
the interpreter's bare start-up (``python -c pass``) and the host (CPU count, load average before and after).
``--baseline-src`` adds ``latentguard --help`` run from another checkout's ``src`` (e.g. the commit before
the CLI package) to the same rounds. The target is under 1 s for both ``--help`` commands.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = {
    "latentguard --help": [sys.executable, "-m", "latentguard", "--help"],
    "latentguard protect --help": [sys.executable, "-m", "latentguard", "protect", "--help"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "python -c pass": [sys.executable, "-c", "pass"],
}


def _time(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds user + system) of one run of ``cmd``."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15, help="rounds (default 15)")
    ap.add_argument("--baseline-src", default=None, help="another checkout's src folder to time `--help` from")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cli_startup.json"))
    args = ap.parse_args(argv)
    envs: dict[str, dict[str, str]] = {}
    commands = dict(COMMANDS)
    srcs = {name: ROOT / "src" for name in commands}
    if args.baseline_src:
        name = f"latentguard --help (baseline {args.baseline_src})"
        commands[name] = COMMANDS["latentguard --help"]
        srcs[name] = Path(args.baseline_src).resolve()
    for name in commands:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(srcs[name])
        envs[name] = env
    for name, cmd in commands.items():  # warm the file cache once; not counted
        _time(cmd, envs[name])
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, cmd in commands.items():
            wall, used = _time(cmd, envs[name])
            times[name].append(round(wall, 4))
            cpu[name].append(round(used, 4))
    load_after = os.getloadavg()
    res = {
        "what": "seconds of a fresh interpreter per command, interleaved rounds (see benchmarks/cli_startup.py)",
        "runs": args.runs,
        "median_s": {k: round(statistics.median(v), 3) for k, v in times.items()},
        "median_cpu_s": {k: round(statistics.median(v), 3) for k, v in cpu.items()},
        "min_s": {k: round(min(v), 3) for k, v in times.items()},
        "max_s": {k: round(max(v), 3) for k, v in times.items()},
        "times_s": times,
        "cpu_s": cpu,
        "host": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
                 "loadavg_before": [round(x, 2) for x in load_before],
                 "loadavg_after": [round(x, 2) for x in load_after]},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps({"median_s": res["median_s"], "median_cpu_s": res["median_cpu_s"]}, indent=2))
    return res


if __name__ == "__main__":
    main()
