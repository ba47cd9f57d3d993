"""Libraries' noise is hidden by default and shown with -v (issue 22, item 11).

A fresh interpreter per case: the libraries read their verbosity when they are imported.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from latentguard.testing import require_zoo

# What `latentguard <command>` does before a command runs (cli.app.main calls logs.configure), then what harden and
# every embedder-loading command do: the MiniLM text tower (transformers' "BertModel LOAD REPORT" and its
# weight-loading bar) and a VAE cast with .to(dtype) (diffusers' float32 warning), plus a library's Python warning.
CHILD = """
import sys, warnings, torch
from latentguard.core import logs
logs.configure({verbose})
from latentguard.models.text import load_text_tower
from latentguard.models import load_vae
load_text_tower("cpu")
load_vae("zoo:vae-a").model.to(torch.float32)
warnings.warn_explicit("a library notice", UserWarning, "x.py", 1, module="transformers.x")
warnings.warn_explicit("latentguard's own warning", UserWarning, "y.py", 1, module="latentguard.y")
"""


def _stderr(verbose: bool) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRANSFORMERS_", "DIFFUSERS_", "HF_HUB_VERB"))}
    env.pop("LATENTGUARD_VERBOSE", None)
    out = subprocess.run([sys.executable, "-c", CHILD.format(verbose=verbose)], capture_output=True, text=True,
                         env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stderr


def test_libraries_are_quiet_by_default():
    require_zoo("vae-a")
    err = _stderr(False)
    assert "LOAD REPORT" not in err and "UNEXPECTED" not in err
    assert "float32" not in err and "Loading weights" not in err and "a library notice" not in err
    assert "latentguard's own warning" in err  # ours still show


@pytest.mark.slow
def test_verbose_shows_them():
    require_zoo("vae-a")
    err = _stderr(True)
    assert "LOAD REPORT" in err and "float32" in err and "a library notice" in err


def test_main_configures_the_quiet_mode(monkeypatch, capsys):
    from latentguard.cli import main

    monkeypatch.delenv("LATENTGUARD_VERBOSE", raising=False)
    main(["zoo", "list"])
    assert os.environ["LATENTGUARD_VERBOSE"] == "0"
    main(["-v", "zoo", "list"])
    assert os.environ["LATENTGUARD_VERBOSE"] == "1"
