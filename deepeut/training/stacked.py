"""The members of an ensemble evaluated as one batched model (``md.committee_eval=vmap``).

The members' weights are stacked along a leading member axis and the energy network of member 0 is evaluated with
``torch.func.functional_call`` under ``torch.func.vmap`` over that axis; forces are ``-torch.func.grad`` of each
member's summed energy with respect to the positions. One call runs every member with one (larger) kernel per
operation instead of one per member, which is what a GPU wants; the energies and forces equal one call per member
to float32 precision (test). On this machine's CPU it is slower than three calls (scripts/bench_md.py).

nequip 0.19 accumulates per-atom sums with an in-place ``scatter_add_`` into a fresh zero tensor, which ``vmap``
cannot batch; :func:`vmappable_scatter` installs an out-of-place equivalent (same signature and result) in the
modules of the stacked copy's torch package.
"""

from __future__ import annotations

import copy
from typing import Dict, Optional, Sequence

import torch

from deepeut.errors import StageError


def _broadcast_index(index: torch.Tensor, src: torch.Tensor, dim: int) -> torch.Tensor:
    """``index`` (1-D, along ``dim``) expanded to the shape of ``src``, as nequip's scatter does."""
    for _ in range(dim):
        index = index.unsqueeze(0)
    while index.dim() < src.dim():
        index = index.unsqueeze(-1)
    return index.expand_as(src)


def scatter_out_of_place(
    src: torch.Tensor,
    index: torch.Tensor,
    dim: int = -1,
    out: Optional[torch.Tensor] = None,
    dim_size: Optional[int] = None,
    reduce: str = "sum",
) -> torch.Tensor:
    """nequip.nn.utils.scatter (sum) without writing into a tensor in place, so that ``vmap`` can batch it."""
    if reduce != "sum":
        raise ValueError(f"scatter: only reduce='sum' is supported, got {reduce!r}")
    dim = dim + src.dim() if dim < 0 else dim
    idx = _broadcast_index(index, src, dim)
    if out is not None:
        return out.scatter_add(dim, idx, src)
    size = list(src.shape)
    size[dim] = dim_size if dim_size is not None else (int(index.max()) + 1 if index.numel() else 0)
    return torch.zeros(size, dtype=src.dtype, device=src.device).scatter_add(dim, idx, src)


def vmappable_scatter(module: torch.nn.Module) -> int:
    """Point the name ``scatter`` in the globals of every module class of ``module`` to
    :func:`scatter_out_of_place`; returns how many module namespaces were changed."""
    changed = 0
    for sub in module.modules():
        namespace = type(sub).forward.__globals__
        fn = namespace.get("scatter")
        if fn is not None and fn is not scatter_out_of_place and getattr(fn, "__module__", "").endswith("nn.utils"):
            namespace["scatter"] = scatter_out_of_place
            changed += 1
    return changed


class StackedMembers(torch.nn.Module):
    """All members of an ensemble as one vmapped model.

    Args:
        models: nequip ``GraphModel``s of one architecture (same parameter names and shapes), in eval mode

    :meth:`forward` takes a nequip graph (positions Å) and returns ``total_energy`` (M, n_frames) in eV and
    ``forces`` (M, n_atoms, 3) in eV/Å, M the number of members.
    """

    def __init__(self, models: Sequence[torch.nn.Module]):
        super().__init__()
        funcs = [m.model.func for m in models]  # the energy networks inside nequip's force outputs
        names = [dict(f.named_parameters()) for f in funcs]
        shapes = [{k: tuple(v.shape) for k, v in n.items()} for n in names]
        if any(s != shapes[0] for s in shapes[1:]):
            raise StageError(
                "md.committee_eval=vmap needs members of one architecture (same parameters and shapes); "
                "use md.committee_eval=loop for this ensemble"
            )
        self.base = copy.deepcopy(funcs[0])
        vmappable_scatter(self.base)
        self.params = {k: torch.stack([n[k].detach() for n in names]) for k in names[0]}
        buffers = [dict(f.named_buffers()) for f in funcs]
        self.buffers_ = {k: torch.stack([b[k] for b in buffers]) for k in buffers[0]}
        self.input_fields = list(models[0].model_input_fields)

    def forward(self, data: Dict) -> Dict:
        from nequip.data import AtomicDataDict
        from torch.func import functional_call, grad, vmap

        graph = {k: data[k] for k in self.input_fields if k in data}
        pos_key = AtomicDataDict.POSITIONS_KEY

        def energy(params, buffers, pos):
            out = functional_call(self.base, (params, buffers), ({**graph, pos_key: pos},))
            e = out[AtomicDataDict.TOTAL_ENERGY_KEY].reshape(-1)
            return e.sum(), e

        grads, energies = vmap(grad(energy, argnums=2, has_aux=True), in_dims=(0, 0, None))(
            self.params, self.buffers_, graph[pos_key].detach()
        )
        return {AtomicDataDict.TOTAL_ENERGY_KEY: energies, AtomicDataDict.FORCE_KEY: -grads}
