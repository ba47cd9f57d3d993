"""Score-based membership inference on latent diffusion models with latent-dimension masking.

Rao, Qu & Moyer, *Latent Diffusion Inversion Requires Understanding the Latent Space* (arXiv 2511.20592):
every attack below produces a residual ``r in R^d`` per latent dimension (``d = C h w`` of the UNet latent
``z_0 = s * mu(x)``, the scaled encoder mean) at a diffusion timestep ``t``; the statistic is

    S_t(x) = sum_k m_k |r_k|^p ,

with ``m`` a keep-mask over latent dimensions (all ones = unmasked; the pullback mask of
:func:`latentguard.privacy.pullback.keep_mask` drops each sample's lowest-contribution dims; the random-drop
control drops as many dims at random). Members have *smaller* residuals, so the membership score is ``-S``.

Attacks (``abar_t`` the cumulative alpha product, ``eps_theta(z, t, c)`` the UNet noise prediction with the
sample's text conditioning ``c``):

* ``loss`` (naive; Matsumoto et al. 2023): ``z_t = sqrt(abar_t) z_0 + sqrt(1-abar_t) eps``, ``eps ~ N(0, I)``
  (seeded per sample), ``r = eps - eps_theta(z_t, t)``, ``p = 4``.
* ``pia`` (Kong et al., ICLR 2024, proximal initialisation): ``eps_0 = eps_theta(z_0, 0)``,
  ``z_t = sqrt(abar_t) z_0 + sqrt(1-abar_t) eps_0``, ``r = eps_0 - eps_theta(z_t, t)``, ``p = 4``.
* ``secmi`` (Duan et al., ICML 2023, t-error): deterministic DDIM inversion of ``z_0`` to ``z_t`` on a grid of
  step ``k`` (``secmi_interval``), one more inversion step to ``z_{t+k}``, one DDIM denoising step back to
  ``z~_t``; ``r = z~_t - z_t``, ``p = 2``.
* ``sima`` (score norm at the clean latent): ``r = eps_theta(z_0, t)``, ``p = 4``.

Protocols (both reported): ``paper`` picks the timestep with the best AUROC using all labels and reports
the metrics there (optimistic: the choice sees the evaluation labels); ``honest`` splits the samples into a
stratified calibration part and an evaluation part, chooses the timestep (best calibration AUROC) and the
decision threshold (best calibration balanced accuracy) on calibration only, and reports evaluation AUROC,
TPR at fixed FPR (threshold-free given ``t``) and ASR = balanced accuracy at the calibrated threshold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from latentguard.ops import roc
from latentguard.privacy.pullback import keep_mask, random_keep_mask

ATTACKS = ("loss", "pia", "secmi", "sima")
DEFAULT_POWERS = {"loss": 4.0, "pia": 4.0, "secmi": 2.0, "sima": 4.0}
MASKS = ("none", "pullback", "random")

__all__ = [
    "ATTACKS", "DEFAULT_POWERS", "MASKS", "MIAConfig", "ResidualScorer", "MembershipScores", "paper_protocol",
    "honest_protocol", "stratified_split", "distortion_split", "ScoreTable", "evaluate", "distortion_report",
]


@dataclass(frozen=True)
class MIAConfig:
    """Attack parameters.

    Args:
        attacks: subset of ``loss, pia, secmi, sima``.
        timesteps: the grid of training timesteps ``t`` (0 <= t < num_train_timesteps).
        powers: ``p`` per attack (defaults: loss 4, pia 4, secmi 2, sima 4 as in the paper's code).
        secmi_interval: SecMI's DDIM step ``k``; every ``t`` must be a multiple of it.
        batch_size: latents per UNet call.
        seed: seeds the loss attack's noise.
    """

    attacks: tuple[str, ...] = ATTACKS
    timesteps: tuple[int, ...] = (10, 50, 100, 200, 300)
    powers: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_POWERS))
    secmi_interval: int = 10
    batch_size: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.attacks:
            raise ValueError("attacks must name at least one attack")
        bad = [a for a in self.attacks if a not in ATTACKS]
        if bad:
            raise ValueError(f"attacks: unknown {bad}; choose from {', '.join(ATTACKS)}")
        if len(set(self.attacks)) != len(self.attacks):
            raise ValueError(f"attacks has duplicates: {self.attacks}")
        if not self.timesteps or any((not isinstance(t, int)) or t < 0 for t in self.timesteps):
            raise ValueError(f"timesteps must be non-negative ints, got {self.timesteps!r}")
        if list(self.timesteps) != sorted(set(self.timesteps)):
            raise ValueError(f"timesteps must be strictly increasing, got {self.timesteps!r}")
        if not isinstance(self.secmi_interval, int) or self.secmi_interval < 1:
            raise ValueError(f"secmi_interval must be a positive int, got {self.secmi_interval!r}")
        if "secmi" in self.attacks and any(t % self.secmi_interval for t in self.timesteps):
            raise ValueError(f"timesteps must be multiples of secmi_interval={self.secmi_interval} for SecMI")
        for a in self.attacks:
            p = self.power(a)
            if not (p > 0 and math.isfinite(p)):
                raise ValueError(f"powers[{a!r}] must be a positive number, got {p!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")

    def power(self, attack: str) -> float:
        return float(self.powers.get(attack, DEFAULT_POWERS[attack]))


# ----------------------------------------------------------------------------------------------------
# residuals
# ----------------------------------------------------------------------------------------------------
class ResidualScorer:
    """Per-latent-dimension residuals of the four attacks for a UNet + noise schedule.

    Args:
        unet: ``unet(z, t, encoder_hidden_states=c, return_dict=False)[0]`` predicts the noise
            (a diffusers ``UNet2DConditionModel`` or anything with that call).
        scheduler: provides ``alphas_cumprod``, ``config.num_train_timesteps`` and ``config.prediction_type``
            (``epsilon`` or ``v_prediction``; v is converted to epsilon).
        config: attack parameters.
    """

    def __init__(self, unet, scheduler, config: MIAConfig | None = None) -> None:
        self.unet = unet
        self.config = config or MIAConfig()
        self.abar = torch.as_tensor(scheduler.alphas_cumprod, dtype=torch.float64)
        self.n_train = int(scheduler.config.num_train_timesteps)
        self.prediction_type = getattr(scheduler.config, "prediction_type", "epsilon")
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"scheduler prediction_type {self.prediction_type!r} is not supported (epsilon | v_prediction)")
        top = max(self.config.timesteps) + (self.config.secmi_interval if "secmi" in self.config.attacks else 0)
        if top >= self.n_train:
            raise ValueError(f"timesteps (+ secmi_interval) must stay below num_train_timesteps={self.n_train}")

    def _a(self, t: int, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.abar[t]
        return a.sqrt().to(ref.dtype).to(ref.device), (1 - a).sqrt().to(ref.dtype).to(ref.device)

    def eps(self, z: torch.Tensor, t: int, cond: torch.Tensor | None) -> torch.Tensor:
        """``eps_theta(z, t, c)`` (v-predictions converted: ``eps = sqrt(abar) v + sqrt(1-abar) z``)."""
        tt = torch.full((z.shape[0],), int(t), device=z.device, dtype=torch.long)
        param = next(iter(self.unet.parameters()), None) if hasattr(self.unet, "parameters") else None
        dt = param.dtype if param is not None else z.dtype
        out = self.unet(z.to(dt), tt, encoder_hidden_states=None if cond is None else cond.to(dt), return_dict=False)[0]
        out = out.to(z.dtype)
        if self.prediction_type == "v_prediction":
            sa, sb = self._a(t, z)
            out = sa * out + sb * z
        return out

    def _ddim(self, z: torch.Tensor, e: torch.Tensor, t_from: int, t_to: int) -> torch.Tensor:
        """Deterministic DDIM move (either direction) with the noise estimate ``e`` made at ``t_from``."""
        sa, sb = self._a(t_from, z)
        ta, tb = self._a(t_to, z)
        x0 = (z - sb * e) / sa
        return ta * x0 + tb * e

    @torch.no_grad()
    def residuals(self, z0: torch.Tensor, cond: torch.Tensor | None, noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Residuals ``{attack: [T, B, d]}`` for one batch of UNet latents ``z0 [B, C, h, w]``.

        ``noise`` (``[B, C, h, w]``) is the loss attack's fixed noise; drawn from ``config.seed`` if None.
        """
        cfg = self.config
        b = z0.shape[0]
        out: dict[str, torch.Tensor] = {}
        ts = cfg.timesteps
        if "loss" in cfg.attacks:
            if noise is None:
                noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(cfg.seed)).to(z0)
            rs = []
            for t in ts:
                sa, sb = self._a(t, z0)
                rs.append((noise - self.eps(sa * z0 + sb * noise, t, cond)).reshape(b, -1))
            out["loss"] = torch.stack(rs)
        if "pia" in cfg.attacks:
            e0 = self.eps(z0, 0, cond)
            rs = []
            for t in ts:
                sa, sb = self._a(t, z0)
                rs.append((e0 - self.eps(sa * z0 + sb * e0, t, cond)).reshape(b, -1))
            out["pia"] = torch.stack(rs)
        if "secmi" in cfg.attacks:
            k = cfg.secmi_interval
            grid = list(range(0, max(ts) + k + 1, k))
            states = {0: z0}
            z = z0
            for s, s_next in zip(grid[:-1], grid[1:]):
                z = self._ddim(z, self.eps(z, s, cond), s, s_next)
                states[s_next] = z
            rs = []
            for t in ts:
                z_up = states[t + k]
                z_back = self._ddim(z_up, self.eps(z_up, t + k, cond), t + k, t)
                rs.append((z_back - states[t]).reshape(b, -1))
            out["secmi"] = torch.stack(rs)
        if "sima" in cfg.attacks:
            out["sima"] = torch.stack([self.eps(z0, t, cond).reshape(b, -1) for t in ts])
        return out

    def powered_residuals(self, z0: torch.Tensor, cond: torch.Tensor | None, *, progress: bool = False,
                          desc: str = "MIA residuals") -> dict[str, np.ndarray]:
        """``{attack: |r|^p}`` as float32 arrays ``[N, T, d]`` over all latents, in batches."""
        from tqdm.auto import tqdm

        cfg = self.config
        g = torch.Generator().manual_seed(cfg.seed)
        noise_all = torch.randn(z0.shape, generator=g)  # one fixed draw per sample, batch-size independent
        acc: dict[str, list[np.ndarray]] = {a: [] for a in cfg.attacks}
        for i in tqdm(range(0, len(z0), cfg.batch_size), desc=desc, disable=not progress, unit="batch"):
            zb = z0[i : i + cfg.batch_size]
            cb = None if cond is None else cond[i : i + cfg.batch_size]
            r = self.residuals(zb, cb, noise=noise_all[i : i + cfg.batch_size].to(zb))
            for a, v in r.items():
                acc[a].append(v.abs().pow(cfg.power(a)).permute(1, 0, 2).float().cpu().numpy())
        return {a: np.concatenate(v) for a, v in acc.items()}


