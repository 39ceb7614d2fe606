"""Allegro's tensor-product contraction as a batched matrix product (same result, less time and memory).

Allegro's eager ``Contracter`` (nequip-allegro 0.8) contracts the per-edge outer product of two strided tensors
with the path-weighted Wigner 3j symbols by broadcasting, ``sum(outer[z,u,i,j,None] * ww3j[u,i,j,k], (i, j))``: it
materialises an array of n_edges × channels × dim1 × dim2 × dim_out numbers before summing (512 per edge and
channel at l_max = 1, 729 at l_max = 2, which is what exhausts an 80 GB GPU for the paper model at 8192 atoms).
The same sum written as ``einsum("zuij,uijk->zuk")`` is one batched matrix product over the channels and never
builds that array. Energies and forces equal Allegro's own to float32 rounding (test); one allegro_small member
at 88 atoms runs ~1.9× faster on the CPU (scripts/bench_md.py).

Two ways in, one function:

- :func:`use_matmul_contractions` switches the ``Contracter`` modules of a loaded model (packaged models carry
  their own copy of Allegro's classes, so they are matched by class name); :class:`Ensemble` does it at load;
- :func:`patch_allegro` replaces the method on Allegro's class itself, for models built from source in a nequip
  tool's process (training, ``nequip-compile``: deepeut.training.nequip_entry); the trained weights and
  checkpoints are unchanged.

Contracters already replaced by Allegro's Triton or cuEquivariance kernels (other class names) are left alone.
"""

from __future__ import annotations

from typing import Dict

import torch


def contract_matmul(self, x1: torch.Tensor, x2: torch.Tensor, idxs: torch.Tensor) -> torch.Tensor:
    """``Contracter._contract_conv``: x1 (edges, u, i) ⊗ x2[idxs] (edges, u, j) contracted with the path-weighted
    3j symbols to (edges, u, k), by batched matrix products instead of a broadcast product and sum."""
    x2 = torch.index_select(x2, 0, idxs)
    ww3j = torch.einsum(self._weight_w3j_einstr, self.weights, self.w3j)
    if self.w3j_is_ij_diagonal:
        outer = x1 * x2
        if self.path_channel_coupling:
            return torch.einsum("zui,uik->zuk", outer, ww3j)
        return torch.mm(outer.reshape(-1, outer.size(2)), ww3j).view(outer.size(0), outer.size(1), ww3j.size(1))
    outer = x1.unsqueeze(-1) * x2.unsqueeze(-2)
    if self.path_channel_coupling:
        return torch.einsum("zuij,uijk->zuk", outer, ww3j)
    return torch.mm(outer.reshape(outer.size(0) * outer.size(1), -1), ww3j.reshape(-1, ww3j.size(-1))).view(
        -1, self.mul, ww3j.size(-1)
    )


_SUBCLASSES: Dict[type, type] = {}


def _matmul_subclass(cls: type) -> type:
    """``cls`` (a Contracter class, Allegro's or a packaged copy) with :func:`contract_matmul`, made once."""
    if cls not in _SUBCLASSES:
        _SUBCLASSES[cls] = type(cls.__name__, (cls,), {"_contract_conv": contract_matmul, "__module__": cls.__module__})
    return _SUBCLASSES[cls]


def use_matmul_contractions(model: torch.nn.Module) -> int:
    """Switch every Allegro ``Contracter`` in ``model`` to :func:`contract_matmul` in place (same parameters and
    buffers); returns how many were switched (0 for a model without Allegro layers)."""
    switched = 0
    for module in model.modules():
        cls = type(module)
        if cls.__name__ == "Contracter" and cls not in _SUBCLASSES.values():
            module.__class__ = _matmul_subclass(cls)
            switched += 1
    return switched


def patch_allegro() -> None:
    """Make Allegro's own ``Contracter`` class use :func:`contract_matmul` in this process."""
    from allegro.nn._strided._contract import Contracter

    Contracter._contract_conv = contract_matmul
