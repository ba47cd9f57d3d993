"""Rewrite the golden values from the current code: ``python tests/golden/regen.py [--group stable|jpeg] [NAME ...]``.

Run it (from the repository root, with the sources you mean to pin on ``PYTHONPATH``) only when a change of
numbers is intended, and review the diff of the JSON like code. Without names every case of the chosen
group(s) is recomputed; with names only those are, the others keep their pinned values. Cases whose zoo
weights are absent keep their old values (a warning says so). Runs single-threaded on CPU, like the tests.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = {"stable": HERE / "golden_values.json", "jpeg": HERE / "golden_jpeg.json"}


def load_cases():
    spec = importlib.util.spec_from_file_location("golden_cases", HERE / "cases.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def read(group: str) -> dict:
    path = FILES[group]
    return json.loads(path.read_text()) if path.exists() else {}


def write(group: str, values: dict) -> None:
    FILES[group].write_text(json.dumps(dict(sorted(values.items())), indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="case names to recompute (default: all of the group)")
    ap.add_argument("--group", choices=("stable", "jpeg", "all"), default="all")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    torch.set_num_threads(1)
    cases = load_cases()
    from latentguard.models.registry import available

    have = set(available())
    unknown = [n for n in args.names if n not in cases.CASES]
    if unknown:
        print(f"unknown case(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    groups = cases.GROUPS if args.group == "all" else (args.group,)
    for group in groups:
        values = read(group)
        todo = [c for c in cases.CASES.values() if c.group == group and (not args.names or c.name in args.names)]
        for c in todo:
            missing = [n for n in c.needs if n not in have]
            if missing:
                print(f"warning: {c.name}: zoo weights not built ({', '.join(missing)}); kept the pinned value",
                      file=sys.stderr)
                continue
            t0 = time.perf_counter()
            values[c.name] = cases.compute(c.name)
            print(f"{c.name}: {time.perf_counter() - t0:.2f} s")
        if not args.names:  # a full regeneration drops cases that no longer exist
            values = {k: v for k, v in values.items() if k in cases.CASES and cases.CASES[k].group == group}
        write(group, values)
        print(f"wrote {FILES[group]} ({len(values)} cases)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
