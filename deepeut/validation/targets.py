"""The potentials campaign's targets, judged from the records it ships: one markdown table for README.

Per system and box size, the validation record beside the embedded ensemble (``deepeut/models/<system>/
validation_<scale>.json``, from stage=validate) against the targets of the issue "Potentials that hold": committee
mean and member 0 without failure for ≥ 10 ps (tiny box), ≥ 5 ps (4 ion pairs) and ≥ 2 ps (the paper's training
box); a total Li–O coordination number in 3.5–5.0; conformal coverage of ũ in 0.85–0.95 at α = 0.1; force RMSE of
every member ≤ 0.10 eV/Å on fresh reference labels of the runs' own frames. Per system, the active-learning history
(``deepeut/data/campaign/<system>/al_history.json``): did a loop segment stop by its rule? Nothing is recomputed.

    python -m deepeut.validation.targets                    # print the table, from the shipped records
    python -m deepeut.validation.targets --readme README.md  # rewrite it between README's markers
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from deepeut.active_learning.selection import screened_frames
from deepeut.report.document import Table, markdown_table
from deepeut.training.embedded import MODELS_DIR
from deepeut.utils.io import read_json, write_text_atomic

CAMPAIGN_DIR = MODELS_DIR.parent / "data" / "campaign"
#: stability target per box size (ps without failure, committee mean and member 0)
STABLE_PS = {"tiny": 10.0, "small": 5.0, "train": 2.0}
CN_RANGE = (3.5, 5.0)
COVERAGE_RANGE = (0.85, 0.95)
FORCE_RMSE_MAX_EV_A = 0.10
DRIVERS = {"committee": "committee", "0": "member 0"}
BOXES = {"tiny": "tiny (2 ion pairs)", "small": "4 ion pairs", "train": "training box (8 ion pairs)"}


def driver_stability(driver: Dict, target_ps: float) -> tuple[str, List[str]]:
    """``stable/run ps`` of one driver over its runs, and the target it misses (if any)."""
    runs = driver["runs"]
    stable = min(r["stable_ps"] for r in runs)
    ran = min(r["ps_run"] for r in runs)
    name = DRIVERS.get(str(driver["driver"]), f"member {driver['driver']}")
    failed = [r for r in runs if r["failed_at_ps"] is not None]
    if failed:
        reason = failed[0]["reason"]
        reason = reason if len(reason) <= 60 else reason[:60].rsplit(" ", 1)[0] + " …"
        miss = f"{name} fails at {stable:.3g} ps ({reason}{warning_before(failed[0])})"
        return f"fails at {stable:.3g} ps", [miss]
    short = [f"{name} ran {ran:.3g} of {target_ps:g} ps"] if ran < target_ps else []
    return f"{stable:.3g} of {ran:.3g} ps", short


def warning_before(run: Dict) -> str:
    """``; committee u …`` from a failed run's ``u_before_failure`` record: how the committee's uncertainty
    (eV/Å) went over the saved frames before the failure; empty when not recorded."""
    w = run.get("u_before_failure") or {}
    u = w.get("max_u_eV_A") or []
    if not u:
        return ""
    return f"; committee u {min(u):.2f}–{max(u):.2f} eV/Å over the {len(u)} frames before, last {u[-1]:.2f}"


def outside(name: str, value: float, bounds: tuple[float, float]) -> List[str]:
    """The miss of a value outside its target range (none when inside)."""
    lo, hi = bounds
    return [] if lo <= value <= hi else [f"{name} {value:.2f} outside {lo:g}–{hi:g}"]


def mean_cn(driver: Dict) -> float:
    cns = [r["li_o"]["cn"] for r in driver["runs"]]
    return sum(cns) / len(cns)


def scale_row(scale: str, record: Optional[Dict]) -> Dict[str, str]:
    """The table cells of one box size, with the targets its record misses (``misses``; '—' when it meets all)."""
    if record is None:
        return {"box": BOXES.get(scale, scale), "misses": "not validated at this box"}
    drivers = {str(d["driver"]): d for d in record["drivers"]}
    row: Dict[str, str] = {"box": BOXES.get(scale, scale)}
    misses: List[str] = []
    for key, name in DRIVERS.items():
        if key not in drivers:
            row[name] = "not run"
            misses.append(f"{name} not run")
            continue
        row[name], missed = driver_stability(drivers[key], STABLE_PS.get(scale, 0.0))
        misses += missed
        cn = mean_cn(drivers[key])
        row[f"CN {name}"] = f"{cn:.2f}"
        misses += outside(f"CN {name}", cn, CN_RANGE)
    closest = min(r["closest_A"].get("Li-O", float("inf")) for d in record["drivers"] for r in d["runs"])
    row["closest Li–O (Å)"] = f"{closest:.2f}"
    scores = record.get("scores") or {}
    members = {k: m["forces_rmse_eV_A"] for k, m in scores.get("models", {}).items() if k.startswith("member_")}
    if members:
        row["force RMSE per member (eV/Å)"] = " / ".join(f"{v:.3f}" for v in members.values())
        worst = max(members.values())
        if worst > FORCE_RMSE_MAX_EV_A:
            misses.append(f"force RMSE up to {worst:.3f} > {FORCE_RMSE_MAX_EV_A:g} eV/Å")
    else:
        misses.append("no fresh labels scored")
    coverage = (scores.get("conformal") or {}).get("coverage")
    if coverage is not None:
        row["ũ coverage"] = f"{coverage:.2f}"
        misses += outside("coverage", coverage, COVERAGE_RANGE)
    row["misses"] = "; ".join(misses) or "—"
    return row


def al_verdict(history: Optional[Dict]) -> str:
    """Whether a segment of the campaign's loop stopped by its rule, else how far the last iteration was from it."""
    if not history:
        return "no active-learning history"
    segments = history.get("segments", [])
    for k, seg in enumerate(segments):
        for it in seg["iterations"]:
            if it.get("stop"):
                return f"stopped by its rule (segment {k + 1}, iteration {it['iteration']}: {it['stop']})"
    explored = [(k, it) for k, seg in enumerate(segments) for it in seg["iterations"] if it.get("explored")]
    if not explored:
        return "not stopped; no iteration explored yet"
    k, last = explored[-1]
    trend = " → ".join(f"{selected_percent(it):.0f}" for _, it in explored)
    verdict = (
        f"not stopped after {plural(len(explored), 'explored iteration')} over {plural(len(segments), 'segment')} "
        "(a segment is one run of the loop, al.max_iterations each): its last iteration "
        f"({last['iteration']} of segment {k + 1}) selected "
        f"{last['selected']} of {screened_frames(last)} explored frames ({selected_percent(last):.0f} %); "
        f"selected per explored iteration, in order: {trend} %"
    )
    ratios = [r for r in (threshold_in_test_rmse(it) for _, it in explored) if r is not None]
    if len(ratios) < 2:
        return verdict
    why = (
        " (falling: the threshold is the committee's largest ũ on held-out liquid frames, and it tightens as the "
        "members improve there)"
        if ratios[-1] < ratios[0]
        else ""
    )
    return (
        f"{verdict}; the ũ threshold in units of the members' test force RMSE: "
        f"{' → '.join(f'{r:.1f}' for r in ratios)}{why}"
    )


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def threshold_in_test_rmse(iteration: Dict) -> Optional[float]:
    """The iteration's ũ threshold (eV/Å) over its committee's mean member test force RMSE (eV/Å); None when
    either is missing or the RMSE is not a positive number."""
    threshold, rmse = iteration.get("threshold_eV_A"), iteration.get("test_force_rmse")
    if threshold is None or rmse is None or not math.isfinite(rmse) or rmse <= 0:
        return None
    return threshold / rmse


