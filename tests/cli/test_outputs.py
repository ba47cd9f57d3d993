"""The shared output-folder checks and exit statuses of every command (issue 22, items 1, 5, 6, 9).

* an ``--out`` that is a file: one line, exit 2, for every command that has an ``--out``;
* exit status 0 all done, 1 some inputs failed (the others finished; the failures named), 2 bad usage;
* an ``--out`` holding results is refused unless ``--resume`` or ``--overwrite``;
* ``--steps 0`` is bad usage.
"""

from __future__ import annotations

import argparse
import json

import pytest

from latentguard.cli import build_parser, main
from latentguard.core.outputs import EXIT_STATUS_HELP

# One invocation per command that has an --out (positional arguments filled with anything: the --out check
# comes before the command runs). test_every_out_command_is_listed keeps the list complete.
OUT_COMMANDS = {
    ("protect",): ["protect", "x.png"],
    ("bench",): ["bench", "cfg.toml"],
    ("demo",): ["demo"],
    ("harden",): ["harden", "--vae", "zoo:vae-a", "--data", "d"],
    ("audit", "membership"): ["audit", "membership", "--model", "zoo:t2i-members"],
    ("audit", "pullback"): ["audit", "pullback", "--vae", "zoo:vae-a", "x.png"],
    ("audit", "alignment"): ["audit", "alignment", "fashion-mnist:10"],
    ("poison",): ["poison", "d", "--kind", "none"],
    ("implosion",): ["implosion", "cfg.toml"],
    ("zoo", "train"): ["zoo", "train", "vae-a"],
    ("survival",): ["survival", "x.png", "--clean", "y.png"],
    ("preview",): ["preview", "p.png", "--clean", "c.png"],
    ("protector", "train"): ["protector", "train", "--vae", "zoo:vae-a", "--data", "d"],
}


def _commands_with_out(parser: argparse.ArgumentParser, prefix=()) -> set[tuple[str, ...]]:
    found = set()
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                found |= _commands_with_out(sub, prefix + (name,))
        elif a.dest == "out" and a.option_strings:
            found.add(prefix)
    return found


def test_every_out_command_is_listed():
    assert _commands_with_out(build_parser()) == set(OUT_COMMANDS)


