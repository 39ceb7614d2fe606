"""stage=pipeline and stage=main: the stage cache, the main-job rule, plans and budgets, the report, and
SIGKILL at every stage (labeling, training, MD, analysis) followed by a rerun that finishes and recomputes
nothing that had finished."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import change_weights, kill_when, load_config, rewrite_zip_entry, run_cli, start_cli
from deepeut.pipeline.cache import DONE, StageCache, stage_key


def test_stage_key_follows_what_decides_the_result():
    base = load_config()
    key = lambda *o, stage="md", inputs=None: stage_key(load_config(*o), stage, inputs or {"ensemble": "a"})  # noqa
    assert key() == stage_key(base, "md", {"ensemble": "a"})
    assert key("md.duration_ps=3") != key()  # a longer run is another run
    assert key(inputs={"ensemble": "b"}) != key()  # another ensemble too
    assert key("train.lr=0.01") == key()  # training settings do not change an MD run with a given ensemble
    assert key("train.lr=0.01", stage="train") != key(stage="train")
    assert key("train.devices=4", "train.strategy=ddp", "logger=none", stage="train") == key(stage="train")
    assert key("labeler.executor.n_workers=2", stage="al") == key(stage="al")


def _config_leaves(obj, path=(), exempt=False):
    """(path, value, exempt) of every leaf field of a config dataclass."""
    from deepeut.config.base import key_exempt

    for f in dataclasses.fields(obj):
        value, here = getattr(obj, f.name), (*path, f.name)
        if dataclasses.is_dataclass(value):
            yield from _config_leaves(value, here, exempt or key_exempt(f))
        else:
            yield here, value, exempt or key_exempt(f)


def _another(value):
    from enum import Enum

    if isinstance(value, bool):
        return not value
    if isinstance(value, Enum):
        return next(m for m in type(value) if m is not value)
    if isinstance(value, (int, float)):
        return value * 2 + 1
    if isinstance(value, (list, tuple)):
        return [*value, value[0] if value else "x"]
    if isinstance(value, dict):
        return {**value, "another": 1}
    return f"{value}x"


def test_stage_key_changes_with_every_value_a_stage_reads_and_with_no_other():
    """Every leaf of every config section, changed one at a time: a pipeline stage's key changes exactly when the
    stage reads the section (deepeut.stages.STAGES) and the field is not marked execution or input."""
    import copy

    from deepeut.stages import STAGES

    cfg = load_config()
    leaves = list(_config_leaves(cfg))
    assert len(leaves) > 200
    for stage in ("build", "classical", "reference", "train", "al", "md", "analysis"):
        base = stage_key(cfg, stage, {})
        for path, value, exempt in leaves:
            changed = copy.deepcopy(cfg)
            parent = changed
            for name in path[:-1]:
                parent = getattr(parent, name)
            setattr(parent, path[-1], _another(value))
            expected = path[0] in STAGES[stage].reads and not exempt
            assert (stage_key(changed, stage, {}) != base) == expected, (stage, ".".join(path))
        assert stage_key(cfg, stage, {"md": "a"}) != stage_key(cfg, stage, {"md": "b"})  # an input's content


def test_start_structures_are_keyed_by_content_not_by_name(tmp_path):
    from deepeut.pipeline.cache import structures_digest

    a, b = tmp_path / "a.extxyz", tmp_path / "b.extxyz"
    a.write_text("one"), b.write_text("one")
    assert structures_digest([a]) == structures_digest([b])
    alone = structures_digest([a])
    (tmp_path / "topology.json").write_text("{}")  # the topology beside the start is part of it
    assert structures_digest([a]) != alone
    b.write_text("two")
    assert structures_digest([a]) != structures_digest([b])


class _Tripwire:
    """A config section a stage must not read: any attribute access fails the test, naming the field."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr):
        raise AssertionError(f"the stage read {self._name}.{attr}, a section its cache key does not hold")


