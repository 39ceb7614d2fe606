"""CP2K labeler: the generated input (no CP2K needed) and, with CP2K installed, a real water box."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
from ase.build import molecule

from deepeut.config.schema import CP2KSettings
from deepeut.labeling.cp2k import CP2KLabeler, cp2k_shell_command
from deepeut.labeling.importer import cp2k_cell


def water(edge=6.0):
    a = molecule("H2O")
    a.cell = np.eye(3) * edge
    a.pbc = True
    a.center()
    return a


def test_generated_input_has_the_paper_settings_and_round_trips_cell(tmp_path):
    text = CP2KLabeler(asdict(CP2KSettings())).input_text(water())
    for needle in (
        "TYPE DFTD3(BJ)",
        "REFERENCE_FUNCTIONAL PBE",
        "&PBE",
        "MINIMIZER DIIS",
        "BASIS_SET DZVP-MOLOPT-SR-GTH",
        "POTENTIAL GTH-PBE",
        "PERIODIC XYZ",
    ):
        assert needle in text, needle
    cutoff_eV = float(text.split("CUTOFF [eV]")[1].split()[0])
    assert cutoff_eV == pytest.approx(400 * 13.605693, rel=1e-6)  # 400 Ry
    inp = tmp_path / "cp2k.inp"
    inp.write_text(text)
    assert np.allclose(cp2k_cell(inp), np.eye(3) * 6.0)  # the importer reads back the cell
    over = CP2KLabeler({**asdict(CP2KSettings()), "cutoff_Ry": 500, "ot_minimizer": "CG"}).input_text(water())
    assert "MINIMIZER CG" in over and float(over.split("CUTOFF [eV]")[1].split()[0]) == pytest.approx(500 * 13.605693)


@pytest.mark.cp2k
@pytest.mark.slow
def test_cp2k_water_single_point(tmp_path):
    if cp2k_shell_command() is None:
        pytest.skip("cp2k_shell not installed (DEEPEUT_CP2K=1 bash scripts/install.sh)")
    from conftest import load_config
    from deepeut.labeling.runner import labeler_spec, make_labeler

    lab = make_labeler(labeler_spec(load_config("labeler=cp2k").labeler))  # the default input: 400 Ry, D3(BJ)
    label = lab.label(water(), workdir=str(tmp_path))
    assert label.energy == pytest.approx(-468.56, abs=0.05)  # eV, PBE-D3(BJ)/DZVP water (measured here)
    assert label.forces.shape == (3, 3) and np.isfinite(label.forces).all()
    assert "TYPE DFTD3(BJ)" in (tmp_path / "cp2k.inp").read_text()  # the input is saved beside the result
    assert 0 < label.net_force < 0.5  # GPW egg-box effect, recorded
    # forces agree with a central finite difference of the energy (one component)
    h = 1e-3
    e = []
    for s in (+1, -1):
        w = water()
        w.positions[0, 2] += s * h
        e.append(lab.label(w, workdir=str(tmp_path / f"fd{s}")).energy)
    assert label.forces[0, 2] == pytest.approx(-(e[0] - e[1]) / (2 * h), abs=0.05)
