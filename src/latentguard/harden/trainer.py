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
  It is :func:`latentguard.harden.attack.reconstruction_attack`.
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
:class:`~latentguard.harden.config.SRLConfig` and the defaults are justified in ``docs/harden.md``.

This module is the training loop, one for both ways of running it: a plain single-process run drives it with
:class:`latentguard.ops.runtime.SingleProcess`, a stand-in with the few methods of ``accelerate.Accelerator`` that the loop calls;
``accelerate=True`` drives it with a real ``Accelerator`` (data-parallel, one process per GPU). The recipe is
:mod:`latentguard.harden.config`, the inner attack :mod:`latentguard.harden.attack`, the files of a run
(checkpoints, resume, the diffusers folder, logs, plots) :mod:`latentguard.harden.artifacts`.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from latentguard.harden.artifacts import (
    RunFolder,
    checkpoint_state,
    params_fingerprint,
    restore_checkpoint,
)
from latentguard.harden.attack import adversarial_psnr, psnr, reconstruction_attack
from latentguard.harden.config import SRLConfig
from latentguard.harden.crops import ImageCrops
from latentguard.harden.perceptual import perceptual_distance
from latentguard.models import load_vae
from latentguard.models.vae import LatentVAE
from latentguard.ops.runtime import SingleProcess, resolve_device
from latentguard.ops.schedules import warmup_cosine


# ----------------------------------------------------------------------------------------------------
# Schedules (the only ones of harden): which steps are clean, the learning rate of a step
# ----------------------------------------------------------------------------------------------------
def is_clean_step(step: int, clean_ratio: float) -> bool:
    """Whether 1-based ``step`` trains on clean inputs: a deterministic interleaving with density ``clean_ratio``."""
    return math.floor(step * clean_ratio + 1e-9) > math.floor((step - 1) * clean_ratio + 1e-9)


def lr_at(cfg: SRLConfig, step: int) -> float:
    """Learning rate of 1-based ``step``: linear warm-up over ``warmup_steps``, then cosine decay to
    ``min_lr_ratio * lr`` at ``steps`` (:func:`latentguard.ops.schedules.warmup_cosine`; diffusers'
    ``get_cosine_schedule_with_warmup`` has no floor, transformers' min-lr variant rounds the warm-up differently)."""
    return warmup_cosine(step, warmup=cfg.warmup_steps, total=cfg.steps, min_ratio=cfg.min_lr_ratio, base=cfg.lr)


