"""Spatial distribution functions (Fig. 10): centre-of-mass densities around a molecule in its own frame.

The reference frame of a molecule is built from three of its atoms (origin ``a``, x along a→b, the a–b–c plane as
xy); every CoM of an observed species inside the cube of half-width ``half_width`` Å is binned on a
``n_bins``³ grid. Densities are relative to the species' bulk number density and written as Gaussian cube files
(lengths in bohr there, as the format wants) with the reference molecule's average geometry as the atoms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict

import numpy as np

from deepeut.analysis.base import Frame, FrameAnalysis
from deepeut.utils.geometry import minimum_image

BOHR_IN_A = 0.529177210903


def local_frames(a: np.ndarray, b: np.ndarray, c: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Rotation matrices (n, 3, 3) whose rows are the local x, y, z axes (a→b, in the a–b–c plane, normal)."""
    x = minimum_image(b - a, cell)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    v = minimum_image(c - a, cell)
    z = np.cross(x, v)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


@dataclass
class SDFAccumulator(FrameAnalysis):
    """CoM densities of observed species around reference molecules (defined by atom triples a, b, c)."""

    triples: np.ndarray  # (n_ref, 3) atom indices (origin, x-axis atom, plane atom)
    ref_atoms: np.ndarray  # (n_ref, k) atoms of each reference molecule (for the cube's geometry)
    ref_numbers: np.ndarray  # (k,) atomic numbers of those atoms
    observed: Dict[str, np.ndarray]  # species name → molecule indices whose CoMs are binned
    ref_molecules: np.ndarray  # (n_ref,) molecule index of each reference (its own CoM is skipped)
    half_width: float = 8.0
    n_bins: int = 40
    grids: Dict[str, np.ndarray] = field(default_factory=dict)
    geometry: np.ndarray = None

    def __post_init__(self) -> None:
        self.grids = {k: np.zeros((self.n_bins,) * 3) for k in self.observed}
        self.geometry = np.zeros((self.ref_atoms.shape[1], 3))

    def _single_frame(self, frame: Frame) -> None:
        """One frame: atom positions (n, 3) Å and molecule CoMs (M, 3) Å."""
        positions, com, cell = frame.positions, frame.com, frame.cell
        a, b, c = (positions[self.triples[:, k]] for k in range(3))
        rot = local_frames(a, b, c, cell)  # (n_ref, 3, 3)
        geo = minimum_image(positions[self.ref_atoms] - a[:, None], cell)
        self.geometry += np.einsum("rij,rkj->ki", rot, geo).mean(axis=0) if len(geo) else 0
        for name, mols in self.observed.items():
            d = minimum_image(com[mols][None, :, :] - a[:, None, :], cell)  # (n_ref, n_obs, 3)
            local = np.einsum("rij,roj->roi", rot, d)
            keep = np.all(np.abs(local) < self.half_width, axis=2) & (mols[None, :] != self.ref_molecules[:, None])
            idx = ((local[keep] + self.half_width) / (2 * self.half_width) * self.n_bins).astype(int)
            idx = np.clip(idx, 0, self.n_bins - 1)
            np.add.at(self.grids[name], (idx[:, 0], idx[:, 1], idx[:, 2]), 1.0)

    def result(self) -> Dict[str, np.ndarray]:
        """Number density relative to the bulk density of each observed species."""
        voxel = (2 * self.half_width / self.n_bins) ** 3
        volume = self.mean_volume
        out = {}
        for name, grid in self.grids.items():
            bulk = len(self.observed[name]) / volume
            out[name] = grid / (max(self.n_frames, 1) * len(self.triples) * voxel * bulk)
        return out

    def write_cubes(self, prefix: Path) -> Dict[str, Path]:
        paths = {}
        geo = self.geometry / max(self.n_frames, 1)
        for name, rho in self.result().items():
            paths[name] = write_cube(
                Path(f"{prefix}_{name}.cube"),
                rho,
                self.half_width,
                geo,
                self.ref_numbers,
                f"deepeut SDF: {name} CoM density / bulk density around the reference molecule",
            )
        return paths


def write_cube(
    path: Path, data: np.ndarray, half_width: float, geometry: np.ndarray, numbers: np.ndarray, comment: str
) -> Path:
    """Gaussian cube file: grid centred on the origin (Å in, bohr written), values x-major."""
    n = data.shape[0]
    step = 2 * half_width / n / BOHR_IN_A
    origin = -half_width / BOHR_IN_A + step / 2
    lines = [
        comment,
        "relative number density; lengths in bohr",
        f"{len(numbers):5d} {origin:12.6f} {origin:12.6f} {origin:12.6f}",
    ]
    lines += [f"{n:5d} " + " ".join(f"{step if i == j else 0.0:12.6f}" for j in range(3)) for i in range(3)]
    lines += [
        f"{int(z):5d} {0.0:12.6f} " + " ".join(f"{x / BOHR_IN_A:12.6f}" for x in xyz)
        for z, xyz in zip(numbers, geometry)
    ]
    flat = data.reshape(n * n, n)  # x slowest, z fastest
    for row in flat:
        lines += [" ".join(f"{v:12.5e}" for v in row[k : k + 6]) for k in range(0, n, 6)]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_cube(path: Path) -> np.ndarray:
    """The grid of a cube file written by :func:`write_cube` (for tests and plots)."""
    lines = Path(path).read_text().splitlines()
    n_atoms = int(lines[2].split()[0])
    n = int(lines[3].split()[0])
    values = np.array(" ".join(lines[6 + n_atoms :]).split(), float)
    return values.reshape(n, n, n)
