"""``stage=analysis``: every analysis of the paper on one or more trajectories (replicas), Tables I–III.

Per trajectory ``replica_<r>/``: ``cache.h5`` (see deepeut.analysis.series) and ``results.json`` (every curve and
number). For the whole stage: ``tables.json`` and ``tables.txt`` (Tables I–III: ours as mean ± standard error over
replicas, beside the paper's values and the experimental conductivity), ``curves/*.csv`` and PNG figures.
Units: Å, ps, D in 10⁻¹¹ m²/s, lifetimes in ns, conductivities in S/m.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from deepeut.config.schema import Config, ConfigError
from deepeut.stage_io import Trajectories
from deepeut.utils.io import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

TABLE_KEYS = {
    "I": ["cn_Li_O_TFSI", "cn_Li_O_amide", "cn_Hamide_O_TFSI", "cn_Hamide_O_amide"],
    "II": ["D_Li", "D_TFSI", "D_amide", "t_plus", "tau_Li_amide", "tau_R", "tau_ratio"],
    "III": ["sigma_GK", "sigma_NE", "sigma_ratio"],
}
UNITS = {
    "cn": "",
    "D": "1e-11 m^2/s",
    "t_plus": "",
    "tau_Li_amide": "ns",
    "tau_R": "ns",
    "tau_ratio": "",
    "sigma_GK": "S/m",
    "sigma_NE": "S/m",
    "sigma_ratio": "",
}


def trajectories_from_config(cfg: Config, out: Path) -> Trajectories:
    """The command line's trajectories: ``analysis.trajectories``, else ``md/replica_*/trajectory.h5`` beside the
    stage folder."""
    if cfg.analysis.trajectories:
        return Trajectories.of(cfg.analysis.trajectories)
    found = sorted((out.parent / "md").glob("replica_*/trajectory.h5"))
    if not found:
        raise ConfigError("analysis.trajectories: none given and no md/replica_*/trajectory.h5 beside this stage")
    return Trajectories.of(found)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labelings of the same atoms group them identically (label values may differ)."""
    pairs = np.unique(np.stack([a, b]), axis=1).shape[1]
    return pairs == len(np.unique(a)) == len(np.unique(b))


def sites_for(cfg: Config, traj):
    """Molecule ids, species and Fig. 1 labels by molecule recognition on the first frame."""
    from deepeut.analysis.series import sites_from
    from deepeut.systems import MoleculeRecognizer

    rec = MoleculeRecognizer.for_system(cfg.system)
    pos0 = traj.positions(slice(0, 1))[0]
    res = rec.recognise(pos0, np.asarray(traj.numbers), traj.cell)
    if not res.ok:
        raise ConfigError(
            f"analysis: the first frame's molecules are not those of system={cfg.system.name}: "
            f"{'; '.join(res.problems[:2])}"
        )
    given = getattr(traj, "molecule", None)
    if given is not None and not same_partition(np.asarray(given), res.fragment):
        raise ConfigError(
            f"analysis: the trajectory's molecule ids (e.g. a dump's mol column) group atoms "
            f"differently from the bonds of its first frame for system={cfg.system.name}"
        )
    log.info(
        "molecules: %s",
        "the file's molecule ids, which agree with the bonds of the first frame"
        if given is not None
        else "recognised from the bonds of the first frame (the file has no molecule ids)",
    )
    species_atom = np.array([res.fragment_species[f] for f in res.fragment])
    amide = next(s.name for s in cfg.system.species if s.role == "solvent")
    species_atom = np.where(species_atom == amide, "amide", species_atom)
    charges = {s.name if s.role != "solvent" else "amide": s.charge for s in cfg.system.species}
    return sites_from(res.fragment, res.labels, np.asarray(traj.masses), species_atom, charges)


