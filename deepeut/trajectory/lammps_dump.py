"""A streaming reader of LAMMPS ``dump custom`` text trajectories (positions Å, velocities Å/ps, times ps).

Opening a dump reads its first frame and indexes where every frame starts (one pass over the bytes, no parsing);
frames are parsed on request, a slice at a time, with numpy's C text parser, into at most ``chunk_mb`` of text
at once, so memory stays bounded whatever the file size. Accepted columns:

- ``id`` (required); rows are put in atom-id order in every frame (LAMMPS writes them in any order);
- positions: ``xu yu zu`` (unwrapped), or ``x y z`` (wrapped) with optional image flags ``ix iy iz``, or scaled
  ``xs ys zs`` / ``xsu ysu zsu``; the box is orthogonal or triclinic (``xy xz yz`` tilt line);
- ``element`` (required: the analysis needs chemical elements), ``mol`` (optional), ``vx vy vz`` (optional);
- ``ITEM: TIME`` (``dump_modify time yes``), when present, is checked against ``timestep_fs``.

Velocities are taken to be in Å/fs (LAMMPS ``units real``) when ``velocity_unit`` is ``A/fs``, else Å/ps
(``units metal``). The cell is that of the first frame (NVT).
"""

from __future__ import annotations

import io
import mmap
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from deepeut.errors import StageError

VELOCITY_FACTORS = {"A/ps": 1.0, "A/fs": 1000.0}  # to Å/ps
POSITION_SETS = (("xu", "yu", "zu"), ("x", "y", "z"), ("xsu", "ysu", "zsu"), ("xs", "ys", "zs"))
IMAGE_FLAGS = ("ix", "iy", "iz")


class DumpError(StageError, ValueError):
    """The dump cannot be read as asked; the message names the file and what is wrong."""


def frame_offsets(path: Path) -> np.ndarray:
    """Byte offset of every ``ITEM: TIMESTEP`` line, found without parsing (memory-mapped search)."""
    marker = b"ITEM: TIMESTEP"
    out: List[int] = []
    with open(path, "rb") as f:
        if f.seek(0, 2) == 0:
            return np.zeros(0, np.int64)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            k = m.find(marker)
            while k >= 0:
                out.append(k)
                k = m.find(marker, k + len(marker))
    return np.asarray(out, np.int64)


def parse_header(lines: Sequence[str], path: Path) -> Dict:
    """Step, time (or None), atom count, cell (3×3, Å), origin and column names of one frame's header lines."""
    try:
        items = {
            ln.split(":", 1)[1].split()[0] if ":" in ln else "": k
            for k, ln in enumerate(lines)
            if ln.startswith("ITEM:")
        }
        step = int(lines[items["TIMESTEP"] + 1])
        time = float(lines[items["TIME"] + 1]) if "TIME" in items else None
        n = int(lines[items["NUMBER"] + 1])
        b = items["BOX"]
        rows = np.array([[float(x) for x in lines[b + 1 + k].split()] for k in range(3)])
        columns = lines[items["ATOMS"]].split()[2:]
    except (KeyError, IndexError, ValueError) as exc:
        raise DumpError(f"{path}: not a LAMMPS dump custom header ({type(exc).__name__}: {exc})") from None
    tilt = rows[:, 2] if rows.shape[1] > 2 else np.zeros(3)
    xy, xz, yz = tilt
    lo, hi = rows[:, 0].copy(), rows[:, 1].copy()
    if rows.shape[1] > 2:  # triclinic: the bounds include the tilt (LAMMPS Howto triclinic)
        lo -= [min(0.0, xy, xz, xy + xz), min(0.0, yz), 0.0]
        hi -= [max(0.0, xy, xz, xy + xz), max(0.0, yz), 0.0]
    lx, ly, lz = hi - lo
    cell = np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])
    return {
        "step": step,
        "time": time,
        "n_atoms": n,
        "cell": cell,
        "origin": lo,
        "columns": columns,
        "header_lines": items["ATOMS"] + 1,
    }


