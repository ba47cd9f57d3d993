"""Output folders and atomic writes, shared by every command that writes files.

* :func:`prepare_out_dir`: one line (:class:`~latentguard.core.errors.UserError`) for an ``--out`` that is a
  file, or a folder that already holds results when neither ``--resume`` nor ``--overwrite`` was given.
* :func:`atomic_write`: a temporary file in the destination's folder, then ``os.replace``; the file gets the
  mode a plain ``open()`` would give it (``0666 & ~umask``: 0644 under the usual umask 022), not
  ``mkstemp``'s private 0600.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from latentguard.core.errors import UserError
from latentguard.core.outputs import check_out_dir

RESULT_MARKERS = ("results.jsonl",)


def _umask() -> int:
    """The process umask (read without changing it where /proc says it; else set-and-restore)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: ``0o666 & ~umask``."""
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Write ``path`` all at once: yields a file object on a temporary sibling, renamed over ``path`` on success.

    A failure (or a kill) leaves ``path`` as it was. The new file has the usual mode (``0666 & ~umask``).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, default_file_mode())
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "w") as fh:
        fh.write(text)
    return Path(path)


def prepare_out_dir(path: str | os.PathLike, *, resume: bool = False, overwrite: bool = False,
                    markers: Sequence[str] = RESULT_MARKERS, flag: str = "--out", resumable: bool = True) -> Path:
    """Create the output folder ``path`` of a run, refusing (one line, exit 2) what would lose or mix results.

    Args:
        path: the folder (created with its parents).
        resume: the user asked to continue the run in ``path``.
        overwrite: the user asked to start again in ``path`` (its results are replaced).
        markers: file names whose presence means ``path`` holds results of an earlier run.
        flag: the option named in the messages.
        resumable: whether the command has ``--resume`` (the refusal suggests it).

    Raises:
        UserError: ``path`` is a file or lies under one; ``path`` holds results and neither ``resume`` nor
            ``overwrite`` is set; both are set.
    """
    if resume and overwrite:
        raise UserError("--resume and --overwrite exclude each other: continue the run, or start it again")
    p = check_out_dir(path, flag=flag)
    if p.is_dir() and not (resume or overwrite):
        held = [m for m in markers if (p / m).exists()]
        if held:
            how = "pass --resume to continue that run, --overwrite to start again in it" if resumable else \
                "pass --overwrite to replace them"
            raise UserError(f"{p} already holds results ({held[0]}); {how}, or choose a new {flag}")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {flag} {p}: {exc.strerror or exc}") from None
    return p
