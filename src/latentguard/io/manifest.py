"""Run manifests (``run.json``) and resumable JSONL result streams."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from latentguard import __version__
from latentguard.io.outputs import atomic_write_text

_PACKAGES = ("torch", "diffusers", "transformers", "numpy", "pillow", "scikit-image", "safetensors")


def package_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"latentguard": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_revision() -> str | None:
    """The git revision of the latentguard checkout, where it is one (None for an installed wheel)."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def write_manifest(out_dir: str | os.PathLike, command: str, config: dict, seed: int | None = None,
                   extra: dict | None = None) -> Path:
    """Write ``out_dir/run.json``: command, config, seed, package versions, git revision, host, time."""
    cfg = json.loads(json.dumps(config, default=str))
    doc = {
        "command": command,
        "argv": sys.argv,
        "config": cfg,
        "seed": seed,
        "versions": package_versions(),
        "git_revision": git_revision(),
        "host": {"platform": platform.platform(), "machine": platform.machine()},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        import torch

        doc["host"]["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001  pragma: no cover
        pass
    if extra:
        doc.update(extra)
    return atomic_write_text(Path(out_dir) / "run.json", json.dumps(doc, indent=2) + "\n")


class JsonlWriter:
    """Append-only JSONL stream, flushed per row, with the keys already written for ``--resume``."""

    def __init__(self, path: str | os.PathLike, *, resume: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not resume and self.path.exists():
            self.path.unlink()
        elif self.path.exists():
            self._drop_cut_row()

    def _drop_cut_row(self) -> None:
        """A kill while a row was being written leaves it without its newline: cut it off, so the next row
        starts on a line of its own (else both would be lost). Its input has no row and is redone."""
        with open(self.path, "rb+") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            if size == 0:
                return
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            end = size
            while end > 0:  # scan back, a block at a time, to the last newline
                start = max(0, end - 65536)
                fh.seek(start)
                k = fh.read(end - start).rfind(b"\n")
                if k >= 0:
                    fh.truncate(start + k + 1)
                    return
                end = start
            fh.truncate(0)

    def rows(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        with open(self.path) as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:  # a row cut by a kill: ignore it, it will be redone
                    continue
        return out

    def done_keys(self, key: str = "key") -> set:
        return {r[key] for r in self.rows() if key in r and r.get("status", "ok") == "ok"}

    def write(self, row: dict) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row, default=str) + "\n")
            fh.flush()