class LammpsDump:
    """The trajectory interface of :mod:`deepeut.trajectory.readers` over a dump file, streamed from disk."""

    def __init__(self, path: str | Path, timestep_fs: float, velocity_unit: str = "A/ps", chunk_mb: float = 32.0):
        self.path = Path(path)
        if velocity_unit not in VELOCITY_FACTORS:
            raise DumpError(f"velocity unit '{velocity_unit}' is not one of {', '.join(VELOCITY_FACTORS)}")
        self.offsets = frame_offsets(self.path)
        if len(self.offsets) == 0:
            raise DumpError(f"{self.path}: holds no frame (no 'ITEM: TIMESTEP' line)")
        self.ends = np.append(self.offsets[1:], self.path.stat().st_size)  # byte after each frame
        self._file = open(self.path, "rb")
        self.header = parse_header(self._frame_text(0).split("\n"), self.path)
        self.columns = self.header["columns"]
        self.n_atoms = self.header["n_atoms"]
        self.cell = self.header["cell"]
        self.chunk_bytes = int(chunk_mb * 2**20)
        self._vel_factor = VELOCITY_FACTORS[velocity_unit]
        self._layout()
        self._drop_cut_last_frame()
        self.steps = np.array([self._step(k) for k in range(self.n_frames)], np.int64)
        self.times_ps = self.steps * timestep_fs / 1000.0
        self.timestep_fs = timestep_fs
        self._last = None
        first = self._parse(slice(0, 1))[0]
        self._order0 = np.argsort(first[:, self._col["id"]])
        self.numbers, self.masses = self._elements()
        self.molecule = self._molecules(self._ordered(first))
        self.labels = None

    # -- layout ------------------------------------------------------------------------------------------------
    def _layout(self) -> None:
        cols = self.columns
        if "id" not in cols:
            raise DumpError(f"{self.path}: the dump needs an 'id' column (columns: {' '.join(cols)})")
        if "element" not in cols:
            raise DumpError(
                f"{self.path}: the dump needs an 'element' column (dump_modify ... element ...); "
                f"columns: {' '.join(cols)}"
            )
        self.position_columns = next((p for p in POSITION_SETS if all(c in cols for c in p)), None)
        if self.position_columns is None:
            raise DumpError(
                f"{self.path}: no position columns (x y z, xu yu zu, xs ys zs or xsu ysu zsu); "
                f"columns: {' '.join(cols)}"
            )
        self.scaled = self.position_columns[0].startswith("xs")
        wrapped = self.position_columns[0] in ("x", "xs")
        self.image_columns = IMAGE_FLAGS if wrapped and all(c in cols for c in IMAGE_FLAGS) else None
        self.has_velocities = all(c in cols for c in ("vx", "vy", "vz"))
        numeric = [
            "id",
            *self.position_columns,
            *(self.image_columns or ()),
            *(("vx", "vy", "vz") if self.has_velocities else ()),
            *(("mol",) if "mol" in cols else ()),
        ]
        self._usecols = [cols.index(c) for c in numeric]
        self._col = {c: k for k, c in enumerate(numeric)}

    def _drop_cut_last_frame(self) -> None:
        """A run killed while writing leaves a cut last frame: it is dropped (and said so by ``cut_frames``)."""
        self.cut_frames = 0
        last = self._frame_text(len(self.offsets) - 1).rstrip("\n").split("\n")
        if len(last) < self.header["header_lines"] + self.n_atoms or len(last[-1].split()) != len(self.columns):
            self.offsets, self.ends = self.offsets[:-1], self.ends[:-1]
            self.cut_frames = 1
        if len(self.offsets) == 0:
            raise DumpError(f"{self.path}: its only frame is cut (fewer atom lines than its header says)")

    @property
    def n_frames(self) -> int:
        return len(self.offsets)

    def _end(self, k: int) -> int:
        return int(self.ends[k])

    def _frame_text(self, k: int) -> str:
        self._file.seek(int(self.offsets[k]))
        return self._file.read(self._end(k) - int(self.offsets[k])).decode()

    def _step(self, k: int) -> int:
        self._file.seek(int(self.offsets[k]))
        head = self._file.read(64).split(b"\n")
        return int(head[1])

    # -- parsing -----------------------------------------------------------------------------------------------
    def _frame_list(self, frames) -> List[int]:
        return list(range(self.n_frames))[frames] if isinstance(frames, slice) else [int(k) for k in frames]

    def _chunks(self, idx: List[int]):
        """(first position in ``idx``, table of the numeric columns of the next frames, file order), reading at
        most ``chunk_bytes`` of text per table."""
        skip = self.header["header_lines"]
        batch: List[bytes] = []
        first, size = 0, 0
        for pos, k in enumerate(idx):
            self._file.seek(int(self.offsets[k]))
            raw = self._file.read(self._end(k) - int(self.offsets[k]))
            body = raw.split(b"\n", skip)[skip]
            if body.count(b"\n") < self.n_atoms - 1:
                raise DumpError(f"{self.path}: frame {k} has fewer atom lines than {self.n_atoms}")
            batch.append(body if body.endswith(b"\n") else body + b"\n")
            size += len(body)
            if size >= self.chunk_bytes or pos == len(idx) - 1:
                table = np.loadtxt(io.BytesIO(b"".join(batch)), usecols=self._usecols, ndmin=2)
                yield first, table.reshape(len(batch), self.n_atoms, -1)
                first, size = pos + 1, 0
                batch.clear()

    def _parse(self, frames) -> List[np.ndarray]:
        """The numeric columns of ``frames`` (a slice or index list), file order within each frame."""
        return [t for _, tables in self._chunks(self._frame_list(frames)) for t in tables]

    def _read(self, frames) -> Dict[str, np.ndarray]:
        """Positions (Å) and velocities (Å/ps; None without vx vy vz) of ``frames`` in atom-id order, parsed once
        per request and kept until the next one (the analysis asks for both of the same block)."""
        key = (frames.start, frames.stop, frames.step) if isinstance(frames, slice) else tuple(frames)
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        idx = self._frame_list(frames)
        pos = np.empty((len(idx), self.n_atoms, 3))
        vel = np.empty((len(idx), self.n_atoms, 3)) if self.has_velocities else None
        vcols = [self._col[c] for c in ("vx", "vy", "vz")] if self.has_velocities else None
        for first, tables in self._chunks(idx):
            for k, table in enumerate(tables):
                table = self._ordered(table)
                pos[first + k] = self._positions_of(table)
                if vel is not None:
                    vel[first + k] = table[:, vcols] * self._vel_factor
        self._last = (key, {"positions": pos, "velocities": vel})
        return self._last[1]

    def _ordered(self, table: np.ndarray) -> np.ndarray:
        ids = table[:, self._col["id"]]
        order = self._order0 if np.array_equal(ids[self._order0], np.arange(1, self.n_atoms + 1)) else np.argsort(ids)
        return table[order]

    def _positions_of(self, table: np.ndarray) -> np.ndarray:
        """Å; image flags (when given with wrapped columns) count whole lattice vectors (rows of ``cell``)."""
        xyz = table[:, [self._col[c] for c in self.position_columns]]
        if self.image_columns:
            xyz = xyz + table[:, [self._col[c] for c in self.image_columns]] @ (np.eye(3) if self.scaled else self.cell)
        return xyz @ self.cell + self.header["origin"] if self.scaled else xyz

    def positions(self, frames=None, atoms=None) -> np.ndarray:
        """Positions (Å), shape (n_frames, n_atoms, 3), atoms in id order."""
        pos = self._read(frames if frames is not None else slice(None))["positions"]
        return pos[:, atoms] if atoms is not None else pos

    def velocities(self, frames=None, atoms=None) -> np.ndarray:
        """Velocities (Å/ps), shape (n_frames, n_atoms, 3); a dump without ``vx vy vz`` raises DumpError."""
        if not self.has_velocities:
            raise DumpError(f"{self.path}: the dump has no velocity columns (vx vy vz)")
        vel = self._read(frames if frames is not None else slice(None))["velocities"]
        return vel[:, atoms] if atoms is not None else vel

    # -- per-atom constants ------------------------------------------------------------------------------------
    def _first_frame_words(self) -> np.ndarray:
        lines = self._frame_text(0).split("\n")[self.header["header_lines"] :][: self.n_atoms]
        return np.array([ln.split() for ln in lines], dtype=object)

    def _elements(self):
        from ase.data import atomic_masses, atomic_numbers

        words = self._first_frame_words()
        ids = words[:, self.columns.index("id")].astype(int)
        elements = words[np.argsort(ids), self.columns.index("element")].astype(str)
        unknown = sorted(set(elements) - set(atomic_numbers))
        if unknown:
            raise DumpError(f"{self.path}: element column holds {', '.join(unknown)}, not chemical symbols")
        numbers = np.array([atomic_numbers[e] for e in elements])
        return numbers, atomic_masses[numbers]

    def _molecules(self, first: np.ndarray) -> Optional[np.ndarray]:
        """0-based molecule ids from the ``mol`` column of the first frame (``first``: id-ordered numeric table)."""
        if "mol" not in self.columns:
            return None
        mol = first[:, self._col["mol"]].astype(np.int64)
        return np.unique(mol, return_inverse=True)[1]  # 0-based, consecutive

    def check_time_field(self) -> Optional[str]:
        """'' when the file's own time field (``ITEM: TIME``) agrees with ``timestep_fs`` as fs (units real) or
        ps (units metal), None when it has none, else why not."""
        if self.header["time"] is None or self.n_frames < 2:
            return None
        t1 = parse_header(self._frame_text(1).split("\n"), self.path)["time"]
        dstep = self.steps[1] - self.steps[0]
        if t1 is None or dstep == 0:
            return None
        per_step = (t1 - self.header["time"]) / dstep
        if any(np.isclose(per_step * f, self.timestep_fs, rtol=1e-3) for f in (1.0, 1000.0)):
            return ""
        return (
            f"the dump's own time field gives {per_step:g} time units per step (fs with units real, ps with "
            f"units metal), not analysis.timestep_fs = {self.timestep_fs:g} fs"
        )

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
