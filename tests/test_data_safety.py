"""Nothing lost: the stage-cache lock, training history across resumes, orphan-free training children,
short and truncated trajectories."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import load_config


# --------------------------------------------------------------------------- stage-cache lock
def _hold_lock(folder, ready, release):
    from deepeut.utils.lock import folder_lock

    with folder_lock(folder):
        ready.set()
        release.wait(30)


def test_a_second_run_on_a_busy_stage_folder_stops_with_a_line_naming_the_holder(tmp_path):
    from deepeut.utils.lock import FolderBusy, folder_lock

    ctx = mp.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(tmp_path, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(FolderBusy, match=f"pid {holder.pid}"):
            with folder_lock(tmp_path, wait_s=0.2, poll_s=0.05):
                pass
    finally:
        release.set()
        holder.join(30)
    with folder_lock(tmp_path, wait_s=1.0):  # released with its holder
        pass


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path):
    from deepeut.utils.lock import folder_lock

    ctx = mp.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(tmp_path, ready, release))
    holder.start()
    assert ready.wait(30)
    os.kill(holder.pid, 9)
    holder.join(30)
    assert (tmp_path / ".lock").exists()
    with folder_lock(tmp_path, wait_s=0):
        pass


def test_stage_cache_runs_a_stage_once_under_its_lock_and_reuses_it(tmp_path):
    from deepeut.pipeline.cache import StageCache
    from deepeut.utils.lock import FolderBusy, folder_lock

    cfg = load_config("stage=md")
    cache = StageCache(tmp_path, "ura")
    calls = []
    first = cache.run(cfg, "analysis", {"md": "x"}, lambda d: calls.append(d) or {"n": 1})
    again = cache.run(cfg, "analysis", {"md": "x"}, lambda d: calls.append(d) or {"n": 2})
    assert len(calls) == 1 and not first.reused and again.reused and again.result == {"n": 1}
    other = cache.folder("analysis", "busy")
    with folder_lock(other):  # another run holds an unfinished stage: this one stops, nothing is written
        from deepeut.pipeline import cache as cache_mod

        key = cache_mod.stage_key(cfg, "analysis", {"md": "y"})
        with folder_lock(cache.folder("analysis", key)):
            with pytest.raises(FolderBusy, match="is in use by pid"):
                cache.run(cfg, "analysis", {"md": "y"}, lambda d: calls.append(d) or {})
    assert len(calls) == 1 and not (cache.folder("analysis", key) / "stage.json").exists()


# --------------------------------------------------------------------------- training
def test_resumed_training_keeps_the_metrics_of_earlier_runs(tmp_path):
    from deepeut.training.members import (
        keep_metrics_history,
        merge_metrics_history,
        read_metrics_csv,
        write_metrics_csv,
    )

    metrics = tmp_path / "metrics" / "metrics.csv"
    write_metrics_csv(metrics, [{"epoch": 0, "train_loss": 3.0}, {"epoch": 1, "train_loss": 2.0}])
    keep_metrics_history(tmp_path)  # killed after epoch 1, resumed: Lightning starts a new file
    assert not metrics.exists()
    write_metrics_csv(metrics, [{"epoch": 2, "train_loss": 1.5}])
    keep_metrics_history(tmp_path)  # killed again
    write_metrics_csv(metrics, [{"epoch": 3, "train_loss": 1.0, "val_loss": 1.1}])
    merge_metrics_history(tmp_path)
    rows = read_metrics_csv(metrics)
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3] and rows[-1]["val_loss"] == 1.1
    assert not (tmp_path / "metrics" / "history.csv").exists()


def test_the_training_child_dies_with_its_parent(tmp_path):
    pidfile = tmp_path / "child.pid"
    child_code = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)"
    parent = (
        "import sys\nfrom pathlib import Path\nfrom deepeut.training.members import _run\n"
        "_run([sys.executable, '-c', sys.argv[1], sys.argv[2]], 'sleeper', Path(sys.argv[3]))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", parent, child_code, str(pidfile), str(tmp_path / "log.txt")])
    for _ in range(300):
        if pidfile.exists() and pidfile.read_text():
            break
        time.sleep(0.1)
    child = int(pidfile.read_text())
    proc.kill()  # SIGKILL: the parent cannot clean up; the kernel's parent-death signal must end the child
    proc.wait()
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(child, 9)
    pytest.fail("the nequip-train child outlived its parent")


# --------------------------------------------------------------------------- short trajectories
def test_a_run_too_short_for_correlations_lists_what_it_skipped():
    from deepeut.analysis.task import short_run_skips, tables

    cfg = load_config("stage=analysis")
    skipped = short_run_skips(cfg, 2, 0.05)
    assert set(skipped) == {"diffusion", "conductivity", "lifetimes", "vccf", "block_sem"}
    assert "needs >= 20 frames after analysis.start_ps" in skipped["diffusion"] and "has 2" in skipped["diffusion"]
    assert short_run_skips(cfg, 60, 0.05) == {}
    assert set(short_run_skips(cfg, 30, 0.05)) == {"block_sem"}  # 3 blocks of 20
    tabs = tables(cfg, [{"cn_Li_O_amide": 3.0}], [{}], [skipped])
    assert tabs["I"]["cn_Li_O_amide"]["ours"] == 3.0
    d_li = tabs["II"]["D_Li"]
    assert d_li["ours"] is None and d_li["status"].startswith("not computed: needs >= 20 frames")
    assert tabs["III"]["sigma_GK"]["status"].startswith("not computed")


def test_truncation_keeps_every_frame_with_intact_molecules_after_the_last_check(tmp_path):
    from deepeut.trajectory.h5md import H5MDWriter, OBSERVABLES
    from deepeut.md.replica import ReplicaSetup, frames_intact_before
    from deepeut.systems import MoleculeRecognizer, build_templates
    from conftest import built_box

    cfg, box = built_box("ura")
    atoms = box.atoms
    rec = MoleculeRecognizer(build_templates(cfg.system.species))
    w = H5MDWriter(
        tmp_path / "t.h5",
        atoms.numbers,
        atoms.get_masses(),
        atoms.cell.array,
        box.topology.molecule,
        box.topology.label,
        {"timestep_fs": 0.5},
    )
    urea = np.nonzero(box.topology.species == "urea")[0]
    obs = {k: 1.0 for k in OBSERVABLES}
    for k in range(8):  # frames 0..5 intact, 6 and 7 with one urea atom pulled out
        pos = atoms.positions.copy()
        if k >= 6:
            pos[urea[0]] += [2.5, 0, 0]
        w.append(k, k * 0.01, pos, np.zeros_like(pos), obs)
    setup = ReplicaSetup(atoms, None, 0, recognizer=rec, expected_counts=box.topology.counts())
    md = load_config("stage=md", "md.check_molecules_every=4").md
    assert frames_intact_before(w, setup, md) == 6  # not 5 (frames up to the check at frame 4)
    md_no_check = load_config("stage=md", "md.check_molecules_every=0").md
    assert frames_intact_before(w, ReplicaSetup(atoms, None, 0), md_no_check) == 8
    w.close()


def test_md_json_is_valid_json_without_nan():
    import math

    from deepeut.utils.io import json_safe

    out = json.loads(
        json.dumps(json_safe({"drift": float("nan"), "x": [1.0, float("inf")], "n": np.float64(2.5)}), allow_nan=False)
    )
    assert out == {"drift": None, "x": [1.0, None], "n": 2.5} and not math.isnan(out["n"])


def test_a_continued_stage_folder_loses_the_part_files_of_the_killed_run(tmp_path):
    from deepeut.pipeline.cache import StageCache, stage_key

    cfg = load_config("stage=md")
    cache = StageCache(tmp_path, "ura")
    folder = cache.folder("analysis", stage_key(cfg, "analysis", {"md": "k"}))
    (folder / "replica_0").mkdir(parents=True)
    (folder / "replica_0" / ".results.json.abc123.part").write_text("{half")
    cache.run(cfg, "analysis", {"md": "k"}, lambda d: {})
    assert not list(folder.rglob("*.part"))
