"""Labelers, importer, dataset store and the parallel label runner (real tblite calls on small frames)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from conftest import ROOT
from deepeut.config.schema import ExecutorConfig
from deepeut.data.store import DatasetStore
from deepeut.data.label import structure_hash
from deepeut.labeling.base import LabelingError, FailureBudgetExceeded
from deepeut.labeling.importer import ImportDataError, read_labeled_extxyz
from deepeut.labeling.reference import increasing_lag_indices, select_frames
from deepeut.labeling.runner import LabelItem, label_structures
from deepeut.labeling.xtb import XTBLabeler

XTB = {
    "method": "GFN2-xTB",
    "electronic_temperature": 300.0,
    "accuracy": 1.0,
    "max_iterations": 250,
    "mixer_damping": 0.4,
    "threads": 1,
}


def water_box(seed: int = 0, n: int = 2, edge: float = 7.0) -> Atoms:
    rng = np.random.default_rng(seed)
    box = Atoms(cell=np.eye(3) * edge, pbc=True)
    for k in range(n):
        w = molecule("H2O")
        w.rotate(rng.uniform(0, 360), rng.normal(size=3))
        w.translate(np.array([k * edge / n + 1.5, edge / 2, edge / 2]) + rng.normal(scale=0.05, size=3))
        box += w
    return box


def test_xtb_equals_direct_tblite():
    from tblite.ase import TBLite

    atoms = water_box()
    label = XTBLabeler(XTB).label(atoms)
    ref = atoms.copy()
    ref.calc = TBLite(method="GFN2-xTB", verbosity=0)
    assert label.energy == pytest.approx(ref.get_potential_energy(), abs=1e-8)
    assert np.allclose(label.forces, ref.get_forces(), atol=1e-8)
    assert label.net_force < 1e-3 and label.settings_hash and label.attempts == 1


def test_xtb_force_is_minus_energy_gradient():
    atoms = water_box(1)
    lab = XTBLabeler(XTB)
    f = lab.label(atoms).forces[1, 0]
    h = 1e-3
    e = []
    for s in (+1, -1):
        a = atoms.copy()
        a.positions[1, 0] += s * h
        e.append(lab.label(a).energy)
    assert f == pytest.approx(-(e[0] - e[1]) / (2 * h), abs=2e-3)


def test_unconverged_scf_escalates_then_fails_with_reasons():
    lab = XTBLabeler({**XTB, "max_iterations": 1})
    with pytest.raises(LabelingError) as err:
        lab.label(water_box())
    text = str(err.value)
    assert text.count("attempt") == 3 and "SCF not converged" in text and "electronic_temperature" in text
    lab = XTBLabeler({**XTB, "max_iterations": 250})
    cycles = [{**lab.settings, **o}["max_iterations"] for o in lab.escalations()]
    assert cycles == [250, 500, 250]  # a structure that never converges costs at most 4× max_iterations


def test_store_keeps_duplicates_once_and_exports(tmp_path):
    atoms = water_box()
    label = XTBLabeler(XTB).label(atoms)
    store = DatasetStore(tmp_path / "data")
    key = structure_hash(atoms, label.settings_hash)
    assert store.add(key, atoms, label, "train", {"kind": "test"})
    assert not store.add(key, atoms, label, "train", {"kind": "test"})
    paths = store.export()
    from ase.io import read

    back = read(paths["train"], index=":")
    assert len(back) == 1 and len(store) == 1
    assert back[0].get_potential_energy() == pytest.approx(label.energy)
    assert json.loads(back[0].info["labeler_settings"]) == XTB  # the full settings travel with the structure
    assert back[0].info["labeler_version"] == "tblite-0.8.0" and back[0].info["settings_hash"] == label.settings_hash
    assert np.allclose(back[0].get_forces(), label.forces)
    assert json.loads(paths["manifest"].read_text().splitlines()[0])["key"] == key


def _labeled_file(path: Path, forces_scale: float = 1.0, nan: bool = False, forces: bool = True, n: int = 3):
    frames = []
    for k in range(n):
        a = water_box(k)
        f = np.random.default_rng(k).normal(size=(len(a), 3)) * forces_scale
        if nan and k == 1:
            f[2, 1] = np.nan
        a.calc = SinglePointCalculator(a, energy=-100.0 - k, **({"forces": f} if forces else {}))
        frames.append(a)
    write(path, frames, format="extxyz")
    return path


def test_import_reads_and_converts_units(tmp_path):
    p = _labeled_file(tmp_path / "ok.extxyz")
    got = list(read_labeled_extxyz(p, energy_unit="hartree", force_unit="eV/A"))
    assert len(got) == 3 and got[0][1].energy == pytest.approx(-100.0 * 27.211386, rel=1e-6)


def test_import_errors_name_file_and_frame(tmp_path):
    p = _labeled_file(tmp_path / "nan.extxyz", nan=True)
    with pytest.raises(ImportDataError, match=r"nan\.extxyz: frame 1: non-finite forces"):
        list(read_labeled_extxyz(p))
    p = _labeled_file(tmp_path / "cut.extxyz")
    text = p.read_text().splitlines()
    p.write_text("\n".join(text[:-2]) + "\n")  # truncate the last frame
    with pytest.raises(ImportDataError, match=r"cut\.extxyz: frame 2 is truncated or corrupted"):
        list(read_labeled_extxyz(p))
    p = _labeled_file(tmp_path / "unit.extxyz")
    with pytest.raises(ImportDataError, match=r"unit\.extxyz: frame 0: max \|F\|.*wrong force unit"):
        list(read_labeled_extxyz(p, force_unit="hartree/bohr", energy_unit="eV"))  # values are really eV/Å·50
    with pytest.raises(ImportDataError, match="unknown force unit 'N'"):
        list(read_labeled_extxyz(p, force_unit="N"))
    p = _labeled_file(tmp_path / "noforce.extxyz", forces=False)
    with pytest.raises(ImportDataError, match=r"noforce\.extxyz: frame 0 has no forces"):
        list(read_labeled_extxyz(p))


def test_frame_selection_increasing_lag():
    idx = increasing_lag_indices(100, 20)
    lags = np.diff(idx)
    assert idx[0] == 0 and 90 <= idx[-1] <= 99 and len(set(idx)) == 20
    assert (np.diff(lags) >= 0).all() and lags[-1] > lags[0]
    from deepeut.config.schema import ReferenceConfig

    tr, te = select_frames(200, ReferenceConfig(n_train=30, n_test=10))
    assert tr.max() < 150 <= te.min() and len(te) == 10
    with pytest.raises(ValueError, match="reference.n_train"):
        select_frames(20, ReferenceConfig(n_train=30, n_test=2))


def test_failure_budget_trips(tmp_path):
    spec = {"name": "xtb", "settings": {**XTB, "max_iterations": 1}, "max_net_force": 0.05}
    items = [LabelItem(water_box(k), "train", {"kind": "test", "frame": k}) for k in range(3)]
    store = DatasetStore(tmp_path / "d")
    with pytest.raises(FailureBudgetExceeded, match="failure budget exceeded: 1 of 3"):
        label_structures(items, spec, store, ExecutorConfig(kind="serial"), 0.2, False)
    (row,) = store.rows(status="failed")
    assert "SCF not converged" in row["reason"] and row["labeler"] == "xtb" and row["n_atoms"] == 6


def test_submitit_local_executor_labels(tmp_path):
    spec = {"name": "xtb", "settings": XTB, "max_net_force": 0.05}
    items = [LabelItem(water_box(k), "train", {"kind": "test", "frame": k}) for k in range(2)]
    store = DatasetStore(tmp_path / "d")
    rep = label_structures(items, spec, store, ExecutorConfig(kind="submitit_local", timeout_min=5), 0.1, False)
    assert rep.n_labeled == 2 and len(store) == 2
    again = label_structures(items, spec, store, ExecutorConfig(kind="serial"), 0.1, False)
    assert again.n_skipped == 2 and again.n_labeled == 0


def test_killed_labeling_run_resumes_without_recomputing(tmp_path):
    src = tmp_path / "structures.extxyz"
    write(src, [water_box(k, n=3, edge=8.0) for k in range(6)], format="extxyz")
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        str(ROOT / "run.py"),
        "stage=label",
        f"data.source={src}",
        f"output_dir={out}",
        "labeler.executor.kind=serial",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    structures = out / "data" / "structures"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(structures.glob("*.extxyz"))) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = {p.name: p.stat().st_mtime_ns for p in structures.glob("*.extxyz")}
    assert 2 <= len(first) < 6, "the run must be killed mid-way"
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "label.json").read_text())
    assert report["n_skipped"] == len(first) and report["n_labeled"] == 6 - len(first)
    after = {p.name: p.stat().st_mtime_ns for p in structures.glob("*.extxyz")}
    assert len(after) == 6 and all(after[k] == v for k, v in first.items())


def test_labeler_md_resume_equals_unbroken_run(tmp_path):
    """xTB-driven NVT MD stopped after 3 steps and resumed gives the frames of an unbroken 6-step run."""
    from ase.io import read

    from deepeut.config.schema import ReferenceConfig
    from deepeut.labeling.reference import run_labeler_md

    lab = XTBLabeler(XTB)
    atoms = water_box(2)
    full = run_labeler_md(atoms, lab, ReferenceConfig(duration_ps=0.003, checkpoint_every=1), tmp_path / "a", False)
    run_labeler_md(atoms, lab, ReferenceConfig(duration_ps=0.0015, checkpoint_every=1), tmp_path / "b", False)
    resumed = run_labeler_md(atoms, lab, ReferenceConfig(duration_ps=0.003, checkpoint_every=1), tmp_path / "b", False)
    a, b = read(full, index=":"), read(resumed, index=":")
    assert len(a) == len(b) == 7
    for fa, fb in zip(a, b):
        assert np.allclose(fa.positions, fb.positions, atol=1e-8)
        assert fa.get_potential_energy() == pytest.approx(fb.get_potential_energy(), abs=1e-6)


def test_import_cp2k_fpmd_output(tmp_path):
    """CP2K MD output written the way CP2K writes it (Å, Hartree, Hartree/Bohr) imports in eV and eV/Å."""
    from ase.units import Bohr, Hartree

    from deepeut.labeling.importer import read_cp2k_fpmd

    a = water_box(0)
    pos, frc = [], []
    for i in range(2):
        e = -34.1 - 0.01 * i
        f = np.full((len(a), 3), 0.01 * (i + 1))
        head = f"{len(a)}\n i =        {i}, time =        {0.5 * i:.3f}, E =     {e:.10f}\n"
        pos.append(head + "".join(f"{s} {x:.6f} {y:.6f} {z:.6f}\n" for s, (x, y, z) in zip(a.symbols, a.positions)))
        frc.append(head + "".join(f"{s} {x:.6f} {y:.6f} {z:.6f}\n" for s, (x, y, z) in zip(a.symbols, f)))
    (tmp_path / "DES-pos-1.xyz").write_text("".join(pos))
    (tmp_path / "DES-frc-1.xyz").write_text("".join(frc))
    (tmp_path / "md.inp").write_text(
        "&FORCE_EVAL\n &SUBSYS\n  &CELL\n   ABC 7.0 7.0 7.0\n  &END CELL\n &END SUBSYS\n&END\n"
    )
    got = list(read_cp2k_fpmd(tmp_path / "DES-pos-1.xyz"))
    assert len(got) == 2
    atoms, label = got[1]
    assert np.allclose(atoms.cell.array, np.eye(3) * 7.0) and atoms.pbc.all()
    assert label.energy == pytest.approx(-34.11 * Hartree)
    assert np.allclose(label.forces, 0.02 * Hartree / Bohr)
    (tmp_path / "DES-frc-1.xyz").write_text("".join(frc)[:-40])  # truncated force file
    with pytest.raises(ImportDataError, match=r"DES-frc-1\.xyz: frame 1 is truncated"):
        list(read_cp2k_fpmd(tmp_path / "DES-pos-1.xyz"))


def test_forces_imported_in_the_wrong_unit_are_refused(tmp_path):
    """Hartree/Bohr numbers declared as eV/Å: the RMS force is 51× too small for a liquid."""
    import numpy as np
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    from conftest import built_box, load_config
    from deepeut.labeling.importer import ImportDataError
    from deepeut.labeling.reference import imported_labels

    box = built_box("ura")[1].atoms
    rng = np.random.default_rng(0)
    frames = []
    for k in range(3):
        a = box.copy()
        forces_eV_A = rng.normal(scale=0.9, size=(len(a), 3))  # a liquid's RMS force, eV/Å
        a.calc = SinglePointCalculator(
            a, energy=-400.0 / 27.2114, forces=forces_eV_A / 51.422
        )  # written in Ha, Ha/Bohr
        frames.append(a)
    write(tmp_path / "ha.extxyz", frames)
    wrong = load_config("stage=reference", "labeler=import", f"labeler.imported.path={tmp_path / 'ha.extxyz'}")
    with pytest.raises(ImportDataError, match="implausibly small for a liquid .*wrong force unit"):
        imported_labels(wrong)
    right = load_config(
        "stage=reference",
        "labeler=import",
        f"labeler.imported.path={tmp_path / 'ha.extxyz'}",
        "labeler.imported.energy_unit=hartree",
        "labeler.imported.force_unit=hartree/bohr",
    )
    assert len(imported_labels(right)) == 3
