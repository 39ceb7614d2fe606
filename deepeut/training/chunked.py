"""Energies and forces of a large periodic box evaluated in spatial chunks, for models too big for one pass.

Allegro is strictly local: the energy of atom i depends only on the atoms within r_max of i. So for a slab of
"core" atoms, a cluster holding every atom (periodic images included) within 2 r_max of the slab gives
- the core's per-atom energies exactly (their environments are inside), and
- the core's forces exactly: F_k = −∂/∂r_k Σ_i E_i needs the E_i of all atoms i within r_max of k, whose own
  environments lie within 2 r_max of the core; the sum runs over the cluster atoms within r_max of the slab.
The box energy is the sum of the core energies over the slabs. Memory then scales with the slab plus its halo,
not with the box. The slabs cut the first lattice direction; the box must be wider than 4 r_max along it for
more than one slab to save memory. In MD: ``md.eval_chunks`` (engine ase, on the model's device).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np


def plane_widths(cell: np.ndarray) -> np.ndarray:
    """Distances (Å) between opposite faces of the cell along each lattice direction."""
    vol = abs(np.linalg.det(cell))
    return vol / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)


def slab_cluster(atoms, lo: float, hi: float, halo: float):
    """Positions, numbers, core mask and source atom index of the atoms and periodic images within ``halo`` (Å,
    along the first lattice direction) of the slab lo ≤ fractional x < hi, and within ``halo`` of the box along
    the other two directions. Core atoms are the slab's own atoms (no image)."""
    cell = atoms.cell.array
    frac = atoms.get_scaled_positions(wrap=True)
    h = halo / plane_widths(cell)
    reach = np.ceil(h).astype(int)
    pos, num, core, origin = [], [], [], []
    for s in np.ndindex(*(2 * reach + 1)):
        shift = np.array(s) - reach
        f = frac + shift
        keep = np.all((f >= -h) & (f < 1 + h), axis=1) & (f[:, 0] >= lo - h[0]) & (f[:, 0] < hi + h[0])
        pos.append(f[keep] @ cell)
        num.append(atoms.numbers[keep])
        core.append(np.full(int(keep.sum()), not shift.any()) & (f[keep, 0] >= lo) & (f[keep, 0] < hi))
        origin.append(np.nonzero(keep)[0])
    return np.concatenate(pos), np.concatenate(num), np.concatenate(core), np.concatenate(origin)


def chunked_energy_forces(model, type_names, r_max: float, atoms, n_chunks: int) -> Tuple[float, np.ndarray]:
    """Total energy (eV) and forces (eV/Å) of the periodic ``atoms`` from ``n_chunks`` slabs (see module doc);
    ``model``: a nequip GraphModel (eval mode) whose inner energy model gives per-atom energies."""
    import torch
    from ase import Atoms
    from nequip.data import AtomicDataDict, from_ase
    from nequip.data.transforms import ChemicalSpeciesToAtomTypeMapper, NeighborListTransform

    mapper = ChemicalSpeciesToAtomTypeMapper(
        model_type_names=list(type_names), chemical_species_to_atom_type_map={t: t for t in type_names}
    )
    nl = NeighborListTransform(r_max=r_max)
    device = next(model.parameters()).device
    energy, forces = 0.0, np.zeros((len(atoms), 3))
    edges = np.linspace(0.0, 1.0, n_chunks + 1)
    for lo, hi in zip(edges[:-1], edges[1:]):
        pos, num, core, origin = slab_cluster(atoms, lo, hi, 2 * r_max)
        near = near_slab(atoms.cell.array, pos, lo, hi, r_max)
        data = AtomicDataDict.to_(nl(mapper(from_ase(Atoms(numbers=num, positions=pos, pbc=False)))), device)
        pos_t = data[AtomicDataDict.POSITIONS_KEY].detach().clone().requires_grad_(True)
        data[AtomicDataDict.POSITIONS_KEY] = pos_t
        e_i = model.model.func(dict(data))[AtomicDataDict.PER_ATOM_ENERGY_KEY].reshape(-1)
        energy += float(e_i[torch.as_tensor(core, device=device)].sum().detach())
        (grad,) = torch.autograd.grad(e_i[torch.as_tensor(near, device=device)].sum(), pos_t)
        forces[origin[core]] = -grad.detach().cpu().numpy()[core]
    return energy, forces


def near_slab(cell: np.ndarray, pos: np.ndarray, lo: float, hi: float, r_max: float) -> np.ndarray:
    """Cluster atoms within ``r_max`` of the slab along the first lattice direction (their energies depend on the
    core atoms' positions; atoms further away do not)."""
    x = (pos @ np.linalg.inv(cell))[:, 0]
    h = r_max / plane_widths(cell)[0]
    return (x >= lo - h) & (x < hi + h)