def _only(cfg, reads):
    """``cfg`` with every section outside ``reads`` (and the logger, which says how results are tracked) replaced
    by a tripwire."""
    import copy

    out = copy.copy(cfg)
    for f in dataclasses.fields(cfg):
        if dataclasses.is_dataclass(getattr(cfg, f.name)) and f.name not in (*reads, "logger"):
            setattr(out, f.name, _Tripwire(f.name))
    return out


def test_build_md_and_analysis_read_only_the_sections_their_keys_hold(tmp_path):
    """The other direction of the key test: a stage that read a section its key lacks could reuse stale results."""
    from deepeut.analysis.task import run_analysis
    from deepeut.md.engines import Potential
    from deepeut.md.task import run_md
    from deepeut.stage_io import Structures, Trajectories
    from deepeut.stages import STAGES
    from deepeut.systems.task import build
    from deepeut.training.embedded import embedded_ensemble

    cfg = load_config(  # a raw packmol box under a liquid-trained potential heats up: no physics is tested here
        "stage=md", "md.duration_ps=0.02", "md.save_every_fs=5", "md.max_temperature_factor=100", "logger=none"
    )
    build(_only(cfg, STAGES["build"].reads), tmp_path / "build")
    potential = Potential(embedded_ensemble("ura"), 0)
    starts = Structures.of([tmp_path / "build" / "box.extxyz"])
    md = run_md(_only(cfg, STAGES["md"].reads), potential, tmp_path / "md", starts)
    assert md.trajectories.paths[0].exists()
    run_analysis(_only(cfg, STAGES["analysis"].reads), Trajectories.of(md.trajectories.paths), tmp_path / "an")
    assert (tmp_path / "an" / "tables.json").exists()


def test_stage_cache_reuses_finished_and_continues_unfinished(tmp_path):
    cfg = load_config()
    cache = StageCache(tmp_path, "ura")
    calls = []

    def work(d: Path, die: bool):
        calls.append(d)
        (d / "part.txt").write_text("first half")
        if die:
            raise KeyboardInterrupt  # the run dies half-way: no stage.json
        return {"value": (d / "part.txt").read_text()}

    with pytest.raises(KeyboardInterrupt):
        cache.run(cfg, "build", {}, lambda d: work(d, True))
    folder = calls[0]
    assert folder.exists() and not (folder / DONE).exists()
    rec = cache.run(cfg, "build", {}, lambda d: work(d, False))  # continues in the same folder
    assert rec.dir == folder and not rec.reused and rec.result == {"value": "first half"}
    rec = cache.run(cfg, "build", {}, lambda d: work(d, False))
    assert rec.reused and len(calls) == 2  # finished: not run again
    assert json.loads((folder / DONE).read_text())["config"]["system"]["name"] == "ura"


def test_md_choice_without_stage_is_the_main_job():
    assert load_config("system=nma", "md=production").stage.name == "main"
    assert load_config().stage.name == "pipeline"
    assert load_config("stage=md", "md=explore").stage.name == "md"
    # the jobs for laptop-size ensembles: committee-mean MD, truncated (not failed) when a check fails
    for cfg in (load_config("system=nma", "md=production"), load_config()):
        assert cfg.md.ensemble_member is None and cfg.md.on_unstable == "truncate"
    md_alone, paper = load_config("stage=md"), load_config("+experiment=paper_nma")
    assert (md_alone.md.ensemble_member, md_alone.md.on_unstable) == (0, "stop")
    assert paper.md.ensemble_member == 0  # one potential drives the paper's MD