def sdf_accumulators(sites, traj, half_width: float) -> Dict:
    """One SDF accumulator per reference species (amide, TFSI), observing the Li, TFSI and amide CoMs (Fig. 10)."""
    from deepeut.analysis.series import sdf_references
    from deepeut.analysis.sdf import SDFAccumulator

    observed = {s: sites.molecules_of(s) for s in ("Li", "TFSI", "amide")}
    numbers = np.asarray(traj.numbers)
    return {
        name: SDFAccumulator(triples, atoms, numbers[atoms[0]], observed, mols, half_width=half_width)
        for name, (triples, atoms, mols) in sdf_references(sites).items()
    }


def atom_rdf_pairs(sites) -> Dict[str, tuple]:
    return {
        "Li-O_TFSI": (sites.li, sites.o_tfsi),
        "Li-O_amide": (sites.li, sites.o_amide),
        "Hamide-O_TFSI": (sites.h_amine, sites.o_tfsi),
        "Hamide-O_amide": (sites.h_amine, sites.o_amide),
        "Li-Li": (sites.li, sites.li),
    }


def com_pairs(species: np.ndarray) -> Dict[str, tuple]:
    idx = {s: np.nonzero(species == s)[0] for s in ("Li", "TFSI", "amide")}
    names = [("Li", "Li"), ("Li", "TFSI"), ("Li", "amide"), ("TFSI", "TFSI"), ("TFSI", "amide"), ("amide", "amide")]
    return {f"{a}-{b}": (idx[a], idx[b]) for a, b in names}


def analyse_trajectory(cfg: Config, path: Path, rdir: Path) -> Dict:
    """Cache pass, then every enabled analysis of one trajectory; writes ``results.json``."""
    import h5py

    from deepeut.analysis.series import build_cache
    from deepeut.analysis.rdf import RDFAccumulator
    from deepeut.trajectory.readers import open_trajectory

    a = cfg.analysis
    rdir.mkdir(parents=True, exist_ok=True)
    traj = open_trajectory(path, a.timestep_fs, velocity_unit=a.dump_velocity_unit, chunk_mb=a.read_chunk_mb)
    sites = sites_for(cfg, traj)
    times = np.asarray(traj.times_ps)
    start_ps = (
        a.start_ps if a.start_ps is not None else float(getattr(traj, "parameters", {}).get("equilibration_ps", 0.0))
    )
    start = int(np.searchsorted(times, start_ps))
    spacing_fs = 1000.0 * float(np.median(np.diff(times))) if len(times) > 1 else float("nan")
    log.info(
        "%s: %d frames %.3g fs apart, %.4g ps in all; analysed from %.4g ps",
        path,
        len(times),
        spacing_fs,
        float(times[-1] - times[0]) if len(times) else 0.0,
        start_ps,
    )
    if start >= len(times):
        traj.close()
        raise ConfigError(
            f"analysis.start_ps: {start_ps:g} ps is at or beyond the end of {path} "
            f"({float(times[-1]):.4g} ps); lower it"
        )
    from deepeut.utils.geometry import plane_distances

    r_max = min(a.rdf_r_max_A, 0.5 * float(plane_distances(traj.cell).min()) - 1e-6)
    molecule = sites.molecule if a.rdf_pairs == "intermolecular" else None
    rdf = RDFAccumulator(atom_rdf_pairs(sites), r_max, a.rdf_bins, molecule=molecule) if a.rdf else None
    sdfs = sdf_accumulators(sites, traj, r_max) if a.sdf else {}
    cache = build_cache(
        traj,
        sites,
        rdir / "cache.h5",
        a.contact_cutoff_A,
        start,
        a.stride,
        a.block_frames,
        ([rdf] if rdf is not None else []) + list(sdfs.values()),
        a.rdf_stride,
    )
    traj.close()
    res: Dict = {"trajectory": str(path), "start_ps": start_ps, "rdf_r_max_A": r_max}
    if sdfs:
        res["sdf_cubes"] = {
            ref: {k: str(v) for k, v in acc.write_cubes(rdir / f"sdf_around_{ref}").items()}
            for ref, acc in sdfs.items()
        }
    if rdf is not None:
        res["rdf"] = {k: v.to_json() for k, v in rdf.result().items()}
    with h5py.File(cache) as f:
        res.update(dynamics_from_cache(cfg, f, r_max))
    write_json_atomic(rdir / "results.json", res)
    return res


