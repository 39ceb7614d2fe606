"""Trajectories in H5MD 1.1 (h5py): written frame by frame, crash-safe, fast to read per atom subset.

Layout (units in each ``value``/``time`` dataset's ``unit`` attribute)::

    h5md/                         version [1, 1]; author, creator (deepeut) attributes
    particles/all/
        position/{step, time, value}   value (n_frames, n_atoms, 3) Å, time ps
        velocity/{step, time, value}   value (n_frames, n_atoms, 3) Å/ps
        box/                           dimension 3, boundary periodic; edges (3,) or (3, 3) Å (fixed, NVT)
        species                        (n_atoms,) atomic numbers
        mass                           (n_atoms,) amu
        molecule                       (n_atoms,) molecule index (topology.json)
        label                          (n_atoms,) Fig. 1 atom labels
    observables/<name>/{step, time, value}   potential_energy, kinetic_energy, total_energy, conserved_energy (eV),
                                             temperature (K), max_force (eV/Å)
    parameters/                    attributes: timestep_fs, temperature_K, engine, ...; n_frames_committed

Frames are chunked 64 at a time per block of ≤ 512 atoms and gzip-compressed with shuffle, so the time series
of a few atoms reads few chunks. ``n_frames_committed`` is the last frame count that was flushed together with a
checkpoint: a resumed run truncates to it, and readers never read beyond it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence

import numpy as np
from deepeut.errors import StageError

#: observables written every saved frame, with units
OBSERVABLES = {
    "potential_energy": "eV",
    "kinetic_energy": "eV",
    "total_energy": "eV",
    "conserved_energy": "eV",
    "temperature": "K",
    "max_force": "eV Å-1",
    # the committee's per-atom force uncertainty (Eq. 6) over the frame's atoms; NaN when one member drives
    "max_force_uncertainty": "eV Å-1",
    "mean_force_uncertainty": "eV Å-1",
}


def ase_velocity_to_A_ps() -> float:
    """Factor from ASE velocity units (Å / ASE time) to Å/ps."""
    from ase import units

    return 1000.0 * units.fs


def _time_series(group, name: str, shape: tuple, dtype, unit: str, chunks: tuple):
    g = group.create_group(name)
    g.create_dataset("step", shape=(0,), maxshape=(None,), dtype="i8", chunks=(1024,))
    t = g.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,))
    t.attrs["unit"] = "ps"
    v = g.create_dataset(
        "value",
        shape=(0, *shape),
        maxshape=(None, *shape),
        dtype=dtype,
        chunks=chunks,
        compression="gzip",
        compression_opts=4,
        shuffle=True,
    )
    v.attrs["unit"] = unit
    return g


class TrajectoryUnreadable(StageError):
    """A trajectory to continue cannot be reopened; the message names the file and how to restart."""


def _reopen_for_append(path: Path):
    """Open an existing H5MD file read-write to continue it, or fail with one line naming the file."""
    import h5py

    try:
        return h5py.File(path, "r+")
    except OSError as exc:
        raise TrajectoryUnreadable(
            f"{path} cannot be reopened to continue ({str(exc).split(' (')[0]}); "
            "delete it and the checkpoint.pkl beside it to restart this replica"
        ) from None


class H5MDWriter:
    """Append frames to an H5MD file; ``commit()`` flushes and records the committed frame count.

    Args:
        path: file to create (or to continue, with ``resume_frames`` = frames to keep)
        numbers, masses: atomic numbers and masses (amu)
        cell: (3, 3) cell matrix (Å), constant (NVT)
        molecule, labels: per-atom molecule index and label (optional)
        parameters: run parameters stored as attributes (numbers/strings)
    """

    def __init__(
        self,
        path: str | Path,
        numbers: np.ndarray,
        masses: np.ndarray,
        cell: np.ndarray,
        molecule: Optional[np.ndarray] = None,
        labels: Optional[Sequence[str]] = None,
        parameters: Optional[Dict] = None,
        resume_frames: Optional[int] = None,
    ):
        import h5py

        self.path = Path(path)
        self.n_atoms = len(numbers)
        self._buffer: list = []  # frames not yet written (flushed every BUFFER_FRAMES and on commit)
        if resume_frames is not None and self.path.exists():
            self.f = _reopen_for_append(self.path)
            self._add_missing_observables()
            self._truncate(resume_frames)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # default (earliest) file format on purpose: a file written with libver="latest" keeps an
        # "open for write" flag in its superblock when the process is killed and then cannot be reopened
        # without h5clear; the default format reopens after SIGKILL up to its last flush.
        self.f = h5py.File(self.path, "w")
        f = self.f
        h = f.create_group("h5md")
        h.attrs["version"] = np.array([1, 1])
        h.create_group("author").attrs["name"] = "deepeut user"
        c = h.create_group("creator")
        c.attrs["name"], c.attrs["version"] = "deepeut", _version()
        part = f.create_group("particles/all")
        n = self.n_atoms
        chunks = (64, min(n, 512), 3)
        _time_series(part, "position", (n, 3), "f4", "Å", chunks)
        _time_series(part, "velocity", (n, 3), "f4", "Å ps-1", chunks)
        box = part.create_group("box")
        box.attrs["dimension"] = 3
        box.attrs["boundary"] = np.array([b"periodic"] * 3)
        cell = np.asarray(cell, float)
        edges = np.diag(cell) if np.allclose(cell, np.diag(np.diag(cell))) else cell
        box.create_dataset("edges", data=edges).attrs["unit"] = "Å"
        part.create_dataset("species", data=np.asarray(numbers, "i4"))
        part.create_dataset("mass", data=np.asarray(masses, "f8")).attrs["unit"] = "u"
        if molecule is not None:
            part.create_dataset("molecule", data=np.asarray(molecule, "i4"))
        if labels is not None:
            part.create_dataset("label", data=np.array(labels, dtype=h5py.string_dtype()))
        obs = f.create_group("observables")
        for name, unit in OBSERVABLES.items():
            _time_series(obs, name, (), "f8", unit, (1024,))
        par = f.create_group("parameters")
        for k, v in (parameters or {}).items():
            par.attrs[k] = str(v) if isinstance(v, str) else v  # a config choice (StrEnum) as its plain word
        par.attrs["n_frames_committed"] = 0
        f.flush()

    # ------------------------------------------------------------------ writing
    def _add_missing_observables(self) -> None:
        """A file from an older deepeut lacks newer observables: they are added, NaN for the frames it has."""
        obs = self.f["observables"]
        ref = self.f["particles/all/position"]
        for name, unit in OBSERVABLES.items():
            if name not in obs:
                g = _time_series(obs, name, (), "f8", unit, (1024,))
                n = ref["step"].shape[0]
                for key in ("step", "time", "value"):
                    g[key].resize(n, axis=0)
                g["step"][:], g["time"][:], g["value"][:] = ref["step"][:], ref["time"][:], np.nan

    def _series(self):
        yield self.f["particles/all/position"]
        yield self.f["particles/all/velocity"]
        for name in OBSERVABLES:
            yield self.f[f"observables/{name}"]

    def _truncate(self, n: int) -> None:
        for g in self._series():
            for key in ("step", "time", "value"):
                g[key].resize(n, axis=0)
        self.f["parameters"].attrs["n_frames_committed"] = n
        self.f.flush()

    BUFFER_FRAMES = 64

    @property
    def n_frames(self) -> int:
        return int(self.f["particles/all/position/step"].shape[0]) + len(self._buffer)

    def append(
        self,
        step: int,
        time_ps: float,
        positions: np.ndarray,
        velocities_A_ps: np.ndarray,
        observables: Dict[str, float],
    ) -> None:
        """Add one frame (positions Å, velocities Å/ps, observables in the units of :data:`OBSERVABLES`; one a
        writer does not have, e.g. the committee uncertainty of a classical run, is NaN)."""
        values = [np.asarray(positions), np.asarray(velocities_A_ps)] + [
            observables.get(k, np.nan) for k in OBSERVABLES
        ]
        self._buffer.append((step, time_ps, values))
        if len(self._buffer) >= self.BUFFER_FRAMES:
            self._write_buffer()

    def _write_buffer(self) -> None:
        """Write the buffered frames with one resize per dataset."""
        if not self._buffer:
            return
        i = int(self.f["particles/all/position/step"].shape[0])
        n = len(self._buffer)
        steps = np.array([b[0] for b in self._buffer])
        times = np.array([b[1] for b in self._buffer])
        for k, g in enumerate(self._series()):
            for key in ("step", "time", "value"):
                g[key].resize(i + n, axis=0)
            g["step"][i : i + n], g["time"][i : i + n] = steps, times
            g["value"][i : i + n] = np.stack([b[2][k] for b in self._buffer])
        self._buffer = []

    def commit(self) -> int:
        """Write buffered frames, flush to disk and record the frame count as committed; returns it."""
        self._write_buffer()
        n = self.n_frames
        self.f["parameters"].attrs["n_frames_committed"] = n
        self.f.flush()
        return n

    def position(self, k: int) -> np.ndarray:
        """Positions (Å) of written frame ``k`` (buffered frames are written first)."""
        self._write_buffer()
        return self.f["particles/all/position/value"][k]

    def keep_first(self, n: int) -> int:
        """Write buffered frames, then keep only the first ``n`` frames as committed; returns the count kept."""
        self._write_buffer()
        n = min(n, self.n_frames)
        self._truncate(n)
        return n

    def close(self) -> None:
        if self.f.id.valid:
            self.commit()
            self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("deepeut")
    except Exception:  # not installed as a distribution
        return "dev"


class H5MDTrajectory:
    """Read an H5MD trajectory (deepeut's or another H5MD 1.1 writer's ``particles/all``).

    Positions in Å, velocities in Å/ps, times in ps. Slicing reads only the chunks needed:
    ``traj.positions(atoms=idx)`` is the (n_frames, len(idx), 3) time series of a few atoms.
    """

    def __init__(self, path: str | Path):
        import h5py

        self.path = Path(path)
        self.f = h5py.File(self.path, "r")
        self.part = self.f["particles/all"]
        committed = self.f["parameters"].attrs.get("n_frames_committed") if "parameters" in self.f else None
        stored = self.part["position/value"].shape[0]
        self.n_frames = int(min(stored, committed)) if committed is not None else stored
        self.n_atoms = int(self.part["position/value"].shape[1])

    def close(self) -> None:
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def times_ps(self) -> np.ndarray:
        return self.part["position/time"][: self.n_frames]

    @property
    def steps(self) -> np.ndarray:
        return self.part["position/step"][: self.n_frames]

    @property
    def numbers(self) -> np.ndarray:
        return self.part["species"][:]

    @property
    def masses(self) -> np.ndarray:
        return self.part["mass"][:]

    @property
    def molecule(self) -> Optional[np.ndarray]:
        return self.part["molecule"][:] if "molecule" in self.part else None

    @property
    def labels(self) -> Optional[np.ndarray]:
        return self.part["label"].asstr()[:] if "label" in self.part else None

    @property
    def cell(self) -> np.ndarray:
        """(3, 3) cell matrix, Å."""
        edges = np.asarray(self.part["box/edges"][...], float)
        return np.diag(edges) if edges.ndim == 1 else edges

    @property
    def parameters(self) -> Dict:
        return dict(self.f["parameters"].attrs) if "parameters" in self.f else {}

    def _read(self, name: str, frames, atoms) -> np.ndarray:
        ds = self.part[f"{name}/value"]
        frames = frames if frames is not None else slice(0, self.n_frames)
        if isinstance(frames, slice):
            frames = slice(*frames.indices(self.n_frames))
        if atoms is None:
            return np.asarray(ds[frames], float)
        atoms = np.asarray(atoms)
        order = np.argsort(atoms)  # h5py fancy indexing needs increasing indices
        out = np.asarray(ds[frames, atoms[order], :], float)
        return out[:, np.argsort(order), :]

    def positions(self, frames=None, atoms=None) -> np.ndarray:
        return self._read("position", frames, atoms)

    def velocities(self, frames=None, atoms=None) -> np.ndarray:
        return self._read("velocity", frames, atoms)

    def observable(self, name: str) -> np.ndarray:
        return self.f[f"observables/{name}/value"][: self.n_frames]

    def iter_blocks(self, block: int = 256, atoms=None) -> Iterator[tuple]:
        """(first frame, positions, velocities) in blocks of ``block`` frames: streams files larger than memory."""
        for start in range(0, self.n_frames, block):
            sl = slice(start, min(start + block, self.n_frames))
            yield start, self.positions(sl, atoms), self.velocities(sl, atoms)

    def atoms(self, frame: int):
        """Frame ``frame`` as ase.Atoms (velocities set)."""
        from ase import Atoms

        a = Atoms(
            numbers=self.numbers,
            positions=self.positions(slice(frame, frame + 1))[0],
            cell=self.cell,
            pbc=True,
            masses=self.masses,
        )
        a.set_velocities(self.velocities(slice(frame, frame + 1))[0] / ase_velocity_to_A_ps())
        return a
