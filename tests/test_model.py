"""The model configs build real Allegro models (nequip 0.19 / allegro 0.8), without training."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import load_config
from deepeut.training.model import allegro_kwargs, build_allegro

TYPES = ["C", "F", "H", "Li", "N", "O", "S"]


@pytest.mark.parametrize(
    "name,l_max,widths",
    [("allegro_paper", 2, (256, 32)), ("allegro_small", 1, (64, 8)), ("allegro_medium", 1, (128, 16))],
)
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
    assert kw["radial_chemical_embed"] == {
        "_target_": "allegro.nn.TwoBodyBesselScalarEmbed",
        "num_bessels": 8,
        "bessel_trainable": True,
        "polynomial_cutoff_p": 6,
    }
    assert kw["readout_mlp_nonlinearity"] is None and kw["readout_mlp_hidden_layers_width"] == 128
    assert kw["allegro_mlp_hidden_layers_depth"] == 2 and kw["allegro_mlp_hidden_layers_width"] == 256


def zbl_eV(z1: int, z2: int, r: float, r_max: float, p: int = 6) -> float:
    """The universal ZBL screened nuclear repulsion (Ziegler, Biersack, Littmark) with nequip's polynomial cutoff."""
    import numpy as np

    a = 0.46850 / (z1**0.23 + z2**0.23)
    x = r / a
    phi = (
        0.18175 * np.exp(-3.19980 * x)
        + 0.50986 * np.exp(-0.94229 * x)
        + 0.28022 * np.exp(-0.40290 * x)
        + 0.02817 * np.exp(-0.20162 * x)
    )
    u = r / r_max
    envelope = 1 - (p + 1) * (p + 2) / 2 * u**p + p * (p + 2) * u ** (p + 1) - p * (p + 1) / 2 * u ** (p + 2)
    return 14.399645 * z1 * z2 / r * phi * envelope


def test_zbl_adds_the_screened_nuclear_repulsion():
    import numpy as np
    from ase import Atoms

    from deepeut.training.potential import Ensemble

    cfg = load_config("model=allegro_small").model
    plain = build_allegro(cfg, TYPES, seed=3, avg_num_neighbors=40.0)
    cfg.zbl = True
    with_zbl = build_allegro(cfg, TYPES, seed=3, avg_num_neighbors=40.0)
    ens = Ensemble([with_zbl.eval(), plain.eval()], TYPES, cfg.r_max)
    for r in (0.6, 1.0, 2.0):
        pair = Atoms("LiH", positions=[[0, 0, 0], [r, 0, 0]], cell=np.eye(3) * 30, pbc=False)
        e = ens.predict([pair]).energies[:, 0]
        assert e[0] - e[1] == pytest.approx(zbl_eV(3, 1, r, cfg.r_max), rel=1e-3, abs=1e-5)


def test_chunked_evaluation_equals_the_whole_box():
    """Allegro is strictly local: three slabs, each with a 2 r_max halo of periodic images, give the whole box's
    energy and forces (the route for a model too large for one pass over 8192 atoms)."""
    from conftest import built_box
    from deepeut.training.chunked import chunked_energy_forces
    from deepeut.training.embedded import MODELS_DIR
    from deepeut.training.potential import Ensemble

    atoms = built_box("ura")[1].atoms.copy()
    ens = Ensemble.load(MODELS_DIR / "ura", members=[0])
    atoms.calc = ens.calculator(member=0)
    e, f = chunked_energy_forces(ens.models[0], ens.type_names, ens.r_max, atoms, n_chunks=3)
    assert e == pytest.approx(atoms.get_potential_energy(), abs=1e-3)
    np.testing.assert_allclose(f, atoms.get_forces(), atol=1e-4)


def test_md_calculator_with_eval_chunks_gives_the_whole_box_committee():
    """md.eval_chunks=2 (the MD route for a model too large for the box) gives the committee mean forces, energy
    and per-atom uncertainty of the whole-box evaluation."""
    from conftest import built_box
    from deepeut.md.engines import Potential
    from deepeut.training.embedded import MODELS_DIR

    atoms = built_box("ura")[1].atoms
    results = []
    for chunks in (1, 2):
        a = atoms.copy()
        a.calc = Potential(MODELS_DIR / "ura", None, chunks=chunks).ase_calculator()
        a.get_forces()
        results.append(a.calc.results)
    whole, chunked = results
    np.testing.assert_allclose(chunked["forces"], whole["forces"], atol=1e-4)
    np.testing.assert_allclose(chunked["force_uncertainty"], whole["force_uncertainty"], atol=1e-4)
    assert chunked["energy"] == pytest.approx(whole["energy"], abs=1e-3)


