"""``stage=pipeline`` (the whole workflow) and ``stage=main`` (production MD + analysis with a found ensemble).

pipeline: build → reference labels (``pipeline.reference_labels``; default: the shipped xTB dataset) → train →
active learning (``pipeline.active_learning``; iteration 0 reuses the train stage) → md → analysis → report.
main: ensemble (``committee=``, else the newest complete one of the system under ``pipeline.search_outputs``,
else the embedded default) → md → analysis → report.

Each stage runs in the stage cache (deepeut.pipeline.cache) and is reused when finished; the run directory gets
``plan.txt``, ``pipeline.json`` (every stage: folder, key, reused, wall time, result), one symlink per stage and
``report.md`` / ``report.html``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from deepeut.config.schema import Config
from deepeut.pipeline.cache import StageCache, StageRecord, file_digest, stage_key, structures_digest
from deepeut.stage_io import Dataset, EnsembleRef, Structures, Trajectories
from deepeut.pipeline.plan import (
    PlanStep,
    al_seconds,
    analysis_seconds,
    check_budget,
    classical_seconds,
    md_seconds,
    n_atoms,
    plan_text,
    label_seconds,
    training_seconds,
)
from deepeut.training.members import MANIFEST
from deepeut.utils.io import read_jsonl, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)


def replace(obj, **changes):
    return dataclasses.replace(obj, **changes)


# --------------------------------------------------------------------------- ensembles
def ensemble_manifests(root: Path, system: str) -> List[Path]:
    """Complete ensembles of ``system`` under ``root``, newest first."""
    found = []
    for path in Path(root).rglob(MANIFEST) if Path(root).exists() else []:
        try:
            m = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if m.get("system") == system and m.get("complete") and m.get("members"):
            found.append(path)
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def test_force_rmse(manifest: Path) -> Tuple[float, int]:
    """(mean member test force RMSE in eV/Å, test frames) from an ensemble manifest; (nan, 0) without metrics."""
    m = json.loads(Path(manifest).read_text())
    rmse = [x.get("test_metrics", {}).get("forces_rmse") for x in m.get("members", [])]
    rmse = [r for r in rmse if r is not None]
    return (float(np.mean(rmse)) if rmse else float("nan")), int(m.get("dataset", {}).get("n_test", 0))


ENSEMBLE_RULE = (
    "validated at this scale without failure first (stage=validate), then the lowest mean member test force RMSE"
)


def validation_status(ensemble: Path, scale: str) -> Tuple[bool, str]:
    """(passed, text) of the ensemble's validation record at ``scale`` (``validation_<scale>.json``)."""
    path = Path(ensemble) / f"validation_{scale}.json"
    if not path.exists():
        return False, f"never validated at scale {scale}"
    v = json.loads(path.read_text())
    drivers = v.get("drivers", [])
    failed = [d["driver"] for d in drivers if d.get("failed")]
    stable = min((d.get("stable_ps", 0.0) for d in drivers), default=0.0)
    if failed or not drivers:
        return False, f"validation at scale {scale} failed ({', '.join(failed) or 'no driver'}; {stable:.3g} ps)"
    return True, f"validated at scale {scale}: no failure in {stable:.3g} ps"


def find_ensemble(cfg: Config) -> Tuple[Path, str]:
    """The ensemble the main job runs with, and why: ``committee=`` when given; else, among the complete ensembles of
    the system under ``pipeline.search_outputs`` and the embedded default, one validated at the run's scale without
    failure first, then the lowest mean member test force RMSE (the test sets differ between ensembles: the
    printed numbers say on how many frames)."""
    from deepeut.training.embedded import embedded_ensemble
    from deepeut.training.potential import resolve_ensemble

    if cfg.committee == "embedded":
        return embedded_ensemble(cfg.system.name), "the embedded default (committee=embedded)"
    if cfg.committee:
        return resolve_ensemble(cfg.committee, Path("."), cfg.system), "committee="
    default = embedded_ensemble(cfg.system.name)
    scored = []
    for path in [default / MANIFEST, *ensemble_manifests(Path(cfg.pipeline.search_outputs), cfg.system.name)]:
        rmse, n_test = test_force_rmse(path)
        if np.isfinite(rmse):
            passed, text = validation_status(path.parent, cfg.scale.name)
            scored.append((not passed, rmse, n_test, path.parent, text))
    _, rmse, n_test, best, text = min(scored, key=lambda x: x[:2])
    kind = "the embedded default" if best == default else f"found under {cfg.pipeline.search_outputs}/"
    return best, (
        f"{kind}; rule: {ENSEMBLE_RULE} among {len(scored)} complete {cfg.system.name} ensemble(s) "
        f"(embedded + {cfg.pipeline.search_outputs}/): {rmse:.3f} eV/Å on {n_test} test frames; {text}"
    )


