"""Stop a simulation that flies apart, with a reason a chemist can act on.

Checks on every saved frame: all forces finite and below ``max_force_eV_A``; temperature below
``max_temperature_factor`` × target; and, every ``check_molecules_every`` frames, molecule recognition
finds exactly the molecules of the topology (no broken bonds, no fused molecules, no proton transfer).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from deepeut.errors import StageError


class SimulationExploded(StageError):
    """The MD run produced an unphysical state; the message says which check failed and where."""


def check_forces(forces: np.ndarray, max_force_eV_A: float, step: int) -> float:
    """Largest force norm (eV/Å); raises when non-finite or above the bound."""
    if not np.all(np.isfinite(forces)):
        bad = np.unique(np.nonzero(~np.isfinite(forces))[0])
        raise SimulationExploded(f"step {step}: non-finite forces on atoms {bad[:10].tolist()}")
    norms = np.linalg.norm(forces, axis=1)
    worst = int(np.argmax(norms))
    if norms[worst] > max_force_eV_A:
        raise SimulationExploded(
            f"step {step}: force {norms[worst]:.1f} eV/Å on atom {worst} exceeds md.max_force_eV_A={max_force_eV_A:g}"
        )
    return float(norms[worst])


def check_temperature(temperature_K: float, target_K: float, factor: float, step: int) -> None:
    if not np.isfinite(temperature_K) or temperature_K > factor * target_K:
        raise SimulationExploded(
            f"step {step}: temperature {temperature_K:.0f} K is above "
            f"{factor:g} × {target_K:g} K (md.max_temperature_factor)"
        )


def check_molecules(
    recognizer, positions: np.ndarray, numbers: np.ndarray, cell: np.ndarray, expected: Optional[dict], step: int
) -> None:
    """Molecule recognition (part 1) on the frame: the species counts must be those of the topology."""
    result = recognizer.recognise(positions, numbers, cell)
    if not result.ok or (expected is not None and result.counts() != expected):
        problems = "; ".join(str(p) for p in result.problems[:3]) or f"molecule counts {result.counts()}"
        raise SimulationExploded(f"step {step}: molecules changed: {problems}")


def check_frame(
    forces: np.ndarray,
    temperature_K: float,
    positions: np.ndarray,
    numbers: np.ndarray,
    cell: np.ndarray,
    md,
    recognizer,
    expected: Optional[dict],
    frame_index: int,
    step: int,
) -> float:
    """All checks of one saved frame with the ``md`` config's bounds (molecules every ``md.check_molecules_every``
    frames); returns the largest force norm (eV/Å)."""
    fmax = check_forces(forces, md.max_force_eV_A, step)
    check_temperature(temperature_K, md.temperature_K, md.max_temperature_factor, step)
    if recognizer is not None and md.check_molecules_every and frame_index % md.check_molecules_every == 0:
        check_molecules(recognizer, positions, numbers, cell, expected, step)
    return fmax


def temperature_bound_K(target_K: float, n_atoms: int, sigmas: float = 2.0) -> float:
    """``sigmas`` × T √(2/N_f) (K), N_f = 3 N − 3: the canonical fluctuation of the instantaneous temperature."""
    return sigmas * target_K * np.sqrt(2.0 / max(3 * n_atoms - 3, 1))


def window_mean_temperature(time_ps: np.ndarray, temperature_K: np.ndarray, window_ps: float) -> tuple:
    """(indices k, means): the mean temperature (K) over the ``window_ps`` window ending at frame k, for every frame
    with a full window behind it (runs shorter than a window: the windows reaching back to the start)."""
    t, temp = np.asarray(time_ps, float), np.asarray(temperature_K, float)
    if len(t) < 2:
        return np.zeros(0, int), np.zeros(0)
    span = min(window_ps, t[-1] - t[0])
    csum = np.concatenate([[0.0], np.cumsum(temp)])
    start = np.searchsorted(t, t - span - 1e-9)  # first frame of the window ending at k
    ends = np.nonzero(t - t[0] >= span - 1e-9)[0]
    return ends, (csum[ends + 1] - csum[start[ends]]) / (ends + 1 - start[ends])


def temperature_window_failure(
    time_ps: np.ndarray,
    temperature_K: np.ndarray,
    target_K: float,
    n_atoms: int,
    window_ps: float = 1.0,
    sigmas: float = 2.0,
) -> Optional[tuple]:
    """(end time in ps, reason) of the first ``window_ps`` window whose mean temperature is further from the
    target than ``sigmas`` × T √(2/N_f) (:func:`temperature_bound_K`; 9 % of T per σ at 88 atoms; the mean over a
    window fluctuates less, so a thermostatted run at the right temperature does not trip it), or None. Windows
    slide frame by frame; runs shorter than a window are judged on their whole length."""
    t = np.asarray(time_ps, float)
    bound = temperature_bound_K(target_K, n_atoms, sigmas)
    ends, means = window_mean_temperature(t, temperature_K, window_ps)
    bad = np.nonzero(np.abs(means - target_K) > bound)[0]
    if len(bad) == 0:
        return None
    k, mean = ends[bad[0]], means[bad[0]]
    span = min(window_ps, t[-1] - t[0])
    first = t[np.searchsorted(t, t[k] - span - 1e-9)]
    return float(t[k]), (
        f"temperature averaged over {t[k] - first:.2g} ps is {mean:.0f} K, more than "
        f"{bound:.0f} K ({sigmas:g} × T √(2/N_f)) from the target {target_K:g} K"
    )
