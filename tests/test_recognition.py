"""Molecule recognition: whole molecules across the periodic boundary, broken bonds, fused molecules."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import built_box
from deepeut.systems import MoleculeRecognizer


def _recognizer(box):
    return MoleculeRecognizer(box.templates)


def _straddle(atoms, topo, seed=0):
    """Shift the frame rigidly, move each molecule by random lattice vectors, wrap atoms one by one."""
    rng = np.random.default_rng(seed)
    lattice = rng.integers(-2, 3, (topo.n_molecules, 3)) @ atoms.cell.array
    pos = atoms.positions + rng.uniform(0, atoms.cell.lengths()[0], 3) + lattice[topo.molecule]
    frac = pos @ np.linalg.inv(atoms.cell.array)
    return (frac - np.floor(frac)) @ atoms.cell.array


def _partition(ids):
    groups = {}
    for atom, g in enumerate(ids.tolist()):
        groups.setdefault(g, []).append(atom)
    return sorted(map(tuple, groups.values()))


@pytest.mark.parametrize("system", ["ura", "act", "nma"])
def test_recovers_molecules_across_boundary(system):
    _, box = built_box(system)
    atoms, topo = box.atoms, box.topology
    pos = _straddle(atoms, topo)
    spread = [np.ptp(pos[topo.molecule == m], axis=0).max() for m in range(topo.n_molecules)]
    assert max(spread) > atoms.cell.lengths()[0] / 2, "test setup: some molecule must straddle the boundary"
    r = _recognizer(box).recognise(pos, atoms.numbers, atoms.cell.array)
    assert r.ok, r.problems
    assert r.counts() == topo.counts()
    assert _partition(r.fragment) == _partition(topo.molecule)
    assert r.labels.tolist() == topo.label.tolist()


def test_stretched_nh_bond_is_flagged():
    _, box = built_box("ura")
    atoms, topo = box.atoms, box.topology
    h = int(np.nonzero(np.char.startswith(topo.label.astype(str), "H_U"))[0][0])
    mol = topo.molecule[h]
    n = [a for a in np.nonzero(topo.molecule == mol)[0] if topo.label[a] == "N_U"]
    n = min(n, key=lambda a: np.linalg.norm(atoms.positions[a] - atoms.positions[h]))
    pos = atoms.positions.copy()
    u = pos[h] - pos[n]
    pos[h] = pos[n] + 2.5 * u / np.linalg.norm(u)
    rec = _recognizer(box)
    r = rec.recognise(pos, atoms.numbers, atoms.cell.array, expected_molecule=topo.molecule)
    assert not r.ok
    text = " | ".join(r.problems)
    assert f"molecule {mol} is broken" in text
    assert "2.50 Å" in text  # the stretched N–H distance is reported
    # without the topology it still says what is wrong with each fragment
    r2 = rec.recognise(pos, atoms.numbers, atoms.cell.array)
    assert len(r2.problems) == 2 and any("urea with a missing H" in p for p in r2.problems)


def test_fused_ureas_are_flagged():
    _, box = built_box("ura")
    atoms, topo = box.atoms, box.topology
    ureas = [m for m in range(topo.n_molecules) if topo.molecule_species()[m] == "urea"]
    a_mol, b_mol = ureas[0], ureas[1]
    a_c = int(np.nonzero((topo.molecule == a_mol) & (topo.label == "C_U"))[0][0])
    a_o = int(np.nonzero((topo.molecule == a_mol) & (topo.label == "O_U"))[0][0])
    b_atoms = np.nonzero(topo.molecule == b_mol)[0]
    b_n = int(b_atoms[topo.label[b_atoms] == "N_U"][0])
    pos = atoms.positions.copy()
    # put B's nitrogen 1.45 Å from A's carbon, opposite A's oxygen: a C–N bond between molecules
    away = pos[a_c] - pos[a_o]
    target = pos[a_c] + 1.45 * away / np.linalg.norm(away)
    pos[b_atoms] += target - pos[b_n]
    r = _recognizer(box).recognise(pos, atoms.numbers, atoms.cell.array, expected_molecule=topo.molecule)
    assert not r.ok
    fused = [p for p in r.problems if "fused" in p]
    assert fused and f"{a_mol}" in fused[0] and f"{b_mol}" in fused[0]
    r2 = _recognizer(box).recognise(pos, atoms.numbers, atoms.cell.array)
    assert any("fused" in p for p in r2.problems)


def test_li_oxygen_contacts_are_not_bonds():
    """Li⁺ at 1.9 Å from a carbonyl O stays a separate ion (no Li–O pair in any species)."""
    _, box = built_box("ura")
    atoms, topo = box.atoms, box.topology
    li = int(np.nonzero(topo.label == "Li")[0][0])
    o = int(np.nonzero(topo.label == "O_U")[0][0])
    pos = atoms.positions.copy()
    pos[li] = pos[o] + [0.0, 0.0, 1.9]
    r = _recognizer(box).recognise(pos, atoms.numbers, atoms.cell.array)
    assert r.counts()["Li"] == 2


def test_a_bond_between_elements_never_bonded_in_that_way_is_flagged():
    """A urea H moved onto its own carbon (1.10 Å, still 1.3 Å from its N) makes a C–H bond, which no species of
    URA has: the molecule no longer matches urea (the graph counts bonds between any two covalently bonded
    elements, not only the pairs of the templates)."""
    _, box = built_box("ura")
    atoms, topo = box.atoms, box.topology
    h = int(np.nonzero(np.char.startswith(topo.label.astype(str), "H_U"))[0][0])
    mol = topo.molecule[h]
    c = int(np.nonzero((topo.molecule == mol) & (topo.label == "C_U"))[0][0])
    pos = atoms.positions.copy()
    u = pos[h] - pos[c]
    pos[h] = pos[c] + 1.10 * u / np.linalg.norm(u)
    r = _recognizer(box).recognise(pos, atoms.numbers, atoms.cell.array, expected_molecule=topo.molecule)
    assert not r.ok and any(f"{mol}" in p for p in r.problems), r.problems
    assert _recognizer(box).recognise(atoms.positions, atoms.numbers, atoms.cell.array).ok
