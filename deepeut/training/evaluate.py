"""``stage=evaluate``: test-set errors of each member and of the ensemble mean (paper Fig. 3, Fig. S2).

Outputs (in the stage's folder)::

    evaluation.json    per model ("member_<k>", "ensemble_mean"): per-atom energy MAE/RMSE, force MAE/RMSE, overall
                       and per element, each in eV(/Å) and kcal/mol(/Å); n_frames, n_atoms, dataset hash
    evaluation.txt     the same as a table (kcal/mol, the paper's unit; its bar: force RMSE < 1 kcal/mol/Å)
    predictions.npz    reference and predicted per-atom energies (eV/atom), force components (eV/Å), elements
    fig3_errors.png    Fig. 3: density-coloured hexbin of predicted vs reference per-atom energy and force
    figS2_force_errors_by_element.png  Fig. S2: force error distribution and RMSE of each element
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from deepeut.config.schema import Config
from deepeut.stage_io import Dataset, EnsembleRef
from deepeut.utils.io import write_json_atomic, write_text_atomic
from deepeut.utils.tracking import log_results
from deepeut.utils.units import ev_to_kcal_per_mol

log = logging.getLogger(__name__)


def error_metrics(ref: np.ndarray, pred: np.ndarray) -> Dict[str, float]:
    """MAE and RMSE of ``pred`` against ``ref`` over all elements (component-wise for forces)."""
    err = np.asarray(pred, float) - np.asarray(ref, float)
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean())), "n": int(err.size)}


def per_element_force_metrics(ref: np.ndarray, pred: np.ndarray, symbols: Sequence[str]) -> Dict[str, Dict]:
    """Force MAE/RMSE (eV/Å) over the atoms of each element; ``n`` counts force components.

    The overall MSE is the ``n``-weighted mean of the per-element MSEs (see :func:`combine_rmse`).
    """
    symbols = np.asarray(symbols)
    return {el: error_metrics(ref[symbols == el], pred[symbols == el]) for el in sorted(set(symbols.tolist()))}


def combine_rmse(parts: Dict[str, Dict]) -> float:
    """Overall RMSE from per-group RMSEs and counts: sqrt(Σ n_g RMSE_g² / Σ n_g)."""
    n = sum(p["n"] for p in parts.values())
    return float(np.sqrt(sum(p["n"] * p["rmse"] ** 2 for p in parts.values()) / n))


def in_kcal(metrics: Dict[str, float]) -> Dict[str, float]:
    """The same metrics converted from eV to kcal/mol (counts unchanged)."""
    return {k: (ev_to_kcal_per_mol(v) if k != "n" else v) for k, v in metrics.items()}


def model_errors(
    e_ref: np.ndarray, e_pred: np.ndarray, f_ref: np.ndarray, f_pred: np.ndarray, symbols: Sequence[str]
) -> Dict:
    """All errors of one model: per-atom energies (eV/atom) and force components (eV/Å)."""
    energy, forces = error_metrics(e_ref, e_pred), error_metrics(f_ref, f_pred)
    per_el = per_element_force_metrics(f_ref, f_pred, symbols)
    return {
        "per_atom_energy_eV": energy,
        "per_atom_energy_kcal_mol": in_kcal(energy),
        "forces_eV_A": forces,
        "forces_kcal_mol_A": in_kcal(forces),
        "forces_by_element_eV_A": per_el,
        "forces_by_element_kcal_mol_A": {el: in_kcal(m) for el, m in per_el.items()},
    }


def evaluate_frames(ensemble, frames: List, batch_size=None) -> Dict:
    """Reference vs predicted arrays and the errors of every member and of the ensemble mean."""
    pred = ensemble.predict(frames, batch_size=batch_size, progress=True)
    n_atoms = np.array([len(a) for a in frames])
    e_ref = np.array([a.get_potential_energy() for a in frames]) / n_atoms
    f_ref = np.concatenate([a.get_forces() for a in frames])
    symbols = np.concatenate([a.get_chemical_symbols() for a in frames])
    models = {
        f"member_{m}": (pred.energies[m] / n_atoms, np.concatenate([f[m] for f in pred.forces]))
        for m in range(len(ensemble))
    }
    models["ensemble_mean"] = (pred.mean_energies / n_atoms, np.concatenate(pred.mean_forces))
    errors = {name: model_errors(e_ref, e, f_ref, f, symbols) for name, (e, f) in models.items()}
    return {
        "errors": errors,
        "e_ref": e_ref,
        "f_ref": f_ref,
        "symbols": symbols,
        "e_pred": models["ensemble_mean"][0],
        "f_pred": models["ensemble_mean"][1],
    }


def errors_table(errors: Dict) -> str:
    """Energy MAE and force RMSE/MAE per model, overall and per element, in kcal/mol (and meV)."""
    elements = sorted(next(iter(errors.values()))["forces_by_element_kcal_mol_A"])
    head = f"{'model':<15}{'E/atom MAE':>12}{'E/atom MAE':>12}{'F RMSE':>12}{'F MAE':>12}" + "".join(
        f"{'F RMSE ' + el:>10}" for el in elements
    )
    units = f"{'':<15}{'kcal/mol':>12}{'meV':>12}{'kcal/mol/Å':>12}{'kcal/mol/Å':>12}" + "".join(
        f"{'':>10}" for el in elements
    )
    lines = [head, units.rstrip(), "-" * len(head)]
    for name, e in errors.items():
        k = e["forces_kcal_mol_A"]
        lines.append(
            f"{name:<15}{e['per_atom_energy_kcal_mol']['mae']:>12.4f}{1000 * e['per_atom_energy_eV']['mae']:>12.3f}"
            f"{k['rmse']:>12.3f}{k['mae']:>12.3f}"
            + "".join(f"{e['forces_by_element_kcal_mol_A'][el]['rmse']:>10.3f}" for el in elements)
        )
    lines.append("force errors in kcal/mol/Å (1 eV/Å = 23.06 kcal/mol/Å); the paper's bar: force RMSE < 1")
    return "\n".join(lines)


def plot_fig3(path: Path, e_ref, e_pred, f_ref, f_pred, title: str) -> Path:
    """Fig. 3: hexbin (log-density colour) of predicted vs reference per-atom energy and force components."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    panels = [
        (axes[0], e_ref, e_pred, "per-atom energy (eV/atom)", 1000.0, "meV/atom"),
        (axes[1], f_ref.ravel(), f_pred.ravel(), "force component (eV/Å)", ev_to_kcal_per_mol(1.0), "kcal/mol/Å"),
    ]
    for ax, ref, pred, label, scale, unit in panels:
        hb = ax.hexbin(ref, pred, gridsize=60, bins="log", cmap="viridis", mincnt=1)
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        m = error_metrics(ref, pred)
        ax.set_title(f"MAE {m['mae'] * scale:.3g}, RMSE {m['rmse'] * scale:.3g} {unit}", fontsize=10)
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"ensemble-mean prediction {label}")
        fig.colorbar(hb, ax=ax, label="count (log)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_figS2(path: Path, f_ref, f_pred, symbols, title: str) -> Path:
    """Fig. S2: distribution of force-component errors per element, RMSE in the legend (kcal/mol/Å)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    err = ev_to_kcal_per_mol(f_pred - f_ref)
    fig, ax = plt.subplots(figsize=(6.5, 4.4))
    for el in sorted(set(symbols.tolist())):
        e = err[symbols == el].ravel()
        ax.hist(e, bins=80, histtype="step", density=True, label=f"{el}: RMSE {np.sqrt((e**2).mean()):.2f}")
    ax.set_xlabel("force error (kcal/mol/Å)")
    ax.set_ylabel("probability density (Å mol/kcal)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def test_file_of(manifest: Dict, dataset: Dataset, out: Path) -> Path:
    """The test split to evaluate on: ``dataset``'s store when it has one, else the one the ensemble recorded (the
    shipped dataset for ensembles trained on it, such as the embedded defaults)."""
    from deepeut.data.source import from_demo, from_store
    from deepeut.training.potential import EnsembleError

    if dataset.store is not None:
        return from_store(str(dataset.store), out / "data").test
    recorded = manifest.get("dataset", {})
    if recorded.get("test") and Path(recorded["test"]).exists():
        return Path(recorded["test"])
    from deepeut.data.demo import SHIPPED_DIRS

    kind, _, system = str(recorded.get("origin", "")).partition(":")
    if kind in SHIPPED_DIRS and system:
        return from_demo(system, out / "data", kind).test
    raise EnsembleError(
        f"the ensemble's test set ({recorded.get('test') or 'not recorded'}) is not here; pass "
        "data.store=<a dataset store> to evaluate on its test split"
    )


def evaluate(cfg: Config, out: Path) -> Dict:
    """``stage=evaluate`` from the command line: the committee of ``committee=`` (default: ``train/`` beside the
    stage folder), the test split of ``data.store`` (default: the committee's own), then :func:`run_evaluate`."""
    from deepeut.training.potential import resolve_ensemble

    committee = EnsembleRef(resolve_ensemble(cfg.committee, out, cfg.system))
    return run_evaluate(cfg, committee, Dataset(Path(cfg.data.store) if cfg.data.store else None), out)


def run_evaluate(cfg: Config, committee: EnsembleRef, dataset: Dataset, out: Path) -> Dict:
    """Errors of every member and of the mean of ``committee`` on the test split of ``dataset`` (none: the one the
    committee recorded): ``evaluation.{json,txt}``, ``predictions.npz`` and Figs. 3 / S2."""
    from ase.io import read

    from deepeut.training.potential import Ensemble, manifest_path

    src = committee.path
    manifest = json.loads(manifest_path(src).read_text())
    test_file = test_file_of(manifest, dataset, out)
    frames = read(test_file, ":")
    ensemble = Ensemble.load(src, device=cfg.device)
    log.info("evaluating %d members on %d test structures from %s", len(ensemble), len(frames), test_file)
    res = evaluate_frames(ensemble, frames)
    title = f"{cfg.system.name.upper()}: {len(ensemble)}-member ensemble on {len(frames)} test structures"
    report = {
        "system": cfg.system.name,
        "ensemble": str(src),
        "test_file": str(test_file),
        "n_frames": len(frames),
        "n_atoms": int(res["f_ref"].shape[0]),
        "dataset_manifest_hash": manifest["dataset"]["manifest_hash"],
        "models": res["errors"],
    }
    write_json_atomic(out / "evaluation.json", report)
    table = errors_table(res["errors"])
    write_text_atomic(out / "evaluation.txt", title + "\n" + table + "\n")
    np.savez_compressed(
        out / "predictions.npz",
        e_ref_eV_atom=res["e_ref"],
        e_pred_eV_atom=res["e_pred"],
        f_ref_eV_A=res["f_ref"],
        f_pred_eV_A=res["f_pred"],
        symbols=res["symbols"],
    )
    plot_fig3(out / "fig3_errors.png", res["e_ref"], res["e_pred"], res["f_ref"], res["f_pred"], title)
    plot_figS2(out / "figS2_force_errors_by_element.png", res["f_ref"], res["f_pred"], res["symbols"], title)
    print(title + "\n" + table)
    log_results(cfg, out, "evaluation", {"models": res["errors"]}, table)
    return {
        "objective": res["errors"]["ensemble_mean"]["forces_eV_A"]["rmse"],
        "evaluation": str(out / "evaluation.json"),
    }