def seconds_per_md_step(cfg: Config, ensemble: Path, calls: int = 3) -> Optional[float]:
    """Median time of ``calls`` energy+force calls of the ensemble on a freshly built box, after one warm-up call
    (the first call compiles and allocates): one busy moment cannot flip a run between allowed and refused."""
    from deepeut.md.engines import Potential
    from deepeut.systems.box import build_box

    try:
        atoms = build_box(cfg.system, cfg.scale.n_ion_pairs, cfg.build).atoms
        potential = Potential(Path(ensemble), cfg.md.ensemble_member, cfg.device, cfg.md.neighbor_skin_A)
        atoms.calc = potential.ase_calculator()
        atoms.get_forces()
        times = []
        for k in range(calls):
            atoms.rattle(1e-3, seed=k)
            t0 = time.perf_counter()
            atoms.get_forces()
            times.append(time.perf_counter() - t0)
        return float(np.median(times))
    except Exception as exc:  # the estimate must never stop a run; the stage itself reports real problems
        log.debug("MD timing failed: %s", exc)
        return None


# --------------------------------------------------------------------------- stages
def uses_classical_starts(cfg: Config) -> bool:
    """MD starts from the classical stage's liquids unless ``pipeline.classical`` is off or starts are given."""
    return cfg.pipeline.classical and not (cfg.md.start or cfg.md.starts)


def classical_starts(cfg: Config, run: Callable, replicas: int) -> Tuple[Structures, Dict[str, str]]:
    """The start structures of ``cfg``'s MD: ``replicas`` classical liquids (stage=classical, cached) and the
    input key they add; the command line's ``md.starts`` / ``md.start`` (keyed by content) when given or
    ``pipeline.classical`` is off (none: fresh packed boxes, no key)."""
    from deepeut.classical.task import run_classical
    from deepeut.md.task import starts_from_config

    if not uses_classical_starts(cfg):
        given = starts_from_config(cfg)
        return given, ({"starts": structures_digest(given.paths)} if given else {})
    n = max(replicas, 1)
    rec = run("classical", cfg, {"replicas": str(n)}, lambda d: run_classical(cfg, n, d).to_json())
    return Structures.of([rec.dir / f"replica_{r}" / "box.extxyz" for r in range(n)]), {"classical": rec.key}


def classical_replicas(cfg: Config) -> int:
    """Classical liquids one pipeline needs (one stage serves the reference MD, AL exploration and production MD)."""
    return max(cfg.md.replicas, cfg.al.explore_runs if cfg.pipeline.active_learning else 1, 1)


def md_and_analysis(cfg: Config, ensemble: Path, run: Callable, classical: Optional[int] = None) -> None:
    """Production MD with ``ensemble`` (from ``classical`` classical liquids, default one per replica), then the
    analysis of its replicas."""
    from deepeut.analysis.task import run_analysis
    from deepeut.md.engines import resolve_potential
    from deepeut.md.task import run_md
    from deepeut.training.potential import ensemble_digest

    starts, start_key = classical_starts(cfg, run, classical or cfg.md.replicas)
    m = cfg.md
    potential = resolve_potential(cfg, str(ensemble), m.ensemble_member, Path("."))
    md_rec = run(
        "md",
        cfg,
        {"ensemble": ensemble_digest(ensemble), **start_key},
        lambda d: run_md(cfg, potential, d, starts).to_json(),
    )
    trajs = Trajectories.of(sorted(md_rec.dir.glob("replica_*/trajectory.h5")))
    run("analysis", cfg, {"md": md_rec.key}, lambda d: run_analysis(cfg, trajs, d))


class Runner:
    """Runs stages through the cache, links each into the run directory and keeps their records."""

    def __init__(self, cfg: Config, out: Path):
        self.cfg, self.out = cfg, out
        self.cache = StageCache(cfg.pipeline.cache_dir, cfg.system.name, cfg.pipeline.lock_wait_s)
        self.records: List[StageRecord] = []

    def reused(self, stage: str, cfg: Config, inputs: Dict[str, str]) -> bool:
        return self.cache.finished(stage, stage_key(cfg, stage, inputs)) is not None

    def __call__(self, stage: str, cfg: Config, inputs: Dict[str, str], func: Callable[[Path], Dict]) -> StageRecord:
        rec = self.cache.run(cfg, stage, inputs, func)
        self.records.append(rec)
        link = self.out / stage
        if link.is_symlink() or not link.exists():
            if link.is_symlink():
                link.unlink()
            os.symlink(rec.dir.resolve(), link)
        self.save()
        return rec

    def save(self, **extra) -> None:
        write_json_atomic(
            self.out / "pipeline.json",
            {
                "stage": self.cfg.stage.name,
                "system": self.cfg.system.name,
                "stages": [r.to_json() for r in self.records],
                **extra,
            },
        )


