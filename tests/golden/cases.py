"""The golden cases: small, seeded computations on the bundled zoo models whose outputs are pinned.

Each case is a function ``fn(ctx) -> dict`` of plain floats / lists (see :func:`summary`). ``test_golden.py``
compares them with ``golden_values.json`` (and the JPEG-dependent ones with ``golden_jpeg.json``);
``regen.py`` rewrites those files from the current code. Cases load models only through the public API
(``latentguard.models.load_vae`` / ``load_pipeline`` / ``load_embedder``) and run on CPU in float32.

Groups:

* ``stable``: models, every registered protection, metrics and kernels. An intended change of any of these
  numbers is a reviewed diff of ``golden_values.json`` (``python tests/golden/regen.py --group stable``).
* ``jpeg``: everything that goes through the attack's differentiable JPEG (EOT). These are expected to
  change when that JPEG is made to match PIL's 4:2:0 (issue 15); they live in their own file
  (``golden_jpeg.json``, ``python tests/golden/regen.py --group jpeg``) so the change touches only them.

This module imports no pytest (``regen.py`` runs it as a plain script).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

GROUPS = ("stable", "jpeg")
N_SLICE = 8  # pinned entries of each flattened tensor (evenly spaced, first and last included)


@dataclass(frozen=True)
class Case:
    name: str
    group: str
    needs: tuple[str, ...]  # zoo models the case needs (skipped when absent)
    fn: Callable[[Any], dict]


CASES: dict[str, Case] = {}


def case(name: str, *, needs: tuple[str, ...] = (), group: str = "stable"):
    assert group in GROUPS, group

    def deco(fn):
        assert name not in CASES, name
        CASES[name] = Case(name, group, tuple(needs), fn)
        return fn

    return deco


def summary(t: torch.Tensor | np.ndarray) -> dict:
    """Shape, ``N_SLICE`` evenly spaced entries of the flattened tensor, and its sum, mean and L2 norm (float64)."""
    a = torch.as_tensor(np.asarray(t) if not isinstance(t, torch.Tensor) else t.detach().cpu()).double()
    flat = a.flatten()
    idx = torch.linspace(0, flat.numel() - 1, min(N_SLICE, flat.numel())).round().long()
    return {
        "shape": list(a.shape),
        "slice": flat[idx].tolist(),
        "sum": float(flat.sum()),
        "mean": float(flat.mean()),
        "norm": float(flat.norm()),
    }


# ----------------------------------------------------------------------------------------------------
# models and images (the test passes conftest's session fixtures in; regen.py loads them itself)
# ----------------------------------------------------------------------------------------------------
@functools.cache
def _load(what: str):
    from latentguard.models import load_embedder, load_pipeline, load_vae

    kind, name = what.split(":", 1)
    if kind == "vae":
        return load_vae(f"zoo:{name}")
    if kind == "pipe":
        return load_pipeline(f"zoo:{name}", kind="img2img")
    if kind == "embed":
        return load_embedder(f"zoo:{name}")
    raise KeyError(what)


class Context:
    """Where cases get their models. ``provided`` maps ``"vae:vae-a"`` etc. to a zero-argument callable
    (e.g. a pytest fixture lookup); everything else is loaded once per process through the public API."""

    def __init__(self, provided: dict[str, Callable[[], Any]] | None = None) -> None:
        self.provided = provided or {}

    def _get(self, what: str):
        if what in self.provided:
            return self.provided[what]()
        return _load(what)

    def vae(self, name: str):
        return self._get(f"vae:{name}")

    def pipe(self, name: str):
        return self._get(f"pipe:{name}")

    def embedder(self, name: str = "embed"):
        return self._get(f"embed:{name}")

    @staticmethod
    def photos(size: int, n: int) -> torch.Tensor:
        from latentguard.samples import sample_images

        return sample_images(size)[:n].float()


def _noisy(x: torch.Tensor, std: float = 0.05, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + std * torch.randn(x.shape, generator=g)).clamp(0, 1)


# ----------------------------------------------------------------------------------------------------
# models: posterior and decode of the VAEs, UNet epsilon, embeddings
# ----------------------------------------------------------------------------------------------------
def _vae_case(name: str):
    @case(f"model/{name}/posterior", needs=(name,))
    def _(ctx):
        vae = ctx.vae(name)
        x = ctx.photos(64, 1)
        with torch.no_grad():
            mean, logvar = vae.encode(x)
            rec = vae.decode(mean)
        return {"mean": summary(mean), "logvar": summary(logvar), "decode": summary(rec)}


for _name in ("vae-a", "vae-b", "vae-a-srl"):
    _vae_case(_name)

CAPTION = "a photo of an astronaut in a white space suit"


def _unet_case(name: str):
    @case(f"model/{name}/unet-eps", needs=(name, "vae-a"))
    def _(ctx):
        pipe = ctx.pipe(name)
        unet = pipe.unet
        g = torch.Generator().manual_seed(0)
        z = torch.randn(1, unet.config.in_channels, 8, 8, generator=g)
        t = torch.tensor([500])
        out = {}
        with torch.no_grad():
            for label, prompt in (("empty", ""), ("caption", CAPTION)):
                cond = pipe.encode_prompt(prompt, torch.device("cpu"), 1, False)[0]
                out[label] = summary(unet(z, t, encoder_hidden_states=cond).sample)
            out["cond_caption"] = summary(cond)
        return out


for _name in ("t2i", "t2i-members"):
    _unet_case(_name)


@case("model/embed", needs=("embed",))
def _(ctx):
    emb = ctx.embedder()
    with torch.no_grad():
        img = emb.embed_images(ctx.photos(64, 2))
        txt = emb.embed_texts([CAPTION, "a cat"])
    return {"image": summary(img), "text": summary(txt), "cos": summary((img * txt).sum(-1))}


# ----------------------------------------------------------------------------------------------------
# protections: every registered method on zoo:vae-a (UNet methods: zoo:t2i, whose VAE is vae-a)
# ----------------------------------------------------------------------------------------------------
DIFFUSION = ("advdm", "mist", "sds+", "sds-", "photoguard-diff")
ENCODER = ("pca+", "pca-", "pca-adaptive", "photoguard-enc", "pid")
REFERENCE = ("none", "random-noise")  # the table's reference rows (protect/baselines.py), on the encoder path


def _protect(ctx, name: str, x: torch.Tensor, **params) -> dict:
    from latentguard.protect import get

    if name in DIFFUSION:
        params.setdefault("pipe", ctx.pipe("t2i"))
    else:
        params.setdefault("vae", ctx.vae("vae-a"))
    res = get(name, seed=0, **params).protect(x)
    r = {k: [float(getattr(rec, k)) for rec in res.records]
         for k in ("loss_before", "loss_after", "kl_before", "kl_after", "sigma2_after", "linf", "l2", "psnr")}
    return {"image": summary(res.images), **r}


def _method_case(name: str):
    needs = ("vae-a", "t2i") if name in DIFFUSION else ("vae-a",)
    # UNet methods at 32 px, 2 steps (eval_samples 2) to keep the file fast; encoder methods 64 px, 3 steps
    size, steps, extra = (32, 2, {"eval_samples": 2}) if name in DIFFUSION else (64, 3, {})
    if name == "photoguard-diff":
        extra["num_inference_steps"] = 4  # 2 differentiable DDIM steps at strength 0.5

    @case(f"protect/{name}", needs=needs)
    def _(ctx):
        return _protect(ctx, name, ctx.photos(size, 2), steps=steps, **extra)


for _name in ENCODER + REFERENCE + DIFFUSION:
    _method_case(_name)


@case("protect/fast", needs=("vae-a", "protector-a"))
def _(ctx):
    # zoo:protector-a's pass, then 2 pca+ refinement steps on the engine
    return _protect(ctx, "fast", ctx.photos(64, 2), refine=2)


@case("protect/engine/pca+-l2-random-start-linear-decay", needs=("vae-a",))
def _(ctx):
    return _protect(ctx, "pca+", ctx.photos(64, 2), steps=3, norm="l2", eps=1.0, alpha=0.25, random_start=True,
                    step_decay="linear")


@case("protect/engine/pca--ensemble-mask", needs=("vae-a", "vae-b"))
def _(ctx):
    mask = torch.zeros(64, 64)
    mask[8:40, 16:56] = 1
    from latentguard.protect import get

    res = get("pca-", vae=[ctx.vae("vae-a"), ctx.vae("vae-b")], steps=2, seed=0).protect(ctx.photos(64, 1), mask=mask)
    return {"image": summary(res.images), "loss_after": [r.loss_after for r in res.records]}


@case("protect/engine/tiles", needs=("vae-a",))
def _(ctx):
    return _protect(ctx, "photoguard-enc", ctx.photos(64, 1), steps=2, tile_size=32, tile_overlap=8)


@case("protect/engine/eot-resize-blur-noise", needs=("vae-a",))
def _(ctx):
    return _protect(ctx, "pca+", ctx.photos(64, 1), steps=2, transforms="resize:0.5-0.9,blur:0.5-1.5,noise:0-0.03",
                    eot_samples=3)


# --- JPEG-dependent: the attack's differentiable JPEG (EOT); expected to change with the 4:2:0 fix ----
@case("jpeg/protect/pca+-eot-jpeg75", needs=("vae-a",), group="jpeg")
def _(ctx):
    return _protect(ctx, "pca+", ctx.photos(64, 1), steps=2, transforms="jpeg:75-75")


@case("jpeg/protect/photoguard-enc-eot-jpeg-range", needs=("vae-a",), group="jpeg")
def _(ctx):
    return _protect(ctx, "photoguard-enc", ctx.photos(64, 1), steps=2, transforms="jpeg:50-95,identity",
                    eot_samples=2)


# ----------------------------------------------------------------------------------------------------
# metrics and kernels
# ----------------------------------------------------------------------------------------------------
@case("kernel/psnr-ssim")
def _(ctx):
    from latentguard.evaluate import psnr, ssim

    x = ctx.photos(64, 2)
    y = _noisy(x)
    return {"psnr": psnr(y, x).tolist(), "ssim": ssim(y, x).tolist(),
            "ssim_w7": ssim(y, x, kernel_size=7, sigma=1.0).tolist()}


@case("kernel/harden-psnr-ssim-perceptual")
def _(ctx):
    from latentguard.harden import perceptual_distance, psnr, ssim

    x = ctx.photos(64, 2)
    y = _noisy(x)
    return {"psnr": psnr(y, x).double().tolist(), "ssim": ssim(y, x).double().tolist(),
            "grad_ssim": perceptual_distance("grad-ssim", y, x).double().tolist()}


@case("kernel/purifiers")
def _(ctx):
    from latentguard.evaluate import purify as P

    x = ctx.photos(64, 2)
    out = {}
    for pur in (P.JPEG(75), P.JPEG(50), P.Resize(0.5), P.GaussianBlur(1.0), P.GaussianNoise(0.05)):
        out[pur.name] = summary(pur(x, generator=torch.Generator().manual_seed(0)))
    return out


def _roc_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(150), np.zeros(250)].astype(np.int64)
    scores = rng.normal(size=400) + 0.8 * labels
    scores[:10] = scores[10:20]  # some ties
    return scores, labels


@case("kernel/roc")
def _(ctx):
    from latentguard.ops import roc

    s, y = _roc_data()
    fpr, tpr, _ = roc.roc_curve(s, y)
    return {**{k: float(v) for k, v in roc.membership_metrics(s, y).as_dict().items()},
            "tpr_at_10pct_fpr": roc.tpr_at_fpr(s, y, 0.1), "fpr": summary(fpr), "tpr": summary(tpr)}


@case("kernel/kl-pca-loss", needs=("vae-a",))
def _(ctx):
    from latentguard.protect import kl_standard_normal, pca_loss

    with torch.no_grad():
        mean, logvar = ctx.vae("vae-a").encode(ctx.photos(64, 2))
    out = {"kl_standard_normal": kl_standard_normal(mean, logvar).double().tolist()}
    for v in (1.0, 1e-8):
        out[f"pca_loss_v{v:g}"] = summary(pca_loss(mean, logvar, v))
    return out


@case("kernel/frechet")
def _(ctx):
    from latentguard.evaluate import frechet_distance

    rng = np.random.default_rng(1)
    a = rng.normal(size=(40, 16))
    b = rng.normal(size=(30, 16)) * 1.2 + 0.3
    return {"frechet": frechet_distance(a, b)}


def _embeddings(n: int = 64, d: int = 32, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, d))
    v = u + rng.normal(size=(n, d)) * 2.5  # cosines ~0.37: scaled similarities inside (0, 1)
    return u.astype(np.float32), v.astype(np.float32)


@case("kernel/alignment-difficulty")
def _(ctx):
    from latentguard.poison import alignment_difficulty

    u, v = _embeddings()
    ex = alignment_difficulty(u, v, method="exact", block_size=16)
    sa = alignment_difficulty(u, v, method="sampled", num_samples=4096, seed=0)
    return {"exact": [ex.ad, ex.feature, ex.structure], "exact_rows": summary(ex.row_structure),
            "sampled": [sa.ad, sa.structure, sa.structure_se, *sa.structure_ci]}


@case("kernel/mia-residuals", needs=("t2i-members", "vae-a"))
def _(ctx):
    from latentguard.models import LatentVAE
    from latentguard.privacy import mia

    pipe = ctx.pipe("t2i-members")
    vae = LatentVAE(pipe.vae)
    with torch.no_grad():
        z0 = vae.to_pipeline_latent(vae.encode(ctx.photos(32, 2))[0])
        cond = pipe.encode_prompt(["", CAPTION], torch.device("cpu"), 1, False)[0]
    cfg = mia.MIAConfig(timesteps=(10, 50), batch_size=2)
    powered = mia.ResidualScorer(pipe.unet, pipe.scheduler, cfg).powered_residuals(z0, cond)
    return {a: summary(v) for a, v in sorted(powered.items())}


@case("kernel/harden-reconstruction-attack", needs=("vae-a",))
def _(ctx):
    from latentguard.harden import reconstruction_attack

    x = ctx.photos(32, 2)
    xa = reconstruction_attack(ctx.vae("vae-a"), x, steps=2, generator=torch.Generator().manual_seed(0))
    return {"image": summary(xa)}


@case("kernel/poison-latent-shift", needs=("vae-a",))
def _(ctx):
    from latentguard.poison.poisons import NightshadeConfig, latent_shift

    x = ctx.photos(32, 2)
    xa, before, after = latent_shift(ctx.vae("vae-a"), x, x.flip(0), NightshadeConfig(steps=2))
    return {"image": summary(xa), "before": before.double().tolist(), "after": after.double().tolist()}


def compute(name: str, ctx: Context | None = None) -> dict:
    """Run one case; the result is JSON-ready (floats, lists, dicts)."""
    return CASES[name].fn(ctx or Context())
