"""Liquid boxes: composition from the molar ratio, cubic edge from the density, packmol packing
with periodic boundaries (``pbc``), and the checks every box passes before it is written."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from deepeut.config.schema import BuildConfig, ConfigError, SystemConfig
from deepeut.systems.species import SpeciesTemplate, build_templates
from deepeut.systems.topology import Topology
from deepeut.utils.geometry import neighbor_pairs, plane_distances
from deepeut.utils.units import cubic_edge_A, density_g_cm3
from deepeut.errors import StageError


class BoxError(StageError):
    """A built box fails a check (composition, neutrality, density, overlaps) or packmol failed."""


def check_cutoff_fits(cell: np.ndarray, r_max: float, where: str) -> None:
    """An atom must not interact with its own periodic image: every perpendicular width of the cell (Å) must
    exceed the model cutoff ``r_max`` (Å)."""
    width = float(plane_distances(np.asarray(cell)).min())
    if width <= r_max:
        raise BoxError(
            f"{where}: the box is {width:.2f} Å wide, not more than the model cutoff r_max = {r_max:g} Å, "
            "so every atom would interact with its own periodic image; use a bigger box "
            "(scale.n_ion_pairs) or a model with a smaller cutoff"
        )


@dataclass
class Box:
    """A packed box: ASE atoms (molecules whole, centres of mass inside the cell) and its topology."""

    atoms: "object"  # ase.Atoms
    topology: Topology
    templates: List[SpeciesTemplate]


def composition(system: SystemConfig, n_ion_pairs: int) -> Dict[str, int]:
    """Molecule count per species: ``per_ion_pair`` × ``n_ion_pairs``, which must be a whole number."""
    counts = {}
    for s in system.species:
        x = s.per_ion_pair * n_ion_pairs
        if abs(x - round(x)) > 1e-9:
            raise ConfigError(
                f"scale.n_ion_pairs: {n_ion_pairs} ion pairs × {s.per_ion_pair} {s.name} per pair "
                f"= {x:g} molecules is not a whole number"
            )
        counts[s.name] = int(round(x))
    return counts


def box_edge_A(templates: Sequence[SpeciesTemplate], counts: Dict[str, int], density: float) -> float:
    """Edge (Å) of the cube holding ``counts`` molecules at ``density`` (g/cm³)."""
    mass = sum(t.mass * counts[t.name] for t in templates)
    return cubic_edge_A(mass, density)


def _packmol_binary() -> str:
    import packmol

    for cand in (shutil.which("packmol"), Path(packmol.__file__).parent / "binaries" / "packmol"):
        if cand and Path(cand).exists():
            return str(cand)
    raise BoxError("packmol binary not found: install the PyPI 'packmol' package (bash scripts/install.sh)")


def _write_xyz(path: Path, t: SpeciesTemplate) -> None:
    from ase.data import chemical_symbols

    lines = [str(t.n_atoms), t.name] + [
        f"{chemical_symbols[z]} {x:.6f} {y:.6f} {w:.6f}" for z, (x, y, w) in zip(t.numbers, t.positions)
    ]
    path.write_text("\n".join(lines) + "\n")


def run_packmol(
    templates: Sequence[SpeciesTemplate], counts: Dict[str, int], edge: float, seed: int, tolerance: float
) -> np.ndarray:
    """Pack the molecules with packmol's periodic ``pbc`` box; returns positions (Å) in template order."""
    exe = _packmol_binary()
    with tempfile.TemporaryDirectory(prefix="deepeut-packmol-") as tmp:
        tmp = Path(tmp)
        blocks = []
        for t in templates:
            _write_xyz(tmp / f"{t.name}.xyz", t)
            blocks.append(f"structure {t.name}.xyz\n  number {counts[t.name]}\nend structure\n")
        inp = (
            f"tolerance {tolerance}\nfiletype xyz\noutput packed.xyz\nseed {seed}\n"
            f"pbc 0. 0. 0. {edge:.6f} {edge:.6f} {edge:.6f}\n" + "".join(blocks)
        )
        (tmp / "pack.inp").write_text(inp)
        with open(tmp / "pack.inp") as fin:
            proc = subprocess.run([exe], stdin=fin, cwd=tmp, capture_output=True, text=True)
        out = tmp / "packed.xyz"
        if proc.returncode != 0 or "Success!" not in proc.stdout or not out.exists():
            tail = "\n".join(proc.stdout.strip().splitlines()[-5:])
            raise BoxError(f"packmol did not find a packing (seed {seed}):\n{tail}")
        lines = out.read_text().splitlines()
        n = int(lines[0])
        return np.array([[float(v) for v in ln.split()[1:4]] for ln in lines[2 : 2 + n]])


