"""A built box (RDKit + packmol topology) as an OpenMM ``System`` with GAFF2 + Li/Merz 12-6 parameters.

tleap combines one unit per molecule, in the box's molecule order (each species' mol2 has the atoms of its
:class:`~deepeut.systems.species.SpeciesTemplate` in the same order), and writes ``box.prmtop``; OpenMM reads it
with PME electrostatics, a real-space cutoff that fits the box and the long-range dispersion correction. The
positions come from the built box, never from tleap.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import List, Sequence

import numpy as np

from deepeut.classical.parameters import ClassicalError, SpeciesParameters, amber_bin
from deepeut.config.classical import ClassicalConfig, Constraints
from deepeut.systems.topology import Topology


def cutoff_for_box(cell: np.ndarray, cfg: ClassicalConfig) -> float:
    """Real-space cutoff (Å): min(classical.cutoff_A, 0.45 × smallest edge), refused below min_cutoff_A."""
    from deepeut.utils.geometry import plane_distances

    width = float(plane_distances(np.asarray(cell)).min())
    rc = min(cfg.cutoff_A, 0.45 * width)
    if rc < cfg.min_cutoff_A:
        raise ClassicalError(
            f"the box is {width:.2f} Å wide: its cutoff {rc:.2f} Å would fall below "
            f"classical.min_cutoff_A = {cfg.min_cutoff_A:g} Å; use a larger scale (scale=small)"
        )
    return rc


def molecule_sequence(topology: Topology, names: Sequence[str]) -> List[int]:
    """Species index of every molecule, in the box's order (molecules are contiguous atom ranges)."""
    first = np.unique(topology.molecule, return_index=True)[1]
    index = {n: k for k, n in enumerate(names)}
    return [index[s] for s in topology.species[np.sort(first)]]


def tleap_script(
    params: Sequence[SpeciesParameters], sequence: Sequence[int], edge_A: Sequence[float], cfg: ClassicalConfig
) -> str:
    lines = [f"source leaprc.{cfg.ff_atom_types}", f"loadamberparams {cfg.ff_ion_frcmod}"]
    for k, p in enumerate(params):
        if p.frcmod is not None:
            lines.append(f"loadamberparams {p.frcmod.resolve()}")
        lines.append(f"S{k} = loadmol2 {p.mol2.resolve()}")
    lines.append("liquid = copy S%d" % sequence[0])
    for start in range(1, len(sequence), 50):  # combine in chunks: tleap lines stay short
        lines.append("liquid = combine { liquid " + " ".join(f"S{k}" for k in sequence[start : start + 50]) + " }")
    lines += ["set liquid box { %.6f %.6f %.6f }" % tuple(edge_A), "saveamberparm liquid box.prmtop box.inpcrd", "quit"]
    return "\n".join(lines) + "\n"


def write_prmtop(
    params: Sequence[SpeciesParameters], topology: Topology, cell: np.ndarray, cfg: ClassicalConfig, folder: Path
) -> Path:
    """``folder/box.prmtop`` for the box (tleap); raises :class:`ClassicalError` with tleap's complaint."""
    folder.mkdir(parents=True, exist_ok=True)
    sequence = molecule_sequence(topology, [p.name for p in params])
    (folder / "tleap.in").write_text(tleap_script(params, sequence, np.diag(cell), cfg))
    proc = subprocess.run([amber_bin("tleap"), "-f", "tleap.in"], cwd=folder, capture_output=True, text=True)
    log_text = proc.stdout + proc.stderr
    (folder / "tleap.log").write_text(log_text)
    problems = [ln.strip() for ln in log_text.splitlines() if ln.strip().startswith(("Error", "FATAL"))]
    if proc.returncode != 0 or problems or not (folder / "box.prmtop").exists():
        raise ClassicalError(
            f"tleap could not build the box topology: {'; '.join(problems[:2]) or 'see'} ({folder / 'tleap.log'})"
        )
    return folder / "box.prmtop"


def scale_ionic_charges(system, ionic: np.ndarray, factor: float) -> None:
    """Multiply the charges of the atoms flagged in ``ionic`` by ``factor`` (and their 1-4 charge products)."""
    import openmm

    if factor == 1.0:
        return
    nb = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    for i in np.nonzero(ionic)[0]:
        q, sig, eps = nb.getParticleParameters(int(i))
        nb.setParticleParameters(int(i), q * factor, sig, eps)
    for k in range(nb.getNumExceptions()):
        i, j, qq, sig, eps = nb.getExceptionParameters(k)
        n = int(ionic[i]) + int(ionic[j])
        if n:
            nb.setExceptionParameters(k, i, j, qq * factor**n, sig, eps)


def openmm_system(
    prmtop: Path,
    numbers: np.ndarray,
    cell: np.ndarray,
    topology: Topology,
    ionic_species: Sequence[str],
    cfg: ClassicalConfig,
    constraints: Constraints,
):
    """(openmm.System, openmm.app.Topology) of the box (atomic ``numbers`` in the box's order; cell in Å)."""
    import openmm
    from openmm import app, unit

    top = app.AmberPrmtopFile(str(prmtop))
    if top.topology.getNumAtoms() != len(numbers):
        raise ClassicalError(f"{prmtop} has {top.topology.getNumAtoms()} atoms, the box {len(numbers)}")
    rc = cutoff_for_box(cell, cfg)
    system = top.createSystem(
        nonbondedMethod=app.PME,
        nonbondedCutoff=rc / 10.0 * unit.nanometer,
        constraints=app.HBonds if constraints == Constraints.hbonds else None,
        rigidWater=False,
    )
    for f in system.getForces():
        if isinstance(f, openmm.NonbondedForce):
            f.setUseDispersionCorrection(True)
            f.setEwaldErrorTolerance(5e-4)
    from ase.data import atomic_masses

    masses = np.array([system.getParticleMass(i)._value for i in range(system.getNumParticles())])
    if not np.allclose(masses, atomic_masses[np.asarray(numbers)], atol=0.1):
        bad = int(np.argmax(np.abs(masses - atomic_masses[np.asarray(numbers)])))
        raise ClassicalError(
            f"{prmtop}: atom {bad} has mass {masses[bad]:.2f} amu, the box's atom "
            f"{atomic_masses[numbers[bad]]:.2f} amu: the topology's atom order differs from the box"
        )
    a, b, c = (openmm.Vec3(*(row / 10.0)) for row in np.asarray(cell))
    system.setDefaultPeriodicBoxVectors(a, b, c)
    scale_ionic_charges(system, np.isin(topology.species, list(ionic_species)), cfg.ionic_charge_scale)
    return system, top.topology


def platform_for(device: str):
    """OpenMM platform for ``device``: CPU, or CUDA (``cuda``/``cuda:N``) when an openmm-cuda wheel is present."""
    import openmm

    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if device.startswith("cuda"):
        if "CUDA" not in names:
            raise ClassicalError(
                f"device={device}: OpenMM has no CUDA platform here (it has {', '.join(names)}); "
                "pip install openmm-cuda-12 (or -13) on a GPU machine, or run with device=cpu"
            )
        props = {"DeviceIndex": device.split(":")[1]} if ":" in device else {}
        return openmm.Platform.getPlatformByName("CUDA"), {**props, "Precision": "mixed"}
    return openmm.Platform.getPlatformByName("CPU"), {}
