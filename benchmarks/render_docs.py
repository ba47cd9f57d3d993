"""Re-render every measured table of README.md and docs/*.md from its committed raw output.

    PYTHONPATH=src python benchmarks/render_docs.py            # rewrite the marked blocks in place
    PYTHONPATH=src python benchmarks/render_docs.py --check    # exit 1 naming every block that differs
    PYTHONPATH=src python benchmarks/render_docs.py --list     # the registry: block -> raw output, renderer

A measured table in a doc sits between two markers that name its block::

    <!-- NAME:begin -->
    ...the rendering, never edited by hand...
    <!-- NAME:end -->

and ``BLOCKS`` below says where its numbers come from: ``NAME: (raw, "module:function")``, ``raw`` one path (or
a tuple of paths) under ``benchmarks/results/`` (JSON, or CSV read as a list of row dicts), the renderer a
function of ``benchmarks/<module>.py`` that takes the loaded raw output(s) and returns Markdown. A block may appear
in several docs; every marked block must be registered and every registered block must appear somewhere.
``tests/test_render_docs.py`` runs ``--check``, so a doc whose figures are not the rendering of the committed
raw output fails the suite.

**Adding a table** (any helper, any doc): write the benchmark so it writes its raw output to
``benchmarks/results/X.json``; write ``render(d: dict) -> str`` in a ``benchmarks/*_tables.py`` module (one per
capability; add a small unit test of the renderer with a hand-made dict if it computes anything); add one line to
``BLOCKS``; put the two markers in the doc and run this script once to fill them. Renderers format only: every
number they print is in the raw output or computed from it. A table whose raw output is missing gets no markers
and a sentence beside it saying so and how long the re-run takes.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

# block name -> (raw output(s) under benchmarks/results/, "module:function" of benchmarks/<module>.py)
BLOCKS: dict[str, tuple[str | tuple[str, ...], str]] = {
    # README.md
    "demo": ("demo.json", "bench_demo:render"),
    "zoo_quality": (("zoo_quality.json", "bench_fast.json"), "zoo_tables:quality_table"),
    # docs/evaluate.md
    "pca_objectives": ("pca_table_objectives.json", "pca_objectives:render"),
    "pca_purify": ("pca_purify.json", "pca_purify:render"),
    # docs/protect.md
    "protect_effect": ("protect_effect.json", "protect_tables:render"),
    "protect_speed": ("protect_cpu.json", "protect_tables:speed_table"),
    "bench_fast": ("bench_fast.json", "bench_fast:render"),
    # docs/privacy.md
    "privacy_topk": ("privacy_pullback.json", "privacy_tables:topk_table"),
    "privacy_hutchinson": ("privacy_pullback.json", "privacy_tables:hutchinson_table"),
    "privacy_mia_main": ("privacy_mia.json", "privacy_tables:render_main"),
    "privacy_mia_timesteps": ("privacy_mia.json", "privacy_tables:render_timesteps"),
    "privacy_mia_distortion": ("privacy_mia.json", "privacy_tables:render_distortion"),
    # docs/harden.md
    "harden_sweep": ("bench_harden_sweep.json", "harden_tables:sweep_table"),
    "harden_fidelity": ("bench_harden.json", "harden_tables:fidelity_table"),
    "harden_whitebox": ("bench_harden.json", "harden_tables:whitebox_table"),
    "harden_gain": ("bench_harden.json", "harden_tables:gain_table"),
    "harden_full": ("bench_harden.json", "harden_tables:full_table"),
    # docs/poison.md
    "poison_calibration": ("ad_calibration.json", "poison_tables:calibration_table"),
    "poison_scale": ("poison_ad_cpu.json", "poison_tables:scale_table"),
    "poison_implosion_ad": ("implosion_ad.json", "poison_tables:implosion_ad_table"),
    "poison_implosion": ("implosion_summary.json", "poison_tables:implosion_table"),
    "poison_ranking": ("poison_ranking.json", "poison_tables:ranking_table"),
    "poison_shift": ("poison_ranking.json", "poison_tables:shift_table"),
    # docs/survival.md
    "survival": ("survival.json", "survival:table"),
    # docs/scale.md
    "scale_protect": ("bench_scale.json", "scale_tables:protect_table"),
    # docs/serve.md
    "serve_steps": ("bench_serve_steps.json", "serve_tables:steps_table"),
    "serve_timing": ("bench_serve_timing.json", "serve_tables:timing_table"),
    "serve_load": ("bench_serve.json", "serve_tables:load_table"),
}

# A block may be indented (a table inside a list item): its lines carry the begin marker's indentation.
_MARK = re.compile(r"^([ \t]*)<!-- ([A-Za-z0-9_.-]+):begin -->\n(.*?)^\1<!-- \2:end -->", re.S | re.M)


def _indent(text: str, ind: str) -> str:
    return "".join(ind + line if line.strip() else line for line in text.splitlines(True))


def docs(root: Path = ROOT) -> list[Path]:
    return [root / "README.md"] + sorted((root / "docs").glob("*.md"))


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _load_raw(path: Path):
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    return json.loads(path.read_text())


def renderer(name: str, results: Path = RESULTS) -> Callable[[], str]:
    raw, target = BLOCKS[name]
    paths = [results / p for p in ((raw,) if isinstance(raw, str) else raw)]
    mod_name, fn_name = target.split(":")

    def render() -> str:
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"block {name!r}: raw output missing: {', '.join(missing)}")
        text = getattr(_module(mod_name), fn_name)(*[_load_raw(p) for p in paths])
        return text.rstrip("\n") + "\n"

    return render


def render_all(root: Path = ROOT, write: bool = False, only: set[str] | None = None) -> list[str]:
    """Render every marked block; return one line per problem (block differs, unknown, unused)."""
    problems: list[str] = []
    seen: set[str] = set()
    cache: dict[str, str] = {}
    for doc in docs(root):
        if not doc.is_file():
            continue
        text = doc.read_text()

        def sub(m: re.Match) -> str:
            ind, name, body = m.group(1), m.group(2), m.group(3)
            seen.add(name)
            if only and name not in only:
                return m.group(0)
            if name not in BLOCKS:
                problems.append(f"{doc.relative_to(root)}: block {name!r} is not registered in benchmarks/render_docs.py")
                return m.group(0)
            if name not in cache:
                try:
                    cache[name] = renderer(name, root / "benchmarks" / "results")()
                except FileNotFoundError as e:
                    problems.append(f"{doc.relative_to(root)}: {e}")
                    return m.group(0)
            new = _indent(cache[name], ind)
            if new != body:
                diff = "".join(list(difflib.unified_diff(body.splitlines(True), new.splitlines(True), "doc", "rendered",
                                                         n=0))[2:12])
                problems.append(f"{doc.relative_to(root)}: block {name!r} differs from its rendering of "
                                f"{BLOCKS[name][0]}:\n{diff}")
            return f"{ind}<!-- {name}:begin -->\n{new}{ind}<!-- {name}:end -->"

        new_text = _MARK.sub(sub, text)
        if write and new_text != text:
            doc.write_text(new_text)
    for name in BLOCKS:
        if name not in seen and (not only or name in only):
            problems.append(f"block {name!r} is registered but no doc has its markers")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a doc differs from its rendering")
    ap.add_argument("--list", action="store_true", help="print the registry")
    ap.add_argument("--only", nargs="+", metavar="BLOCK", help="only these blocks")
    a = ap.parse_args(argv)
    if a.list:
        for name, (raw, fn) in BLOCKS.items():
            print(f"{name:28s} {raw!s:40s} {fn}")
        return 0
    unknown = set(a.only or ()) - set(BLOCKS)
    if unknown:
        raise SystemExit(f"unknown block(s): {', '.join(sorted(unknown))}")
    problems = render_all(write=not a.check, only=set(a.only) if a.only else None)
    stale = [p for p in problems if " differs " in p]
    for p in problems if a.check else [p for p in problems if p not in stale]:
        print(p, file=sys.stderr)
    if not a.check:
        print(f"rendered {len(BLOCKS) if not a.only else len(a.only)} block(s); {len(stale)} updated")
    return 1 if (problems if a.check else [p for p in problems if p not in stale]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
