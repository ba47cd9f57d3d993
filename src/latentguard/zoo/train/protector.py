"""Training a feed-forward protector (:class:`~latentguard.models.protector.Protector`), and the recipe of the
bundled ``zoo:protector-a``.

The protector ``G`` is trained to do in one pass what an encoder-only protection does in ``T`` projected-gradient
steps: on random crops ``x`` (several sizes, flips) of a folder of photos, with ``x' = clip(x + G(x), 0, 1)``,

.. math::

    \\max_\\theta\\; \\pm\\, \\frac{1}{M} \\sum_{m=1}^{M} \\mathbb{E}_{T}\\, \\frac{L_m\\big(T(x'),\\, c_m(x)\\big)}{s(x)}

with ``L_m`` the base protection's own objective on surrogate VAE ``m`` (its :meth:`objective`, with its
:meth:`prepare` constants ``c_m`` from the clean crop; ``+`` when the method ascends, ``-`` when it descends),
``T`` an optional EOT transform of :mod:`latentguard.ops.transforms` (one draw per step, as the engine does) and
``s(x)`` a size normaliser (the pixel count for objectives summed over latent elements, its square root for
PhotoGuard's L2 norm, 1 for PID's means), so that crops of different sizes weigh alike. Adam, cosine learning
rate with warm-up. The objective of any registered encoder-only protection can be used: ``pca+`` (default),
``pca-``, ``pca-adaptive``, ``photoguard-enc``, ``pid``.

Everything a run writes goes to ``out``: ``train_log.jsonl`` (one line per step), ``val_log.jsonl`` and
``val/step-N.png`` (held-out images every ``val_every`` steps: objective of ``G`` vs equal-budget random sign
noise, and a figure clean / protected / 10x perturbation / reconstructions), ``checkpoints/step-N/`` (safetensors:
the model, the optimizer's moments, the crop samplers' RNG states; ``--resume`` continues from the newest),
``curve.png``, ``run.json``, and the final model (``config.json`` + ``diffusion_pytorch_model.safetensors``).
Runs on CPU, one GPU, or several through ``accelerate launch`` (data-parallel; each process draws its own crops).

This module sits in ``zoo/train`` because it needs protect's objectives and harden's crop sampler (the layers:
zoo may use any capability).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from latentguard.harden.crops import ImageCrops
from latentguard.io import datasets, save_image
from latentguard.models.padding import pad_to_multiple
from latentguard.models.protector import PRE_BOUND, Protector
from latentguard.ops.runtime import SingleProcess, torch_generator
from latentguard.ops.schedules import warmup_cosine
from latentguard.ops.state import frozen
from latentguard.ops.grid import make_grid
from latentguard.ops.transforms import parse_transforms, resize_center_crop
from latentguard.protect.fast import ENCODER_ONLY, build_base

# How each base objective scales with the crop's pixel count (see the module docstring).
SIZE_POWER = {"pca+": 1.0, "pca-": 1.0, "pca-adaptive": 1.0, "photoguard-enc": 0.5, "pid": 0.0}
CROP_SCALES = (1.0, 0.5, 0.35, 0.25, 0.18, 0.12)


@dataclass
class TrainConfig:
    """What a protector training run does (``run.json`` records it).

    Args:
        vaes: surrogate VAE specs (the ensemble; the objective is their mean).
        objective: the base protection (encoder-only): ``pca+`` | ``pca-`` | ``pca-adaptive`` | ``photoguard-enc`` | ``pid``.
        eps: L-inf budget in [0,1] units.
        steps: optimisation steps (the learning-rate schedule spans them).
        batch_size: crops per step.
        crop_sizes: crop sides (pixels, multiples of 4 and of the VAEs' factor); step ``t`` uses ``crop_sizes[t % n]``.
        scales: resize factors of the training images the crops are drawn from (:class:`ImageCrops`); small ones
            let a crop see a whole scene, as a protected thumbnail does.
        lr, warmup: Adam learning rate and linear warm-up steps (then cosine to 5%).
        transforms: EOT transforms (``"jpeg:50-90,resize,identity"``); empty: none.
        pre_penalty: weight of ``mean(relu(|pre| - 3)^2)`` on G's pre-tanh output (keeps it out of deep saturation;
            with the training-time gradient leak of :class:`Protector`, pixels can still change sign).
        channels, blocks: the protector's widths and residual blocks (:class:`Protector`).
        seed: seeds the model's initialisation and the crops.
        checkpoint_every, val_every, log_every: in steps.
        max_minutes: stop early after this wall time (the schedule still spans ``steps``); 0: no limit.
        stop_at: stop after this step (the schedule still spans ``steps``; ``--resume`` continues); 0: off.
        device: ``auto`` | ``cpu`` | ``cuda[:N]``.
        tile_size, tile_overlap: written into the model's config (inference tiling).
    """

    vaes: list[str] = field(default_factory=lambda: ["zoo:vae-a"])
    objective: str = "pca+"
    eps: float = 16 / 255
    steps: int = 2000
    batch_size: int = 8
    crop_sizes: list[int] = field(default_factory=lambda: [64, 96, 128])
    scales: list[float] = field(default_factory=lambda: list(CROP_SCALES))
    lr: float = 2e-3
    warmup: int = 50
    transforms: str = ""
    channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    blocks: int = 2
    seed: int = 0
    checkpoint_every: int = 200
    val_every: int = 200
    log_every: int = 1
    max_minutes: float = 0.0
    device: str = "auto"
    tile_size: int = 512
    tile_overlap: int = 64
    pre_penalty: float = 0.1
    stop_at: int = 0

    def validate(self) -> TrainConfig:
        if not self.vaes or not all(isinstance(v, str) and v.strip() for v in self.vaes):
            raise ValueError("--vae: give at least one VAE spec (zoo:NAME, a folder, a hub id), comma-separated")
        if self.objective not in ENCODER_ONLY:
            raise ValueError(f"--objective must be an encoder-only protection, one of {', '.join(ENCODER_ONLY)}; "
                             f"got {self.objective!r}")
        if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float)) or not 0 < float(self.eps) <= 1:
            raise ValueError(f"--eps must be in (0, 1] ([0,1] units, e.g. 16/255), got {self.eps!r}")
        for name in ("steps", "batch_size", "checkpoint_every", "val_every", "log_every", "blocks"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if not self.crop_sizes or any(isinstance(c, bool) or not isinstance(c, int) or c < 16 or c % 4 for c in self.crop_sizes):
            raise ValueError(f"crop sizes must be ints >= 16 and multiples of 4, got {self.crop_sizes!r}")
        if not self.scales or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1
                                  for v in self.scales):
            raise ValueError(f"scales must be numbers in (0, 1], got {self.scales!r}")
        if len(self.channels) != 3 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in self.channels):
            raise ValueError(f"channels must be 3 positive ints, got {self.channels!r}")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < 1):
            raise ValueError(f"lr must be in (0, 1), got {self.lr!r}")
        if self.warmup < 0 or self.max_minutes < 0 or self.seed < 0 or self.stop_at < 0:
            raise ValueError("warmup, max_minutes, stop_at and seed must be >= 0")
        parse_transforms(self.transforms or ())  # raises a ValueError naming the bad spec
        return self


def lr_at(cfg: TrainConfig, step: int) -> float:
    """The lr of (0-based) ``step``: :func:`~latentguard.ops.schedules.warmup_cosine` at ``step + 1``, a linear
    warm-up to ``lr`` over ``warmup`` steps, then cosine to ``0.05 lr`` at ``steps``."""
    return warmup_cosine(step + 1, warmup=cfg.warmup, total=cfg.steps, min_ratio=0.05, base=cfg.lr)


def _accelerator(use: bool, device: torch.device):
    if not use:
        return SingleProcess(device)
    from accelerate import Accelerator  # deferred: accelerate is only needed for --accelerate

    return Accelerator()


def _size_norm(objective: str, pixels: int) -> float:
    return float(pixels) ** SIZE_POWER[objective]


def objective_terms(base, vaes, g: Protector, x: torch.Tensor, multiple: int, generator, transforms=(),
                    eps: float | None = None) -> torch.Tensor:
    """The base objective of ``clip(x + G(x))`` (mean over the ensemble, size-normalised), per image ``[N]``."""
    d = g(x, eps=eps)
    x_adv = (x + d).clamp(0.0, 1.0)
    if transforms:
        k = int(torch.randint(len(transforms), (), generator=generator)) if len(transforms) > 1 else 0
        x_adv = transforms[k](x_adv, generator)
    xp, _ = pad_to_multiple(x_adv, multiple)
    xc, _ = pad_to_multiple(x, multiple)
    total = torch.zeros(x.shape[0], device=x.device)
    for vae in vaes:
        with torch.no_grad():
            ctx = base.prepare(vae, xc)
        total = total + base.objective(vae, xp, ctx, generator).float()
    return total / (len(vaes) * _size_norm(base.name, x.shape[-2] * x.shape[-1]))


@torch.no_grad()
def measure(base, vaes, delta_fn, x: torch.Tensor, multiple: int) -> torch.Tensor:
    """The base objective (size-normalised, mean over the ensemble) of ``clip(x + delta_fn(x))``, per image."""
    x_adv = (x + delta_fn(x)).clamp(0.0, 1.0)
    xp, _ = pad_to_multiple(x_adv, multiple)
    xc, _ = pad_to_multiple(x, multiple)
    total = torch.zeros(x.shape[0], device=x.device)
    gen = torch_generator(1, x.device)
    for vae in vaes:
        total = total + base.measure(vae, xp, base.prepare(vae, xc), gen).float()
    return total / (len(vaes) * _size_norm(base.name, x.shape[-2] * x.shape[-1]))


def _sign_noise(eps: float, seed: int):
    def fn(x):
        g = torch_generator(seed, x.device)
        return eps * torch.sign(torch.rand(x.shape, generator=g, device=x.device) * 2 - 1)
    return fn


# ----------------------------------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------------------------------
def _save_checkpoint(folder: Path, g: Protector, opt: torch.optim.Optimizer, samplers, step: int, history,
                     gen: torch.Generator) -> None:
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    g.save_pretrained(str(tmp))
    tensors: dict[str, torch.Tensor] = {}
    for i, p in enumerate(opt.param_groups[0]["params"]):
        st = opt.state.get(p, {})
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"p{i}.{k}"] = v.detach().cpu().contiguous().reshape(v.shape if v.ndim else (1,))
    for i, s in enumerate(samplers):
        tensors[f"crops{i}.generator"] = s.generator.get_state()
    tensors["eot.generator"] = gen.get_state()
    save_file(tensors, str(tmp / "trainer_state.safetensors"))
    (tmp / "trainer_state.json").write_text(json.dumps({"step": step, "history": history}))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def latest_checkpoint(out: Path) -> Path | None:
    root = out / "checkpoints"
    if not root.is_dir():
        return None
    done = [p for p in root.iterdir() if p.name.startswith("step-") and not p.name.endswith(".tmp")
            and (p / "trainer_state.json").exists()]
    return max(done, key=lambda p: int(p.name.split("-")[1])) if done else None


def _restore(folder: Path, g: Protector, opt: torch.optim.Optimizer, samplers, gen: torch.Generator) -> tuple[int, list]:
    from safetensors.torch import load_file

    src = Protector.from_pretrained(str(folder))
    g.load_state_dict(src.state_dict())
    tensors = load_file(str(folder / "trainer_state.safetensors"))
    for i, p in enumerate(opt.param_groups[0]["params"]):
        st = {}
        for key in ("step", "exp_avg", "exp_avg_sq"):
            t = tensors.get(f"p{i}.{key}")
            if t is not None:
                st[key] = t.reshape(()) if key == "step" else t.to(p.device).reshape(p.shape)
        if st:
            opt.state[p] = st
    for i, s in enumerate(samplers):
        s.generator.set_state(tensors[f"crops{i}.generator"])
    if "eot.generator" in tensors:  # absent in checkpoints written before it was saved
        gen.set_state(tensors["eot.generator"])
    meta = json.loads((folder / "trainer_state.json").read_text())
    return int(meta["step"]), list(meta.get("history", []))


# ----------------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------------
@torch.no_grad()
def validation_figure(path: Path, g: Protector, vae, x: torch.Tensor, eps: float) -> None:
    """Rows: clean, protected, 10x |perturbation| (centred at 0.5), VAE recon of clean, recon of protected."""
    d = g.perturbation(x, eps=eps)
    xa = (x + d).clamp(0, 1)
    mult = int(vae.info.downsample_factor)
    rec = lambda t: vae.reconstruct(pad_to_multiple(t, mult)[0])[..., : t.shape[-2], : t.shape[-1]]  # noqa: E731
    rows = torch.cat([x, xa, (0.5 + 10 * d).clamp(0, 1), rec(x), rec(xa)])
    save_image(make_grid(rows.cpu(), nrow=x.shape[0])[None], path)


def training_curve(path: Path, history: list[dict], val: list[dict], objective: str) -> None:
    import matplotlib  # deferred: matplotlib is only needed for the figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if history:
        s = np.array([h["step"] for h in history])
        v = np.array([h["objective"] for h in history])
        k = max(1, len(v) // 50)
        smooth = np.convolve(v, np.ones(k) / k, mode="valid")
        ax.plot(s, v, alpha=0.25, lw=0.8, label="train (per step)")
        ax.plot(s[k - 1:], smooth, lw=1.5, label=f"train ({k}-step mean)")
    if val:
        ax.plot([r["step"] for r in val], [r["objective"] for r in val], "o-", label="held-out: protector")
        ax.plot([r["step"] for r in val], [r["objective_noise"] for r in val], "s--", label="held-out: random sign noise")
    ax.set_xlabel("step")
    ax.set_ylabel(f"{objective} objective (size-normalised)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------
# the loop
# ----------------------------------------------------------------------------------------------------
def _as_arrays(data) -> list[np.ndarray]:
    if isinstance(data, (str, Path)):
        return ImageCrops._load(data)
    return list(data)


def _val_batch(images: list[np.ndarray], size: int) -> torch.Tensor:
    out = []
    for a in images:
        t = torch.from_numpy(np.array(a, dtype=np.uint8, copy=True)).permute(2, 0, 1)[None].float() / 255.0
        out.append(resize_center_crop(t, size))
    return torch.cat(out).clamp(0, 1)


def train_protector(cfg: TrainConfig, data, out: str | Path, *, val_data=None, resume: bool = False,
                    progress: bool = True, accelerate: bool = False, command: str = "") -> dict:
    """Train a protector (see the module docstring); returns the summary also written to ``run.json``.

    Args:
        cfg: the run's configuration (validated here).
        data: a folder of images or a list of uint8 HxWx3 arrays (the training photos).
        out: output folder (created).
        val_data: held-out images (folder or arrays); default: the last ~10% of ``data`` (at least 1) are held out.
        resume: continue from the newest checkpoint in ``out/checkpoints``.
        accelerate: train through HuggingFace accelerate (launch with ``accelerate launch``).
    """
    # deferred: diffusers (the VAEs), via models.loading
    from latentguard.models import load_vae
    from latentguard.ops.runtime import resolve_device, seed_everything

    cfg.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    acc = _accelerator(accelerate, resolve_device(cfg.device))
    dev = acc.device
    arrays = _as_arrays(data)
    if val_data is None:
        if len(arrays) < 2:
            raise ValueError("need at least 2 training images to hold one out for validation (or pass --val-data)")
        k = max(1, len(arrays) // 10)
        arrays, val_arrays = arrays[:-k], arrays[-k:]
    else:
        val_arrays = _as_arrays(val_data)
    if not arrays or not val_arrays:
        raise ValueError("no training or validation images")
    seed_everything(cfg.seed)
    vaes = [load_vae(s, device=dev) for s in cfg.vaes]
    multiple = 1
    for v in vaes:
        multiple = math.lcm(multiple, int(v.info.downsample_factor))
    if any(c % multiple for c in cfg.crop_sizes):
        raise ValueError(f"crop sizes must be multiples of the VAEs' factor {multiple}, got {cfg.crop_sizes}")
    base = build_base(cfg.objective, vaes, cfg.eps)
    transforms = parse_transforms(cfg.transforms or ())
    torch.manual_seed(cfg.seed)
    g = Protector(channels=tuple(cfg.channels), blocks=cfg.blocks, eps=float(cfg.eps), base=cfg.objective,
                  maximize=bool(base.maximize), vaes=tuple(cfg.vaes), tile_size=cfg.tile_size,
                  tile_overlap=cfg.tile_overlap).to(dev)
    opt = torch.optim.Adam(g.parameters(), lr=cfg.lr)
    levels: dict = {}
    samplers = [ImageCrops(arrays, c, seed=cfg.seed * 1000 + 17 * i + acc.process_index, scales=tuple(cfg.scales),
                           levels=levels) for i, c in enumerate(cfg.crop_sizes)]
    gen = torch_generator(cfg.seed + 7 + acc.process_index, "cpu")
    start, history = 0, []
    ckpt = latest_checkpoint(out) if resume else None
    if resume and ckpt is None:
        print(f"--resume: no checkpoint in {out / 'checkpoints'}; starting from step 0")
    if ckpt is not None:
        start, history = _restore(ckpt, g, opt, samplers, gen)
        print(f"resumed from {ckpt} (step {start})")
    val_log = []
    vpath = out / "val_log.jsonl"
    if start and vpath.exists():
        val_log = [json.loads(line) for line in vpath.read_text().splitlines() if line.strip()]
        val_log = [r for r in val_log if r["step"] <= start]
    g_train, opt = acc.prepare(g, opt)
    xval = _val_batch(val_arrays[:8], 128).to(dev)
    sign = 1.0 if base.maximize else -1.0
    log = (out / "train_log.jsonl").open("a" if start else "w")
    t0 = time.perf_counter()
    stopped = "steps"
    it = range(start, cfg.steps)
    bar = None
    if progress and acc.is_main_process:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc=f"protector ({cfg.objective})", unit="step")

    def validate(step: int) -> dict:
        g.eval()
        obj = measure(base, vaes, lambda x: g.perturbation(x), xval, multiple)
        noise = measure(base, vaes, _sign_noise(cfg.eps, 3), xval, multiple)
        clean = measure(base, vaes, lambda x: torch.zeros_like(x), xval, multiple)
        g.train()
        rec = {"step": step, "objective": float(obj.mean()), "objective_noise": float(noise.mean()),
               "objective_clean": float(clean.mean())}
        (out / "val").mkdir(exist_ok=True)
        validation_figure(out / "val" / f"step-{step:06d}.png", g, vaes[0], xval[:4], cfg.eps)
        with vpath.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        return rec

    step = start
    with frozen(vaes):
        g.train()
        for step in it:
            if cfg.max_minutes and (time.perf_counter() - t0) / 60 > cfg.max_minutes:
                stopped = "max_minutes"
                break
            if cfg.stop_at and step >= cfg.stop_at:
                stopped = "stop_at"
                break
            ts = time.perf_counter()
            lr = lr_at(cfg, step)
            for grp in opt.param_groups:
                grp["lr"] = lr
            si = step % len(samplers)
            x = samplers[si].batch(cfg.batch_size).to(dev)
            obj = objective_terms(base, vaes, g_train, x, multiple, gen, transforms, eps=cfg.eps)
            pre = getattr(g, "last_pre", None)
            penalty = F.relu(pre.abs() - PRE_BOUND).pow(2).mean() if pre is not None else torch.zeros(())
            loss = -sign * obj.mean() + cfg.pre_penalty * penalty
            g.last_pre = None
            opt.zero_grad(set_to_none=True)
            acc.backward(loss)
            opt.step()
            rec = {"step": step + 1, "crop": cfg.crop_sizes[si], "objective": float(obj.detach().mean()), "lr": lr,
                   "penalty": float(penalty.detach()),
                   "seconds": round(time.perf_counter() - ts, 4)}
            if (step + 1) % cfg.log_every == 0:
                history.append(rec)
                if acc.is_main_process:
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(obj=f"{rec['objective']:.4g}", crop=rec["crop"])
            if acc.is_main_process and (step + 1) % cfg.val_every == 0:
                val_log.append(validate(step + 1))
            if acc.is_main_process and (step + 1) % cfg.checkpoint_every == 0:
                _save_checkpoint(out / "checkpoints" / f"step-{step + 1:06d}", g, opt, samplers, step + 1, history, gen)
                for old in sorted((out / "checkpoints").glob("step-*"))[:-2]:
                    shutil.rmtree(old, ignore_errors=True)
            acc.wait_for_everyone()
        else:
            step = cfg.steps
    if stopped == "steps":
        step = cfg.steps
    log.close()
    if bar is not None:
        bar.close()
    minutes = (time.perf_counter() - t0) / 60
    summary: dict[str, Any] = {}
    if acc.is_main_process:
        if not val_log or val_log[-1]["step"] != step:
            val_log.append(validate(step))
        _save_checkpoint(out / "checkpoints" / f"step-{step:06d}", g, opt, samplers, step, history, gen)
        g.save_pretrained(str(out))
        training_curve(out / "curve.png", history, val_log, cfg.objective)
        summary = {
            "command": command, "config": asdict(cfg), "device": str(dev), "processes": acc.num_processes,
            "steps_done": step, "stopped_by": stopped, "minutes_this_run": round(minutes, 2),
            "resumed_from": start, "parameters": g.num_parameters,
            "train_images": len(arrays), "val_images": len(val_arrays),
            "final_val": val_log[-1] if val_log else None,
            "torch": torch.__version__,
        }
        (out / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


# ----------------------------------------------------------------------------------------------------
# the bundled zoo:protector-a
# ----------------------------------------------------------------------------------------------------
# Trained against zoo:vae-a on vae-a's own training photos (the 12 nature + 15 lomiri photographs; the two
# lomiri-20.04 photographs are the validation images). Never on the held-out latentguard.samples photos.
RECIPE = {
    "name": "protector-a",
    "train_photos": "nature:all+lomiri",
    "val_photos": "lomiri20",
    "config": TrainConfig(vaes=["zoo:vae-a"], objective="pca+", eps=16 / 255, steps=6000, batch_size=6,
                          crop_sizes=[64, 96, 128], scales=[*CROP_SCALES, 0.09, 0.065, 0.045], lr=1e-3, warmup=50,
                          transforms="", channels=[16, 32, 64], blocks=2, seed=0, checkpoint_every=500,
                          val_every=250, max_minutes=0.0, device="cpu"),
}


def train_bundled(out: str | Path, *, steps: int | None = None, max_minutes: float | None = None,
                  device: str | None = None, resume: bool = False) -> dict:
    """Rebuild ``zoo:protector-a`` into ``out`` (``latentguard zoo train protector-a``)."""
    cfg = TrainConfig(**asdict(RECIPE["config"]))
    if steps is not None:
        cfg.steps = steps
    if max_minutes is not None:
        cfg.max_minutes = max_minutes
    if device is not None:
        cfg.device = device
    return train_protector(cfg, datasets.photos(RECIPE["train_photos"]), out,
                           val_data=datasets.photos(RECIPE["val_photos"]), resume=resume,
                           command="latentguard zoo train protector-a")
