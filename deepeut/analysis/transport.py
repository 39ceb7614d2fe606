"""Self-diffusion (Eqs. 8–10), transport number, ionic conductivity (Eqs. 12–14) and VCCFs (Eqs. 15–16).

Inputs are centre-of-mass time series: positions in Å (unwrapped), velocities in Å/ps, times in ps.
Diffusion coefficients come out in Å²/ps (1 Å²/ps = 10⁻⁸ m²/s = 1000 × 10⁻¹¹ m²/s, the unit of Table II),
conductivities in S/m (Table III).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np
from scipy import constants

from deepeut.analysis.correlate import (
    autocorrelation,
    correlation_sum,
    fit_exponential_plateau,
    linear_slope,
    msd,
    running_integral,
)

#: Å²/ps → 10⁻¹¹ m²/s (the unit of Table II)
A2_PS_IN_1E_11_M2_S = 1e-8 / 1e-11


def max_lag_frames(n_frames: int, fraction: float = 0.3) -> int:
    """The paper's maximum correlation depth: 30 % of the trajectory."""
    return max(2, int(fraction * n_frames))


@dataclass
class Diffusion:
    """D from the VACF (Green–Kubo, Eq. 9) and from the MSD (Einstein, Eq. 10), Å²/ps, with the curves."""

    lag_ps: np.ndarray
    vacf: np.ndarray  # Å²/ps², unnormalised ⟨v(0)·v(t)⟩
    vacf_normalised: np.ndarray  # Eq. 8
    gk_running: np.ndarray  # (1/3) ∫ VACF, Å²/ps
    msd_A2: Optional[np.ndarray]
    D_gk: float
    D_msd: float
    msd_fit_from_ps: float = float("nan")  # start of the MSD fit window (it ends at the correlation depth)
    msd_beta: float = float("nan")  # log-log slope of the MSD over that window (1 when diffusive)

    def in_paper_units(self) -> Dict[str, float]:
        return {
            "D_gk_1e-11_m2_s": self.D_gk * A2_PS_IN_1E_11_M2_S,
            "D_msd_1e-11_m2_s": self.D_msd * A2_PS_IN_1E_11_M2_S,
        }


def diffusion(
    velocities: np.ndarray, dt_ps: float, positions: Optional[np.ndarray] = None, max_lag: Optional[int] = None
) -> Diffusion:
    """Self-diffusion of one species from CoM velocities (T, N, 3) Å/ps and, optionally, positions (T, N, 3) Å."""
    n = velocities.shape[0]
    max_lag = max_lag or max_lag_frames(n)
    lag = np.arange(max_lag) * dt_ps
    vacf = autocorrelation(velocities, max_lag)
    gk = running_integral(vacf, dt_ps) / 3.0
    d_gk, _ = fit_exponential_plateau(lag, gk)
    d_msd, m, start, beta = float("nan"), None, 0, float("nan")
    if positions is not None:
        m = msd(positions, max_lag)
        start, beta = msd_fit_window(lag, m)
        d_msd = linear_slope(lag[start:], m[start:]) / 6.0
    return Diffusion(lag, vacf, vacf / vacf[0], gk, m, d_gk, d_msd, float(lag[start]), beta)


def loglog_slope(t: np.ndarray, y: np.ndarray) -> float:
    """Slope of ln y vs ln t over the points with t, y > 0 (NaN with fewer than 2)."""
    ok = (t > 0) & (y > 0)
    return float(np.polyfit(np.log(t[ok]), np.log(y[ok]), 1)[0]) if ok.sum() >= 2 else float("nan")


