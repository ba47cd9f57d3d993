"""End-to-end privacy audits: data loading, the per-batch work, and the report files.

``run_membership_audit`` loads a pipeline and two image sets, computes the pullback geometry of the
pipeline's VAE at every encoder mean, the attack residuals of its UNet, and writes ``summary.json``,
``summary.csv``, per-sample ``items.jsonl``, ROC / timestep / distortion plots and ``index.html``.
``run_pullback_audit`` does the geometry alone for a VAE and a set of images.
"""

from __future__ import annotations

import csv
import html
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from latentguard.io import atomic_write_text, collect_inputs, datasets, iter_images, JsonlWriter
from latentguard.models import LatentVAE, pad_to_multiple, registry
from latentguard.ops import roc
from latentguard.ops.transforms import resize_center_crop
from latentguard.privacy import mia
from latentguard.privacy.pullback import PullbackConfig, analyze_pullback

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------
@dataclass
class ImageSet:
    """Images ``[N,3,H,W]`` in [0,1], their prompts and ids."""

    images: torch.Tensor
    prompts: list[str]
    ids: list[str]


def zoo_split_sets(model_spec: str, n_members: int | None, n_nonmembers: int | None, seed: int = 0,
                   template: int = 0) -> tuple[ImageSet, ImageSet, dict]:
    """The declared member / non-member Fashion-MNIST ids of a zoo MIA target (``splits.json``).

    A subset (``n_members`` / ``n_nonmembers``) is drawn class-balanced-at-random with ``seed``.
    Captions are ``caption_for(label, template)`` as in training.
    """
    folder = registry.model_dir(model_spec)
    split_file = folder / "splits.json"
    if split_file.exists():
        split = json.loads(split_file.read_text())
    else:
        split = datasets.member_split()
    images, labels = datasets.fashion_mnist("train")
    rng = np.random.default_rng(seed)

    def take(ids: list[int], n: int | None) -> ImageSet:
        ids = np.asarray(sorted(ids))
        if n is not None:
            if n < 2 or n > len(ids):
                raise ValueError(f"subset size {n} must be in [2, {len(ids)}]")
            ids = np.sort(rng.choice(ids, n, replace=False))
        x = torch.from_numpy(datasets.fashion_to_rgb32(images[ids]))
        prompts = [datasets.caption_for(int(labels[i]), template) for i in ids]
        return ImageSet(x, prompts, [f"fmnist-train-{int(i)}" for i in ids])

    mem = take(split["members"], n_members)
    non = take(split["nonmembers"], n_nonmembers)
    return mem, non, {"source": f"{model_spec} splits.json", "dataset": split.get("dataset"), "split_seed": split.get("seed")}


def _read_list(spec: str) -> list[str]:
    p = Path(spec)
    if p.is_file() and p.suffix.lower() in (".txt", ".lst"):
        base = p.parent
        out = []
        for line in p.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                q = Path(line)
                out.append(str(q if q.is_absolute() else base / q))
        if not out:
            raise ValueError(f"list file {spec} names no images")
        return out
    return [spec]


def folder_set(inputs: list[str], size: int, prompt: str | None) -> tuple[ImageSet, list[dict]]:
    """Images from files / folders / globs / ``.txt`` lists, resized (shorter side) and centre-cropped to
    ``size``. Prompt: ``prompt`` if given, else a sidecar ``<stem>.txt`` caption, else the empty prompt.
    Bad files are reported in the returned error list, never stop the batch."""

    paths = collect_inputs([q for s in inputs for q in _read_list(s)])
    xs, prompts, ids, errors = [], [], [], []
    for p, img, err in iter_images(paths):
        if err is not None:
            errors.append({"key": str(p), "status": "error", "error": str(err)})
            continue
        xs.append(resize_center_crop(img, size, mode="bilinear"))
        side = p.with_suffix(".txt")
        prompts.append(prompt if prompt is not None else (side.read_text().strip() if side.exists() else ""))
        ids.append(str(p))
    if len(xs) < 2:
        raise ValueError(f"need at least 2 readable images in {inputs}, got {len(xs)}")
    return ImageSet(torch.cat(xs), prompts, ids), errors


