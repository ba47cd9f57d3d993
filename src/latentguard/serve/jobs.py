"""Jobs, the bounded queue and the fixed worker pool.

A job is one uploaded image and its validated parameters. :class:`WorkerPool` owns

* a bounded :class:`queue.Queue` (``config.queue_size``): :meth:`WorkerPool.submit` raises a 429
  :class:`~latentguard.serve.limits.RequestError` when it is full, so the backlog never grows without bound;
* ``config.workers`` threads, each with its own models (surrogate VAEs, the editor pipeline), loaded once on
  first use and kept: no request ever loads a model it names, it picks one the server offers;
* a janitor thread that deletes finished jobs (their folder too) ``config.ttl_s`` after they finish.

Each job writes only under ``<data_dir>/jobs/<id>/``: the upload, ``protected.png`` (with provenance text
chunks, via :func:`latentguard.io.save_image`), ``diff.png`` (the perturbation amplified to the full range)
and, with ``preview``, the editor's outputs on the clean and protected image.

Timeouts: a job still queued ``job_timeout_s`` after it was submitted fails without running; a running job
is checked between its phases (load, protect, save, preview) and, through the engine's per-step callback
(:class:`~latentguard.protect.engine.StepInfo`), after every step of the protection, which then stops at once.
Progress during the protection is the engine's real step count (``steps_done / steps``), with its ETA.
"""

from __future__ import annotations

import logging
import queue
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from latentguard import __version__
from latentguard.ops.runtime import resolve_device
# The one place the image metrics are imported from (they move to latentguard.ops.metrics with issue 15).
from latentguard.ops.metrics import psnr, ssim
from latentguard.ops.grid import amplified_difference, center_crop
from latentguard.io import load_image, save_image
from latentguard.models import LatentVAE, crop_back, load_pipeline, load_vae, pad_to_multiple
from latentguard.protect import get as get_protection
from latentguard.serve.config import ServeConfig
from latentguard.serve.limits import JobParams, RequestError, needs_pipeline

log = logging.getLogger(__name__)

STATUSES = ("queued", "running", "done", "failed")
_ID = re.compile(r"^[0-9a-f]{32}$")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Share of the progress bar per phase: models, protection, save, preview.
_P_LOAD, _P_PROTECT, _P_SAVE = 0.05, 0.65, 0.75


def safe_stem(filename: str | None) -> str:
    """A file-name stem safe for headers and zips: letters, digits, ``._-``; at most 60 characters."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    stem = _SAFE.sub("_", stem).strip("._")[:60]
    return stem or "image"


def valid_id(job_id: str) -> bool:
    return bool(_ID.match(job_id or ""))


@dataclass
class Job:
    """One protection request; mutated only by the worker that runs it (and the janitor once finished)."""

    id: str
    params: JobParams
    stem: str
    folder: Path
    upload: Path
    created: float = field(default_factory=time.time)
    status: str = "queued"
    stage: str = "queued"
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    error_status: int = 500
    figures: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    size: tuple[int, int] = (0, 0)
    done: threading.Event = field(default_factory=threading.Event, repr=False)
    steps_done: int = 0
    steps_total: int = 0
    eta_s: float | None = None

    @property
    def result_name(self) -> str:
        return f"{self.stem}-protected.png"

    def progress(self) -> float:
        """0..1: by phase, and within the protection by the engine's steps done / steps."""
        if self.status == "done":
            return 1.0
        if self.status == "queued" or self.started is None:
            return 0.0
        if self.stage == "loading models":
            return _P_LOAD / 2
        if self.stage == "protecting":
            frac = self.steps_done / self.steps_total if self.steps_total else 0.0
            return _P_LOAD + (_P_PROTECT - _P_LOAD) * min(1.0, frac)
        if self.stage == "saving":
            return _P_PROTECT
        if self.stage == "previewing":
            return _P_SAVE
        return 0.0


class _Models:
    """One worker's models, loaded once on first use and kept for the life of the worker."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self._vaes: dict[str, Any] = {}
        self._pipe = None
        self._editor_vae = None

    def vae(self, spec: str):
        if spec not in self._vaes:
            self._vaes[spec] = load_vae(spec, device=self.device)
        return self._vaes[spec]

    def pipe(self):
        """The editor: an img2img pipeline (``config.editor``)."""
        if self._pipe is None:
            self._pipe = load_pipeline(self.config.editor, kind="img2img", device=self.device)
        return self._pipe

    def editor_vae(self):
        """The editor's own VAE (its reconstruction is the first stage of every edit)."""
        if self._editor_vae is None:
            self._editor_vae = LatentVAE(self.pipe().vae, spec=self.config.editor)
        return self._editor_vae


