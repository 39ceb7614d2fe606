"""``stage=validate``: can the ensemble run MD, and how accurate is it where its own MD goes?

For each driver of ``validate.drivers`` (the committee mean, single members) NVT MD at the system's
temperature runs from the classical liquids (the pipeline's ``validate_job`` hands them over) with
``md.on_unstable=truncate``; a run fails at its first failed safety check (deepeut.md.safety: non-finite or
too large forces, temperature, changed molecules) or at its first intermolecular contact shorter than
``validate.min_contact_A``. Then ``validate.n_label_frames`` frames drawn from these runs (never training data)
are labeled fresh with ``labeler`` and every member and the mean are scored on them: force RMSE overall and per
element, and the coverage of the calibrated uncertainty ũ = q̂·u on frames the calibration did not see (each frame
held out in turn, q̂ from the others; deepeut.active_learning.conformal.held_out_frame_coverage).

Output: ``validation.json`` (per driver: time to failure and reason, ps run, ⟨T⟩, drift, closest Li–O and H···O
over the run and the fraction of its frames with such a contact below ``validate.min_contact_A``,
Li–O first peak and coordination number, and for a failed run the committee's uncertainty on its last
``validate.warning_frames`` frames; force errors; coverage), ``validation.txt``, the figures of
deepeut.validation.figures with ``captions.json``, and ``driver_<d>/`` MD folders (each replica with
``contacts.csv``: closest contacts per checked frame, and ``li_o_rdf.csv``).
Units: ps, Å, K, eV/Å (kcal/mol/Å beside), kcal/mol/atom/ns.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from deepeut.config.schema import Config
from deepeut.stage_io import EnsembleRef, Structures
from deepeut.utils.io import json_safe, write_csv, write_json_atomic, write_text_atomic
from deepeut.utils.units import kcal_per_mol_to_ev
from deepeut.utils.io import display_path

log = logging.getLogger(__name__)


def driver_member(driver: str):
    return None if driver == "committee" else int(driver)


def first_contact_failure(traj_path: Path, limits: Dict[str, float], every: int) -> Dict:
    """Intermolecular contacts over the whole run (every ``every``-th frame): the closest distance per pair (Å),
    the fraction of checked frames with a contact below its limit per pair (a graded measure beside the time of the
    first one), the time (ps) and reason of the first contact below its limit (None: none), and the closest
    distance of every checked frame (``series``: time_ps and one list per pair, Å)."""
    from deepeut.trajectory.h5md import H5MDTrajectory
    from deepeut.utils.geometry import closest_contacts, contact_violations

    first: Dict = {"time_ps": None, "reason": ""}
    series: Dict[str, List[float]] = {"time_ps": [], **{pair: [] for pair in limits}}
    with H5MDTrajectory(traj_path) as tr:
        times = tr.times_ps
        for k in range(0, tr.n_frames, every):
            c = closest_contacts(tr.positions(slice(k, k + 1))[0], tr.numbers, tr.cell, tr.molecule)
            series["time_ps"].append(float(times[k]))
            for pair in limits:
                series[pair].append(float(c.get(pair, np.inf)))
            bad = contact_violations(c, limits)
            if bad and first["time_ps"] is None:
                first = {"time_ps": float(times[k]), "reason": f"contact {bad[0]}"}
    closest = {pair: min(series[pair]) for pair in limits if series[pair]}
    n_checked = max(len(series["time_ps"]), 1)
    fraction = {pair: sum(d < limit for d in series[pair]) / n_checked for pair, limit in limits.items()}
    return {"closest_A": closest, "frames_below_limit_fraction": fraction, **first, "series": series}


def molecule_failure(traj_path: Path, recognizer, every: int) -> Optional[tuple]:
    """(time ps, reason) of the first stored frame (every ``every``-th) whose molecules ``recognizer`` (deepeut's
    MoleculeRecognizer) does not find intact, else None: the whole run judged by the current definition of a
    changed molecule, also where the MD ran or was resumed under another version of it or checked fewer frames."""
    from deepeut.trajectory.h5md import H5MDTrajectory

    with H5MDTrajectory(traj_path) as tr:
        times = tr.times_ps
        for k in range(0, tr.n_frames, every):
            rec = recognizer.recognise(tr.positions(slice(k, k + 1))[0], tr.numbers, tr.cell, tr.molecule)
            if not rec.ok:
                return float(times[k]), f"molecules changed: {'; '.join(rec.problems[:2])}"
    return None


def temperature_failure(traj_path: Path, md, v) -> Optional[tuple]:
    """(time ps, reason) when a ``validate.temperature_window_ps`` mean leaves the target by more than
    ``validate.temperature_sigmas`` × T √(2/N_f) (deepeut.md.safety.temperature_window_failure), else None."""
    from deepeut.md.safety import temperature_window_failure
    from deepeut.trajectory.h5md import H5MDTrajectory

    with H5MDTrajectory(traj_path) as tr:
        return temperature_window_failure(
            tr.times_ps,
            tr.observable("temperature"),
            md.temperature_K,
            tr.n_atoms,
            v.temperature_window_ps,
            v.temperature_sigmas,
        )


def li_o_structure(traj_path: Path, stride: int = 5, curves_csv: Optional[Path] = None) -> Dict:
    """Li–O (all O) intermolecular g(r) first peak (Å), first minimum r_c (Å) and N(r_c) from a trajectory; the
    curves r (Å), g(r), N(r) into ``curves_csv`` when given."""
    from deepeut.analysis.base import Frame
    from deepeut.analysis.rdf import RDFAccumulator
    from deepeut.trajectory.h5md import H5MDTrajectory
    from deepeut.utils.geometry import plane_distances

    with H5MDTrajectory(traj_path) as tr:
        numbers = np.asarray(tr.numbers)
        li, o = np.nonzero(numbers == 3)[0], np.nonzero(numbers == 8)[0]
        r_max = min(6.0, 0.5 * float(plane_distances(tr.cell).min()) - 1e-6)
        acc = RDFAccumulator({"Li-O": (li, o)}, r_max, 120, molecule=tr.molecule)
        frames = (Frame(tr.positions(slice(k, k + 1))[0], tr.cell) for k in range(0, tr.n_frames, stride))
        res = acc.run(frames)["Li-O"]
    peak = float(res.r[int(np.argmax(res.g))]) if np.any(res.g > 0) else float("nan")
    if curves_csv is not None:
        write_csv(curves_csv, ["r_A", "g", "N"], [res.r, res.g, res.cn])
    return {"first_peak_A": peak, "r_c_A": res.first_min_A, "cn": res.cn_first_min}


def run_driver(cfg: Config, ensemble: EnsembleRef, driver: str, starts: Structures, out: Path) -> Dict:
    """NVT MD of one driver from the classical starts; failure time, reason and observables."""
    from deepeut.md.engines import resolve_potential
    from deepeut.md.task import run_md
    from deepeut.systems import MoleculeRecognizer

    v = cfg.validate
    md_cfg = dataclasses.replace(
        cfg.md,
        duration_ps=v.duration_ps,
        replicas=v.replicas,
        ensemble_member=driver_member(driver),
        on_unstable="truncate",
        equilibration_ps=0.0,
    )
    potential = resolve_potential(cfg, str(ensemble.path), driver_member(driver), out)
    run_md(dataclasses.replace(cfg, md=md_cfg), potential, out, starts)
    recognizer = MoleculeRecognizer.for_system(cfg.system)
    runs = []
    for r in range(v.replicas):
        rdir = out / f"replica_{r}"
        s = json.loads((rdir / "md.json").read_text())
        contact = first_contact_failure(rdir / "trajectory.h5", v.min_contact_A, v.contact_every_frames)
        series = contact.pop("series")
        header = ["time_ps", *[f"closest_{pair}_A" for pair in v.min_contact_A]]
        write_csv(rdir / "contacts.csv", header, list(series.values()))
        stop = s.get("stopped_early")
        fails = [(stop["time_ps"], stop["reason"])] if stop else []
        if contact["time_ps"] is not None:
            fails.append((contact["time_ps"], contact["reason"]))
        for found in (
            temperature_failure(rdir / "trajectory.h5", cfg.md, v),
            molecule_failure(rdir / "trajectory.h5", recognizer, v.contact_every_frames),
        ):
            if found is not None:
                fails.append(found)
        t_fail, reason = min(fails) if fails else (None, "")
        # stable: up to the last frame known good (a molecule check runs every md.check_molecules_every frames,
        # so a failure found at t_fail may have happened after the last kept frame)
        stable = min(s["duration_ps"], t_fail) if t_fail is not None else s["duration_ps"]
        runs.append(
            {
                "ps_run": s["duration_ps"],
                "stable_ps": stable,
                "failed_at_ps": t_fail,
                "reason": reason,
                "temperature_mean_K": s["temperature_mean_K"],
                "temperature_sem_K": s["temperature_sem_K"],
                "energy_drift_kcal_mol_atom_ns": s["energy_drift_kcal_mol_atom_ns"],
                "closest_A": contact["closest_A"],
                "frames_below_limit_fraction": contact["frames_below_limit_fraction"],
                "li_o": li_o_structure(rdir / "trajectory.h5", curves_csv=rdir / "li_o_rdf.csv"),
            }
        )
    return {
        "driver": driver,
        "runs": runs,
        "stable_ps": min(r["stable_ps"] for r in runs),
        "failed": any(r["failed_at_ps"] is not None for r in runs),
    }


def uncertainty_before_failure(ensemble, traj_path: Path, failed_at_ps: float, n_frames: int) -> Dict:
    """The committee's force uncertainty u (Eq. 6, eV/Å, largest over the atoms) on the last ``n_frames`` saved
    frames at or before ``failed_at_ps`` of a failed run, and the atom that carries it: a rise before the failure
    means the committee saw it coming (and an exploration run would select those frames)."""
    from deepeut.trajectory.h5md import H5MDTrajectory

    with H5MDTrajectory(traj_path) as tr:
        times = np.asarray(tr.times_ps)
        keep = np.nonzero(times <= failed_at_ps + 1e-9)[0][-n_frames:]
        frames = [tr.atoms(int(k)) for k in keep]
    if not frames:
        return {"time_ps": [], "max_u_eV_A": [], "atom": []}
    u = ensemble.predict(frames).uncertainty()
    return {
        "time_ps": [float(times[k]) for k in keep],
        "max_u_eV_A": [float(x.max()) for x in u],
        "atom": [int(np.argmax(x)) for x in u],
    }


def attach_uncertainty_before_failure(cfg: Config, ensemble_path: Path, drivers: List[Dict], out: Path) -> None:
    """``u_before_failure`` (uncertainty_before_failure) on every failed run of ``drivers``, in place."""
    failed = [(d, r, run) for d in drivers for r, run in enumerate(d["runs"]) if run["failed_at_ps"] is not None]
    if not failed or cfg.validate.warning_frames == 0:
        return
    from deepeut.training.potential import Ensemble

    ens = Ensemble.load(ensemble_path, device=cfg.device)
    for d, r, run in failed:
        traj = out / f"driver_{d['driver']}" / f"replica_{r}" / "trajectory.h5"
        run["u_before_failure"] = uncertainty_before_failure(
            ens, traj, run["failed_at_ps"], cfg.validate.warning_frames
        )


def held_out_frames(cfg: Config, folders: List[Path], n: int) -> List:
    """``n`` frames evenly spaced over the runs' frames after their first 10 %."""
    from deepeut.trajectory.h5md import H5MDTrajectory

    pool = []
    for folder in folders:
        for path in sorted(folder.glob("replica_*/trajectory.h5")):
            with H5MDTrajectory(path) as tr:
                pool += [(path, k) for k in range(tr.n_frames // 10, tr.n_frames)]
    picks = np.unique(np.linspace(0, len(pool) - 1, min(n, len(pool))).astype(int)) if pool else []
    frames = []
    for i in picks:
        path, k = pool[i]
        with H5MDTrajectory(path) as tr:
            frames.append(tr.atoms(k))
    return frames


def score_frames(cfg: Config, ensemble_path: Path, frames: List, out: Path) -> Dict:
    """Label ``frames`` with ``labeler`` (resumable store in ``out/labels``) and score the ensemble on them."""
    from deepeut.active_learning.conformal import (
        CalibrationError,
        held_out_frame_coverage,
        prediction_error,
        q_hat,
        scores,
    )
    from deepeut.data.store import DatasetStore
    from deepeut.labeling.runner import LabelItem, label_structures, labeler_spec
    from deepeut.training.evaluate import evaluate_frames
    from deepeut.training.potential import Ensemble

    store = DatasetStore(out / "labels")
    items = [LabelItem(a, "test", {"kind": "validation", "frame": k}) for k, a in enumerate(frames)]
    report = label_structures(items, labeler_spec(cfg.labeler), store, cfg.labeler.executor, cfg.labeler.failure_budget)
    labeled = store.read("test")
    store.close()
    ens = Ensemble.load(ensemble_path, device=cfg.device)
    res = evaluate_frames(ens, labeled)
    pred = ens.predict(labeled)
    errors = [prediction_error(a.get_forces(), f) for a, f in zip(labeled, pred.mean_forces)]
    u = pred.uncertainty()
    try:
        q = q_hat(scores(errors, u, "atom"), cfg.validate.alpha)
    except CalibrationError as exc:  # too few points for α: reported, not fatal
        q = float("nan")
        log.warning("conformal q̂ not computed: %s", exc)
    cov = held_out_frame_coverage(errors, u, cfg.validate.alpha, "atom")
    per_model = {
        name: {
            "forces_rmse_eV_A": e["forces_eV_A"]["rmse"],
            "forces_rmse_kcal_mol_A": e["forces_kcal_mol_A"]["rmse"],
            "forces_rmse_by_element_eV_A": {
                el: kcal_per_mol_to_ev(v["rmse"]) for el, v in e["forces_by_element_kcal_mol_A"].items()
            },
        }
        for name, e in res["errors"].items()
    }
    return {
        "n_frames": len(labeled),
        "labeling": report.as_dict(),
        "models": per_model,
        "conformal": {
            "alpha": cfg.validate.alpha,
            "q_hat": q,
            "coverage": cov,
            "coverage_rule": "each frame held out in turn, q̂ from the other frames' atoms",
            "n_frames": len(labeled),
            "max_u_median_eV_A": float(np.median([x.max() for x in u])),
        },
    }


def v_duration(summary: Dict) -> float:
    return float(summary.get("duration_ps") or float("nan"))


def validation_text(summary: Dict) -> str:
    lines = [
        f"validation of {summary['ensemble']} ({summary['system']}, scale {summary['scale']}, "
        f"{summary['temperature_K']:g} K, from classical liquids)",
        f"{'driver':<10}{'stable (ps)':>12}{'of (ps)':>9}{'failed at':>10}{'<T> (K)':>9}{'Li-O min':>10}"
        f"{'H-O min':>9}{'Li-O<lim':>9}{'Li-O peak':>10}{'CN Li-O':>9}  failure",
    ]
    for d in summary["drivers"]:
        for r in d["runs"]:
            failed = "" if r["failed_at_ps"] is None else f"{r['failed_at_ps']:.3g}"
            lines.append(
                f"{d['driver']:<10}{r['stable_ps']:>12.3g}{v_duration(summary):>9.3g}{failed:>10}"
                f"{r['temperature_mean_K'] or float('nan'):>9.1f}"
                f"{r['closest_A'].get('Li-O', float('nan')):>10.2f}{r['closest_A'].get('H-O', float('nan')):>9.2f}"
                f"{r.get('frames_below_limit_fraction', {}).get('Li-O', float('nan')):>9.2f}"
                f"{r['li_o']['first_peak_A']:>10.2f}{r['li_o']['cn']:>9.2f}  {r['reason'][:100] or 'none'}"
            )
    lines.append(
        "Li-O min, H-O min: closest intermolecular contact over the run (Å); Li-O<lim: fraction of its checked "
        "frames with a Li-O below validate.min_contact_A"
    )
    median_u = ((summary.get("scores") or {}).get("conformal") or {}).get("max_u_median_eV_A")
    typical_u = f" (median over the scored frames: {median_u:.2f})" if median_u is not None else ""
    for d in summary["drivers"]:
        for r, run in enumerate(d["runs"]):
            w = run.get("u_before_failure")
            if w and w["max_u_eV_A"]:
                lines.append(
                    f"{d['driver']} run {r}: committee u (max over atoms, eV/Å) on its last {len(w['time_ps'])} "
                    f"frames before the failure ({w['time_ps'][0]:.2f}–{w['time_ps'][-1]:.2f} ps): "
                    + " ".join(f"{x:.2f}" for x in w["max_u_eV_A"])
                    + typical_u
                )
    sc = summary.get("scores")
    if sc:
        lines += [
            "",
            f"force RMSE on {sc['n_frames']} fresh {summary['labeler']} labels of frames from these runs "
            "(eV/Å; kcal/mol/Å in brackets)",
        ]
        for name, m in sc["models"].items():
            els = " ".join(f"{el} {v:.3f}" for el, v in m["forces_rmse_by_element_eV_A"].items())
            lines.append(f"  {name:<14} {m['forces_rmse_eV_A']:.3f} ({m['forces_rmse_kcal_mol_A']:.2f})   {els}")
        c = sc["conformal"]
        how = (
            f"{c['n_frames']} frames, each held out in turn"
            if "n_frames" in c
            else f"{c['n_test_frames']} frames, q̂ from {c['n_calibration_frames']} others"  # records before 2026-11-30
        )
        lines.append(
            f"conformal coverage of ũ at α = {c['alpha']:g}: {c['coverage']:.2f} on {how} (q̂ = {c['q_hat']:.2f})"
        )
    return "\n".join(lines)


def run_validate(cfg: Config, ensemble: EnsembleRef, origin: str, starts: Structures, out: Path) -> Dict:
    """Run every driver of ``ensemble`` from ``starts``, label held-out frames, score; write validation.json and
    validation.txt (and ``validation_<scale>.json`` beside the ensemble). ``origin`` says how it was chosen."""
    v = cfg.validate
    drivers = [run_driver(cfg, ensemble, d, starts, out / f"driver_{d}") for d in v.drivers]
    attach_uncertainty_before_failure(cfg, ensemble.path, drivers, out)
    frames = held_out_frames(cfg, [out / f"driver_{d}" for d in v.drivers], v.n_label_frames)
    scores_ = score_frames(cfg, ensemble.path, frames, out) if frames else None
    summary = {
        "system": cfg.system.name,
        "scale": cfg.scale.name,
        "ensemble": display_path(ensemble.path),
        "ensemble_origin": origin,
        "temperature_K": cfg.md.temperature_K,
        "labeler": cfg.labeler.name,
        "duration_ps": v.duration_ps,
        "drivers": drivers,
        "scores": scores_,
        "min_contact_A": v.min_contact_A,
        "units": {"time": "ps", "length": "Angstrom", "force": "eV/Angstrom", "temperature": "K"},
    }
    write_json_atomic(out / "validation.json", json_safe(summary))
    try:  # the record travels with the ensemble, so that reports using it can show it
        write_json_atomic(ensemble.path / f"validation_{cfg.scale.name}.json", json_safe(summary))
    except OSError as exc:
        log.warning("validation record not written beside the ensemble (%s)", exc)
    from deepeut.validation.figures import write_validation_figures

    write_validation_figures(json_safe(summary), out, v)
    text = validation_text(json_safe(summary))
    write_text_atomic(out / "validation.txt", text + "\n")
    print(text, flush=True)
    return {"validation": str(out / "validation.json"), "stable_ps": {d["driver"]: d["stable_ps"] for d in drivers}}
