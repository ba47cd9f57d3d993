"""Where results go and what the exit status says: shared by every command (no torch here).

* :func:`check_out_dir` refuses an ``--out`` that cannot be a folder (a file, or a path through a file) in one
  line, before anything slow runs; :func:`latentguard.io.prepare_out_dir` also refuses a folder that already
  holds results unless the user said ``--resume`` or ``--overwrite``.
* Exit status of every command: :data:`EXIT_OK` (0) everything done, :data:`EXIT_PARTIAL` (1) some inputs
  failed (the run finished the others and its summary names the failures), :data:`EXIT_USAGE` (2) bad usage
  (one line says what to fix), :data:`EXIT_INTERNAL` (3) an internal error (a traceback: please report it),
  130 interrupted. :func:`finish` turns a run's failures into the status and the closing line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from latentguard.core.errors import UserError

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

EXIT_STATUS_HELP = (
    "exit status: 0 all inputs done; 1 some inputs failed (the others were finished, and the summary names "
    "the failures); 2 bad usage (one line says what to fix); 3 internal error (a traceback: please report it); "
    "130 interrupted."
)


def check_out_dir(path: str | os.PathLike, *, flag: str = "--out") -> Path:
    """``path`` as a :class:`~pathlib.Path` if it is, or can be created as, a folder; :class:`UserError` otherwise.

    Creates nothing. Refuses an existing file and a path that runs through a file (``a.png/out``).
    """
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise UserError(f"{flag} {p} is a file, not a folder; give a folder path (it is created) or move the file")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} {p}: {parent} is a file, so the folder cannot be created there")
            if not os.access(parent, os.W_OK | os.X_OK) and not p.exists():
                raise UserError(f"{flag} {p}: cannot create a folder in {parent} (permission denied)")
            break
    return p


def finish(failures: Sequence[tuple[str, str]], *, what: str = "input", stream: TextIO | None = None,
           limit: int = 10) -> int:
    """Exit status of a run over many inputs, printing one closing line naming the failures (if any).

    Args:
        failures: ``(name, reason)`` per input that failed; the run finished the others.
        what: the noun in the message (``input``, ``cell``).
        stream: where the line goes (default stderr).
        limit: names listed before ``... and N more``.

    Returns:
        :data:`EXIT_OK` when nothing failed, :data:`EXIT_PARTIAL` otherwise.
    """
    if not failures:
        return EXIT_OK
    stream = stream if stream is not None else sys.stderr
    shown = "; ".join(f"{name} ({reason})" if reason else name for name, reason in failures[:limit])
    more = f"; ... and {len(failures) - limit} more" if len(failures) > limit else ""
    print(f"latentguard: {len(failures)} {what}(s) failed: {shown}{more}", file=stream)
    return EXIT_PARTIAL
