"""Is a number of Tables I–III converged? A status per entry with the reason and the run length that would do.

Rules (times in ps; ``run`` is the analysed length after ``analysis.start_ps``):

* **D, t+, σ** (Green–Kubo and Einstein): the centre-of-mass MSD must be diffusive over the fit window (chosen
  from the data: deepeut.analysis.transport.msd_fit_window), its log-log slope β = d ln MSD / d ln t within
  ``BETA_TOL`` of 1, and the molecules must have moved
  ``MIN_DISPLACEMENT_A`` on average (an ion must leave its cage several times). Needed run: the lag at which the
  MSD reaches that displacement, divided by the correlation depth fraction (30 %).
* **τ_Li-amide, τ_R**: fitted lifetimes are extrapolated when the run is shorter than ``LIFETIME_RUNS`` × τ
  (say so, do not hide the number); needed run: ``LIFETIME_RUNS`` × τ.
* **coordination numbers**: Li⁺ shells are renewed on the Li–amide lifetime, so a run shorter than
  ``LIFETIME_RUNS`` × τ_Li-amide (ours, else the paper's) samples only the shells it started with.
* **σ_GK**: the exponential fitted to the running Green–Kubo integral must relax within the data: its τ at most
  1/``PLATEAU_WINDOWS`` of the lag window (else the plateau is not reached and the limit is extrapolated).
* any transport entry from fewer than ``MIN_IONS`` cations is marked as too few ions.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

BETA_TOL = 0.15
MIN_DISPLACEMENT_A = 10.0  # √MSD in Å
LIFETIME_RUNS = 3.0
MIN_IONS = 8
PLATEAU_WINDOWS = 3.0


def plateau_status(cond: Dict) -> Optional[str]:
    """None when the Green–Kubo running integral reaches its plateau within the lag window, else the reason."""
    lag = np.asarray(cond.get("lag_ps") or [0.0], float)
    tau, window = float(cond.get("fit_tau_ps", float("nan"))), float(lag[-1])
    if not np.isfinite(tau):
        return "not converged: no plateau could be fitted to the running Green–Kubo integral"
    if PLATEAU_WINDOWS * tau > window:
        return (
            f"plateau not reached: the running Green–Kubo integral relaxes with τ = {tau:.3g} ps, the lag "
            f"window is {window:.3g} ps (needs ≥ {PLATEAU_WINDOWS:g} τ = {PLATEAU_WINDOWS * tau:.3g} ps, "
            f"i.e. a run ≳ {PLATEAU_WINDOWS * tau / 0.3:.3g} ps at 30 % correlation depth)"
        )
    return None


def msd_exponent(lag_ps: np.ndarray, msd_A2: np.ndarray) -> float:
    """β over the second half of the correlation depth (where D_MSD is fitted): slope of ln MSD vs ln t."""
    lag, m = np.asarray(lag_ps, float), np.asarray(msd_A2, float)
    half = slice(len(lag) // 2, len(lag))
    ok = (lag[half] > 0) & (m[half] > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(lag[half][ok]), np.log(m[half][ok]), 1)[0])


def diffusion_status(dif: Dict, run_ps: float, lag_fraction: float) -> Optional[str]:
    """None when diffusive and far enough, else the reason with the run length needed."""
    lag, m = np.asarray(dif.get("lag_ps", [])), np.asarray(dif.get("msd_A2") or [], float)
    if len(m) < 4:
        return f"not converged: no MSD over a {run_ps:.3g} ps run"
    beta = dif["msd_beta"] if dif.get("msd_beta") is not None else msd_exponent(lag, m)  # over the fit window
    reasons = []
    if not np.isfinite(beta) or abs(beta - 1) > BETA_TOL:
        reasons.append(f"MSD not diffusive (β = {beta:.2f}, needs 1 ± {BETA_TOL:g})")
    if m[-1] < MIN_DISPLACEMENT_A**2:
        reasons.append(f"molecules moved {np.sqrt(max(m[-1], 0)):.2g} Å (needs ≥ {MIN_DISPLACEMENT_A:g} Å)")
    if not reasons:
        return None
    d = dif.get("D_msd_A2_ps") or dif.get("D_gk_A2_ps")
    needed = (MIN_DISPLACEMENT_A**2 / (6 * d) / lag_fraction) if d and np.isfinite(d) and d > 0 else float("nan")
    need = f"; a run of ≳ {needed:.3g} ps would do at this D" if np.isfinite(needed) and needed > run_ps else ""
    return f"not converged: {'; '.join(reasons)} in a {run_ps:.3g} ps run{need}"


def lifetime_status(tau_ps: float, run_ps: float) -> Optional[str]:
    if not np.isfinite(tau_ps):
        return "not converged: no lifetime could be fitted"
    if run_ps < LIFETIME_RUNS * tau_ps:
        return (
            f"extrapolated: the {run_ps:.3g} ps run is shorter than {LIFETIME_RUNS:g} × τ = "
            f"{LIFETIME_RUNS * tau_ps:.3g} ps (the run length that would do)"
        )
    return None


def statuses(
    results: List[Dict], run_ps: float, n_cations: int, lag_fraction: float, paper_tau_li_amide_ns: Optional[float]
) -> Dict[str, str]:
    """Status text per Table I–III key that is not converged (replica 0's curves; the run is the shortest)."""
    out: Dict[str, str] = {}
    res = results[0] if results else {}
    dif = res.get("diffusion", {})
    few = f"too few ions for statistics: {n_cations} Li⁺ (needs ≥ {MIN_IONS})" if n_cations < MIN_IONS else None
    for s in ("Li", "TFSI", "amide"):
        if s in dif:
            why = diffusion_status(dif[s], run_ps, lag_fraction)
            out[f"D_{s}"] = "; ".join(x for x in (why, few if s != "amide" else None) if x)
    bad_ions = [f"D_{s}" for s in ("Li", "TFSI") if out.get(f"D_{s}")]
    for k in ("t_plus", "sigma_GK", "sigma_NE", "sigma_ratio"):
        if bad_ions:
            out[k] = f"not converged: {' and '.join(bad_ions)} {'is' if len(bad_ions) == 1 else 'are'} not (see there)"
    if res.get("conductivity"):
        plateau = plateau_status(res["conductivity"])
        for k in ("sigma_GK", "sigma_ratio"):
            out[k] = "; ".join(x for x in (out.get(k), plateau) if x)
    lt = res.get("lifetimes")
    if lt:
        for key, tau in (("tau_Li_amide", lt.get("tau_Li_amide_ps")), ("tau_R", lt.get("tau_R_ps"))):
            why = lifetime_status(float(tau) if tau is not None else float("nan"), run_ps)
            if why:
                out[key] = why
        if "tau_Li_amide" in out or "tau_R" in out:
            out["tau_ratio"] = "from the lifetimes above: " + (out.get("tau_Li_amide") or out["tau_R"]).split(":")[0]
    tau_shell = (lt or {}).get("tau_Li_amide_ps")
    if tau_shell is None or not np.isfinite(tau_shell) or tau_shell * LIFETIME_RUNS > run_ps:
        tau_ps = tau_shell if tau_shell and np.isfinite(tau_shell) else (paper_tau_li_amide_ns or np.nan) * 1000
        if np.isfinite(tau_ps) and run_ps < LIFETIME_RUNS * tau_ps:
            text = (
                f"shells not renewed: the {run_ps:.3g} ps run is shorter than {LIFETIME_RUNS:g} × τ_Li-amide "
                f"= {LIFETIME_RUNS * tau_ps:.3g} ps"
            )
            for k in ("cn_Li_O_TFSI", "cn_Li_O_amide"):
                out[k] = text
    return {k: v for k, v in out.items() if v}


def short_contacts(results: List[Dict], limits_A: Dict[str, float]) -> List[str]:
    """Intermolecular contacts closer than the failure limits of ``validate.min_contact_A`` (the same definition as
    the validation stage), from the atom RDFs of every replica: one text per offending RDF pair, with the closest
    distance seen (the lower edge of the first non-empty bin, Å)."""
    out = []
    for name in sorted({k for r in results for k in r.get("rdf", {})}):
        a, b = name.split("-", 1)
        pair = f"{a[0] if a.startswith('H') else a}-{b.split('_')[0]}"  # Hamide-O_TFSI -> H-O, Li-O_amide -> Li-O
        if pair not in limits_A:
            continue
        closest = []
        for r in results:
            x = r.get("rdf", {}).get(name)
            if not x:
                continue
            rr, g = np.asarray(x["r_A"], float), np.asarray(x["g"], float)
            hit = np.nonzero(g > 0)[0]
            if len(hit):
                half = 0.5 * (rr[1] - rr[0]) if len(rr) > 1 else 0.0
                closest.append(float(rr[hit[0]] - half))
        if closest and min(closest) < limits_A[pair]:
            out.append(
                f"{name} contacts down to {min(closest):.2f} Å, below the {limits_A[pair]:g} Å failure limit "
                f"for {pair} (validate.min_contact_A): structure and dynamics near these contacts are outside what "
                "the potential was trained on"
            )
    return out
