"""README's demo paragraph is the rendering of the committed measurement (benchmarks/bench_demo.py)."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_demo_paragraph_matches_the_committed_raw_output(load_benchmark):
    mod = load_benchmark("bench_demo")
    raw = json.loads((ROOT / "benchmarks/results/demo.json").read_text())
    text = (ROOT / "README.md").read_text()
    block = text.split(mod.BEGIN, 1)[1].split(mod.END, 1)[0]
    assert block == mod.render(raw)
    from latentguard.demo import DEMO_SIZE

    assert raw["config"]["image_size"] == DEMO_SIZE >= 256  # the committed run is the demo as it ships