def test_main_job_picks_the_most_accurate_complete_ensemble_by_a_printed_rule(tmp_path, tmp_path_factory, monkeypatch):
    import os

    from deepeut.pipeline.workflow import find_ensemble
    from deepeut.training import embedded

    # the shipped manifests without their validation records (those change with every campaign)
    MODELS_DIR = tmp_path_factory.mktemp("shipped")  # outside the searched outputs
    for system in ("nma", "act"):
        (MODELS_DIR / system).mkdir(parents=True)
        shutil.copy(embedded.MODELS_DIR / system / "ensemble.json", MODELS_DIR / system)
    monkeypatch.setattr(embedded, "MODELS_DIR", MODELS_DIR)

    def manifest(path: Path, system: str, complete: bool, mtime: float, rmse=None):
        path.mkdir(parents=True)
        metrics = {} if rmse is None else {"forces_rmse": rmse}
        (path / "ensemble.json").write_text(
            json.dumps(
                {
                    "system": system,
                    "complete": complete,
                    "dataset": {"n_test": 40},
                    "members": [{"member": 0, "test_metrics": metrics}],
                }
            )
        )
        os.utime(path / "ensemble.json", (mtime, mtime))

    manifest(tmp_path / "runs" / "good" / "train", "nma", True, 1e9, rmse=0.05)
    manifest(tmp_path / "runs" / "two_epoch_test" / "train", "nma", True, 2e9, rmse=2.5)  # the newest: not chosen
    manifest(tmp_path / "runs" / "no_metrics", "nma", True, 2.5e9)
    manifest(tmp_path / "runs" / "newest_incomplete", "nma", False, 3e9, rmse=0.01)
    manifest(tmp_path / "runs" / "other_system", "ura", True, 4e9, rmse=0.01)
    cfg = load_config("system=nma", "md=production", f"pipeline.search_outputs={tmp_path}")
    path, origin = find_ensemble(cfg)
    assert path == tmp_path / "runs" / "good" / "train"
    assert "lowest mean member test force RMSE" in origin and "0.050 eV/Å on 40 test frames" in origin
    validated = tmp_path / "runs" / "validated" / "train"
    manifest(validated, "nma", True, 1e9, rmse=0.08)
    record = {"drivers": [{"driver": "committee", "failed": False, "stable_ps": 10.0}]}
    (validated / "validation_tiny.json").write_text(json.dumps(record))
    path, origin = find_ensemble(cfg)  # validated without failure at this scale beats a lower RMSE
    assert path == validated and "validated at scale tiny: no failure in 10 ps" in origin
    record["drivers"][0]["failed"] = True
    (validated / "validation_tiny.json").write_text(json.dumps(record))
    assert find_ensemble(cfg)[0] == tmp_path / "runs" / "good" / "train"
    shutil.rmtree(validated.parent)
    (tmp_path / "runs" / "good" / "train" / "ensemble.json").unlink()
    path, origin = find_ensemble(cfg)  # the embedded default beats the 2-epoch run
    assert path == MODELS_DIR / "nma" and "embedded" in origin
    empty = load_config("system=nma", "md=production", f"pipeline.search_outputs={tmp_path / 'none'}")
    assert find_ensemble(empty)[0] == MODELS_DIR / "nma"
    assert find_ensemble(load_config("system=act", "committee=embedded"))[0] == MODELS_DIR / "act"


def test_a_packed_committee_hashes_as_its_training_folder_so_its_validation_runs_are_found_again(tmp_path):
    """Packing cuts machine paths from each member's training config and rewrites the manifest; what the committee
    computes is unchanged, and so is its digest (the key of its MD and validation runs)."""
    from deepeut.training.embedded import MODELS_DIR, pack
    from deepeut.training.potential import ensemble_digest

    trained = tmp_path / "al" / "iter_3" / "train"
    shutil.copytree(MODELS_DIR / "ura", trained)
    for member in ("member_0", "member_1", "member_2"):  # as a training folder has it: absolute paths of the machine
        rewrite_zip_entry(
            trained / member / "model.nequip.zip",
            "model/config.yaml",
            lambda b: b + f"\nsave_dir: {tmp_path}/machine/only/{member}\n".encode(),
        )
    packed = pack(trained, tmp_path / "models" / "ura")
    assert ensemble_digest(packed) == ensemble_digest(trained) != ensemble_digest(MODELS_DIR / "ura")
    import zipfile

    with zipfile.ZipFile(packed / "member_2" / "model.nequip.zip") as z:
        config = z.read(next(n for n in z.namelist() if n.endswith("model/config.yaml"))).decode()
    assert str(tmp_path) not in config and "save_dir: only/member_2" in config