@torch.no_grad()
def vae_reconstruction(vae, x: torch.Tensor) -> torch.Tensor:
    """``D(mean of E(x))`` (padded to the VAE's factor, cropped back), on the CPU in [0,1]."""
    xp, size = pad_to_multiple(x.to(vae.device, vae.dtype), vae.info.downsample_factor)
    mean, _ = vae.encode(xp)
    return crop_back(vae.decode(mean).clamp(0, 1), size).float().cpu()


@torch.no_grad()
def img2img(pipe, x: torch.Tensor, *, steps: int, strength: float, seed: int = 0) -> torch.Tensor:
    """SDEdit with the empty prompt and no guidance (the photo editor is unconditional), in [0,1]."""
    mult = int(getattr(pipe, "vae_scale_factor", 8))
    xp, size = pad_to_multiple(x.float(), mult)
    gen = torch.Generator(device=pipe.device).manual_seed(seed)
    out = pipe(prompt=[""] * len(x), image=xp.to(pipe.device, pipe.unet.dtype), strength=float(strength),
               num_inference_steps=int(steps), guidance_scale=1.0, generator=gen, output_type="pt").images
    return crop_back(out.float().clamp(0, 1), size).cpu()


def _pair(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    return {"psnr": round(float(psnr(a, b)[0]), 3), "ssim": round(float(ssim(a, b)[0]), 4)}


class WorkerPool:
    """The bounded queue, the worker threads and the janitor (see the module docstring)."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.root = Path(config.data_dir).resolve()
        self.jobs_dir = self.root / "jobs"
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=config.queue_size)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.completed = 0
        self.failed = 0

    # ----------------------------------------------------------------------------------- lifecycle
    def start(self) -> WorkerPool:
        if self._threads:
            return self
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        if self.config.threads:
            torch.set_num_threads(int(self.config.threads))
        for i in range(self.config.workers):
            t = threading.Thread(target=self._work, args=(_Models(self.config),), name=f"latentguard-worker-{i}",
                                 daemon=True)
            t.start()
            self._threads.append(t)
        j = threading.Thread(target=self._janitor, name="latentguard-janitor", daemon=True)
        j.start()
        self._threads.append(j)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for _ in range(self.config.workers):
            try:
                self._queue.put(None, timeout=1.0)
            except queue.Full:
                pass
        for t in self._threads:
            t.join(timeout=timeout)
        self._threads.clear()

    # ----------------------------------------------------------------------------------- jobs
    def new_job(self, params: JobParams, filename: str | None) -> Job:
        """A job with its own folder under the data folder (the id is random; the name never reaches a path)."""
        job_id = uuid.uuid4().hex
        folder = self.jobs_dir / job_id
        folder.mkdir(parents=True, exist_ok=False)
        return Job(id=job_id, params=params, stem=safe_stem(filename), folder=folder, upload=folder / "upload")

    def submit(self, job: Job, upload: Path, size: tuple[int, int]) -> None:
        """Queue a job whose upload was validated; 429 when the queue is full (the job's folder is removed)."""
        job.upload = upload
        job.size = size
        with self._lock:
            self._jobs[job.id] = job
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            with self._lock:
                self._jobs.pop(job.id, None)
            shutil.rmtree(job.folder, ignore_errors=True)
            raise RequestError(429, f"queue full ({self.config.queue_size} jobs waiting); retry later") from None

    def discard(self, job: Job) -> None:
        """Forget a job that was never queued (its upload was refused)."""
        shutil.rmtree(job.folder, ignore_errors=True)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def queued(self) -> int:
        return self._queue.qsize()

    def counts(self) -> dict[str, int]:
        with self._lock:
            jobs = list(self._jobs.values())
        return {s: sum(j.status == s for j in jobs) for s in STATUSES}

    # ----------------------------------------------------------------------------------- workers
    def _work(self, models: _Models) -> None:
        while not self._stop.is_set():
            job = self._queue.get()
            if job is None:
                return
            try:
                self._run(job, models)
            except RequestError as exc:
                self._fail(job, exc.reason, exc.status)
            except Exception as exc:  # noqa: BLE001 - a failed job reports one line; the worker lives on
                log.exception("job %s failed", job.id)
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self._fail(job, f"{type(exc).__name__}: {msg}")

    def _fail(self, job: Job, reason: str, status: int = 500) -> None:
        job.error = " ".join(reason.split())
        job.error_status = int(status)
        job.status = "failed"
        job.finished = time.time()
        self.failed += 1
        job.done.set()

    def _check_deadline(self, job: Job, phase: str) -> None:
        limit = float(self.config.job_timeout_s)
        if limit and time.time() - job.created > limit:
            raise RequestError(504, f"timed out after {limit:g} s ({phase})")

    def _run(self, job: Job, models: _Models) -> None:
        cfg, p = self.config, job.params
        self._check_deadline(job, "while queued")
        job.status, job.stage, job.started = "running", "loading models", time.time()
        x = load_image(job.upload, max_pixels=cfg.max_pixels)
        if needs_pipeline(p.method):
            prot = get_protection(p.method, pipe=models.pipe(), eps=p.eps, steps=p.steps, seed=0,
                                  measure_records=cfg.measure_records)
        else:
            prot = get_protection(p.method, vae=models.vae(p.model), eps=p.eps, steps=p.steps, seed=0,
                                  measure_records=cfg.measure_records)
        self._check_deadline(job, "loading models")
        job.steps_done, job.steps_total = 0, int(getattr(prot, "steps", 0) or 0)
        t0 = time.monotonic()
        job.stage = "protecting"

        def on_step(info) -> None:  # the engine's per-step callback: real progress, and the deadline
            job.steps_done, job.steps_total, job.eta_s = info.step, info.steps, info.eta
            self._check_deadline(job, f"protecting, step {info.step}/{info.steps}")

        out = prot.protect(x, callback=on_step)
        secs = time.monotonic() - t0
        self._check_deadline(job, "protecting")
        job.stage = "saving"
        rec = out.records[0]
        y = out.images.float().cpu()
        save_image(y[0], job.folder / "protected.png", metadata={
            "method": p.method, "eps": p.eps, "eps_label": p.eps_label, "norm": "linf", "steps": p.steps,
            "surrogates": [p.model], "source": job.stem, "software": f"latentguard {__version__} serve"})
        save_image(amplified_difference(out.delta.float().cpu()[0], p.eps), job.folder / "diff.png")
        job.files["result"] = job.folder / "protected.png"
        job.files["diff"] = job.folder / "diff.png"
        job.figures = {
            "width": int(x.shape[-1]), "height": int(x.shape[-2]),
            "linf": rec.linf, "linf_255": round(rec.linf * 255, 3), "eps": p.eps, "eps_255": round(p.eps * 255, 3),
            "psnr": round(rec.psnr, 3), "ssim": round(float(ssim(y, x)[0]), 4),
            # null when not measured (ServeConfig.measure_records=False): NaN is not JSON
            **{k: (None if v != v else v) for k, v in (("loss_before", rec.loss_before), ("loss_after", rec.loss_after),
                                                       ("kl_before", rec.kl_before), ("kl_after", rec.kl_after))},
            "protect_seconds": round(secs, 3),
        }
        if p.preview:
            self._check_deadline(job, "saving")
            job.stage = "previewing"
            self._preview(job, models, x, y)
        job.stage = "done"
        job.finished = time.time()
        job.status = "done"
        self.completed += 1
        job.done.set()

    def _preview(self, job: Job, models: _Models, x: torch.Tensor, y: torch.Tensor) -> None:
        cfg = self.config
        pipe = models.pipe()
        evae = models.editor_vae()
        cx, cy = center_crop(x, cfg.preview_size), center_crop(y, cfg.preview_size)
        both = torch.cat([cx, cy])
        recon = vae_reconstruction(evae, both)
        edit = img2img(pipe, both, steps=cfg.preview_steps, strength=cfg.preview_strength)
        for name, img in (("crop_clean", cx[0]), ("crop_protected", cy[0]), ("recon_clean", recon[0]),
                          ("recon_protected", recon[1]), ("edit_clean", edit[0]), ("edit_protected", edit[1])):
            save_image(img, job.folder / f"{name}.png")
            job.files[name] = job.folder / f"{name}.png"
        job.figures["preview"] = {
            "editor": cfg.editor, "crop": [int(cx.shape[-1]), int(cx.shape[-2])],
            "img2img": {"prompt": "", "strength": cfg.preview_strength, "steps": cfg.preview_steps, "guidance": 1.0},
            # How close each edit stays to the clean input (protection works when the protected one drops)...
            "recon_clean_vs_input": _pair(recon[:1], cx), "recon_protected_vs_input": _pair(recon[1:], cx),
            "edit_clean_vs_input": _pair(edit[:1], cx), "edit_protected_vs_input": _pair(edit[1:], cx),
            # ... and how far the protected image's edit moved from the clean image's edit.
            "edit_protected_vs_edit_clean": _pair(edit[1:], edit[:1]),
        }

    # ----------------------------------------------------------------------------------- cleanup
    def _janitor(self) -> None:
        period = max(0.2, min(30.0, float(self.config.ttl_s) / 4 or 0.2))
        while not self._stop.wait(period):
            self.cleanup()

    def cleanup(self, now: float | None = None) -> int:
        """Delete jobs finished more than ``ttl_s`` ago (and their folders); returns how many."""
        now = time.time() if now is None else now
        ttl = float(self.config.ttl_s)
        with self._lock:
            old = [j for j in self._jobs.values() if j.finished is not None and now - j.finished > ttl]
            for j in old:
                del self._jobs[j.id]
        for j in old:
            shutil.rmtree(j.folder, ignore_errors=True)
        for z in (self.root / "zips").glob("*.zip"):  # a zip whose download was cut short
            try:
                if now - z.stat().st_mtime > ttl:
                    z.unlink()
            except FileNotFoundError:
                pass
        return len(old)
