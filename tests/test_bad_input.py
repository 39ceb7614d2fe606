"""Bad input stops with one line naming the problem (exit 2 for config errors, 1 for a stage that cannot run)
and leaves nothing half-written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ase.io import write

from conftest import built_box, run_cli


def one_line(r, code: int) -> str:
    assert r.returncode == code, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize(
    "override,needle",
    [
        ("system=water", "deepeut: error: system: 'water' is not one of act, nma, ura"),
        ("md.temprature_K=300", "deepeut: error: unknown config key 'md.temprature_K'. Did you mean 'temperature_K'?"),
        ("md.temperature_K=-5", "deepeut: error: md.temperature_K: must be > 0 K, got -5.0"),
        ("md.timestep_fs=6", "deepeut: error: md.timestep_fs: must be in (0, 5] fs"),
        ("device=cuda", "deepeut: error: device: 'cuda' is not available (torch"),
    ],
)
def test_config_errors_fail_before_any_output(tmp_path, override, needle):
    r = run_cli(override, cwd=tmp_path)
    assert one_line(r, 2).startswith(needle)
    assert list(tmp_path.iterdir()) == []  # not even a Hydra run directory


def _start_box(tmp_path: Path, scale: float = 1.0) -> Path:
    atoms = built_box("ura")[1].atoms.copy()
    atoms.set_cell(atoms.cell * scale, scale_atoms=True)
    write(tmp_path / "start.extxyz", atoms)
    return tmp_path / "start.extxyz"


def test_box_narrower_than_the_cutoff(ensemble_dir, tmp_path):
    start = _start_box(tmp_path, 0.55)  # ~5.7 Å, below r_max = 6 Å
    r = run_cli("stage=md", f"committee={ensemble_dir}", f"md.start={start}", f"output_dir={tmp_path / 'out'}")
    line = one_line(r, 1)
    assert line.startswith("deepeut: md stopped: md.start") and "not more than the model cutoff r_max = 6 Å" in line
    assert not list((tmp_path / "out").glob("replica_*"))


def test_start_structure_disagrees_with_its_topology(ensemble_dir, tmp_path):
    start = _start_box(tmp_path)
    built_box("nma")[1].topology.write(tmp_path / "nma_topology.json")
    r = run_cli(
        "stage=md",
        f"committee={ensemble_dir}",
        f"md.start={start}",
        f"md.topology={tmp_path / 'nma_topology.json'}",
        f"output_dir={tmp_path / 'out'}",
    )
    assert "has 88 atoms but the topology of system nma has 128" in one_line(r, 1)


def test_dataset_without_forces(tmp_path):
    atoms = built_box("ura")[1].atoms.copy()
    atoms.info["energy"] = -100.0
    write(tmp_path / "noforces.extxyz", atoms)
    r = run_cli(
        "stage=reference",
        "labeler=import",
        f"labeler.imported.path={tmp_path / 'noforces.extxyz'}",
        f"output_dir={tmp_path / 'out'}",
    )
    line = one_line(r, 1)
    assert line.startswith("deepeut: reference stopped:") and "forces" in line
    assert not (tmp_path / "out" / "reference.json").exists()


def test_corrupted_model_file(ensemble_dir, tmp_path):
    broken = tmp_path / "ensemble"
    shutil.copytree(ensemble_dir, broken)
    model = broken / "member_0" / "model.nequip.zip"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 3])
    r = run_cli("stage=md", f"committee={broken}", "md.duration_ps=0.01", f"output_dir={tmp_path / 'out'}")
    line = one_line(r, 1)
    assert str(model) in line and "cannot load this model" in line


def test_corrupted_md_checkpoint(ensemble_dir, tmp_path):
    (tmp_path / "out" / "replica_0").mkdir(parents=True)
    (tmp_path / "out" / "replica_0" / "checkpoint.pkl").write_bytes(b"\x80\x04garbage")
    r = run_cli("stage=md", f"committee={ensemble_dir}", "md.duration_ps=0.01", f"output_dir={tmp_path / 'out'}")
    line = one_line(r, 1)
    assert "checkpoint.pkl is corrupted" in line and "delete it" in line


def test_corrupted_training_checkpoint(tmp_path):
    (tmp_path / "member_0").mkdir()
    (tmp_path / "member_0" / "last.ckpt").write_bytes(b"not a checkpoint")
    r = run_cli("stage=train", "train.ensemble_size=1", "train.max_epochs=1", f"output_dir={tmp_path}")
    line = one_line(r, 1)
    assert "last.ckpt is corrupted" in line and "member 0" in line
    assert not (tmp_path / "member_0" / "done.json").exists()


def test_evaluate_the_embedded_ensemble_on_its_shipped_test_set(tmp_path):
    import json

    r = run_cli("stage=evaluate", "committee=embedded", f"output_dir={tmp_path / 'ev'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    ev = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    from ase.io import read

    from deepeut.data.demo import demo_files
    from deepeut.training.embedded import embedded_ensemble

    kind, _, system = json.loads((embedded_ensemble("ura") / "ensemble.json").read_text())["dataset"][
        "origin"
    ].partition(":")
    assert ev["n_frames"] == len(read(demo_files(system, kind)["test"], ":"))
    assert 0 < ev["models"]["ensemble_mean"]["forces_eV_A"]["rmse"] < 1.0


def _write(path, atoms):
    write(path, atoms)
    return path


def test_bad_start_structures_are_one_line(tmp_path):
    import numpy as np
    from ase.build import molecule

    from deepeut.config import ConfigError
    from deepeut.md.task import read_start

    with pytest.raises(ConfigError, match="md.start: .*nope.extxyz does not exist"):
        read_start(tmp_path / "nope.extxyz")
    with pytest.raises(ConfigError, match="has no periodic cell"):
        read_start(_write(tmp_path / "nocell.extxyz", molecule("H2O")))
    bad = molecule("H2O")
    bad.set_cell([10, 10, 10])
    bad.pbc = True
    bad.positions[0] = np.nan
    with pytest.raises(ConfigError, match="non-finite positions"):
        read_start(_write(tmp_path / "nan.extxyz", bad))


def test_bad_trajectories_name_the_file_and_the_problem(tmp_path):
    import numpy as np
    from ase.build import molecule

    from deepeut.config import ConfigError
    from deepeut.trajectory.h5md import TrajectoryUnreadable
    from deepeut.trajectory.readers import open_trajectory

    with pytest.raises(TrajectoryUnreadable, match="no such trajectory file"):
        open_trajectory(tmp_path / "nope.h5")
    (tmp_path / "empty.lammpstrj").write_text("")
    with pytest.raises(TrajectoryUnreadable, match="empty.lammpstrj: holds no frame"):
        open_trajectory(tmp_path / "empty.lammpstrj", 0.5)
    with pytest.raises(ConfigError, match="analysis.timestep_fs"):
        open_trajectory(tmp_path / "empty.lammpstrj")
    with pytest.raises(TrajectoryUnreadable, match="has no periodic cell"):
        open_trajectory(_write(tmp_path / "nocell.extxyz", molecule("H2O")), 10.0)
    box = built_box("ura")[1].atoms
    from deepeut.trajectory.h5md import H5MDWriter, OBSERVABLES

    w = H5MDWriter(tmp_path / "t.h5", box.numbers, box.get_masses(), box.cell.array)
    for k in range(30):
        w.append(k, k * 0.01, box.positions, np.zeros_like(box.positions), {o: 0.0 for o in OBSERVABLES})
    w.close()
    data = (tmp_path / "t.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(TrajectoryUnreadable, match="cut.h5: cannot be read .*is the file complete"):
        open_trajectory(tmp_path / "cut.h5")


def test_analysis_start_beyond_the_run_is_one_line(tmp_path):
    import numpy as np

    from deepeut.trajectory.h5md import H5MDWriter, OBSERVABLES

    cfg, box = built_box("ura")
    w = H5MDWriter(
        tmp_path / "t.h5",
        box.atoms.numbers,
        box.atoms.get_masses(),
        box.atoms.cell.array,
        box.topology.molecule,
        list(box.topology.label),
    )
    for k in range(5):
        w.append(k, k * 0.01, box.atoms.positions, np.zeros_like(box.atoms.positions), {o: 0.0 for o in OBSERVABLES})
    w.close()
    r = run_cli(
        "stage=analysis",
        f"analysis.trajectories=[{tmp_path / 't.h5'}]",
        "analysis.start_ps=100",
        f"output_dir={tmp_path / 'an'}",
        cwd=tmp_path,
    )
    assert one_line(r, 2).startswith("deepeut: error: analysis.start_ps: 100 ps is at or beyond the end of")
    # a stride longer than the run leaves one frame: the structure is analysed, the dynamics listed as not computed
    r = run_cli(
        "stage=analysis",
        f"analysis.trajectories=[{tmp_path / 't.h5'}]",
        "analysis.stride=50",
        f"output_dir={tmp_path / 'st'}",
        cwd=tmp_path,
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "not computed: needs >= 20 frames" in (tmp_path / "st" / "tables.txt").read_text()
