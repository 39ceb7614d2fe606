"""Built boxes have exact composition, the paper's density, no overlaps, and are reproducible."""

from __future__ import annotations

import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from conftest import built_box, load_config
from deepeut.systems import BoxError, build_box, check_box, composition
from deepeut.utils.units import AVOGADRO

EXPECTED = {  # (system, scale): (Li, TFSI, amide, n_atoms, paper edge Å or None)
    ("ura", "tiny"): (2, 2, 7, 88, None),
    ("ura", "train"): (8, 8, 28, 352, 15.99),
    ("act", "tiny"): (2, 2, 8, 104, None),
    ("act", "train"): (8, 8, 32, 416, 17.18),
    ("nma", "tiny"): (2, 2, 8, 128, None),
    ("nma", "train"): (8, 8, 32, 512, 18.30),
}


@pytest.mark.parametrize("system,scale", list(EXPECTED), ids=[f"{a}-{b}" for a, b in EXPECTED])
def test_box_composition_density_overlaps(system, scale):
    cfg, box = built_box(system, scale)
    n_li, n_tfsi, n_amide, n_atoms, edge = EXPECTED[(system, scale)]
    atoms, topo = box.atoms, box.topology
    amide = [s.name for s in cfg.system.species if s.role == "solvent"][0]
    assert topo.counts() == {"Li": n_li, "TFSI": n_tfsi, amide: n_amide}
    assert len(atoms) == topo.n_atoms == n_atoms
    assert topo.molecule_charges().sum() == 0
    # density from first principles: masses (amu) / N_A over the cell volume
    rho = atoms.get_masses().sum() / AVOGADRO / (atoms.get_volume() * 1e-24)
    assert abs(rho / cfg.system.density_g_cm3 - 1) < 0.005
    if edge is not None:
        assert atoms.cell.lengths() == pytest.approx([edge] * 3, abs=0.01)
    i, j, d = neighbor_list("ijd", atoms, 1.7)
    assert not (topo.molecule[i] != topo.molecule[j]).any(), "atoms of different molecules closer than 1.7 Å"
    # molecules are whole and their centres of mass lie in the cell
    for m in range(topo.n_molecules):
        pos = atoms.positions[topo.molecule == m]
        assert np.ptp(pos, axis=0).max() < 8.0
    assert set(np.unique(topo.label)) >= {"Li", "O_TFSI", "N_TFSI", "S", "C_TFSI", "F"}


@pytest.mark.parametrize("system,prefix", [("ura", "H_U"), ("act", "H_Ac")])
def test_cis_trans_hydrogens_split_evenly(system, prefix):
    _, box = built_box(system)
    labels = box.topology.label.tolist()
    n_cis, n_trans = labels.count(prefix + "(C)"), labels.count(prefix + "(T)")
    n_nh2 = {"ura": 14, "act": 8}[system]  # NH2 groups in the tiny box
    assert n_cis == n_trans == n_nh2


def test_nma_is_trans():
    _, box = built_box("nma")
    assert (box.topology.label == "H_MAc").sum() == 8


def test_build_is_reproducible():
    cfg = load_config("system=act")
    a = build_box(cfg.system, cfg.scale.n_ion_pairs, cfg.build).atoms
    b = build_box(cfg.system, cfg.scale.n_ion_pairs, cfg.build).atoms
    assert np.array_equal(a.positions, b.positions)


def test_ratio_must_give_whole_molecules():
    cfg = load_config("system=ura")
    with pytest.raises(ValueError, match="not a whole number"):
        composition(cfg.system, 3)  # 3 × 3.5 urea


def test_check_box_rejects_overlap():
    cfg, box = built_box("ura")
    atoms = box.atoms.copy()
    topo = box.topology
    a = int(np.nonzero(topo.molecule == 0)[0][0])
    b = int(np.nonzero(topo.molecule == 5)[0][0])
    atoms.positions[a] = atoms.positions[b] + [1.0, 0, 0]
    with pytest.raises(BoxError, match="closer than 1.7 Å"):
        check_box(atoms, topo, cfg.system, topo.counts(), cfg.build)


@pytest.mark.slow
def test_production_box_nma():
    cfg, box = built_box("nma", "production")
    assert len(box.atoms) == 8192
    assert box.atoms.cell.lengths() == pytest.approx([46.1] * 3, abs=0.01)