# ----------------------------------------------------------------------------------------------------
# scores, protocols, splits
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MembershipScores:
    """Everything needed to evaluate the attacks, masked and unmasked.

    Attributes:
        labels: 1 member, 0 non-member ``[N]``.
        timesteps: the grid ``[T]``.
        powered: ``{attack: |r|^p [N, T, d]}``.
        masks: ``{"none" | "pullback" | "random": bool [N, d]}``.
        log_volume: per-sample decoder log-volume ``[N]`` (NaN when not computed).
    """

    labels: np.ndarray
    timesteps: tuple[int, ...]
    powered: Mapping[str, np.ndarray]
    masks: Mapping[str, np.ndarray]
    log_volume: np.ndarray

    @property
    def attacks(self) -> tuple[str, ...]:
        return tuple(self.powered)

    @property
    def mask_names(self) -> tuple[str, ...]:
        return tuple(self.masks)

    def scores(self, attack: str, mask: str = "none") -> np.ndarray:
        """Membership scores ``-S = -sum_k m_k |r_k|^p`` ``[N, T]`` (higher = member)."""
        if attack not in self.powered:
            raise ValueError(f"attack {attack!r} was not run (have {', '.join(self.powered)})")
        if mask not in self.masks:
            raise ValueError(f"mask {mask!r} unknown (have {', '.join(self.masks)})")
        m = self.masks[mask].astype(np.float64)
        return -np.einsum("ntd,nd->nt", self.powered[attack].astype(np.float64), m)

    @staticmethod
    def build(labels, timesteps, powered, contrib=None, drop: float = 0.4, log_volume=None, seed: int = 0) -> "MembershipScores":
        labels = np.asarray(labels).astype(np.int64)
        d = next(iter(powered.values())).shape[-1]
        masks = {"none": np.ones((len(labels), d), dtype=bool)}
        if contrib is not None:
            c = np.asarray(contrib)
            if c.shape != (len(labels), d):
                raise ValueError(f"contrib must be [N, d] = {(len(labels), d)}, got {c.shape}")
            masks["pullback"] = keep_mask(c, drop)
            masks["random"] = random_keep_mask(len(labels), d, drop, seed=seed)
        lv = np.full(len(labels), np.nan) if log_volume is None else np.asarray(log_volume, dtype=np.float64)
        return MembershipScores(labels, tuple(timesteps), dict(powered), masks, lv)


