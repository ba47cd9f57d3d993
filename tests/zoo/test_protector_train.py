"""Protector training (zoo/train/protector.py) on a tiny config: the objective improves in both directions,
``--resume`` repeats the uninterrupted run, every output file is written; the command's bad input is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from latentguard.models.protector import Protector
from latentguard.zoo.train.protector import TrainConfig, build_base, measure, train_protector


def _images(n: int = 4, size: int = 40) -> list[np.ndarray]:
    """Smooth random colour images (uint8 HxWx3): upsampled noise, so crops look like something."""
    g = torch.Generator().manual_seed(5)
    out = []
    for _ in range(n):
        t = torch.rand(1, 3, size // 4, size // 4, generator=g)
        t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
        out.append((t[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory, tiny_vae_factory):
    d = tmp_path_factory.mktemp("tinyvae")
    tiny_vae_factory(0).model.save_pretrained(str(d))
    return str(d)


def _cfg(vae_dir: str, **kw) -> TrainConfig:
    base = dict(vaes=[vae_dir], steps=12, batch_size=4, crop_sizes=[16, 24], lr=1e-2, warmup=1,
                channels=[4, 8, 8], blocks=1, checkpoint_every=4, val_every=6, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def _objective(folder_or_model, vae_dir: str, objective: str, x: torch.Tensor) -> float:
    """The base objective of clip(x + G(x)) minus that of x (the protector's gain)."""
    from latentguard.models import load_vae

    g = folder_or_model if isinstance(folder_or_model, Protector) else Protector.from_pretrained(str(folder_or_model))
    vae = load_vae(vae_dir)
    base = build_base(objective, [vae], 16 / 255)
    clean = measure(base, [vae], lambda t: torch.zeros_like(t), x, 2)
    return float((measure(base, [vae], lambda t: g.perturbation(t), x, 2) - clean).mean())


@pytest.mark.parametrize("objective", ["pca+", "pid"])
def test_a_few_steps_improve_the_objective(tmp_path, vae_dir, objective):
    ims = _images()
    cfg = _cfg(vae_dir, objective=objective, steps=12)
    summary = train_protector(cfg, ims[:3], tmp_path / "out", val_data=ims[3:], progress=False)
    torch.manual_seed(cfg.seed)
    g0 = Protector(channels=tuple(cfg.channels), blocks=cfg.blocks)
    x = torch.from_numpy(np.stack(ims)).permute(0, 3, 1, 2).float()[..., :24, :24] / 255
    before = _objective(g0, vae_dir, objective, x)
    after = _objective(tmp_path / "out", vae_dir, objective, x)
    assert after > 3 * abs(before) and after > 0, (before, after)  # both ascend (pca+, pid maximise)
    out = tmp_path / "out"
    for f in ("config.json", "diffusion_pytorch_model.safetensors", "train_log.jsonl", "val_log.jsonl", "curve.png",
              "run.json", "val/step-000006.png", "val/step-000012.png"):
        assert (out / f).is_file(), f
    run = json.loads((out / "run.json").read_text())
    assert run["steps_done"] == 12 and run["config"]["objective"] == objective == summary["config"]["objective"]
    assert json.loads((out / "config.json").read_text())["base"] == objective


def test_descending_objective_goes_down_and_resume_repeats_the_run(tmp_path, vae_dir):
    ims = _images()
    full = train_protector(_cfg(vae_dir, objective="photoguard-enc", steps=8), ims[:3], tmp_path / "a",
                           val_data=ims[3:], progress=False)
    hist = [json.loads(line)["objective"] for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert np.mean(hist[-2:]) < np.mean(hist[:2])  # photoguard-enc descends: latents pulled to the gray target
    part = train_protector(_cfg(vae_dir, objective="photoguard-enc", steps=8, stop_at=4), ims[:3], tmp_path / "b",
                           val_data=ims[3:], progress=False)
    assert part["steps_done"] == 4 and part["stopped_by"] == "stop_at"
    resumed = train_protector(_cfg(vae_dir, objective="photoguard-enc", steps=8), ims[:3], tmp_path / "b",
                              val_data=ims[3:], progress=False, resume=True)
    assert resumed["resumed_from"] == 4 and resumed["steps_done"] == full["steps_done"] == 8
    a = Protector.from_pretrained(str(tmp_path / "a")).state_dict()
    b = Protector.from_pretrained(str(tmp_path / "b")).state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_cli_bad_input_is_one_line(tmp_path, capsys, vae_dir):
    from latentguard.cli.app import main

    data = tmp_path / "data"
    data.mkdir()
    for argv, msg in [
        (["--vae", vae_dir, "--data", str(tmp_path / "nope")], "not a folder"),
        (["--vae", vae_dir, "--data", str(data), "--eps", "2"], "--eps"),
        (["--vae", vae_dir, "--data", str(data), "--crop-sizes", "30"], "multiples of 4"),
        (["--vae", vae_dir, "--data", str(data), "--eot", "jpeg:0-500"], "quality"),
        (["--vae", ",", "--data", str(data)], "--vae"),
        (["--vae", vae_dir, "--data", str(data), "--scales", "0.5,0"], "scales"),
        (["--vae", vae_dir, "--data", str(data), "--preset", "robust", "--eot", "jpeg:50-90"], "not both"),
    ]:
        assert main(["protector", "train", *argv, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("latentguard: error:") and msg in err[0], err
    with pytest.raises(SystemExit) as exc:  # argparse's own usage error
        main(["protector", "train", "--vae", vae_dir, "--data", str(data), "--scales", "a", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and "--scales: expected comma-separated numbers" in capsys.readouterr().err


def test_cli_robust_preset_and_scales_reach_the_run(tmp_path, vae_dir):
    """``--preset robust`` trains with EOT over ROBUST_EOT and ``--scales`` sets the crops' pyramid (run.json)."""
    from PIL import Image

    from latentguard.cli.app import main
    from latentguard.ops.transforms import ROBUST_EOT

    data = tmp_path / "data"
    data.mkdir()
    for i, im in enumerate(_images(2, 48)):
        Image.fromarray(im).save(data / f"{i}.png")
    argv = ["protector", "train", "--vae", vae_dir, "--data", str(data), "--steps", "2", "--batch-size", "2",
            "--crop-sizes", "16", "--channels", "4,8,8", "--blocks", "1", "--no-progress", "--device", "cpu"]
    assert main([*argv, "--preset", "robust", "--scales", "1,0.5", "--out", str(tmp_path / "r")]) == 0
    cfg = json.loads((tmp_path / "r" / "run.json").read_text())["config"]
    assert cfg["transforms"] == ROBUST_EOT and cfg["scales"] == [1.0, 0.5]
    assert main([*argv, "--out", str(tmp_path / "d")]) == 0
    cfg = json.loads((tmp_path / "d" / "run.json").read_text())["config"]
    assert cfg["transforms"] == "" and cfg["scales"] == list(TrainConfig().scales)
