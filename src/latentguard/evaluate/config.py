"""The bench config: its TOML schema (strict) and the normalised :class:`BenchConfig` the runner takes.

A config declares a matrix (see ``examples/pca_table.toml``)::

    [run]       targets (model specs the edits run on), seed, device, dtype,
                images ("samples" | [files, folders, globs]), image_size, max_images, batch_size, metrics,
                embedder, grid_images, name
    [protect]   methods, budgets ("16/255" or 0.0627), steps, surrogates, [protect.params.<method>]
    [[edits]]            kind = recon | img2img | inpaint (+ their parameters; see evaluate.edits)
    [[purifications]]    kind = none | jpeg | webp | resize | blur | noise | diffpure | impress | noisy-upscale
                         | noisy-upscale-standin | gridpure

The schema is a set of pydantic models with ``extra="forbid"`` and strict types: an unknown key anywhere,
a misspelt edit or purification kind, an unknown metric, an unknown protection method or a parameter a
method does not take fails when the file is read, before any model is loaded, as one
:class:`~latentguard.core.errors.ConfigError` line naming the key by its dotted path
(``edits[1].strenght``). The CLI prints it and exits with status 2.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from latentguard.core.config import read_toml
from latentguard.core.errors import ConfigError
from latentguard.core.units import parse_budget
from latentguard.evaluate.edits import target_spec
from latentguard.ops.metrics import REGISTRY as METRICS
from latentguard.protect import registry as protections

DEFAULT_METRICS = ("psnr", "ssim", "embed-dist", "embed-fid", "embed-clip-score")


# ------------------------------------------------------------------------------------------- schema
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _metric(name: str) -> str:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose from {sorted(METRICS)}")
    return name


def _method(name: str) -> str:
    return protections.check_name(name)


def _budget(value: Any) -> Any:
    parse_budget(value)
    return value


Budget = Annotated[Union[str, float], AfterValidator(_budget)]
Metric = Annotated[str, AfterValidator(_metric)]
Method = Annotated[str, AfterValidator(_method)]


class TargetTable(_Strict):
    """``{model = "zoo:t2i", vae = "zoo:vae-a-srl"}``: a pipeline with another VAE swapped in."""

    model: str
    vae: str | None = None


Targets = Union[str, TargetTable, list[Union[str, TargetTable]]]


class RunSection(_Strict):
    targets: Targets | None = None
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    images: Union[str, list[str]] = "samples"
    image_size: int | None = 64
    max_images: int | None = None
    batch_size: int = 4
    metrics: Union[Metric, list[Metric]] = list(DEFAULT_METRICS)
    embedder: str = "zoo:embed"
    grid_images: int = 4
    name: str = "bench"


class ProtectSection(_Strict):
    methods: Union[Method, list[Method]]
    budgets: Union[Budget, list[Budget]] = ["16/255"]
    steps: int = 40
    surrogates: Union[str, list[str]]
    params: dict[str, dict[str, Any]] = {}

    @model_validator(mode="after")
    def _params_name_methods_and_their_parameters(self) -> "ProtectSection":
        methods = [self.methods] if isinstance(self.methods, str) else list(self.methods)
        unknown = sorted(set(self.params) - set(methods))
        if unknown:
            raise ValueError(f"[protect.params] names methods not in protect.methods: {unknown}")
        for method, params in self.params.items():
            # imports the method's module (torch), loads no model; the matrix itself sets vae, eps and steps
            accepted = protections.parameter_names(method) - {"vae", "eps", "steps"}
            bad = sorted(set(params) - accepted)
            if bad:
                raise ValueError(f"protect.params.{method}.{bad[0]}: {method} takes no parameter(s) {bad}; "
                                 f"accepted: {sorted(accepted)}")
        return self


# Edits: one model per kind (parameters of evaluate.edits' classes; a test keeps them in step).
class ReconEdit(_Strict):
    kind: Literal["recon"]
    sample: bool | list[bool] = False


class Img2ImgEdit(_Strict):
    kind: Literal["img2img"]
    prompts: str | list[str] = "pca"
    strength: float = 0.5
    steps: int = 20
    guidance: float = 7.5
    negative_prompt: str | None = None


class InpaintEdit(_Strict):
    kind: Literal["inpaint"]
    prompts: str | list[str] = "pca"
    mask_fraction: float = 0.5
    strength: float = 1.0
    steps: int = 20
    guidance: float = 7.5


EditSpec = Annotated[Union[ReconEdit, Img2ImgEdit, InpaintEdit], Field(discriminator="kind")]


# Purifications: the swept parameter may be a list (one purification per value).
class NoPurificationSpec(_Strict):
    kind: Literal["none"]


class JPEGSpec(_Strict):
    kind: Literal["jpeg"]
    quality: int | list[int] = 75


class WebPSpec(_Strict):
    kind: Literal["webp"]
    quality: int | list[int] = 75


class ResizeSpec(_Strict):
    kind: Literal["resize"]
    scale: float | list[float] = 0.5


class BlurSpec(_Strict):
    kind: Literal["blur"]
    sigma: float | list[float] = 1.0


class NoiseSpec(_Strict):
    kind: Literal["noise"]
    std: float | list[float] = 0.05


class DiffPureSpec(_Strict):
    kind: Literal["diffpure"]
    t_star: float | list[float] = 0.1
    steps: int = 50


class ImpressSpec(_Strict):
    kind: Literal["impress"]
    steps: int | list[int] = 50
    eps: Budget = 8 / 255
    lr: float = 0.01
    lam: float = 10.0
    bound: float = 0.05


class NoisyUpscaleSpec(_Strict):
    kind: Literal["noisy-upscale"]
    std: float | list[float] = 0.05
    steps: int = 20
    noise_level: int = 20
    upscaler: str | None = None


class NoisyUpscaleStandInSpec(_Strict):
    kind: Literal["noisy-upscale-standin"]
    std: float | list[float] = 0.05
    factor: int = 4
    t_star: float = 0.2
    steps: int = 50


class GrIDPureSpec(_Strict):
    kind: Literal["gridpure"]
    iterations: int | list[int] = 20
    t_star: float = 0.1
    gamma: float = 0.1
    grid: int | None = None
    stride: int | None = None
    steps: int = 50


PurificationSpec = Annotated[Union[NoPurificationSpec, JPEGSpec, WebPSpec, ResizeSpec, BlurSpec, NoiseSpec,
                                   DiffPureSpec, ImpressSpec, NoisyUpscaleSpec, NoisyUpscaleStandInSpec, GrIDPureSpec],
                             Field(discriminator="kind")]
EDIT_SPECS = {m.model_fields["kind"].annotation.__args__[0]: m for m in (ReconEdit, Img2ImgEdit, InpaintEdit)}
PURIFICATION_SPECS = {m.model_fields["kind"].annotation.__args__[0]: m
                      for m in (NoPurificationSpec, JPEGSpec, WebPSpec, ResizeSpec, BlurSpec, NoiseSpec, DiffPureSpec,
                                ImpressSpec, NoisyUpscaleSpec, NoisyUpscaleStandInSpec, GrIDPureSpec)}


class BenchFile(_Strict):
    """The whole document."""

    run: RunSection = RunSection()
    protect: ProtectSection
    targets: Targets | None = None
    edits: list[EditSpec]
    purifications: list[PurificationSpec] = [NoPurificationSpec(kind="none")]


# ------------------------------------------------------------------------------------ error messages
_MODELS = (BenchFile, RunSection, ProtectSection, TargetTable, *EDIT_SPECS.values(), *PURIFICATION_SPECS.values())
_FIELD_NAMES = frozenset(name for m in _MODELS for name in m.model_fields)
_SECTIONS = {(): ("top-level config", BenchFile), ("run",): ("[run]", RunSection),
             ("protect",): ("[protect]", ProtectSection)}


def _strip_tag(loc: tuple) -> tuple:
    """``loc`` without the discriminator tag pydantic inserts after ``edits[i]`` / ``purifications[i]``."""
    if len(loc) > 2 and loc[0] in ("edits", "purifications") and isinstance(loc[1], int):
        return loc[:2] + loc[3:]
    return loc


def _dotted(loc: tuple) -> str:
    """``("edits", 1, "strength")`` -> ``edits[1].strength``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "<document>"


