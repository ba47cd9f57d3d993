"""One projected-gradient engine under every protection, and the registry of protections.

A protection is a frozen dataclass (subclass of :class:`Protection`) that says *what* to optimise
(``objective``) and in which direction (``maximize``); this module says *how*:

.. math::

    \\delta_0 = 0 \\;(\\text{or } U(-\\epsilon, \\epsilon)), \\qquad
    \\delta_{t+1} = \\Pi\\big(\\delta_t \\pm \\alpha_t\\, \\mathrm{sign}(g_t)\\big), \\qquad
    g_t = \\nabla_\\delta \\frac{1}{K\\,M} \\sum_{k=1}^{K} \\sum_{m=1}^{M} L_m\\big(T_k(\\mathrm{clip}_{[0,1]}(x + \\delta_t))\\big)

with ``+`` to maximise and ``-`` to minimise the objective, ``Pi`` the projection on the budget
(``||delta||_inf <= eps``, or ``||delta||_2 <= eps`` per image with the step ``alpha g/||g||_2``) followed by
``x + delta in [0,1]`` and the mask, ``T_k`` random differentiable transforms (EOT; identity when none
are given), ``L_m`` the objective on surrogate VAE ``m`` of an ensemble (mean loss), and ``alpha_t``
constant or decayed (``linear``: PhotoGuard's schedule ``alpha - (alpha - alpha*floor) t/T``; ``cosine``).

Budgets are in [0,1] pixel units (``eps=16/255``). Images of any size: they are padded (reflect) to a
multiple of the VAEs' downsampling factor, and the perturbation is cropped back to the input size
(the pad is a function of ``x + delta``, so gradients from the padded border flow back). Images larger
than ``tile_size`` are processed as overlapping tiles: the objective is the mean over tiles, each
tile's gradient is accumulated into the one full-size ``delta`` (memory is bounded by one tile).

Gradients are taken only w.r.t. the image: every model parameter is frozen (``requires_grad=False``,
eval mode) during the attack and restored afterwards; the input tensor is never modified. The
projected-gradient arithmetic (start, step, decay, projection) is :mod:`latentguard.ops.pgd`; this module
adds EOT, tiles, ensembles, masks and records on top.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from latentguard.models.loading import load_vae
from latentguard.models.padding import pad_to_multiple
from latentguard.models.vae import LatentVAE, kl_standard_normal
from latentguard.ops import pgd

# One PSNR for the whole project (float64, 100 dB for identical images so records stay valid JSON);
# re-exported here because protect records and benchmarks use it.
from latentguard.ops.metrics import psnr  # noqa: F401
from latentguard.ops.pgd import NORMS, STEP_DECAYS
from latentguard.ops.runtime import randint, randn, torch_generator
from latentguard.ops.state import frozen
from latentguard.ops.transforms import ROBUST_EOT, parse_transforms
# The registry (names, lookup) is torch-free; the names are re-exported here for the method modules.
from latentguard.protect.registry import PRESETS, available, get, get_class, register  # noqa: F401


# --------------------------------------------------------------------------------------------------
# small helpers shared by the methods
# --------------------------------------------------------------------------------------------------
def sample_posterior(mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Reparameterised sample ``mean + exp(logvar/2) * n`` (differentiable in mean and logvar)."""
    return mean + torch.exp(0.5 * logvar) * randn(mean.shape, generator, mean.device, mean.dtype)


def tile_grid(h: int, w: int, tile: int, overlap: int, multiple: int = 1) -> list[tuple[int, int, int, int]]:
    """Overlapping tiles ``(y0, y1, x0, x1)`` covering an ``h x w`` image; one tile when it fits.

    ``tile`` and ``overlap`` are rounded down to multiples of ``multiple`` (the VAE's factor), so every
    tile of a padded image is itself a valid VAE input. ``tile <= 0`` disables tiling.
    """
    if tile <= 0 or (h <= tile and w <= tile):
        return [(0, h, 0, w)]
    tile = max(multiple, tile - tile % multiple)
    overlap = max(0, overlap - overlap % multiple)
    stride = max(multiple, tile - overlap)

    def starts(length: int) -> list[int]:
        if length <= tile:
            return [0]
        s = list(range(0, length - tile, stride))
        s.append(length - tile)
        return sorted(set(s))

    ys = [(y, min(y + tile, h)) for y in starts(h)]
    xs = [(x, min(x + tile, w)) for x in starts(w)]
    return [(y0, y1, x0, x1) for (y0, y1) in ys for (x0, x1) in xs]


