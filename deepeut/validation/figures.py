"""Figures of ``stage=validate`` with their captions (``captions.json``), from the records and CSVs it wrote.

- ``validation_md.png``: per driver, the instantaneous temperature and its ``validate.temperature_window_ps`` mean
  against the failure band (target ± ``validate.temperature_sigmas`` × T √(2/N_f)), and the closest intermolecular
  Li–O and H···O contact of every checked frame against the failure lines; the first failure marked.
- ``validation_li_o_rdf.png``: the Li–O g(r) and N(r) of every driver with its r_c.
- ``validation_force_rmse.png``: force RMSE per element of every member and the mean on the fresh labels, beside
  the targets of 0.10 and 0.087 eV/Å (2 kcal/mol/Å).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np

from deepeut.utils.io import read_csv_columns, write_json_atomic

#: force RMSE targets (eV/Å) of the potentials campaign: ≤ 0.10, goal 2 kcal/mol/Å
FORCE_TARGETS_EV_A = (0.10, 0.0867)


def _replica0(out: Path, driver: str) -> Path:
    return out / f"driver_{driver}" / "replica_0"


def md_figure(plt, summary: Dict, out: Path, v) -> str:
    """Temperature and closest contacts vs time per driver (replica 0); returns the caption."""
    from deepeut.md.safety import temperature_bound_K, window_mean_temperature
    from deepeut.trajectory.h5md import H5MDTrajectory

    drivers = summary["drivers"]
    target = summary["temperature_K"]
    fig, axes = plt.subplots(len(drivers), 2, figsize=(10, 3.2 * len(drivers)), squeeze=False)
    for row, d in zip(axes, drivers):
        rdir = _replica0(out, d["driver"])
        with H5MDTrajectory(rdir / "trajectory.h5") as tr:
            t, temp, n_atoms = tr.times_ps, tr.observable("temperature"), tr.n_atoms
        bound = temperature_bound_K(target, n_atoms, v.temperature_sigmas)
        ends, means = window_mean_temperature(t, temp, v.temperature_window_ps)
        row[0].plot(t, temp, lw=0.5, color="0.6", label="instantaneous")
        row[0].plot(t[ends], means, color="C0", label=f"{v.temperature_window_ps:g} ps mean")
        row[0].axhspan(target - bound, target + bound, color="C2", alpha=0.15, label="allowed band of the mean")
        row[0].set_ylabel("T (K)")
        contacts = read_csv_columns(rdir / "contacts.csv")
        for k, (pair, limit) in enumerate(summary["min_contact_A"].items()):
            row[1].plot(contacts["time_ps"], contacts[f"closest_{pair}_A"], color=f"C{k}", lw=0.8, label=pair)
            row[1].axhline(limit, color=f"C{k}", ls="--", lw=0.8)
        row[1].set_ylabel("closest intermolecular contact (Å)")
        run = d["runs"][0]
        for ax in row:
            if run["failed_at_ps"] is not None:
                ax.axvline(run["failed_at_ps"], color="C3", lw=1.0, label="first failure")
            ax.set_xlabel("t (ps)")
            ax.set_title(f"driver {d['driver']}: {run['reason'][:60] or 'no failure'}", fontsize=9)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "validation_md.png", dpi=120)
    plt.close(fig)
    return (
        f"NVT MD at {target:g} K of {summary['system'].upper()} ({summary['scale']} box) with each driver, replica 0. "
        f"Left: instantaneous temperature and its {v.temperature_window_ps:g} ps running mean; shaded, the band "
        f"(± {v.temperature_sigmas:g} × T √(2/N_f)) the mean must stay in. Right: closest intermolecular contact "
        "of every checked frame (Å); dashed, the failure lines (validate.min_contact_A). A red line marks the "
        "first failure. Data: driver_<d>/replica_0/{trajectory.h5,contacts.csv}."
    )


def rdf_figure(plt, summary: Dict, out: Path) -> str:
    """Li–O g(r) and N(r) per driver; returns the caption."""
    fig, ax = plt.subplots(figsize=(6, 4))
    twin = ax.twinx()
    for k, d in enumerate(summary["drivers"]):
        c = read_csv_columns(_replica0(out, d["driver"]) / "li_o_rdf.csv")
        li_o = d["runs"][0]["li_o"]
        ax.plot(c["r_A"], c["g"], color=f"C{k}", label=f"{d['driver']}: CN {li_o['cn']:.2f}")
        twin.plot(c["r_A"], c["N"], color=f"C{k}", ls=":")
        if np.isfinite(li_o["r_c_A"] or np.nan):
            ax.axvline(li_o["r_c_A"], color=f"C{k}", ls="--", lw=0.8)
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)")
    twin.set_ylabel("N(r) (dotted)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "validation_li_o_rdf.png", dpi=120)
    plt.close(fig)
    return (
        "Intermolecular Li–O radial distribution function g(r) (solid) and running coordination number N(r) "
        "(dotted, Eq. 7) of each driver's replica 0, r in Å; dashed: the first minimum r_c where the CN of "
        "Table I is read (paper, URA: 4.05). A few ps of a box with few Li⁺ give a noisy g(r). "
        "Data: driver_<d>/replica_0/li_o_rdf.csv."
    )


def force_figure(plt, summary: Dict, out: Path) -> str:
    """Grouped bars of force RMSE per element and model; returns the caption."""
    models: Dict = summary["scores"]["models"]
    elements: List[str] = sorted({el for m in models.values() for el in m["forces_rmse_by_element_eV_A"]})
    x = np.arange(len(elements) + 1)
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (name, m) in enumerate(models.items()):
        values = [m["forces_rmse_by_element_eV_A"].get(el, np.nan) for el in elements] + [m["forces_rmse_eV_A"]]
        ax.bar(x + (k - (len(models) - 1) / 2) * width, values, width, label=name)
    for target, style in zip(FORCE_TARGETS_EV_A, ("--", ":")):
        ax.axhline(target, color="k", ls=style, lw=0.8, label=f"target {target:.3g} eV/Å")
    ax.set_xticks(x, elements + ["all"])
    ax.set_ylabel("force RMSE (eV/Å)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "validation_force_rmse.png", dpi=120)
    plt.close(fig)
    sc = summary["scores"]
    return (
        f"Force RMSE (eV/Å) per element and over all atoms of every member and of the committee mean against "
        f"{sc['n_frames']} fresh {summary['labeler']} labels of frames drawn from these runs (never training data); "
        "lines: the campaign's targets 0.10 eV/Å and 2 kcal/mol/Å."
    )


def write_validation_figures(summary: Dict, out: Path, v) -> Dict[str, str]:
    """The figures of the module docstring into ``out`` and ``captions.json`` (file name → caption)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    captions = {
        "validation_md.png": md_figure(plt, summary, out, v),
        "validation_li_o_rdf.png": rdf_figure(plt, summary, out),
    }
    if summary.get("scores"):
        captions["validation_force_rmse.png"] = force_figure(plt, summary, out)
    write_json_atomic(out / "captions.json", captions)
    return captions
