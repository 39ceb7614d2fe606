"""GFN-xTB labels through the PyPI ``tblite`` package's ASE calculator (periodic)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from deepeut.data.label import Label
from deepeut.labeling.base import Labeler, LabelingError


class XTBLabeler(Labeler):
    """GFN2-xTB (or GFN1-xTB) single points with tblite.

    Settings: ``method`` (GFN2-xTB | GFN1-xTB), ``electronic_temperature`` (K), ``accuracy``,
    ``max_iterations`` (SCF), ``mixer_damping``, ``threads`` (OpenMP threads of this task).

    Escalation after a failed SCF: (1) as configured, (2) 2× the SCF iterations and half the mixer
    damping, (3) the configured iterations and damping at an electronic temperature of 1000 K (Fermi
    smearing; recorded in the label's effective settings). A structure that never converges costs at most
    4× ``max_iterations`` SCF cycles.
    """

    name = "xtb"

    @property
    def version(self) -> str:
        from importlib.metadata import version

        return f"tblite-{version('tblite')}"

    def escalations(self) -> List[Dict[str, Any]]:
        s = self.settings
        slower = {
            "max_iterations": 2 * int(s.get("max_iterations", 250)),
            "mixer_damping": 0.5 * float(s.get("mixer_damping", 0.4)),
        }
        smeared = {"electronic_temperature": max(1000.0, float(s.get("electronic_temperature", 300)))}
        return [{}, slower, smeared]

    def compute(self, atoms, settings: Dict[str, Any], workdir: Optional[str] = None) -> Label:
        from ase.calculators.calculator import CalculationFailed
        from tblite.ase import TBLite
        from threadpoolctl import threadpool_limits

        calc = TBLite(
            method=settings.get("method", "GFN2-xTB"),
            electronic_temperature=float(settings.get("electronic_temperature", 300.0)),
            accuracy=float(settings.get("accuracy", 1.0)),
            max_iterations=int(settings.get("max_iterations", 250)),
            mixer_damping=float(settings.get("mixer_damping", 0.4)),
            verbosity=0,
        )
        work = atoms.copy()
        work.calc = calc
        try:
            with threadpool_limits(limits=int(settings.get("threads", 1))):
                energy = float(work.get_potential_energy())
                forces = np.array(work.get_forces())
        except (CalculationFailed, RuntimeError) as exc:
            raise LabelingError(f"tblite failed: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}")
        stress = calc.results.get("stress")
        return Label(
            energy=energy,
            forces=forces,
            labeler=self.name,
            method=settings.get("method", "GFN2-xTB"),
            version=self.version,
            settings=dict(settings),
            stress=None if stress is None else np.asarray(stress),
        )