def test_out_of_place_scatter_equals_nequips_and_batches_under_vmap():
    """The vmappable scatter of deepeut.training.stacked sums like nequip's (which writes in place) and, unlike it,
    runs under torch.func.vmap over a batch of sources."""
    import torch
    from nequip.nn.utils import scatter

    from deepeut.training.stacked import scatter_out_of_place

    src = torch.arange(12.0).reshape(6, 2)
    index = torch.tensor([0, 2, 2, 1, 0, 2])
    np.testing.assert_array_equal(scatter_out_of_place(src, index, 0, dim_size=4), scatter(src, index, 0, dim_size=4))
    np.testing.assert_array_equal(scatter_out_of_place(src, index, 0), [[8, 10], [6, 7], [16, 19]])
    batch = torch.stack([src, 2 * src])
    out = torch.func.vmap(lambda s: scatter_out_of_place(s, index, 0, dim_size=3))(batch)
    np.testing.assert_array_equal(out[1], 2 * out[0])
    with pytest.raises(RuntimeError):
        torch.func.vmap(lambda s: scatter(s, index, 0, dim_size=3))(batch)


@pytest.mark.parametrize("l_max", [1, 2])
@pytest.mark.parametrize("coupling", [True, False])
@pytest.mark.parametrize("scalar_out", [True, False])
def test_matmul_contraction_equals_allegros_own(l_max, coupling, scalar_out):
    """deepeut.training.contract: the tensor product as batched matrix products gives Allegro's outputs and
    gradients (inputs and path weights), for the 3j-diagonal (scalar output) and the full contraction."""
    import copy

    import torch
    from allegro.nn._strided._contract import Contracter
    from e3nn.o3 import Irreps

    from deepeut.training.contract import use_matmul_contractions

    irreps = Irreps("+".join(f"1x{l}{'eo'[l % 2]}" for l in range(l_max + 1)))
    torch.manual_seed(l_max)
    out = Irreps("1x0e") if scalar_out else irreps
    stock = Contracter(irreps, irreps, out, mul=8, path_channel_coupling=coupling)
    ours = copy.deepcopy(stock)
    assert use_matmul_contractions(ours) == 1 and use_matmul_contractions(ours) == 0
    assert stock.w3j_is_ij_diagonal == scalar_out
    dim = (l_max + 1) ** 2
    x1 = torch.randn(50, 8 * dim, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(7, 8 * dim, dtype=torch.float64, requires_grad=True)
    idx = torch.randint(0, 7, (50,))
    outs = []
    for module in (stock, ours):
        module.double()
        y = module(x1, x2, idx)
        grads = torch.autograd.grad((y**2).sum(), [x1, x2, module.weights])
        outs.append((y, *grads))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_embedded_member_gives_the_same_energy_and_forces_with_the_matmul_contraction():
    """An embedded (packaged) allegro_small member loaded with deepeut's contraction and with Allegro's own gives
    the same energy and forces on a packed URA box, to float32 rounding."""
    from conftest import ura_member_forces_agree

    assert ura_member_forces_agree(0, matmul_contractions=True) > 0.1


def test_nequip_compile_loads_packaged_models_with_the_matmul_contraction():
    """deepeut.training.nequip_entry: for nequip-compile, nequip's model loader is wrapped so that a packaged model
    (its own copy of Allegro's classes, which patching Allegro's class does not reach) is switched too, whether the
    loader returns the model or (model, data); an unknown tool is refused in one line."""
    from allegro.nn._strided._contract import Contracter
    from e3nn.o3 import Irreps

    from deepeut.training.contract import contract_matmul
    from deepeut.training.nequip_entry import main, with_matmul_contractions

    irreps = Irreps("1x0e+1x1o")
    for wrap in (lambda m: m, lambda m: (m, {"pos": None})):
        model = Contracter(irreps, irreps, irreps, mul=4)
        out = with_matmul_contractions(lambda path, wrap=wrap, model=model: wrap(model))("model.nequip.zip")
        loaded = out[0] if isinstance(out, tuple) else out
        assert loaded is model and type(model) is not Contracter and isinstance(model, Contracter)
        assert type(model)._contract_conv is contract_matmul
    with pytest.raises(SystemExit, match="usage: python -m deepeut.training.nequip_entry"):
        main(["nequip.scripts.foo"])