def msd_fit_window(lag: np.ndarray, msd_A2: np.ndarray, beta_tol: float = 0.15, min_fraction: float = 0.25) -> tuple:
    """(first index, β) of the Einstein fit window, chosen from the data: the earliest start (from 10 % of the
    correlation depth on, keeping at least ``min_fraction`` of it) from which the MSD's log-log slope β to the end
    is within ``beta_tol`` of 1 (the diffusive regime, after the ballistic and caged parts); when no start
    qualifies, the paper's second half, whose β then says why D_MSD is not converged."""
    n = len(lag)
    if n < 4:
        return 0, float("nan")
    last = max(1, int(n * (1 - min_fraction)))
    for i in range(max(1, n // 10), last + 1, max(1, n // 40)):
        beta = loglog_slope(lag[i:], msd_A2[i:])
        if abs(beta - 1) <= beta_tol:
            return i, beta
    return n // 2, loglog_slope(lag[n // 2 :], msd_A2[n // 2 :])


#: Yeh–Hummer constant for a cubic periodic box
XI_CUBIC = 2.837297


def yeh_hummer(d_pbc_A2_ps: float, temperature_K: float, viscosity_mPa_s: float, box_edge_A: float) -> float:
    """Finite-size corrected D_∞ = D_PBC + ξ k_B T / (6 π η L) (Yeh & Hummer 2004), Å²/ps in and out."""
    corr_m2_s = XI_CUBIC * constants.k * temperature_K / (6 * np.pi * viscosity_mPa_s * 1e-3 * box_edge_A * 1e-10)
    return d_pbc_A2_ps + corr_m2_s / 1e-8


def transport_number(d_cation: float, d_anion: float) -> float:
    """t+ = D+ / (D+ + D−)."""
    return d_cation / (d_cation + d_anion)


def charge_current(velocities, charges: Sequence[float], block: int = 4096) -> np.ndarray:
    """Eq. 13: J(t) = e Σ_i q_i v_i(t) in e·Å/ps, from CoM velocities (T, N, 3) and charges (N,) in e;
    read ``block`` frames at a time (``velocities`` may be a lazy view)."""
    q = np.asarray(charges, float)
    n_t = velocities.shape[0]
    return np.concatenate(
        [np.einsum("tnk,n->tk", np.asarray(velocities[s : s + block, :], float), q) for s in range(0, n_t, block)]
    )


def _sigma_prefactor(temperature_K: float, volume_A3: float) -> float:
    """e² × (Å²/ps → m²/s) / (k_B T V) in S/m per (e² Å²/ps) of ∫⟨J·J⟩dt."""
    return constants.e**2 * 1e-8 / (constants.k * temperature_K * volume_A3 * 1e-30)


@dataclass
class Conductivity:
    lag_ps: np.ndarray
    jacf: np.ndarray  # ⟨J(0)·J(t)⟩, e² Å²/ps²
    running_S_m: np.ndarray  # running Green–Kubo conductivity
    sigma_S_m: float  # Eq. 12, limit of the exponential fit
    sigma_ne_S_m: float  # Eq. 14
    ratio: float  # σ/σ_NE
    fit_tau_ps: float = float("nan")  # relaxation time of the plateau fit; NaN when the fit failed


def conductivity(
    velocities: np.ndarray,
    charges: Sequence[float],
    dt_ps: float,
    temperature_K: float,
    volume_A3: float,
    d_cation: float,
    d_anion: float,
    n_ion_pairs: int,
    max_lag: Optional[int] = None,
) -> Conductivity:
    """Green–Kubo (Eqs. 12–13) and Nernst–Einstein (Eq. 14, D in Å²/ps) conductivities in S/m."""
    n = velocities.shape[0]
    max_lag = max_lag or max_lag_frames(n)
    j = charge_current(velocities, charges)
    jacf = correlation_sum(j, j, max_lag)
    lag = np.arange(max_lag) * dt_ps
    pref = _sigma_prefactor(temperature_K, volume_A3)
    running = running_integral(jacf, dt_ps) * pref / 3.0
    sigma, tau = fit_exponential_plateau(lag, running)
    sigma_ne = nernst_einstein(n_ion_pairs, d_cation, d_anion, temperature_K, volume_A3)
    return Conductivity(lag, jacf, running, sigma, sigma_ne, sigma / sigma_ne, tau)


def nernst_einstein(n_ion_pairs: int, d_cation: float, d_anion: float, temperature_K: float, volume_A3: float) -> float:
    """Eq. 14: σ_NE = N e² (D+ + D−) / (k_B T V), D in Å²/ps → S/m."""
    return n_ion_pairs * (d_cation + d_anion) * _sigma_prefactor(temperature_K, volume_A3)


def vccf(
    vel_i: np.ndarray,
    vel_j: np.ndarray,
    pos_i0: np.ndarray,
    pos_j0: np.ndarray,
    cell: np.ndarray,
    radius: float,
    max_lag: int,
    same: bool = False,
    origins: Optional[Sequence[int]] = None,
) -> np.ndarray:
    """Eqs. 15–16: restricted velocity cross-correlation ⟨Σ_j v_j(t)·v_i(0) u(R − r_ij(0))⟩ / N_shell,
    normalised by (⟨v_i²⟩⟨v_j²⟩)^½; time origins ``origins`` (frames; default every max_lag/4).

    vel_*: (T, N, 3) Å/ps; pos_*0: (T, N, 3) Å positions used for the shell test at each origin.
    """
    from deepeut.utils.geometry import neighbor_pairs

    n = vel_i.shape[0]
    origins = list(origins) if origins is not None else list(range(0, n - max_lag, max(1, max_lag // 4)))
    acc, n_pairs = np.zeros(max_lag), 0
    ni = vel_i.shape[1]
    for t0 in origins:
        pos = np.concatenate([pos_i0[t0], pos_j0[t0]]) if not same else pos_i0[t0]
        a, b, d = neighbor_pairs(pos, cell, radius)
        if same:
            ii, jj = np.concatenate([a, b]), np.concatenate([b, a])
        else:
            cross = (a < ni) != (b < ni)
            a, b = a[cross], b[cross]
            ii = np.where(a < ni, a, b)
            jj = np.where(a < ni, b, a) - ni
        if len(ii) == 0:
            continue
        v0 = vel_i[t0, ii]  # (P, 3)
        vt = vel_j[t0 : t0 + max_lag][:, jj]  # (L, P, 3)
        acc += np.einsum("pk,lpk->l", v0, vt)
        n_pairs += len(ii)
    norm = np.sqrt((vel_i**2).sum(-1).mean() * (vel_j**2).sum(-1).mean())
    return acc / max(n_pairs, 1) / norm
