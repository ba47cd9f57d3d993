"""Load a VAE or a diffusion pipeline from a hub id, a local diffusers folder, or ``zoo:NAME``.

* ``zoo:NAME``: the bundled, offline model family (``latentguard zoo list``).
* a local folder: a diffusers ``AutoencoderKL`` folder (``config.json`` + weights), or a pipeline folder
  whose ``vae/`` subfolder holds one.
* a hub id (``stabilityai/sd-vae-ft-mse``, ``stable-diffusion-v1-5/stable-diffusion-v1-5`` with its
  ``vae`` subfolder, SD 2.x, SDXL): loaded through diffusers from the local Hugging Face cache or the
  network. Before diffusers is asked, one probe (:func:`probe_hub`, a single HEAD request with a short timeout)
  checks that the hub answers and knows the id: an unreachable hub falls back to the local cache, and fails at
  once (no minutes of retries) with a message naming ``HF_HUB_OFFLINE=1`` and what to download; an id the hub
  does not know fails at once too. With ``HF_HUB_OFFLINE=1`` nothing is probed: only the cache is read.

Weights load from safetensors only; a pickle checkpoint (``.bin``/``.ckpt``/``.pt``) is refused unless
``allow_pickle=True``, and then it is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from latentguard.ops.runtime import resolve_device, resolve_dtype
from latentguard.models import registry
from latentguard.models.errors import ModelLoadError, UnsafeWeightsError
from latentguard.models.hub import HUB_ID as _HUB_ID
from latentguard.models.hub import load_from_hub
from latentguard.models.text import load_text_tower
from latentguard.models.vae import LatentVAE

PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl")


def _check_weights(folder: Path, allow_pickle: bool) -> bool:
    """Return True when ``folder`` has safetensors weights; raise when it only has pickles and that was not allowed."""
    st = list(folder.glob("*.safetensors"))
    if st:
        return True
    pk = [p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if pk and not allow_pickle:
        raise UnsafeWeightsError(
            f"{folder} holds only pickle weights ({pk[0].name}); pickles can run code when loaded. "
            "Convert them to safetensors, or pass --allow-pickle (allow_pickle=True) to load with weights_only=True"
        )
    if not pk:
        raise ModelLoadError(f"{folder} has no model weights (*.safetensors)")
    return False


def _load_autoencoder_folder(folder: Path, allow_pickle: bool, dtype: torch.dtype):
    from diffusers import AutoencoderKL

    if not (folder / "config.json").exists():
        raise ModelLoadError(f"{folder} is not a diffusers AutoencoderKL folder (no config.json)")
    if _check_weights(folder, allow_pickle):
        return AutoencoderKL.from_pretrained(str(folder), torch_dtype=dtype, use_safetensors=True)
    # explicit opt-in pickle path: build from config, read the state dict with weights_only=True
    model = AutoencoderKL.from_config(AutoencoderKL.load_config(str(folder)))
    pk = next(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    state = torch.load(pk, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing:
        raise ModelLoadError(f"{pk} does not match the AutoencoderKL config: {len(missing)} missing keys, e.g. {missing[:3]}")
    return model.to(dtype)


def resolve_spec(spec: str) -> tuple[str, str]:
    """Classify a spec as ('zoo', name) | ('local', path) | ('hub', id); raise on anything else."""
    if not isinstance(spec, str) or not spec.strip():
        raise ModelLoadError(f"model spec must be a non-empty string, got {spec!r}")
    if spec.startswith(registry.ZOO_PREFIX):
        return "zoo", registry.get_entry(spec).name
    p = Path(spec).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ModelLoadError(
                f"{spec} is a file; pass the diffusers folder that contains it (config.json + *.safetensors)"
            )
        return "local", str(p)
    looks_like_path = spec.startswith((".", "/", "~")) or spec.count("/") > 1 or "\\" in spec
    if looks_like_path:
        raise ModelLoadError(f"model folder {spec!r} does not exist")
    if _HUB_ID.match(spec):
        return "hub", spec
    raise ModelLoadError(f"{spec!r} is neither zoo:NAME, an existing folder, nor a hub id like owner/name")


def load_vae(
    spec: str,
    *,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    subfolder: str | None = None,
    allow_pickle: bool = False,
) -> LatentVAE:
    """Load a KL-VAE and wrap it as a :class:`LatentVAE` (eval mode, parameters frozen).

    Args:
        spec: ``zoo:NAME``, a local diffusers folder (a VAE folder or a pipeline folder with ``vae/``),
            or a hub id. For pipeline hub ids (SD 1.x/2.x/XL) the ``vae`` subfolder is used automatically.
        device: ``auto|cpu|cuda[:N]``.
        dtype: ``float32`` (default), ``float16``, ``bfloat16``.
        subfolder: override the subfolder for hub ids.
        allow_pickle: permit a pickle checkpoint (read with ``weights_only=True``).
    """
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    kind, where = resolve_spec(spec)
    if kind == "zoo":
        entry = registry.get_entry(where)
        if entry.kind != "vae":
            if entry.vae is None:
                raise ModelLoadError(f"zoo:{entry.name} is a {entry.kind} model and has no VAE")
            where = entry.vae
        model = _load_autoencoder_folder(registry.model_dir(where), allow_pickle, dt)
    elif kind == "local":
        folder = Path(where)
        if subfolder:
            folder = folder / subfolder
        elif not (folder / "config.json").exists() and (folder / "vae").is_dir():
            folder = folder / "vae"
        model = _load_autoencoder_folder(folder, allow_pickle, dt)
    else:
        from diffusers import AutoencoderKL

        def load(local_only: bool):
            kw = dict(torch_dtype=dt, use_safetensors=True, local_files_only=local_only)
            if subfolder is not None:
                return AutoencoderKL.from_pretrained(where, subfolder=subfolder, **kw)
            try:
                return AutoencoderKL.from_pretrained(where, **kw)
            except (OSError, EnvironmentError):  # a pipeline repo: its VAE is in vae/
                return AutoencoderKL.from_pretrained(where, subfolder="vae", **kw)

        model = load_from_hub(where, load)
    model.requires_grad_(False).eval().to(dev)
    return LatentVAE(model, spec=spec)


def load_pipeline(
    spec: str,
    *,
    kind: str = "img2img",
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    vae: LatentVAE | None = None,
):
    """Load a diffusers Stable-Diffusion-style pipeline (``text2img`` | ``img2img`` | ``inpaint``).

    ``zoo:t2i``, ``zoo:t2i-members`` and ``zoo:ldm-photo`` are assembled from the bundled UNet + scheduler, the
    bundled VAE they were trained with, and the frozen MiniLM text tower. ``zoo:ldm-photo`` is unconditional (call
    it with ``prompt=""``) and also runs as ``kind="inpaint"``: its UNet has 4 input channels, so diffusers'
    inpainting pipeline re-imposes the known region's noised latents at every step (its legacy 4-channel mode)
    instead of reading a mask channel. ``vae`` swaps in another (e.g. hardened) VAE.
    Safety checkers are disabled (the audits need raw outputs).
    """
    from diffusers import (
        AutoPipelineForImage2Image,
        AutoPipelineForInpainting,
        AutoPipelineForText2Image,
        DDIMScheduler,
        StableDiffusionImg2ImgPipeline,
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )

    classes = {"text2img": StableDiffusionPipeline, "img2img": StableDiffusionImg2ImgPipeline,
               "inpaint": StableDiffusionInpaintPipeline}
    if kind not in classes:
        raise ValueError(f"kind must be one of {sorted(classes)}, got {kind!r}")
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    where_kind, where = resolve_spec(spec)
    if where_kind == "zoo":
        entry = registry.get_entry(where)
        if entry.kind not in registry.PIPELINE_KINDS:
            raise ModelLoadError(f"zoo:{entry.name} is a {entry.kind} model, not a diffusion pipeline")
        if kind == "inpaint" and entry.kind != "ldm":
            raise ModelLoadError(f"zoo:{entry.name} has no inpainting UNet; use kind='img2img' or a real SD inpainting model")
        folder = registry.model_dir(entry.name)
        unet = UNet2DConditionModel.from_pretrained(str(folder / "unet"), torch_dtype=dt, use_safetensors=True)
        scheduler = DDIMScheduler.from_pretrained(str(folder / "scheduler"))
        tok, text = load_text_tower("cpu")
        vae_model = vae.model if vae is not None else load_vae(f"zoo:{entry.vae}", dtype=dt).model
        pipe = classes[kind](vae=vae_model, text_encoder=text, tokenizer=tok, unet=unet, scheduler=scheduler,
                             safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    else:
        auto = {"text2img": AutoPipelineForText2Image, "img2img": AutoPipelineForImage2Image,
                "inpaint": AutoPipelineForInpainting}[kind]
        kwargs = dict(torch_dtype=dt, use_safetensors=True, safety_checker=None, requires_safety_checker=False)
        if vae is not None:
            kwargs["vae"] = vae.model
        if where_kind == "hub":
            pipe = load_from_hub(where, lambda local_only: auto.from_pretrained(where, local_files_only=local_only,
                                                                              **kwargs))
        else:
            try:
                if any(Path(where).rglob("*.bin")) and not any(Path(where).rglob("*.safetensors")):
                    raise UnsafeWeightsError(f"{where} holds only pickle weights; convert them to safetensors")
                pipe = auto.from_pretrained(where, **kwargs)
            except ModelLoadError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise ModelLoadError(f"could not load a diffusers pipeline from {where}: {exc}") from exc
    pipe = pipe.to(dev)
    pipe.set_progress_bar_config(disable=True)
    for comp in ("unet", "vae", "text_encoder"):
        m = getattr(pipe, comp, None)
        if m is not None:
            m.requires_grad_(False)
    return pipe


def load_embedder(spec: str = "zoo:embed", *, device: str | torch.device = "cpu"):
    """Load an image-text embedder: ``zoo:embed``, a folder saved by :class:`ZooEmbedder`, or
    ``clip:<folder or hub id>`` (a transformers CLIPModel; its weights must be local when offline)."""
    # deferred: models.embedders imports diffusers (ZooEmbedder is a ModelMixin) at its top
    from latentguard.models.embedders import ClipEmbedder, ZooEmbedder

    if spec.startswith("clip:"):
        return ClipEmbedder(spec[len("clip:"):], device=resolve_device(device))
    kind, where = resolve_spec(spec)
    if kind == "zoo":
        folder = registry.model_dir(where)
    elif kind == "local":
        folder = Path(where)
    else:
        raise ModelLoadError(f"hub embedders are not supported yet ({spec}); pass zoo:embed or a local folder")
    return ZooEmbedder.from_pretrained(folder, device=resolve_device(device))


def load_protector(spec: str = "zoo:protector-a", *, device: str | torch.device = "cpu"):
    """Load a feed-forward protector (:class:`~latentguard.models.protector.Protector`): ``zoo:protector-a`` or a
    folder written by ``latentguard protector train`` (``config.json`` + safetensors); eval mode, frozen."""
    # deferred: models.protector imports diffusers (the Protector is a ModelMixin) at its top
    from latentguard.models.protector import Protector

    kind, where = resolve_spec(spec)
    if kind == "zoo":
        entry = registry.get_entry(where)
        if entry.kind != "protector":
            raise ModelLoadError(f"zoo:{entry.name} is a {entry.kind} model, not a protector (zoo protectors: "
                                 f"{', '.join(n for n, e in registry.ENTRIES.items() if e.kind == 'protector')})")
        folder = registry.model_dir(entry.name)
    elif kind == "local":
        folder = Path(where)
    else:
        raise ModelLoadError(f"{spec!r}: protectors load from zoo:NAME or a local folder, not from the hub")
    cfg = folder / "config.json"
    if not cfg.is_file():
        raise ModelLoadError(f"{folder} is not a protector folder (no config.json)")
    try:
        cls_name = json.loads(cfg.read_text()).get("_class_name")
    except ValueError as exc:
        raise ModelLoadError(f"{cfg} is not valid JSON: {exc}") from None
    if cls_name != "Protector":
        raise ModelLoadError(f"{folder} holds a {cls_name or 'non-diffusers'} model, not a Protector")
    _check_weights(folder, allow_pickle=False)
    model = Protector.from_pretrained(str(folder), use_safetensors=True)
    model.requires_grad_(False).eval().to(resolve_device(device))
    return model
