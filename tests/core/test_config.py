import pytest

from latentguard.core.config import read_toml


def test_read_toml_parses(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[run]\nname = "x"\nbudgets = ["16/255"]\n')
    assert read_toml(p) == {"run": {"name": "x", "budgets": ["16/255"]}}


def test_read_toml_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.toml does not exist"):
        read_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nname=")
    with pytest.raises(ValueError, match="bad.toml is not valid TOML"):
        read_toml(bad)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(ValueError, match="bin.toml is not valid TOML: not UTF-8"):
        read_toml(binary)