def _message(exc: ValidationError, doc: dict) -> str:
    """One line for every wrong key of ``exc``: its dotted path and what is wrong.

    pydantic reports a value that fits no member of a union once per member (with the member's label in
    the location); those are folded into one message per key, the most specific one kept.
    """
    groups: dict[tuple, list[tuple[tuple, dict]]] = {}
    for err in exc.errors():
        loc = _strip_tag(tuple(err["loc"]))
        if err["type"] == "extra_forbidden":
            norm = _normalise(loc[:-1]) + (loc[-1],)
            key = norm[:-1]
        else:
            norm = _normalise(loc)
            key = norm
        groups.setdefault(key, []).append((norm, err))
    # a list that failed as a scalar too: keep the item's error (run.metrics[1]), not the list's (run.metrics)
    for key in [k for k in groups if any(o[:len(k)] == k and len(o) > len(k) for o in groups)]:
        if all(e["type"] != "extra_forbidden" for _, e in groups[key]):
            del groups[key]
    msgs: list[str] = []
    for key, errs in groups.items():
        extra = [n[-1] for n, e in errs if e["type"] == "extra_forbidden"]
        if extra:
            msgs.append(_extra_message(key, extra, doc))
            continue
        rank = {"value_error": 0, "union_tag_invalid": 0, "union_tag_not_found": 0, "missing": 1}
        norm, err = min(errs, key=lambda ne: (rank.get(ne[1]["type"], 2), -len(ne[1]["loc"])))
        where = _dotted(norm)
        if err["type"] == "union_tag_invalid":
            kinds = EDIT_SPECS if norm[0] == "edits" else PURIFICATION_SPECS
            what = "edit" if norm[0] == "edits" else "purification"
            tag = err.get("ctx", {}).get("tag")
            msgs.append(f"{where}.kind: unknown {what} kind {tag!r}; choose from {', '.join(kinds)}")
        elif err["type"] == "union_tag_not_found":
            msgs.append(f"{where}: every [[{norm[0]}]] table needs a kind")
        elif err["type"] == "missing":
            msgs.append(f"{where} is required")
        elif err["type"] == "value_error":
            text = err["msg"].removeprefix("Value error, ")
            msgs.append(text if text.startswith((where, "[" + where)) else f"{where}: {text}")
        else:
            msgs.append(f"{where}: {err['msg'].lower()}, got {err.get('input')!r}")
    return "; ".join(msgs)


