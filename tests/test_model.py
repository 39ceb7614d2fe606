"""The model configs build real Allegro models (nequip 0.19 / allegro 0.8), without training."""

from __future__ import annotations

import pytest

from conftest import load_config
from deepeut.training.model import allegro_kwargs, build_allegro

TYPES = ["C", "F", "H", "Li", "N", "O", "S"]


@pytest.mark.parametrize("name,l_max,widths", [("allegro_paper", 2, (256, 32)), ("allegro_small", 1, (64, 8))])
def test_model_config_builds_expected_allegro(name, l_max, widths):
    cfg = load_config(f"model={name}").model
    model = build_allegro(cfg, TYPES, avg_num_neighbors=40.0)
    allegro = model.model.func.allegro
    assert len(allegro.latents) == len(allegro.tps) == 2  # two interaction layers
    ls = sorted({ir.l for _, ir in allegro.irreps_in["edge_attrs"]})
    assert ls == list(range(l_max + 1))
    assert (allegro.num_scalar_features, allegro.num_tensor_features) == widths
    assert model.type_names == TYPES


def test_paper_mapping_keywords():
    kw = allegro_kwargs(load_config("model=allegro_paper").model, TYPES)
    assert kw["r_max"] == 6.0 and kw["parity"] is True
    assert kw["radial_chemical_embed"] == {"_target_": "allegro.nn.TwoBodyBesselScalarEmbed", "num_bessels": 8,
                                           "bessel_trainable": True, "polynomial_cutoff_p": 6}
    assert kw["readout_mlp_nonlinearity"] is None and kw["readout_mlp_hidden_layers_width"] == 128
    assert kw["allegro_mlp_hidden_layers_depth"] == 2 and kw["allegro_mlp_hidden_layers_width"] == 256