def test_an_ensemble_of_another_system_or_with_a_changed_member_is_not_silently_used(tmp_path):

    from deepeut.training.embedded import MODELS_DIR
    from deepeut.training.potential import EnsembleError, ensemble_digest, resolve_ensemble

    ura = load_config("system=ura")
    with pytest.raises(EnsembleError, match="trained for system=nma, not system=ura"):
        resolve_ensemble(str(MODELS_DIR / "nma"), tmp_path, ura.system)
    copy = tmp_path / "ura"
    shutil.copytree(MODELS_DIR / "ura", copy)
    before = ensemble_digest(copy)
    change_weights(copy / "member_1" / "model.nequip.zip")
    assert ensemble_digest(copy) != before  # cached MD of the old weights is not reused
    m = json.loads((copy / "ensemble.json").read_text())
    m["type_names"] = ["C", "H", "N", "O"]
    (copy / "ensemble.json").write_text(json.dumps(m))
    with pytest.raises(EnsembleError, match="no atom type for F, Li, S of system=ura"):
        resolve_ensemble(str(copy), tmp_path, ura.system)


@pytest.mark.parametrize("system", ["ura", "act", "nma"])
def test_embedded_default_ensembles_are_shipped_small_and_load(system):
    from deepeut.training.embedded import embedded_ensemble
    from deepeut.training.potential import Ensemble

    path = embedded_ensemble(system)
    manifest = json.loads((path / "ensemble.json").read_text())
    assert manifest["complete"] and len(manifest["members"]) == 3 and manifest["system"] == system
    assert manifest["dataset"]["origin"] in (f"demo:{system}", f"campaign:{system}")  # a shipped dataset
    assert sum(f.stat().st_size for f in path.rglob("*")) < 5e6  # a few MB at most
    ens = Ensemble.load(path)
    from conftest import built_box

    atoms = built_box(system)[1].atoms
    pred = ens.predict([atoms])
    assert np.isfinite(pred.mean_forces[0]).all() and pred.forces[0].shape == (3, len(atoms), 3)


def test_plan_prints_an_estimate_and_refuses_hours_on_a_cpu(tmp_path):
    r = run_cli("pipeline.dry_run=true", f"output_dir={tmp_path}")
    assert r.returncode == 0, r.stderr[-2000:]
    plan = (tmp_path / "plan.txt").read_text()
    for stage in ("build", "train", "al", "md", "analysis", "report"):
        assert f" {stage} " in plan
    assert "estimated total: ~" in plan and not (tmp_path / "pipeline.json").exists()
    r = run_cli("+experiment=paper_nma", "device=cpu", "pipeline.max_estimate_h=3", f"output_dir={tmp_path / 'p'}")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("deepeut: error: pipeline.max_estimate_h: this run would take")


@pytest.mark.parametrize("system,pairs,md_ps", [("ura", 128, 3200.0), ("act", 128, 2200.0), ("nma", 128, 2200.0)])
def test_paper_experiments_set_the_papers_numbers(system, pairs, md_ps):
    cfg = load_config(f"+experiment=paper_{system}")
    assert (cfg.system.name, cfg.scale.n_ion_pairs, cfg.md.duration_ps, cfg.md.replicas) == (system, pairs, md_ps, 3)
    assert (cfg.model.name, cfg.train.max_epochs, cfg.al.name, cfg.labeler.name) == (
        "allegro_paper",
        200,
        "paper",
        "cp2k",
    )
    assert (cfg.reference.duration_ps, cfg.reference.n_train, cfg.reference.n_test) == (20.0, 4500, 500)
    assert cfg.pipeline.reference_ion_pairs == 8 and cfg.md.timestep_fs == 0.5 and cfg.md.temperature_K == 353.0


def _stage_dirs(cache: Path, stage: str):
    return sorted((cache / stage).glob("*-*")) if (cache / stage).exists() else []


def _stage_names(done) -> set:
    return {Path(p).parent.parent.name for p in done}


