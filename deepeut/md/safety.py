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


def temperature_window_failure(
    time_ps: np.ndarray,
    temperature_K: np.ndarray,
    target_K: float,
    n_atoms: int,
    window_ps: float = 1.0,
    sigmas: float = 2.0,
) -> Optional[tuple]:
    """(end time in ps, reason) of the first ``window_ps`` window whose mean temperature is further from the
    target than ``sigmas`` × T √(2/N_f) (N_f = 3 N − 3: the canonical relative fluctuation of the instantaneous
    temperature, 9 % at 88 atoms; the mean over a window fluctuates less, so a thermostatted run at the right
    temperature does not trip it), or None. Windows slide frame by frame; runs shorter than a window are judged
    on their whole length."""
    t, temp = np.asarray(time_ps, float), np.asarray(temperature_K, float)
    if len(t) < 2:
        return None
    bound = sigmas * target_K * np.sqrt(2.0 / max(3 * n_atoms - 3, 1))
    csum = np.concatenate([[0.0], np.cumsum(temp)])
    start = np.searchsorted(t, t - min(window_ps, t[-1] - t[0]) - 1e-9)  # first frame of the window ending at k
    full = t - t[0] >= min(window_ps, t[-1] - t[0]) - 1e-9
    for k in np.nonzero(full)[0]:
        mean = (csum[k + 1] - csum[start[k]]) / (k + 1 - start[k])
        if abs(mean - target_K) > bound:
            return float(t[k]), (
                f"temperature averaged over {t[k] - t[start[k]]:.2g} ps is {mean:.0f} K, more than "
                f"{bound:.0f} K ({sigmas:g} × T √(2/N_f)) from the target {target_K:g} K"
            )
    return None
