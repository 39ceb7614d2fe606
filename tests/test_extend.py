"""Another solvent from a system file outside the repository (README "Adding another salt or solvent"): LiTFSI in
formamide, a system deepeut does not ship. It builds from its SMILES, its molecules are recognised and the analysis
finds its sites from the Fig. 1 label conventions alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.io import read

from conftest import ROOT, run_cli

FORMAMIDE = """
  - name: formamide
    smiles: "NC=O"
    role: solvent
    charge: 0
    per_ion_pair: 4
    labels:
      - {label: O_F, smarts: "[#8]"}
      - {label: N_F, smarts: "[#7]"}
      - {label: C_F, smarts: "[#6]"}
      - {label: H_F(F), smarts: "[#1][#6]"}  # formyl hydrogen: no H-bond donor
      - {label: H_F, smarts: "[#1][#7]", cis_trans: true}
"""


def write_system(conf: Path) -> None:
    """conf/system/fa.yaml: the ACT file with formamide as the solvent (density and Li/TFSI entries reused)."""
    act = (ROOT / "conf" / "system" / "act.yaml").read_text()
    head = act[: act.index("  - name: acetamide")].replace("name: act", "name: fa")
    (conf / "system").mkdir(parents=True)
    (conf / "system" / "fa.yaml").write_text(head + FORMAMIDE)


def test_a_new_solvent_builds_and_its_analysis_sites_follow_the_label_conventions(tmp_path):
    from deepeut.analysis.series import sdf_references, sites_from
    from deepeut.config import compose, validate
    from deepeut.systems import MoleculeRecognizer

    write_system(tmp_path / "conf")
    search = f"hydra.searchpath=[file://{tmp_path / 'conf'}]"
    r = run_cli("stage=build", "system=fa", search, f"output_dir={tmp_path / 'box'}")
    assert r.returncode == 0, r.stderr[-2000:]
    atoms = read(tmp_path / "box" / "box.extxyz")
    assert len(atoms) == 2 * (1 + 15) + 8 * 6  # 2 LiTFSI + 8 formamide
    cfg = validate(compose(["system=fa", search]))
    res = MoleculeRecognizer.for_system(cfg.system).recognise(atoms.positions, atoms.numbers, atoms.cell.array)
    assert res.ok and res.counts() == {"Li": 2, "TFSI": 2, "formamide": 8}
    species = np.array([res.fragment_species[f] for f in res.fragment])
    sites = sites_from(
        res.fragment,
        res.labels,
        atoms.get_masses(),
        np.where(species == "formamide", "amide", species),
        {"Li": 1, "TFSI": -1, "amide": 0},
    )
    assert len(sites.o_amide) == len(sites.c_amide) == 8 and len(sites.h_amine) == 16  # NH2, not the formyl H
    assert set(sites.labels[sites.h_amine]) == {"H_F(C)", "H_F(T)"}
    assert set(sdf_references(sites)) == {"amide", "TFSI"}


def test_an_unknown_system_names_the_known_ones():
    r = run_cli("stage=build", "system=fa")
    assert r.returncode != 0 and "'fa' is not one of act, nma, ura" in r.stderr
