"""The resumable MD core: a restart from a checkpoint continues the same trajectory; NHC holds T."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.lj import LennardJones
from ase.lattice.cubic import FaceCenteredCubic

from deepeut.md.dynamics import get_state, init_velocities, make_dynamics, set_state


def argon():
    """FCC argon (LJ ε = 0.0104 eV, σ = 3.40 Å): a cheap test potential, not a model of the electrolyte."""
    atoms = FaceCenteredCubic("Ar", size=(3, 3, 3), latticeconstant=5.26)
    atoms.calc = LennardJones(epsilon=0.0104, sigma=3.40, rc=8.0, smooth=True)
    return atoms


@pytest.mark.parametrize("thermostat", ["nose_hoover_chain", "langevin"])
def test_restart_equals_unbroken_run(thermostat):
    a = argon()
    init_velocities(a, 80.0, seed=3)
    b = a.copy()
    b.calc = LennardJones(epsilon=0.0104, sigma=3.40, rc=8.0, smooth=True)
    dyn_a = make_dynamics(a, thermostat, 5.0, 80.0, 0.1, seed=7)
    dyn_a.run(40)
    dyn_b = make_dynamics(b, thermostat, 5.0, 80.0, 0.1, seed=7)
    dyn_b.run(20)
    state = get_state(dyn_b)
    c = argon()
    dyn_c = make_dynamics(c, thermostat, 5.0, 80.0, 0.1, seed=99)  # fresh integrator, other seed
    set_state(dyn_c, state)
    dyn_c.run(20)
    assert dyn_c.nsteps == 40
    assert np.allclose(c.positions, a.positions, atol=1e-10)
    assert np.allclose(c.get_momenta(), a.get_momenta(), atol=1e-10)


def test_nose_hoover_chain_holds_temperature():
    a = argon()
    init_velocities(a, 40.0, seed=1)
    dyn = make_dynamics(a, "nose_hoover_chain", 5.0, 40.0, 0.1)
    temps = []
    for _ in range(300):
        dyn.run(1)
        temps.append(a.get_temperature())
    mean = np.mean(temps[100:])
    # 108 atoms: relative fluctuation of T is sqrt(2/(3N)) ≈ 8 %; the mean of 200 correlated samples is
    # good to a few per cent
    assert mean == pytest.approx(40.0, rel=0.1)
