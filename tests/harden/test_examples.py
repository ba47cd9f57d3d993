"""examples/srl_table.toml is a valid evaluation-runner config for the SRL-VAE table."""

from __future__ import annotations

from pathlib import Path

from latentguard.evaluate.config import BenchConfig

TOML = Path(__file__).resolve().parents[2] / "examples" / "srl_table.toml"


def test_srl_table_config_parses():
    cfg = BenchConfig.from_toml(TOML)
    assert set(cfg.methods) == {"pca+", "pca-", "photoguard-enc", "mist"}
    assert [lab for _, lab in cfg.budgets] == ["8/255", "16/255"]
    assert cfg.surrogates == ("zoo:vae-a", "zoo:vae-a-srl")  # transfer and adaptive
    assert "zoo:vae-a-srl" in cfg.targets and cfg.images == "samples"
