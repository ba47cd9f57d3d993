"""One number parser for every CLI, one budget parser for config files."""

from __future__ import annotations

import argparse

import pytest

from latentguard.core.units import cli_number, parse_budget


def test_cli_number_reads_fractions_and_decimals():
    num = cli_number("8/255")
    assert num("16/255") == 16 / 255 and num(" 0.25 ") == 0.25 and num("3") == 3.0
    for bad in ("abc", "1/0", "", "16//255"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"not a number: .* \(use e\.g\. 8/255\)"):
            num(bad)


@pytest.mark.parametrize("argv, prog", [(["protect", "x.png", "--eps", "sixteen"], "protect"),
                                        (["poison", "d", "--eps", "1/0"], "poison")])
def test_cli_number_errors_reach_the_user(argv, prog, capsys):
    from latentguard.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "not a number" in err and f"latentguard {prog}" in err


def test_parse_budget_reads_fractions_and_checks_the_range():
    assert parse_budget("16/255") == (16 / 255, "16/255")
    with pytest.raises(ValueError, match="outside"):
        parse_budget(16)
