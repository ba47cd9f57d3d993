"""Small shared core: devices, dtypes, seeding, validation helpers and shared math."""

from latentguard.core.runtime import resolve_device, resolve_dtype, seed_everything, torch_generator

__all__ = ["resolve_device", "resolve_dtype", "seed_everything", "torch_generator"]
