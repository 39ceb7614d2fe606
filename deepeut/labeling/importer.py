"""Import existing reference data: extxyz with energies and forces, or CP2K FPMD output.

Everything is converted to eV and eV/Å. Problems are reported with the file and the frame:
a truncated or corrupted file, a frame without forces, non-finite values, a unit that is unknown or
disagrees with what the file declares, and forces too large to be in the declared unit.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
from ase import units as u

from deepeut.data.label import Label
from deepeut.labeling.base import LabelingError

#: energy units → eV
ENERGY_UNITS: Dict[str, float] = {
    "eV": 1.0,
    "hartree": u.Hartree,
    "Ha": u.Hartree,
    "kcal/mol": u.kcal / u.mol,
    "kJ/mol": u.kJ / u.mol,
    "Ry": u.Rydberg,
}
#: force units → eV/Å
FORCE_UNITS: Dict[str, float] = {
    "eV/A": 1.0,
    "eV/Å": 1.0,
    "hartree/bohr": u.Hartree / u.Bohr,
    "Ha/bohr": u.Hartree / u.Bohr,
    "kcal/mol/A": u.kcal / u.mol,
    "kJ/mol/A": u.kJ / u.mol,
}
#: forces beyond this (eV/Å) on any atom mean the declared unit is wrong (or the frame is broken)
MIN_PLAUSIBLE_RMS_FORCE = 0.1  # eV/Å, over a whole imported dataset
MAX_PLAUSIBLE_FORCE = 50.0


class ImportDataError(LabelingError):
    """Reference data cannot be imported; names the file and the frame."""


def _factor(table: Dict[str, float], unit: str, kind: str, path: Path) -> float:
    if unit not in table:
        raise ImportDataError(f"{path}: unknown {kind} unit '{unit}' (known: {', '.join(table)})")
    return table[unit]


def _make_label(energy_eV: float, forces: np.ndarray, path: Path, frame: int, source: str) -> Label:
    if not np.isfinite(energy_eV):
        raise ImportDataError(f"{path}: frame {frame}: energy is not finite ({energy_eV})")
    bad = ~np.isfinite(forces).all(axis=1)
    if bad.any():
        raise ImportDataError(
            f"{path}: frame {frame}: non-finite forces on {int(bad.sum())} atoms "
            f"(first atom {int(np.nonzero(bad)[0][0])})"
        )
    fmax = float(np.linalg.norm(forces, axis=1).max()) if len(forces) else 0.0
    if fmax > MAX_PLAUSIBLE_FORCE:
        raise ImportDataError(
            f"{path}: frame {frame}: max |F| = {fmax:.1f} eV/Å after unit conversion; "
            f"wrong force unit? (declared unit gives > {MAX_PLAUSIBLE_FORCE} eV/Å)"
        )
    return Label(
        energy=float(energy_eV),
        forces=forces,
        labeler="import",
        method=source,
        version="import",
        settings={"path": str(path)},
    )


def read_labeled_extxyz(
    path: str | Path,
    energy_unit: str = "eV",
    force_unit: str = "eV/A",
    energy_key: str = "energy",
    forces_key: str = "forces",
) -> Iterator[Tuple[object, Label]]:
    """Yield ``(atoms, label)`` for every frame of an extxyz file with energies and forces."""
    from ase.io import iread

    path = Path(path)
    if not path.exists():
        raise ImportDataError(f"{path}: no such file")
    fe = _factor(ENERGY_UNITS, energy_unit, "energy", path)
    ff = _factor(FORCE_UNITS, force_unit, "force", path)
    frame = 0
    it = iread(str(path), index=":", format="extxyz")
    while True:
        try:
            atoms = next(it)
        except StopIteration:
            break
        except Exception as exc:
            raise ImportDataError(
                f"{path}: frame {frame} is truncated or corrupted ({type(exc).__name__}: {exc})"
            ) from None
        declared = atoms.info.get("energy_unit")
        if declared is not None and declared != energy_unit:
            raise ImportDataError(
                f"{path}: frame {frame} declares energy_unit={declared} but the import expects {energy_unit}"
            )
        calc_results = atoms.calc.results if atoms.calc is not None else {}
        energy = calc_results.get(energy_key, atoms.info.get(energy_key))
        forces = calc_results.get(forces_key, atoms.arrays.get(forces_key))
        if energy is None:
            raise ImportDataError(f"{path}: frame {frame} has no energy (key '{energy_key}')")
        if forces is None:
            raise ImportDataError(
                f"{path}: frame {frame} has no forces (key '{forces_key}'): a training set needs forces"
            )
        label = _make_label(float(energy) * fe, np.asarray(forces, dtype=float) * ff, path, frame, "extxyz")
        plain = atoms.copy()
        plain.calc = None
        yield plain, label
        frame += 1
    if frame == 0:
        raise ImportDataError(f"{path}: no frames")


def check_force_magnitudes(pairs: List[Tuple[object, Label]], path) -> None:
    """A liquid at room temperature or above has an RMS atomic force of ~0.3–3 eV/Å (GFN2-xTB and DFT of these
    electrolytes: 0.8–1.1); an RMS below :data:`MIN_PLAUSIBLE_RMS_FORCE` means the declared force unit is wrong
    (Hartree/Bohr read as eV/Å gives 51× too small)."""
    forces = [np.asarray(label.forces) for _, label in pairs if len(label.forces)]
    if not forces:
        return
    rms = float(np.sqrt(np.mean(np.concatenate(forces) ** 2)))
    if rms < MIN_PLAUSIBLE_RMS_FORCE:
        raise ImportDataError(
            f"{path}: the RMS force over {len(forces)} frames is {rms:.3g} eV/Å after unit "
            f"conversion, implausibly small for a liquid (expected 0.3–3 eV/Å): wrong force unit? "
            "(e.g. Hartree/Bohr read as eV/Å: set labeler.imported.force_unit)"
        )


_CP2K_COMMENT = re.compile(r"i\s*=\s*(\d+).*?E\s*=\s*(-?[\d.]+(?:[eE][-+]?\d+)?)")


def _read_xyz_blocks(path: Path) -> Iterator[Tuple[str, List[str], np.ndarray]]:
    lines = path.read_text().splitlines()
    k, frame = 0, 0
    while k < len(lines):
        if not lines[k].strip():
            k += 1
            continue
        try:
            n = int(lines[k].split()[0])
        except ValueError:
            raise ImportDataError(f"{path}: frame {frame}: expected an atom count, found '{lines[k][:40]}'") from None
        block = lines[k + 2 : k + 2 + n]
        if len(block) < n:
            raise ImportDataError(f"{path}: frame {frame} is truncated ({len(block)} of {n} atom lines)")
        try:
            xyz = np.array([[float(v) for v in ln.split()[1:4]] for ln in block])
        except (ValueError, IndexError):
            raise ImportDataError(f"{path}: frame {frame} is corrupted (unparsable coordinates)") from None
        yield lines[k + 1], [ln.split()[0] for ln in block], xyz
        k += 2 + n
        frame += 1


def cp2k_cell(inp: Path) -> np.ndarray:
    """Cell (Å) from the ``&CELL`` section (``ABC`` or ``A``/``B``/``C``) of a CP2K input."""
    text = inp.read_text()
    m = re.search(r"^\s*ABC(?:\s*\[angstrom\])?\s+([-\d.eE+]+)\s+([-\d.eE+]+)\s+([-\d.eE+]+)", text, re.M | re.I)
    if m:
        return np.diag([float(x) for x in m.groups()])
    vecs = [
        re.search(rf"^\s*{k}(?:\s*\[angstrom\])?\s+([-\d.eE+]+)\s+([-\d.eE+]+)\s+([-\d.eE+]+)", text, re.M)
        for k in "ABC"
    ]
    if all(vecs):
        return np.array([[float(x) for x in v.groups()] for v in vecs])  # type: ignore[union-attr]
    raise ImportDataError(f"{inp}: no &CELL ABC (or A, B, C) found")


def read_cp2k_fpmd(
    pos_file: str | Path,
    frc_file: Optional[str | Path] = None,
    inp: Optional[str | Path] = None,
    cell: Optional[np.ndarray] = None,
) -> Iterator[Tuple[object, Label]]:
    """Yield ``(atoms, label)`` from CP2K MD output: ``*-pos-1.xyz`` (Å), ``*-frc-1.xyz`` (Hartree/Bohr),
    energies (Hartree) from the comment lines, cell from the input file (or ``cell``)."""
    from ase import Atoms

    pos_file = Path(pos_file)
    frc_file = Path(frc_file) if frc_file else pos_file.with_name(pos_file.name.replace("-pos-", "-frc-"))
    if not frc_file.exists():
        raise ImportDataError(f"{pos_file}: force file {frc_file.name} not found: a training set needs forces")
    if cell is None:
        if inp is None:
            cands = sorted(pos_file.parent.glob("*.inp"))
            if not cands:
                raise ImportDataError(f"{pos_file}: no CP2K input (*.inp) beside it to read the cell from")
            inp = cands[0]
        cell = cp2k_cell(Path(inp))
    ff = u.Hartree / u.Bohr
    for frame, ((c1, sym, xyz), (c2, sym2, frc)) in enumerate(
        zip(_read_xyz_blocks(pos_file), _read_xyz_blocks(frc_file))
    ):
        if sym != sym2:
            raise ImportDataError(f"{frc_file}: frame {frame}: atoms differ from {pos_file.name}")
        m = _CP2K_COMMENT.search(c1) or _CP2K_COMMENT.search(c2)
        if not m:
            raise ImportDataError(f"{pos_file}: frame {frame}: no 'E =' energy in the comment line")
        atoms = Atoms(symbols=sym, positions=xyz, cell=cell, pbc=True)
        label = _make_label(float(m.group(2)) * u.Hartree, frc * ff, pos_file, frame, "cp2k-fpmd")
        label.extra["md_step"] = int(m.group(1))
        yield atoms, label