def start(cfg: Config, out: Path, title: str, steps: List[PlanStep]) -> bool:
    """Print and save the plan; check the time budget. False: ``pipeline.dry_run`` (stop here)."""
    text = plan_text(cfg, title, steps)
    print(text, flush=True)
    write_text_atomic(out / "plan.txt", text + "\n")
    check_budget(cfg, steps)
    return not cfg.pipeline.dry_run


def finish(runner: Runner, extra: Dict) -> Dict:
    from deepeut.report import write_report

    runner.save(**extra)
    paths = write_report(runner.cfg, runner.out, runner.records, extra)
    print(f"report: {paths['md']}", flush=True)
    stopped = [x for r in runner.records for x in (r.result or {}).get("stopped_early", [])]
    if stopped:
        print(
            f"WARNING: MD stopped early ({'; '.join(stopped)}): the analysis covers the frames before the "
            "failed safety check; see 'MD stability' in the report",
            flush=True,
        )
    return {"report": str(paths["md"]), "stages": [r.to_json() for r in runner.records], **extra}


def dataset_input(cfg: Config) -> Tuple[Optional[str], str, int]:
    """(store, key, frames) of the training data when ``pipeline.reference_labels`` is off: the shipped dataset."""
    from deepeut.data.demo import demo_files

    files = demo_files(cfg.system.name)
    rows = read_jsonl(files["manifest"])
    return None, file_digest(files["manifest"]), sum(1 for r in rows if r.get("split") == "train")


def labeling_config(cfg: Config) -> Config:
    """The config of build, reference labels, training and active learning: the box of
    ``pipeline.reference_ion_pairs`` (the paper's 8-ion-pair FPMD box) when set, else ``scale``."""
    n = cfg.pipeline.reference_ion_pairs
    if n is None or n == cfg.scale.n_ion_pairs:
        return cfg
    return replace(cfg, scale=replace(cfg.scale, name=f"{n}-ion-pairs", n_ion_pairs=n))


def pipeline_plan(full: Config, cfg: Config, runner: Runner, n_frames: int) -> List[PlanStep]:
    """The steps of :func:`run_pipeline`; ``cfg`` is the labeling config (:func:`labeling_config`)."""
    t, atoms = cfg.train, n_atoms(cfg)
    steps = [PlanStep("build", f"pack a {atoms}-atom box (packmol + RDKit)", 10, runner.reused("build", cfg, {}))]
    steps += classical_plan(cfg, atoms, classical_replicas(full))
    if cfg.pipeline.reference_labels:
        r = cfg.reference
        frames = r.n_train + r.n_test
        start = "from the first classical liquid" if uses_classical_starts(cfg) else "from the packed box"
        steps.append(
            PlanStep(
                "reference",
                f"{r.duration_ps:g} ps {cfg.labeler.name} MD {start}, {frames} labeled frames",
                r.duration_ps * 1000 / r.timestep_fs * label_seconds(cfg, atoms),
            )
        )
    else:
        steps.append(
            PlanStep(
                "data",
                f"the shipped {cfg.system.name} GFN2-xTB dataset ({n_frames} training frames)",
                0,
                note="shipped",
            )
        )
    steps.append(
        PlanStep(
            "train",
            f"{t.ensemble_size} × {cfg.model.name}, ≤ {t.max_epochs} epochs",
            training_seconds(cfg, atoms, n_frames),
        )
    )
    if cfg.pipeline.active_learning:
        a = cfg.al
        steps.append(
            PlanStep(
                "al",
                f"{a.max_iterations} iteration(s): {a.explore_runs} × {a.explore_ps:g} ps at "
                f"{a.explore_temperature_K:g} K, ≤ {a.n_calibration}+{a.max_selected or 'all'} "
                f"{cfg.labeler.name} labels, retrain",
                al_seconds(cfg, atoms, n_frames),
            )
        )
    separate = cfg.scale.n_ion_pairs != full.scale.n_ion_pairs  # production MD at another box size
    steps += md_analysis_plan(full, n_atoms(full), None, classical=separate)
    return steps


def classical_plan(cfg: Config, atoms: int, replicas: int) -> List[PlanStep]:
    if not uses_classical_starts(cfg):
        return []
    c = cfg.classical
    return [
        PlanStep(
            "classical",
            f"{max(replicas, 1)} × GAFF2 liquid (OpenMM {cfg.device}): heat, {c.npt_ps:g} ps "
            f"NPT, {c.nvt_ps:g} ps NVT at {c.temperature_K:g} K",
            classical_seconds(cfg, atoms, max(replicas, 1)),
        )
    ]


