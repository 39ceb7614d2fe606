"""A reference label and the content hashes that key the dataset store (the ground floor every stage may use).

:class:`Label`: energy (eV) and forces (eV/Å) of one structure with its provenance (labeler, method, version,
settings); :func:`settings_hash` keys the settings, :func:`structure_hash` a structure with the labeler that
labels it (the store never recomputes a key it holds).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np


@dataclass
class Label:
    """Reference energy and forces of one structure, with where they came from."""

    energy: float  # eV
    forces: np.ndarray  # eV/Å, (n_atoms, 3)
    labeler: str
    method: str
    version: str
    settings: Dict[str, Any]
    stress: Optional[np.ndarray] = None  # eV/Å³, Voigt (6,)
    attempts: int = 1
    extra: Dict[str, Any] = field(default_factory=dict)
    #: the hash recorded by the run that computed the label, kept when a packed dataset is restored
    recorded_settings_hash: Optional[str] = None

    @property
    def net_force(self) -> float:
        """|Σ_i F_i| in eV/Å (zero for an exact periodic calculation)."""
        return float(np.linalg.norm(self.forces.sum(axis=0)))

    @property
    def max_force(self) -> float:
        """max_i |F_i| in eV/Å."""
        return float(np.linalg.norm(self.forces, axis=1).max())

    @property
    def settings_hash(self) -> str:
        return self.recorded_settings_hash or settings_hash(self.labeler, self.version, self.settings)


def settings_hash(name: str, version: str, settings: Dict[str, Any]) -> str:
    """Short hash of a labeler's name, version and full settings (the label's provenance key)."""
    blob = json.dumps({"name": name, "version": version, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def structure_hash(atoms, labeler_hash: str = "") -> str:
    """Content hash of a structure (elements, positions and cell to 1e-6 Å, pbc) and labeler settings."""
    h = hashlib.sha256()
    h.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    h.update(np.round(np.asarray(atoms.positions, dtype=float), 6).tobytes())
    h.update(np.round(np.asarray(atoms.cell.array, dtype=float), 6).tobytes())
    h.update(np.asarray(atoms.pbc, dtype=bool).tobytes())
    h.update(labeler_hash.encode())
    return h.hexdigest()[:24]
