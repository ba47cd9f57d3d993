"""The ``latentguard`` command builds its parser without importing torch (``--help`` answers at once).

Behaviour, not timing: each check runs in a fresh interpreter and looks at ``sys.modules``
(benchmarks/cli_startup.py measures the seconds).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "numpy", "diffusers", "transformers", "matplotlib", "accelerate", "scipy", "sklearn", "pydantic",
         "ray", "pyarrow")


def _imported_after(code: str) -> list[str]:
    probe = code + f"\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_building_the_parser_imports_no_heavy_library():
    assert _imported_after("import latentguard.cli\nlatentguard.cli.build_parser()") == []


@pytest.mark.parametrize("argv", [["--help"], ["protect", "--help"], ["bench", "--help"], ["audit", "--help"],
                                  ["audit", "alignment", "--help"],
                                  ["zoo", "list"]])
def test_help_and_listing_import_no_heavy_library(argv):
    code = ("import contextlib, io\nfrom latentguard.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    try:\n        main({argv!r})\n    except SystemExit:\n        pass")
    assert _imported_after(code) == []


def test_capability_clis_never_import_the_entry_point():
    code = ("import sys\nimport latentguard.protect.cli, latentguard.harden.cli, latentguard.privacy.cli\n"
            "import latentguard.poison.cli, latentguard.evaluate.cli, latentguard.zoo.cli, latentguard.demo\n"
            "assert 'latentguard.cli' not in sys.modules, 'a capability CLI imported the entry point'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_parser_is_whole():
    """Every command family is there, and the deferred harden options appear when the command is parsed."""
    from latentguard.cli import build_parser

    p = build_parser()
    sub = next(a for a in p._actions if a.dest == "command")
    assert {"zoo", "protect", "harden", "audit", "poison", "implosion", "bench", "report", "demo"} <= set(sub.choices)
    args = p.parse_args(["harden", "--vae", "v", "--data", "d", "--out", "o", "--eps", "8/255", "--preset", "vae-a-srl"])
    assert args.cfg_eps == pytest.approx(8 / 255) and args.preset == "vae-a-srl"
    assert "pca+" in sub.choices["protect"].format_help() and "random-noise" in sub.choices["protect"].format_help()
