"""Stop a simulation that flies apart, with a reason a chemist can act on.

Checks on every saved frame: all forces finite and below ``max_force_eV_A``; temperature below
``max_temperature_factor`` × target; and, every ``check_molecules_every`` frames, molecule recognition
finds exactly the molecules of the topology (no broken bonds, no fused molecules, no proton transfer).
"""

from __future__ import annotations

from typing import Optional

import numpy as np


class SimulationExploded(RuntimeError):
    """The MD run produced an unphysical state; the message says which check failed and where."""


def check_forces(forces: np.ndarray, max_force_eV_A: float, step: int) -> float:
    """Largest force norm (eV/Å); raises when non-finite or above the bound."""
    if not np.all(np.isfinite(forces)):
        bad = np.unique(np.nonzero(~np.isfinite(forces))[0])
        raise SimulationExploded(f"step {step}: non-finite forces on atoms {bad[:10].tolist()}")
    norms = np.linalg.norm(forces, axis=1)
    worst = int(np.argmax(norms))
    if norms[worst] > max_force_eV_A:
        raise SimulationExploded(f"step {step}: force {norms[worst]:.1f} eV/Å on atom {worst} exceeds "
                                 f"md.max_force_eV_A={max_force_eV_A:g}")
    return float(norms[worst])


def check_temperature(temperature_K: float, target_K: float, factor: float, step: int) -> None:
    if not np.isfinite(temperature_K) or temperature_K > factor * target_K:
        raise SimulationExploded(f"step {step}: temperature {temperature_K:.0f} K is above "
                                 f"{factor:g} × {target_K:g} K (md.max_temperature_factor)")


def check_molecules(recognizer, positions: np.ndarray, numbers: np.ndarray, cell: np.ndarray,
                    expected: Optional[dict], step: int) -> None:
    """Molecule recognition (part 1) on the frame: the species counts must be those of the topology."""
    result = recognizer.recognise(positions, numbers, cell)
    if not result.ok or (expected is not None and result.counts() != expected):
        problems = "; ".join(str(p) for p in result.problems[:3]) or f"molecule counts {result.counts()}"
        raise SimulationExploded(f"step {step}: molecules changed: {problems}")


def check_frame(forces: np.ndarray, temperature_K: float, positions: np.ndarray, numbers: np.ndarray,
                cell: np.ndarray, md, recognizer, expected: Optional[dict], frame_index: int, step: int) -> float:
    """All checks of one saved frame with the ``md`` config's bounds (molecules every ``md.check_molecules_every``
    frames); returns the largest force norm (eV/Å)."""
    fmax = check_forces(forces, md.max_force_eV_A, step)
    check_temperature(temperature_K, md.temperature_K, md.max_temperature_factor, step)
    if recognizer is not None and md.check_molecules_every and frame_index % md.check_molecules_every == 0:
        check_molecules(recognizer, positions, numbers, cell, expected, step)
    return fmax