def _done_mtimes(cache: Path):
    return {str(p): p.stat().st_mtime_ns for p in cache.glob(f"*/*/{DONE}")}


MAIN = [
    "system=ura",
    "md=production",
    "md.duration_ps=0.15",
    "md.checkpoint_every_steps=20",
    "md.check_molecules_every=0",
    "md.max_force_eV_A=1e6",
    "md.max_temperature_factor=1e6",
]


def test_main_job_survives_sigkill_in_md_and_analysis(ensemble_dir, tmp_path):
    cache = tmp_path / "cache"
    args = [*MAIN, f"committee={ensemble_dir}", f"pipeline.cache_dir={cache}"]
    ckpt = lambda: any(p.exists() for p in cache.glob("md/*/replica_0/checkpoint.pkl"))  # noqa: E731
    assert kill_when(start_cli(*args, f"output_dir={tmp_path / 'run1'}"), ckpt), "MD never checkpointed"
    assert _stage_names(_done_mtimes(cache)) == {"classical"}  # the liquid was equilibrated, nothing else finished
    analysing = lambda: bool(_stage_dirs(cache, "analysis"))  # noqa: E731
    killed_in_analysis = kill_when(start_cli(*args, f"output_dir={tmp_path / 'run2'}"), analysing)
    finished = _done_mtimes(cache)
    if killed_in_analysis:
        assert _stage_names(finished) == {"classical", "md"}  # MD finished, analysis did not
    r = run_cli(*args, f"output_dir={tmp_path / 'run3'}")
    assert r.returncode == 0, r.stderr[-3000:]
    for path, mtime in finished.items():  # finished stages were reused, not redone
        assert _done_mtimes(cache)[path] == mtime
    from deepeut.trajectory.h5md import H5MDTrajectory

    with H5MDTrajectory(next(cache.glob("md/*/replica_0/trajectory.h5"))) as tr:
        assert tr.n_frames == 16 and np.allclose(np.diff(tr.times_ps), 0.01)  # 0.15 ps every 10 fs, no gaps
    report = (tmp_path / "run3" / "report.md").read_text()
    for needle in ("## MD stability", "Table I", "Table III", "kcal/mol/atom/ns", "fig5_6_rdf.png"):
        assert needle in report
    assert "data:image/png;base64" in (tmp_path / "run3" / "report.html").read_text()
    r = run_cli(*args, f"output_dir={tmp_path / 'run4'}")
    assert r.returncode == 0
    stages = json.loads((tmp_path / "run4" / "pipeline.json").read_text())["stages"]
    assert [(s["stage"], s["reused"]) for s in stages] == [("classical", True), ("md", True), ("analysis", True)]
    a = json.loads((tmp_path / "run3" / "analysis" / "tables.json").read_text())
    assert a == json.loads((tmp_path / "run4" / "analysis" / "tables.json").read_text())


PIPE = [
    "train.ensemble_size=2",
    "train.max_epochs=1",
    "al.explore_runs=1",
    # 1-epoch members: only the first 20 fs from the equilibrated start are close enough to a liquid that xTB's SCF
    # converges at once (later frames of such a run can cost minutes of SCF escalations)
    "al.explore_ps=0.02",
    "al.explore_save_every_fs=4",
    "al.n_calibration=2",
    "al.max_selected=1",
    # the final MD runs 1-epoch members with every safety check off: 30 fs, since such a run can fly apart into
    # configurations whose every step costs seconds (seen: a 0.1 ps run not finished after 30 min under load)
    "md.duration_ps=0.03",
    "md.check_molecules_every=0",
    "md.max_force_eV_A=1e6",
    "md.max_temperature_factor=1e6",
]


