"""The house rule from docs/architecture.md: a first-party import inside a function is allowed only when a comment
says which heavy library it defers (so the rule cannot rot back into imports that hide cycles)."""

from __future__ import annotations

import ast
from pathlib import Path

import latentguard

HEAVY = ("torch", "diffusers", "transformers", "matplotlib", "accelerate", "numpy", "pydantic", "fastapi", "uvicorn",
         "ray", "pyarrow", "safetensors", "scipy", "sklearn", "scikit", "skimage", "PIL", "tqdm", "jinja2", "selenium")
SRC = Path(latentguard.__file__).parent


def _is_first_party(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] == "latentguard"
    if isinstance(node, ast.Import):
        return any(a.name.split(".")[0] == "latentguard" for a in node.names)
    return False


def deferred_without_reason(path: Path) -> list[str]:
    """``file:line`` of every function-local first-party import whose block has no comment naming a heavy library.

    The block is the run of import, comment and blank lines around the import inside the function; a comment on the
    import's own lines counts too."""
    lines = path.read_text().splitlines()
    bad = []
    for fn in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if not _is_first_party(node):
                continue
            text = [lines[i] for i in range(node.lineno - 1, node.end_lineno)]
            k = node.lineno - 2
            while k >= 0:
                s = lines[k].strip()
                if not (s == "" or s.startswith(("#", "from ", "import ", "try:")) or s.startswith(")")):
                    break
                text.append(lines[k])
                k -= 1
            comments = " ".join(t.split("#", 1)[1] for t in text if "#" in t)
            if not any(h in comments for h in HEAVY):
                bad.append(f"{path}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return bad


def test_every_function_local_first_party_import_names_the_library_it_defers():
    bad = [b for f in sorted(SRC.rglob("*.py")) for b in deferred_without_reason(f)]
    assert not bad, "function-local first-party imports without a comment naming the deferred library:\n" + "\n".join(bad)


def test_the_checker_flags_an_unexplained_import_and_accepts_an_explained_one(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from latentguard.io import load_image\n    return load_image\n\n\n"
                     "def g():\n    # deferred: torch\n    import torch\n\n    from latentguard.io import load_image\n"
                     "    return load_image, torch\n\n\n"
                     "def h():\n    from latentguard.io import load_image  # defers numpy\n    return load_image\n")
    assert deferred_without_reason(probe) == [f"{probe}:2: from latentguard.io import load_image"]
