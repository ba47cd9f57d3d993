"""Device, dtype and seed handling shared by every command."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N|mps`` into a :class:`torch.device`.

    ``auto`` picks CUDA when available, else CPU. Asking for CUDA on a machine without it is an error,
    not a silent fallback.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available on this machine (use --device cpu)")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device | None = None) -> torch.dtype:
    """Turn ``float32|fp16|bf16|auto`` into a torch dtype. ``auto`` is float32 (attacks need exact gradients)."""
    if dtype is None or dtype == "auto":
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        out = _DTYPES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"dtype must be one of {sorted(set(_DTYPES))} or 'auto', got {dtype!r}") from None
    if device is not None and device.type == "cpu" and out == torch.float16:
        raise ValueError("dtype float16 is not supported on the CPU; use float32 or bfloat16")
    return out


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def torch_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator | None:
    """A seeded generator on ``device`` (None when ``seed`` is None)."""
    if seed is None:
        return None
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


# Draws from a generator's own device, then moved: a CPU generator works for CUDA tensors and a
# fixed seed gives the same numbers on any device.
def randn(shape, generator: torch.Generator | None, device, dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device, then moved to ``device``."""
    gdev = generator.device if generator is not None else device
    return torch.randn(tuple(shape), generator=generator, device=gdev, dtype=dtype).to(device)


def rand(shape, generator: torch.Generator | None, device, dtype=torch.float32) -> torch.Tensor:
    gdev = generator.device if generator is not None else device
    return torch.rand(tuple(shape), generator=generator, device=gdev, dtype=dtype).to(device)


def randint(high: int, shape, generator: torch.Generator | None, device) -> torch.Tensor:
    gdev = generator.device if generator is not None else device
    return torch.randint(0, int(high), tuple(shape), generator=generator, device=gdev).to(device)


class SingleProcess:
    """A training loop's plain-run stand-in for ``accelerate.Accelerator``: one process on ``device``, nothing wrapped.

    Only the members the project's loops use (SRL-VAE's trainer, the protector's training), each the identity or a no-op (``backward`` is ``loss.backward()``), so
    that one loop computes exactly what a plain PyTorch loop computes. A real one-process ``Accelerator``
    gives the same weights (tested), but it would pick its own device (``cuda:1`` -> ``cuda:0``) and set a
    process-wide accelerate state; the stand-in keeps the plain run free of both.
    """

    is_main_process = True
    process_index = 0
    num_processes = 1

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def prepare(self, *objs):
        return objs

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def unwrap_model(self, model):
        return model

    def reduce(self, tensor: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        return tensor

    def wait_for_everyone(self) -> None:
        pass

    def free_memory(self) -> None:
        pass
