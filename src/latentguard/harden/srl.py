"""SRL-VAE: post-hoc adversarial fine-tuning of a VAE's encoder, decoder frozen.

Paper: Lee, Kim, Jang, Jeong, Hwang, "Enhancing Variational Autoencoders with Smooth Robust Latent
Encoding" (SRL-VAE, arXiv 2504.17219). A pretrained KL-VAE ``(E, D)`` is fine-tuned so that its encoder
maps a perturbed image to (nearly) the latent of the clean image, while its decoder -- and so every
diffusion model trained on its latents -- is left bit-identical.

Per step, for a batch ``x`` of image crops in ``[0,1]``:

* **inner (attack)**: ``l_inf`` PGD on the input, ``||delta||_inf <= eps`` (default ``15/255``, the paper's
  bound), ``x + delta`` clipped to ``[0,1]``, random start ``U(-eps, eps)``, step ``alpha`` (default
  ``2.5 * eps / steps``), sign-gradient ascent on

  .. math:: L_{in}(\\delta) = \\mathrm{MSE}(D(\\mu_E(x+\\delta)), x) + \\lambda_{in}\\, d_p(D(\\mu_E(x+\\delta)), x)

  where ``mu_E`` is the posterior mean of the *current* encoder and ``d_p`` the perceptual distance (LPIPS in
  the paper; here the named weight-free substitute ``grad-ssim``, see :mod:`latentguard.harden.perceptual`).
* **outer (encoder update)**: with ``x' = x + delta*`` (or ``x' = x`` on the clean steps, a fraction
  ``clean_ratio`` of all steps, interleaved deterministically), ``z ~ q_E(z|x')`` (or its mean),

  .. math::

      L = \\underbrace{\\mathrm{MSE}(D(z), x) + \\lambda_{rec}\\, d_p(D(z), x)}_{\\text{reconstruction of the clean image}}
        + \\beta\\, \\underbrace{\\tfrac{1}{2}\\,\\overline{\\mu^2 + \\sigma^2 - 1 - \\log\\sigma^2}}_{KL(q_E(z|x')\\,\\|\\,N(0,I))}
        + \\gamma\\, \\underbrace{\\overline{\\big(s\\,(\\mu_E(x) - \\mu_{E_0}(x))\\big)^2}}_{\\text{originality}}

  (bars: means over latent elements and the batch; ``s`` the VAE's ``scaling_factor``, so the originality
  term is measured in the unit-variance latent units a diffusion model sees, comparable across VAEs;
  ``E_0`` the frozen original encoder, evaluated on the *clean* batch). Only the encoder (``encoder`` and
  ``quant_conv``) is optimised (AdamW, linear warm-up then cosine decay, gradient clipping).

The exact ``lambda``/steps of the paper are not in our copy of it; every weight is a field of
:class:`SRLConfig` and the defaults are justified in ``docs/harden.md``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from latentguard.harden.crops import DEFAULT_SCALES, ImageCrops
from latentguard.harden.perceptual import PERCEPTUAL_NAMES, perceptual_distance
from latentguard.models.vae import LatentVAE

CHECKPOINT_FORMAT = "latentguard.srl-checkpoint/1"
SAVE_DTYPES = ("float32", "float16", "bfloat16")

# Fields that may change between an interrupted run and its resumption (they do not alter the trajectory).
_RESUME_FREE_FIELDS = ("steps", "checkpoint_every", "log_every", "keep_checkpoints", "save_dtype", "probe_size",
                       "probe_attack_steps")


@dataclass(frozen=True)
class SRLConfig:
    """Every knob of SRL-VAE fine-tuning (budgets in ``[0,1]`` pixel units).

    Attributes:
        eps: l_inf budget of the inner PGD (paper: 15/255).
        attack_steps: PGD iterations per training batch.
        attack_alpha: PGD step size; ``None`` -> ``2.5 * eps / attack_steps``.
        attack_random_start: start PGD from ``U(-eps, eps)`` (else from 0).
        perceptual: perceptual distance of both losses: ``none`` (default: MSE only) or ``grad-ssim`` (the
            weight-free LPIPS stand-in; on validation photos it cost ~1 dB of clean PSNR for no robustness
            gain, see docs/harden.md, so it is off by default).
        attack_perceptual_weight: ``lambda_in``, weight of the perceptual term in the attack objective.
        recon_perceptual_weight: ``lambda_rec``, weight of the perceptual term in the outer reconstruction.
        kl_weight: ``beta``, weight of the per-element mean KL to N(0, I) on the perturbed inputs.
        orig_weight: ``gamma``, weight of the originality regulariser (scaled latent units).
        clean_ratio: fraction of steps trained on clean instead of adversarial inputs, in ``[0, 1)``.
        sample_latent: decode a reparameterised sample (the VAE loss) instead of the posterior mean.
        lr: peak AdamW learning rate of the encoder.
        weight_decay: AdamW weight decay.
        grad_clip: gradient-norm clip (``None``: off).
        warmup_steps: linear warm-up steps; then cosine decay to ``min_lr_ratio * lr``.
        min_lr_ratio: floor of the cosine schedule, as a fraction of ``lr``.
        steps: optimisation steps in total.
        batch_size: crops per step.
        crop: crop size in pixels (a multiple of the VAE's downsample factor).
        scales: image resize factors the crops are drawn from.
        seed: seed of the crop sampler and of the PGD start / latent noise.
        checkpoint_every: steps between checkpoints.
        keep_checkpoints: how many recent checkpoints to keep.
        log_every: steps between JSONL log rows.
        save_dtype: dtype of the saved VAE weights (``float32``, ``float16``, ``bfloat16``).
        probe_size: training-distribution crops of the end-of-run probe (clean / adversarial PSNR of the
            original and the hardened VAE; 0 to skip). Not a held-out evaluation.
        probe_attack_steps: PGD steps of the probe attack.
    """

    eps: float = 15 / 255
    attack_steps: int = 5
    attack_alpha: float | None = None
    attack_random_start: bool = True
    perceptual: str = "none"
    attack_perceptual_weight: float = 0.1
    recon_perceptual_weight: float = 0.1
    kl_weight: float = 1e-6
    orig_weight: float = 0.1
    clean_ratio: float = 0.25
    sample_latent: bool = True
    lr: float = 1e-4
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    steps: int = 1000
    batch_size: int = 8
    crop: int = 64
    scales: tuple[float, ...] = DEFAULT_SCALES
    seed: int = 0
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    save_dtype: str = "float32"
    probe_size: int = 8
    probe_attack_steps: int = 10

    def __post_init__(self) -> None:
        def num(name: str, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                hi_open: bool = False) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
            if lo is not None and (v < lo or (lo_open and v == lo)):
                raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {v!r}")
            if hi is not None and (v > hi or (hi_open and v == hi)):
                raise ValueError(f"{name} must be {'<' if hi_open else '<='} {hi}, got {v!r}")

        def integer(name: str, lo: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")

        num("eps", 0.0, 1.0, lo_open=True)
        integer("attack_steps", 1)
        if self.attack_alpha is not None:
            num("attack_alpha", 0.0, 1.0, lo_open=True)
        for b in ("attack_random_start", "sample_latent"):
            if not isinstance(getattr(self, b), bool):
                raise ValueError(f"{b} must be a bool, got {getattr(self, b)!r}")
        if self.perceptual not in PERCEPTUAL_NAMES:
            raise ValueError(f"perceptual must be one of {PERCEPTUAL_NAMES}, got {self.perceptual!r}")
        for w in ("attack_perceptual_weight", "recon_perceptual_weight", "kl_weight", "orig_weight", "weight_decay"):
            num(w, 0.0)
        num("clean_ratio", 0.0, 1.0, hi_open=True)
        num("lr", 0.0, 1.0, lo_open=True)
        if self.grad_clip is not None:
            num("grad_clip", 0.0, lo_open=True)
        integer("warmup_steps", 0)
        num("min_lr_ratio", 0.0, 1.0)
        integer("steps", 1)
        integer("batch_size", 1)
        integer("crop", 8)
        if not isinstance(self.scales, tuple) or not self.scales or any(
            isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 < s <= 1 for s in self.scales
        ):
            raise ValueError(f"scales must be a non-empty tuple of numbers in (0, 1], got {self.scales!r}")
        integer("seed", 0)
        integer("checkpoint_every", 1)
        integer("keep_checkpoints", 1)
        integer("log_every", 1)
        if self.save_dtype not in SAVE_DTYPES:
            raise ValueError(f"save_dtype must be one of {SAVE_DTYPES}, got {self.save_dtype!r}")
        integer("probe_size", 0)
        integer("probe_attack_steps", 1)

    @property
    def alpha(self) -> float:
        """The PGD step actually used."""
        return self.attack_alpha if self.attack_alpha is not None else 2.5 * self.eps / self.attack_steps

    def replace(self, **changes) -> SRLConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["scales"] = list(self.scales)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SRLConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown SRLConfig fields: {', '.join(unknown)}")
        d = dict(d)
        if "scales" in d:
            d["scales"] = tuple(d["scales"])
        return cls(**d)


def is_clean_step(step: int, clean_ratio: float) -> bool:
    """Whether 1-based ``step`` trains on clean inputs: a deterministic interleaving with density ``clean_ratio``."""
    return math.floor(step * clean_ratio + 1e-9) > math.floor((step - 1) * clean_ratio + 1e-9)


# ----------------------------------------------------------------------------------------------------
# The inner attack
# ----------------------------------------------------------------------------------------------------
def reconstruction_objective(vae: LatentVAE, x_in: torch.Tensor, target: torch.Tensor, perceptual: str,
                             perceptual_weight: float) -> torch.Tensor:
    """Per-image ``MSE(D(mu_E(x_in)), target) + w * d_p(D(mu_E(x_in)), target)``, shape ``[N]``."""
    mean, _ = vae.encode(x_in)
    rec = vae.decode(mean)
    loss = (rec - target).pow(2).flatten(1).mean(1)
    if perceptual_weight > 0 and perceptual != "none":
        loss = loss + perceptual_weight * perceptual_distance(perceptual, rec, target)
    return loss


def reconstruction_attack(
    vae: LatentVAE,
    x: torch.Tensor,
    *,
    eps: float = 15 / 255,
    steps: int = 5,
    alpha: float | None = None,
    perceptual: str = "none",
    perceptual_weight: float = 0.1,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """SRL-VAE's inner maximisation: ``l_inf`` sign-PGD on ``x`` maximising the reconstruction loss.

    Args:
        vae: the (current) VAE; its parameters and train/eval state are left as they are.
        x: clean images ``[N,3,H,W]`` in ``[0,1]`` (not mutated).
        eps: budget in ``[0,1]`` pixel units.
        steps: PGD iterations.
        alpha: step size (``None``: ``2.5 * eps / steps``).
        perceptual, perceptual_weight: the perceptual term of the objective (see :func:`reconstruction_objective`).
        random_start: start from ``U(-eps, eps)``.
        generator: RNG of the random start (on ``x.device``).

    Returns:
        ``x_adv = clip(x + delta, 0, 1)`` with ``||delta||_inf <= eps``, detached.
    """
    if not 0 < eps <= 1:
        raise ValueError(f"eps must be in (0, 1], got {eps!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    alpha = 2.5 * eps / steps if alpha is None else alpha
    x = x.detach()
    if random_start:
        delta = (torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1) * eps
    else:
        delta = torch.zeros_like(x)
    delta = ((x + delta).clamp(0, 1) - x).detach()
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = reconstruction_objective(vae, x + delta, x, perceptual, perceptual_weight).sum()
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta = (delta + alpha * grad.sign()).clamp(-eps, eps)
            delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


@torch.no_grad()
def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of images in ``[0,1]``."""
    mse = (a.clamp(0, 1) - b.clamp(0, 1)).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return 10 * torch.log10(1.0 / mse)


def adversarial_psnr(vae: LatentVAE, x: torch.Tensor, *, eps: float = 15 / 255, steps: int = 10,
                     perceptual: str = "none", perceptual_weight: float = 0.1,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-image PSNR of ``D(mu_E(x_adv))`` vs ``x`` under the reconstruction attack (white-box on ``vae``)."""
    x_adv = reconstruction_attack(vae, x, eps=eps, steps=steps, perceptual=perceptual,
                                  perceptual_weight=perceptual_weight, generator=generator)
    with torch.no_grad():
        return psnr(vae.reconstruct(x_adv), x)


# ----------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------
class _EncoderStep(torch.nn.Module):
    """The trainable part of a step as one module (what ``accelerate`` wraps in DistributedDataParallel).

    ``forward(x_in, x_clean)`` returns ``(mean, logvar)`` of ``x_in`` and the posterior mean of ``x_clean``
    (``None`` when not given) from the same encoder, in one forward call so that DDP sees one forward per
    backward. The parameters are those of ``vae.model.encoder`` / ``quant_conv`` themselves (shared, not copied).
    """

    def __init__(self, vae: LatentVAE) -> None:
        super().__init__()
        self.encoder = vae.model.encoder
        if getattr(vae.model, "quant_conv", None) is not None:
            self.quant_conv = vae.model.quant_conv
        self._vae = (vae,)  # a tuple: not registered as a submodule (the frozen decoder stays out of DDP)

    def forward(self, x_in: torch.Tensor, x_clean: torch.Tensor | None = None):
        vae = self._vae[0]
        mean, logvar = vae.encode(x_in)
        mean_clean = vae.encode(x_clean)[0] if x_clean is not None else None
        return mean, logvar, mean_clean


def launched_distributed() -> bool:
    """Whether this process was started by a multi-process launcher (``accelerate launch``/``torchrun``: ``WORLD_SIZE > 1``)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


@dataclass
class SRLResult:
    """What :func:`harden` returns."""

    vae: LatentVAE
    config: SRLConfig
    steps_done: int
    complete: bool
    minutes: float
    out_dir: Path | None = None
    vae_dir: Path | None = None
    probe: dict | None = None
    history: list[dict] = dataclasses.field(default_factory=list)


def _params_fingerprint(modules: Sequence[torch.nn.Module]) -> str:
    h = hashlib.sha256()
    for m in modules:
        for name, t in sorted(m.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _encoder_param_names(vae: LatentVAE) -> list[str]:
    ids = {id(p) for m in vae.encoder_modules for p in m.parameters()}
    return [n for n, p in vae.model.named_parameters() if id(p) in ids]


def _lr_at(cfg: SRLConfig, step: int) -> float:
    if step <= cfg.warmup_steps:
        return cfg.lr * step / max(1, cfg.warmup_steps)
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    floor = cfg.min_lr_ratio
    return cfg.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The newest checkpoint of a run folder (``checkpoints/step-NNNNNNN.pt``), or None."""
    ck = sorted((Path(out_dir) / "checkpoints").glob("step-*.pt"))
    return ck[-1] if ck else None


def _load_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); delete it to restart") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an SRL-VAE checkpoint ({CHECKPOINT_FORMAT})")
    return state


def _check_resume_config(saved: dict, cfg: SRLConfig, path: Path) -> None:
    now = cfg.to_dict()
    diff = [k for k in now if k not in _RESUME_FREE_FIELDS and saved.get(k) != now[k]]
    if diff:
        k = diff[0]
        raise ValueError(
            f"cannot resume from {path}: config field {k!r} was {saved.get(k)!r}, now {now[k]!r} "
            f"(only {', '.join(_RESUME_FREE_FIELDS)} may change); use a new --out or the same settings"
        )


def _write_plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    series = [("adv_rec", "reconstruction (adversarial steps)"), ("clean_rec", "reconstruction (clean steps)"),
              ("loss", "total loss")]
    for key, label in series:
        pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        if pts:
            ax[0].plot(*zip(*pts), label=label, lw=1)
    if any(v > 0 for line in ax[0].get_lines() for v in line.get_ydata()):
        ax[0].set_yscale("log")
    ax[0].set_xlabel("step")
    ax[0].legend(fontsize=8)
    ax[0].set_title("SRL-VAE losses")
    pts = [(r["step"], r["orig"]) for r in rows if r.get("orig") is not None]
    if pts:
        ax[1].plot(*zip(*pts), color="C3", lw=1)
        if any(v > 0 for _, v in pts):
            ax[1].set_yscale("log")
    ax[1].set_xlabel("step")
    ax[1].set_title("originality ||s(E(x)-E0(x))||^2")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def _read_log(path: Path, upto: int | None = None) -> list[dict]:
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if upto is None or r.get("step", 0) <= upto:
                rows.append(r)
    return rows


def _probe(original: LatentVAE, hardened: LatentVAE, crops: torch.Tensor, cfg: SRLConfig, device) -> dict:
    """Clean and adversarial (white-box, eps of the config) PSNR of both VAEs on a fixed crop batch."""
    out = {}
    x = crops.to(device)
    for name, v in (("original", original), ("hardened", hardened)):
        g = torch.Generator(device=device).manual_seed(cfg.seed + 7)
        with torch.no_grad():
            out[f"{name}_clean_psnr"] = float(psnr(v.reconstruct(x), x).mean())
        out[f"{name}_adv_psnr"] = float(adversarial_psnr(
            v, x, eps=cfg.eps, steps=cfg.probe_attack_steps, perceptual=cfg.perceptual,
            perceptual_weight=cfg.attack_perceptual_weight, generator=g).mean())
    return out


def harden(
    vae: LatentVAE | str,
    data: str | os.PathLike | Sequence | ImageCrops,
    config: SRLConfig | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = True,
    max_minutes: float | None = None,
    callback: Callable[[int, dict], None] | None = None,
    command: str = "latentguard.harden.harden",
    accelerate: bool | None = False,
) -> SRLResult:
    """Fine-tune a copy of ``vae``'s encoder with SRL-VAE; the decoder stays bit-identical.

    Args:
        vae: a :class:`LatentVAE` (not modified) or a spec for :func:`latentguard.models.load_vae`.
        data: a folder of images, a list of image files / tensors, or an :class:`ImageCrops`.
        config: the recipe (default :class:`SRLConfig()`).
        out_dir: run folder: ``vae/`` (diffusers AutoencoderKL, safetensors + config.json, also loadable as
            ``load_vae(out_dir)``), ``checkpoints/``, ``train_log.jsonl``, ``loss.png``, ``summary.csv``,
            ``run.json``. ``None``: train in memory only (no checkpoints).
        resume: continue from the newest checkpoint in ``out_dir`` (an error if there is none); the
            trajectory is the one of an uninterrupted run (sampler and noise states are checkpointed).
        device: ``cpu``, ``cuda``, ...
        progress: tqdm progress bar on stderr.
        max_minutes: stop early after this wall time (checkpoint + save; ``resume`` continues).
        callback: ``callback(step, row)`` after each step (e.g. to stop a run: raise from it).
        command: recorded in ``run.json``.
        accelerate: train through HuggingFace ``accelerate`` (data-parallel, one process per GPU; launch with
            ``accelerate launch``); ``None``: when launched with ``WORLD_SIZE > 1``. ``False`` (default): the
            plain single-process loop. With ``accelerate`` each step draws the same global batch of
            ``config.batch_size`` crops on every process (one seeded sampler) and process ``r`` of ``P`` trains
            on rows ``r::P`` (``batch_size`` must be a multiple of ``P``); the gradients of the encoder are
            averaged by DDP, so a step is the step of the full batch. The PGD noise and latent samples come from a
            per-process generator (seed ``seed + 1 + 1_000_003 r``; process 0 as in the plain loop); logged
            losses are means over the processes; files are written by the main process only; a ``callback``
            runs on every process. Training is float32 (a launcher's mixed-precision setting is overridden).
            On one process (CPU or one GPU) the result equals the plain loop's.

    Returns:
        :class:`SRLResult` with the hardened :class:`LatentVAE` (float32, eval mode, frozen).
    """
    from latentguard.core.runtime import resolve_device

    cfg = config if config is not None else SRLConfig()
    if not isinstance(cfg, SRLConfig):
        raise TypeError(f"config must be an SRLConfig, got {type(cfg).__name__}")
    if max_minutes is not None and not (isinstance(max_minutes, (int, float)) and max_minutes > 0):
        raise ValueError(f"max_minutes must be a positive number, got {max_minutes!r}")
    dev = resolve_device(device)
    if accelerate is None:
        accelerate = launched_distributed()
    acc = None
    rank, world = 0, 1
    if accelerate:
        from accelerate import Accelerator

        acc = Accelerator(cpu=dev.type == "cpu", mixed_precision="no")
        dev, rank, world = acc.device, acc.process_index, acc.num_processes
        if cfg.batch_size % world:
            raise ValueError(f"batch_size ({cfg.batch_size}) must be a multiple of the number of processes ({world})")
    main_proc = rank == 0
    if isinstance(vae, str):
        from latentguard.models import load_vae

        vae = load_vae(vae, device=dev)
    if not isinstance(vae, LatentVAE):
        raise TypeError(f"vae must be a LatentVAE or a spec string, got {type(vae).__name__}")
    f = vae.info.downsample_factor
    if cfg.crop % f:
        raise ValueError(f"crop must be a multiple of the VAE's downsample factor {f}, got {cfg.crop}")
    out = Path(out_dir) if out_dir is not None else None
    if resume and out is None:
        raise ValueError("resume=True needs out_dir (the folder of the interrupted run)")
    ckpt_path = latest_checkpoint(out) if (out is not None and resume) else None
    if resume and ckpt_path is None:
        raise FileNotFoundError(f"nothing to resume: {out}/checkpoints has no step-*.pt checkpoint")
    if out is not None and not resume and latest_checkpoint(out) is not None:
        raise ValueError(f"{out} already holds an SRL-VAE run; pass resume (--resume) to continue it or choose a new --out")
    if acc is not None:
        acc.wait_for_everyone()  # every process has checked the folder before the main one writes to it

    crops = data if isinstance(data, ImageCrops) else ImageCrops(data, cfg.crop, seed=cfg.seed, scales=cfg.scales)
    if crops.crop != cfg.crop:
        raise ValueError(f"the ImageCrops crop ({crops.crop}) differs from config.crop ({cfg.crop})")
    probe_x = None
    if cfg.probe_size:
        g_state = crops.generator.get_state()
        crops.generator.manual_seed(cfg.seed + 1_000_003)
        probe_x = crops.batch(cfg.probe_size)
        crops.generator.set_state(g_state)

    # the frozen original (not modified: we only read it under no_grad) and the trainable copy
    original = vae
    orig_state = (original.model.training, {n: p.requires_grad for n, p in original.model.named_parameters()})
    model = copy.deepcopy(original.model).to(device=dev, dtype=torch.float32).eval()
    hardened = LatentVAE(model, spec=f"srl({original.spec})")
    original_f32 = original if (original.dtype == torch.float32 and original.device == dev) else \
        LatentVAE(copy.deepcopy(original.model).to(device=dev, dtype=torch.float32).eval(), spec=original.spec)
    model.requires_grad_(False)
    enc_params = [p for m in hardened.encoder_modules for p in m.parameters()]
    for p in enc_params:
        p.requires_grad_(True)
    dec_fp = _params_fingerprint(hardened.decoder_modules)
    enc0_fp = _params_fingerprint(original.encoder_modules)
    opt = torch.optim.AdamW(enc_params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    noise = torch.Generator(device=dev).manual_seed(cfg.seed + 1 + 1_000_003 * rank)
    sf = hardened.info.scaling_factor
    # the trainable encoder as one module; under accelerate it (and the optimizer) are prepared -> DDP-wrapped.
    # The PGD attack and the frozen original run on the unwrapped modules (no parameter gradients there).
    enc_step: torch.nn.Module = _EncoderStep(hardened)
    if acc is not None:
        enc_step, opt = acc.prepare(enc_step, opt)

    start = 0
    log_path = out / "train_log.jsonl" if out is not None else None
    if out is not None and main_proc:
        out.mkdir(parents=True, exist_ok=True)
        (out / "checkpoints").mkdir(exist_ok=True)
    if ckpt_path is not None:
        state = _load_checkpoint(ckpt_path)
        _check_resume_config(state["config"], cfg, ckpt_path)
        if state["original_encoder_sha256"] != enc0_fp:
            raise ValueError(f"cannot resume from {ckpt_path}: it was made from another VAE (encoder fingerprint differs)")
        names = _encoder_param_names(hardened)
        params = dict(hardened.model.named_parameters())
        with torch.no_grad():
            for n in names:
                params[n].copy_(state["encoder"][n].to(dev))
        opt.load_state_dict(state["optimizer"])
        crops.load_state_dict(state["data"])
        ranks = state.get("noise_ranks")
        if ranks is not None and len(ranks) == world:
            noise.set_state(ranks[rank])
        elif world == 1:
            noise.set_state(state["noise"])
        else:
            raise ValueError(f"cannot resume from {ckpt_path} with {world} processes: it was made with "
                             f"{len(ranks) if ranks is not None else 1}; launch the same number of processes")
        start = int(state["step"])
        if main_proc:
            # drop log rows written after the checkpoint (they will be redone identically)
            rows = _read_log(log_path, upto=start)
            from latentguard.io import atomic_write_text

            atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in rows))
    elif log_path is not None and main_proc and log_path.exists():
        log_path.unlink()

    start_revision = None
    run_extra = {"accelerate": {"processes": world, "distributed_type": str(acc.distributed_type)}} \
        if acc is not None else {}
    if out is not None and main_proc:
        from latentguard.io import write_manifest

        manifest = write_manifest(out, command, {"vae": original.spec, "srl": cfg.to_dict(), "resume": resume,
                                                 "device": str(dev), "images": crops.sources,
                                                 **run_extra}, seed=cfg.seed)
        start_revision = json.loads(manifest.read_text()).get("git_revision")

    def save_checkpoint(step: int) -> None:
        if out is None:
            return
        noise_ranks = None
        if acc is not None:  # a collective: every process calls save_checkpoint at the same steps
            from accelerate.utils import gather_object

            noise_ranks = gather_object([noise.get_state().to("cpu")])
        if not main_proc:
            return
        names = _encoder_param_names(hardened)
        params = dict(hardened.model.named_parameters())
        state = {
            "format": CHECKPOINT_FORMAT, "step": step, "config": cfg.to_dict(),
            "encoder": {n: params[n].detach().to("cpu").clone() for n in names},
            "optimizer": opt.state_dict(), "data": crops.state_dict(), "noise": noise.get_state().to("cpu"),
            "original_encoder_sha256": enc0_fp,
        }
        if noise_ranks is not None:
            state["noise_ranks"] = noise_ranks
        _atomic_torch_save(state, out / "checkpoints" / f"step-{step:07d}.pt")
        for old in sorted((out / "checkpoints").glob("step-*.pt"))[: -cfg.keep_checkpoints]:
            old.unlink(missing_ok=True)

    from tqdm.auto import tqdm

    history: list[dict] = []
    t0 = time.time()
    step = start
    bar = tqdm(total=cfg.steps, initial=start, desc="srl-vae", file=sys.stderr, disable=not (progress and main_proc),
               dynamic_ncols=True)
    try:
        for step in range(start + 1, cfg.steps + 1):
            lr = _lr_at(cfg, step)
            for g in opt.param_groups:
                g["lr"] = lr
            x = crops.batch(cfg.batch_size)  # the same global batch on every process
            if world > 1:
                x = x[rank::world]  # this process's shard
            x = x.to(dev)
            clean = is_clean_step(step, cfg.clean_ratio)
            if clean:
                x_in = x
            else:
                x_in = reconstruction_attack(
                    hardened, x, eps=cfg.eps, steps=cfg.attack_steps, alpha=cfg.alpha,
                    perceptual=cfg.perceptual, perceptual_weight=cfg.attack_perceptual_weight,
                    random_start=cfg.attack_random_start, generator=noise)
            need_clean = cfg.orig_weight > 0 and not clean
            mean, logvar, mean_clean = enc_step(x_in, x if need_clean else None)
            z = hardened.sample(mean, logvar, generator=noise) if cfg.sample_latent else mean
            rec = hardened.decode(z)
            rec_mse = F.mse_loss(rec, x)
            rec_loss = rec_mse
            perc = None
            if cfg.recon_perceptual_weight > 0 and cfg.perceptual != "none":
                perc = perceptual_distance(cfg.perceptual, rec, x).mean()
                rec_loss = rec_loss + cfg.recon_perceptual_weight * perc
            kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
            loss = rec_loss + cfg.kl_weight * kl
            orig = None
            if cfg.orig_weight > 0:
                if clean:
                    mean_clean = mean
                with torch.no_grad():
                    mean0 = original_f32.encode(x)[0]
                orig = (sf * (mean_clean - mean0)).pow(2).mean()
                loss = loss + cfg.orig_weight * orig
            opt.zero_grad(set_to_none=True)
            if acc is not None:
                acc.backward(loss)  # DDP averages the encoder's gradients over the processes here
            else:
                loss.backward()
            gnorm = None
            if cfg.grad_clip is not None:
                gnorm = float(torch.nn.utils.clip_grad_norm_(enc_params, cfg.grad_clip))
            opt.step()

            logged = [loss, rec_mse, kl] + [t for t in (perc, orig) if t is not None]
            logged_v = torch.stack([t.detach() for t in logged])
            if acc is not None and world > 1:
                logged_v = acc.reduce(logged_v, reduction="mean")
            vals = logged_v.tolist()
            loss_v, rec_v, kl_v = vals[:3]
            rest = iter(vals[3:])
            perc_v = None if perc is None else next(rest)
            orig_v = None if orig is None else next(rest)
            row = {"step": step, "clean": clean, "loss": loss_v, "rec_mse": rec_v,
                   "adv_rec": None if clean else rec_v, "clean_rec": rec_v if clean else None,
                   "perc": perc_v, "kl": kl_v, "orig": orig_v, "lr": lr, "grad_norm": gnorm}
            if callback is not None:
                callback(step, row)
            if step % cfg.log_every == 0 or step == cfg.steps:
                row["seconds"] = round(time.time() - t0, 2)
                history.append(row)
                if log_path is not None and main_proc:
                    with open(log_path, "a") as fh:
                        fh.write(json.dumps(row) + "\n")
            bar.update(1)
            bar.set_postfix(loss=f"{loss_v:.4f}", rec=f"{rec_v:.4f}", orig=f"{orig_v:.3g}" if orig_v is not None else "-")
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save_checkpoint(step)
                if log_path is not None and main_proc:
                    _write_plot(_read_log(log_path), out / "loss.png")
            stop = max_minutes is not None and (time.time() - t0) / 60 > max_minutes
            if acc is not None and world > 1 and max_minutes is not None:  # every process stops at the same step
                stop = bool(acc.reduce(torch.tensor([float(stop)], device=dev), reduction="sum").item() > 0)
            if stop:
                if step % cfg.checkpoint_every:
                    save_checkpoint(step)
                break
    finally:
        bar.close()
        original.model.train(orig_state[0])
        for n, p in original.model.named_parameters():
            p.requires_grad_(orig_state[1][n])

    if _params_fingerprint(hardened.decoder_modules) != dec_fp:  # pragma: no cover - a bug guard
        raise RuntimeError("SRL-VAE changed the decoder; this is a bug")
    hardened.model.requires_grad_(False).eval()
    minutes = (time.time() - t0) / 60
    complete = step >= cfg.steps
    if acc is not None:
        acc.wait_for_everyone()
        acc.free_memory()  # drop accelerate's references to the DDP wrapper and the optimizer
    probe = _probe(original_f32, hardened, probe_x, cfg, dev) if (probe_x is not None and main_proc) else None
    result = SRLResult(vae=hardened, config=cfg, steps_done=step, complete=complete, minutes=minutes,
                       out_dir=out, probe=probe, history=history)
    if out is not None and not main_proc:
        result.vae_dir = out / "vae"
    if out is not None and main_proc:
        result.vae_dir = save_hardened(hardened, out / "vae", cfg, original_spec=original.spec,
                                       steps_done=step, complete=complete, probe=probe)
        rows = _read_log(log_path)
        if rows:
            _write_plot(rows, out / "loss.png")
        _write_summary(out / "summary.csv", result, rows)
        from latentguard.io import write_manifest

        write_manifest(out, command, {"vae": original.spec, "srl": cfg.to_dict(), "resume": resume,
                                      "device": str(dev), "images": crops.sources, **run_extra},
                       seed=cfg.seed, extra={"git_revision": start_revision,  # the code that ran, not the tree at the end
                              "result": {"steps_done": step, "complete": complete, "minutes_this_session": minutes,
                                         "probe": probe}})
    if acc is not None:
        acc.wait_for_everyone()  # the other processes return once the main one has written OUT/vae
    return result


def save_hardened(vae: LatentVAE, folder: str | os.PathLike, cfg: SRLConfig, *, original_spec: str,
                  steps_done: int, complete: bool, probe: dict | None = None) -> Path:
    """Save as a diffusers ``AutoencoderKL`` folder (``config.json`` + safetensors) plus ``srl.json`` provenance."""
    folder = Path(folder)
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[cfg.save_dtype]
    m = copy.deepcopy(vae.model).to("cpu").to(dtype)
    tmp = folder.with_name(f".{folder.name}.tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    m.save_pretrained(str(tmp), safe_serialization=True)
    cfg_path = tmp / "config.json"
    conf = json.loads(cfg_path.read_text())
    conf.pop("_name_or_path", None)  # a local path of the machine that trained it
    cfg_path.write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")
    (tmp / "srl.json").write_text(json.dumps({
        "method": "SRL-VAE (arXiv 2504.17219), encoder fine-tuned, decoder frozen",
        "original": original_spec, "config": cfg.to_dict(), "steps_done": steps_done, "complete": complete,
        "probe_training_crops": probe,
    }, indent=2) + "\n")
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def _write_summary(path: Path, result: SRLResult, rows: list[dict]) -> None:
    import csv

    last_adv = [r["adv_rec"] for r in rows if r.get("adv_rec") is not None]
    first = sum(last_adv[:5]) / max(1, len(last_adv[:5])) if last_adv else None
    last = sum(last_adv[-5:]) / max(1, len(last_adv[-5:])) if last_adv else None
    rec = {"steps_done": result.steps_done, "complete": result.complete,
           "minutes_this_session": round(result.minutes, 2),
           "adv_rec_first5": first, "adv_rec_last5": last, **(result.probe or {})}
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rec))
        w.writeheader()
        w.writerow(rec)
    os.replace(tmp, path)
