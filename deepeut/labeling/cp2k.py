"""DFT labels with CP2K through ASE's ``CP2K`` calculator and ``cp2k_shell``.

Default input (every keyword overridable from ``labeler.cp2k``): PBE-D3(BJ), DZVP-MOLOPT-SR-GTH basis,
GTH-PBE pseudopotentials, 400 Ry plane-wave cutoff, OT with the DIIS minimiser. Debian's ``cp2k``
package (``DEEPEUT_CP2K=1 bash scripts/install.sh``) ships ``cp2k_shell`` and the data files in
``/usr/share/cp2k``. The generated CP2K input is saved beside each result as ``cp2k.inp``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from deepeut.data.label import Label
from deepeut.labeling.base import Labeler, LabelingError

CP2K_DATA = "/usr/share/cp2k"


def _ot_block(minimizer: str, outer_scf: int) -> str:
    outer = (
        f"      &OUTER_SCF\n        MAX_SCF {outer_scf}\n        EPS_SCF 1.0E-6\n      &END OUTER_SCF\n"
        if outer_scf
        else ""
    )
    return (
        f"    &SCF\n      EPS_SCF 1.0E-6\n      &OT\n        MINIMIZER {minimizer}\n"
        f"        PRECONDITIONER FULL_SINGLE_INVERSE\n      &END OT\n{outer}    &END SCF\n"
    )


def cp2k_input_block(settings: Dict[str, Any]) -> str:
    """The ``inp`` fragment ASE merges into its generated input: OT SCF and D3(BJ) dispersion."""
    d3 = ""
    if settings.get("dispersion", "D3(BJ)"):
        d3 = (
            "    &XC\n      &VDW_POTENTIAL\n        POTENTIAL_TYPE PAIR_POTENTIAL\n        &PAIR_POTENTIAL\n"
            f"          TYPE DFTD3{'(BJ)' if 'BJ' in settings.get('dispersion', 'D3(BJ)') else ''}\n"
            f"          PARAMETER_FILE_NAME {settings.get('data_dir', CP2K_DATA)}/dftd3.dat\n"
            f"          REFERENCE_FUNCTIONAL {settings.get('xc', 'PBE')}\n"
            "        &END PAIR_POTENTIAL\n      &END VDW_POTENTIAL\n    &END XC\n"
        )
    scf = _ot_block(settings.get("ot_minimizer", "DIIS"), int(settings.get("outer_scf", 0)))
    mgrid = f"    &MGRID\n      REL_CUTOFF {float(settings.get('rel_cutoff_Ry', 60.0))}\n    &END MGRID\n"
    extra = settings.get("extra_input", "")
    return f"&FORCE_EVAL\n  &DFT\n{scf}{d3}{mgrid}  &END DFT\n&END FORCE_EVAL\n{extra}"


def cp2k_shell_command() -> Optional[str]:
    for exe in ("cp2k_shell", "cp2k_shell.psmp", "cp2k_shell.ssmp"):
        path = shutil.which(exe)
        if path:
            return path
    return None


class CP2KLabeler(Labeler):
    """PBE-D3(BJ) single points with CP2K.

    Escalation after a failed SCF: (1) as configured, (2) an OT outer SCF loop (restart of the inner OT
    from the last wavefunction, 20 outer cycles), (3) the conjugate-gradient OT minimiser with the outer loop.
    """

    name = "cp2k"

    @property
    def version(self) -> str:
        return "cp2k-" + str(self.settings.get("version_tag", "debian"))

    def escalations(self) -> List[Dict[str, Any]]:
        return [{}, {"outer_scf": 20}, {"outer_scf": 20, "ot_minimizer": "CG"}]

    def calculator_parameters(self, settings: Dict[str, Any]) -> Dict[str, Any]:
        """Keyword arguments of ASE's ``CP2K`` calculator for ``settings`` (cutoff converted from Ry to eV)."""
        from ase.units import Rydberg

        data = settings.get("data_dir", CP2K_DATA)
        return dict(
            xc=settings.get("xc", "PBE"),
            basis_set=settings.get("basis_set", "DZVP-MOLOPT-SR-GTH"),
            basis_set_file=f"{data}/{settings.get('basis_set_file', 'BASIS_MOLOPT')}",
            pseudo_potential=settings.get("pseudo_potential", "GTH-PBE"),
            potential_file=f"{data}/{settings.get('potential_file', 'GTH_POTENTIALS')}",
            cutoff=float(settings.get("cutoff_Ry", 400.0)) * Rydberg,
            max_scf=int(settings.get("max_scf", 50)),
            charge=int(settings.get("charge", 0)),
            stress_tensor=False,
            inp=cp2k_input_block(settings),
        )

    def make_calculator(self, settings: Dict[str, Any], directory: str):
        """ASE's CP2K calculator; starts ``cp2k_shell``."""
        from ase.calculators.cp2k import CP2K

        command = settings.get("command") or cp2k_shell_command()
        if not command:
            raise LabelingError("cp2k_shell not found: install CP2K with DEEPEUT_CP2K=1 bash scripts/install.sh")
        return CP2K(command=command, directory=directory, label="cp2k", **self.calculator_parameters(settings))

    def input_text(self, atoms, settings: Optional[Dict[str, Any]] = None) -> str:
        """The complete CP2K input ASE generates for ``atoms`` (no CP2K needed; saved beside each result)."""
        from ase.calculators.calculator import Calculator
        from ase.calculators.cp2k import CP2K

        calc = CP2K.__new__(CP2K)  # ASE's generator without starting cp2k_shell
        calc._shell = None
        Calculator.__init__(calc, label="cp2k", **self.calculator_parameters(settings or self.settings))
        calc.atoms = atoms.copy()
        return calc._generate_input()

    def compute(self, atoms, settings: Dict[str, Any], workdir: Optional[str] = None) -> Label:
        directory = workdir or tempfile.mkdtemp(prefix="deepeut-cp2k-")
        Path(directory).mkdir(parents=True, exist_ok=True)
        calc = self.make_calculator(settings, directory)
        work = atoms.copy()
        work.calc = calc
        try:
            energy = float(work.get_potential_energy())
            forces = np.array(work.get_forces())
        except Exception as exc:  # cp2k_shell errors surface as assorted exceptions
            raise LabelingError(f"CP2K failed: {str(exc).strip()[-300:]}")
        finally:
            (Path(directory) / "cp2k.inp").write_text(self.input_text(work, settings))
            del calc
        return Label(
            energy=energy,
            forces=forces,
            labeler=self.name,
            method=f"{settings.get('xc', 'PBE')}-"
            f"{settings.get('dispersion', 'D3(BJ)')}/{settings.get('basis_set', 'DZVP-MOLOPT-SR-GTH')}",
            version=self.version,
            settings=dict(settings),
            extra={"workdir": os.fspath(directory)},
        )
