"""Selection of high-uncertainty frames and their screening before labeling (the paper's Methods B).

A frame is a candidate when its largest calibrated atomic uncertainty max_i ũ_i exceeds the threshold (config in
kcal/mol/Å, the paper's 3 kcal/mol/Å ≈ 0.130 eV/Å; converted once via deepeut.utils.units). Candidates are
screened: molecule recognition must find every molecule intact and of its species, no pair of atoms may be closer
than the minimum distance of its element pair, and the predicted energy must be finite. Rejected frames keep
their reason. Calibration frames (labeled already) never become candidates.

Counting and choosing are separate: the stop rule (``al.stop_below``) counts every candidate that passes the
screening; only then are the frames to label chosen from them, spaced by ``al.min_gap_frames`` within a run and
capped at ``al.max_selected``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from deepeut.utils.units import kcal_per_mol_to_ev

#: default smallest allowed distances (Å) between atoms of different molecules, by element pair
DEFAULT_MIN_DISTANCE_A = 0.7  # any pair; H···H and H···O contacts in the liquid stay above ~1.4 Å


@dataclass
class Candidate:
    run: int  # exploration run
    frame: int  # frame index within its run
    max_u_tilde: float  # eV/Å
    reason: str = ""  # why it was rejected ('' = accepted)
    trigger: str = "uncertainty"  # why it is a candidate: max ũ above the threshold, or a too-short contact


def count_reasons(reasons: Sequence[str]) -> Dict[str, int]:
    """Rejections per kind of reason (the text before the first colon)."""
    out: Dict[str, int] = {}
    for r in reasons:
        key = r.split(":")[0]
        out[key] = out.get(key, 0) + 1
    return out


def threshold_eV_A(threshold_kcal_mol_A: float) -> float:
    """The selection threshold in eV/Å (the config holds kcal/mol/Å, as the paper)."""
    return kcal_per_mol_to_ev(threshold_kcal_mol_A)


def selection_threshold(
    threshold_kcal_mol_A: float,
    rmse_factor: Optional[float],
    test_force_rmse_eV_A: Optional[float],
    test_quantile: Optional[float] = None,
    test_max_u_tilde_eV_A: Optional[Sequence[float]] = None,
) -> Tuple[float, str]:
    """The threshold on max ũ (eV/Å) and the rule that gave it: the ``test_quantile`` of max ũ over held-out test
    frames (``test_max_u_tilde_eV_A``) when set; else ``rmse_factor`` × the ensemble's mean member test force RMSE
    when a factor is set; else the absolute value (the paper's 3 kcal/mol/Å)."""
    if test_quantile is not None:
        u = np.asarray(test_max_u_tilde_eV_A if test_max_u_tilde_eV_A is not None else [], float)
        if not len(u):
            raise ValueError("al.threshold_test_quantile needs max ũ on the store's test frames; it has none")
        value = float(np.quantile(u, test_quantile, method="higher"))
        return value, f"test frames: {test_quantile:g} quantile of max ũ over {len(u)} held-out frames"
    if rmse_factor is None:
        return threshold_eV_A(threshold_kcal_mol_A), f"absolute: {threshold_kcal_mol_A:g} kcal/mol/Å"
    if test_force_rmse_eV_A is None or not np.isfinite(test_force_rmse_eV_A):
        raise ValueError("al.threshold_rmse_factor needs the ensemble's test force RMSE, which its members lack")
    return (
        rmse_factor * test_force_rmse_eV_A,
        f"relative: {rmse_factor:g} × test force RMSE {test_force_rmse_eV_A:.3f} eV/Å",
    )


def screened_frames(record: Dict) -> int:
    """The stop rule's denominator for one iteration record of the loop's history: its explored frames less those
    taken for calibration (which never become candidates)."""
    return record["explored"] - record.get("calibration_excluded", 0)


def stop_reason(selected: int, explored: int, stop_below: int, stop_below_fraction: Optional[float]) -> str:
    """Why the loop stops after this iteration ('' = go on): fewer frames passed the screening than
    ``stop_below``, or than ``stop_below_fraction`` of the explored frames when that is set."""
    if stop_below_fraction is None:
        return f"{selected} selected < al.stop_below = {stop_below}" if selected < stop_below else ""
    frac = selected / explored if explored else 0.0
    if frac < stop_below_fraction:
        return (
            f"{selected} of {explored} explored frames selected ({100 * frac:.1f} %) < "
            f"al.stop_below_fraction = {100 * stop_below_fraction:g} %"
        )
    return ""


def above_threshold(
    max_u_tilde: Sequence[float],
    runs: Sequence[int],
    frames: Sequence[int],
    threshold: float,
    exclude: Iterable[Tuple[int, int]] = (),
) -> List[Candidate]:
    """Every frame with max ũ > threshold (eV/Å), most uncertain first, except the (run, frame) pairs in
    ``exclude`` (the calibration frames, already labeled). The stop rule counts these (after screening)."""
    skip = {(int(r), int(f)) for r, f in exclude}
    order = np.argsort(-np.asarray(max_u_tilde), kind="stable")
    return [
        Candidate(int(runs[k]), int(frames[k]), float(max_u_tilde[k]))
        for k in order
        if max_u_tilde[k] > threshold and (int(runs[k]), int(frames[k])) not in skip
    ]


def shortest_contact(atoms, limits: Dict[str, float]) -> Optional[Tuple[float, str]]:
    """(r Å, "A-B") of the shortest intermolecular contact below its element pair's limit (``limits``: e.g.
    validate.min_contact_A ``{"Li-O": 1.5, "H-O": 1.4}``; molecule ids from ``atoms.arrays["molecule"]``), or None."""
    from deepeut.utils.geometry import closest_contacts

    molecule = atoms.arrays.get("molecule")
    if not limits or molecule is None:
        return None
    contacts = closest_contacts(
        atoms.positions, atoms.numbers, atoms.cell.array, molecule, cutoff_A=max(limits.values()) + 0.1
    )
    return min(((r, pair) for pair, r in contacts.items() if pair in limits and r < limits[pair]), default=None)


def contact_trigger(atoms, limits: Dict[str, float]) -> str:
    """'' or ``contact A-B r Å < limit Å`` for :func:`shortest_contact`. A committee that shares a bias agrees on
    such a contact, so its ũ stays small: only the reference method can say whether the pair is that close."""
    return contact_text(shortest_contact(atoms, limits), limits)


def contact_text(short: Optional[Tuple[float, str]], limits: Dict[str, float]) -> str:
    return f"contact {short[1]} {short[0]:.2f} Å < {limits[short[1]]:g} Å" if short else ""


def contact_candidates(
    frames: Dict[Tuple[int, int], object],
    max_u_tilde: Dict[Tuple[int, int], float],
    limits: Dict[str, float],
    exclude: Iterable[Tuple[int, int]] = (),
) -> List[Candidate]:
    """Frames (not in ``exclude``: the calibration frames and those already above the threshold) with a contact
    below ``limits`` (:func:`contact_trigger`), shortest contact first."""
    skip = {(int(r), int(f)) for r, f in exclude}
    out = []
    for key, atoms in frames.items():
        short = shortest_contact(atoms, limits) if key not in skip else None
        if short:
            trigger = contact_text(short, limits)
            out.append((short[0], Candidate(key[0], key[1], float(max_u_tilde[key]), trigger=trigger)))
    return [c for _, c in sorted(out, key=lambda x: x[0])]


def spaced(chosen: Sequence[Candidate], min_gap: int = 1, cap: Optional[int] = None) -> List[Candidate]:
    """The frames to label out of ``chosen`` (most uncertain first): in one run, a frame closer than ``min_gap``
    frames to an already taken one is left out (diversity); at most ``cap``. Counting is not this function's job."""
    taken: Dict[int, List[int]] = {}
    out: List[Candidate] = []
    for c in chosen:
        if any(abs(c.frame - g) < min_gap for g in taken.get(c.run, [])):
            continue
        taken.setdefault(c.run, []).append(c.frame)
        out.append(c)
        if cap is not None and len(out) >= cap:
            break
    return out


def candidates(
    max_u_tilde: Sequence[float],
    runs: Sequence[int],
    frames: Sequence[int],
    threshold: float,
    min_gap: int = 1,
    cap: Optional[int] = None,
) -> List[Candidate]:
    """:func:`above_threshold`, then :func:`spaced`."""
    return spaced(above_threshold(max_u_tilde, runs, frames, threshold), min_gap, cap)


def too_close(
    positions: np.ndarray,
    numbers: np.ndarray,
    cell: np.ndarray,
    molecule: Optional[np.ndarray],
    min_distance: Dict[tuple, float],
    default: float = DEFAULT_MIN_DISTANCE_A,
) -> str:
    """'' or a reason naming the closest offending pair (atoms of different molecules only when given)."""
    from ase.data import chemical_symbols

    from deepeut.utils.geometry import neighbor_pairs

    cutoff = max([default, *min_distance.values()])
    i, j, d = neighbor_pairs(positions, cell, cutoff)
    if molecule is not None:
        keep = molecule[i] != molecule[j]
        i, j, d = i[keep], j[keep], d[keep]
    dist = np.linalg.norm(d, axis=1)
    for a, b, r in sorted(zip(i, j, dist), key=lambda x: x[2]):
        pair = tuple(sorted((chemical_symbols[numbers[a]], chemical_symbols[numbers[b]])))
        limit = min_distance.get(pair, default)
        if r < limit:
            return f"too close: {pair[0]}{a}–{pair[1]}{b} at {r:.2f} Å < {limit:.2f} Å"
    return ""


def screen(atoms, energy: float, recognizer, expected_counts: Dict[str, int], min_distance: Dict[tuple, float]) -> str:
    """'' when the frame may be labeled, else the reason (molecules, distances, energy)."""
    if not np.isfinite(energy):
        return "non-finite energy: the model predicted " + str(energy)
    res = recognizer.recognise(atoms.positions, atoms.numbers, atoms.cell.array)
    if not res.ok or res.counts() != expected_counts:
        return "molecules: " + ("; ".join(res.problems[:2]) or f"counts {res.counts()} != {expected_counts}")
    return too_close(atoms.positions, atoms.numbers, atoms.cell.array, res.fragment, min_distance)