# ----------------------------------------------------------------------------------------------------
# Who runs the loop: one plain process, or accelerate
# ----------------------------------------------------------------------------------------------------
def launched_distributed() -> bool:
    """Whether this process was started by a multi-process launcher (``accelerate launch``/``torchrun``: ``WORLD_SIZE > 1``)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def _accelerator(accelerate: bool, dev: torch.device):
    """A real ``Accelerator`` (float32: a launcher's mixed precision is overridden) or the plain stand-in."""
    if not accelerate:
        return SingleProcess(dev)
    from accelerate import Accelerator  # deferred: accelerate is only needed for --accelerate

    return Accelerator(cpu=dev.type == "cpu", mixed_precision="no")


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
    history: list[dict] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------
# One step
# ----------------------------------------------------------------------------------------------------
class _Training:
    """The state of one SRL-VAE run and its step: the trainable copy, the frozen original, optimizer, RNGs.

    Built from the (unmodified) ``original`` VAE: ``hardened`` is a float32 copy on ``acc.device`` whose
    encoder (``encoder`` + ``quant_conv``) alone requires gradients. The PGD attack and the frozen original run
    on the unwrapped modules; under accelerate only :class:`_EncoderStep` and the optimizer are prepared.
    """

    def __init__(self, cfg: SRLConfig, original: LatentVAE, crops: ImageCrops, acc) -> None:
        self.cfg, self.crops, self.acc = cfg, crops, acc
        self.dev, self.rank, self.world = acc.device, acc.process_index, acc.num_processes
        dev = self.dev
        model = copy.deepcopy(original.model).to(device=dev, dtype=torch.float32).eval()
        self.hardened = LatentVAE(model, spec=f"srl({original.spec})")
        self.original_f32 = original if (original.dtype == torch.float32 and original.device == dev) else \
            LatentVAE(copy.deepcopy(original.model).to(device=dev, dtype=torch.float32).eval(), spec=original.spec)
        model.requires_grad_(False)
        self.enc_params = [p for m in self.hardened.encoder_modules for p in m.parameters()]
        for p in self.enc_params:
            p.requires_grad_(True)
        self.decoder_sha256 = params_fingerprint(self.hardened.decoder_modules)
        self.original_encoder_sha256 = params_fingerprint(original.encoder_modules)
        opt = torch.optim.AdamW(self.enc_params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.noise = torch.Generator(device=dev).manual_seed(cfg.seed + 1 + 1_000_003 * self.rank)
        self.scaling_factor = self.hardened.info.scaling_factor
        self.enc_step, self.opt = acc.prepare(_EncoderStep(self.hardened), opt)

    def restore(self, path: Path) -> int:
        """Continue from the checkpoint at ``path``; returns its step."""
        return restore_checkpoint(path, self.cfg, self.hardened, self.opt, self.crops, self.noise,
                                  self.original_encoder_sha256, rank=self.rank, world=self.world)

    def noise_states(self) -> list[torch.Tensor]:
        """The noise RNG state of every process (a collective under accelerate: every process calls it)."""
        states = [self.noise.get_state().to("cpu")]
        if self.world > 1:
            from accelerate.utils import gather_object  # deferred: accelerate is only needed for --accelerate

            states = gather_object(states)
        return states

    def checkpoint(self, step: int, noise_ranks: list[torch.Tensor]) -> dict:
        """The checkpoint state of ``step`` (see :func:`~latentguard.harden.artifacts.checkpoint_state`)."""
        return checkpoint_state(step, self.cfg, self.hardened, self.opt, self.crops, self.noise,
                                self.original_encoder_sha256, noise_ranks=noise_ranks)

    def loss(self, x: torch.Tensor, x_in: torch.Tensor, clean: bool):
        """The outer loss of the encoder on ``x_in`` (reconstructing ``x``) and its logged terms.

        Returns ``(loss, rec_mse, kl, perc, orig)``; ``perc`` / ``orig`` are ``None`` when their weight is 0.
        """
        cfg, hardened = self.cfg, self.hardened
        need_clean = cfg.orig_weight > 0 and not clean
        mean, logvar, mean_clean = self.enc_step(x_in, x if need_clean else None)
        z = hardened.sample(mean, logvar, generator=self.noise) if cfg.sample_latent else mean
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
                mean0 = self.original_f32.encode(x)[0]
            orig = (self.scaling_factor * (mean_clean - mean0)).pow(2).mean()
            loss = loss + cfg.orig_weight * orig
        return loss, rec_mse, kl, perc, orig

    def step(self, step: int) -> dict:
        """Train 1-based ``step``; returns its log row (losses are means over the processes)."""
        cfg, opt = self.cfg, self.opt
        lr = lr_at(cfg, step)
        for g in opt.param_groups:
            g["lr"] = lr
        x = self.crops.batch(cfg.batch_size)  # the same global batch on every process
        if self.world > 1:
            x = x[self.rank :: self.world]  # this process's shard
        x = x.to(self.dev)
        clean = is_clean_step(step, cfg.clean_ratio)
        if clean:
            x_in = x
        else:
            x_in = reconstruction_attack(
                self.hardened, x, eps=cfg.eps, steps=cfg.attack_steps, alpha=cfg.alpha,
                perceptual=cfg.perceptual, perceptual_weight=cfg.attack_perceptual_weight,
                random_start=cfg.attack_random_start, generator=self.noise)
        loss, rec_mse, kl, perc, orig = self.loss(x, x_in, clean)
        opt.zero_grad(set_to_none=True)
        self.acc.backward(loss)  # under DDP the encoder's gradients are averaged over the processes here
        gnorm = None
        if cfg.grad_clip is not None:
            gnorm = float(torch.nn.utils.clip_grad_norm_(self.enc_params, cfg.grad_clip))
        opt.step()

        logged_v = torch.stack([t.detach() for t in [loss, rec_mse, kl] + [t for t in (perc, orig) if t is not None]])
        if self.world > 1:
            logged_v = self.acc.reduce(logged_v, reduction="mean")
        vals = logged_v.tolist()
        loss_v, rec_v, kl_v = vals[:3]
        rest = iter(vals[3:])
        perc_v = None if perc is None else next(rest)
        orig_v = None if orig is None else next(rest)
        return {"step": step, "clean": clean, "loss": loss_v, "rec_mse": rec_v,
                "adv_rec": None if clean else rec_v, "clean_rec": rec_v if clean else None,
                "perc": perc_v, "kl": kl_v, "orig": orig_v, "lr": lr, "grad_norm": gnorm}

    def any_process(self, flag: bool) -> bool:
        """``flag`` of any process (so that every process stops at the same step)."""
        if self.world == 1:
            return flag
        return bool(self.acc.reduce(torch.tensor([float(flag)], device=self.dev), reduction="sum").item() > 0)


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


# ----------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------
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
    cfg = config if config is not None else SRLConfig()
    if not isinstance(cfg, SRLConfig):
        raise TypeError(f"config must be an SRLConfig, got {type(cfg).__name__}")
    if max_minutes is not None and not (isinstance(max_minutes, (int, float)) and max_minutes > 0):
        raise ValueError(f"max_minutes must be a positive number, got {max_minutes!r}")
    if accelerate is None:
        accelerate = launched_distributed()
    acc = _accelerator(bool(accelerate), resolve_device(device))
    dev, world = acc.device, acc.num_processes
    if cfg.batch_size % world:
        raise ValueError(f"batch_size ({cfg.batch_size}) must be a multiple of the number of processes ({world})")
    main_proc = acc.process_index == 0
    if isinstance(vae, str):
        vae = load_vae(vae, device=dev)
    if not isinstance(vae, LatentVAE):
        raise TypeError(f"vae must be a LatentVAE or a spec string, got {type(vae).__name__}")
    f = vae.info.downsample_factor
    if cfg.crop % f:
        raise ValueError(f"crop must be a multiple of the VAE's downsample factor {f}, got {cfg.crop}")
    run = RunFolder(out_dir, cfg, main=main_proc, command=command)
    ckpt_path = run.checkpoint_to_resume(resume)
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

    # the frozen original is not modified (only read under no_grad); its train/requires_grad state is restored
    original = vae
    orig_state = (original.model.training, {n: p.requires_grad for n, p in original.model.named_parameters()})
    tr = _Training(cfg, original, crops, acc)
    run.create()
    start = tr.restore(ckpt_path) if ckpt_path is not None else 0
    run.start_log(start if ckpt_path is not None else None)
    run_extra = {"accelerate": {"processes": world, "distributed_type": str(acc.distributed_type)}} \
        if accelerate else {}
    run.write_start_record({"vae": original.spec, "srl": cfg.to_dict(), "resume": resume, "device": str(dev),
                            "images": crops.sources, **run_extra}, seed=cfg.seed)

    def save_checkpoint(step: int) -> None:
        if run.path is not None:
            noise_ranks = tr.noise_states()  # on every process: a collective under accelerate
            if run.writes:
                run.save_checkpoint(step, tr.checkpoint(step, noise_ranks))

    history: list[dict] = []
    t0 = time.time()
    step = start
    bar = tqdm(total=cfg.steps, initial=start, desc="srl-vae", file=sys.stderr, disable=not (progress and main_proc),
               dynamic_ncols=True)
    try:
        for step in range(start + 1, cfg.steps + 1):
            row = tr.step(step)
            if callback is not None:
                callback(step, row)
            if step % cfg.log_every == 0 or step == cfg.steps:
                row["seconds"] = round(time.time() - t0, 2)
                history.append(row)
                run.append_log(row)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}", rec=f"{row['rec_mse']:.4f}",
                            orig=f"{row['orig']:.3g}" if row["orig"] is not None else "-")
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save_checkpoint(step)
                run.plot()
            stop = max_minutes is not None and (time.time() - t0) / 60 > max_minutes
            if max_minutes is not None and tr.any_process(stop):
                if step % cfg.checkpoint_every:
                    save_checkpoint(step)
                break
    finally:
        bar.close()
        original.model.train(orig_state[0])
        for n, p in original.model.named_parameters():
            p.requires_grad_(orig_state[1][n])

    hardened = tr.hardened
    if params_fingerprint(hardened.decoder_modules) != tr.decoder_sha256:  # pragma: no cover - a bug guard
        raise RuntimeError("SRL-VAE changed the decoder; this is a bug")
    hardened.model.requires_grad_(False).eval()
    minutes = (time.time() - t0) / 60
    complete = step >= cfg.steps
    acc.wait_for_everyone()
    acc.free_memory()  # drop accelerate's references to the DDP wrapper and the optimizer
    probe = _probe(tr.original_f32, hardened, probe_x, cfg, dev) if (probe_x is not None and main_proc) else None
    result = SRLResult(vae=hardened, config=cfg, steps_done=step, complete=complete, minutes=minutes,
                       out_dir=run.path, probe=probe, history=history)
    result.vae_dir = run.finish(hardened, original_spec=original.spec, steps_done=step, complete=complete,
                                minutes=minutes, probe=probe)
    acc.wait_for_everyone()  # the other processes return once the main one has written OUT/vae
    return result
