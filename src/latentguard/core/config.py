"""Reading TOML run configs with one wording for the two ways it fails."""

from __future__ import annotations

import tomllib
from pathlib import Path


def read_toml(path: str | Path) -> dict:
    """The parsed document of ``path``; FileNotFoundError / ValueError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: not UTF-8 text ({exc.reason})") from None
