"""Labelers: one interface (ASE style) for every reference method.

A labeler turns a periodic structure into a :class:`Label` (energy in eV, forces in eV/Å), or raises
:class:`LabelingError` with the reason. :func:`label_with_retries` accepts a result only when it is
physically sane (converged, finite, small net force) and walks the labeler's documented escalation
ladder before giving up.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from deepeut.data.label import Label, settings_hash
from deepeut.errors import StageError

log = logging.getLogger(__name__)


class LabelingError(StageError):
    """A structure could not be labeled; the message says why."""


class FailureBudgetExceeded(LabelingError):
    """Too many labels of one run failed."""


class Labeler:
    """Base class: subclasses implement :meth:`compute` for one settings dictionary."""

    name: str = "labeler"

    def __init__(self, settings: Dict[str, Any], max_net_force: float = 0.05):
        self.settings = dict(settings)
        self.max_net_force = max_net_force  # eV/Å

    @property
    def method(self) -> str:
        return str(self.settings.get("method", self.name))

    @property
    def version(self) -> str:
        return "unknown"

    @property
    def hash(self) -> str:
        return settings_hash(self.name, self.version, self.settings)

    def escalations(self) -> List[Dict[str, Any]]:
        """Settings overrides tried in order after a failure (the first entry is the plain settings)."""
        return [{}]

    def compute(self, atoms, settings: Dict[str, Any], workdir: Optional[str] = None) -> Label:
        raise NotImplementedError

    def check(self, label: Label, n_atoms: int) -> None:
        """Raise :class:`LabelingError` unless the label is finite and nearly force-free in total."""
        if not np.isfinite(label.energy):
            raise LabelingError(f"energy is not finite ({label.energy})")
        if label.forces.shape != (n_atoms, 3):
            raise LabelingError(f"forces have shape {label.forces.shape}, expected ({n_atoms}, 3)")
        if not np.isfinite(label.forces).all():
            raise LabelingError(f"{int((~np.isfinite(label.forces)).any(axis=1).sum())} atoms have non-finite forces")
        if label.net_force > self.max_net_force:
            raise LabelingError(f"net force {label.net_force:.3g} eV/Å exceeds {self.max_net_force} eV/Å")

    def label(self, atoms, workdir: Optional[str] = None) -> Label:
        """Label ``atoms``, escalating settings after a failure; raises :class:`LabelingError`."""
        reasons = []
        for attempt, override in enumerate(self.escalations(), start=1):
            settings = {**self.settings, **override}
            try:
                label = self.compute(atoms, settings, workdir)
                self.check(label, len(atoms))
            except LabelingError as exc:
                reasons.append(f"attempt {attempt} {override or '(plain settings)'}: {exc}")
                log.warning("%s: %s", self.name, reasons[-1])
                continue
            label.attempts = attempt
            label.settings = self.settings  # provenance: the configured settings ...
            label.extra["effective_settings"] = settings  # ... and those that succeeded
            return label
        raise LabelingError("; ".join(reasons))


class LabelerCalculator(Calculator):
    """An ASE calculator that asks a :class:`Labeler` (with its retries) for energy and forces.

    Used to drive molecular dynamics with the reference method itself (FPMD-style); the last
    :class:`Label` (with its provenance) is kept in ``last_label``.
    """

    implemented_properties = ["energy", "forces", "free_energy"]

    def __init__(self, labeler: Labeler):
        super().__init__()
        self.labeler = labeler
        self.last_label: Optional[Label] = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        lab = self.labeler.label(self.atoms)
        self.last_label = lab
        self.results = {"energy": lab.energy, "free_energy": lab.energy, "forces": lab.forces}