def _as_vae(v: Any) -> LatentVAE:
    if isinstance(v, LatentVAE):
        return v
    if isinstance(v, str):
        return load_vae(v)
    if isinstance(v, nn.Module) and hasattr(v, "config") and hasattr(v, "encoder"):
        return LatentVAE(v)
    raise ValueError(f"vae must be a LatentVAE, a diffusers AutoencoderKL or a spec string, got {type(v).__name__}")


def _check_range01(name: str, value: float, *, low_open: bool = True, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    v = float(value)
    if (v <= 0 if low_open else v < 0) or v > high:
        lo = "0 <" if low_open else "0 <="
        raise ValueError(f"{name} must satisfy {lo} {name} <= {high:g}, got {value!r}")
    return v


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProtectRecord:
    """What one protected image's run measured.

    ``loss_*``: the method's own objective (its natural sign; see ``maximize``) averaged over the
    ensemble and tiles, on the clean input and on the output. Stochastic objectives (AdvDM, SDS, Mist,
    PhotoGuard-diffusion) are measured with the same fixed noise before and after (``eval_samples`` draws).
    ``kl_*``: ``KL(q(z|x) || N(0,I))`` summed over latent elements of the first surrogate VAE;
    ``sigma2_*``: its mean posterior variance. ``linf``/``l2``: norms of ``output - input`` in [0,1] units;
    ``psnr``: output vs input (dB; inf when identical). ``seconds``: the batch's wall time divided by its
    size (images of one batch are optimised together).
    """

    method: str
    index: int
    maximize: bool
    loss_before: float
    loss_after: float
    kl_before: float
    kl_after: float
    sigma2_before: float
    sigma2_after: float
    linf: float
    l2: float
    psnr: float
    seconds: float

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None
        return d

    @property
    def improved(self) -> bool:
        """Whether the objective moved in the method's direction."""
        return self.loss_after > self.loss_before if self.maximize else self.loss_after < self.loss_before


@dataclass(frozen=True)
class StepInfo:
    """What the engine passes to a ``callback`` after each projected-gradient step.

    ``step`` counts finished steps (1..``steps``); one step costs ``eot_samples x vaes x tiles`` forward and
    backward passes (``passes``). ``elapsed`` is the wall time since the run started (seconds, model
    preparation and the "before" measurement included); ``eta`` extrapolates the mean time per step so far.
    """

    method: str
    step: int
    steps: int
    tiles: int
    eot_samples: int
    vaes: int
    images: int
    elapsed: float
    step_seconds: float

    @property
    def passes(self) -> int:
        """Forward+backward passes per step."""
        return self.eot_samples * self.vaes * self.tiles

    @property
    def eta(self) -> float:
        """Seconds left, from the mean step time so far (the final measurement not included)."""
        return self.step_seconds * (self.steps - self.step)


#: ``callback(info)`` after every step; an exception it raises stops the run (and propagates to the caller).
StepCallback = Callable[[StepInfo], None]


@dataclass
class ProtectOutput:
    """Protected images ``[N,3,H,W]`` in [0,1] (same device/dtype as the input) and one record each."""

    images: torch.Tensor
    records: list[ProtectRecord]
    delta: torch.Tensor


# --------------------------------------------------------------------------------------------------
# the base protection
# --------------------------------------------------------------------------------------------------
#: The ``robust`` preset of the encoder-only methods: EOT over :data:`~latentguard.ops.transforms.ROBUST_EOT`
#: (JPEG q 50-95 or resize x0.5-1 per draw) with ``eot_samples`` draws per step (the step count stays the
#: method's). Chosen by measurement (docs/survival.md, ``benchmarks/survival.py --part select``).
ROBUST_PRESET: dict[str, Any] = {"transforms": ROBUST_EOT, "eot_samples": 1}


@dataclass(frozen=True, kw_only=True)
class Protection:
    """Base class: the engine's parameters, shared by every method.

    Args:
        vae: the surrogate: a :class:`~latentguard.models.LatentVAE`, a diffusers ``AutoencoderKL``, a spec
            string (``"zoo:vae-a"``, a folder, a hub id) or a sequence of them (an ensemble; the objective
            is the mean over the ensemble).
        eps: budget in [0,1] pixel units (L-inf: per pixel; L2: per image).
        alpha: step size in [0,1] units (L-inf: of the sign step; L2: of the normalised gradient step).
        steps: iterations ``T`` (0 returns the input).
        norm: ``"linf"`` or ``"l2"``.
        random_start: start from ``U(-eps, eps)`` (L2: a random direction of random length <= eps)
            instead of 0.
        step_decay: ``"none"``, ``"linear"`` (to ``alpha*decay_floor`` at the last step) or ``"cosine"``.
        decay_floor: final step as a fraction of ``alpha`` for the decays.
        maximize: ascend (True) or descend (False) the objective; each method sets its own default.
        transforms: EOT transforms (``"jpeg:50-90,resize"`` or objects of
            :mod:`latentguard.ops.transforms`); each EOT draw picks one uniformly.
        eot_samples: gradient draws averaged per step (transform and noise re-drawn each time).
        eval_samples: noise draws of a stochastic objective when measuring before/after.
        tile_size: images larger than this (pixels, either side) are processed in tiles; 0 disables.
        tile_overlap: overlap of neighbouring tiles (pixels).
        seed: seed of the generator used when ``__call__`` gets none (deterministic by default).
        measure_records: compute the records' objective, KL and posterior variance before and after (two extra
            passes of every surrogate, and the objective's set-up when ``steps`` is 0); ``False`` leaves them NaN
            and keeps the norms and PSNR. The protected image is the same either way.
    """

    name: ClassVar[str] = "protection"
    SOURCE: ClassVar[dict[str, Any]] = {}
    #: The protection objective the method targets, as its paper evaluates it (PCA's official README names
    #: both): ``1`` = min d(f(x+delta), x), the edit of the protected image stays close to the *input* (the
    #: editor is neutralised); ``2`` = max d(f(x+delta), f(x)), the edit is pushed away from the *clean edit*;
    #: ``None`` for controls (no protection, random noise). Each method declares it, citing its paper.
    #: (Not ``objective``: that is the loss method.)
    edit_objective: ClassVar[int | None] = None
    #: The ``robust`` preset's parameters (``get(name, preset="robust")``), ``None`` where it does not apply.
    ROBUST: ClassVar[dict[str, Any] | None] = None

    vae: Any = field(default=None, repr=False, compare=False)
    eps: float = 16 / 255
    alpha: float = 2 / 255
    steps: int = 40
    norm: str = "linf"
    random_start: bool = False
    step_decay: str = "none"
    decay_floor: float = 0.01
    maximize: bool = True
    transforms: Any = ()
    eot_samples: int = 1
    eval_samples: int = 8
    tile_size: int = 1024
    tile_overlap: int = 128
    seed: int = 0
    measure_records: bool = True

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.norm == "linf":
            set_("eps", _check_range01("eps", self.eps))
        else:
            if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float)) or not (0 < float(self.eps) < math.inf):
                raise ValueError(f"eps must be a positive finite number, got {self.eps!r}")
            set_("eps", float(self.eps))
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not (0 < float(self.alpha) < math.inf):
            raise ValueError(f"alpha must be a positive finite number, got {self.alpha!r}")
        set_("alpha", float(self.alpha))
        _check_int("steps", self.steps, 0)
        _check_bool("random_start", self.random_start)
        _check_bool("maximize", self.maximize)
        _check_bool("measure_records", self.measure_records)
        if self.step_decay not in STEP_DECAYS:
            raise ValueError(f"step_decay must be one of {STEP_DECAYS}, got {self.step_decay!r}")
        set_("decay_floor", _check_range01("decay_floor", self.decay_floor))
        try:
            set_("transforms", parse_transforms(self.transforms))
        except ValueError as exc:
            msg = str(exc)
            raise ValueError(msg if msg.startswith("transforms") else f"transforms: {msg}") from None
        _check_int("eot_samples", self.eot_samples, 1)
        _check_int("eval_samples", self.eval_samples, 1)
        _check_int("tile_size", self.tile_size, 0)
        if 0 < self.tile_size < 16:
            raise ValueError(f"tile_size must be 0 (off) or >= 16, got {self.tile_size}")
        _check_int("tile_overlap", self.tile_overlap, 0)
        if self.tile_size and self.tile_overlap * 2 >= self.tile_size:
            raise ValueError(f"tile_overlap must be < tile_size/2, got {self.tile_overlap} for tile_size {self.tile_size}")
        _check_int("seed", self.seed, 0)
        vae = self.vae
        if vae is None:
            raise ValueError(f"vae is required for {self.name!r} (e.g. vae='zoo:vae-a')")
        vaes = tuple(_as_vae(v) for v in (vae if isinstance(vae, (list, tuple)) else [vae]))
        if not vaes:
            raise ValueError("vae must not be an empty sequence")
        devs = {str(v.device) for v in vaes}
        if len(devs) > 1:
            raise ValueError(f"vae: all surrogate VAEs must be on one device, got {sorted(devs)}")
        set_("vae", vaes)

    # --- what a method provides ------------------------------------------------------------------
    @property
    def vaes(self) -> tuple[LatentVAE, ...]:
        return self.vae

    @property
    def device(self) -> torch.device:
        return self.vaes[0].device

    def modules(self) -> list[nn.Module]:
        """Every module whose parameters must stay frozen during the attack."""
        return [v for v in self.vaes]

    def prepare(self, vae: LatentVAE, x: torch.Tensor) -> Any:
        """Per-(VAE, tile) constants computed once from the clean padded tile (targets, clean posteriors)."""
        return None

    def objective(self, vae: LatentVAE, x: torch.Tensor, ctx: Any, generator: torch.Generator | None) -> torch.Tensor:
        """The differentiable objective per image, ``[N]``, for one padded tile ``x`` in [0,1]."""
        raise NotImplementedError

    def measure(self, vae: LatentVAE, x: torch.Tensor, ctx: Any, generator: torch.Generator | None) -> torch.Tensor:
        """The objective's value for the records (defaults to ``objective``); ``[N]``."""
        return self.objective(vae, x, ctx, generator)

    def start(self, x: torch.Tensor, mask: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
        """The starting perturbation ``delta_0`` (zeros or ``random_start``); ``fast`` starts from its protector's output."""
        return pgd.init_delta(x, eps=self.eps, norm=self.norm, random_start=self.random_start, generator=generator,
                              mask=mask)

    def replace(self, **changes: Any) -> Protection:
        return dataclasses.replace(self, **changes)

    # --- running ---------------------------------------------------------------------------------
    def __call__(self, images: torch.Tensor, *, mask: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Protected copy of ``images`` (``[N,3,H,W]`` in [0,1]); see :meth:`protect` for the records."""
        return self.protect(images, mask=mask, generator=generator).images

    def protect(self, images: torch.Tensor, *, mask: torch.Tensor | None = None,
                generator: torch.Generator | None = None, progress: bool = False,
                callback: StepCallback | None = None) -> ProtectOutput:
        """Run the attack; returns the images, the perturbation and one :class:`ProtectRecord` per image.

        Args:
            images: ``[N,3,H,W]`` float in [0,1] (never modified).
            mask: optional region to protect, broadcastable to ``[N,1,H,W]`` (``[H,W]``, ``[1,H,W]``,
                ``[N,1,H,W]``), values in [0,1], binarised at 0.5; pixels outside stay bit-identical.
            generator: randomness (random start, EOT draws, diffusion noise); default: seeded by ``seed``.
            progress: show a tqdm bar over the steps (stderr).
            callback: called after every step with a :class:`StepInfo` (step count, tiles, EOT samples, elapsed
                time and ETA), e.g. to drive a progress bar or a web job's status; it sees no tensors and cannot
                change the result. An exception it raises stops the run and propagates (a deadline, a cancel).
        """
        return run_protection(self, images, mask=mask, generator=generator, progress=progress, callback=callback)


# --------------------------------------------------------------------------------------------------
# the engine
# --------------------------------------------------------------------------------------------------
def _check_images(images: Any) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape [N,3,H,W], got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [0,1], got dtype {images.dtype}")
    if images.numel() == 0:
        raise ValueError("images is empty")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinity")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"images must be in [0,1], got values in [{lo:.4g}, {hi:.4g}] (convert from [-1,1] or 0-255 first)")


def _prepare_mask(mask: Any, x: torch.Tensor) -> torch.Tensor | None:
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    m = mask.detach().to(device=x.device, dtype=torch.float32)
    if m.ndim == 2:
        m = m[None, None]
    elif m.ndim == 3:
        m = m[:, None] if m.shape[0] == x.shape[0] and m.shape[0] != 1 else m[None]
    if m.ndim != 4 or m.shape[1] != 1 or m.shape[0] not in (1, x.shape[0]) or m.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"mask must be broadcastable to [N,1,H,W] = [{x.shape[0]},1,{x.shape[2]},{x.shape[3]}], "
                         f"got {tuple(mask.shape)}")
    if not torch.isfinite(m).all() or float(m.min()) < 0 or float(m.max()) > 1:
        raise ValueError("mask values must be in [0,1]")
    return (m > 0.5).expand(x.shape[0], 1, *x.shape[-2:])


def _multiple(vaes: Sequence[LatentVAE]) -> int:
    m = 1
    for v in vaes:
        m = math.lcm(m, int(v.info.downsample_factor))
    return m


def _slice(x: torch.Tensor, tile: tuple[int, int, int, int]) -> torch.Tensor:
    y0, y1, x0, x1 = tile
    return x[..., y0:y1, x0:x1]


def _gradient(p: Protection, x: torch.Tensor, delta: torch.Tensor, ctxs, tiles, multiple: int,
              generator) -> torch.Tensor:
    vaes = p.vaes
    d = delta.detach().requires_grad_(True)
    total = torch.zeros_like(x)
    scale = 1.0 / (len(vaes) * len(tiles) * p.eot_samples)
    for _ in range(p.eot_samples):
        x_adv = (x + d).clamp(0.0, 1.0)
        xt = x_adv
        if p.transforms:
            k = int(randint(len(p.transforms), (), generator, x.device)) if len(p.transforms) > 1 else 0
            xt = p.transforms[k](x_adv, generator)
        xp, _ = pad_to_multiple(xt, multiple)
        leaf = xp.detach().requires_grad_(True)
        for vi, vae in enumerate(vaes):
            for ti, tile in enumerate(tiles):
                obj = p.objective(vae, _slice(leaf, tile), ctxs[vi][ti], generator)
                (obj.float().sum() * scale).backward()
        if leaf.grad is None:  # objective independent of the image (should not happen)
            continue
        (g,) = torch.autograd.grad(xp, d, grad_outputs=leaf.grad)
        total += g
    return total


@torch.no_grad()
def _evaluate(p: Protection, x: torch.Tensor, ctxs, tiles, multiple: int, eval_seed: int):
    gen = torch_generator(eval_seed, x.device)
    xp, _ = pad_to_multiple(x, multiple)
    loss = torch.zeros(x.shape[0], device=x.device)
    for vi, vae in enumerate(p.vaes):
        for ti, tile in enumerate(tiles):
            loss += p.measure(vae, _slice(xp, tile), ctxs[vi][ti], gen).float()
    loss /= len(p.vaes) * len(tiles)
    kl = torch.zeros_like(loss)
    s2 = torch.zeros_like(loss)
    for tile in tiles:
        mean, logvar = p.vaes[0].encode(_slice(xp, tile))
        kl += kl_standard_normal(mean, logvar)
        s2 += torch.exp(logvar.float()).flatten(1).mean(1)
    return loss, kl / len(tiles), s2 / len(tiles)


def run_protection(p: Protection, images: torch.Tensor, *, mask: torch.Tensor | None = None,
                   generator: torch.Generator | None = None, progress: bool = False,
                   callback: StepCallback | None = None) -> ProtectOutput:
    """The engine (see the module docstring); :meth:`Protection.protect` calls it."""
    _check_images(images)
    dev = p.device
    x = images.detach().to(device=dev, dtype=torch.float32).clamp(0.0, 1.0).clone()
    m = _prepare_mask(mask, x)
    if generator is None:
        generator = torch_generator(p.seed, dev)
    multiple = _multiple(p.vaes)
    t0 = time.perf_counter()
    with frozen(p.modules()):
        xp_clean, _ = pad_to_multiple(x, multiple)
        tiles = tile_grid(xp_clean.shape[-2], xp_clean.shape[-1], p.tile_size, p.tile_overlap, multiple)
        measured = p.measure_records
        ctxs = None
        if measured or p.steps > 0:
            with torch.no_grad():
                ctxs = [[p.prepare(vae, _slice(xp_clean, t)) for t in tiles] for vae in p.vaes]
        nan = torch.full((x.shape[0],), math.nan, device=dev)
        loss0, kl0, s20 = _evaluate(p, x, ctxs, tiles, multiple, p.seed + 1) if measured else (nan, nan, nan)
        delta = p.start(x, m, generator)
        it = range(p.steps)
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc=p.name, unit="step", leave=False)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        t_steps = time.perf_counter()
        for t in it:
            g = _gradient(p, x, delta, ctxs, tiles, multiple, generator)
            if not torch.isfinite(g).all():
                raise FloatingPointError(f"{p.name}: non-finite gradient at step {t} (objective overflow?)")
            alpha = pgd.step_size(p.alpha, t, p.steps, p.step_decay, p.decay_floor)
            delta = pgd.pgd_step(x, delta, g, alpha=alpha, eps=p.eps, norm=p.norm, maximize=p.maximize, mask=m)
            if callback is not None:
                now = time.perf_counter()
                callback(StepInfo(method=p.name, step=t + 1, steps=p.steps, tiles=len(tiles), eot_samples=p.eot_samples,
                                  vaes=len(p.vaes), images=int(x.shape[0]), elapsed=now - t0,
                                  step_seconds=(now - t_steps) / (t + 1)))
        x_adv = (x + delta).clamp(0.0, 1.0)
        loss1, kl1, s21 = _evaluate(p, x_adv, ctxs, tiles, multiple, p.seed + 1) if measured else (nan, nan, nan)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    secs = (time.perf_counter() - t0) / x.shape[0]
    diff = x_adv - x
    linf = diff.flatten(1).abs().amax(1)
    l2 = diff.flatten(1).norm(dim=1)
    ps = psnr(x_adv, x)
    records = [
        ProtectRecord(method=p.name, index=i, maximize=p.maximize,
                      loss_before=float(loss0[i]), loss_after=float(loss1[i]),
                      kl_before=float(kl0[i]), kl_after=float(kl1[i]),
                      sigma2_before=float(s20[i]), sigma2_after=float(s21[i]),
                      linf=float(linf[i]), l2=float(l2[i]), psnr=float(ps[i]), seconds=secs)
        for i in range(x.shape[0])
    ]
    out_dtype = images.dtype if images.is_floating_point() else torch.float32
    return ProtectOutput(images=x_adv.to(device=images.device, dtype=out_dtype), records=records,
                         delta=diff.to(device=images.device, dtype=out_dtype))