def dynamics_from_cache(cfg: Config, f, r_max: float) -> Dict:
    """CoM RDFs, diffusion, conductivity, lifetimes, VCCFs and the CDF from an open cache file."""
    from deepeut.analysis import lifetimes as lt
    from deepeut.analysis import transport as tr
    from deepeut.analysis.base import Frame
    from deepeut.analysis.correlate import Columns
    from deepeut.analysis.rdf import RDFAccumulator

    a = cfg.analysis
    t = f["time_ps"][:]
    dt = float(t[1] - t[0]) if len(t) > 1 else float("nan")
    species = f["species"].asstr()[:]
    cell = f["cell"][:]
    volume = abs(float(np.linalg.det(cell)))
    com, vel = f["com_position"], f["com_velocity"]
    n_t = len(t)
    max_lag = tr.max_lag_frames(n_t, a.max_lag_fraction)
    out: Dict = {"n_frames": n_t, "dt_ps": dt, "volume_A3": volume}
    idx = {s: np.nonzero(species == s)[0] for s in ("Li", "TFSI", "amide")}
    out["n_molecules"] = {s: int(len(v)) for s, v in idx.items()}
    out["run_ps"] = float(t[-1] - t[0]) if n_t > 1 else 0.0
    skipped = short_run_skips(cfg, n_t, dt)
    if not f.attrs.get("has_velocities", True):
        skipped.update(
            {
                name: "the trajectory has no velocities (vx vy vz)"
                for name in VELOCITY_ANALYSES
                if name == "block_sem" or getattr(a, name)
            }
        )
    if skipped:
        out["skipped"] = skipped
        log.warning(
            "analysis of %d frames (%.3g ps): not computed: %s",
            n_t,
            n_t * dt if n_t > 1 else 0.0,
            "; ".join(f"{k} ({v})" for k, v in skipped.items()),
        )
    a = dataclasses.replace(a, **{name: False for name in skipped if name in CORRELATION_ANALYSES})
    if "diffusion" in skipped:
        a = dataclasses.replace(a, conductivity=False, vccf=False)
    if "block_sem" in skipped:
        a = dataclasses.replace(a, n_blocks=1)
    if a.com_rdf:
        acc = RDFAccumulator(com_pairs(species), r_max, a.rdf_bins, points="com")
        frames = (Frame(positions=None, cell=cell, com=com[k]) for k in range(0, n_t, a.rdf_stride))
        out["com_rdf"] = {k: v.to_json() for k, v in acc.run(frames).items()}
    d = {}
    if a.diffusion or a.conductivity:
        for s, ids in idx.items():  # lazy column views: one particle block in memory at a time
            res = tr.diffusion(Columns(vel, ids), dt, Columns(com, ids), max_lag)
            d[s] = res
            out.setdefault("diffusion", {})[s] = {
                "D_gk_A2_ps": res.D_gk,
                "D_msd_A2_ps": res.D_msd,
                "msd_fit_from_ps": res.msd_fit_from_ps,
                "msd_beta": res.msd_beta,
                **res.in_paper_units(),
                "lag_ps": res.lag_ps.tolist(),
                "vacf_normalised": res.vacf_normalised.tolist(),
                "msd_A2": res.msd_A2.tolist(),
            }
        out["t_plus"] = tr.transport_number(d["Li"].D_gk, d["TFSI"].D_gk)
    if a.conductivity:
        ions = np.sort(np.concatenate([idx["Li"], idx["TFSI"]]))
        c = tr.conductivity(
            Columns(vel, ions),
            f["charge"][:][ions],
            dt,
            cfg.system.temperature_K,
            volume,
            d["Li"].D_gk,
            d["TFSI"].D_gk,
            len(idx["Li"]),
            max_lag,
        )
        out["conductivity"] = {
            "sigma_GK_S_m": c.sigma_S_m,
            "sigma_NE_S_m": c.sigma_ne_S_m,
            "ratio": c.ratio,
            "fit_tau_ps": c.fit_tau_ps,
            "lag_ps": c.lag_ps.tolist(),
            "running_S_m": c.running_S_m.tolist(),
        }
    if a.diffusion and a.n_blocks > 1:
        out["block_sem"] = block_estimates(cfg, vel, com, idx, f["charge"][:], dt, volume, n_t)
    if a.diffusion and a.viscosity_mPa_s:
        edge = volume ** (1 / 3)
        out["yeh_hummer"] = {
            s: tr.yeh_hummer(d[s].D_gk, cfg.system.temperature_K, a.viscosity_mPa_s, edge) * tr.A2_PS_IN_1E_11_M2_S
            for s in d
        }
    if a.lifetimes:
        lag = np.arange(max_lag) * dt
        p = lt.pair_existence_acf_from_contacts(f["contact_offsets"][:], f["contact_ids"][:], max_lag)
        u = lt.vector_acf(f["co_vector"], max_lag)
        tau_pair = lt.lifetime(lag, p) if np.all(np.isfinite(p)) else float("nan")
        tau_r = lt.lifetime(lag, u, n_terms=2)  # librational drop + slow reorientation (two terms)
        out["lifetimes"] = {
            "tau_Li_amide_ps": tau_pair,
            "tau_R_ps": tau_r,
            "ratio": tau_pair / tau_r,
            "lag_ps": lag.tolist(),
            "pair_existence": p.tolist(),
            "co_acf": u.tolist(),
        }
    if a.vccf and a.com_rdf:
        lag_n = min(max(2, int(round(a.vccf_lag_ps / dt))), n_t // 2)
        out["vccf"] = {}
        for name, (ia, ib) in com_pairs(species).items():
            radius, source = shell_radius(name, out["com_rdf"][name]["first_min_A"], a.vccf_shell_A)
            if not np.isfinite(radius) or len(ia) == 0 or len(ib) == 0:
                continue
            same = name.split("-")[0] == name.split("-")[1]
            c = tr.vccf(vel[:, ia], vel[:, ib], com[:, ia], com[:, ib], cell, min(radius, r_max), lag_n, same=same)
            out["vccf"][name] = {
                "R_A": min(radius, r_max),
                "R_from": source,
                "lag_ps": (np.arange(lag_n) * dt).tolist(),
                "C": c.tolist(),
            }
    if a.cdf and len(idx["TFSI"]):
        out["cdf"] = li_tfsi_torsion_cdf(com, f["torsion_CSSC"], idx, cell, r_max, a.rdf_stride)
    return out


def shell_radius(pair: str, first_min_A: float, named: Dict[str, float]) -> Tuple[float, str]:
    """VCCF shell radius R (Å) of a CoM pair and where it comes from: the paper's shell when
    ``analysis.vccf_shell_A`` names the pair (either order), else the first minimum of the CoM g(r) (Eq. 16)."""
    a, b = pair.split("-")
    given = named.get(pair, named.get(f"{b}-{a}"))
    if given is not None:
        return float(given), "analysis.vccf_shell_A (the paper's shell)"
    return float(first_min_A), "first minimum of the CoM g(r)"


#: analyses that correlate frames in time (they need ``analysis.min_correlation_frames`` frames)
CORRELATION_ANALYSES = ("diffusion", "conductivity", "lifetimes", "vccf")
#: analyses that need atom velocities (Green–Kubo D and σ, VCCFs, their block errors)
VELOCITY_ANALYSES = ("diffusion", "conductivity", "vccf", "block_sem")


def short_run_skips(cfg: Config, n_frames: int, dt_ps: float) -> Dict[str, str]:
    """Analyses a run of ``n_frames`` frames (spacing ``dt_ps``) is too short for, each with the reason and the
    number of frames (and ps) it needs; empty when every enabled analysis can run."""
    a = cfg.analysis
    need = a.min_correlation_frames
    spacing = dt_ps if np.isfinite(dt_ps) else 0.0

    def reason(frames: int) -> str:
        return (
            f"needs >= {frames} frames after analysis.start_ps and analysis.stride (>= {frames * spacing:.3g} ps "
            f"at this spacing), has {n_frames}"
        )

    out = {name: reason(need) for name in CORRELATION_ANALYSES if getattr(a, name) and n_frames < need}
    if a.diffusion and a.n_blocks > 1 and n_frames < a.n_blocks * need:
        out["block_sem"] = reason(a.n_blocks * need) + f" ({a.n_blocks} time blocks)"
    return out


def block_estimates(cfg: Config, vel, com, idx, charges, dt: float, volume: float, n_t: int) -> Dict[str, float]:
    """Standard errors of D (10⁻¹¹ m²/s), t+, σ and σ_NE (S/m) and σ/σ_NE from ``analysis.n_blocks`` consecutive
    time blocks (coordination numbers and lifetimes get theirs from the spread over replicas)."""
    from deepeut.analysis import transport as tr
    from deepeut.analysis.correlate import Columns, block_error

    nb = cfg.analysis.n_blocks
    edges = np.linspace(0, n_t, nb + 1).astype(int)
    vals: Dict[str, list] = {}
    ions = np.sort(np.concatenate([idx["Li"], idx["TFSI"]]))
    for b0, b1 in zip(edges[:-1], edges[1:]):
        frames = slice(b0, b1)
        lag = tr.max_lag_frames(b1 - b0, cfg.analysis.max_lag_fraction)
        d = {s: tr.diffusion(Columns(vel, ids, frames), dt, None, lag).D_gk for s, ids in idx.items() if len(ids)}
        for s, v in d.items():
            vals.setdefault(f"D_{s}", []).append(v * tr.A2_PS_IN_1E_11_M2_S)
        if "Li" in d and "TFSI" in d:
            vals.setdefault("t_plus", []).append(tr.transport_number(d["Li"], d["TFSI"]))
        if cfg.analysis.conductivity and "Li" in d and "TFSI" in d:
            c = tr.conductivity(
                Columns(vel, ions, frames),
                charges[ions],
                dt,
                cfg.system.temperature_K,
                volume,
                d["Li"],
                d["TFSI"],
                len(idx["Li"]),
                lag,
            )
            vals.setdefault("sigma_GK", []).append(c.sigma_S_m)
            vals.setdefault("sigma_NE", []).append(c.sigma_ne_S_m)
            vals.setdefault("sigma_ratio", []).append(c.ratio)
    return {k: block_error(v) for k, v in vals.items()}


def li_tfsi_torsion_cdf(com, torsion, idx, cell, r_max: float, stride: int, n_r: int = 40, n_phi: int = 36) -> Dict:
    """g(r, φ): Li–TFSI CoM distance vs the TFSI's C–S–S–C torsion |φ| (Fig. 9), normalised to 1 for no correlation."""
    from deepeut.utils.geometry import minimum_image

    hist = np.zeros((n_r, n_phi))
    n_frames = 0
    for k in range(0, com.shape[0], stride):
        li, tf = com[k][idx["Li"]], com[k][idx["TFSI"]]
        r = np.linalg.norm(minimum_image(li[:, None] - tf[None], cell), axis=2)  # (n_li, n_tfsi)
        phi = np.broadcast_to(np.abs(torsion[k])[None, :], r.shape)
        h, _, _ = np.histogram2d(r.ravel(), phi.ravel(), bins=(n_r, n_phi), range=((0, r_max), (0, 180)))
        hist += h
        n_frames += 1
    r_edges, phi_edges = np.linspace(0, r_max, n_r + 1), np.linspace(0, 180, n_phi + 1)
    shell = 4 / 3 * np.pi * np.diff(r_edges**3)
    rho = len(idx["TFSI"]) / abs(np.linalg.det(cell))
    phi_frac = hist.sum(axis=0) / max(hist.sum(), 1)
    expected = len(idx["Li"]) * n_frames * rho * shell[:, None] * phi_frac[None, :]
    g = np.divide(hist, expected, out=np.zeros_like(hist), where=expected > 0)
    return {
        "r_edges_A": r_edges.tolist(),
        "phi_edges_deg": phi_edges.tolist(),
        "g": g.tolist(),
        "ranges_deg": {"cis": [0, 90], "gauche": [90, 120], "trans": [120, 180]},
    }  # the paper's (Fig. 9)


def paper_numbers(res: Dict) -> Dict[str, float]:
    """One trajectory's values of the Tables I–III quantities, in the paper's units."""
    v: Dict[str, float] = {}
    rdf = res.get("rdf", {})
    for key, name in (
        ("cn_Li_O_TFSI", "Li-O_TFSI"),
        ("cn_Li_O_amide", "Li-O_amide"),
        ("cn_Hamide_O_TFSI", "Hamide-O_TFSI"),
        ("cn_Hamide_O_amide", "Hamide-O_amide"),
    ):
        if name in rdf:
            v[key] = rdf[name]["cn_first_min"]
    dif = res.get("diffusion", {})
    for s in ("Li", "TFSI", "amide"):
        if s in dif:
            v[f"D_{s}"] = dif[s]["D_gk_1e-11_m2_s"]
    if "t_plus" in res:
        v["t_plus"] = res["t_plus"]
    for s, val in res.get("yeh_hummer", {}).items():
        v[f"D_{s}_YH"] = val
    if "lifetimes" in res:
        v["tau_Li_amide"] = res["lifetimes"]["tau_Li_amide_ps"] / 1000.0
        v["tau_R"] = res["lifetimes"]["tau_R_ps"] / 1000.0
        v["tau_ratio"] = res["lifetimes"]["ratio"]
    if "conductivity" in res:
        c = res["conductivity"]
        v.update(sigma_GK=c["sigma_GK_S_m"], sigma_NE=c["sigma_NE_S_m"], sigma_ratio=c["ratio"])
    return v


def analysis_of(key: str) -> str:
    """The analysis (a key of ``analysis.*``) that computes the table entry ``key``."""
    if key.startswith("D_") or key == "t_plus":
        return "diffusion"
    if key.startswith("tau_"):
        return "lifetimes"
    if key.startswith("sigma_"):
        return "conductivity"
    return "rdf"


def tables(
    cfg: Config,
    per_replica: List[Dict[str, float]],
    block_sems: List[Dict[str, float]] = (),
    skipped: List[Dict[str, str]] = (),
) -> Dict:
    """Mean and standard error beside the paper's value, for every Table I–III entry: the spread over replicas,
    or with one replica the spread over time blocks (``sem_from`` says which). An entry no replica could compute
    (``skipped``: the reasons of :func:`short_run_skips`) is kept with ``ours`` null and its ``status``."""
    from deepeut.utils.statistics import block_error, t_half_width

    out = {}
    for table, keys in TABLE_KEYS.items():
        rows = {}
        for k in keys:
            vals = [r[k] for r in per_replica if k in r]
            if not vals:
                why = next((s[analysis_of(k)] for s in skipped if analysis_of(k) in s), None)
                if why:
                    rows[k] = {
                        "ours": None,
                        "sem": None,
                        "n_replicas": 0,
                        "status": f"not computed: {why}",
                        "paper": cfg.system.paper.get(k),
                        "unit": UNITS.get(k, UNITS.get(k.split("_")[0], "")),
                    }
                continue
            sem, dof, sem_from = block_error(vals), len(vals) - 1, f"{len(vals)} replica{'s' * (len(vals) != 1)}"
            if len(vals) == 1 and block_sems and k in block_sems[0]:
                nb = cfg.analysis.n_blocks
                sem, dof, sem_from = block_sems[0][k], nb - 1, f"{nb} time blocks"
            rows[k] = {
                "ours": float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan"),
                "sem": sem,
                "dof": dof,
                "ci95": t_half_width(sem, dof),
                "sem_from": sem_from,
                "n_replicas": len(vals),
                "paper": cfg.system.paper.get(k),
                "unit": UNITS.get(k, UNITS.get(k.split("_")[0], "")),
            }
        out[table] = rows
    ratio_rows_of_means(out, per_replica)
    yh = [r for r in per_replica if any(k.endswith("_YH") for k in r)]
    if yh:
        for k in (k for k in yh[0] if k.endswith("_YH")):
            vals = [r[k] for r in yh]
            sem = block_error(vals)
            out["II"][k] = {
                "ours": float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan"),
                "sem": sem,
                "dof": len(vals) - 1,
                "ci95": t_half_width(sem, len(vals) - 1),
                "sem_from": f"{len(vals)} replica{'s' * (len(vals) != 1)}",
                "n_replicas": len(yh),
                "paper": None,
                "unit": UNITS["D"],
            }
    out["III"]["sigma_exp"] = {"ours": None, "paper": cfg.system.conductivity_exp_S_m, "unit": "S/m"}
    return out


#: ratios of Tables II–III as (numerator, denominator) of per-replica values
RATIOS = {
    "t_plus": (lambda v: v["D_Li"], lambda v: v["D_Li"] + v["D_TFSI"]),
    "tau_ratio": (lambda v: v["tau_Li_amide"], lambda v: v["tau_R"]),
    "sigma_ratio": (lambda v: v["sigma_GK"], lambda v: v["sigma_NE"]),
}


def ratio_rows_of_means(tabs: Dict, per_replica: List[Dict[str, float]]) -> None:
    """With several replicas, t+, τ_Li-amide/τ_R and σ/σ_NE become ratios of the replica means (as the paper
    reports them) with first-order propagated errors, instead of means of per-replica ratios."""
    from deepeut.utils.statistics import ratio_of_means, t_half_width

    for rows in tabs.values():
        for k, row in rows.items():
            if k not in RATIOS or row.get("n_replicas", 0) < 2:
                continue
            num, den = RATIOS[k]
            try:
                pairs = [(num(v), den(v)) for v in per_replica]
            except KeyError:
                continue
            r, sem = ratio_of_means([p[0] for p in pairs], [p[1] for p in pairs])
            row.update(
                ours=r,
                sem=sem,
                ci95=t_half_width(sem, len(pairs) - 1),
                sem_from=f"{len(pairs)} replicas, ratio of means",
            )


CN_PAIRS = {
    "cn_Li_O_TFSI": "Li-O_TFSI",
    "cn_Li_O_amide": "Li-O_amide",
    "cn_Hamide_O_TFSI": "Hamide-O_TFSI",
    "cn_Hamide_O_amide": "Hamide-O_amide",
}


def annotate_cutoffs(tabs: Dict, results: List[Dict]) -> None:
    """Table I rows get the cutoff r_c (Å, first g(r) minimum, mean over replicas) and, where intramolecular pairs
    were excluded, N(r_c) counting every pair, in ``r_c_A``, ``ours_all_pairs`` and a ``note``."""
    for key, row in tabs.get("I", {}).items():
        rdfs = [r["rdf"][CN_PAIRS[key]] for r in results if CN_PAIRS.get(key) in r.get("rdf", {})]
        if not rdfs:
            continue
        rc = [x["first_min_A"] for x in rdfs if np.isfinite(x["first_min_A"])]
        row["r_c_A"] = float(np.mean(rc)) if rc else None
        note = f"r_c = {row['r_c_A']:.2f} Å" if rc else "no first minimum within r_max"
        if all("cn_first_min_all" in x for x in rdfs):
            row["ours_all_pairs"] = float(np.nanmean([x["cn_first_min_all"] for x in rdfs]))
            note += f"; intermolecular (all pairs: {row['ours_all_pairs']:.3g})"
        row["note"] = note


def annotate_convergence(cfg: Config, tabs: Dict, results: List[Dict]) -> None:
    """Every computed Table I–III entry gets ``converged`` (bool) and, when not, its ``status`` with the reason
    (deepeut.analysis.convergence)."""
    from deepeut.analysis.convergence import statuses

    if not results:
        return
    run_ps = min(r.get("run_ps", 0.0) for r in results)
    n_li = min(r.get("n_molecules", {}).get("Li", 0) for r in results)
    why = statuses(results, run_ps, n_li, cfg.analysis.max_lag_fraction, cfg.system.paper.get("tau_Li_amide"))
    for rows in tabs.values():
        for k, row in rows.items():
            if row.get("ours") is None:
                continue
            row["converged"] = k not in why
            if k in why:
                row["status"] = why[k]


def tables_text(cfg: Config, tabs: Dict) -> str:
    lines = [
        f"{cfg.system.title or cfg.system.name} at {cfg.system.temperature_K:g} K "
        "(ours: mean ± half-width of its 95 % confidence interval, Student t over the independent estimates "
        "named under 'from': replicas, or time blocks of one replica; paper: Shayestehpour & Zahn; "
        "(in parentheses): not converged, shown without the paper's value, the reason in brackets)"
    ]
    titles = {
        "I": "Table I: coordination numbers N(r_c) at the first RDF minimum (Eq. 7)",
        "II": "Table II: D (1e-11 m²/s, Green–Kubo), t+, τ_Li-amide and τ_R (ns)",
        "III": "Table III: ionic conductivity (S/m): Green–Kubo σ, Nernst–Einstein σ_NE, α = σ/σ_NE",
    }
    for table, rows in tabs.items():
        lines += ["", titles[table], f"{'quantity':<20}{'ours':>12}{'± 95 % CI':>11}{'from':>16}{'paper':>10}  unit"]
        for k, r in rows.items():
            unconverged = r.get("converged") is False
            ours = "" if r["ours"] is None else f"({r['ours']:.3g})" if unconverged else f"{r['ours']:.3g}"
            ci = r.get("ci95")
            ci = "" if ci is None or not np.isfinite(ci) else f"{ci:.2g}"
            # a number that failed its convergence check is not set beside the paper's (its status says why)
            paper = "" if r["paper"] is None else "—" if unconverged or r["ours"] is None else f"{r['paper']:g}"
            lines.append(
                f"{k:<20}{ours:>12}{ci:>11}{r.get('sem_from', ''):>16}{paper:>10}  {r['unit']}"
                + "".join(f"  [{r[x]}]" for x in ("note", "status") if r.get(x))
            )
    return "\n".join(lines)


def analysis(cfg: Config, out: Path) -> Dict:
    """``stage=analysis`` from the command line (:func:`trajectories_from_config`), then :func:`run_analysis`."""
    return run_analysis(cfg, trajectories_from_config(cfg, out), out)


def run_analysis(cfg: Config, trajectories: Trajectories, out: Path) -> Dict:
    """Analyse every trajectory (replica), then write Tables I–III (``tables.json``, ``tables.txt``) and the
    figures; returns the tables' path."""
    from deepeut.analysis.plots import write_figures

    results = []
    for r, path in enumerate(trajectories.paths):
        rdir = out / f"replica_{r}"
        done = rdir / "results.json"
        if done.exists() and json.loads(done.read_text()).get("trajectory") == str(path):
            results.append(json.loads(done.read_text()))
            continue
        log.info("analysing %s", path)
        results.append(analyse_trajectory(cfg, path, rdir))
    tabs = tables(
        cfg,
        [paper_numbers(r) for r in results],
        [r.get("block_sem", {}) for r in results],
        [r.get("skipped", {}) for r in results],
    )
    annotate_cutoffs(tabs, results)
    annotate_convergence(cfg, tabs, results)
    write_json_atomic(out / "tables.json", tabs)
    text = tables_text(cfg, tabs)
    write_text_atomic(out / "tables.txt", text + "\n")
    print(text)
    write_figures(results, out, cfg.system.name)
    from deepeut.utils.tracking import log_results

    log_results(
        cfg,
        out,
        "analysis",
        {t: {k: r["ours"] for k, r in rows.items() if r["ours"] is not None} for t, rows in tabs.items()},
        text,
    )
    return {"tables": str(out / "tables.json")}
