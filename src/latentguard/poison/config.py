"""The implosion experiment's run config: its TOML schema (strict) and :class:`ImplosionConfig`.

``examples/implosion.toml`` has five sections, ``[data]``, ``[poison]``, ``[finetune]``, ``[eval]``,
``[run]``; the pydantic models below give each its keys and types (``extra="forbid"``, strict: ``steps =
"200"`` or ``ks = [1.5]`` are errors). An unknown section or key, or a value of the wrong type, fails when
the file is read, before any data or model is loaded, as one :class:`~latentguard.core.errors.ConfigError`
line naming the key (``finetune.foo``); the CLI prints it and exits with status 2. The ranges are checked by
:class:`ImplosionConfig` itself (also when it is built in code).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

from pydantic import BaseModel, ConfigDict, ValidationError

from latentguard.core.config import read_toml
from latentguard.core.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DataSection(_Section):
    n_images: int | None = None
    split: str | None = None
    template: Union[int, str, None] = None
    data_seed: int | None = None


class PoisonSection(_Section):
    kind: str | None = None
    ks: list[int] | None = None
    fraction: float | None = None
    mode: str | None = None
    eps: float | None = None
    pgd_steps: int | None = None


class FinetuneSection(_Section):
    model: str | None = None
    vae: str | None = None
    steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    cfg_drop: float | None = None
    weight_decay: float | None = None


class EvalSection(_Section):
    embedder: str | None = None
    images_per_class: int | None = None
    inference_steps: int | None = None
    guidance_scale: float | None = None
    eval_template: int | None = None
    eval_batch: int | None = None


class RunSection(_Section):
    seeds: list[int] | None = None
    grid_images: int | None = None


class ImplosionFile(_Section):
    """The whole document: every section optional, every key optional (the dataclass holds the defaults)."""

    data: DataSection = DataSection()
    poison: PoisonSection = PoisonSection()
    finetune: FinetuneSection = FinetuneSection()
    eval: EvalSection = EvalSection()
    run: RunSection = RunSection()


def _message(exc: ValidationError) -> str:
    msgs = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if isinstance(p, int) or p in _KNOWN]  # without union-member labels
        if err["type"] == "extra_forbidden":
            key, parent = str(err["loc"][-1]), [str(p) for p in err["loc"][:-1] if p in _KNOWN]
            if not parent:
                msgs.append(f"unknown section [{key}]; sections: {', '.join(ImplosionFile.model_fields)}")
            else:
                sec = ImplosionFile.model_fields[parent[0]].annotation
                msgs.append(f"unknown key {key!r} in [{parent[0]}] ({parent[0]}.{key}); keys: "
                            f"{', '.join(sec.model_fields)}")
        else:
            msgs.append(f"{'.'.join(loc)}: {err['msg'].lower()}, got {err.get('input')!r}")
    return "; ".join(dict.fromkeys(msgs))


@dataclass(frozen=True)
class ImplosionConfig:
    """Settings of :func:`~latentguard.poison.implosion.run_implosion` (TOML sections in brackets; see examples/implosion.toml).

    [data] n_images: pairs per training set; split: Fashion-MNIST split; template: caption template index
    or "random"; data_seed: offset added to each run seed for the subset draw.
    [poison] kind: dirty-label | nightshade; ks: numbers of poisoned concepts; fraction: poison pairs per
    target as a fraction of its clean pairs; mode: relabel | add; eps / pgd_steps: nightshade budget
    ([0,1] units) and PGD steps.
    [finetune] model: t2i spec; vae: the model's VAE (latents); steps, batch_size, lr, weight_decay;
    cfg_drop: probability of the empty caption.
    [eval] embedder; images_per_class; inference_steps (DDIM); guidance_scale; eval_template: caption
    template of the clean prompts; eval_batch: images per pipeline call.
    [run] seeds; grid_images: images per class in the sample grids (<= images_per_class).
    """

    n_images: int = 2000
    split: str = "train"
    template: int | str = "random"
    data_seed: int = 0
    kind: str = "dirty-label"
    ks: tuple[int, ...] = (0, 1, 2, 4)
    fraction: float = 1.0
    mode: str = "relabel"
    eps: float = 8 / 255
    pgd_steps: int = 30
    model: str = "zoo:t2i"
    vae: str = "zoo:vae-a"
    steps: int = 200
    batch_size: int = 32
    lr: float = 1e-4
    cfg_drop: float = 0.1
    weight_decay: float = 1e-2
    embedder: str = "zoo:embed"
    images_per_class: int = 8
    inference_steps: int = 20
    guidance_scale: float = 3.0
    eval_template: int = 0
    eval_batch: int = 80
    seeds: tuple[int, ...] = (0, 1)
    grid_images: int = 8

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> None:
            raise ValueError(f"{name} {why}, got {getattr(self, name)!r}")

        if self.n_images < 20:
            bad("n_images", "must be >= 20")
        if self.kind not in ("dirty-label", "nightshade"):
            bad("kind", "must be dirty-label|nightshade")
        if not self.ks or any((not isinstance(k, int)) or k < 0 or k > 10 for k in self.ks):
            bad("ks", "must be a non-empty list of integers in [0, 10]")
        if len(set(self.ks)) != len(self.ks):
            bad("ks", "must be distinct")
        if not 0 < self.fraction <= 1:
            bad("fraction", "must be in (0, 1]")
        if self.mode not in ("relabel", "add"):
            bad("mode", "must be relabel|add")
        if not 0 < self.eps <= 1:
            bad("eps", "must be in (0, 1] ([0,1] pixel units)")
        for name in ("pgd_steps", "batch_size", "images_per_class", "inference_steps", "eval_batch"):
            if getattr(self, name) < 1:
                bad(name, "must be >= 1")
        if self.steps < 0:
            bad("steps", "must be >= 0")
        if self.lr <= 0:
            bad("lr", "must be > 0")
        if not 0 <= self.cfg_drop < 1:
            bad("cfg_drop", "must be in [0, 1)")
        if self.guidance_scale < 1:
            bad("guidance_scale", "must be >= 1")
        if not self.seeds or any(not isinstance(s, int) or s < 0 for s in self.seeds):
            bad("seeds", "must be a non-empty list of non-negative integers")
        if not 0 <= self.grid_images <= self.images_per_class:
            bad("grid_images", "must be in [0, images_per_class]")
        if self.split not in ("train", "test"):
            bad("split", "must be train|test")

    @classmethod
    def from_toml(cls, path: str | Path, overrides: dict | None = None) -> "ImplosionConfig":
        """Read a TOML file with the sections above; :class:`ConfigError` naming the key when it does not fit."""
        path = Path(path)
        doc = read_toml(path)
        try:
            typed = ImplosionFile.model_validate(doc)
        except ValidationError as exc:
            raise ConfigError(f"{path}: {_message(exc)}") from None
        flat: dict = {}
        for sec in ImplosionFile.model_fields:
            for k, v in getattr(typed, sec).model_dump(exclude_unset=True).items():
                flat[k] = tuple(v) if isinstance(v, list) else v
        flat.update(overrides or {})
        if "seed" in flat:  # CLI --seed: a single seed
            flat["seeds"] = (int(flat.pop("seed")),)
        try:
            return cls(**flat)
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from None


_KNOWN = frozenset(ImplosionFile.model_fields) | frozenset(
    k for sec in ImplosionFile.model_fields.values() for k in sec.annotation.model_fields)
