"""``latentguard harden``: the command trains, writes its files, and fails with one clear line on bad input."""

from __future__ import annotations

import argparse
import json

import pytest

from latentguard.harden.cli import config_from_args, register

FAST = ["--steps", "2", "--batch-size", "1", "--crop", "16", "--attack-steps", "1", "--probe-size", "1",
        "--probe-attack-steps", "1", "--scales", "1,0.5", "--no-progress", "--device", "cpu"]


def _parser():
    ap = argparse.ArgumentParser(prog="latentguard")
    register(ap.add_subparsers())
    return ap


def _run(argv):
    """Run like latentguard.cli.main does (its error handling), without importing the other capabilities."""
    args = _parser().parse_args(argv)
    return args.func(args)


@pytest.fixture()
def tiny_folder(tiny_vae_frozen, tmp_path):
    tiny_vae_frozen.save_pretrained(str(tmp_path / "tiny"))
    return tmp_path / "tiny"


def test_flags_override_the_preset():
    a = _parser().parse_args(["harden", "--vae", "v", "--data", "d", "--out", "o", "--preset", "vae-a-srl",
                              "--eps", "8/255", "--grad-clip", "none", "--no-sample-latent", "--seed", "4"])
    cfg = config_from_args(a)
    assert cfg.eps == pytest.approx(8 / 255) and cfg.grad_clip is None and not cfg.sample_latent
    assert cfg.seed == 4 and cfg.save_dtype == "float16"  # the rest from the preset
    b = config_from_args(_parser().parse_args(["harden", "--vae", "v", "--data", "d", "--out", "o"]))
    from latentguard.harden import SRLConfig

    assert b == SRLConfig()


def test_cli_trains_and_writes_a_loadable_folder(tiny_folder, image_folder, tmp_path, capsys):
    from latentguard.models import load_vae

    out = tmp_path / "out"
    assert _run(["harden", "--vae", str(tiny_folder), "--data", str(image_folder), "--out", str(out), *FAST]) == 0
    assert "complete" in capsys.readouterr().out
    v = load_vae(str(out))
    assert v.info.latent_channels == 4
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["srl"]["steps"] == 2 and run["result"]["complete"] is True
    assert (out / "summary.csv").read_text().startswith("steps_done")


@pytest.mark.parametrize("extra,exc,msg", [
    (["--eps", "2"], ValueError, "eps must be <= 1"),
    (["--crop", "15"], ValueError, "multiple of the VAE's downsample factor"),
    (["--clean-ratio", "1"], ValueError, "clean_ratio"),
    (["--resume"], FileNotFoundError, "nothing to resume"),
    (["--threads", "0"], Exception, "--threads must be >= 1"),
])
def test_cli_bad_arguments_fail_clearly(tiny_folder, image_folder, tmp_path, extra, exc, msg):
    with pytest.raises(exc, match=msg):
        _run(["harden", "--vae", str(tiny_folder), "--data", str(image_folder), "--out", str(tmp_path / "o"),
              *FAST, *extra])


def test_cli_missing_data_and_model(tiny_folder, tmp_path):
    from latentguard.models import ModelLoadError

    with pytest.raises(FileNotFoundError, match="data folder"):
        _run(["harden", "--vae", str(tiny_folder), "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), *FAST])
    with pytest.raises(ModelLoadError, match="does not exist"):
        _run(["harden", "--vae", str(tmp_path / "novae"), "--data", str(tmp_path), "--out", str(tmp_path / "o"), *FAST])


def test_bad_number_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        _parser().parse_args(["harden", "--vae", "v", "--data", "d", "--out", "o", "--eps", "abc"])
    assert e.value.code == 2
    assert "not a number: 'abc'" in capsys.readouterr().err


def test_main_prints_one_line_and_exits_2(tiny_folder, image_folder, tmp_path, capsys):
    from latentguard import cli

    rc = cli.main(["harden", "--vae", str(tiny_folder), "--data", str(image_folder), "--out", str(tmp_path / "o"),
                   *FAST, "--eps", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "eps must be > 0" in err[0]
