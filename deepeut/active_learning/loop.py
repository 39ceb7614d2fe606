"""``stage=al``: the paper's active-learning loop, resumable step by step.

Layout (``out`` = the stage folder)::

    al_state.json           {"iteration", "step", "stopped", "history"} — rewritten atomically after every step
    data/                   the dataset store (initial data imported once, then calibration and selected labels)
    iter_<k>/train/         the ensemble of iteration k (stage=train layout; iteration 0 trains on the initial data,
                            or is a link to al.initial_ensemble, retrained first when the store holds training
                            labels it never saw)
    iter_<k>/explore/       exploration MD (stage=md layout, al.explore_* settings; a run that fails a safety check
                            keeps its frames up to the failure: md.on_unstable=truncate)
    iter_<k>/uncertainty.npz  per exploration frame: run, frame, max u and per-atom u (eV/Å)
    iter_<k>/calibration.json q̂, level, α, coverage on the store's test frames, scores
    iter_<k>/fig2_calibration.png  per-structure force RMSE vs max u and vs max ũ (Fig. 2)
    iter_<k>/selection.json   candidates, accepted and rejected frames with reasons, ũ of each
    al_summary.txt          per-iteration table (dataset size, q̂, coverage, selected/rejected/labeled/failed, RMSE)

Steps of an iteration: train → explore → uncertainty → calibrate → select → label; the loop stops when fewer
than ``al.stop_below`` frames pass the screening, or after ``al.max_iterations``, and then retrains once more on
all labels (``iter_<last + 1>/train``, recorded as ``final_ensemble`` in the state) when any were added.
A killed loop restarts at the
step it was in; labels already in the store are never recomputed (content-hash keys).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from deepeut.config.schema import Config
from deepeut.stage_io import ALOutput, Dataset, EnsembleRef, Structures
from deepeut.utils.io import write_json_atomic, write_text_atomic
from deepeut.errors import StageError

log = logging.getLogger(__name__)

STEPS = ["train", "explore", "uncertainty", "calibrate", "select", "label"]


class ActiveLearningError(StageError):
    """The loop cannot continue (e.g. exploration produced no frames); the message says why."""


def load_state(out: Path) -> Dict:
    p = out / "al_state.json"
    return (
        json.loads(p.read_text()) if p.exists() else {"iteration": 0, "step": "train", "stopped": False, "history": []}
    )


def save_state(out: Path, state: Dict) -> None:
    write_json_atomic(out / "al_state.json", state)


def initial_store(cfg: Config, dataset: Dataset, out: Path) -> Path:
    """The store of ``dataset`` when it has one; else a store in ``out/data`` holding the shipped demo dataset
    (imported once)."""
    from deepeut.data.demo import demo_files
    from deepeut.data.store import open_store
    from deepeut.data.label import structure_hash
    from deepeut.labeling.importer import read_labeled_extxyz

    if dataset.store is not None:
        return Path(dataset.store)
    root = out / "data"
    store = open_store(root)
    if len(store) == 0:
        files = demo_files(cfg.system.name)
        for split in ("train", "test"):
            for k, (atoms, label) in enumerate(read_labeled_extxyz(files[split])):
                store.add(
                    structure_hash(atoms, "demo"),
                    atoms,
                    label,
                    split,
                    {"kind": "demo", "system": cfg.system.name, "frame": k},
                )
        store.export()
    store.close()
    return root


def train_labels_unseen_by(ensemble: Path, store: Path) -> int:
    """Training structures of the store beyond those ``ensemble`` trained on (its manifest's ``dataset.n_train``;
    0 when it does not say): labels of a loop that was killed after labeling, restored from a campaign snapshot."""
    from deepeut.data.store import open_store
    from deepeut.training.members import MANIFEST

    seen = json.loads((Path(ensemble) / MANIFEST).read_text()).get("dataset", {}).get("n_train")
    if seen is None:
        return 0
    s = open_store(store)
    try:
        return max(0, len(s.rows("train")) - int(seen))
    finally:
        s.close()


def step_train(cfg: Config, it_dir: Path, store: Path, iteration: int, initial: Optional[EnsembleRef] = None) -> None:
    """Train iteration k's ensemble on the store; ``al.retrain=warm`` starts from iteration k−1's members.
    Iteration 0 links ``initial`` when given, unless the store holds training labels ``initial`` never saw: then it
    is retrained on them first (warm from ``initial`` with ``al.retrain=warm``), so that the loop does not explore
    again with a committee that ignores its last labels."""
    from deepeut.training.task import run_train

    init = None
    if iteration == 0 and initial is not None:
        if (it_dir / "train").is_symlink():  # linked already
            return
        unseen = train_labels_unseen_by(initial.path, store)
        if unseen == 0:
            it_dir.mkdir(parents=True, exist_ok=True)
            if not (it_dir / "train").exists():
                (it_dir / "train").symlink_to(Path(initial.path).resolve())
            return
        log.info("%s trained on %d fewer training labels than the store holds: retraining first", initial.path, unseen)
        init = initial if cfg.al.retrain == "warm" else None
    elif cfg.al.retrain == "warm" and iteration > 0:
        init = EnsembleRef(it_dir.parent / f"iter_{iteration - 1}" / "train")
    run_train(cfg, Dataset(store), it_dir / "train", init)


def committee_members(train_dir: Path) -> List[Dict]:
    """The members of a trained committee with their test metrics: the finished members' records, or, for a packed
    committee (packages only, e.g. a campaign snapshot), those in its manifest."""
    from deepeut.training.members import MANIFEST, finished_members

    return finished_members(train_dir) or json.loads((train_dir / MANIFEST).read_text()).get("members", [])


def explore_config(cfg: Config, it_dir: Path, iteration: int) -> Config:
    # every frame is committed at once (a run that flies apart keeps all frames before it); broken molecules stop
    # a run only with al.explore_stop_on_broken (else the screening rejects such frames with their reason)
    every = max(1, int(round(cfg.al.explore_save_every_fs / cfg.md.timestep_fs)))
    md = dataclasses.replace(
        cfg.md,
        name="al_explore",
        temperature_K=cfg.al.explore_temperature_K,
        duration_ps=cfg.al.explore_ps,
        save_every_fs=cfg.al.explore_save_every_fs,
        replicas=cfg.al.explore_runs,
        seed=cfg.al.seed + 1000 * iteration,
        check_molecules_every=1 if cfg.al.explore_stop_on_broken else 0,
        on_unstable="truncate",
        ensemble_member=0,
        checkpoint_every_steps=every,
    )
    build = dataclasses.replace(cfg.build, seed=cfg.build.seed + 100 * iteration)
    return dataclasses.replace(cfg, md=md, build=build)


def step_explore(cfg: Config, it_dir: Path, iteration: int, starts: Structures) -> None:
    """Exploration MD through the MD stage (deepeut.md.task.run_md: ``md.engine``, member 0 of this iteration's
    ensemble) from ``starts`` (none: fresh boxes); a run that fails a safety check keeps its frames up to the
    failure (md.on_unstable=truncate)."""
    from deepeut.md.engines import resolve_potential
    from deepeut.md.task import run_md

    ecfg = explore_config(cfg, it_dir, iteration)
    out = it_dir / "explore"
    potential = resolve_potential(cfg, str(it_dir / "train"), ecfg.md.ensemble_member, out)
    run_md(ecfg, potential, out, starts)


def exploration_frames(it_dir: Path):
    """(run, frame, atoms) of every committed exploration frame."""
    from deepeut.trajectory.h5md import H5MDTrajectory

    out = []
    for path in sorted((it_dir / "explore").glob("replica_*/trajectory.h5")):
        run = int(path.parent.name.split("_")[1])
        with H5MDTrajectory(path) as tr:
            for k in range(tr.n_frames):
                atoms = tr.atoms(k)
                if tr.molecule is not None:
                    atoms.arrays["molecule"] = np.asarray(tr.molecule)
                out.append((run, k, atoms))
    return out


def step_uncertainty(cfg: Config, it_dir: Path) -> None:
    from deepeut.training.potential import Ensemble

    frames = exploration_frames(it_dir)
    if not frames:
        raise ActiveLearningError(
            f"{it_dir / 'explore'}: the exploration runs produced no frames (all flew apart "
            "at once; see stopped_early in their md.json)"
        )
    ens = Ensemble.load(it_dir / "train", device=cfg.device)
    pred = ens.predict([a for _, _, a in frames], progress=True)
    u = pred.uncertainty()
    np.savez_compressed(
        it_dir / "uncertainty.npz",
        run=np.array([r for r, _, _ in frames]),
        frame=np.array([k for _, k, _ in frames]),
        max_u_eV_A=np.array([x.max() for x in u]),
        u_eV_A=np.array(u, dtype=object),
        energy_eV=pred.mean_energies,
        allow_pickle=True,
    )


def _label(cfg: Config, store_root: Path, items) -> Dict:
    from deepeut.data.store import open_store
    from deepeut.labeling.runner import label_structures, labeler_spec

    store = open_store(store_root)
    try:
        report = label_structures(
            items, labeler_spec(cfg.labeler), store, cfg.labeler.executor, cfg.labeler.failure_budget
        )
        store.export()
    finally:
        store.close()
    return report.as_dict()


def step_calibrate(cfg: Config, it_dir: Path, store_root: Path, iteration: int) -> Dict:
    """Label a random subset of exploration frames (split 'calibration'), compute q̂, the coverage of ũ on the store's
    test frames and on held-out exploration frames (each calibration frame held out in turn)."""
    from deepeut.active_learning.conformal import (
        coverage,
        held_out_frame_coverage,
        min_calibration_points,
        prediction_error,
        q_hat,
        scores,
    )
    from deepeut.labeling.runner import LabelItem
    from deepeut.training.evaluate import per_element_force_metrics
    from deepeut.training.potential import Ensemble

    frames = exploration_frames(it_dir)
    rng = np.random.default_rng(cfg.al.seed + iteration)
    pick = sorted(rng.choice(len(frames), size=min(cfg.al.n_calibration, len(frames)), replace=False).tolist())
    items = [
        LabelItem(
            frames[k][2],
            "calibration",
            {"kind": "al_calibration", "iteration": iteration, "run": frames[k][0], "frame": frames[k][1]},
        )
        for k in pick
    ]
    label_report = _label(cfg, store_root, items)
    from deepeut.data.store import open_store

    store = open_store(store_root)
    cal = [
        a for a in store.read("calibration") if json.loads(a.info.get("source") or "{}").get("iteration") == iteration
    ]
    test = store.read("test")
    store.close()
    ens = Ensemble.load(it_dir / "train", device=cfg.device)

    def errors_and_u(atoms_list):
        pred = ens.predict(atoms_list)
        errs = [prediction_error(a.get_forces(), f) for a, f in zip(atoms_list, pred.mean_forces)]
        return errs, pred.uncertainty(), pred

    e_cal, u_cal, p_cal = errors_and_u(cal)
    cal_scores = scores(e_cal, u_cal, cfg.al.level)
    q = q_hat(cal_scores, cfg.al.alpha, cfg.al.quantile, n_structures=len(cal))
    e_test, u_test, p_test = errors_and_u(test)
    cov = coverage(e_test, u_test, q, cfg.al.level)
    cov_explore = held_out_frame_coverage(e_cal, u_cal, cfg.al.alpha, cfg.al.level, cfg.al.quantile)
    if abs(cov - (1 - cfg.al.alpha)) > 0.1:
        log.warning(
            "calibrated coverage on %d test frames is %.2f, far from 1 − α = %.2f", len(test), cov, 1 - cfg.al.alpha
        )
    q_fig = {
        f"{int(round(100 * (1 - a)))} %": q_hat(cal_scores, a, cfg.al.quantile, n_structures=len(cal))
        for a in (0.4, 0.1)
        if min(len(cal_scores), len(cal) if cfg.al.quantile == "paper" else len(cal_scores))
        >= min_calibration_points(a)
    }
    plot_fig2(it_dir / "fig2_calibration.png", test, p_test, q_fig)
    by_element = per_element_force_metrics(
        np.concatenate([a.get_forces() for a in test]),
        np.concatenate(p_test.mean_forces),
        np.concatenate([a.get_chemical_symbols() for a in test]),
    )
    res = {
        "q_hat": q,
        "alpha": cfg.al.alpha,
        "level": cfg.al.level,
        "quantile": cfg.al.quantile,
        "test_force_rmse_by_element_eV_A": {el: m["rmse"] for el, m in by_element.items()},
        "n_calibration_frames": len(cal),
        "frames": [[frames[k][0], frames[k][1]] for k in pick],
        "coverage_test": cov,
        #: each calibration (exploration) frame held out in turn, q̂ from the others: coverage on unseen exploration
        "coverage_exploration_held_out": cov_explore,
        "n_test_frames": len(test),
        "test_max_u_eV_A": [float(u.max()) for u in u_test],
        "labeling": label_report,
    }
    write_json_atomic(it_dir / "calibration.json", res)
    return res


def plot_fig2(path: Path, frames, pred, q_by_confidence: Dict[str, float]) -> None:
    """Fig. 2: per-structure force RMSE vs max u and vs max ũ = q̂·u at each confidence (60 %, 90 %), with the
    diagonal; hexbin density colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rmse = np.array([np.sqrt(((a.get_forces() - f) ** 2).mean()) for a, f in zip(frames, pred.mean_forces)])
    u = np.array([x.max() for x in pred.uncertainty()])
    panels = [("max u (eV/Å)", u)] + [
        (f"max ũ at {c} confidence (q̂ = {q:.2f}) (eV/Å)", q * u) for c, q in q_by_confidence.items()
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4))
    for ax, (lab, x) in zip(np.atleast_1d(axes), panels):
        ax.hexbin(x, rmse, gridsize=25, bins="log", mincnt=1, cmap="viridis")
        hi = float(max(x.max(), rmse.max()))
        ax.plot([0, hi], [0, hi], "k--", lw=0.8)
        ax.set_xlabel(lab, fontsize=9)
        ax.set_ylabel("force RMSE per structure (eV/Å)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def step_select(cfg: Config, it_dir: Path, q: float, test_force_rmse_eV_A: Optional[float] = None) -> Dict:
    """Screen every frame above the threshold (calibration frames excluded); the passed count decides the stop
    rule; the frames to label are then spaced and capped (see deepeut.active_learning.selection)."""
    from deepeut.active_learning.selection import (
        above_threshold,
        contact_candidates,
        screen,
        selection_threshold,
        spaced,
    )
    from deepeut.systems import MoleculeRecognizer
    from deepeut.systems.box import composition

    data = np.load(it_dir / "uncertainty.npz", allow_pickle=True)
    frames = {(r, k): a for r, k, a in exploration_frames(it_dir)}
    energy = dict(zip(zip(data["run"].tolist(), data["frame"].tolist()), data["energy_eV"].tolist()))
    cal = json.loads((it_dir / "calibration.json").read_text())
    calibration = cal.get("frames", [])
    threshold, rule = selection_threshold(
        cfg.al.threshold_kcal_mol_A,
        cfg.al.threshold_rmse_factor,
        test_force_rmse_eV_A,
        cfg.al.threshold_test_quantile,
        [q * u for u in cal.get("test_max_u_eV_A", [])],
    )
    cands = above_threshold(q * data["max_u_eV_A"], data["run"], data["frame"], threshold, exclude=calibration)
    n_uncertain = len(cands)
    if cfg.al.select_contacts_below_A:  # frames the committee agrees on but with a too-short contact
        u_tilde = dict(zip(zip(data["run"].tolist(), data["frame"].tolist()), (q * data["max_u_eV_A"]).tolist()))
        taken = [*map(tuple, calibration), *((c.run, c.frame) for c in cands)]
        cands += contact_candidates(frames, u_tilde, dict(cfg.al.select_contacts_below_A), exclude=taken)
    rec = MoleculeRecognizer.for_system(cfg.system)
    expected = {k: v for k, v in composition(cfg.system, cfg.scale.n_ion_pairs).items() if v}
    min_d = {tuple(sorted(k.split("-"))): v for k, v in cfg.al.min_distance_A.items()}
    passed, rejected = [], []
    for c in cands:
        c.reason = screen(frames[(c.run, c.frame)], energy[(c.run, c.frame)], rec, expected, min_d)
        (rejected if c.reason else passed).append(c)
    accepted = spaced(passed, cfg.al.min_gap_frames, cfg.al.max_selected)
    res = {
        "threshold_eV_A": threshold,
        "threshold_rule": rule,
        "q_hat": q,
        "n_frames": int(len(data["run"])),
        "n_calibration_excluded": len(calibration),
        "n_candidates": len(cands),
        "n_above_threshold": n_uncertain,
        "n_contact_triggered": len(cands) - n_uncertain,
        "contact_limits_A": dict(cfg.al.select_contacts_below_A),
        "n_passed_screening": len(passed),
        "n_to_label": len(accepted),
        "accepted": [dataclasses.asdict(c) for c in accepted],
        "rejected": [dataclasses.asdict(c) for c in rejected],
    }
    write_json_atomic(it_dir / "selection.json", res)
    return res


def step_label(cfg: Config, it_dir: Path, store_root: Path, iteration: int, q: float) -> Dict:
    from deepeut.labeling.runner import LabelItem

    sel = json.loads((it_dir / "selection.json").read_text())
    frames = {(r, k): a for r, k, a in exploration_frames(it_dir)}
    items = [
        LabelItem(
            frames[(c["run"], c["frame"])],
            "train",
            {
                "kind": "al",
                "iteration": iteration,
                "run": c["run"],
                "frame": c["frame"],
                "u_tilde_eV_A": c["max_u_tilde"],
                "trigger": c.get("trigger", "uncertainty"),
                "u_eV_A": c["max_u_tilde"] / q,
                "q_hat": q,
            },
        )
        for c in sel["accepted"]
    ]
    return _label(cfg, store_root, items)


def summary_table(history: List[Dict]) -> str:
    head = (
        f"{'iter':>4}{'dataset':>9}{'explored':>10}{'q̂':>7}{'cov test':>9}{'cov expl':>9}{'thr eV/Å':>10}"
        f"{'selected':>10}{'rejected':>10}{'labeled':>9}{'failed':>8}{'F RMSE eV/Å':>13}{'wall min':>10}"
    )
    lines = [head, "-" * len(head)]
    nan = float("nan")
    for h in history:
        lines.append(
            f"{h['iteration']:>4}{h.get('dataset_size', 0):>9}{h.get('explored', 0):>10}"
            f"{h.get('q_hat', nan):>7.2f}{h.get('coverage', nan):>9.2f}{h.get('coverage_exploration', nan):>9.2f}"
            f"{h.get('threshold_eV_A', nan):>10.3f}"
            f"{h.get('selected', 0):>10}{h.get('rejected', 0):>10}{h.get('labeled', 0):>9}"
            f"{h.get('failed', 0):>8}{h.get('test_force_rmse', nan):>13.3f}"
            f"{sum(h.get('wall_s', {}).values()) / 60:>10.1f}"
        )
    stops = [f"iteration {h['iteration']} stopped the loop: {h['stop']}" for h in history if h.get("stop")]
    return "\n".join(lines + stops)


def active_learning(cfg: Config, out: Path) -> Dict:
    """``stage=al`` from the command line: the data of ``data.store`` (none: the shipped demo dataset), iteration
    0's ensemble from ``al.initial_ensemble`` (none: trained), the starts from ``md.starts`` / ``md.start``."""
    from deepeut.md.task import starts_from_config

    dataset = Dataset(Path(cfg.data.store) if cfg.data.store else None)
    initial = EnsembleRef(Path(cfg.al.initial_ensemble)) if cfg.al.initial_ensemble else None
    return run_active_learning(cfg, dataset, initial, starts_from_config(cfg), out).to_json()


def run_active_learning(
    cfg: Config, dataset: Dataset, initial: Optional[EnsembleRef], starts: Structures, out: Path
) -> ALOutput:
    """Run (or resume) the loop on ``dataset`` from the ensemble ``initial`` (none: iteration 0 trains its own),
    exploring from ``starts``; returns the history and the final ensemble."""
    from deepeut.active_learning.selection import count_reasons, screened_frames, stop_reason
    from deepeut.data.store import open_store
    from deepeut.training.members import objective

    store_root = initial_store(cfg, dataset, out)
    state = load_state(out)
    while not state.get("done"):
        k = state["iteration"]
        it_dir = out / f"iter_{k}"
        rec = next((h for h in state["history"] if h["iteration"] == k), None)
        if rec is None:
            rec = {"iteration": k}
            state["history"].append(rec)
        step = state["step"]
        log.info("active learning iteration %d: %s", k, step)
        t0 = time.perf_counter()
        if step == "train":
            step_train(cfg, it_dir, store_root, k, initial)
            rec["test_force_rmse"] = objective(committee_members(it_dir / "train"))
            store = open_store(store_root)
            rec["dataset_size"] = len(store)
            store.close()
            state["final_ensemble"] = str(it_dir / "train")
            if state["stopped"] or k >= cfg.al.max_iterations:  # the retrained ensemble on all labels is the result
                rec.setdefault("wall_s", {})["train"] = round(time.perf_counter() - t0, 1)
                state["done"] = True
                save_state(out, state)
                break
        elif step == "explore":
            step_explore(cfg, it_dir, k, starts)
        elif step == "uncertainty":
            step_uncertainty(cfg, it_dir)
        elif step == "calibrate":
            cal = step_calibrate(cfg, it_dir, store_root, k)
            rec.update(
                q_hat=cal["q_hat"],
                coverage=cal["coverage_test"],
                coverage_exploration=cal["coverage_exploration_held_out"],
                test_force_rmse_by_element_eV_A=cal["test_force_rmse_by_element_eV_A"],
            )
        elif step == "select":
            sel = step_select(cfg, it_dir, rec["q_hat"], rec.get("test_force_rmse"))
            rec.update(
                explored=sel["n_frames"],
                calibration_excluded=sel["n_calibration_excluded"],
                threshold_eV_A=sel["threshold_eV_A"],
                threshold_rule=sel["threshold_rule"],
                above_threshold=sel.get("n_above_threshold", sel["n_candidates"]),
                contact_triggered=sel.get("n_contact_triggered", 0),
                selected=sel["n_passed_screening"],
                to_label=len(sel["accepted"]),
                rejected=len(sel["rejected"]),
                rejected_by=count_reasons([c["reason"] for c in sel["rejected"]]),
            )
        elif step == "label":
            lab = step_label(cfg, it_dir, store_root, k, rec["q_hat"])
            rec.update(labeled=lab["n_labeled"] + lab["n_skipped"], failed=lab["n_failed"])
            why = stop_reason(
                rec["selected"],
                screened_frames(rec),
                cfg.al.stop_below,
                cfg.al.stop_below_fraction,
            )
            if why:
                state["stopped"] = True
                rec["stop"] = why
            if rec["labeled"] == 0 and (state["stopped"] or k + 1 >= cfg.al.max_iterations):
                state["done"] = True  # nothing new to retrain on: this iteration's ensemble is the result
                save_state(out, state)
                break
        rec.setdefault("wall_s", {})[step] = round(rec.get("wall_s", {}).get(step, 0.0) + time.perf_counter() - t0, 1)
        nxt = STEPS.index(step) + 1
        if nxt == len(STEPS):
            state["iteration"], state["step"] = k + 1, "train"
        else:
            state["step"] = STEPS[nxt]
        save_state(out, state)
    table = summary_table(state["history"])
    write_text_atomic(out / "al_summary.txt", table + "\n")
    print(table)
    from deepeut.utils.tracking import log_results

    log_results(
        cfg,
        out,
        "al",
        {
            f"iter_{h['iteration']}": {k: v for k, v in h.items() if isinstance(v, (int, float))}
            for h in state["history"]
        },
        table,
    )
    final = state.get("final_ensemble")
    return ALOutput(EnsembleRef(Path(final)) if final else None, state["history"], state["stopped"])