# ----------------------------------------------------------------------------------------------------
# the membership audit
# ----------------------------------------------------------------------------------------------------
@torch.no_grad()
def _encode(vae, x: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([vae.encode(x[i : i + batch].to(vae.device))[0] for i in range(0, len(x), batch)])


@torch.no_grad()
def _prompt_states(pipe, prompts: list[str], device, batch: int = 64) -> torch.Tensor:
    out = []
    for i in range(0, len(prompts), batch):
        out.append(pipe.encode_prompt(prompts[i : i + batch], device, 1, False)[0])
    return torch.cat(out)


def compute_membership_scores(pipe, members: ImageSet, nonmembers: ImageSet, config: mia.MIAConfig,
                              pullback: PullbackConfig | None, *, prompt_mode: str = "caption", seed: int = 0,
                              progress: bool = True) -> tuple[mia.MembershipScores, dict]:
    """Residuals of every attack for both sets, plus the pullback masks / log-volumes (``pullback=None``:
    unmasked only). Returns the scores and timing information."""

    if prompt_mode not in ("caption", "empty"):
        raise ValueError(f"prompt_mode must be caption|empty, got {prompt_mode!r}")
    device = pipe.unet.device
    vae = LatentVAE(pipe.vae, spec="pipeline.vae")
    x = torch.cat([members.images, nonmembers.images])
    prompts = members.prompts + nonmembers.prompts
    if prompt_mode == "empty":
        prompts = [""] * len(prompts)
    labels = np.r_[np.ones(len(members.ids)), np.zeros(len(nonmembers.ids))].astype(np.int64)
    timing = {}
    t0 = time.time()
    mean = _encode(vae, x.to(vae.dtype), config.batch_size)
    z0 = vae.to_pipeline_latent(mean).float()
    cond = _prompt_states(pipe, prompts, device).float()
    timing["encode_s"] = time.time() - t0
    unet_training = pipe.unet.training
    pipe.unet.eval()
    try:
        t0 = time.time()
        scorer = mia.ResidualScorer(pipe.unet, pipe.scheduler, config)
        powered = scorer.powered_residuals(z0, cond, progress=progress)
        timing["attacks_s"] = time.time() - t0
    finally:
        pipe.unet.train(unet_training)
    contrib = lv = None
    if pullback is not None:
        t0 = time.time()
        res = analyze_pullback(vae, latents=mean.float(), config=pullback, generator=torch.Generator().manual_seed(seed),
                               progress=progress)
        contrib, lv = res.contrib.numpy(), res.log_volume.numpy()
        timing["pullback_s"] = time.time() - t0
    ms = mia.MembershipScores.build(labels, config.timesteps, powered, contrib=contrib,
                                    drop=pullback.drop if pullback else 0.4, log_volume=lv, seed=seed)
    return ms, timing


def _plots(ms: mia.MembershipScores, summary: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    attacks = list(ms.attacks)
    fig, axes = plt.subplots(1, len(attacks), figsize=(4 * len(attacks), 4), squeeze=False)
    for ax, a in zip(axes[0], attacks):
        for mk in ms.mask_names:
            t = summary["attacks"][a][mk]["paper"]["timestep"]
            j = list(ms.timesteps).index(t)
            fpr, tpr, _ = roc.roc_curve(ms.scores(a, mk)[:, j], ms.labels)
            au = summary["attacks"][a][mk]["paper"]["auroc"]
            ax.plot(fpr, tpr, label=f"{mk} (t={t}, AUC {au:.3f})")
        ax.plot([1e-3, 1], [1e-3, 1], "k:", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(1e-3, 1)
        ax.set_ylim(1e-3, 1.05)
        ax.set_title(f"{a}: ROC (paper protocol)")
        ax.set_xlabel("FPR")
        ax.set_ylabel("TPR")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=110)
    plt.close(fig)
    files.append("roc.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    for ci, a in enumerate(attacks):
        for mk, ls in zip(ms.mask_names, ("-", "--", ":")):
            ax.plot(ms.timesteps, summary["attacks"][a][mk]["paper"]["auroc_per_timestep"], ls, marker="o",
                    color=f"C{ci}", label=f"{a}/{mk}")
    ax.axhline(0.5, color="k", lw=0.6)
    ax.set_xlabel("timestep t")
    ax.set_ylabel("AUROC")
    ax.set_title("AUROC per timestep (all samples)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "auroc_vs_timestep.png", dpi=110)
    plt.close(fig)
    files.append("auroc_vs_timestep.png")

    if "distortion" in summary:
        q = summary["distortion"]["quartiles"]
        fig, ax = plt.subplots(figsize=(6, 4))
        names = list(q)
        for ci, a in enumerate(attacks):
            for mk, ls in zip(ms.mask_names, ("-", "--", ":")):
                ax.plot(names, [q[n][f"{a}/{mk}"] if q[n][f"{a}/{mk}"] is not None else np.nan for n in names], ls,
                        marker="o", color=f"C{ci}", label=f"{a}/{mk}")
        ax.axhline(0.5, color="k", lw=0.6)
        ax.set_xlabel("log-volume quartile (Q1 lowest distortion)")
        ax.set_ylabel("AUROC")
        ax.set_title("attack per distortion quartile")
        ax.legend(fontsize=6, ncol=2)
        fig.tight_layout()
        fig.savefig(out / "distortion.png", dpi=110)
        plt.close(fig)
        files.append("distortion.png")
    return files


def summary_rows(summary: dict) -> list[dict]:
    rows = []
    for a, by_mask in summary["attacks"].items():
        for mk, by_proto in by_mask.items():
            for proto, r in by_proto.items():
                rows.append({"attack": a, "mask": mk, "protocol": proto, "auroc": r["auroc"], "asr": r["asr"],
                             "tpr_at_1pct_fpr": r["tpr_at_1pct_fpr"], "tpr_at_0.1pct_fpr": r["tpr_at_0.1pct_fpr"],
                             "timestep": r["timestep"]})
    return rows


def _html(summary: dict, rows: list[dict], plots: list[str], title: str) -> str:
    def f(v):
        return f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{f(v)}</td>" for v in r.values()) + "</tr>" for r in rows)
    dist = ""
    if "distortion" in summary:
        d = summary["distortion"]
        keys = [k for k in next(iter(d["quartiles"].values())) if "/" in k and k != "per_timestep"]
        # One row per (group, attack), one column per mask: the page keeps its width however many attacks
        # and masks there are (a column per attack/mask ran off a 1200 px page).
        attacks = list(dict.fromkeys(k.split("/", 1)[0] for k in keys))
        masks = list(dict.fromkeys(k.split("/", 1)[1] for k in keys))
        dh = "<tr><th>group</th><th>n</th><th>members</th><th>attack</th>" + "".join(
            f"<th>{html.escape(m)} mask</th>" for m in masks) + "</tr>"
        db = ""
        for how in ("median", "quartiles"):
            for name, g in d[how].items():
                for ai, a in enumerate(attacks):
                    lead = (f"<td>{how}:{name}</td><td>{g['n']}</td><td>{g['n_members']}</td>" if ai == 0
                            else "<td></td><td></td><td></td>")
                    db += f"<tr>{lead}<td>{html.escape(a)}</td>" + "".join(
                        f"<td>{f(g[f'{a}/{m}']) if g.get(f'{a}/{m}') is not None else '-'}</td>" for m in masks) + "</tr>"
        lvs = d["log_volume"]
        dist = (f"<h2>Distortion split (AUROC per log-volume group)</h2><p>mean log-volume: members "
                f"{lvs['members_mean']:.3f}, non-members {lvs['nonmembers_mean']:.3f}; AUROC of log-volume alone "
                f"{lvs['auroc_of_log_volume']:.3f}</p><div class='wide'><table>{dh}{db}</table></div>")
    imgs = "".join(f'<p><img src="{html.escape(p)}" style="max-width:100%"></p>' for p in plots)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:sans-serif;margin:2em auto;max-width:1200px;padding:0 1em}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}"
            ".wide{max-width:100%;overflow-x:auto}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{summary['n_members']} members, {summary['n_nonmembers']} non-members; "
            f"timesteps {summary['timesteps']}. Protocols: <b>paper</b> = best timestep chosen with all labels; "
            f"<b>honest</b> = timestep and threshold chosen on a {summary['calib_fraction']:.0%} calibration split, "
            "scored on the rest. Masks: none, pullback (drop lowest-contribution dims), random (same count, "
            f"random).</p><div class='wide'><table><tr>{head}</tr>{body}</table></div>{dist}{imgs}</body></html>")


def write_membership_report(ms: mia.MembershipScores, ids: list[str], summary: dict, out: Path, title: str) -> None:
    """``summary.json``, ``summary.csv``, ``items.jsonl``, plots and ``index.html`` into ``out``."""

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    rows = summary_rows(summary)
    with open(out / "summary.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    items = JsonlWriter(out / "items.jsonl", resume=False)
    stats = {(a, mk): -ms.scores(a, mk) for a in ms.attacks for mk in ms.mask_names}
    for i, key in enumerate(ids):
        row = {"key": key, "status": "ok", "member": int(ms.labels[i]),
               "log_volume": None if not np.isfinite(ms.log_volume[i]) else float(ms.log_volume[i])}
        for (a, mk), s in stats.items():
            row[f"S/{a}/{mk}"] = {str(t): float(s[i, j]) for j, t in enumerate(ms.timesteps)}
        items.write(row)
    plots = _plots(ms, summary, out)
    atomic_write_text(out / "index.html", _html(summary, rows, plots, title))


def run_membership_audit(pipe, members: ImageSet, nonmembers: ImageSet, out: Path, *, config: mia.MIAConfig,
                         pullback: PullbackConfig | None, prompt_mode: str = "caption", calib_fraction: float = 0.5,
                         seed: int = 0, title: str = "membership audit", progress: bool = True) -> dict:
    """Compute, evaluate and write the membership audit; returns the summary dict."""
    ms, timing = compute_membership_scores(pipe, members, nonmembers, config, pullback, prompt_mode=prompt_mode,
                                           seed=seed, progress=progress)
    summary = mia.evaluate(ms, calib_fraction=calib_fraction, seed=seed)
    summary["timing_s"] = {k: round(v, 1) for k, v in timing.items()}
    summary["config"] = {"mia": {**asdict(config), "powers": {a: config.power(a) for a in config.attacks}},
                         "pullback": asdict(pullback) if pullback else None, "prompt_mode": prompt_mode}
    write_membership_report(ms, members.ids + nonmembers.ids, summary, out, title)
    return summary


# ----------------------------------------------------------------------------------------------------
# the pullback audit
# ----------------------------------------------------------------------------------------------------
def run_pullback_audit(vae, paths: list[Path], out: Path, config: PullbackConfig, *, seed: int = 0,
                       batch_size: int = 8, progress: bool = True) -> dict:
    """Log-volume and per-dim contributions for every readable image; ``pullback.jsonl`` / ``.csv`` /
    ``contrib.npz`` / ``pullback.png`` in ``out``. Images are padded to the VAE's factor (reflect)."""
    from tqdm.auto import tqdm

    out.mkdir(parents=True, exist_ok=True)
    items = JsonlWriter(out / "pullback.jsonl", resume=False)
    g = torch.Generator().manual_seed(seed)
    rows, contribs, n_err = [], {}, 0
    for p, img, err in tqdm(list(iter_images(paths)), desc="pullback", disable=not progress, unit="img"):
        if err is not None:
            items.write({"key": str(p), "status": "error", "error": str(err)})
            n_err += 1
            continue
        x, _ = pad_to_multiple(img, vae.info.downsample_factor)
        res = analyze_pullback(vae, x, config=config, generator=g, batch_size=batch_size)
        c = res.contrib[0]
        row = {"key": str(p), "status": "ok", "height": int(img.shape[-2]), "width": int(img.shape[-1]),
               "latent_shape": list(res.latents.shape[1:]), "log_volume": float(res.log_volume[0]),
               "top_singular_values": [float(s) for s in res.singular_values[0]],
               "contrib_mean": float(c.mean()), "contrib_std": float(c.std()), "contrib_min": float(c.min()),
               "contrib_max": float(c.max()), "kept_dims": int(res.keep[0].sum()), "dims": int(c.numel())}
        items.write(row)
        rows.append(row)
        contribs[Path(p).stem] = c.reshape(res.latents.shape[1:]).numpy()
    if not rows:
        raise ValueError("no readable images")
    cols = ["key", "height", "width", "log_volume", "contrib_mean", "contrib_std", "contrib_min", "contrib_max",
            "kept_dims", "dims"]
    with open(out / "pullback.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    np.savez_compressed(out / "contrib.npz", **contribs)
    _pullback_plot(rows, contribs, out / "pullback.png")
    summary = {"n_images": len(rows), "n_errors": n_err, "log_volume_mean": float(np.mean([r["log_volume"] for r in rows])),
               "config": asdict(config)}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _pullback_plot(rows: list[dict], contribs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(len(contribs), 6)
    fig, axes = plt.subplots(1, n + 1, figsize=(3.2 * (n + 1), 3), squeeze=False)
    ax = axes[0, 0]
    ax.bar(range(len(rows)), [r["log_volume"] for r in rows])
    ax.set_title("log-volume per image")
    ax.set_xlabel("image")
    for ax, (name, c) in zip(axes[0, 1:], list(contribs.items())[:n]):
        im = ax.imshow(c.mean(0), cmap="viridis")
        ax.set_title(f"{name[:18]}: mean c_k over channels", fontsize=8)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