def selected_percent(iteration: Dict) -> float:
    """The stop rule's quantity: selected frames in percent of the screened ones."""
    return 100.0 * iteration["selected"] / screened_frames(iteration)


COLUMNS = [
    "box",
    "committee",
    "member 0",
    "CN committee",
    "CN member 0",
    "closest Li–O (Å)",
    "force RMSE per member (eV/Å)",
    "ũ coverage",
    "misses",
]


def targets_table(
    systems: Sequence[str] = ("ura", "act", "nma"), models: Path = MODELS_DIR, campaign: Path = CAMPAIGN_DIR
) -> str:
    """Markdown: per system one row per box size (stable ps, CN, closest Li–O, force RMSE, coverage, what misses
    the targets) and its loop's stop verdict."""
    lines = [
        f"Targets: no failure for ≥ {STABLE_PS['tiny']:g} / {STABLE_PS['small']:g} / {STABLE_PS['train']:g} ps "
        f"(tiny / 4 ion pairs / training box), Li–O CN {CN_RANGE[0]:g}–{CN_RANGE[1]:g}, ũ coverage "
        f"{COVERAGE_RANGE[0]:g}–{COVERAGE_RANGE[1]:g}, force RMSE ≤ {FORCE_RMSE_MAX_EV_A:g} eV/Å per member.",
        "",
    ]
    rows, verdicts = [], []
    for system in systems:
        for scale in STABLE_PS:
            row = scale_row(scale, read_json(Path(models) / system / f"validation_{scale}.json"))
            rows.append([system] + [row.get(c, "") for c in COLUMNS])
        verdicts.append(
            f"- {system} active learning: {al_verdict(read_json(Path(campaign) / system / 'al_history.json'))}"
        )
    return "\n".join(lines + [markdown_table(Table(["system"] + COLUMNS, rows)), ""] + verdicts)


MARKERS = ("<!-- targets table: python -m deepeut.validation.targets --readme README.md -->", "<!-- end targets -->")


def replace_between_markers(text: str, table: str) -> str:
    """``text`` with what stands between the two :data:`MARKERS` replaced by ``table``."""
    begin, end = MARKERS
    if begin not in text or end not in text:
        raise SystemExit(f"the markers {begin} … {end} are not in the file")
    head, rest = text.split(begin, 1)
    return f"{head}{begin}\n{table}\n{end}{rest.split(end, 1)[1]}"


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--systems", nargs="+", default=["ura", "act", "nma"])
    p.add_argument("--models", type=Path, default=MODELS_DIR, help="folder of <system>/validation_<scale>.json")
    p.add_argument("--campaign", type=Path, default=CAMPAIGN_DIR, help="folder of <system>/al_history.json")
    p.add_argument("--readme", type=Path, help="write the table between the markers of this file instead")
    a = p.parse_args(argv)
    table = targets_table(a.systems, a.models, a.campaign)
    if a.readme:
        write_text_atomic(a.readme, replace_between_markers(a.readme.read_text(), table))
    else:
        print(table)


if __name__ == "__main__":
    main()
