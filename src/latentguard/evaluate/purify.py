"""Purifications: what an adversary does to a protected image to strip the protection before editing.

Each purification is a frozen dataclass with ``name`` (reported), ``param`` / ``strength`` (the knob a
plot sweeps) and ``__call__(images, *, generator=None) -> purified`` on ``[N,3,H,W]`` images in ``[0,1]``.
Every one is deterministic given the generator (or needs none); none mutates its input. The image kernels
(JPEG, resize, blur, noise) are those of :mod:`latentguard.ops.transforms`, which protect's EOT draws from too.

* ``jpeg``: JPEG round trip at ``quality`` (PIL, 4:2:0 chroma subsampling, libjpeg's standard tables).
* ``webp``: lossy WebP round trip at ``quality`` (PIL/libwebp, method 4).
* ``resize``: bicubic, antialiased down-scaling by ``scale`` then back up to the input size.
* ``blur``: Gaussian blur with ``sigma`` (kernel ``2*ceil(3 sigma)+1``, reflect padding).
* ``noise``: additive Gaussian noise of std ``std``, clipped to ``[0,1]`` (drawn on the generator's device).
* ``diffpure``: DiffPure-style (Nie et al. 2022): noise the latent to ``t* = strength`` and denoise with the
  target model's own UNet, i.e. its img2img pipeline with the empty prompt and no guidance.
* ``impress``: IMPRESS-style consistency purification (Cao et al. 2023): find ``x`` close to the protected
  image ``x0`` whose VAE reconstruction agrees with itself,

  .. math:: \\min_x \\lVert D(E(x)) - x\\rVert_2^2 + \\lambda\\,\\max\\big(0,\\ d(x, x_0) - b\\big)
            \\quad \\text{s.t. } \\lVert x - x_0\\rVert_\\infty \\le \\epsilon,\\ x\\in[0,1]

  with Adam on ``x``; ``d`` is LPIPS in the paper; here ``1 - SSIM`` (weight-free, labelled ``1-ssim``),
  ``E`` the posterior mean of the target model's VAE.
* ``noisy-upscale``: Hönig et al. 2024: add Gaussian noise, down-scale x4, and upscale with a diffusion
  upscaler (``upscaler = "stabilityai/stable-diffusion-x4-upscaler"`` or a local folder). Without one
  configured or loadable it is reported unavailable.
* ``noisy-upscale-standin``: the CPU stand-in for noisy upscaling when no diffusion upscaler is available
  (the zoo has none): the same noise and x4 down-scale, a bicubic x4 up-scale, then the target's own diffusion
  model regenerates detail (DiffPure at ``t_star``). Labelled as a stand-in everywhere it is reported; an
  upscaler trained for the job hallucinates more detail than this does.
* ``gridpure``: GrIDPure (Zhao et al., "Can Protective Perturbation Safeguard Personal Data from Being Exploited
  by Stable Diffusion?", CVPR 2024): DiffPure applied to overlapping grids, iterated. Each iteration cuts the
  image into overlapping square grids of half its side at a stride of a quarter of its side (the paper's 256 px
  grids at stride 128 on 512 px images: 9 grids), purifies every grid with DiffPure at ``t_star`` (the paper's 100
  of 1000 diffusion steps: 0.1), averages the overlaps, and mixes the result with the image it started from,
  ``x <- (1 - gamma) * merged + gamma * x0`` (``gamma = 0.1``), for ``iterations`` (20) rounds. These are the
  defaults of the official code as we know them (the paper is not in /work/shared/papers, so they were not
  re-checked against it here). The paper's purifier is an unconditional pixel-space 256 px ImageNet diffusion
  model; here it is the target's own latent diffusion model (``zoo:ldm-photo`` for the bundled editor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from latentguard.evaluate.edits import EditUnavailable, Img2Img, ModelCache, Unavailable
from latentguard.models import crop_back, LatentVAE, load_from_hub, ModelLoadError, pad_to_multiple, resolve_spec
from latentguard.ops.metrics import ssim
from latentguard.ops.transforms import gaussian_blur, gaussian_noise, jpeg_pil, resize_roundtrip, webp_pil
from latentguard.core.units import parse_budget


def _check(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be a [N,3,H,W] tensor, got {getattr(images, 'shape', type(images))}")


def _fmt(v: float) -> str:
    return f"{v:g}"


@dataclass(frozen=True)
class NoPurification:
    """The identity (the protected image is edited as is)."""

    name: str = "none"
    param: str = ""
    strength: float = 0.0

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(images)
        return images.clone()


@dataclass(frozen=True)
class _Codec:
    """A lossy codec's round trip at ``quality`` in ``[1, 100]`` (lower = stronger): JPEG and WebP."""

    quality: int = 75
    param: str = "quality"
    prefix: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if not isinstance(self.quality, int) or not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be an int in [1, 100], got {self.quality!r}")

    @property
    def name(self) -> str:
        return f"{self.prefix}-q{self.quality}"

    @property
    def strength(self) -> float:
        return float(self.quality)

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(images)
        return self._encode(images, self.quality)


