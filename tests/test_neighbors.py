"""The cell list finds exactly the pairs of an all-pairs minimum-image search (and ASE's)."""

import numpy as np
import pytest

from deepeut.utils.geometry import _brute_pairs, neighbor_pairs


def _as_set(i, j):
    return {(min(a, b), max(a, b)) for a, b in zip(i.tolist(), j.tolist())}


@pytest.mark.parametrize(
    "cell", [np.diag([20.0, 22.0, 25.0]), np.array([[20.0, 0, 0], [4.0, 21.0, 0], [-3.0, 2.0, 23.0]])]
)
def test_cell_list_equals_brute_force(cell):
    rng = np.random.default_rng(0)
    pos = rng.uniform(-1.0, 2.0, (1500, 3)) @ cell  # also atoms outside the cell
    i, j, d = neighbor_pairs(pos, cell, 3.2)
    frac = pos @ np.linalg.inv(cell)
    frac -= np.floor(frac)
    bi, bj, bd = _brute_pairs(frac, cell, 3.2)
    assert len(i) == len(set(zip(i.tolist(), j.tolist()))) == len(bi) > 1000
    assert _as_set(i, j) == _as_set(bi, bj)
    # displacements are r_j - r_i of the nearest image
    r = np.linalg.norm(d, axis=1)
    assert r.max() < 3.2
    from ase.neighborlist import neighbor_list
    from ase import Atoms

    ai, aj, ad = neighbor_list("ijd", Atoms("H1500", positions=pos, cell=cell, pbc=True), 3.2)
    assert _as_set(ai, aj) == _as_set(i, j)
    assert np.isclose(np.sort(ad)[::2], np.sort(r)).all()


def test_cutoff_larger_than_half_box_is_an_error():
    with pytest.raises(ValueError, match="exceeds half the smallest box width"):
        neighbor_pairs(np.zeros((2, 3)), np.eye(3) * 10, 6.0)
