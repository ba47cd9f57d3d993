"""The SRL-VAE recipe: every hyper-parameter of :func:`latentguard.harden.harden`, typed and validated.

:class:`SRLConfig` is a frozen dataclass; a bad value raises ``ValueError`` naming the field when the
config is built (before any model is loaded). :meth:`SRLConfig.from_dict` is the strict loader of saved
configs (checkpoints, ``srl.json``): an unknown key is an error.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass

from latentguard.harden.crops import DEFAULT_SCALES
from latentguard.harden.perceptual import PERCEPTUAL_NAMES

SAVE_DTYPES = ("float32", "float16", "bfloat16")

# Fields that may change between an interrupted run and its resumption (they do not alter the trajectory).
RESUME_FREE_FIELDS = ("steps", "checkpoint_every", "log_every", "keep_checkpoints", "save_dtype", "probe_size",
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
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """A JSON-ready dict (``scales`` as a list)."""
        d = asdict(self)
        d["scales"] = list(self.scales)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SRLConfig:
        """The strict inverse of :meth:`to_dict`: an unknown key raises ``ValueError`` naming it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown SRLConfig fields: {', '.join(unknown)}")
        d = dict(d)
        if "scales" in d:
            d["scales"] = tuple(d["scales"])
        return cls(**d)