def make_topology(
    system: SystemConfig,
    templates: Sequence[SpeciesTemplate],
    counts: Dict[str, int],
    positions: np.ndarray,
    cell: np.ndarray,
) -> Topology:
    """Per-atom topology of molecules laid out in template order (labels from the packed geometry)."""
    mol, spec, lab, mass, charge = [], [], [], [], []
    start, m = 0, 0
    for t in templates:
        for _ in range(counts[t.name]):
            pos = positions[start : start + t.n_atoms]
            mol += [m] * t.n_atoms
            spec += [t.name] * t.n_atoms
            lab += t.labels(pos, cell)
            mass += t.masses.tolist()
            charge += [t.charge] * t.n_atoms
            start += t.n_atoms
            m += 1
    table = [
        {
            "name": t.name,
            "smiles": t.smiles,
            "role": t.role,
            "charge": t.charge,
            "n_atoms": t.n_atoms,
            "count": counts[t.name],
            "mass": round(t.mass, 4),
            "formula": t.formula,
        }
        for t in templates
    ]
    return Topology(
        system=system.name,
        species_table=table,
        molecule=np.array(mol),
        species=np.array(spec),
        label=np.array(lab),
        mass=np.array(mass),
        molecule_charge=np.array(charge),
    )


def centre_molecules(positions: np.ndarray, topology: Topology, cell: np.ndarray) -> np.ndarray:
    """Translate whole molecules (by lattice vectors) so their centres of mass lie inside the cell."""
    inv = np.linalg.inv(cell)
    nmol = topology.n_molecules
    w = topology.mass
    com = np.zeros((nmol, 3))
    np.add.at(com, topology.molecule, positions * w[:, None])
    com /= np.bincount(topology.molecule, weights=w, minlength=nmol)[:, None]
    shift = -np.floor(com @ inv) @ cell
    return positions + shift[topology.molecule]


def check_box(atoms, topology: Topology, system: SystemConfig, counts: Dict[str, int], build: BuildConfig) -> Dict:
    """Every check a box passes before it is written; returns the measured values, raises :class:`BoxError`."""
    errors = []
    got = topology.counts()
    if got != counts:
        errors.append(f"composition {got} differs from the requested {counts}")
    net = int(topology.molecule_charges().sum())
    if net != 0:
        errors.append(f"net charge {net:+d} e")
    vol = atoms.get_volume()
    rho = density_g_cm3(float(topology.mass.sum()), vol)
    rel = rho / system.density_g_cm3 - 1.0
    if abs(rel) > build.density_tolerance:
        errors.append(f"density {rho:.4f} g/cm³ is {100 * rel:+.2f} % off {system.density_g_cm3} g/cm³")
    i, j, d = neighbor_pairs(atoms.positions, atoms.cell.array, build.min_distance_A)
    inter = topology.molecule[i] != topology.molecule[j]
    dmin = float(np.linalg.norm(d[inter], axis=1).min()) if inter.any() else np.inf
    if inter.any():
        errors.append(
            f"{int(inter.sum())} atom pairs of different molecules closer than {build.min_distance_A} Å "
            f"(closest {dmin:.2f} Å, atoms {i[inter][0]} and {j[inter][0]})"
        )
    if errors:
        raise BoxError("box check failed: " + "; ".join(errors))
    return {
        "density_g_cm3": rho,
        "n_atoms": len(atoms),
        "composition": got,
        "net_charge_e": net,
        "box_edge_A": float(atoms.cell.lengths()[0]),
    }


def build_box(system: SystemConfig, n_ion_pairs: int, build: BuildConfig) -> Box:
    """Build and check a liquid box of ``system`` with ``n_ion_pairs`` LiTFSI (seeded, reproducible)."""
    from ase import Atoms

    templates = build_templates(system.species, seed=build.seed, force_field=build.force_field)
    counts = composition(system, n_ion_pairs)
    edge = box_edge_A(templates, counts, system.density_g_cm3)
    numbers = np.concatenate([np.tile(t.numbers, counts[t.name]) for t in templates])
    cell = np.eye(3) * edge
    last_error: Exception | None = None
    for attempt in range(build.max_attempts):
        try:
            pos = run_packmol(
                templates, counts, edge, seed=build.seed + 1000 * attempt, tolerance=build.packmol_tolerance_A
            )
            topo = make_topology(system, templates, counts, pos, cell)
            pos = centre_molecules(pos, topo, cell)
            atoms = Atoms(numbers=numbers, positions=pos, cell=cell, pbc=True)
            check_box(atoms, topo, system, counts, build)
            return Box(atoms=atoms, topology=topo, templates=templates)
        except BoxError as exc:
            last_error = exc
    raise BoxError(f"{system.name}: no valid box after {build.max_attempts} packmol attempts: {last_error}")
