"""``topology.json``: who is who in a box, per atom. Schema ``deepeut.topology/1``::

{
  "schema": "deepeut.topology/1",
  "units": {"mass": "amu", "charge": "e"},
  "system": "ura", "n_atoms": 86, "n_molecules": 11,
  "species": [{"name": "Li", "smiles": "[Li+]", "role": "cation", "charge": 1,
               "n_atoms": 1, "count": 2, "mass": 6.94}, ...],
  "atoms": {                      # one entry per atom, in the order of box.extxyz
    "molecule": [0, 1, ...],      # molecule index (0-based, contiguous atoms per molecule)
    "species":  ["Li", "TFSI", ...],
    "label":    ["Li", "F", ...], # Fig. 1 labels (H_U(C)/H_U(T): cis/trans to the carbonyl O)
    "mass":     [6.94, 19.0, ...],
    "molecule_charge": [1, -1, ...]   # charge of the atom's molecule: +1 Li, -1 TFSI, 0 amide
  }
}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import numpy as np

from deepeut.utils.io import write_json_atomic
from deepeut.errors import StageError

SCHEMA = "deepeut.topology/1"


class TopologyError(StageError, ValueError):
    """A topology file is malformed or does not fit the structure it is used with."""


@dataclass
class Topology:
    """Per-atom molecule membership and labels of a box (plain arrays, like ``ase.Atoms``)."""

    system: str
    species_table: List[Dict]  # name, smiles, role, charge, n_atoms, count, mass
    molecule: np.ndarray  # (n_atoms,) int
    species: np.ndarray  # (n_atoms,) str
    label: np.ndarray  # (n_atoms,) str
    mass: np.ndarray  # (n_atoms,) amu
    molecule_charge: np.ndarray  # (n_atoms,) e

    @property
    def n_atoms(self) -> int:
        return len(self.molecule)

    @property
    def n_molecules(self) -> int:
        return int(self.molecule.max()) + 1 if self.n_atoms else 0

    def molecule_species(self) -> np.ndarray:
        """Species name of each molecule, shape (n_molecules,)."""
        first = np.searchsorted(self.molecule, np.arange(self.n_molecules))
        return self.species[first]

    def molecule_charges(self) -> np.ndarray:
        """Charge (e) of each molecule, shape (n_molecules,)."""
        first = np.searchsorted(self.molecule, np.arange(self.n_molecules))
        return self.molecule_charge[first]

    def counts(self) -> Dict[str, int]:
        names, counts = np.unique(self.molecule_species(), return_counts=True)
        return dict(zip(names.tolist(), counts.tolist()))

    def check_against(self, n_atoms: int, where: str = "structure") -> None:
        """Raise :class:`TopologyError` when a structure's atom count disagrees with this topology."""
        if n_atoms != self.n_atoms:
            raise TopologyError(
                f"{where} has {n_atoms} atoms but the topology of system {self.system} has {self.n_atoms}"
            )

    def to_dict(self) -> Dict:
        return {
            "schema": SCHEMA,
            "units": {"mass": "amu", "charge": "e"},
            "system": self.system,
            "n_atoms": self.n_atoms,
            "n_molecules": self.n_molecules,
            "species": self.species_table,
            "atoms": {
                "molecule": self.molecule.tolist(),
                "species": self.species.tolist(),
                "label": self.label.tolist(),
                "mass": np.round(self.mass, 6).tolist(),
                "molecule_charge": self.molecule_charge.tolist(),
            },
        }

    def write(self, path: str | Path) -> Path:
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def read(cls, path: str | Path) -> "Topology":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise TopologyError(f"{path}: cannot read topology ({exc})") from None
        if d.get("schema") != SCHEMA:
            raise TopologyError(f"{path}: schema is {d.get('schema')!r}, expected {SCHEMA!r}")
        a = d["atoms"]
        lengths = {k: len(v) for k, v in a.items()}
        if len(set(lengths.values())) != 1:
            raise TopologyError(f"{path}: per-atom arrays differ in length: {lengths}")
        return cls(
            system=d["system"],
            species_table=d["species"],
            molecule=np.asarray(a["molecule"], dtype=int),
            species=np.asarray(a["species"]),
            label=np.asarray(a["label"]),
            mass=np.asarray(a["mass"], dtype=float),
            molecule_charge=np.asarray(a["molecule_charge"], dtype=int),
        )
