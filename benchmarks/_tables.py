"""What the benchmark scripts share: the command line of the table renderers (``privacy_tables.py``,
``protect_tables.py``, ...: read a result JSON, render Markdown, print it or write it to ``--out``), and
:func:`write_result`, the one way a benchmark writes its result JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable


def table_cli(render: Callable[[dict], str], description: str, default: Path | None = None,
              argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=description)
    if default is None:
        ap.add_argument("json", type=Path)
    else:
        ap.add_argument("json", type=Path, nargs="?", default=default)
    ap.add_argument("--out", type=Path, help="write the Markdown here instead of printing it")
    a = ap.parse_args(argv)
    if not a.json.is_file():
        raise SystemExit(f"{a.json}: no such file")
    text = render(json.loads(a.json.read_text()))
    if a.out:
        a.out.write_text(text)
    else:
        print(text, end="")


def write_result(path: str | Path, result: dict) -> Path:
    """Write ``result`` as indented JSON to ``path`` (parents created) and say so with its ``seconds``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}" + (f" in {result['seconds']} s" if "seconds" in result else ""))
    return path
