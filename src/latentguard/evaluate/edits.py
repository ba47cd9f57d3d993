"""Edits an adversary applies to an image (clean or protected): VAE reconstruction, img2img, inpainting.

Each edit is a frozen dataclass with a ``name`` (reported in tables) and
``__call__(images, *, captions=None, seeds=None) -> edited`` on ``[N,3,H,W]`` images in ``[0,1]``.
``seeds`` gives one integer per image: the edit's randomness (sampled latent, diffusion noise) is drawn
from a generator seeded per image, so an image's edit does not depend on its batch, and the clean and the
protected image of one photo get the *same* noise (a paired comparison, as the papers evaluate).

Prompts may contain ``{caption}``, replaced by the image's caption. PCA (arXiv 2408.10901) evaluates SD
img2img under the prompts in :data:`PCA_PROMPTS`.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from latentguard.models import crop_back, LatentVAE, load_pipeline, load_vae, ModelLoadError, pad_to_multiple
from latentguard.ops.runtime import resolve_device

PCA_PROMPTS: tuple[str, ...] = (
    "",
    "{caption}",
    "add some snow",
    "apply sunset lighting",
    "make it like a watercolor painting",
)

# Captions of the bundled sample photos (latentguard.samples.sample_paths()), by file stem.
SAMPLE_CAPTIONS: dict[str, str] = {
    "astronaut": "a portrait photo of an astronaut in a white space suit in front of a flag",
    "chelsea": "a photo of a tabby cat",
    "coffee": "a photo of a cup of coffee on a saucer",
    "hubble_deep_field": "a telescope image of distant galaxies in deep space",
    "immunohistochemistry": "a microscope image of stained tissue",
    "motorcycle_left": "a photo of a motorcycle",
    "retina": "a medical photo of a human retina",
    "rocket": "a photo of a rocket on a launch pad",
}


def caption_for(path_or_name: str | Path) -> str:
    """The caption of an image: the bundled caption for a sample photo, else ``"a photo of <file stem>"``."""
    stem = Path(str(path_or_name)).stem
    if stem in SAMPLE_CAPTIONS:
        return SAMPLE_CAPTIONS[stem]
    words = re.sub(r"[_\-.]+", " ", stem).strip()
    return f"a photo of {words}" if words else "a photo"


def image_seed(seed: int, image_id: str) -> int:
    """A per-image seed, stable across runs and batchings: ``(seed * 1000003 + crc32(image_id)) mod 2^31``."""
    return (int(seed) * 1_000_003 + zlib.crc32(image_id.encode())) % (2**31)


def _generators(seeds: Sequence[int] | None, n: int, device: torch.device | None = None) -> list[torch.Generator]:
    """One CPU generator per image: the noise is drawn on the CPU and moved, so an edit draws the same noise on
    every device (a CUDA generator would give other numbers for the same seed)."""
    if seeds is None:
        seeds = list(range(n))
    if len(seeds) != n:
        raise ValueError(f"need one seed per image, got {len(seeds)} for {n} images")
    return [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be a [N,3,H,W] tensor, got {getattr(images, 'shape', type(images))}")


def _prompts(template: str, captions: Sequence[str] | None, n: int) -> list[str]:
    if "{caption}" in template:
        if captions is None or len(captions) != n:
            raise ValueError(f"prompt {template!r} needs one caption per image")
        return [template.replace("{caption}", c) for c in captions]
    return [template] * n


def prompt_label(template: str) -> str:
    """A short, file-safe label for a prompt template (``""`` -> ``empty``, ``{caption}`` -> ``caption``)."""
    if template == "":
        return "empty"
    if template == "{caption}":
        return "caption"
    return re.sub(r"[^a-z0-9]+", "-", template.lower()).strip("-")[:40] or "prompt"


class EditUnavailable(RuntimeError):
    """This edit cannot run with this model (e.g. no inpainting pipeline); the message says why."""


# ------------------------------------------------------------------------------------------------ edits
@dataclass(frozen=True)
class VAEReconstruction:
    """``D(E(x))`` with the posterior mean (``sample=False``) or a sampled latent ``mean + sigma * n``.

    The first stage of every LDM edit. On narrow posteriors (the zoo VAEs, SD's) the two agree to < 0.01 dB,
    before and after PCA (PCA+ shrinks sigma^2; its damage is a shift of the mean, docs/protect.md).
    """

    vae: LatentVAE = field(repr=False, compare=False)
    sample: bool = False

    @property
    def name(self) -> str:
        return "recon-sample" if self.sample else "recon-mean"

    @property
    def params(self) -> dict[str, Any]:
        return {"sample": self.sample}

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, *, captions: Sequence[str] | None = None,
                 seeds: Sequence[int] | None = None) -> torch.Tensor:
        _check_images(images)
        dev = self.vae.device
        x, size = pad_to_multiple(images.to(dev, self.vae.dtype), self.vae.info.downsample_factor)
        mean, logvar = self.vae.encode(x)
        if self.sample:
            gens = _generators(seeds, len(images))
            noise = torch.cat([torch.randn((1, *mean.shape[1:]), generator=g) for g in gens])
            z = mean + torch.exp(0.5 * logvar) * noise.to(mean.device, mean.dtype)
        else:
            z = mean
        return crop_back(self.vae.decode(z).clamp(0, 1), size).float().cpu()


def _pipe_multiple(pipe: Any) -> int:
    return int(getattr(pipe, "vae_scale_factor", 8))


@dataclass(frozen=True)
class Img2Img:
    """Diffusers img2img (SDEdit): noise the image's latent to ``strength`` and denoise with the UNet.

    Args:
        pipe: a diffusers img2img pipeline (``load_pipeline(spec, kind="img2img")``).
        prompt: prompt template (``{caption}`` is replaced by the image's caption).
        strength: fraction of the diffusion trajectory re-generated, in ``(0, 1]``.
        steps: number of inference steps of the full trajectory (``int(steps * strength)`` are run).
        guidance: classifier-free guidance scale (1 disables guidance).
    """

    pipe: Any = field(repr=False, compare=False)
    prompt: str = ""
    strength: float = 0.5
    steps: int = 20
    guidance: float = 7.5
    negative_prompt: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 < float(self.strength) <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {self.strength}")
        if int(self.steps) < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if float(self.guidance) < 0:
            raise ValueError(f"guidance must be >= 0, got {self.guidance}")
        if int(self.steps * self.strength) < 1:
            raise ValueError(f"steps * strength must be >= 1 (got {self.steps} * {self.strength})")

    @property
    def name(self) -> str:
        return f"img2img[{prompt_label(self.prompt)}]"

    @property
    def params(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "strength": self.strength, "steps": self.steps, "guidance": self.guidance}

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, *, captions: Sequence[str] | None = None,
                 seeds: Sequence[int] | None = None) -> torch.Tensor:
        _check_images(images)
        n = len(images)
        dev = self.pipe.device
        x, size = pad_to_multiple(images.float(), _pipe_multiple(self.pipe))
        kwargs: dict[str, Any] = {}
        if self.negative_prompt is not None:
            kwargs["negative_prompt"] = [self.negative_prompt] * n
        out = self.pipe(
            prompt=_prompts(self.prompt, captions, n), image=x.to(dev, self.pipe.unet.dtype), strength=float(self.strength),
            num_inference_steps=int(self.steps), guidance_scale=float(self.guidance),
            generator=_generators(seeds, n, dev), output_type="pt", **kwargs,
        ).images
        return crop_back(out.float().clamp(0, 1), size).cpu()


def center_mask(shape: tuple[int, ...], fraction: float = 0.5) -> torch.Tensor:
    """A ``[N,1,H,W]`` mask (1 = repaint) of a centred square covering ``fraction`` of each side."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"mask fraction must be in (0, 1], got {fraction}")
    n, _, h, w = shape
    m = torch.zeros(n, 1, h, w)
    mh, mw = max(1, round(h * fraction)), max(1, round(w * fraction))
    top, left = (h - mh) // 2, (w - mw) // 2
    m[..., top:top + mh, left:left + mw] = 1.0
    return m


@dataclass(frozen=True)
class Inpaint:
    """Diffusers inpainting of a centred square (``mask_fraction`` of each side) under a prompt.

    Needs an inpainting pipeline (``load_pipeline(spec, kind="inpaint")``); the zoo has none, so the runner
    records this edit as unavailable there.
    """

    pipe: Any = field(repr=False, compare=False)
    prompt: str = ""
    mask_fraction: float = 0.5
    strength: float = 1.0
    steps: int = 20
    guidance: float = 7.5

    def __post_init__(self) -> None:
        if not 0.0 < float(self.mask_fraction) <= 1.0:
            raise ValueError(f"mask_fraction must be in (0, 1], got {self.mask_fraction}")
        if not 0.0 < float(self.strength) <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {self.strength}")
        if int(self.steps) < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")

    @property
    def name(self) -> str:
        return f"inpaint[{prompt_label(self.prompt)}]"

    @property
    def params(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "mask_fraction": self.mask_fraction, "strength": self.strength,
                "steps": self.steps, "guidance": self.guidance}

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, *, captions: Sequence[str] | None = None,
                 seeds: Sequence[int] | None = None) -> torch.Tensor:
        _check_images(images)
        n = len(images)
        dev = self.pipe.device
        x, size = pad_to_multiple(images.float(), _pipe_multiple(self.pipe))
        mask = center_mask(tuple(x.shape), self.mask_fraction)
        out = self.pipe(
            prompt=_prompts(self.prompt, captions, n), image=x.to(dev), mask_image=mask.to(dev),
            height=x.shape[-2], width=x.shape[-1], strength=float(self.strength),
            num_inference_steps=int(self.steps), guidance_scale=float(self.guidance),
            generator=_generators(seeds, n, dev), output_type="pt",
        ).images
        return crop_back(out.float().clamp(0, 1), size).cpu()


@dataclass(frozen=True)
class Unavailable:
    """A declared edit or purification that cannot run here; reported with ``reason``, never silently dropped."""

    name: str
    reason: str
    params: dict = field(default_factory=dict)

    def __call__(self, images: torch.Tensor, **_: Any) -> torch.Tensor:
        raise EditUnavailable(f"{self.name} is unavailable: {self.reason}")


# ----------------------------------------------------------------------------------- from a config
EDIT_KINDS = ("recon", "img2img", "inpaint")


_TARGET = re.compile(r"^(?P<model>.+?)\[vae=(?P<vae>[^\]]+)\]$")


def parse_target(spec: str) -> tuple[str, str | None]:
    """``"zoo:t2i[vae=zoo:vae-a-srl]"`` -> ``("zoo:t2i", "zoo:vae-a-srl")``; ``"zoo:t2i"`` -> ``("zoo:t2i", None)``.

    The bracket form runs a pipeline with another VAE swapped in (e.g. a hardened one).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"target must be a non-empty model spec, got {spec!r}")
    m = _TARGET.match(spec.strip())
    return (m["model"], m["vae"]) if m else (spec.strip(), None)


def target_spec(value: Any) -> str:
    """A config target (a spec string, or a table ``{model = ..., vae = ...}``) as its canonical string."""
    if isinstance(value, dict):
        extra = set(value) - {"model", "vae"}
        if "model" not in value or extra:
            raise ValueError(f"a target table needs `model` (and optionally `vae`), got {sorted(value)}")
        return f"{value['model']}[vae={value['vae']}]" if value.get("vae") else str(value["model"])
    parse_target(value)
    return value.strip()


class ModelCache:
    """Loads each target model once: its VAE (``load_vae``) and its pipelines (``load_pipeline``).

    Targets are spec strings; ``MODEL[vae=VAE]`` uses ``VAE`` for the reconstruction and inside the pipeline.
    """

    def __init__(self, device: torch.device | str = "cpu", dtype: str | torch.dtype | None = None) -> None:
        self.device, self.dtype = resolve_device(device), dtype
        self._vaes: dict[str, LatentVAE] = {}
        self._pipes: dict[tuple[str, str], Any] = {}
        self._errors: dict[tuple[str, str], str] = {}

    def vae(self, spec: str) -> LatentVAE:
        model, vae = parse_target(spec)
        key = vae or model
        if key not in self._vaes:
            self._vaes[key] = load_vae(key, device=self.device, dtype=self.dtype)
        return self._vaes[key]

    def pipeline(self, spec: str, kind: str) -> Any:
        """The pipeline, or raise :class:`EditUnavailable` with the loader's reason (remembered)."""
        key = (spec, kind)
        if key in self._errors:
            raise EditUnavailable(self._errors[key])
        if key not in self._pipes:
            try:
                vae = self.vae(spec)
            except Exception:  # noqa: BLE001 - the pipeline loader reports the problem itself
                vae = None
            try:
                self._pipes[key] = load_pipeline(parse_target(spec)[0], kind=kind, device=self.device,
                                                 dtype=self.dtype, vae=vae)
            except (ModelLoadError, ValueError, OSError) as exc:
                self._errors[key] = f"{spec} has no {kind} pipeline ({exc})"
                raise EditUnavailable(self._errors[key]) from exc
        return self._pipes[key]


def build_edits(spec: dict, target: str, models: ModelCache) -> list[Any]:
    """Expand one ``[[edits]]`` config table into edit objects for ``target`` (one per prompt).

    ``{"kind": "recon", "sample": [false, true]}``, ``{"kind": "img2img", "prompts": "pca" | [...],
    "strength": 0.5, "steps": 20, "guidance": 7.5}``, ``{"kind": "inpaint", "prompts": [...],
    "mask_fraction": 0.5}``. An edit the model cannot run comes back as :class:`Unavailable`.
    """
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind not in EDIT_KINDS:
        raise ValueError(f"edit kind must be one of {EDIT_KINDS}, got {kind!r}")
    if kind == "recon":
        samples = spec.pop("sample", False)
        _no_extra(spec, "recon")
        samples = samples if isinstance(samples, list) else [samples]
        vae = models.vae(target)
        return [VAEReconstruction(vae, bool(s)) for s in samples]
    prompts = spec.pop("prompts", "pca")
    if prompts == "pca":
        prompts = list(PCA_PROMPTS)
    if isinstance(prompts, str):
        prompts = [prompts]
    cls = Img2Img if kind == "img2img" else Inpaint
    allowed = {"strength", "steps", "guidance"} | ({"negative_prompt"} if kind == "img2img" else {"mask_fraction"})
    extra = set(spec) - allowed
    if extra:
        raise ValueError(f"unknown {kind} edit parameter(s) {sorted(extra)}; allowed: {sorted(allowed | {'prompts'})}")
    try:
        pipe = models.pipeline(target, "img2img" if kind == "img2img" else "inpaint")
    except EditUnavailable as exc:
        return [Unavailable(f"{kind}[{prompt_label(p)}]", str(exc), {"prompt": p, **spec}) for p in prompts]
    return [cls(pipe, prompt=p, **spec) for p in prompts]


def _no_extra(spec: dict, kind: str) -> None:
    if spec:
        raise ValueError(f"unknown {kind} edit parameter(s) {sorted(spec)}")
