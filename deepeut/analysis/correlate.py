"""Time correlations by FFT (O(T log T), all time origins), batched over particles, and the fits the paper uses.

Arrays are time-major: ``x[t, particle, component]``. Particles are processed in blocks sized so that one block's
FFT (``block × n_fft × 3 × 16`` bytes, complex128) stays under ``MEMORY_BUDGET_BYTES``; inputs may be lazy
(h5py datasets or :class:`Columns`), so only one block is ever in memory.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from deepeut.utils.statistics import block_error  # noqa: F401  (defined in the ground floor)


#: upper bound on one particle block's FFT work arrays
MEMORY_BUDGET_BYTES = 512 * 2**20


class Columns:
    """Lazy view ``data[frames, ids]`` of a (T, N, 3) array or h5py dataset; ``view[:, a:b]`` reads only those
    columns (and only the frames of ``frames``, a slice with step 1)."""

    def __init__(self, data, ids, frames: slice = slice(None)):
        self.data, self.ids = data, np.asarray(ids)
        self.start, stop, _ = frames.indices(data.shape[0])
        self.shape = (stop - self.start, len(self.ids), *data.shape[2:])

    def __getitem__(self, key):
        rows, cols = key
        a, b, _ = rows.indices(self.shape[0])
        return np.asarray(self.data[self.start + a : self.start + b, self.ids[cols]])


def block_size(n_frames: int, n_components: int = 3, requested: int = 256) -> int:
    """Particles per FFT block under :data:`MEMORY_BUDGET_BYTES` (at least 1)."""
    per_particle = 2 * _nfft(n_frames) * n_components * 16
    return max(1, min(requested, MEMORY_BUDGET_BYTES // per_particle))


def _nfft(n: int) -> int:
    """Zero padding to ≥ 2n (no circular wrap-around), rounded up to a fast FFT size."""
    from scipy.fft import next_fast_len

    return next_fast_len(2 * n)


def correlation_sum(a: np.ndarray, b: np.ndarray, max_lag: int) -> np.ndarray:
    """Σ over particles and components of ⟨a(t0)·b(t0+τ)⟩_t0 for τ < max_lag (all origins; a, b: (T, ...))."""
    from scipy.fft import irfft, rfft

    n = a.shape[0]
    nfft = _nfft(n)
    fa = rfft(a.reshape(n, -1), nfft, axis=0, workers=-1)
    if b is a:
        spectrum = (fa.real**2 + fa.imag**2).sum(axis=1)
    else:
        spectrum = (np.conj(fa) * rfft(b.reshape(n, -1), nfft, axis=0, workers=-1)).sum(axis=1)
    # the sum over particles commutes with the inverse FFT: one inverse transform per block
    c = irfft(spectrum, nfft)[:max_lag]
    return c / (n - np.arange(max_lag))


def autocorrelation(x: np.ndarray, max_lag: int, block: int = 256) -> np.ndarray:
    """Mean over particles of ⟨x_i(t0)·x_i(t0+τ)⟩ (summed over components), x: (T, N, d); FFT per particle block."""
    n_part = x.shape[1]
    total = np.zeros(max_lag)
    block = block_size(x.shape[0], x.shape[2] if len(x.shape) > 2 else 1, block)
    for s in range(0, n_part, block):
        chunk = np.asarray(x[:, s : s + block], dtype=float)
        total += correlation_sum(chunk, chunk, max_lag)
    return total / n_part


def msd(r: np.ndarray, max_lag: int, block: int = 256) -> np.ndarray:
    """Mean-square displacement ⟨|r_i(t0+τ) − r_i(t0)|²⟩ (Å² for Å input) by the FFT algorithm
    (Calandrini et al.): MSD(τ) = S1(τ) − 2 S2(τ), all time origins; r: (T, N, 3) unwrapped."""
    n, n_part = r.shape[0], r.shape[1]
    out = np.zeros(max_lag)
    lags = np.arange(max_lag)
    block = block_size(n, 3, block)
    for s in range(0, n_part, block):
        chunk = np.asarray(r[:, s : s + block], dtype=float)
        d = np.append((chunk**2).sum(axis=(1, 2)), 0.0)  # Σ_i |r_i(t)|², with d[n] = 0
        # S1(m) = [2 Σ_t d(t) − Σ_{k≤m} (d(k−1) + d(n−k))] / (n − m), with d(−1) = d(n) = 0
        left = np.concatenate([[0.0], d[: max_lag - 1]])
        right = d[n - lags]
        s1 = (2.0 * d[:n].sum() - np.cumsum(left + right)) / (n - lags)
        out += s1 - 2.0 * correlation_sum(chunk, chunk, max_lag)
    out /= n_part
    out[0] = 0.0
    return out


def running_integral(c: np.ndarray, dt: float) -> np.ndarray:
    """Cumulative trapezoidal integral ∫_0^t c dt' on the lag grid (same length as c, starts at 0)."""
    from scipy.integrate import cumulative_trapezoid

    return cumulative_trapezoid(c, dx=dt, initial=0.0)


def fit_exponential_plateau(t: np.ndarray, y: np.ndarray, skip_fraction: float = 0.0) -> Tuple[float, float]:
    """Fit y(t) ≈ A (1 − exp(−t/τ)) to a running integral; returns the long-time limit A and τ.

    The paper's Green–Kubo recipe (Eqs. 9, 12): the limit of an exponential fitted to the running integral. The
    fit is bounded so that it cannot extrapolate anywhere: A within the range of the data over the fit window
    widened by half that range on each side, τ between one lag step and the window length; a τ at its upper
    bound means no plateau was reached within the data (the caller's convergence check says so).
    """
    from scipy.optimize import curve_fit

    start = int(skip_fraction * len(t))
    tt, yy = t[start:], y[start:]
    ok = np.isfinite(yy)
    tt, yy = tt[ok], yy[ok]
    if len(tt) < 3:
        return (float(yy[-1]) if len(yy) else float("nan")), float("nan")
    lo, hi = float(yy.min()), float(yy.max())
    pad = 0.5 * (hi - lo) if hi > lo else max(abs(hi), 1e-12)
    step = float(tt[1] - tt[0]) if tt[1] > tt[0] else 1e-6
    span = float(tt[-1]) if tt[-1] > step else 2 * step
    a0 = float(np.clip(yy[-1], lo - pad, hi + pad))
    tau0 = float(np.clip(tt[np.argmin(np.abs(yy - 0.63 * a0))], step * 1.01, span * 0.99))
    try:
        (a, tau), _ = curve_fit(
            lambda x, a, tau: a * (1 - np.exp(-x / tau)),
            tt,
            yy,
            p0=(a0, tau0),
            maxfev=20000,
            bounds=([lo - pad, step], [hi + pad, span]),
        )
    except (RuntimeError, ValueError):
        return float(yy[-1]), float("nan")
    return float(a), float(abs(tau))


def linear_slope(t: np.ndarray, y: np.ndarray) -> float:
    """Slope of a least-squares straight line."""
    return float(np.polyfit(t, y, 1)[0])
