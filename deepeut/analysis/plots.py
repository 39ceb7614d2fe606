"""Figures in the style of the paper's Figs. 5–7, 9, 11–13, and every curve as CSV (first replica's curves)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np

from deepeut.utils.io import write_csv


def _curves(ax, curves: Dict[str, tuple], xlabel: str, ylabel: str, title: str) -> None:
    for name, (x, y) in curves.items():
        ax.plot(x, y, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)


CAPTIONS = {
    "fig5_6_rdf.png": "Atom-pair radial distribution functions g(r) (Figs. 5, 6; r in Å){pairs}; the coordination "
    "numbers of Table I integrate them to their first minimum r_c (Eq. 7).",
    "fig7_com_rdf.png": "Centre-of-mass radial distribution functions g(r) of Li⁺, TFSI⁻ and the amide "
    "(Fig. 7; r in Å).",
    "fig11_vacf.png": "Normalised centre-of-mass velocity autocorrelation functions A(t) (Fig. 11, Eq. 8; t in ps); "
    "their integral gives the Green–Kubo D of Table II (Eq. 9).",
    "fig12_msd.png": "Centre-of-mass mean-square displacements (Fig. 12, Eq. 10; Å² vs ps); diffusive motion is a "
    "straight line of slope 6D (log-log slope β = 1, checked in the tables).",
    "fig13_vccf.png": "Velocity cross-correlation functions restricted to first-shell neighbours (Fig. 13, "
    "Eqs. 15–16; t in ps).",
    "figS7_lifetimes.png": "Li–amide pair existence autocorrelation P(t) (Eq. 11) and the C→O unit-vector "
    "autocorrelation of the amide (t in ps); their integrals are τ_Li-amide and τ_R.",
    "fig_conductivity_running.png": "Running Green–Kubo ionic conductivity σ(t) (Eq. 12; S/m vs ps); a converged σ "
    "is a plateau.",
    "fig9_cdf.png": "Combined distribution g(r, φ) of the Li–TFSI centre-of-mass distance r (Å) and the TFSI C–S–S–C "
    "torsion |φ| (°) (Fig. 9); 1 = uncorrelated; dashed lines: the paper's cis (0–90°), gauche "
    "(90–120°) and trans (120–180°) ranges.",
}


def caption(fname: str, res: Dict, system: str) -> str:
    """The caption of figure ``fname`` with the data behind it (system, replica, frames, run length)."""
    pairs = f" ({', '.join(res['rdf'])}; intermolecular pairs)" if "rdf" in res else ""
    data = (
        f" Data: {system.upper()}, replica 0, {res.get('n_frames', '?')} frames over "
        f"{res.get('run_ps', float('nan')):.3g} ps; curves as CSV in curves/."
    )
    return CAPTIONS.get(fname, fname).format(pairs=pairs) + data


def write_figures(results: List[Dict], out: Path, system: str) -> None:
    """PNG figures and CSV curves of the first replica's results into ``out`` and ``out/curves``, and
    ``captions.json`` (file name → caption)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = results[0]
    curves_dir = out / "curves"
    panels = []
    if "rdf" in res:
        panels.append(
            (
                "fig5_6_rdf.png",
                "r (Å)",
                "g(r)",
                "atom-pair RDFs (Figs. 5, 6)",
                {k: (v["r_A"], v["g"]) for k, v in res["rdf"].items()},
            )
        )
    if "com_rdf" in res:
        panels.append(
            (
                "fig7_com_rdf.png",
                "r (Å)",
                "g(r)",
                "centre-of-mass RDFs (Fig. 7)",
                {k: (v["r_A"], v["g"]) for k, v in res["com_rdf"].items()},
            )
        )
    if "diffusion" in res:
        panels.append(
            (
                "fig11_vacf.png",
                "t (ps)",
                "A(t)",
                "CoM VACFs (Fig. 11, Eq. 8)",
                {k: (v["lag_ps"], v["vacf_normalised"]) for k, v in res["diffusion"].items()},
            )
        )
        panels.append(
            (
                "fig12_msd.png",
                "t (ps)",
                "MSD (Å²)",
                "CoM MSDs (Fig. 12, Eq. 10)",
                {k: (v["lag_ps"], v["msd_A2"]) for k, v in res["diffusion"].items()},
            )
        )
    if "vccf" in res:
        panels.append(
            (
                "fig13_vccf.png",
                "t (ps)",
                "C(t)",
                "restricted VCCFs (Fig. 13, Eqs. 15-16)",
                {k: (v["lag_ps"], v["C"]) for k, v in res["vccf"].items()},
            )
        )
    if "lifetimes" in res:
        lt = res["lifetimes"]
        panels.append(
            (
                "figS7_lifetimes.png",
                "t (ps)",
                "correlation",
                "Li-amide P(t) (Eq. 11) and C→O ACF",
                {"P(t) Li-amide": (lt["lag_ps"], lt["pair_existence"]), "u(t)·u(0)": (lt["lag_ps"], lt["co_acf"])},
            )
        )
    if "conductivity" in res:
        c = res["conductivity"]
        panels.append(
            (
                "fig_conductivity_running.png",
                "t (ps)",
                "σ(t) (S/m)",
                "running Green-Kubo conductivity (Eq. 12)",
                {"σ(t)": (c["lag_ps"], c["running_S_m"])},
            )
        )
    for fname, xl, yl, title, curves in panels:
        fig, ax = plt.subplots(figsize=(6, 4))
        _curves(ax, curves, xl, yl, f"{system.upper()}: {title}")
        fig.tight_layout()
        fig.savefig(out / fname, dpi=120)
        plt.close(fig)
        for name, (x, y) in curves.items():
            write_csv(
                curves_dir / f"{fname.rsplit('.', 1)[0]}_{name.replace(' ', '_').replace('/', '_')}.csv",
                [xl, yl],
                [x, y],
            )
    if "cdf" in res:
        cdf = res["cdf"]
        fig, ax = plt.subplots(figsize=(5.5, 4.2))
        mesh = ax.pcolormesh(cdf["r_edges_A"], cdf["phi_edges_deg"], np.asarray(cdf["g"]).T, cmap="viridis")
        fig.colorbar(mesh, ax=ax, label="g(r, φ)")
        ax.set_xlabel("Li–TFSI CoM distance r (Å)")
        ax.set_ylabel("TFSI C–S–S–C torsion |φ| (°)")
        for name, (lo, hi) in cdf.get("ranges_deg", {}).items():  # the paper's cis / gauche / trans ranges
            if lo > 0:
                ax.axhline(lo, color="w", lw=0.6, ls="--")
            ax.text(ax.get_xlim()[1], 0.5 * (lo + hi), f" {name}", va="center", ha="left", fontsize=8)
        ax.set_title(f"{system.upper()}: combined distribution (Fig. 9)", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "fig9_cdf.png", dpi=120)
        plt.close(fig)
    from deepeut.utils.io import write_json_atomic

    write_json_atomic(out / "captions.json", {p.name: caption(p.name, res, system) for p in sorted(out.glob("*.png"))})
