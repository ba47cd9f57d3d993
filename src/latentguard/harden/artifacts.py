"""What an SRL-VAE run leaves on disk: checkpoints and resume, the diffusers VAE folder, run records, plots.

A run folder ``OUT`` holds ``vae/`` (:func:`save_hardened`), ``checkpoints/step-NNNNNNN.pt`` (format
:data:`CHECKPOINT_FORMAT`, read back with ``weights_only=True``), ``train_log.jsonl``, ``loss.png``,
``summary.csv`` and ``run.json``. :class:`RunFolder` writes them for the trainer; with ``path=None`` (an
in-memory run) or on a non-main process every writing method does nothing. Checkpoint *contents* are built
and restored by :func:`checkpoint_state` / :func:`restore_checkpoint`, so that a resumed run continues the
trajectory of an uninterrupted one bit for bit (encoder, optimizer, crop-sampler and noise RNG states).
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from latentguard.harden.config import RESUME_FREE_FIELDS, SRLConfig
from latentguard.harden.crops import ImageCrops
from latentguard.io import atomic_write_text, write_manifest
from latentguard.models.vae import LatentVAE

CHECKPOINT_FORMAT = "latentguard.srl-checkpoint/1"
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# ----------------------------------------------------------------------------------------------------
# Weights: fingerprints, the encoder's parameters, the saved diffusers folder
# ----------------------------------------------------------------------------------------------------
def params_fingerprint(modules: Sequence[torch.nn.Module]) -> str:
    """sha256 of the modules' state dicts (names and raw bytes): equal iff the weights are bit-identical."""
    h = hashlib.sha256()
    for m in modules:
        for name, t in sorted(m.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def encoder_param_names(vae: LatentVAE) -> list[str]:
    """Names (in ``vae.model.named_parameters()``) of the parameters SRL-VAE trains: ``encoder`` + ``quant_conv``."""
    ids = {id(p) for m in vae.encoder_modules for p in m.parameters()}
    return [n for n, p in vae.model.named_parameters() if id(p) in ids]


def save_hardened(vae: LatentVAE, folder: str | os.PathLike, cfg: SRLConfig, *, original_spec: str,
                  steps_done: int, complete: bool, probe: dict | None = None) -> Path:
    """Save as a diffusers ``AutoencoderKL`` folder (``config.json`` + safetensors) plus ``srl.json`` provenance."""
    folder = Path(folder)
    m = copy.deepcopy(vae.model).to("cpu").to(_DTYPES[cfg.save_dtype])
    tmp = folder.with_name(f".{folder.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    m.save_pretrained(str(tmp), safe_serialization=True)
    cfg_path = tmp / "config.json"
    conf = json.loads(cfg_path.read_text())
    conf.pop("_name_or_path", None)  # a local path of the machine that trained it
    cfg_path.write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")
    (tmp / "srl.json").write_text(json.dumps({
        "method": "SRL-VAE (arXiv 2504.17219), encoder fine-tuned, decoder frozen",
        "original": original_spec, "config": cfg.to_dict(), "steps_done": steps_done, "complete": complete,
        "probe_training_crops": probe,
    }, indent=2) + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


# ----------------------------------------------------------------------------------------------------
# Checkpoints and resume
# ----------------------------------------------------------------------------------------------------
def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The newest checkpoint of a run folder (``checkpoints/step-NNNNNNN.pt``), or None."""
    ck = sorted((Path(out_dir) / "checkpoints").glob("step-*.pt"))
    return ck[-1] if ck else None


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint's state dict; ``ValueError`` if it is unreadable or not an SRL-VAE checkpoint."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); delete it to restart") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an SRL-VAE checkpoint ({CHECKPOINT_FORMAT})")
    return state


def check_resume_config(saved: dict, cfg: SRLConfig, path: Path) -> None:
    """``ValueError`` naming the first field outside :data:`RESUME_FREE_FIELDS` that differs from the checkpoint's."""
    now = cfg.to_dict()
    diff = [k for k in now if k not in RESUME_FREE_FIELDS and saved.get(k) != now[k]]
    if diff:
        k = diff[0]
        raise ValueError(
            f"cannot resume from {path}: config field {k!r} was {saved.get(k)!r}, now {now[k]!r} "
            f"(only {', '.join(RESUME_FREE_FIELDS)} may change); use a new --out or the same settings"
        )


def checkpoint_state(step: int, cfg: SRLConfig, hardened: LatentVAE, opt: torch.optim.Optimizer, crops: ImageCrops,
                     noise: torch.Generator, original_encoder_sha256: str,
                     noise_ranks: list[torch.Tensor] | None = None) -> dict:
    """Everything a resumed run needs to continue the trajectory (a dict of tensors and plain values)."""
    params = dict(hardened.model.named_parameters())
    state = {
        "format": CHECKPOINT_FORMAT, "step": step, "config": cfg.to_dict(),
        "encoder": {n: params[n].detach().to("cpu").clone() for n in encoder_param_names(hardened)},
        "optimizer": opt.state_dict(), "data": crops.state_dict(), "noise": noise.get_state().to("cpu"),
        "original_encoder_sha256": original_encoder_sha256,
    }
    if noise_ranks is not None:
        state["noise_ranks"] = noise_ranks
    return state


def restore_checkpoint(path: Path, cfg: SRLConfig, hardened: LatentVAE, opt: torch.optim.Optimizer,
                       crops: ImageCrops, noise: torch.Generator, original_encoder_sha256: str, *,
                       rank: int = 0, world: int = 1) -> int:
    """Load the checkpoint at ``path`` into the training state (in place); returns the step it was taken at.

    Raises:
        ValueError: the checkpoint is unreadable, was made with another config (outside
            :data:`RESUME_FREE_FIELDS`), from another VAE, or with another number of processes.
    """
    state = load_checkpoint(path)
    check_resume_config(state["config"], cfg, path)
    if state["original_encoder_sha256"] != original_encoder_sha256:
        raise ValueError(f"cannot resume from {path}: it was made from another VAE (encoder fingerprint differs)")
    params = dict(hardened.model.named_parameters())
    dev = next(iter(params.values())).device
    with torch.no_grad():
        for n in encoder_param_names(hardened):
            params[n].copy_(state["encoder"][n].to(dev))
    opt.load_state_dict(state["optimizer"])
    crops.load_state_dict(state["data"])
    ranks = state.get("noise_ranks")
    if ranks is not None and len(ranks) == world:
        noise.set_state(ranks[rank])
    elif world == 1:
        noise.set_state(state["noise"])
    else:
        raise ValueError(f"cannot resume from {path} with {world} processes: it was made with "
                         f"{len(ranks) if ranks is not None else 1}; launch the same number of processes")
    return int(state["step"])


# ----------------------------------------------------------------------------------------------------
# Logs, plots, summary
# ----------------------------------------------------------------------------------------------------
def read_log(path: Path, upto: int | None = None) -> list[dict]:
    """The rows of a ``train_log.jsonl`` (unparsable lines skipped), those up to step ``upto`` if given."""
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if upto is None or r.get("step", 0) <= upto:
                rows.append(r)
    return rows


def write_plot(rows: list[dict], path: Path) -> None:
    """``loss.png``: the reconstruction / total losses and the originality term over steps."""
    import matplotlib  # deferred: matplotlib is heavy and only needed when a run folder is written

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    series = [("adv_rec", "reconstruction (adversarial steps)"), ("clean_rec", "reconstruction (clean steps)"),
              ("loss", "total loss")]
    for key, label in series:
        pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        if pts:
            ax[0].plot(*zip(*pts), label=label, lw=1)
    if any(v > 0 for line in ax[0].get_lines() for v in line.get_ydata()):
        ax[0].set_yscale("log")
    ax[0].set_xlabel("step")
    ax[0].legend(fontsize=8)
    ax[0].set_title("SRL-VAE losses")
    pts = [(r["step"], r["orig"]) for r in rows if r.get("orig") is not None]
    if pts:
        ax[1].plot(*zip(*pts), color="C3", lw=1)
        if any(v > 0 for _, v in pts):
            ax[1].set_yscale("log")
    ax[1].set_xlabel("step")
    ax[1].set_title("originality ||s(E(x)-E0(x))||^2")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_summary(path: Path, *, steps_done: int, complete: bool, minutes: float, probe: dict | None,
                  rows: list[dict]) -> None:
    """``summary.csv``: one row with the run's progress, first/last adversarial losses and the probe."""
    last_adv = [r["adv_rec"] for r in rows if r.get("adv_rec") is not None]
    first = sum(last_adv[:5]) / max(1, len(last_adv[:5])) if last_adv else None
    last = sum(last_adv[-5:]) / max(1, len(last_adv[-5:])) if last_adv else None
    rec = {"steps_done": steps_done, "complete": complete, "minutes_this_session": round(minutes, 2),
           "adv_rec_first5": first, "adv_rec_last5": last, **(probe or {})}
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rec))
        w.writeheader()
        w.writerow(rec)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------------
# The run folder, as the trainer sees it
# ----------------------------------------------------------------------------------------------------
class RunFolder:
    """The files of one run in ``path`` (``None``: an in-memory run, nothing is written).

    Only the main process writes (``main=False``: every writing method is a no-op); the checks of
    :meth:`checkpoint_to_resume` run on every process.

    Args:
        path: the run folder, or ``None``.
        cfg: the run's config (checkpoint pruning, log cadence, what ``run.json`` records).
        main: whether this is the main process.
        command: the command line recorded in ``run.json``.
    """

    def __init__(self, path: str | os.PathLike | None, cfg: SRLConfig, *, main: bool = True,
                 command: str = "latentguard.harden.harden") -> None:
        self.path = Path(path) if path is not None else None
        self.cfg = cfg
        self.writes = self.path is not None and main
        self.command = command
        self.record: dict = {}
        self._start_revision = None

    @property
    def log_path(self) -> Path | None:
        return self.path / "train_log.jsonl" if self.path is not None else None

    def checkpoint_to_resume(self, resume: bool) -> Path | None:
        """The checkpoint to continue from (``None``: a fresh run); raises on an inconsistent request.

        Raises:
            ValueError: ``resume`` without a folder, or a fresh run into a folder that holds one.
            FileNotFoundError: ``resume`` into a folder without a checkpoint.
        """
        if resume and self.path is None:
            raise ValueError("resume=True needs out_dir (the folder of the interrupted run)")
        ckpt = latest_checkpoint(self.path) if (self.path is not None and resume) else None
        if resume and ckpt is None:
            raise FileNotFoundError(f"nothing to resume: {self.path}/checkpoints has no step-*.pt checkpoint")
        if self.path is not None and not resume and latest_checkpoint(self.path) is not None:
            raise ValueError(f"{self.path} already holds an SRL-VAE run; pass resume (--resume) to continue it "
                             "or choose a new --out")
        return ckpt

    def create(self) -> None:
        """Make the folder and its ``checkpoints/``."""
        if self.writes:
            self.path.mkdir(parents=True, exist_ok=True)
            (self.path / "checkpoints").mkdir(exist_ok=True)

    def start_log(self, resumed_at: int | None) -> None:
        """A fresh run drops an old log; a resumed one drops the rows after its checkpoint (redone identically)."""
        if not self.writes:
            return
        if resumed_at is not None:
            rows = read_log(self.log_path, upto=resumed_at)
            atomic_write_text(self.log_path, "".join(json.dumps(r) + "\n" for r in rows))
        elif self.log_path.exists():
            self.log_path.unlink()

    def write_start_record(self, record: dict, *, seed: int) -> None:
        """``run.json`` at the start: ``record`` (config, VAE, device, ...) and the git revision of the code."""
        self.record = record
        if self.writes:
            manifest = write_manifest(self.path, self.command, record, seed=seed)
            self._start_revision = json.loads(manifest.read_text()).get("git_revision")

    def append_log(self, row: dict) -> None:
        """One ``train_log.jsonl`` row."""
        if self.writes:
            with open(self.log_path, "a") as fh:
                fh.write(json.dumps(row) + "\n")

    def save_checkpoint(self, step: int, state: dict) -> None:
        """``checkpoints/step-NNNNNNN.pt`` (atomic), keeping the newest ``keep_checkpoints``."""
        if not self.writes:
            return
        ck = self.path / "checkpoints"
        _atomic_torch_save(state, ck / f"step-{step:07d}.pt")
        for old in sorted(ck.glob("step-*.pt"))[: -self.cfg.keep_checkpoints]:
            old.unlink(missing_ok=True)

    def plot(self) -> None:
        """``loss.png`` from the log so far."""
        if self.writes:
            write_plot(read_log(self.log_path), self.path / "loss.png")

    def finish(self, hardened: LatentVAE, *, original_spec: str, steps_done: int, complete: bool, minutes: float,
               probe: dict | None) -> Path | None:
        """Write ``vae/``, ``loss.png``, ``summary.csv`` and the final ``run.json``; returns ``OUT/vae`` (or None)."""
        if self.path is None:
            return None
        vae_dir = self.path / "vae"
        if not self.writes:
            return vae_dir
        save_hardened(hardened, vae_dir, self.cfg, original_spec=original_spec, steps_done=steps_done,
                      complete=complete, probe=probe)
        rows = read_log(self.log_path)
        if rows:
            write_plot(rows, self.path / "loss.png")
        write_summary(self.path / "summary.csv", steps_done=steps_done, complete=complete, minutes=minutes,
                      probe=probe, rows=rows)
        write_manifest(self.path, self.command, self.record, seed=self.cfg.seed,
                       extra={"git_revision": self._start_revision,  # the code that ran, not the tree at the end
                              "result": {"steps_done": steps_done, "complete": complete,
                                         "minutes_this_session": minutes, "probe": probe}})
        return vae_dir
