"""Periodic geometry: minimum-image vectors, dihedral angles, plane distances, neighbour pairs with a vectorised
cell list (any triclinic cell), closest intermolecular contacts.

``neighbor_pairs`` returns every unordered pair (i, j) closer than ``cutoff`` exactly once, with
the displacement vector r_j − r_i (Å) of the image found. Atoms are binned in fractional
coordinates with bins at least ``cutoff`` wide (measured between lattice planes), so all partners of an
atom lie in its own and the 26 adjacent bins; the half shell of 13 offsets plus the own bin visits each
pair once. Boxes with fewer than 3 bins along an axis fall back to an all-pairs minimum-image search.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

#: the 13 bin offsets of a half shell (lexicographically positive), plus (0, 0, 0) handled separately
_HALF_SHELL = np.array([o for o in np.ndindex(3, 3, 3) if tuple(np.array(o) - 1) > (0, 0, 0)], dtype=int) - 1


def minimum_image(d: np.ndarray, cell: np.ndarray | None) -> np.ndarray:
    """Minimum-image displacement vectors ``d`` (..., 3) in a periodic ``cell`` (3×3 rows, Å)."""
    if cell is None:
        return d
    cell = np.asarray(cell, dtype=float)
    frac = d @ np.linalg.inv(cell)
    frac -= np.round(frac)
    return frac @ cell


def dihedral_deg(quartets: np.ndarray, cell: np.ndarray | None = None) -> np.ndarray:
    """Dihedral angles (degrees, in (-180, 180]) of atom quartets ``(m, 4, 3)`` (Å), minimum image."""
    b1 = minimum_image(quartets[:, 1] - quartets[:, 0], cell)
    b2 = minimum_image(quartets[:, 2] - quartets[:, 1], cell)
    b3 = minimum_image(quartets[:, 3] - quartets[:, 2], cell)
    n1 = np.cross(b1, b2)
    n2 = np.cross(b2, b3)
    m1 = np.cross(n1, b2 / np.linalg.norm(b2, axis=-1, keepdims=True))
    return np.degrees(np.arctan2((m1 * n2).sum(-1), (n1 * n2).sum(-1)))


def plane_distances(cell: np.ndarray) -> np.ndarray:
    """Distances (Å) between opposite faces of the cell spanned by the rows of ``cell``."""
    cell = np.asarray(cell, dtype=float)
    vol = abs(np.linalg.det(cell))
    return vol / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)


def _check(cell: np.ndarray, cutoff: float) -> None:
    if cutoff > 0.5 * plane_distances(cell).min():
        raise ValueError(
            f"cutoff {cutoff:.2f} Å exceeds half the smallest box width "
            f"({0.5 * plane_distances(cell).min():.2f} Å): minimum image is ambiguous"
        )


def _brute_pairs(frac: np.ndarray, cell: np.ndarray, cutoff: float) -> Tuple[np.ndarray, ...]:
    n = len(frac)
    ii, jj, dd = [], [], []
    chunk = max(1, 4_000_000 // max(n, 1))
    for start in range(0, n, chunk):
        i = np.arange(start, min(n, start + chunk))
        df = frac[None, :, :] - frac[i, None, :]
        df -= np.round(df)
        d = df @ cell
        r2 = (d * d).sum(-1)
        a, b = np.nonzero((r2 < cutoff * cutoff) & (np.arange(n)[None, :] > i[:, None]))
        ii.append(i[a])
        jj.append(b)
        dd.append(d[a, b])
    i, j, d = np.concatenate(ii), np.concatenate(jj), np.concatenate(dd).reshape(-1, 3)
    return i, j, d


def _cell_list_pairs(frac: np.ndarray, cell: np.ndarray, cutoff: float, nbins: np.ndarray):
    n = len(frac)
    b = np.minimum((frac * nbins).astype(np.int64), nbins - 1)
    stride = np.array([nbins[1] * nbins[2], nbins[2], 1])
    cid = b @ stride
    order = np.argsort(cid, kind="stable")
    ncell = int(np.prod(nbins))
    counts = np.bincount(cid, minlength=ncell)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ii, jj, dd = [], [], []
    for off in np.vstack([[0, 0, 0], _HALF_SHELL]):
        nb = b + off
        shift = np.floor_divide(nb, nbins)  # image shift (fractional) of the partner bin
        ncid = (nb - shift * nbins) @ stride
        cnt = counts[ncid]
        total = int(cnt.sum())
        if total == 0:
            continue
        i = np.repeat(np.arange(n), cnt)
        first = np.repeat(starts[ncid], cnt)
        within = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        j = order[first + within]
        if not off.any():
            keep = j > i
            i, j = i[keep], j[keep]
        df = frac[j] + shift[i] - frac[i]
        d = df @ cell
        r2 = np.einsum("ij,ij->i", d, d)
        keep = r2 < cutoff * cutoff
        ii.append(i[keep])
        jj.append(j[keep])
        dd.append(d[keep])
    if not ii:
        return np.zeros(0, int), np.zeros(0, int), np.zeros((0, 3))
    return np.concatenate(ii), np.concatenate(jj), np.concatenate(dd)


def neighbor_pairs(positions: np.ndarray, cell: np.ndarray, cutoff: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs closer than ``cutoff`` (Å) in a periodic ``cell`` (3×3, rows are lattice vectors, Å).

    Returns ``(i, j, d)`` with ``i != j`` each unordered pair once and ``d = r_j - r_i`` (Å, minimum image).
    """
    positions = np.asarray(positions, dtype=float)
    cell = np.asarray(cell, dtype=float)
    _check(cell, cutoff)
    frac = positions @ np.linalg.inv(cell)
    frac -= np.floor(frac)
    nbins = np.floor(plane_distances(cell) / cutoff).astype(np.int64)
    if (nbins < 3).any():
        return _brute_pairs(frac, cell, cutoff)
    return _cell_list_pairs(frac, cell, cutoff, nbins)


#: closest allowed distances (Å) between atoms of different molecules in a liquid at 353 K (a shorter contact is
#: a failure of the potential: classical boxes, MD validation)
CONTACT_LIMITS_A = {"Li-O": 1.7, "H-O": 1.4}


def closest_contacts(
    positions: np.ndarray, numbers: np.ndarray, cell: np.ndarray, molecule: np.ndarray, cutoff_A: float = 3.0
) -> Dict[str, float]:
    """Closest distance (Å) between atoms of different molecules, per element pair "A-B" (alphabetical), over
    the pairs within ``cutoff_A``."""
    from ase.data import chemical_symbols

    i, j, d = neighbor_pairs(positions, cell, cutoff_A)
    keep = molecule[i] != molecule[j]
    out: Dict[str, float] = {}
    for a, b, r in zip(numbers[i[keep]], numbers[j[keep]], np.linalg.norm(d[keep], axis=1)):
        key = "-".join(sorted((chemical_symbols[a], chemical_symbols[b])))
        out[key] = min(out.get(key, np.inf), float(r))
    return dict(sorted(out.items()))


def contact_violations(contacts: Dict[str, float], limits: Dict[str, float] = CONTACT_LIMITS_A) -> List[str]:
    """'Li-O at 1.52 Å < 1.7 Å' for every element pair closer than its limit."""
    return [
        f"{pair} at {contacts[pair]:.2f} Å < {lim} Å"
        for pair, lim in limits.items()
        if contacts.get(pair, np.inf) < lim
    ]