@pytest.mark.slow
def test_pipeline_survives_sigkill_in_training_and_labeling(tmp_path):
    """The whole workflow (1-epoch members: plumbing, not physics), killed while training and while labeling.

    Slow (2 min on 2 idle cores, far longer beside other jobs: four trainings, labels, MD, analysis); the default
    suite covers each of its kills on its own: training (tests/test_training.py), labeling
    (tests/test_active_learning.py), the stage cache (here)."""
    cache = tmp_path / "cache"
    args = [*PIPE, f"pipeline.cache_dir={cache}"]
    training = lambda: any(p.exists() for p in cache.glob("train/*/member_0/last.ckpt"))  # noqa: E731
    assert kill_when(start_cli(*args, f"output_dir={tmp_path / 'run1'}"), training, settle=0.5)
    assert _stage_names(_done_mtimes(cache)) == {"build"}

    def labeling():
        state = next(cache.glob("al/*/al_state.json"), None)
        return state is not None and json.loads(state.read_text())["step"] == "calibrate"

    assert kill_when(start_cli(*args, f"output_dir={tmp_path / 'run2'}"), labeling, timeout=600, settle=2.0)
    finished = _done_mtimes(cache)
    assert _stage_names(finished) == {"build", "train", "classical"}  # the exploration starts were equilibrated
    r = run_cli(*args, f"output_dir={tmp_path / 'run3'}", timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    for path, mtime in finished.items():
        assert _done_mtimes(cache)[path] == mtime
    train_dir = _stage_dirs(cache, "train")[0]
    assert all(
        json.loads((train_dir / f"member_{k}" / "done.json").read_text())["resumed"] is (k == 0) for k in (0, 1)
    )  # member 0 continued from its checkpoint, member 1 started after the kill
    from deepeut.data.store import open_store

    store = open_store(_stage_dirs(cache, "al")[0] / "data")
    assert len(store.read("calibration")) == 2 and not store.rows(status="failed")  # labeled once, none twice
    store.close()
    pipeline = json.loads((tmp_path / "run3" / "pipeline.json").read_text())
    # classical twice: the exploration starts, then (reused: the same boxes) the production MD starts
    assert [s["stage"] for s in pipeline["stages"]] == [
        "build",
        "train",
        "classical",
        "al",
        "classical",
        "md",
        "analysis",
    ]
    report = (tmp_path / "run3" / "report.md").read_text()
    origin = json.loads((Path(pipeline["ensemble"]) / "ensemble.json").read_text())["dataset"]["origin"]
    assert "## Active learning" in report and "## Model" in report and origin in report  # the final ensemble's data


def test_stage_key_follows_the_code_the_libraries_and_every_md_setting_of_the_loop(monkeypatch):
    """A changed AL exploration safety bound, a changed stage code digest or library version gives a new key
    (never a stale reuse); how often MD checkpoints does not."""
    from deepeut.pipeline import cache

    cfg = load_config()
    key = cache.stage_key(cfg, "al", {})
    bound = dataclasses.replace(cfg, md=dataclasses.replace(cfg.md, max_force_eV_A=10.0))
    assert cache.stage_key(bound, "al", {}) != key
    ckpt = dataclasses.replace(cfg, md=dataclasses.replace(cfg.md, checkpoint_every_steps=7))
    assert cache.stage_key(ckpt, "md", {}) == cache.stage_key(cfg, "md", {})
    monkeypatch.setattr("deepeut.utils.provenance.code_digest", lambda packages=(): "another code")
    assert cache.stage_key(cfg, "al", {}) != key
    monkeypatch.setattr("deepeut.utils.provenance.library_versions", lambda: {"torch": "9.9"})
    assert cache.stage_key(cfg, "al", {}) != key


def test_the_laptop_scale_is_never_refused_for_its_estimate():
    """A busy CPU can make the timed estimate of the README's default job many times too long: scale=tiny runs
    anyway; a production-scale CPU run over the limit is refused naming the key."""
    from deepeut.config import ConfigError
    from deepeut.pipeline.plan import PlanStep, check_budget

    steps = [PlanStep("md", "a long run", 10 * 3600.0)]
    check_budget(load_config("md=production", "pipeline.max_estimate_h=3"), steps)
    with pytest.raises(ConfigError, match="pipeline.max_estimate_h"):
        check_budget(load_config("md=production", "scale=production", "pipeline.max_estimate_h=3"), steps)