def _normalise(loc: tuple) -> tuple:
    """``loc`` without the union-member labels pydantic puts in it (``str``, ``list[str]``, ...)."""
    return tuple(p for p in loc if isinstance(p, int) or p in _FIELD_NAMES)


def _extra_message(parent: tuple, keys: list[str], doc: dict) -> str:
    if parent in _SECTIONS:
        label, model = _SECTIONS[parent]
    else:  # an [[edits]] / [[purifications]] table or a target table
        model = _model_at(parent, doc)
        label = f"{_dotted(parent)} ({model.__name__ if model else 'table'})"
    allowed = sorted(model.model_fields) if model else []
    hint = ""
    if parent == ("protect",) and "targets" in keys:
        hint = (" (TOML puts a key written after [protect] inside that table: write `targets = [...]` in [run] "
                "or above the first [table])")
    paths = ", ".join(_dotted(parent + (k,)) for k in keys)
    return f"unknown {label} keys {sorted(keys)} ({paths}); allowed: {allowed}{hint}"


def _model_at(loc: tuple, doc: dict) -> type[BaseModel] | None:
    if len(loc) == 2 and loc[0] in ("edits", "purifications") and isinstance(loc[1], int):
        try:
            kind = doc[loc[0]][loc[1]].get("kind")
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
        return (EDIT_SPECS if loc[0] == "edits" else PURIFICATION_SPECS).get(kind)
    if "targets" in loc:
        return TargetTable
    return None


def validate_document(doc: dict, source: str = "config") -> BenchFile:
    """The typed document; :class:`ConfigError` (one line, dotted keys) when anything is off."""
    try:
        return BenchFile.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_message(exc, doc)}") from None


