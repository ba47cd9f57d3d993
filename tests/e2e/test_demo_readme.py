"""README's demo paragraph is the rendering of the committed measurement (benchmarks/bench_demo.py; the block
``demo`` of benchmarks/render_docs.py, checked with every other doc block by tests/test_render_docs.py)."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_demo_measurement_is_the_demo_as_it_ships():
    from latentguard.demo import DEMO_SIZE

    raw = json.loads((ROOT / "benchmarks/results/demo.json").read_text())
    assert raw["config"]["image_size"] == DEMO_SIZE >= 256
    text = (ROOT / "README.md").read_text()
    assert "<!-- demo:begin -->" in text and "<!-- demo:end -->" in text
