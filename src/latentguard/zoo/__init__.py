"""The bundled model zoo: small models honestly trained here on real images (see the cards)."""

from latentguard.zoo.registry import ENTRIES, available, get_entry, model_dir, weights_root

__all__ = ["ENTRIES", "available", "get_entry", "model_dir", "weights_root"]