@dataclass(frozen=True)
class JPEG(_Codec):
    """JPEG compression round trip at ``quality`` in ``[1, 100]`` (lower = stronger)."""

    prefix: ClassVar[str] = "jpeg"
    _encode = staticmethod(jpeg_pil)


@dataclass(frozen=True)
class WebP(_Codec):
    """Lossy WebP round trip at ``quality`` in ``[1, 100]`` (lower = stronger)."""

    prefix: ClassVar[str] = "webp"
    _encode = staticmethod(webp_pil)


@dataclass(frozen=True)
class Resize:
    """Bicubic antialiased down-scaling by ``scale`` in ``(0, 1)`` and back (lower = stronger)."""

    scale: float = 0.5
    param: str = "scale"

    def __post_init__(self) -> None:
        if not 0.0 < float(self.scale) < 1.0:
            raise ValueError(f"scale must be in (0, 1), got {self.scale}")

    @property
    def name(self) -> str:
        return f"resize-{_fmt(self.scale)}"

    @property
    def strength(self) -> float:
        return float(self.scale)

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(images)
        return resize_roundtrip(images.float(), float(self.scale), mode="bicubic").to(images.dtype)


@dataclass(frozen=True)
class GaussianBlur:
    """Gaussian blur of standard deviation ``sigma`` pixels (higher = stronger)."""

    sigma: float = 1.0
    param: str = "sigma"

    def __post_init__(self) -> None:
        if not float(self.sigma) > 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")

    @property
    def name(self) -> str:
        return f"blur-{_fmt(self.sigma)}"

    @property
    def strength(self) -> float:
        return float(self.sigma)

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(images)
        return gaussian_blur(images.float(), float(self.sigma)).clamp(0, 1).to(images.dtype)


@dataclass(frozen=True)
class GaussianNoise:
    """Additive Gaussian noise of standard deviation ``std`` (``[0,1]`` pixel units), clipped (higher = stronger)."""

    std: float = 0.05
    param: str = "std"

    def __post_init__(self) -> None:
        if not float(self.std) > 0:
            raise ValueError(f"std must be > 0, got {self.std}")

    @property
    def name(self) -> str:
        return f"noise-{_fmt(self.std)}"

    @property
    def strength(self) -> float:
        return float(self.std)

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(images)
        return gaussian_noise(images.float(), float(self.std), generator).to(images.dtype)


@dataclass(frozen=True)
class DiffPure:
    """Noise to ``t* = strength`` and denoise with the target's UNet (img2img, empty prompt, guidance 1).

    ``steps`` is the full-trajectory step count (``int(steps * strength)`` are run).
    """

    pipe: Any = field(repr=False, compare=False)
    t_star: float = 0.1
    steps: int = 50
    param: str = "t_star"

    def __post_init__(self) -> None:
        if not 0.0 < float(self.t_star) <= 1.0:
            raise ValueError(f"t_star must be in (0, 1], got {self.t_star}")
        if int(self.steps * self.t_star) < 1:
            raise ValueError(f"steps * t_star must be >= 1, got {self.steps} * {self.t_star}")

    @property
    def name(self) -> str:
        return f"diffpure-{_fmt(self.t_star)}"

    @property
    def strength(self) -> float:
        return float(self.t_star)

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(images)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator)) if generator is not None else 0
        seeds = [seed + i for i in range(len(images))]
        edit = Img2Img(self.pipe, prompt="", strength=float(self.t_star), steps=int(self.steps), guidance=1.0)
        return edit(images, seeds=seeds).to(images.dtype)


