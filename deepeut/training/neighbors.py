"""A Verlet-skin neighbour list for the model graph (vesin), so that most MD steps build no list.

vesin's ``NeighborList(skin=...)`` keeps the pairs within ``r_max + skin`` and rebuilds only when an atom has
moved more than half the skin since the last build; every call still returns exactly the pairs within ``r_max``
(pruned by distance), so the model sees the same graph as a list rebuilt every step (up to pair order).
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np


class SkinNeighborList:
    """nequip data transform: ``edge_index`` and ``edge_cell_shift`` within ``r_max`` (Å), full list, periodic,
    from a vesin list with a ``skin`` (Å); one cached list per (atom count, cell), so unrelated structures of other
    sizes or cells never reuse a list."""

    def __init__(self, r_max: float, skin: float = 1.0, n_threads: int = 0):
        self.r_max, self.skin, self.n_threads = float(r_max), float(skin), n_threads
        self._lists: Dict[Tuple, object] = {}

    def _list(self, n: int, cell: np.ndarray):
        import vesin

        key = (n, cell.round(8).tobytes())
        if key not in self._lists:
            if len(self._lists) > 8:
                self._lists.clear()
            self._lists[key] = vesin.NeighborList(
                cutoff=self.r_max, full_list=True, skin=self.skin, n_threads=self.n_threads
            )
        return self._lists[key]

    def __call__(self, data: Dict) -> Dict:
        import torch
        from nequip.data import AtomicDataDict

        pos = data[AtomicDataDict.POSITIONS_KEY]
        cell = data[AtomicDataDict.CELL_KEY].reshape(3, 3)
        points, box = pos.detach().cpu().numpy().astype(np.float64), cell.detach().cpu().numpy().astype(np.float64)
        i, j, shifts = self._list(len(points), box).compute(points, box, True, "ijS")
        data[AtomicDataDict.EDGE_INDEX_KEY] = torch.as_tensor(np.stack([i, j]).astype(np.int64), device=pos.device)
        data[AtomicDataDict.EDGE_CELL_SHIFT_KEY] = torch.as_tensor(shifts, dtype=cell.dtype, device=pos.device)
        return data
