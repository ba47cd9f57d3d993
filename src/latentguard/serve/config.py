"""The server's options, with defaults sized for a CPU laptop.

Every limit the service enforces is a field of :class:`ServeConfig`, so that tests and the
``latentguard serve`` flags set the same things.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from latentguard.protect import available as available_methods

from latentguard.models import registry as _registry

# The photo editor being trained (zoo/train/ldm_photo.py); the default editor once its weights ship.
PHOTO_EDITOR = "zoo:ldm-photo"
FALLBACK_EDITOR = "zoo:t2i"
# A future feed-forward protector registers under this name; it becomes the default method by itself.
FAST_METHOD = "fast"
CPU_METHOD = "pca+"
# 10 sign steps of 2/255 can reach the whole 16/255 budget; ~0.5 s per step at 128 px on one loaded core
# (docs/serve.md, "Defaults"). The CLI's and the paper's 40 steps are one form field away.
CPU_STEPS = 10


def _zoo_available() -> list[str]:
    """Names of the bundled models whose weights are present."""
    return list(_registry.available())


def default_editor() -> str:
    """``zoo:ldm-photo`` when its weights are installed, else ``zoo:t2i``."""
    names = _zoo_available()
    return PHOTO_EDITOR if PHOTO_EDITOR.split(":", 1)[1] in names else FALLBACK_EDITOR


def default_method() -> str:
    """The fast feed-forward protector when one is registered, else ``pca+``."""
    return FAST_METHOD if FAST_METHOD in available_methods() else CPU_METHOD


def default_models() -> list[str]:
    """The bundled surrogate VAEs that are installed, ``zoo:vae-a`` first."""
    names = _zoo_available()
    order = ["vae-a", "vae-b", "vae-a-srl"]
    found = [f"zoo:{n}" for n in order if n in names]
    return found or ["zoo:vae-a"]


@dataclass
class ServeConfig:
    """Options of one server.

    Args:
        host: interface to bind (127.0.0.1: this machine only).
        port: TCP port.
        models: surrogate VAE specs a request may choose (``model`` form field); the first is the default.
            A request can name only one of these: the server never loads a model a client names.
        editor: img2img pipeline of the before/after preview (and the surrogate of the diffusion-based
            baselines): ``zoo:ldm-photo`` when installed, else ``zoo:t2i``; a folder or hub id works too.
        workers: worker threads; each owns its own copy of the models, loaded once.
        data_dir: the only folder the server writes to (uploads, results, zips); created.
        max_upload_bytes: larger request bodies get 413 before they are parsed.
        max_pixels: larger images get 413 from their header, before any pixel is decoded.
        queue_size: queued jobs beyond the running ones; one more gets 429.
        sync_wait_s: how long ``POST /v1/protect`` waits for the PNG before answering 202.
        job_timeout_s: a job still queued after this fails; a running one fails at its next phase.
        ttl_s: finished jobs (and their files) are deleted this long after they finish.
        default_method / default_steps / default_eps: what a request gets when it names none.
        max_steps: the largest ``steps`` a request may ask for.
        max_eps: the largest budget a request may ask for ([0,1] units).
        preview_size: the preview runs on the central crop of at most this many pixels a side (pixels
            unchanged, so the perturbation is intact).
        preview_steps / preview_strength: img2img of the preview (``int(steps*strength)`` UNet calls).
        threads: torch CPU threads (None: torch's default).
        device: ``auto|cpu|cuda[:N]``.
        measure_records: compute the protection's before/after objective and KL (the result's ``loss_*`` /
            ``kl_*``); ``False`` skips those surrogate passes (``fast`` then runs no surrogate at all: 0.39 s
            instead of 7.2 s at 512 px on the CPU, benchmarks/results/bench_fast.json) and returns them as null.
    """

    host: str = "127.0.0.1"
    port: int = 7860
    models: list[str] = field(default_factory=default_models)
    editor: str = field(default_factory=default_editor)
    workers: int = 1
    data_dir: Path = Path("latentguard-serve")
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 2048 * 2048
    queue_size: int = 16
    sync_wait_s: float = 10.0
    job_timeout_s: float = 600.0
    ttl_s: float = 3600.0
    default_method: str = field(default_factory=default_method)
    default_steps: int = CPU_STEPS
    default_eps: str = "16/255"
    max_steps: int = 200
    max_eps: float = 64 / 255
    preview_size: int = 128
    preview_steps: int = 20
    preview_strength: float = 0.5
    threads: int | None = None
    device: str = "auto"
    measure_records: bool = True

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if not self.models:
            raise ValueError("models must name at least one surrogate VAE")
        for name in ("workers", "queue_size", "max_upload_bytes", "max_pixels", "preview_size", "preview_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if not 0 <= int(self.port) <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        for name in ("sync_wait_s", "job_timeout_s", "ttl_s"):
            if not float(getattr(self, name)) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 < self.preview_strength <= 1 or int(self.preview_steps * self.preview_strength) < 1:
            raise ValueError("preview_strength must be in (0,1] with preview_steps * preview_strength >= 1")
        if self.default_method not in available_methods():
            raise ValueError(f"default_method {self.default_method!r} is not a registered protection")
        if not 0 <= self.default_steps <= self.max_steps:
            raise ValueError(f"default_steps must be in 0..max_steps ({self.max_steps}), got {self.default_steps}")

    def replace(self, **changes) -> ServeConfig:
        return dataclasses.replace(self, **changes)
