"""ASE dynamics with an exact, resumable state: Nosé–Hoover chain NVT (default) or Langevin.

The state of a run (step, positions, momenta, thermostat chain variables, random generator) is saved
atomically as a checkpoint; restoring it continues the very same trajectory as an unbroken run.
Units: timestep in fs, relaxation time in ps, temperature in K (converted to ASE units here only).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np
from ase import units

from deepeut.utils.io import atomic_path
from deepeut.errors import StageError


def init_velocities(atoms, temperature_K: float, seed: int) -> None:
    """Maxwell–Boltzmann velocities at ``temperature_K`` (seeded), zero total momentum."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed))
    Stationary(atoms)


def make_dynamics(
    atoms,
    thermostat: str,
    timestep_fs: float,
    temperature_K: float,
    tau_ps: float,
    chain_length: int = 3,
    seed: int = 0,
):
    """An ASE integrator: ``nose_hoover_chain`` (ase.md.nose_hoover_chain) or ``langevin`` (friction 1/τ)."""
    dt = timestep_fs * units.fs
    if thermostat == "nose_hoover_chain":
        from ase.md.nose_hoover_chain import NoseHooverChainNVT

        return NoseHooverChainNVT(
            atoms, timestep=dt, temperature_K=temperature_K, tdamp=tau_ps * 1000 * units.fs, tchain=chain_length
        )
    if thermostat == "langevin":
        from ase.md.langevin import Langevin

        return Langevin(
            atoms,
            timestep=dt,
            temperature_K=temperature_K,
            friction=1.0 / (tau_ps * 1000 * units.fs),
            fixcm=False,
            rng=np.random.default_rng(seed),
        )
    raise ValueError(f"unknown thermostat '{thermostat}' (nose_hoover_chain, langevin)")


def get_state(dyn) -> Dict[str, Any]:
    """Everything needed to continue ``dyn`` exactly."""
    state: Dict[str, Any] = {
        "nsteps": dyn.nsteps,
        "positions": dyn.atoms.get_positions(),
        "momenta": dyn.atoms.get_momenta(),
    }
    thermo = getattr(dyn, "_thermostat", None)
    if thermo is not None:
        state["eta"] = thermo._eta.copy()
        state["p_eta"] = thermo._p_eta.copy()
    rng = getattr(dyn, "rng", None)
    if rng is not None and hasattr(rng, "bit_generator"):
        state["rng"] = rng.bit_generator.state
    return state


def set_state(dyn, state: Dict[str, Any]) -> None:
    dyn.atoms.set_positions(state["positions"])
    dyn.atoms.set_momenta(state["momenta"])
    dyn.nsteps = int(state["nsteps"])
    if hasattr(dyn, "_q"):  # NHC integrator keeps its own copies
        dyn._q = dyn.atoms.get_positions()
        dyn._p = dyn.atoms.get_momenta()
    thermo = getattr(dyn, "_thermostat", None)
    if thermo is not None and "eta" in state:
        thermo._eta[:] = state["eta"]
        thermo._p_eta[:] = state["p_eta"]
    if "rng" in state and getattr(dyn, "rng", None) is not None:
        dyn.rng.bit_generator.state = state["rng"]


def save_checkpoint(path: Path, dyn, extra: Optional[Dict[str, Any]] = None) -> None:
    """Atomically write the dynamics state (and ``extra``, e.g. bytes of trajectory written) to ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            pickle.dump({"state": get_state(dyn), "extra": extra or {}}, f)


class CorruptCheckpoint(StageError):
    """An MD checkpoint cannot be read; the message says how to restart."""


def load_checkpoint(path: Path) -> Optional[Dict[str, Any]]:
    if not Path(path).exists():
        return None
    try:
        with open(path, "rb") as f:
            state = pickle.load(f)
        if not isinstance(state, dict):
            raise ValueError(f"holds a {type(state).__name__}, not a checkpoint")
        return state
    except Exception as exc:
        raise CorruptCheckpoint(
            f"{path} is corrupted ({type(exc).__name__}: {exc}); delete it (and the "
            "trajectory.h5 beside it) to restart this replica from step 0"
        ) from None


def run_steps(
    dyn,
    n_steps: int,
    every: int,
    on_frame: Callable[[int], None],
    on_checkpoint: Callable[[], None],
    checkpoint_every: int,
    desc: str = "MD",
    timestep_fs: float = 0.5,
    progress: bool = True,
) -> None:
    """Advance ``dyn`` to step ``n_steps``: ``on_frame(step)`` every ``every`` steps (and at step 0 of a
    fresh run), ``on_checkpoint()`` every ``checkpoint_every`` steps; a tqdm bar shows simulated ps, ns/day, ETA."""
    import time

    from tqdm.auto import tqdm

    start = dyn.nsteps
    if start == 0:
        on_frame(0)
    bar = tqdm(total=n_steps, initial=start, desc=desc, unit="step", disable=not progress)
    t0 = time.perf_counter()
    try:
        while dyn.nsteps < n_steps:
            dyn.run(1)
            step = dyn.nsteps
            if step % every == 0:
                on_frame(step)
            if step % checkpoint_every == 0 or step == n_steps:
                on_checkpoint()
            bar.update(1)
            if step % 10 == 0 or step == n_steps:
                ns_day = (step - start) * timestep_fs * 1e-6 / max(time.perf_counter() - t0, 1e-9) * 86400
                bar.set_postfix(t_ps=f"{step * timestep_fs / 1000:.3f}", ns_day=f"{ns_day:.3g}", refresh=False)
    finally:
        bar.close()
