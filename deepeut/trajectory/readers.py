"""One reader interface for trajectories from deepeut (H5MD) and from elsewhere (LAMMPS dump, extxyz).

:func:`open_trajectory` returns an object with ``n_frames``, ``n_atoms``, ``times_ps``, ``numbers``, ``masses``,
``cell`` (Å), ``molecule`` (or None), ``positions(frames, atoms)`` (Å) and ``velocities(frames, atoms)`` (Å/ps):
an :class:`~deepeut.trajectory.h5md.H5MDTrajectory` (streamed from disk) or an :class:`ArrayTrajectory` (in memory).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class ArrayTrajectory:
    """A trajectory held in memory (positions Å, velocities Å/ps, times ps)."""

    times_ps: np.ndarray
    pos: np.ndarray  # (n_frames, n_atoms, 3)
    vel: Optional[np.ndarray]
    numbers: np.ndarray
    masses: np.ndarray
    cell: np.ndarray  # (3, 3)
    molecule: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None

    @property
    def n_frames(self) -> int:
        return self.pos.shape[0]

    @property
    def n_atoms(self) -> int:
        return self.pos.shape[1]

    @property
    def has_velocities(self) -> bool:
        return self.vel is not None

    def _sel(self, arr, frames, atoms):
        if arr is None:
            raise ValueError("this trajectory has no velocities")
        out = arr[frames if frames is not None else slice(None)]
        return out[:, atoms] if atoms is not None else out

    def positions(self, frames=None, atoms=None) -> np.ndarray:
        return self._sel(self.pos, frames, atoms)

    def velocities(self, frames=None, atoms=None) -> np.ndarray:
        return self._sel(self.vel, frames, atoms)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_extxyz_trajectory(path: str | Path, timestep_fs: float) -> ArrayTrajectory:
    """extxyz frames (velocities from ``momenta``/``velocities`` arrays when present); frame spacing ``timestep_fs``."""
    from ase.io import read

    from deepeut.trajectory.h5md import ase_velocity_to_A_ps

    frames = read(path, ":")
    vel = np.array([a.get_velocities() for a in frames]) * ase_velocity_to_A_ps() if frames[0].has("momenta") else None
    mol = frames[0].arrays.get("molecule")
    return ArrayTrajectory(
        np.arange(len(frames)) * timestep_fs / 1000.0,
        np.array([a.positions for a in frames]),
        vel,
        frames[0].numbers,
        frames[0].get_masses(),
        frames[0].cell.array,
        mol,
    )


def read_dump_trajectory(path: str | Path, timestep_fs: float, velocity_unit: str = "A/ps", chunk_mb: float = 32.0):
    """A LAMMPS ``dump custom`` streamed from disk (:class:`deepeut.trajectory.lammps_dump.LammpsDump`);
    step × ``timestep_fs`` = time; a time field in the file that disagrees with ``timestep_fs`` is refused."""
    from deepeut.config.schema import ConfigError
    from deepeut.trajectory.lammps_dump import LammpsDump

    dump = LammpsDump(path, timestep_fs, velocity_unit, chunk_mb)
    problem = dump.check_time_field()
    if problem:
        dump.close()
        raise ConfigError(f"analysis.timestep_fs: {Path(path).name}: {problem}")
    if dump.cut_frames:
        log.warning(
            "%s: its last frame is cut (a run killed while writing?) and is left out; %d whole frames remain",
            path,
            dump.n_frames,
        )
    return dump


def open_trajectory(path: str | Path, timestep_fs: Optional[float] = None, **dump_options):
    """Open ``path`` by its suffix: .h5/.h5md (H5MD), .lammpstrj/.dump (LAMMPS), .extxyz/.xyz, and check it.

    ``timestep_fs``: the MD timestep (LAMMPS: time = step × timestep) or the frame spacing (extxyz);
    ``dump_options``: ``velocity_unit`` and ``chunk_mb`` of :func:`read_dump_trajectory`.
    A missing, empty, cut or cell-less file raises :class:`~deepeut.trajectory.h5md.TrajectoryUnreadable` naming it; a
    missing ``timestep_fs`` raises ``ConfigError`` naming ``analysis.timestep_fs``.
    """
    from deepeut.config.schema import ConfigError
    from deepeut.trajectory.h5md import H5MDTrajectory, TrajectoryUnreadable
    from deepeut.trajectory.lammps_dump import DumpError

    path = Path(path)
    if not path.is_file():
        raise TrajectoryUnreadable(f"{path}: no such trajectory file")
    if path.suffix in (".h5", ".h5md"):
        reader = H5MDTrajectory
    elif path.suffix in (".lammpstrj", ".dump") or path.name.startswith("dump"):
        reader = read_dump_trajectory
    elif path.suffix in (".extxyz", ".xyz"):
        reader = read_extxyz_trajectory
    else:
        raise TrajectoryUnreadable(f"{path}: unknown trajectory format (h5/h5md, lammpstrj/dump, extxyz/xyz)")
    if reader is not H5MDTrajectory and timestep_fs is None:
        raise ConfigError(
            f"analysis.timestep_fs: {path.name} does not store times; give the MD timestep in fs "
            "(LAMMPS: time = step × timestep) or the frame spacing (extxyz)"
        )
    try:
        traj = (
            reader(path)
            if reader is H5MDTrajectory
            else reader(path, timestep_fs, **dump_options)
            if reader is read_dump_trajectory
            else reader(path, timestep_fs)
        )
    except (TrajectoryUnreadable, ConfigError):
        raise
    except DumpError as exc:
        raise TrajectoryUnreadable(str(exc)) from None
    except Exception as exc:  # h5py, ASE and the dump parser raise many kinds on a cut or foreign file
        msg = (str(exc).strip().splitlines() or [""])[0][:200]
        raise TrajectoryUnreadable(
            f"{path}: cannot be read ({type(exc).__name__}: {msg}); is the file complete?"
        ) from None
    return check_trajectory(traj, path)


def check_trajectory(traj, path: Path):
    """A trajectory with frames, finite positions in its first frame and a periodic cell, or TrajectoryUnreadable."""
    from deepeut.trajectory.h5md import TrajectoryUnreadable

    problem = None
    if traj.n_frames == 0:
        problem = "holds no frame"
    elif abs(np.linalg.det(np.asarray(traj.cell, float))) < 1e-6:
        problem = "has no periodic cell (the analysis needs one: write the box with the frames)"
    elif not np.all(np.isfinite(traj.positions(slice(0, 1)))):
        problem = "has non-finite positions in its first frame"
    if problem:
        traj.close()
        raise TrajectoryUnreadable(f"{path}: {problem}")
    return traj
