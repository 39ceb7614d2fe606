"""One NVT replica with an ASE integrator: H5MD output, checkpoints, safety checks, drift report.

Files in the replica folder::

    trajectory.h5      H5MD (see deepeut.trajectory.h5md): positions Å, velocities Å/ps, observables, molecule ids,
                       labels
    checkpoint.pkl     step, positions, momenta, thermostat chain, RNG and the committed frame count
    md.json            summary: steps, frames, mean temperature ± standard error (K), energy drift
                       (kcal/mol/atom/ns, the paper's unit) and speed (ns/day); written at the end
    exploded_step<N>.extxyz   the offending frame (with forces) when a safety check stopped the run

A killed run restarted on the same folder continues from ``checkpoint.pkl`` and produces the same frames as an
unbroken run; frames written after the last checkpoint are dropped from the file first.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from deepeut.config.schema import MDConfig
from deepeut.md.dynamics import init_velocities, load_checkpoint, make_dynamics, run_steps, save_checkpoint
from deepeut.trajectory.h5md import H5MDWriter, H5MDTrajectory, ase_velocity_to_A_ps
from deepeut.md.safety import SimulationExploded, check_frame, check_molecules
from deepeut.utils.io import json_safe, write_json_atomic
from deepeut.utils.statistics import mean_and_sem  # noqa: F401  (re-exported for the md stage's users)
from deepeut.utils.units import ev_to_kcal_per_mol

log = logging.getLogger(__name__)


@dataclass
class ReplicaSetup:
    """What a replica needs besides the MD settings."""

    atoms: object  # ase.Atoms, start structure (velocities used when ``use_start_velocities``)
    calculator: object  # ASE calculator of the potential
    seed: int
    molecule: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None
    recognizer: Optional[object] = None  # MoleculeRecognizer for the molecule check
    expected_counts: Optional[Dict[str, int]] = None
    use_start_velocities: bool = False


def n_steps(md: MDConfig) -> int:
    return int(round(md.duration_ps * 1000.0 / md.timestep_fs))


def save_interval(md: MDConfig) -> int:
    return max(1, int(round(md.save_every_fs / md.timestep_fs)))


def energy_drift_kcal_mol_atom_ns(time_ps: np.ndarray, energy_eV: np.ndarray, n_atoms: int) -> float:
    """Slope of a straight-line fit of the conserved energy, in kcal/mol per atom per ns (the paper's unit)."""
    ok = np.isfinite(energy_eV)
    if ok.sum() < 3:
        return float("nan")
    slope_eV_ps = np.polyfit(time_ps[ok], energy_eV[ok], 1)[0]
    return float(ev_to_kcal_per_mol(slope_eV_ps * 1000.0 / n_atoms))


def frame_observables(atoms, dyn) -> Dict[str, float]:
    """Potential, kinetic, total and conserved energy (eV), temperature (K), largest force (eV/Å) and, when the
    committee drives, its largest and mean per-atom force uncertainty (eV/Å)."""
    epot, ekin = atoms.get_potential_energy(), atoms.get_kinetic_energy()
    conserved = dyn.get_conserved_energy() if hasattr(dyn, "get_conserved_energy") else float("nan")
    return {
        "potential_energy": epot,
        "kinetic_energy": ekin,
        "total_energy": epot + ekin,
        "conserved_energy": conserved,
        "temperature": atoms.get_temperature(),
        "max_force": float(np.linalg.norm(atoms.get_forces(), axis=1).max()),
        **uncertainty_observables(atoms.calc.results.get("force_uncertainty")),
    }


def uncertainty_observables(u) -> Dict[str, float]:
    """Largest and mean per-atom committee force uncertainty (Eq. 6, eV/Å) of a frame; NaN without a committee."""
    if u is None:
        return {"max_force_uncertainty": float("nan"), "mean_force_uncertainty": float("nan")}
    u = np.asarray(u, float)
    return {"max_force_uncertainty": float(u.max()), "mean_force_uncertainty": float(u.mean())}


def summarise(traj_path: Path, md: MDConfig, wall_s: float, steps_run: int) -> Dict:
    """md.json content from the trajectory file."""
    with H5MDTrajectory(traj_path) as tr:
        t, temp = tr.times_ps, tr.observable("temperature")
        conserved = tr.observable("conserved_energy")
        n_atoms, n_frames = tr.n_atoms, tr.n_frames
    keep = t >= md.equilibration_ps
    t_mean, t_sem = mean_and_sem(temp[keep]) if keep.any() else (float("nan"), float("nan"))
    simulated_ns = steps_run * md.timestep_fs * 1e-6
    return {
        "n_atoms": n_atoms,
        "n_frames": n_frames,
        "duration_ps": float(t[-1]) if len(t) else 0.0,
        "temperature_target_K": md.temperature_K,
        "temperature_mean_K": t_mean,
        "temperature_sem_K": t_sem,
        "energy_drift_kcal_mol_atom_ns": energy_drift_kcal_mol_atom_ns(t, conserved, n_atoms),
        "ns_per_day": simulated_ns / (wall_s / 86400.0) if wall_s > 0 and steps_run else float("nan"),
        "wall_s": round(wall_s, 1),
        "thermostat": md.thermostat,
        "timestep_fs": md.timestep_fs,
        "units": {"temperature": "K", "energy_drift": "kcal/mol/atom/ns", "time": "ps"},
    }


def run_replica(
    setup: ReplicaSetup, md: MDConfig, workdir: Path, progress: bool = True, params: Optional[Dict] = None
) -> Dict:
    """Run (or continue) one NVT replica into ``workdir``; raises :class:`SimulationExploded` on bad states.
    ``params``: the H5MD run parameters (deepeut.md.engines.h5md_parameters; default: those of an unnamed driver)."""
    from ase.io import write

    workdir.mkdir(parents=True, exist_ok=True)
    ckpt_path, traj_path = workdir / "checkpoint.pkl", workdir / "trajectory.h5"
    atoms = setup.atoms.copy()
    atoms.calc = setup.calculator
    ckpt = load_checkpoint(ckpt_path)
    if ckpt is None and not setup.use_start_velocities:
        init_velocities(atoms, md.temperature_K, setup.seed)  # before the integrator copies the momenta
    dyn = make_dynamics(
        atoms, md.thermostat, md.timestep_fs, md.temperature_K, md.thermostat_tau_ps, md.chain_length, seed=setup.seed
    )
    if params is None:
        from deepeut.md.engines.base import h5md_parameters

        params = h5md_parameters(md, "ase", setup.seed, "")
    if ckpt is not None:
        from deepeut.md.dynamics import set_state

        set_state(dyn, ckpt["state"])
        log.info("resuming %s at step %d (%d frames kept)", workdir, dyn.nsteps, ckpt["extra"]["n_frames"])
    writer = H5MDWriter(
        traj_path,
        atoms.numbers,
        atoms.get_masses(),
        atoms.cell.array,
        setup.molecule,
        setup.labels,
        params,
        resume_frames=ckpt["extra"]["n_frames"] if ckpt else None,
    )
    vel_factor = ase_velocity_to_A_ps()
    start_step = dyn.nsteps
    # wall time and steps of earlier segments of this run (a resumed run reports ns/day over all of them)
    wall_before, steps_before = (ckpt["extra"].get("wall_s", 0.0), ckpt["extra"].get("steps", 0)) if ckpt else (0.0, 0)

    def on_frame(step: int) -> None:
        obs = frame_observables(atoms, dyn)
        try:
            check_frame(
                atoms.get_forces(),
                obs["temperature"],
                atoms.positions,
                atoms.numbers,
                atoms.cell.array,
                md,
                setup.recognizer,
                setup.expected_counts,
                writer.n_frames,
                step,
            )
        except SimulationExploded:
            bad = atoms.copy()
            bad.calc = None
            bad.arrays["forces"] = atoms.get_forces()
            write(workdir / f"exploded_step{step}.extxyz", bad, format="extxyz")
            raise
        writer.append(
            step, step * md.timestep_fs / 1000.0, atoms.get_positions(), atoms.get_velocities() * vel_factor, obs
        )

    def on_checkpoint() -> None:
        n = writer.commit()
        save_checkpoint(
            ckpt_path,
            dyn,
            {
                "n_frames": n,
                "wall_s": wall_before + time.perf_counter() - t0,
                "steps": steps_before + dyn.nsteps - start_step,
            },
        )

    t0 = time.perf_counter()
    stopped = None
    try:
        run_steps(
            dyn,
            n_steps(md),
            save_interval(md),
            on_frame,
            on_checkpoint,
            md.checkpoint_every_steps,
            desc=f"MD {workdir.name}",
            timestep_fs=md.timestep_fs,
            progress=progress,
        )
    except SimulationExploded as exc:
        if md.on_unstable != "truncate":
            raise
        kept = writer.keep_first(frames_intact_before(writer, setup, md))
        stopped = {
            "step": dyn.nsteps,
            "time_ps": dyn.nsteps * md.timestep_fs / 1000.0,
            "reason": str(exc),
            "frames_kept": kept,
            "frame": f"exploded_step{dyn.nsteps}.extxyz",
        }
        log.warning(
            "%s stopped early at %.3f ps (%s); the %d frames before the failure whose molecules are "
            "intact are kept (md.on_unstable=truncate)",
            workdir.name,
            stopped["time_ps"],
            exc,
            kept,
        )
    finally:
        writer.f.close()  # only committed frames count; the checkpoint keeps the last good state
    summary = summarise(traj_path, md, wall_before + time.perf_counter() - t0, steps_before + dyn.nsteps - start_step)
    summary["segments"] = 1 + int(ckpt is not None)
    if stopped:
        summary["stopped_early"] = stopped
    write_json_atomic(workdir / "md.json", json_safe(summary))
    return summary


def frames_checked_before(n_frames: int, check_molecules_every: int) -> int:
    """Frames up to and including the last one whose molecules were checked by :func:`check_frame` (all of them
    when molecules are not checked; every frame's forces and temperature are)."""
    if not check_molecules_every or n_frames == 0:
        return n_frames
    return (n_frames - 1) // check_molecules_every * check_molecules_every + 1


def frames_intact_before(writer: H5MDWriter, setup: ReplicaSetup, md: MDConfig) -> int:
    """Frames to keep after a failed check: every written frame (each passed the force and temperature checks),
    up to the first one after the last molecule check whose molecules changed (checked here, one by one)."""
    n = writer.n_frames
    first = frames_checked_before(n, md.check_molecules_every)
    if setup.recognizer is None:
        return n
    for k in range(first, n):
        try:
            check_molecules(
                setup.recognizer,
                writer.position(k),
                setup.atoms.numbers,
                setup.atoms.cell.array,
                setup.expected_counts,
                step=-1,
            )
        except SimulationExploded:
            return k
    return n