@dataclass(frozen=True)
class Impress:
    """IMPRESS-style consistency purification (see the module docstring for the objective).

    Args:
        vae: the target model's VAE.
        eps: L-inf bound around the protected image (``[0,1]`` units).
        steps: Adam iterations.
        lr: Adam learning rate.
        lam: weight of the perceptual hinge.
        bound: the perceptual budget ``b`` on ``1 - SSIM(x, x0)``.
    """

    vae: LatentVAE = field(repr=False, compare=False)
    eps: float = 8 / 255
    steps: int = 50
    lr: float = 0.01
    lam: float = 10.0
    bound: float = 0.05
    param: str = "steps"

    def __post_init__(self) -> None:
        if not 0.0 < float(self.eps) <= 1.0:
            raise ValueError(f"eps must be in (0, 1], got {self.eps}")
        if int(self.steps) < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not float(self.lr) > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if float(self.lam) < 0 or float(self.bound) < 0:
            raise ValueError(f"lam and bound must be >= 0, got {self.lam}, {self.bound}")

    @property
    def name(self) -> str:
        return f"impress-{self.steps}"

    @property
    def strength(self) -> float:
        return float(self.steps)

    def consistency(self, images: torch.Tensor) -> torch.Tensor:
        """Per-image ``mean((D(E(x)) - x)^2)`` (the quantity IMPRESS drives down), no gradient."""
        with torch.no_grad():
            x, size = pad_to_multiple(images.to(self.vae.device, self.vae.dtype), self.vae.info.downsample_factor)
            rec = crop_back(self.vae.decode(self.vae.encode(x)[0]), size)
            return (rec.float() - images.to(rec.device).float()).pow(2).flatten(1).mean(1).cpu()

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(images)
        dev = self.vae.device
        x0 = images.detach().to(dev, torch.float32)
        f = self.vae.info.downsample_factor
        was_training = self.vae.model.training
        self.vae.model.eval()
        delta = torch.zeros_like(x0, requires_grad=True)
        opt = torch.optim.Adam([delta], lr=float(self.lr))
        win = min(11, x0.shape[-1], x0.shape[-2])
        win -= 1 - win % 2
        try:
            with torch.enable_grad():
                for _ in range(int(self.steps)):
                    x = (x0 + delta).clamp(0, 1)
                    xp, size = pad_to_multiple(x, f)
                    rec = crop_back(self.vae.decode(self.vae.encode(xp.to(self.vae.dtype))[0]), size).float()
                    cons = (rec - x).pow(2).flatten(1).mean(1)
                    perc = F.relu((1 - ssim(x, x0, kernel_size=win)).float() - float(self.bound))
                    loss = (cons + float(self.lam) * perc).sum()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    with torch.no_grad():
                        delta.clamp_(-float(self.eps), float(self.eps))
                        delta.copy_((x0 + delta).clamp(0, 1) - x0)
        finally:
            self.vae.model.train(was_training)
        return (x0 + delta.detach()).clamp(0, 1).to(images.device, images.dtype)


def _noisy_shrink(images: torch.Tensor, std: float, factor: int, generator: torch.Generator | None) -> torch.Tensor:
    """Noisy upscaling's first half, shared by the real one and its stand-in: Gaussian noise ``std`` (none at 0),
    then an antialiased bicubic x``factor`` down-scale; float32."""
    h, w = images.shape[-2:]
    x = gaussian_noise(images.float(), float(std), generator)
    return F.interpolate(x, size=(max(1, h // factor), max(1, w // factor)), mode="bicubic", antialias=True,
                         align_corners=False)


@dataclass(frozen=True)
class NoisyUpscale:
    """Noisy upscaling (Hönig et al. 2024): Gaussian noise ``std``, x4 down-scale, diffusion x4 upscaler."""

    pipe: Any = field(repr=False, compare=False)
    std: float = 0.05
    steps: int = 20
    noise_level: int = 20
    param: str = "std"

    @property
    def name(self) -> str:
        return f"noisy-upscale-{_fmt(self.std)}"

    @property
    def strength(self) -> float:
        return float(self.std)

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(images)
        h, w = images.shape[-2:]
        GaussianNoise(self.std)  # validates std (> 0), as before
        small = _noisy_shrink(images, self.std, 4, generator)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator)) if generator is not None else 0
        gen = torch.Generator(device=self.pipe.device).manual_seed(seed)
        out = self.pipe(prompt=[""] * len(images), image=small.clamp(0, 1).to(self.pipe.device) * 2 - 1,
                        num_inference_steps=int(self.steps), noise_level=int(self.noise_level), generator=gen,
                        output_type="pt").images
        out = F.interpolate(out.float().cpu(), size=(h, w), mode="bicubic", antialias=True)
        return out.clamp(0, 1).to(images.dtype)