@pytest.mark.parametrize("argv", list(OUT_COMMANDS.values()), ids=[" ".join(k) for k in OUT_COMMANDS])
def test_out_that_is_a_file_is_one_line_exit_2(tmp_path, capsys, argv):
    f = tmp_path / "taken"
    f.write_text("keep me")
    rc = main([*argv, "--out", str(f)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("latentguard: error: ") and "is a file" in err
    assert f.read_text() == "keep me"


def test_out_under_a_file_and_zoo_export(tmp_path, capsys):
    f = tmp_path / "taken.png"
    f.write_text("x")
    assert main(["protect", "x.png", "--out", str(f / "sub")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["zoo", "export", "vae-a", str(f)]) == 2  # the positional output folder goes the same way
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "latentguard: error:" in err


def test_os_errors_from_a_command_are_one_line(tmp_path, capsys, monkeypatch):
    import latentguard.cli.app as app

    def boom(args):
        (tmp_path / "f").write_text("x")
        (tmp_path / "f" / "g").mkdir(parents=True)  # an OSError from deep inside a command

    p = app.build_parser()
    args = p.parse_args(["protect", "x.png", "--out", str(tmp_path / "o")])
    args.func = boom
    monkeypatch.setattr(app, "build_parser", lambda: _FixedParser(p, args))
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "f") in err


class _FixedParser:
    def __init__(self, parser, args):
        self.parser, self.args = parser, args

    def parse_args(self, argv=None):
        return self.args

    def print_help(self):
        self.parser.print_help()


def test_internal_error_is_status_3(tmp_path, capsys, monkeypatch):
    import latentguard.cli.app as app

    p = app.build_parser()
    args = p.parse_args(["protect", "x.png", "--out", str(tmp_path / "o")])

    def bug(a):
        raise KeyError("a bug")

    args.func = bug
    monkeypatch.setattr(app, "build_parser", lambda: _FixedParser(p, args))
    assert main([]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error" in err


@pytest.mark.parametrize("argv", [[], ["protect"], ["bench"], ["audit", "pullback"], ["demo"]])
def test_help_lists_the_exit_statuses(capsys, argv):
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert " ".join(EXIT_STATUS_HELP.split()) in text


# ---------------------------------------------------------------------------------------------------------------
# protect: exit statuses, refusing a folder with results, --steps 0 (real zoo:vae-a, 1 step on 32 px images)
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture()
def images(tmp_path, vae_a):
    from latentguard.io import save_image
    from latentguard.samples import sample_images

    src = tmp_path / "in"
    x = sample_images(32)[:2]
    save_image(x[0], src / "a.png")
    save_image(x[1], src / "b.png")
    return src


def _protect(inputs, out, *extra):
    return main(["protect", *map(str, inputs), "--steps", "1", "--out", str(out), "--no-progress", "--device", "cpu",
                 *extra])


def _rows(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]


def test_exit_status_partial_failure_names_the_failures(images, tmp_path, capsys):
    (images / "bad1.png").write_bytes(b"not an image")
    (images / "bad2.jpg").write_bytes(b"\xff\xd8\xff garbage")
    rc = _protect([images], tmp_path / "o")
    captured = capsys.readouterr()
    assert rc == 1
    assert "2 failed" in captured.out and "protected 2 image(s)" in captured.out
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("latentguard: 2 input(s) failed:") and "bad1.png" in last and "bad2.jpg" in last
    assert (tmp_path / "o" / "a.png").is_file() and (tmp_path / "o" / "b.png").is_file()  # the others finished
    # a single bad input: the same status (1), not a different one; a missing input: bad usage, 2
    assert _protect([images / "bad1.png"], tmp_path / "o2") == 1
    assert _protect([images / "missing.png"], tmp_path / "o4") == 2


def test_out_with_results_is_refused_unless_resume_or_overwrite(images, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()  # an existing folder without results is fine
    assert _protect([images / "a.png"], out) == 0  # every input done: 0
    before = (out / "results.jsonl").read_bytes()
    capsys.readouterr()
    assert _protect([images / "b.png"], out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds results" in err and "--resume" in err and "--overwrite" in err
    assert (out / "results.jsonl").read_bytes() == before and not (out / "b.png").exists()
    assert _protect([images / "b.png"], out, "--resume", "--overwrite") == 2
    # --overwrite starts it again (--resume continuing a run: tests/protect/test_cli.py)
    assert _protect([images / "b.png"], out, "--overwrite") == 0
    assert [r["input"].rsplit("/", 1)[-1] for r in _rows(out)] == ["b.png"]


@pytest.mark.parametrize("steps", ["0", "-1"])
def test_steps_below_one_is_bad_usage(images, tmp_path, capsys, steps):
    rc = main(["protect", str(images / "a.png"), "--steps", steps, "--out", str(tmp_path / "o"), "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--steps must be >= 1" in err
    assert not (tmp_path / "o" / "a.png").exists()


# ---------------------------------------------------------------------------------------------------------------
# protect keeps alpha and 16 bits (item 8); --lossy FORMAT:Q with a one-line warning (item 3)
# ---------------------------------------------------------------------------------------------------------------
def test_protect_keeps_alpha_and_16_bits(images, tmp_path, capsys):
    import numpy as np
    import png
    from PIL import Image

    rgb = np.asarray(Image.open(images / "a.png").convert("RGB"))
    alpha = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (32, 1))
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(images / "rgba.png")
    Image.fromarray(np.dstack([rgb[..., 0], alpha]), "LA").save(images / "gray_alpha.png")
    deep = rgb.astype(np.uint16) * 257 + 100
    png.Writer(32, 32, greyscale=False, bitdepth=16).write(open(images / "deep.png", "wb"),
                                                           deep.reshape(32, 96).tolist())
    (images / "b.png").unlink()
    out = tmp_path / "o"
    assert _protect([images], out) == 0
    for name in ("rgba.png", "gray_alpha.png"):
        o = Image.open(out / name)
        assert o.mode == "RGBA"
        assert np.array_equal(np.asarray(o)[..., 3], alpha)  # the alpha goes back on unchanged
        assert np.abs(np.asarray(o)[..., :3].astype(int) - np.asarray(Image.open(images / name).convert("RGBA"))[..., :3]
                      ).max() <= 16  # the colour is protected within the budget
    w, h, rows, info = png.Reader(filename=str(out / "deep.png")).asDirect()
    assert info["bitdepth"] == 16 and not info["alpha"]
    got = np.vstack([np.asarray(r, dtype=np.int64) for r in rows]).reshape(32, 32, 3)
    diff = np.abs(got - deep)
    assert 0 < diff.max() <= 16 * 257 + 1 and (diff % 257 != 0).any()  # a 16-bit perturbation, not 8-bit steps
    rows = {r["input"].rsplit("/", 1)[-1]: r for r in _rows(out)}
    assert rows["deep.png"]["bits"] == 16 and rows["rgba.png"]["alpha"] is True and rows["a.png"]["bits"] == 8


def test_protect_lossy_jpeg_warns_once(images, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(images / "a.png").convert("RGB"))
    Image.fromarray(np.dstack([rgb, np.full((32, 32), 128, np.uint8)]), "RGBA").save(images / "b.png")
    out = tmp_path / "o"
    assert _protect([images], out, "--lossy", "jpeg:90") == 0
    err = capsys.readouterr().err
    warn = [line for line in err.splitlines() if "warning" in line]
    assert len(warn) == 1 and warn[0].startswith("latentguard: warning: --lossy jpeg:90") and "weakens" in warn[0]
    assert "b.png: transparency flattened" in err
    assert Image.open(out / "a.jpg").format == "JPEG" and Image.open(out / "b.jpg").mode == "RGB"
    assert not (out / "a.png").exists()


@pytest.mark.parametrize("spec", ["gif", "jpeg:0", "jpeg:abc", "png"])
def test_protect_lossy_bad_spec_is_usage(tmp_path, capsys, spec):
    with pytest.raises(SystemExit) as exc:
        main(["protect", "x.png", "--out", str(tmp_path / "o"), "--lossy", spec])
    assert exc.value.code == 2 and "--lossy" in capsys.readouterr().err
