"""Every measured table of README.md and docs/*.md is the rendering of its committed raw output.

``benchmarks/render_docs.py --check`` re-renders each marked block (``<!-- NAME:begin -->`` ... ``<!-- NAME:end -->``)
from ``benchmarks/results/`` and names every block whose committed text differs, is not registered, or whose raw
output is missing. Fix a failure by re-running the block's benchmark (or, after a renderer change, by running
``PYTHONPATH=src python benchmarks/render_docs.py``), never by editing the numbers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_marked_doc_block_matches_its_rendering(load_benchmark):
    mod = load_benchmark("render_docs")
    problems = mod.render_all(ROOT, write=False)
    assert not problems, "\n".join(problems)


def test_check_names_the_stale_block_and_write_repairs_it(tmp_path, load_benchmark):
    mod = load_benchmark("render_docs")
    (tmp_path / "docs").mkdir()
    shutil.copytree(ROOT / "benchmarks" / "results", tmp_path / "benchmarks" / "results",
                    ignore=shutil.ignore_patterns("*.png"))
    for doc in mod.docs(ROOT):
        if doc.is_file():
            shutil.copy(doc, tmp_path / doc.relative_to(ROOT))
    doc = tmp_path / "docs" / "harden.md"
    text = doc.read_text()
    block = text.split("<!-- harden_fidelity:begin -->\n", 1)[1].split("<!-- harden_fidelity:end -->", 1)[0]
    doc.write_text(text.replace(block, block.replace("-0.27 dB", "-0.17 dB"), 1)
                   + "\n<!-- no_such_block:begin -->\nx\n<!-- no_such_block:end -->\n")
    problems = mod.render_all(tmp_path, write=False)
    assert any("docs/harden.md: block 'harden_fidelity' differs" in p and "-0.17 dB" in p for p in problems)
    assert any("'no_such_block' is not registered" in p for p in problems)
    mod.render_all(tmp_path, write=True)
    assert doc.read_text().count("-0.27 dB") == text.count("-0.27 dB")
    assert [p for p in mod.render_all(tmp_path, write=False) if "harden_fidelity" in p] == []
