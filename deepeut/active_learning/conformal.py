"""Conformal calibration of the ensemble force uncertainty (the paper's Methods B).

Uncertainty u (Eq. 6) is :func:`deepeut.training.potential.force_uncertainty`: the population (ddof 0) standard
deviation over the N_c members, averaged over the 3 components, u_i = sqrt(Σ_models Σ_α (F̂ − F̄)² / (3 N_c)).
DP-GEN's "model deviation" of an atom is sqrt(Σ_α var_α) = √3 · u.

Prediction error per atom (as in the paper): ΔF_i = (1/3) Σ_α |F_iα − F̄_iα| (reference minus ensemble mean).
Scores s = ΔF / u. Two quantiles (``al.quantile``), calibrated uncertainty ũ = q̂ · u with either:

* ``exact`` (default): q̂ is the ⌈(n + 1)(1 − α)⌉-th smallest of the n calibration scores, the split-conformal
  finite-sample order statistic (Angelopoulos & Bates, the paper's ref. 70), n = the number of scores.
* ``paper``: the paper's formula (Methods B, AmpTorch): the (1 − α)(N_calib + 1)/N_calib quantile of the scores
  (``numpy.quantile``, linear interpolation), where N_calib is the number of calibration *structures* even when the
  scores are per atom. With many atoms per structure it lies slightly above the exact one.

Guarantees (exchangeability assumed): ``level="atom"`` (n = all atoms of the calibration frames) gives
P(ΔF_i ≤ ũ_i) ≥ 1 − α for a random atom of a new frame from the same distribution (atoms within a frame are not
independent, so this is approximate); ``level="structure"`` (score = max over atoms of ΔF/u, n = frames) gives
P(ΔF_i ≤ ũ_i for every atom of the frame) ≥ 1 − α for a new frame, which is exact and more conservative.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from deepeut.training.potential import force_uncertainty  # noqa: F401  (Eq. 6, defined once, re-exported)
from deepeut.errors import StageError


class CalibrationError(StageError, ValueError):
    """Too few calibration points for the requested α, or unusable scores."""


def dpgen_model_deviation(u: np.ndarray) -> np.ndarray:
    """DP-GEN's per-atom model deviation ε = √3 · u (eV/Å)."""
    return np.sqrt(3.0) * np.asarray(u)


def prediction_error(f_ref: np.ndarray, f_mean: np.ndarray) -> np.ndarray:
    """ΔF_i = (1/3) Σ_α |F_iα − F̄_iα| (eV/Å), per atom."""
    return np.abs(np.asarray(f_ref) - np.asarray(f_mean)).mean(axis=-1)


def scores(errors: Sequence[np.ndarray], uncertainties: Sequence[np.ndarray], level: str = "atom") -> np.ndarray:
    """Nonconformity scores ΔF/u: every atom (``atom``) or the maximum per frame (``structure``)."""
    per_frame = [np.asarray(e) / np.maximum(np.asarray(u), 1e-12) for e, u in zip(errors, uncertainties)]
    if level == "atom":
        return np.concatenate(per_frame)
    if level == "structure":
        return np.array([s.max() for s in per_frame])
    raise ValueError(f"level '{level}' is not atom or structure")


def min_calibration_points(alpha: float) -> int:
    """Smallest n with ⌈(n + 1)(1 − α)⌉ ≤ n."""
    return math.ceil((1 - alpha) / alpha)


QUANTILES = ("exact", "paper")


def q_hat(
    calibration_scores: np.ndarray, alpha: float, method: str = "exact", n_structures: int | None = None
) -> float:
    """Conformal q̂ of the scores (see the module docstring); raises when there are too few points for α.

    ``method="exact"``: the ⌈(n + 1)(1 − α)⌉-th smallest score (1-based).
    ``method="paper"``: ``numpy.quantile(scores, (1 − α)(N + 1)/N)`` with N = ``n_structures`` (default: the
    number of scores)."""
    s = np.sort(np.asarray(calibration_scores, float))
    n = len(s)
    if method == "paper":
        n_cal = n if n_structures is None else n_structures
        level = (1 - alpha) * (n_cal + 1) / max(n_cal, 1)
        if level > 1 or n == 0:
            raise CalibrationError(
                f"{n_cal} calibration structures are too few for α = {alpha:g} with "
                f"al.quantile=paper: at least {min_calibration_points(alpha)} are needed"
            )
        return float(np.quantile(s, level))
    if method != "exact":
        raise ValueError(f"quantile method '{method}' is not one of {', '.join(QUANTILES)}")
    k = math.ceil((n + 1) * (1 - alpha))
    if k > n:
        raise CalibrationError(
            f"{n} calibration points are too few for α = {alpha:g}: at least "
            f"{min_calibration_points(alpha)} are needed (label more calibration frames)"
        )
    return float(s[k - 1])


def coverage(errors: Sequence[np.ndarray], uncertainties: Sequence[np.ndarray], q: float, level: str = "atom") -> float:
    """Empirical coverage of ũ = q·u on labeled frames: fraction of atoms (or frames) with ΔF ≤ ũ."""
    return float(np.mean(scores(errors, uncertainties, level) <= q))


def held_out_frame_coverage(
    errors: Sequence[np.ndarray],
    uncertainties: Sequence[np.ndarray],
    alpha: float,
    level: str = "atom",
    method: str = "exact",
) -> float:
    """Coverage of ũ on frames the calibration never saw, from the calibration frames alone: each frame in turn is
    held out, q̂ is computed from the scores of the other frames and the held-out frame's atoms (or the frame, at
    ``level="structure"``) are checked against it; the result pools all held-out atoms (frames). Jackknife
    estimate of the coverage on new frames of the same distribution (here: exploration or validation MD frames),
    where exchangeability holds between frames, not between the atoms of one frame. NaN when the frames without
    the held-out one are too few for α."""
    per_frame = [scores([e], [u], level) for e, u in zip(errors, uncertainties)]
    hits, total = 0, 0
    for i, s in enumerate(per_frame):
        rest = np.concatenate([x for k, x in enumerate(per_frame) if k != i] or [np.empty(0)])
        try:
            q = q_hat(rest, alpha, method, n_structures=len(per_frame) - 1)
        except CalibrationError:
            return float("nan")
        hits += int(np.sum(s <= q))
        total += len(s)
    return hits / total if total else float("nan")