@dataclass(frozen=True)
class NoisyUpscaleStandIn:
    """CPU stand-in for noisy upscaling: noise ``std``, x``factor`` down, bicubic up, DiffPure at ``t_star``.

    ``pipe`` is the target's img2img pipeline (the bundled photo LDM for ``zoo:ldm-photo``); see the module
    docstring for how it differs from Hönig et al.'s diffusion upscaler.
    """

    pipe: Any = field(repr=False, compare=False)
    std: float = 0.05
    factor: int = 4
    t_star: float = 0.2
    steps: int = 50
    param: str = "std"

    def __post_init__(self) -> None:
        if not float(self.std) >= 0:
            raise ValueError(f"std must be >= 0, got {self.std}")
        if not isinstance(self.factor, int) or self.factor < 1:
            raise ValueError(f"factor must be an int >= 1, got {self.factor!r}")
        DiffPure(self.pipe, t_star=self.t_star, steps=self.steps)  # validates t_star and steps

    @property
    def name(self) -> str:
        return f"noisy-upscale-standin-{_fmt(self.std)}"

    @property
    def strength(self) -> float:
        return float(self.std)

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(images)
        h, w = images.shape[-2:]
        small = _noisy_shrink(images, self.std, self.factor, generator)
        up = F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
        return DiffPure(self.pipe, t_star=self.t_star, steps=self.steps)(up, generator=generator).to(images.dtype)


def grid_origins(side: int, grid: int, stride: int) -> list[int]:
    """Top (or left) coordinates of the grids along one axis: every ``stride``, the last one flush with the edge."""
    if grid >= side:
        return [0]
    out = list(range(0, side - grid + 1, stride))
    if out[-1] != side - grid:
        out.append(side - grid)
    return out


