"""Molecular species from SMILES: RDKit 3D conformer, bond graph and the atom labels of Fig. 1.

A :class:`SpeciesTemplate` is a plain data object (ASE style) holding everything later stages need
about one species: elements, masses (amu), a reference conformer (Å), bonds, and per-atom labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Dict, List, Sequence, Tuple

import numpy as np

from deepeut.config.schema import ConfigError, SpeciesConfig
from deepeut.utils.geometry import dihedral_deg


@dataclass(frozen=True)
class SpeciesTemplate:
    """One species: atoms in RDKit order (heavy atoms, then hydrogens)."""

    name: str
    smiles: str
    role: str  # cation | anion | solvent
    charge: int  # e
    numbers: np.ndarray  # atomic numbers, shape (n,)
    masses: np.ndarray  # amu, shape (n,)
    positions: np.ndarray  # Å, reference conformer centred on its centre of mass, shape (n, 3)
    bonds: np.ndarray  # (n_bonds, 2) atom index pairs, i < j
    base_labels: Tuple[str, ...]  # Fig. 1 label without the cis/trans suffix
    #: atom index → (h, n, c, o): dihedral H–N–C=O decides the (C)/(T) suffix of that hydrogen
    cis_trans: Dict[int, Tuple[int, int, int, int]] = field(default_factory=dict)

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    @property
    def mass(self) -> float:
        """Molar mass in g/mol."""
        return float(self.masses.sum())

    @property
    def formula(self) -> str:
        from ase.formula import Formula
        from ase.data import chemical_symbols

        return Formula("".join(chemical_symbols[z] for z in self.numbers)).format("hill")

    def labels(self, positions: np.ndarray | None = None, cell: np.ndarray | None = None) -> List[str]:
        """Per-atom labels for ``positions`` (Å; default: the reference conformer)."""
        pos = self.positions if positions is None else positions
        labels = list(self.base_labels)
        for atom, quartet in self.cis_trans.items():
            phi = dihedral_deg(pos[list(quartet)][None], cell)[0]
            labels[atom] = cis_trans_label(labels[atom], phi)
        return labels


def cis_trans_label(base: str, phi_deg: float) -> str:
    """``H_U`` → ``H_U(C)`` when |φ(H–N–C=O)| < 90° (cis to the carbonyl O), else ``H_U(T)``."""
    return f"{base}({'C' if abs(phi_deg) < 90.0 else 'T'})"


def _embed(mol, seed: int, force_field: str, targets: Dict[str, float]):
    """ETKDG conformers + force-field relaxation; pick the one closest to the dihedral targets."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    if mol.GetNumAtoms() == 1:
        mol.AddConformer(Chem.Conformer(1), assignId=True)
        return mol, 0
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    conf_ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=8 if targets else 1, params=params))
    if not conf_ids:
        raise ConfigError(f"RDKit could not embed a 3D conformer for {Chem.MolToSmiles(mol)}")
    use_mmff = force_field == "MMFF" and AllChem.MMFFHasAllMoleculeParams(mol)
    for cid in conf_ids:
        if use_mmff:
            AllChem.MMFFOptimizeMolecule(mol, confId=cid, maxIters=2000)
        else:
            AllChem.UFFOptimizeMolecule(mol, confId=cid, maxIters=2000)
    best, best_cost = conf_ids[0], np.inf
    for cid in conf_ids:
        pos = mol.GetConformer(cid).GetPositions()
        cost = 0.0
        for smarts, target in targets.items():
            patt = Chem.MolFromSmarts(smarts)
            if patt is None or patt.GetNumAtoms() != 4:
                raise ConfigError(f"dihedral_targets: '{smarts}' is not a 4-atom SMARTS")
            for match in mol.GetSubstructMatches(patt):
                phi = dihedral_deg(pos[list(match)][None])[0]
                cost += 1 - np.cos(np.radians(phi - target))
        if cost < best_cost:
            best, best_cost = cid, cost
    return mol, best


