"""Allegro models from ``conf/model``: the config → ``allegro.model.AllegroModel`` keyword mapping."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Dict, Optional, Sequence

from deepeut.config.schema import ModelConfig

#: ModelConfig fields that are not AllegroModel keywords
_OWN = {"name", "num_bessels", "bessel_trainable", "polynomial_cutoff_p", "zbl"}


def allegro_kwargs(
    cfg: ModelConfig,
    type_names: Sequence[str],
    seed: int = 0,
    avg_num_neighbors: Optional[float] = None,
    per_type_energy_shifts: Optional[Sequence[float]] = None,
    per_type_energy_scales: Optional[Sequence[float]] = None,
) -> Dict[str, Any]:
    """Keyword arguments of ``AllegroModel`` (energies eV, lengths Å) for ``cfg`` and the atom types."""
    kw = {k: v for k, v in asdict(cfg).items() if k not in _OWN and v is not None}
    kw.update(
        seed=seed,
        type_names=list(type_names),
        avg_num_neighbors=avg_num_neighbors,
        per_type_energy_shifts=per_type_energy_shifts,
        per_type_energy_scales=per_type_energy_scales,
        radial_chemical_embed={
            "_target_": "allegro.nn.TwoBodyBesselScalarEmbed",
            "num_bessels": cfg.num_bessels,
            "bessel_trainable": cfg.bessel_trainable,
            "polynomial_cutoff_p": cfg.polynomial_cutoff_p,
        },
    )
    for key in ("scalar_embed_mlp_nonlinearity", "allegro_mlp_nonlinearity", "readout_mlp_nonlinearity"):
        kw[key] = getattr(cfg, key)  # None = linear, must be passed explicitly
    if cfg.zbl:
        kw["pair_potential"] = {
            "_target_": "nequip.nn.pair_potential.ZBL",
            "units": "metal",
            "chemical_species": list(type_names),
            "polynomial_cutoff_p": cfg.polynomial_cutoff_p,
        }
    return kw


def build_allegro(cfg: ModelConfig, type_names: Sequence[str], seed: int = 0, **stats):
    """An untrained Allegro model (nequip ``GraphModel``); calls nequip's ``set_global_state`` first."""
    from allegro.model import AllegroModel
    from nequip.utils.global_state import set_global_state

    set_global_state()
    return AllegroModel(**allegro_kwargs(cfg, type_names, seed, **stats))