def md_analysis_plan(
    cfg: Config, atoms: int, seconds_per_step: Optional[float], classical: bool = True
) -> List[PlanStep]:
    """Classical liquids (unless the caller plans them), production MD, analysis and report."""
    m = cfg.md
    driver = "committee mean" if m.ensemble_member is None else f"member {m.ensemble_member}"
    start = (
        "from the classical liquids"
        if uses_classical_starts(cfg)
        else f"from {m.start}"
        if m.start
        else "from md.starts"
        if m.starts
        else "from fresh packmol boxes"
    )
    md_step = PlanStep(
        "md",
        f"{m.replicas} × {m.duration_ps:g} ps NVT ({m.engine}, {m.thermostat}, {driver}) at "
        f"{m.temperature_K:g} K, {m.timestep_fs:g} fs, {start}",
        md_seconds(cfg, atoms, seconds_per_step),
    )
    return (classical_plan(cfg, atoms, m.replicas) if classical else []) + [
        md_step,
        PlanStep("analysis", "RDFs, CNs, D, t+, lifetimes, τ_R, σ, VCCFs, Tables I–III", analysis_seconds(cfg, atoms)),
        PlanStep("report", "report.md + report.html", 2),
    ]


def run_pipeline(cfg: Config, out: Path) -> Dict:
    """The whole workflow (see the module docstring): each stage's typed output is the next one's input."""
    from deepeut.active_learning.loop import run_active_learning
    from deepeut.labeling.task import run_reference
    from deepeut.systems.task import build
    from deepeut.training.task import run_train

    runner = Runner(cfg, out)
    lab = labeling_config(cfg)
    store, data_key, n_frames = (
        dataset_input(lab) if not cfg.pipeline.reference_labels else (None, "", lab.reference.n_train)
    )
    if not start(cfg, out, "pipeline", pipeline_plan(cfg, lab, runner, n_frames)):
        return {"plan": str(out / "plan.txt")}
    box = runner("build", lab, {}, lambda d: build(lab, d))
    n_classical = classical_replicas(cfg)
    if cfg.pipeline.reference_labels:  # the reference MD starts from the first classical liquid (else the box)
        starts, start_key = classical_starts(lab, runner, n_classical)
        ref_start = starts.paths[0] if starts else box.dir / "box.extxyz"
        ref = runner(
            "reference",
            lab,
            {"build": box.key, **start_key},
            lambda d: run_reference(lab, ref_start, Dataset(d / "data"), d).to_json(),
        )
        store, data_key = ref.dir / "data", ref.key
    data = Dataset(Path(store) if store else None)
    trained = runner("train", lab, {"data": data_key}, lambda d: run_train(lab, data, d).to_json())
    ensemble = trained.dir
    if cfg.pipeline.active_learning:
        starts, start_key = classical_starts(lab, runner, n_classical)
        al = runner(
            "al",
            lab,
            {"data": data_key, "train": trained.key, **start_key},
            lambda d: run_active_learning(lab, data, EnsembleRef(trained.dir), starts, d).to_json(),
        )
        ensemble = Path(al.result["ensemble"])
    md_and_analysis(cfg, ensemble, runner, n_classical)
    return finish(runner, {"ensemble": str(ensemble), "ensemble_origin": "trained by this pipeline"})


def validate_job(cfg: Config, out: Path) -> Dict:
    """``stage=validate``: the ensemble (``committee=``, else the main job's rule) from ``validate.replicas``
    classical liquids (stage=classical through the stage cache), then deepeut.validation.task.run_validate."""
    from deepeut.validation.task import run_validate

    ensemble, origin = find_ensemble(cfg)
    cache = StageCache(cfg.pipeline.cache_dir, cfg.system.name, cfg.pipeline.lock_wait_s)
    starts, _ = classical_starts(
        cfg, lambda stage, c, inputs, func: cache.run(c, stage, inputs, func), cfg.validate.replicas
    )
    return run_validate(cfg, EnsembleRef(Path(ensemble)), origin, starts, out)


def main_job(cfg: Config, out: Path) -> Dict:
    """Production MD and its analysis for ``cfg.system`` with a found (or the embedded) ensemble; never trains."""
    runner = Runner(cfg, out)
    ensemble, origin = find_ensemble(cfg)
    print(f"ensemble: {ensemble} ({origin})", flush=True)
    atoms = n_atoms(cfg)
    # the plan names (and costs) the model the ensemble holds, not the model group of the config
    model = json.loads((Path(ensemble) / MANIFEST).read_text()).get("model", {}).get("name") or cfg.model.name
    plan_cfg = replace(cfg, model=replace(cfg.model, name=model))
    if not start(plan_cfg, out, "main job", md_analysis_plan(plan_cfg, atoms, seconds_per_md_step(cfg, ensemble))):
        return {"plan": str(out / "plan.txt")}
    md_and_analysis(cfg, ensemble, runner)
    return finish(runner, {"ensemble": str(ensemble), "ensemble_origin": origin})