def _assign_base_labels(mol, name: str, rules) -> Tuple[List[str], Dict[int, bool]]:
    from rdkit import Chem

    labels: List[str | None] = [None] * mol.GetNumAtoms()
    split: Dict[int, bool] = {}
    for rule in rules:
        patt = Chem.MolFromSmarts(rule.smarts)
        if patt is None:
            raise ConfigError(f"species {name}: label {rule.label}: invalid SMARTS '{rule.smarts}'")
        for match in mol.GetSubstructMatches(patt, uniquify=False):
            atom = match[0]
            if labels[atom] not in (None, rule.label):
                raise ConfigError(f"species {name}: atom {atom} matches labels {labels[atom]} and {rule.label}")
            labels[atom] = rule.label
            if rule.cis_trans:
                split[atom] = True
    missing = [i for i, lab in enumerate(labels) if lab is None]
    if missing:
        sym = [mol.GetAtomWithIdx(i).GetSymbol() for i in missing]
        raise ConfigError(f"species {name}: atoms {missing} ({', '.join(sym)}) match no label rule")
    return labels, split  # type: ignore[return-value]


def _carbonyl_quartet(mol, h: int) -> Tuple[int, int, int, int]:
    """(H, N, C, O) with C the carbonyl carbon bonded to the amine N carrying H."""
    n = mol.GetAtomWithIdx(h).GetNeighbors()[0]
    for c in n.GetNeighbors():
        for o in c.GetNeighbors():
            bond = mol.GetBondBetweenAtoms(c.GetIdx(), o.GetIdx())
            if o.GetAtomicNum() == 8 and bond.GetBondTypeAsDouble() == 2.0:
                return (h, n.GetIdx(), c.GetIdx(), o.GetIdx())
    raise ConfigError(f"cis_trans label on atom {h}: no H–N–C=O path")


def build_template(cfg: SpeciesConfig, seed: int = 1, force_field: str = "MMFF") -> SpeciesTemplate:
    """RDKit molecule from ``cfg.smiles`` → :class:`SpeciesTemplate` (conformer in Å, masses in amu)."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(cfg.smiles)
    if mol is None:
        raise ConfigError(f"species {cfg.name}: RDKit cannot parse SMILES '{cfg.smiles}'")
    formal = Chem.GetFormalCharge(mol)
    if formal != cfg.charge:
        raise ConfigError(f"species {cfg.name}: SMILES charge {formal:+d} e differs from charge {cfg.charge:+d} e")
    mol = Chem.AddHs(mol)
    mol, cid = _embed(mol, seed, force_field, dict(cfg.dihedral_targets))
    from ase.data import atomic_masses

    numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    masses = atomic_masses[numbers]
    pos = mol.GetConformer(cid).GetPositions()
    pos = pos - masses @ pos / masses.sum()
    bonds = np.array(
        sorted(
            (min(b.GetBeginAtomIdx(), b.GetEndAtomIdx()), max(b.GetBeginAtomIdx(), b.GetEndAtomIdx()))
            for b in mol.GetBonds()
        ),
        dtype=int,
    ).reshape(-1, 2)
    base, split = _assign_base_labels(mol, cfg.name, cfg.labels)
    quartets = {h: _carbonyl_quartet(mol, h) for h in split}
    return SpeciesTemplate(
        name=cfg.name,
        smiles=cfg.smiles,
        role=cfg.role,
        charge=cfg.charge,
        numbers=numbers,
        masses=masses,
        positions=pos,
        bonds=bonds,
        base_labels=tuple(base),
        cis_trans=quartets,
    )


def build_templates(
    species: Sequence[SpeciesConfig], seed: int = 1, force_field: str = "MMFF"
) -> List[SpeciesTemplate]:
    """Templates of all species of a system, in config order."""
    return [_cached_template(s.name, s.smiles, s.role, s.charge, _freeze(s), seed, force_field) for s in species]


def _freeze(s: SpeciesConfig):
    return (tuple((r.label, r.smarts, r.cis_trans) for r in s.labels), tuple(sorted(s.dihedral_targets.items())))


@lru_cache(maxsize=64)
def _cached_template(name, smiles, role, charge, frozen, seed, force_field) -> SpeciesTemplate:
    from deepeut.config.schema import LabelRule

    rules, targets = frozen
    cfg = SpeciesConfig(
        name=name,
        smiles=smiles,
        role=role,
        charge=charge,
        labels=[LabelRule(label=a, smarts=b, cis_trans=c) for a, b, c in rules],
        dihedral_targets=dict(targets),
    )
    return build_template(cfg, seed=seed, force_field=force_field)


def system_elements(species: Sequence[SpeciesConfig]) -> List[str]:
    """Chemical symbols present in the system, sorted (the model's atom types)."""
    from ase.data import chemical_symbols

    numbers = {int(z) for t in build_templates(species) for z in t.numbers}
    return sorted(chemical_symbols[z] for z in numbers)
