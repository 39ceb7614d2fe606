"""`python run.py ...` end to end: outputs land in the run directory, readable; a tiny multirun sweep."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.io import read

from conftest import run_cli
from deepeut.systems import MoleculeRecognizer, Topology, build_templates
from conftest import load_config


def test_build_stage_writes_box_and_topology(tmp_path):
    r = run_cli("stage=build", "system=nma", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    atoms = read(tmp_path / "box.extxyz")
    topo = Topology.read(tmp_path / "topology.json")
    assert len(atoms) == topo.n_atoms == 128 and atoms.pbc.all()
    topo.check_against(len(atoms))
    d = json.loads((tmp_path / "topology.json").read_text())
    assert d["schema"] == "deepeut.topology/1" and d["units"] == {"mass": "amu", "charge": "e"}
    assert sorted(set(d["atoms"]["molecule_charge"])) == [-1, 0, 1]
    # the written frame is recognised with exactly the written labels
    cfg = load_config("system=nma")
    rec = MoleculeRecognizer(build_templates(cfg.system.species)).recognise(
        atoms.positions, atoms.numbers, atoms.cell.array, topo.molecule
    )
    assert rec.ok and np.array_equal(rec.labels, topo.label)


@pytest.mark.parametrize("launcher", [[], ["hydra/launcher=local"]], ids=["basic", "joblib"])
def test_tiny_multirun_sweep(tmp_path, launcher):
    r = run_cli("-m", "stage=build", "system=ura,act", f"hydra.sweep.dir={tmp_path}", *launcher)
    assert r.returncode == 0, r.stderr
    sizes = sorted(len(read(tmp_path / str(k) / "box.extxyz")) for k in (0, 1))
    assert sizes == [88, 104]


def test_dataset_stage_summarises_a_store(tmp_path):
    from ase.build import molecule

    from deepeut.data.store import DatasetStore
    from deepeut.data.label import Label

    store = DatasetStore(tmp_path / "data")
    a = molecule("H2O", vacuum=3.0, pbc=True)
    lab = Label(
        energy=-10.0,
        forces=np.array([[0.5, 0, 0], [-0.5, 0, 0], [0, 0, 0]]),
        labeler="test",
        method="unit-test values",
        version="0",
        settings={},
    )
    store.add("k1", a, lab, "train", {"kind": "unit"})
    r = run_cli("stage=dataset", f"data.store={tmp_path / 'data'}", f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 0, r.stderr
    assert "train" in r.stdout and "unit" in r.stdout and "eV/Å" in r.stdout
    r = run_cli("stage=dataset", f"data.store={tmp_path / 'nothing'}", f"hydra.run.dir={tmp_path / 'run2'}")
    assert r.returncode == 2 and "no dataset store here" in r.stderr


def test_failure_budget_stops_with_one_line(tmp_path):
    from ase.build import molecule
    from ase.io import write

    src = tmp_path / "s.extxyz"
    write(src, [molecule("H2O", vacuum=3.0, pbc=True)], format="extxyz")
    r = run_cli(
        "stage=label",
        f"data.source={src}",
        "labeler.executor.kind=serial",
        "labeler.xtb.max_iterations=1",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("deepeut: label stopped: failure budget exceeded: 1 of 1")