@dataclass(frozen=True)
class GrIDPure:
    """GrIDPure (Zhao et al. 2024): iterated DiffPure on overlapping grids (see the module docstring).

    Args:
        pipe: the target's img2img pipeline (the DiffPure model).
        t_star: DiffPure strength per grid (paper: 100 of 1000 steps, 0.1).
        iterations: rounds (paper: 20).
        gamma: weight of the input image mixed back after each round (paper: 0.1).
        grid: grid side in pixels (``None``: half the shorter image side; the paper's 256 on 512 px images).
        stride: grid stride (``None``: half the grid; the paper's 128).
        steps: DiffPure's full-trajectory step count (``int(steps * t_star)`` are run).
    """

    pipe: Any = field(repr=False, compare=False)
    t_star: float = 0.1
    iterations: int = 20
    gamma: float = 0.1
    grid: int | None = None
    stride: int | None = None
    steps: int = 50
    param: str = "iterations"

    def __post_init__(self) -> None:
        DiffPure(self.pipe, t_star=self.t_star, steps=self.steps)  # validates t_star and steps
        if not isinstance(self.iterations, int) or self.iterations < 1:
            raise ValueError(f"iterations must be an int >= 1, got {self.iterations!r}")
        if not 0.0 <= float(self.gamma) < 1.0:
            raise ValueError(f"gamma must be in [0, 1), got {self.gamma}")
        for k in ("grid", "stride"):
            v = getattr(self, k)
            if v is not None and (not isinstance(v, int) or v < 8):
                raise ValueError(f"{k} must be None or an int >= 8, got {v!r}")

    @property
    def name(self) -> str:
        return "gridpure" if (self.t_star, self.iterations) == (0.1, 20) else \
            f"gridpure-{_fmt(self.t_star)}x{self.iterations}"

    @property
    def strength(self) -> float:
        return float(self.iterations)

    def _grids(self, h: int, w: int) -> tuple[int, list[tuple[int, int]]]:
        g = min(self.grid or max(8, min(h, w) // 2), h, w)
        s = self.stride or max(1, g // 2)
        return g, [(t, left) for t in grid_origins(h, g, s) for left in grid_origins(w, g, s)]

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(images)
        n, _, h, w = images.shape
        x0 = images.float()
        g, boxes = self._grids(h, w)
        dp = DiffPure(self.pipe, t_star=self.t_star, steps=self.steps)
        x = x0
        for _ in range(self.iterations):
            patches = torch.cat([x[..., t:t + g, left:left + g] for t, left in boxes])  # [len(boxes) * n, 3, g, g]
            pure = dp(patches, generator=generator).float().cpu()
            acc = torch.zeros_like(x0)
            cnt = torch.zeros((1, 1, h, w))
            for k, (t, left) in enumerate(boxes):
                acc[..., t:t + g, left:left + g] += pure[k * n:(k + 1) * n]
                cnt[..., t:t + g, left:left + g] += 1
            merged = acc / cnt
            x = ((1 - float(self.gamma)) * merged + float(self.gamma) * x0).clamp(0, 1)
        return x.to(images.dtype)


# ----------------------------------------------------------------------------------- from a config
PURIFY_KINDS = ("none", "jpeg", "webp", "resize", "blur", "noise", "diffpure", "impress", "noisy-upscale",
                "noisy-upscale-standin", "gridpure")
_SWEEP = {"jpeg": "quality", "webp": "quality", "resize": "scale", "blur": "sigma", "noise": "std",
          "diffpure": "t_star", "impress": "steps", "noisy-upscale": "std", "noisy-upscale-standin": "std",
          "gridpure": "iterations"}


def _load_upscaler(spec: str, device: Any) -> Any:
    from diffusers import StableDiffusionUpscalePipeline

    kind, where = resolve_spec(spec)
    if kind == "zoo":
        raise ModelLoadError(f"{spec} is not an upscaler; the zoo has none")

    def load(local_only: bool):
        return StableDiffusionUpscalePipeline.from_pretrained(where, use_safetensors=True, local_files_only=local_only)

    try:
        pipe = load_from_hub(where, load) if kind == "hub" else load(True)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"could not load the upscaler {spec!r} ({type(exc).__name__}: {exc})") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def build_purifications(spec: dict, target: str, models: ModelCache) -> list[Any]:
    """Expand one ``[[purifications]]`` table into objects (one per swept value) for ``target``.

    The swept parameter (``quality`` for jpeg, ``scale``, ``sigma``, ``std``, ``t_star``, ``steps`` for
    impress) may be a list. A purification that cannot run here comes back as :class:`Unavailable`.
    """
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind not in PURIFY_KINDS:
        raise ValueError(f"purification kind must be one of {PURIFY_KINDS}, got {kind!r}")
    if kind == "none":
        if spec:
            raise ValueError(f"purification 'none' takes no parameters, got {sorted(spec)}")
        return [NoPurification()]
    sweep = _SWEEP[kind]
    values = spec.pop(sweep, None)
    values = values if isinstance(values, list) else ([values] if values is not None else [None])
    out: list[Any] = []
    for v in values:
        kw = dict(spec)
        if "eps" in kw:
            kw["eps"] = parse_budget(kw["eps"])[0]
        if v is not None:
            kw[sweep] = v
        if kind == "jpeg":
            out.append(JPEG(**kw))
        elif kind == "webp":
            out.append(WebP(**kw))
        elif kind == "resize":
            out.append(Resize(**kw))
        elif kind == "blur":
            out.append(GaussianBlur(**kw))
        elif kind == "noise":
            out.append(GaussianNoise(**kw))
        elif kind == "impress":
            out.append(Impress(models.vae(target), **kw))
        elif kind in ("diffpure", "gridpure", "noisy-upscale-standin"):
            cls = {"diffpure": DiffPure, "gridpure": GrIDPure, "noisy-upscale-standin": NoisyUpscaleStandIn}[kind]
            try:
                pipe = models.pipeline(target, "img2img")
            except EditUnavailable as exc:
                out.append(Unavailable(f"{kind}-{_fmt(v) if v is not None else 'default'}", str(exc), kw))
                continue
            out.append(cls(pipe, **kw))
        else:  # noisy-upscale
            up = kw.pop("upscaler", None)
            label = f"noisy-upscale-{_fmt(v if v is not None else 0.05)}"
            if not up:
                out.append(Unavailable(label, "no upscaler configured (set upscaler = "
                                       "'stabilityai/stable-diffusion-x4-upscaler' or a local folder); "
                                       "the zoo has no upscaler", kw))
                continue
            try:
                pipe = _upscaler(models, up)
            except Exception as exc:  # noqa: BLE001
                out.append(Unavailable(label, str(exc), kw))
                continue
            out.append(NoisyUpscale(pipe, **kw))
    return out


def _upscaler(models: ModelCache, spec: str) -> Any:
    cache = models.__dict__.setdefault("_upscalers", {})
    if spec not in cache:
        cache[spec] = _load_upscaler(spec, models.device)
    return cache[spec]
