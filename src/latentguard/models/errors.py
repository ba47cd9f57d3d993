"""The errors of model loading, in a module of their own (no torch) so that the loaders, the embedders and
the command line can all import them without importing each other."""

from __future__ import annotations


class ModelLoadError(RuntimeError):
    """A model spec could not be resolved or loaded; the message says what to do."""


class UnsafeWeightsError(ModelLoadError):
    """A pickle checkpoint was found and ``allow_pickle`` was not given."""
