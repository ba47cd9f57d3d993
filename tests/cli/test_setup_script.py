"""scripts/setup.sh never exits 0 without the data packages (issue 22, item 4), with a fake apt-get on PATH.

The script runs from a copy of the repository layout in a temporary folder, with a fake ``id`` (root), a fake
``apt-get`` (scripted: lock held N times, then success or another failure) and a no-op ``.venv/bin/python``, so
nothing is installed and nothing reaches the network.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

SETUP = Path(__file__).resolve().parents[2] / "scripts" / "setup.sh"
LOCK = "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)"


def _exe(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _run(tmp_path: Path, *, locked_times: int, then: str, wait_s: int = 3) -> tuple[subprocess.CompletedProcess, int]:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(SETUP, repo / "scripts" / "setup.sh")
    _exe(repo / ".venv" / "bin" / "python", "exit 0\n")
    data = tmp_path / "share"
    calls = tmp_path / "calls"
    fake = tmp_path / "bin"
    _exe(fake / "id", 'if [ "${1:-}" = "-u" ]; then echo 0; else /usr/bin/id "$@"; fi\n')
    install = (f'mkdir -p "{data}/datasets/fashion-mnist" "{data}/backgrounds/mate/nature" "{data}/gcompris-qt/rcc"; '
               f'touch "{data}/backgrounds/umang_by_Abhishek_Mudgal.jpg" "{data}/backgrounds/Kleiber_by_Lukas_Baubkus.jpg" '
               f'"{data}/gcompris-qt/rcc/explore_monuments.rcc"')
    outcome = {"ok": f"{install}; exit 0", "missing": 'echo "E: Unable to locate package dataset-fashion-mnist"; exit 100'}
    _exe(fake / "apt-get", f'''echo "$@" >> "{calls}"
n=$(wc -l < "{calls}")
if [ "$n" -le {locked_times} ]; then echo "{LOCK}" >&2; exit 100; fi
if [ "${{1:-}}" = "update" ]; then exit 0; fi
{outcome[then]}
''')
    for tool in ("chromium", "chromedriver"):  # the optional browser step: present, so it is skipped
        _exe(fake / tool, "exit 0\n")
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "SETUP_DATA_ROOT": str(data),
           "SETUP_APT_LOCK_WAIT": str(wait_s), "SETUP_APT_RETRY_EVERY": "1"}
    env.pop("SETUP_SKIP_DATA", None)
    out = subprocess.run(["bash", str(repo / "scripts" / "setup.sh")], capture_output=True, text=True, env=env,
                         timeout=120)
    n = len(calls.read_text().splitlines()) if calls.exists() else 0
    return out, n


def test_lock_held_throughout_fails_saying_what_to_do(tmp_path):
    out, n = _run(tmp_path, locked_times=1000, then="ok", wait_s=2)
    assert out.returncode != 0
    assert "lock" in out.stderr and "setup: error: the data packages" in out.stderr
    assert "sudo apt-get install dataset-fashion-mnist" in out.stderr and "SETUP_SKIP_DATA=1" in out.stderr
    assert n >= 2  # it waited and retried, within the bound


def test_lock_released_then_installed(tmp_path):
    out, n = _run(tmp_path, locked_times=2, then="ok", wait_s=30)
    assert out.returncode == 0, out.stderr
    assert "waiting for apt's lock" in out.stderr and n == 4  # update x2 locked, update, install
    assert (tmp_path / "share" / "datasets" / "fashion-mnist").is_dir()


def test_other_apt_failure_is_not_retried_and_fails(tmp_path):
    out, n = _run(tmp_path, locked_times=0, then="missing")
    assert out.returncode != 0 and n == 2
    assert "Unable to locate package" in out.stderr


def test_skip_data_is_explicit(tmp_path, monkeypatch):
    monkeypatch.setenv("SETUP_SKIP_DATA", "1")
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(SETUP, repo / "scripts" / "setup.sh")
    _exe(repo / ".venv" / "bin" / "python", "exit 0\n")
    fake = tmp_path / "bin"
    for tool in ("chromium", "chromedriver"):
        _exe(fake / tool, "exit 0\n")
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "SETUP_DATA_ROOT": str(tmp_path / "none")}
    out = subprocess.run(["bash", str(repo / "scripts" / "setup.sh")], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0 and "SETUP_SKIP_DATA=1" in out.stderr