@dataclass(frozen=True)
class ScoreTable:
    """Precomputed membership scores (e.g. read back from ``items.jsonl``); evaluates like MembershipScores.

    Attributes:
        labels: ``[N]``; timesteps: ``[T]``; table: ``{(attack, mask): scores [N, T]}``; log_volume: ``[N]``.
    """

    labels: np.ndarray
    timesteps: tuple[int, ...]
    table: Mapping[tuple[str, str], np.ndarray]
    log_volume: np.ndarray

    @property
    def attacks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a for a, _ in self.table))

    @property
    def mask_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m for _, m in self.table))

    def scores(self, attack: str, mask: str = "none") -> np.ndarray:
        try:
            return self.table[(attack, mask)]
        except KeyError:
            raise ValueError(f"no scores for attack {attack!r} with mask {mask!r}") from None

    @staticmethod
    def from_items(path) -> "ScoreTable":
        """Read an audit's ``items.jsonl`` (rows with ``member``, ``log_volume`` and ``S/<attack>/<mask>``)."""
        import json

        rows = [json.loads(x) for x in open(path) if x.strip()]
        rows = [r for r in rows if r.get("status", "ok") == "ok"]
        if not rows:
            raise ValueError(f"{path} has no scored rows")
        keys = [k for k in rows[0] if k.startswith("S/")]
        ts = tuple(int(t) for t in rows[0][keys[0]])
        table = {}
        for k in keys:
            _, a, m = k.split("/")
            table[(a, m)] = -np.array([[r[k][str(t)] for t in ts] for r in rows], dtype=np.float64)
        lv = np.array([np.nan if r.get("log_volume") is None else r["log_volume"] for r in rows], dtype=np.float64)
        return ScoreTable(np.array([r["member"] for r in rows], dtype=np.int64), ts, table, lv)


