"""``report.md`` and ``report.html`` of a pipeline or main-job run: what ran and what came out.

Sections: run, stages (folder, reused or run, wall time), dataset, model test metrics, active-learning history,
MD stability (temperature, energy drift, speed), Tables I–III beside the paper's and experiment's values, figures.
Everything is read from the stages' own output files (documented in their modules); nothing is recomputed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from deepeut.config.schema import Config
from deepeut.report.document import Figure, Pre, Section, Table, to_html, to_markdown
from deepeut.utils.io import read_json, write_text_atomic
from deepeut.utils.units import ev_to_kcal_per_mol

TABLE_TITLES = {
    "I": "Table I: coordination numbers at the first RDF minimum (Eq. 7)",
    "II": "Table II: self-diffusion (Green–Kubo, 1e-11 m²/s), t+, τ_Li-amide and τ_R (ns)",
    "III": "Table III: ionic conductivity (S/m), σ/σ_NE",
}


def _num(x, fmt: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return ""
    return format(x, fmt)


def run_section(cfg: Config, extra: Dict) -> Section:
    from deepeut import __version__

    return Section(
        "Run",
        [
            f"{cfg.system.title or cfg.system.name} ({cfg.system.name}), scale={cfg.scale.name} "
            f"({cfg.scale.n_ion_pairs} LiTFSI ion pairs), stage={cfg.stage.name}, device={cfg.device}, "
            f"deepeut {__version__}, {time.strftime('%Y-%m-%d %H:%M:%S')}.",
            f"Ensemble: {extra.get('ensemble')} ({extra.get('ensemble_origin', '')}).",
            "Units: energies eV (kcal/mol where the paper uses it), forces eV/Å, lengths Å, times ps.",
        ],
    )


def trust_section(cfg: Config, extra: Dict, an_dir: Optional[Path]) -> Section:
    """What this run can and cannot tell you: reference method, size, length, and how many numbers converged."""
    items = []
    manifest = read_json(Path(extra["ensemble"]) / "ensemble.json") if extra.get("ensemble") else None
    origin = str((manifest or {}).get("dataset", {}).get("origin", ""))
    rmse = [m.get("test_metrics", {}).get("forces_rmse") for m in (manifest or {}).get("members", [])]
    rmse = [r for r in rmse if r is not None]
    labeler = "GFN2-xTB" if ("demo:" in origin or cfg.labeler.name == "xtb") else cfg.labeler.name
    if labeler != "cp2k":
        items.append(
            f"The potential was trained on {labeler} labels: a different potential-energy surface from the "
            "paper's BLYP-D3 DFT, so agreement with Tables I–III is not expected even when converged."
        )
    if rmse:
        items.append(
            f"Its test force RMSE is {sum(rmse) / len(rmse):.3f} eV/Å ({23.06 * sum(rmse) / len(rmse):.1f} "
            "kcal/mol/Å; the paper's bar: < 1 kcal/mol/Å)."
        )
    items.append(
        f"Box: {cfg.scale.n_ion_pairs} ion pairs (the paper's MD: 128); MD: {cfg.md.replicas} replica(s) "
        f"of {cfg.md.duration_ps:g} ps (the paper: 3 × 2–3 ns)."
    )
    tabs = read_json(an_dir / "tables.json") if an_dir is not None else None
    if tabs:
        rows = [(k, r) for t in tabs.values() for k, r in t.items() if r.get("ours") is not None]
        bad = [k for k, r in rows if r.get("converged") is False]
        items.append(
            f"{len(rows) - len(bad)} of {len(rows)} numbers in Tables I–III passed their convergence checks"
            + (
                f"; not converged: {', '.join(bad)} (listed apart from the comparison with the paper, with "
                "their reasons: use them as checks of the workflow, not as results)"
                if bad
                else "."
            )
        )
        from deepeut.analysis.convergence import short_contacts

        results = [r for p in sorted(an_dir.glob("replica_*/results.json")) if (r := read_json(p))]
        items += [f"**WARNING: {w}.**" for w in short_contacts(results, cfg.validate.min_contact_A)]
    return Section("What this run can and cannot tell you", items)


def stages_section(records: Sequence) -> Section:
    rows = [(r.stage, str(r.dir), "reused" if r.reused else "ran", f"{r.wall_s:.0f}") for r in records]
    return Section("Stages", [Table(["stage", "folder", "this run", "wall time (s)"], rows)])


def model_sections(ensemble: Path, scale: str) -> List[Section]:
    m = read_json(ensemble / "ensemble.json")
    if m is None:
        return []
    d = m.get("dataset", {})
    data = Section(
        "Dataset",
        [
            f"{d.get('origin', '?')}: {d.get('n_train', '?')} training + validation and "
            f"{d.get('n_test', '?')} test structures (manifest {d.get('manifest_hash', '?')}); "
            "energies eV, forces eV/Å."
        ],
    )
    rows = []
    for mem in m["members"]:
        t = mem.get("test_metrics", {})
        rmse = t.get("forces_rmse")
        rows.append(
            (
                mem["member"],
                mem.get("seed", ""),
                _num(1000 * t["per_atom_energy_mae"], ".2f") if "per_atom_energy_mae" in t else "",
                _num(rmse, ".3f"),
                _num(ev_to_kcal_per_mol(rmse), ".2f") if rmse is not None else "",
                _num(t.get("forces_mae"), ".3f"),
            )
        )
    model = m.get("model", {})
    text = (
        f"{len(m['members'])} × {model.get('name', '?')} (r_max {m.get('r_max_A', '?')} Å, l_max "
        f"{model.get('l_max', '?')}), trained with nequip + allegro; test-set metrics of each member:"
    )
    return [
        data,
        Section(
            "Model",
            [
                text,
                Table(
                    ["member", "seed", "E/atom MAE (meV)", "F RMSE (eV/Å)", "F RMSE (kcal/mol/Å)", "F MAE (eV/Å)"], rows
                ),
            ],
        ),
        validation_section(ensemble, scale),
    ]


def validation_section(ensemble: Path, scale: str) -> Section:
    """The ensemble's validation records (``validation_<scale>.json`` beside its manifest, from stage=validate),
    and a warning when it was never validated at the box size being run."""
    records = {p.stem.split("_", 1)[1]: read_json(p) for p in sorted(Path(ensemble).glob("validation_*.json"))}
    items = []
    for sc, v in records.items():
        for d in v.get("drivers", []):
            fail = f"failed at {d['stable_ps']:.3g} ps" if d.get("failed") else f"no failure in {d['stable_ps']:.3g} ps"
            items.append(f"scale {sc}, {d['driver']}: {fail}")
        models = (v.get("scores") or {}).get("models", {})
        if "ensemble_mean" in models:
            items.append(
                f"scale {sc}: committee force RMSE {models['ensemble_mean']['forces_rmse_eV_A']:.3f} eV/Å on "
                f"{v['scores']['n_frames']} fresh {v.get('labeler', '')} labels of its own MD frames"
            )
    if scale not in records:
        items.append(
            f"**WARNING: this ensemble was never validated at scale {scale}** (run `python run.py "
            f"stage=validate scale={scale} committee=...`): its stability at this box size is unknown."
        )
    return Section("Validation of the ensemble", items)


def al_section(al_dir: Path) -> Optional[Section]:
    state = read_json(al_dir / "al_state.json")
    if state is None:
        return None
    rows = [
        (
            h["iteration"],
            h.get("dataset_size", ""),
            _num(h.get("q_hat"), ".2f"),
            _num(h.get("coverage"), ".2f"),
            h.get("selected", ""),
            h.get("rejected", ""),
            h.get("labeled", ""),
            h.get("failed", ""),
            _num(h.get("test_force_rmse"), ".3f"),
            h.get("stop", ""),
        )
        for h in state["history"]
    ]
    blocks = [
        "Active learning (Methods B): ensemble force uncertainty (Eq. 6), conformal calibration (q̂), selection "
        "above the threshold, molecule-recognition screening, relabeling, retraining.",
        Table(
            [
                "iteration",
                "dataset",
                "q̂",
                "coverage",
                "selected",
                "rejected",
                "labeled",
                "failed",
                "test F RMSE (eV/Å)",
                "stop",
            ],
            rows,
        ),
    ]
    blocks += [
        Figure(p, f"Fig. 2: force error vs uncertainty, {p.parent.name}")
        for p in sorted(al_dir.glob("iter_*/fig2_calibration.png"))
    ]
    return Section("Active learning", blocks)


def md_section(md_dir: Path) -> Optional[Section]:
    md = read_json(md_dir / "md.json")
    if md is None:
        return None
    rows = [
        (
            k,
            s["n_atoms"],
            _num(s["duration_ps"], ".1f"),
            f"{_num(s['temperature_mean_K'], '.1f')} ± {_num(s['temperature_sem_K'], '.1f')}",
            _num(s["temperature_target_K"], ".0f"),
            _num(s["energy_drift_kcal_mol_atom_ns"], ".3g"),
            _num(s["ns_per_day"], ".3g"),
        )
        for k, s in enumerate(md["replicas"])
        if "n_atoms" in s
    ]  # LAMMPS inputs not run here have no summary
    m = md["md"]
    checks = [f"|F| < {m['max_force_eV_A']:g} eV/Å", f"T < {m['max_temperature_factor']:g} × target"]
    if m.get("check_molecules_every"):
        checks.append(f"molecules intact (checked every {m['check_molecules_every']} frames)")
    stopped = [(k, s["stopped_early"]) for k, s in enumerate(md["replicas"]) if s.get("stopped_early")]
    verdict = (
        f"every replica finished with its safety checks passing: {', '.join(checks)}."
        if not stopped
        else f"safety checks: {', '.join(checks)}."
    )
    warnings = [
        f"**WARNING: replica {k} stopped early at {st['time_ps']:.3f} ps: {st['reason']}.** Its first "
        f"{st['frames_kept']} frames (every frame before the failure with intact molecules) are kept and "
        f"analysed; the bad frame is `{st['frame']}` in the md folder. "
        "The potential is not yet good enough for this run: "
        "more reference data or active-learning iterations are the cure."
        for k, st in stopped
    ]
    return Section(
        "MD stability",
        [
            f"engine {md['engine']} ({md.get('driver', 'driver not recorded')}), "
            f"{m['thermostat']}, {m['timestep_fs']} fs time step; " + verdict,
            *warnings,
            Table(
                ["replica", "atoms", "duration (ps)", "<T> (K)", "target (K)", "drift (kcal/mol/atom/ns)", "ns/day"],
                rows,
            ),
        ],
    )


def tables_sections(an_dir: Path) -> List[Section]:
    """Tables I–III: converged numbers beside the paper's; numbers that are not converged (or not computed) apart,
    without the paper's value, each with its reason."""
    tabs = read_json(an_dir / "tables.json")
    if tabs is None:
        return []
    out = []
    for name, rows in tabs.items():
        ok = {k: r for k, r in rows.items() if r.get("ours") is not None and r.get("converged") is not False}
        bad = {k: r for k, r in rows.items() if k not in ok and (r.get("status") or r.get("ours") is not None)}
        ok.update({k: r for k, r in rows.items() if k not in ok and k not in bad})  # reference rows (σ_exp)
        body = [
            (
                k,
                _num(r.get("ours")),
                _num(r.get("ci95"), ".2g"),
                r.get("sem_from", ""),
                _num(r.get("paper"), "g"),
                r.get("unit", ""),
                r.get("note", ""),
            )
            for k, r in ok.items()
        ]
        blocks = [Table(["quantity", "ours", "± 95 % CI", "from", "paper / experiment", "unit", "r_c and notes"], body)]
        if bad:
            blocks += [
                "Not converged or not computed: shown without the paper's value (a check of the workflow, "
                "not a result):",
                Table(
                    ["quantity", "ours", "± 95 % CI", "unit", "why"],
                    [
                        (
                            k,
                            _num(r.get("ours")),
                            _num(r.get("ci95"), ".2g"),
                            r.get("unit", ""),
                            "; ".join(r[x] for x in ("note", "status") if r.get(x)),
                        )
                        for k, r in bad.items()
                    ],
                ),
            ]
        out.append(Section(TABLE_TITLES.get(name, name), blocks))
    captions = read_json(an_dir / "captions.json") or {}
    figs = [Figure(p, captions.get(p.name, p.stem.replace("_", " "))) for p in sorted(an_dir.glob("*.png"))]
    if figs:
        out.append(Section("Figures", figs))
    return out


