"""Pair lifetimes (Eq. 11) and rotational relaxation: autocorrelations of indicator and unit-vector signals.

``h[t, pair]`` is 1 while amide j sits in the first shell of Li⁺ i (Li–O(amide) ≤ 3 Å); P(t) (Eq. 11) is fitted
with a sum of exponentials whose integral is the lifetime τ. ``u[t, molecule]`` are C→O unit vectors; τ_R is
the integral of ⟨u(t)·u(0)⟩ (exponential tail fitted beyond the correlation depth). Times in ps.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from deepeut.analysis.correlate import correlation_sum


def pair_existence_acf(h: np.ndarray, max_lag: int, block: int = 2048) -> np.ndarray:
    """Eq. 11: P(t) = ⟨h_ij(t) h_ij(0)⟩ / ⟨h_ij(0)²⟩ over pairs and origins; h: (T, n_pairs) 0/1."""
    num, den = _existence_sums(h, max_lag, block)
    return num / den if den > 0 else np.full(max_lag, np.nan)


def _existence_sums(h: np.ndarray, max_lag: int, block: int) -> Tuple[np.ndarray, float]:
    from deepeut.analysis.correlate import block_size

    num = np.zeros(max_lag)
    block = block_size(h.shape[0], 1, block)
    for s in range(0, h.shape[1], block):
        x = np.asarray(h[:, s : s + block], dtype=float)
        num += correlation_sum(x, x, max_lag)
    return num, float(np.asarray(h, dtype=float).mean(axis=0).sum())


def pair_existence_acf_from_contacts(
    offsets: np.ndarray, ids: np.ndarray, max_lag: int, pairs_per_pass: int = 4096
) -> np.ndarray:
    """Eq. 11 from per-frame contact lists (CSR: ``ids[offsets[t]:offsets[t+1]]``) without ever holding the full
    (frames × pairs) indicator matrix: pairs are processed ``pairs_per_pass`` at a time."""
    n_t = len(offsets) - 1
    frame_of = np.repeat(np.arange(n_t), np.diff(offsets))
    unique = np.unique(ids)
    num, den = np.zeros(max_lag), 0.0
    for s in range(0, len(unique), pairs_per_pass):
        block_ids = unique[s : s + pairs_per_pass]
        sel = (ids >= block_ids[0]) & (ids <= block_ids[-1])
        h = np.zeros((n_t, len(block_ids)), dtype=np.uint8)
        h[frame_of[sel], np.searchsorted(block_ids, ids[sel])] = 1
        n, d = _existence_sums(h, max_lag, 2048)
        num += n
        den += d
    return num / den if den > 0 else np.full(max_lag, np.nan)


def fit_multi_exponential(t: np.ndarray, c: np.ndarray, n_terms: int = 2) -> Tuple[np.ndarray, np.ndarray]:
    """Fit c(t) ≈ Σ_k a_k exp(−t/τ_k) (a_k, τ_k > 0); returns (a, τ)."""
    from scipy.optimize import curve_fit

    def model(x, *p):
        a, tau = np.asarray(p[:n_terms]), np.abs(np.asarray(p[n_terms:])) + 1e-12
        return (a[None, :] * np.exp(-x[:, None] / tau[None, :])).sum(axis=1)

    span = max(t[-1], t[1] if len(t) > 1 else 1.0)
    p0 = [c[0] / n_terms] * n_terms + list(np.geomspace(span / 20, span / 2, n_terms))
    # amplitudes in [0, 1.5 c(0)], times up to 10× the correlation depth: no unconstrained tails
    bounds = (
        [0.0] * n_terms + [t[1] * 1e-3 if len(t) > 1 else 1e-6] * n_terms,
        [1.5 * max(c[0], 1e-12)] * n_terms + [10 * span] * n_terms,
    )
    try:
        p, _ = curve_fit(model, t, c, p0=p0, maxfev=50000, bounds=bounds)
    except (RuntimeError, ValueError):
        return np.array([c[0]]), np.array([float(np.trapezoid(c, t) / max(c[0], 1e-12))])
    return np.asarray(p[:n_terms]), np.abs(np.asarray(p[n_terms:]))


def lifetime(t: np.ndarray, c: np.ndarray, n_terms: int = 2) -> float:
    """∫_0^∞ c dt (ps): the measured curve up to the correlation depth plus the tail of a multi-exponential fit
    beyond it (Σ a_k τ_k exp(−t_max/τ_k)); equals Σ a_k τ_k when the fit describes the whole curve."""
    a, tau = fit_multi_exponential(t, c, n_terms)
    tail = float((a * tau * np.exp(-t[-1] / tau)).sum())
    return float(np.trapezoid(c, t)) + tail


def vector_acf(u: np.ndarray, max_lag: int, block: int = 512) -> np.ndarray:
    """⟨u_i(t)·u_i(0)⟩ of unit vectors u: (T, N, 3), averaged over molecules and origins."""
    from deepeut.analysis.correlate import autocorrelation

    return autocorrelation(u, max_lag, block)


def contacts_to_series(frames_pairs, n_frames: int) -> Tuple[np.ndarray, np.ndarray]:
    """Per-frame lists of contact pair ids → (T, n_unique_pairs) 0/1 array over the pairs that ever form."""
    all_ids = (
        np.unique(np.concatenate([np.asarray(p, np.int64) for p in frames_pairs]))
        if frames_pairs
        else np.zeros(0, np.int64)
    )
    h = np.zeros((n_frames, len(all_ids)), dtype=np.uint8)
    for t, p in enumerate(frames_pairs):
        h[t, np.searchsorted(all_ids, np.asarray(p, np.int64))] = 1
    return all_ids, h