def _per_t_auroc(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.array([roc.auroc(scores[:, j], labels) for j in range(scores.shape[1])])


def paper_protocol(scores: np.ndarray, labels: np.ndarray, timesteps: Sequence[int]) -> dict:
    """Best timestep by AUROC on all samples (labels used for the choice); metrics at that timestep."""
    au = _per_t_auroc(scores, labels)
    j = int(np.argmax(au))
    m = roc.membership_metrics(scores[:, j], labels).as_dict()
    return {**m, "timestep": int(timesteps[j]), "auroc_per_timestep": [float(a) for a in au]}


def stratified_split(labels: np.ndarray, calib_fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(calibration, evaluation)``, each class split in the same proportion (seeded)."""
    if not 0.0 < calib_fraction < 1.0:
        raise ValueError(f"calib_fraction must be in (0, 1), got {calib_fraction!r}")
    rng = np.random.default_rng(seed)
    cal, ev = [], []
    for c in (0, 1):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_cal = int(round(calib_fraction * len(idx)))
        if n_cal < 1 or n_cal >= len(idx):
            raise ValueError(f"class {c} has {len(idx)} samples: too few to split with calib_fraction={calib_fraction}")
        cal.append(idx[:n_cal])
        ev.append(idx[n_cal:])
    return np.sort(np.concatenate(cal)), np.sort(np.concatenate(ev))


def honest_protocol(scores: np.ndarray, labels: np.ndarray, timesteps: Sequence[int], calib_idx: np.ndarray,
                    eval_idx: np.ndarray) -> dict:
    """Timestep and threshold chosen on the calibration split; metrics on the evaluation split."""
    au_cal = _per_t_auroc(scores[calib_idx], labels[calib_idx])
    j = int(np.argmax(au_cal))
    _, thr = roc.best_balanced_accuracy(scores[calib_idx, j], labels[calib_idx])
    s_ev, y_ev = scores[eval_idx, j], labels[eval_idx]
    return {
        "auroc": roc.auroc(s_ev, y_ev),
        "asr": roc.balanced_accuracy_at(s_ev, y_ev, thr),
        "tpr_at_1pct_fpr": roc.tpr_at_fpr(s_ev, y_ev, 0.01),
        "tpr_at_0.1pct_fpr": roc.tpr_at_fpr(s_ev, y_ev, 0.001),
        "timestep": int(timesteps[j]),
        "threshold": float(thr),
        "n_calibration": int(len(calib_idx)),
        "n_evaluation": int(len(eval_idx)),
    }


def distortion_split(log_volume: np.ndarray, how: str = "quartiles") -> list[tuple[str, np.ndarray]]:
    """Groups of samples by log-volume: ``median`` -> low/high; ``quartiles`` -> Q1 (lowest) .. Q4."""
    lv = np.asarray(log_volume, dtype=np.float64)
    if not np.isfinite(lv).all():
        raise ValueError("log_volume must be finite for every sample (run the pullback analysis)")
    if how == "median":
        med = np.median(lv)
        return [("low", np.flatnonzero(lv <= med)), ("high", np.flatnonzero(lv > med))]
    if how == "quartiles":
        q = np.quantile(lv, [0.25, 0.5, 0.75])
        bins = np.digitize(lv, q, right=True)
        return [(f"Q{i + 1}", np.flatnonzero(bins == i)) for i in range(4)]
    raise ValueError(f"how must be median|quartiles, got {how!r}")


def evaluate(ms: MembershipScores | ScoreTable, *, calib_fraction: float = 0.5, seed: int = 0) -> dict:
    """The summary: per attack, per mask, per protocol metrics; plus the distortion split."""
    cal, ev = stratified_split(ms.labels, calib_fraction, seed)
    out: dict = {"attacks": {}, "n_members": int(ms.labels.sum()), "n_nonmembers": int((1 - ms.labels).sum()),
                 "timesteps": list(ms.timesteps), "calib_fraction": calib_fraction}
    for a in ms.attacks:
        out["attacks"][a] = {}
        for mk in ms.mask_names:
            s = ms.scores(a, mk)
            out["attacks"][a][mk] = {"paper": paper_protocol(s, ms.labels, ms.timesteps),
                                     "honest": honest_protocol(s, ms.labels, ms.timesteps, cal, ev)}
    if np.isfinite(ms.log_volume).all():
        out["distortion"] = distortion_report(ms)
    return out


def distortion_report(ms: MembershipScores | ScoreTable) -> dict:
    """AUROC per log-volume group (median and quartiles): at each attack's whole-set best timestep
    (``"<attack>/<mask>"``) and at every timestep (``per_timestep["<attack>/<mask>"]``), since the best
    timestep may be saturated (AUROC ~ 1 in every group)."""
    rep: dict = {"log_volume": {
        "members_mean": float(ms.log_volume[ms.labels == 1].mean()),
        "nonmembers_mean": float(ms.log_volume[ms.labels == 0].mean()),
        "auroc_of_log_volume": roc.auroc(ms.log_volume, ms.labels),
    }}
    for how in ("median", "quartiles"):
        groups = distortion_split(ms.log_volume, how)
        rep[how] = {}
        for name, idx in groups:
            y = ms.labels[idx]
            g = {"n": int(len(idx)), "n_members": int(y.sum()),
                 "log_volume_range": [float(ms.log_volume[idx].min()), float(ms.log_volume[idx].max())]}
            ok = 0 < y.sum() < len(y)
            g["per_timestep"] = {}
            for a in ms.attacks:
                for mk in ms.mask_names:
                    s = ms.scores(a, mk)
                    j = int(np.argmax(_per_t_auroc(s, ms.labels)))
                    g[f"{a}/{mk}"] = roc.auroc(s[idx, j], y) if ok else None
                    g["per_timestep"][f"{a}/{mk}"] = [roc.auroc(s[idx, jj], y) for jj in range(s.shape[1])] if ok else None
            rep[how][name] = g
    return rep