def write_report(cfg: Config, out: Path, records: Sequence, extra: Dict) -> Dict[str, Path]:
    """Write ``report.md`` (figures linked) and ``report.html`` (figures embedded) into ``out``."""
    by = {r.stage: r for r in records}

    def folder(stage: str) -> Path:  # through the run directory's link, so that report.md links stay short
        return out / stage if (out / stage).exists() else by[stage].dir

    sections = [
        run_section(cfg, extra),
        trust_section(cfg, extra, folder("analysis") if "analysis" in by else None),
        stages_section(records),
    ]
    if extra.get("ensemble"):
        sections += model_sections(Path(extra["ensemble"]), cfg.scale.name)
    for stage, make in (("al", al_section), ("md", md_section)):
        if stage in by and (s := make(folder(stage))) is not None:
            sections.append(s)
    if "analysis" in by:
        sections += tables_sections(folder("analysis"))
        text = folder("analysis") / "tables.txt"
        if text.exists():
            sections.append(Section("Tables as text", [Pre(text.read_text())]))
    title = f"deepeut report: {cfg.system.name} ({cfg.stage.name})"
    md_path = write_text_atomic(out / "report.md", to_markdown(title, sections, out))
    html_path = write_text_atomic(out / "report.html", to_html(title, sections))
    return {"md": md_path, "html": html_path}
