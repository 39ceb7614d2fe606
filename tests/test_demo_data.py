"""The shipped GFN2-xTB demo datasets are complete, labeled in eV and eV/Å, and chemically intact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from conftest import built_box
from deepeut.data.demo import demo_files
from deepeut.systems import MoleculeRecognizer


@pytest.mark.parametrize("system", ["ura", "act", "nma"])
def test_demo_dataset(system):
    files = demo_files(system)
    train, test = read(files["train"], index=":"), read(files["test"], index=":")
    assert (len(train), len(test)) == (45, 15)
    _, box = built_box(system)
    rec = MoleculeRecognizer(box.templates)
    for atoms in train + test:
        assert len(atoms) == len(box.atoms) and atoms.info["labeler"] == "xtb" and atoms.info["method"] == "GFN2-xTB"
        assert atoms.info["energy_unit"] == "eV" and atoms.info["force_unit"] == "eV/A"
        f = atoms.get_forces()
        assert np.isfinite(atoms.get_potential_energy()) and np.isfinite(f).all()
        assert np.linalg.norm(f.sum(0)) < 0.05  # net force of a periodic xTB calculation
        assert rec.recognise(atoms.positions, atoms.numbers, atoms.cell.array).ok  # no molecule broke in the MD
    rows = [json.loads(x) for x in files["manifest"].read_text().splitlines()]
    assert sum(r["split"] == "train" for r in rows) == 45
    assert {json.loads(r["source"])["kind"] for r in rows} == {"reference_md"}
    # test frames come from the last quarter of the trajectory, after all training frames
    t_train = max(json.loads(a.info["source"])["frame"] for a in train)
    assert min(json.loads(a.info["source"])["frame"] for a in test) > t_train


def test_packed_dataset_restores_into_a_store_with_its_keys_and_provenance(tmp_path):
    """pack → unpack → pack gives the same labeled structures; unpacking twice adds nothing."""
    import json
    import time

    from deepeut.data.demo import pack, unpack
    from deepeut.data.store import open_store

    src = Path(__file__).resolve().parents[1] / "deepeut" / "data" / "demo" / "ura"
    assert unpack(src, tmp_path / "store") > 0
    assert unpack(src, tmp_path / "store") == 0
    pack(tmp_path / "store", tmp_path / "again")
    first = (tmp_path / "again" / "train.extxyz.gz").read_bytes()
    time.sleep(1.1)  # a gzip header would carry another second
    pack(tmp_path / "store", tmp_path / "again")  # the same content gives the same bytes: no spurious commit
    assert (tmp_path / "again" / "train.extxyz.gz").read_bytes() == first
    # the manifest too: rows keep the creation times the packed one recorded (no whole-file diff per snapshot)
    assert (tmp_path / "again" / "manifest.jsonl").read_text() == (src / "manifest.jsonl").read_text()
    store = open_store(tmp_path / "store")
    rows = {r["key"]: r for r in store.rows()}
    store.close()
    orig = [json.loads(line) for line in (src / "manifest.jsonl").read_text().splitlines()]
    assert set(rows) == {r["key"] for r in orig}
    for r in orig:
        got = rows[r["key"]]
        assert (got["split"], got["method"], got["settings_hash"], got["source"]) == (
            r["split"],
            r["method"],
            r["settings_hash"],
            r["source"],
        )
        assert got["energy_eV"] == pytest.approx(r["energy_eV"], abs=1e-6)


def test_a_non_ascii_source_survives_repeated_pack_and_unpack(tmp_path):
    """An AL frame's source names its trigger in Å; pack → unpack → pack keeps it byte for byte (an ASCII-escaped
    \\u00c5 lost its backslash to extxyz quoting on every round trip)."""
    import json

    import numpy as np
    from ase.build import molecule

    from deepeut.data.demo import pack, unpack
    from deepeut.data.label import Label
    from deepeut.data.store import DatasetStore, open_store

    store = DatasetStore(tmp_path / "a")
    label = Label(  # unit-test values, not a labeler's output
        energy=-10.0, forces=np.zeros((3, 3)), labeler="test", method="unit", version="0", settings={}
    )
    source = {"kind": "al", "trigger": "contact Li-O 1.69 Å < 1.7 Å"}
    store.add("k1", molecule("H2O", vacuum=3.0, pbc=True), label, "train", source)
    store.export()
    store.close()
    for i in range(2):
        pack(tmp_path / "a", tmp_path / "packed")
        unpack(tmp_path / "packed", tmp_path / f"b{i}")
        open_store(tmp_path / f"b{i}").export()
        (tmp_path / "a").rename(tmp_path / f"old{i}")
        (tmp_path / f"b{i}").rename(tmp_path / "a")
    store = open_store(tmp_path / "a")
    assert [json.loads(r["source"]) for r in store.rows()] == [source]
