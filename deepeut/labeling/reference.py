"""The paper's primary dataset: MD driven by the reference method itself, then frame selection.

Paper (Methods B): 20 ps FPMD per system; 4500 frames from the first 15 ps, sampled with an increasing
time lag between successive frames, for training and validation; 500 frames from the last 5 ps for the
test set. Here the duration, counts, temperature and box scale are config values (``reference.*``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterator, List, Tuple

import numpy as np

from deepeut.config.schema import ConfigError, ReferenceConfig

log = logging.getLogger(__name__)


def increasing_lag_indices(n_available: int, n_select: int) -> np.ndarray:
    """``n_select`` frame indices from ``range(n_available)``, starting at 0, whose lags grow linearly.

    Lag k (between selected frames k and k+1) is 1 + ⌊c·k⌋ with the largest c that stays in range, so
    early frames are dense and later ones sparse (lags never decrease).
    """
    if n_select > n_available:
        raise ConfigError(
            f"reference.n_train: {n_select} frames requested but only {n_available} available "
            "in the train/validation part of the trajectory (raise reference.duration_ps)"
        )
    if n_select <= 1:
        return np.zeros(n_select, dtype=int)
    k = np.arange(n_select - 1)

    def indices(c: float) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(1 + np.floor(c * k + 1e-9).astype(int))])

    lo, hi = 0.0, float(n_available)
    for _ in range(60):  # largest c whose last index stays in range
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if indices(mid)[-1] <= n_available - 1 else (lo, mid)
    return indices(lo)


def evenly_spaced_indices(start: int, stop: int, n_select: int) -> np.ndarray:
    if n_select > stop - start:
        raise ConfigError(
            f"reference.n_test: {n_select} frames requested but only {stop - start} available "
            "in the test part of the trajectory (raise reference.duration_ps)"
        )
    return np.unique(np.linspace(start, stop - 1, n_select).round().astype(int))


def select_frames(n_frames: int, ref: ReferenceConfig) -> Tuple[np.ndarray, np.ndarray]:
    """Indices of train (first ``trainval_fraction``, increasing lag) and test frames (the rest, even)."""
    boundary = int(round(n_frames * ref.trainval_fraction))
    return increasing_lag_indices(boundary, ref.n_train), evenly_spaced_indices(boundary, n_frames, ref.n_test)


def _append_frame(path: Path, atoms) -> None:
    from ase.io import write

    with open(path, "a") as f:
        write(f, atoms, format="extxyz")
        f.flush()
        os.fsync(f.fileno())


def run_labeler_md(atoms, labeler, ref: ReferenceConfig, workdir: Path, progress: bool = True) -> Path:
    """NVT MD whose forces come from ``labeler``; every step's labeled frame goes to ``trajectory.extxyz``.

    Resumable: a checkpoint every ``ref.checkpoint_every`` steps records the dynamics state and the bytes
    of trajectory written; a restarted run truncates the trajectory to that point and continues.
    """
    from ase.calculators.singlepoint import SinglePointCalculator

    from deepeut.labeling.base import LabelerCalculator
    from deepeut.md.dynamics import (
        init_velocities,
        load_checkpoint,
        make_dynamics,
        run_steps,
        save_checkpoint,
        set_state,
    )

    workdir.mkdir(parents=True, exist_ok=True)
    traj, ckpt = workdir / "trajectory.extxyz", workdir / "checkpoint.pkl"
    done = workdir / "done.json"
    n_steps = int(round(ref.duration_ps * 1000 / ref.timestep_fs))
    if done.exists() and json.loads(done.read_text()) == {"n_steps": n_steps, "labeler_hash": labeler.hash}:
        return traj
    atoms = atoms.copy()
    init_velocities(atoms, ref.temperature_K, ref.seed)
    calc = LabelerCalculator(labeler)
    atoms.calc = calc
    dyn = make_dynamics(
        atoms, ref.thermostat, ref.timestep_fs, ref.temperature_K, ref.thermostat_tau_ps, ref.chain_length, ref.seed
    )
    saved = load_checkpoint(ckpt)
    if saved is not None and saved["extra"].get("labeler_hash") != labeler.hash:
        raise ConfigError(
            f"{workdir}: this reference MD was started with other labeler settings; use a new output directory"
        )
    if saved is not None:
        set_state(dyn, saved["state"])
        with open(traj, "r+b") as f:
            f.truncate(saved["extra"]["traj_bytes"])
        log.info("reference MD: resuming at step %d of %d", dyn.nsteps, n_steps)
    elif traj.exists():
        traj.unlink()

    def on_frame(step: int) -> None:
        frame = atoms.copy()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        frame.calc = SinglePointCalculator(frame, energy=energy, forces=forces)
        frame.info = {
            "step": step,
            "time_fs": step * ref.timestep_fs,
            "temperature_K": float(atoms.get_temperature()),
            "labeler_hash": labeler.hash,
        }
        _append_frame(traj, frame)

    def on_checkpoint() -> None:
        save_checkpoint(ckpt, dyn, {"traj_bytes": traj.stat().st_size, "labeler_hash": labeler.hash})

    run_steps(
        dyn,
        n_steps,
        1,
        on_frame,
        on_checkpoint,
        ref.checkpoint_every,
        desc="reference MD",
        timestep_fs=ref.timestep_fs,
        progress=progress,
    )
    from deepeut.utils.io import write_json_atomic

    write_json_atomic(done, {"n_steps": n_steps, "labeler_hash": labeler.hash})
    return traj


def trajectory_labels(traj: Path, labeler) -> Iterator[Tuple[object, object]]:
    """``(atoms, Label)`` of every frame of a labeler-driven trajectory."""
    from ase.io import iread

    from deepeut.data.label import Label

    for atoms in iread(str(traj), index=":", format="extxyz"):
        label = Label(
            energy=float(atoms.get_potential_energy()),
            forces=np.array(atoms.get_forces()),
            labeler=labeler.name,
            method=labeler.method,
            version=labeler.version,
            settings=labeler.settings,
        )
        info = dict(atoms.info)
        atoms.calc = None
        atoms.info = info
        yield atoms, label


def imported_labels(cfg) -> List[Tuple[object, object]]:
    """Frames of ``labeler=import`` (extxyz or CP2K FPMD output), in eV and eV/Å."""
    from deepeut.labeling.importer import check_force_magnitudes, read_cp2k_fpmd, read_labeled_extxyz

    imp = cfg.labeler.imported
    if imp.format == "cp2k":
        pairs = list(read_cp2k_fpmd(imp.path, inp=imp.cp2k_input))
    else:
        pairs = list(read_labeled_extxyz(imp.path, imp.energy_unit, imp.force_unit))
    check_force_magnitudes(pairs, imp.path)
    return pairs
