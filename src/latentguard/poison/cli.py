"""Command line of the poison capability.

* ``latentguard poison DATASET --kind none|dirty-label|concept-swap|nightshade --concepts ... --out DIR``
* ``latentguard audit alignment DATASET --embedder zoo:embed --out DIR``
* ``latentguard implosion CONFIG.toml --out DIR``

``DATASET`` is a dataset folder (``captions.csv`` / ``captions.jsonl``, see docs/poison.md) or
``fashion-mnist:N[:split]``, a class-balanced Fashion-MNIST subset drawn on the fly (seed ``--seed``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from latentguard.core.cli_args import add_common_args, add_resume_args, get_audit_subparsers
from latentguard.core.errors import UserError
from latentguard.core.units import cli_number


_number = cli_number("0.0314 or 8/255")


def _command_line() -> str:
    return "latentguard " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _open_dataset(spec: str, seed: int):
    """A CaptionDataset-like object and its PairSet: a folder, or ``fashion-mnist:N[:split]``."""
    # deferred: torch and numpy (the dataset modules import them)
    from latentguard.io.datasets import DataUnavailableError
    from latentguard.poison.dataset import CaptionDataset, PairRecord, PairSet, fashion_pairs, read_dataset

    if spec.startswith("fashion-mnist:"):
        parts = spec.split(":")
        try:
            n = int(parts[1])
        except (IndexError, ValueError):
            raise UserError(f"bad dataset spec {spec!r}: use fashion-mnist:N or fashion-mnist:N:train|test") from None
        split = parts[2] if len(parts) > 2 else "train"
        try:
            x, caps, concepts, lab, ids = fashion_pairs(n, split=split, seed=seed)
        except DataUnavailableError as exc:
            raise UserError(str(exc)) from None
        ps = PairSet.from_lists(x, caps, concepts, extra={"label": lab.tolist(), "index": ids.tolist()})
        recs = tuple(PairRecord(f"images/{i:05d}.png", c, k, {"source_concept": k, "poisoned": "0"})
                     for i, (c, k) in enumerate(zip(caps, concepts)))
        return CaptionDataset(Path(spec), recs, None), ps
    ds = read_dataset(spec)
    return ds, None


# ----------------------------------------------------------------------------------------------------
# latentguard poison
# ----------------------------------------------------------------------------------------------------
def _parse_pairs(items: list[str]) -> list[tuple[str, str]]:

    out = []
    for it in items:
        if it.count(":") != 1:
            raise UserError(f"--concepts for this kind takes TARGET:SOURCE pairs (caption concept : image concept), got {it!r}")
        a, b = (s.strip() for s in it.split(":"))
        out.append((a, b))
    return out


def _cmd_poison(args: argparse.Namespace) -> int:
    # deferred: numpy and torch (and the modules below, which import them)
    import numpy as np
    import torch

    from latentguard.ops.grid import make_grid
    from latentguard.ops.runtime import resolve_device, seed_everything
    from latentguard.io import JsonlWriter, atomic_write_text, save_image, write_manifest
    from latentguard.models import load_vae
    from latentguard.poison import poisons as P
    from latentguard.poison.dataset import PairSet

    seed_everything(args.seed)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise UserError(f"{out} exists and is not empty (pass --overwrite to write into it)")
    ds, ps = _open_dataset(args.dataset, args.seed)
    if args.kind != "none" and (args.fraction is None) == (args.n_poison is None):
        raise UserError("give exactly one of --fraction and --n-poison")
    known = sorted({c for c in ds.concepts if c is not None})
    if args.kind != "none" and not known:
        raise UserError("the dataset has no 'concept' column: poisons need concept labels")
    plan: list[tuple[str, str]] = []
    if args.kind in ("dirty-label", "nightshade"):
        if args.k is not None:
            plan = P.poison_plan(known, args.k, seed=args.seed)
        elif args.concepts:
            plan = _parse_pairs(args.concepts)
        else:
            raise UserError(f"--kind {args.kind} needs --concepts TARGET:SOURCE ... or --k K")
    elif args.kind == "concept-swap":
        if args.k is not None:
            plan = [(t, "") for t, _ in P.poison_plan(known, args.k, seed=args.seed)]
        elif args.concepts:
            plan = [(c, "") for c in args.concepts]
        else:
            raise UserError("--kind concept-swap needs --concepts A B [C ...] or --k K")
    for t, s in plan:
        for c in (t, s):
            if c and c not in known:
                raise UserError(f"unknown concept {c!r}; the dataset's concepts: {', '.join(known)}")
    if ps is None:  # arguments checked: now read the images
        ps = PairSet.from_dataset(ds, args.image_size, progress=True)
    kw = dict(n_poison=args.n_poison, fraction=args.fraction)
    stats_rows: list[dict] = []
    t0 = time.time()
    if args.kind == "dirty-label":
        res = ps
        for l, (t, s) in enumerate(plan):
            res = P.dirty_label(res, t, s, mode=args.mode, seed=args.seed + l, **kw)
    elif args.kind == "concept-swap":
        res = P.concept_swap(ps, [t for t, _ in plan], mode=args.mode, seed=args.seed, **kw)
    elif args.kind == "nightshade":
        dev = resolve_device(args.device)
        vae = load_vae(args.vae, device=dev)
        cfg = P.NightshadeConfig(eps=args.eps, steps=args.steps, step_size=args.step_size, batch_size=args.batch_size)
        res = ps
        for l, (t, s) in enumerate(plan):
            res, st = P.nightshade(res, t, s, vae, cfg=cfg, seed=args.seed + l, **kw)
            for j, i in enumerate(st["index"]):
                stats_rows.append({"index": i, "target": t, "latent_target": s, "anchor_index": st["anchor_index"][j],
                                   "dist_before": st["dist_before"][j], "dist_after": st["dist_after"][j],
                                   "linf_255": st["linf"][j] * 255})
    else:
        res = ps
    new = res.write(out, progress=True)
    # per-poison JSONL and a per-(target, source) CSV summary
    jw = JsonlWriter(out / "poison.jsonl", resume=False)
    by_idx = {r["index"]: r for r in stats_rows}
    groups: dict[tuple[str, str], int] = {}
    for i in np.flatnonzero(res.poisoned & ~np.concatenate([ps.poisoned, np.zeros(len(res) - len(ps), bool)])):
        rec = new.records[i]
        src = res.extra.get("latent_target", [""] * len(res))[i] if args.kind == "nightshade" else res.source_concepts[i]
        row = {"index": int(i), "file": rec.file, "caption": rec.caption, "concept": rec.concept,
               "image_concept": res.source_concepts[i], "kind": args.kind, **by_idx.get(int(i), {})}
        jw.write(row)
        groups[(rec.concept or "", src or "")] = groups.get((rec.concept or "", src or ""), 0) + 1
    lines = ["target,source,n_poison,kind"] + [f'"{t}","{s}",{n},{args.kind}' for (t, s), n in sorted(groups.items())]
    atomic_write_text(out / "summary.csv", "\n".join(lines) + "\n")
    idx = np.flatnonzero(res.poisoned)[:16]
    if len(idx):
        rows = [res.images[torch.from_numpy(idx)]]
        if args.kind == "nightshade":
            clean = ps.images[torch.from_numpy(idx)]
            rows = [clean, rows[0], ((rows[0] - clean) / (2 * args.eps) + 0.5).clamp(0, 1)]
        save_image(make_grid(torch.cat(rows), nrow=len(idx)), out / "poison_grid.png")
    cfg_doc = {k: v for k, v in vars(args).items() if k != "func"}
    cfg_doc["plan"] = plan
    write_manifest(out, _command_line(), cfg_doc, args.seed,
                   extra={"n_pairs": len(res), "n_poisoned": int(res.poisoned.sum()), "seconds": time.time() - t0})
    print(json.dumps({"out": str(out), "n_pairs": len(res), "n_poisoned": int(res.poisoned.sum()),
                      "groups": {f"{t}<-{s}": n for (t, s), n in groups.items()}}))
    return 0


# ----------------------------------------------------------------------------------------------------
# latentguard audit alignment
# ----------------------------------------------------------------------------------------------------
def _cmd_audit_alignment(args: argparse.Namespace) -> int:
    # deferred: numpy and torch (and the modules below, which import them)
    import numpy as np

    from latentguard.ops.runtime import resolve_device, seed_everything
    from latentguard.io import prepare_out_dir, write_manifest
    from latentguard.poison.alignment import alignment_difficulty
    from latentguard.poison.audit import write_audit
    from latentguard.poison.dataset import PairSet
    from latentguard.poison.embed import SimilarityCalibration, embed_pairs, load_pair_embedder, similarity_calibration

    seed_everything(args.seed)
    t0 = time.time()
    out = prepare_out_dir(args.out, overwrite=args.overwrite, markers=("pairs.jsonl",), resumable=False)
    dev = resolve_device(args.device)
    ds, ps = _open_dataset(args.dataset, args.seed)
    embedder = load_pair_embedder(args.embedder, device=dev)
    cal = similarity_calibration(args.embedder)
    if args.sim_offset is not None or args.sim_scale is not None:
        cal = SimilarityCalibration(cal.offset if args.sim_offset is None else args.sim_offset,
                                    cal.scale if args.sim_scale is None else args.sim_scale,
                                    f"command line (embedder's: {cal.source})")
    size = args.image_size or getattr(embedder, "config", {}).get("image_size")
    if ps is None:
        ps = PairSet.from_dataset(ds, size, progress=True)
    u, v = embed_pairs(embedder, ps.images, list(ps.captions), batch_size=args.batch_size, progress=True)
    t_embed = time.time() - t0
    res = alignment_difficulty(u, v, args.alpha, method=args.method, block_size=args.block_size,
                               num_samples=args.num_samples, confidence=args.confidence, seed=args.seed,
                               sim_offset=cal.offset, sim_scale=cal.scale, device=dev, progress=True)
    if args.save_embeddings:
        np.savez_compressed(out / "embeddings.npz", image=u.numpy(), text=v.numpy())
    summary = write_audit(out, res, ds, top=args.top, extra_summary={
        "embedder": args.embedder, "similarity_calibration": cal.to_dict(), "dataset": args.dataset,
        "seconds_embed": round(t_embed, 2),
        "seconds_total": round(time.time() - t0, 2)})
    cfg = {k: v for k, v in vars(args).items() if k != "func"}
    write_manifest(out, _command_line(), cfg, args.seed)
    line = {k: summary[k] for k in ("ad", "feature", "structure", "method", "n")}
    if "detection" in summary:
        line["precision_at_p"] = summary["detection"]["precision_at_p_contribution"]
    print(json.dumps(line))
    return 0


# ----------------------------------------------------------------------------------------------------
# latentguard implosion
# ----------------------------------------------------------------------------------------------------
def _cmd_implosion(args: argparse.Namespace) -> int:
    from latentguard.poison.config import ImplosionConfig  # defers pydantic

    # every config mistake fails here, before the experiment's data or models are loaded
    cfg = ImplosionConfig.from_toml(args.config, overrides={"seed": args.seed} if args.seed_given else None)
    from latentguard.poison.implosion import run_implosion  # defers torch and diffusers

    summary = run_implosion(cfg, args.out, device=args.device, command=_command_line(), resume=not args.no_resume)
    brief = [{"k": c["k"], "n_seeds": c["n_seeds"],
              **{m: round(c[m]["mean"], 4) for m in ("ad", "acc_clean", "acc_poisoned", "asr", "sim_clean")}}
             for c in summary["curves"]]
    print(json.dumps(brief))
    return 0


class _SeedAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.seed_given = True


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``latentguard poison``, ``latentguard audit alignment`` and ``latentguard implosion`` to the CLI."""
    p = subparsers.add_parser(
        "poison", help="write a poisoned copy of a text-image dataset (dirty-label, concept-swap, nightshade)",
        description="Write a poisoned copy of a caption dataset, with ground-truth columns (poisoned, "
                    "source_concept) for scoring detectors. DATASET: a folder or fashion-mnist:N[:split].")
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("--kind", required=True, choices=("none", "dirty-label", "concept-swap", "nightshade"),
                   help="none = copy the clean dataset (e.g. to export fashion-mnist:N)")
    p.add_argument("--concepts", nargs="+", metavar="C",
                   help="dirty-label / nightshade: TARGET:SOURCE pairs (caption concept : image or latent concept); "
                        "concept-swap: the concepts to swap cyclically (quote names with spaces)")
    p.add_argument("--k", type=int, help="instead of --concepts: poison k concepts chosen by a seeded plan")
    p.add_argument("--fraction", type=float, help="poison pairs per target, as a fraction of its clean pairs")
    p.add_argument("--n-poison", type=int, help="poison pairs per target")
    p.add_argument("--mode", choices=("relabel", "add"), default="relabel",
                   help="label poisons: relabel existing source pairs (size kept) or add copies (default relabel)")
    p.add_argument("--vae", default="zoo:vae-a", help="nightshade: VAE whose latents are shifted (default zoo:vae-a)")
    p.add_argument("--eps", type=_number, default=8 / 255, help="nightshade: l_inf budget in [0,1] units (default 8/255)")
    p.add_argument("--steps", type=int, default=50, help="nightshade: PGD steps (default 50)")
    p.add_argument("--step-size", type=_number, default=None, help="nightshade: PGD step (default 2.5*eps/steps)")
    p.add_argument("--batch-size", type=int, default=32, help="nightshade: images per batch")
    p.add_argument("--image-size", type=int, default=None, help="resize images to this square size on load")
    p.add_argument("--overwrite", action="store_true", help="allow a non-empty --out")
    add_common_args(p, out=True, model=False)
    p.set_defaults(func=_cmd_poison)

    audit_sub = get_audit_subparsers(subparsers)
    a = audit_sub.add_parser(
        "alignment", help="Alignment Difficulty of a text-image dataset, with ranked suspicious pairs",
        description="Alignment Difficulty (arXiv:2409.12314) of a caption dataset; per-pair and per-concept "
                    "contributions rank suspicious pairs. DATASET: a folder or fashion-mnist:N[:split].")
    a.add_argument("dataset", metavar="DATASET")
    a.add_argument("--embedder", default="zoo:embed", help="zoo:embed, a ZooEmbedder folder, or clip:<local folder>")
    a.add_argument("--alpha", type=float, default=0.8, help="weight of the feature term (default 0.8)")
    a.add_argument("--method", choices=("auto", "exact", "sampled"), default="auto",
                   help="structure term: exact (blocked), sampled (estimate + CI), auto (exact up to 20k pairs)")
    a.add_argument("--num-samples", type=int, default=None, help="sampled: ordered pairs evaluated")
    a.add_argument("--block-size", type=int, default=2048, help="exact: tile side")
    a.add_argument("--confidence", type=float, default=0.95, help="sampled: interval level")
    a.add_argument("--sim-offset", type=float, default=None,
                   help="s_i = clip((cos - offset) * scale, 0, 1); default: the embedder's calibration "
                        "(zoo:embed: its ad_calibration.json; clip:...: the paper's 0.2)")
    a.add_argument("--sim-scale", type=float, default=None, help="default: the embedder's calibration (clip:...: the paper's 4)")
    a.add_argument("--batch-size", type=int, default=256, help="embedding batch size")
    a.add_argument("--image-size", type=int, default=None, help="resize on load (default: the embedder's input size)")
    a.add_argument("--top", type=int, default=50, help="rows of ranking.csv")
    a.add_argument("--save-embeddings", action="store_true", help="also write embeddings.npz")
    add_common_args(a, out=True, model=False)
    add_resume_args(a, resume=None, overwrite="write into an --out that holds an audit (it is replaced)")
    a.set_defaults(func=_cmd_audit_alignment)

    im = subparsers.add_parser(
        "implosion", help="fine-tune zoo:t2i on k poisoned concepts; AD-vs-k and alignment-vs-k curves",
        description="The implosion experiment of arXiv:2409.12314 on the bundled text-to-image model.")
    im.add_argument("config", metavar="CONFIG.toml")
    im.add_argument("--out", required=True, help="output folder")
    im.add_argument("--device", default="auto", help="auto|cpu|cuda (default auto)")
    im.add_argument("--seed", type=int, default=None, action=_SeedAction, help="override the config's base seed")
    im.add_argument("--no-resume", action="store_true", help="recompute runs already in runs.jsonl")
    im.set_defaults(func=_cmd_implosion, seed_given=False)