# ------------------------------------------------------------------------------------ the runner's view
@dataclass(frozen=True)
class BenchConfig:
    """A validated benchmark matrix (built by :meth:`from_dict` / :meth:`from_toml`)."""

    methods: tuple[str, ...]
    budgets: tuple[tuple[float, str], ...]
    steps: int
    surrogates: tuple[str, ...]
    targets: tuple[str, ...]
    edits: tuple[dict, ...]
    purifications: tuple[dict, ...] = ({"kind": "none"},)
    method_params: dict = field(default_factory=dict, compare=False)
    images: tuple[str, ...] | str = "samples"
    image_size: int | None = 64
    max_images: int | None = None
    batch_size: int = 4
    metrics: tuple[str, ...] = DEFAULT_METRICS
    embedder: str = "zoo:embed"
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    grid_images: int = 4
    name: str = "bench"

    def __post_init__(self) -> None:
        if not self.methods:
            raise ValueError("protect.methods must list at least one method")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"protect.methods has duplicates: {list(self.methods)}")
        for m in self.methods:
            protections.check_name(m)
        if not self.budgets:
            raise ValueError("protect.budgets must list at least one budget")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"protect.steps must be an int >= 1, got {self.steps!r}")
        if not self.surrogates:
            raise ValueError("protect.surrogates must list at least one model spec")
        if not self.targets:
            raise ValueError("targets must list at least one model spec")
        if not self.edits:
            raise ValueError("declare at least one [[edits]] table")
        if not self.purifications:
            raise ValueError("purifications must not be empty (use kind = 'none')")
        for e in self.edits:
            if not isinstance(e, dict) or "kind" not in e:
                raise ValueError(f"every [[edits]] table needs a kind, got {e!r}")
        for p in self.purifications:
            if not isinstance(p, dict) or "kind" not in p:
                raise ValueError(f"every [[purifications]] table needs a kind, got {p!r}")
        if self.image_size is not None and (not isinstance(self.image_size, int) or self.image_size < 8):
            raise ValueError(f"run.image_size must be an int >= 8 (or 0 for native size), got {self.image_size!r}")
        if self.max_images is not None and (not isinstance(self.max_images, int) or self.max_images < 1):
            raise ValueError(f"run.max_images must be an int >= 1, got {self.max_images!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"run.batch_size must be an int >= 1, got {self.batch_size!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"run.seed must be a non-negative int, got {self.seed!r}")
        if not isinstance(self.grid_images, int) or self.grid_images < 0:
            raise ValueError(f"run.grid_images must be an int >= 0, got {self.grid_images!r}")
        if not self.metrics:
            raise ValueError("run.metrics must list at least one metric")
        for m in self.metrics:
            _metric(m)
        unknown = set(self.method_params) - set(self.methods)
        if unknown:
            raise ValueError(f"[protect.params] names methods not in protect.methods: {sorted(unknown)}")

    @classmethod
    def from_dict(cls, doc: dict, source: str = "config") -> "BenchConfig":
        """Validate ``doc`` (the parsed TOML) and normalise it; :class:`ConfigError` naming the key otherwise."""
        f = validate_document(doc, source)
        run, prot = f.run, f.protect
        if f.targets is not None and run.targets is not None:
            raise ConfigError(f"{source}: targets is given both at the top level and in [run]; keep one")
        targets = f.targets if f.targets is not None else run.targets
        if targets is None:
            raise ConfigError(f"{source}: config needs `targets = [...]` and at least one [[edits]] table")
        raw = dict(doc)
        size = run.image_size
        try:
            return cls(
                methods=tuple(_as_list(prot.methods)),
                budgets=tuple(parse_budget(b) for b in _as_list(prot.budgets)),
                steps=prot.steps,
                surrogates=tuple(_as_list(prot.surrogates)),
                targets=tuple(target_spec(t.model_dump() if isinstance(t, TargetTable) else t)
                              for t in _as_list(targets)),
                # the tables as written (the edit and purification builders take them), checked above
                edits=tuple(dict(e) for e in raw["edits"]),
                purifications=tuple(dict(p) for p in raw.get("purifications", [{"kind": "none"}])),
                method_params={k: dict(v) for k, v in prot.params.items()},
                images=run.images if run.images == "samples" else tuple(_as_list(run.images)),
                image_size=None if size in (0, None) else size,
                max_images=run.max_images,
                batch_size=run.batch_size,
                metrics=tuple(_as_list(run.metrics)),
                embedder=run.embedder,
                seed=run.seed,
                device=run.device,
                dtype=run.dtype,
                grid_images=run.grid_images,
                name=run.name,
            )
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def from_toml(cls, path: str | Path) -> "BenchConfig":
        return cls.from_dict(read_toml(path), source=str(path))

    def to_dict(self) -> dict:
        """The normalised config (written to run.json; ``latentguard report`` reads it back)."""
        d = dataclasses.asdict(self)
        d["budgets"] = [{"eps": e, "label": lab} for e, lab in self.budgets]
        d["images"] = self.images if isinstance(self.images, str) else list(self.images)
        return d


def _as_list(v: Any) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]
