"""The equilibration protocol of one replica in OpenMM, resumable phase by phase.

Phases: ``minimise`` → ``heat`` (Langevin NVT at the target temperature from Maxwell–Boltzmann velocities) →
``npt`` (Monte Carlo barostat: the force field's own density) → ``settle`` (the box rescaled to the system's density,
molecule centres of mass with it; a short minimisation and ``heat_ps`` of NVT, not saved) → ``nvt`` (frames into
``trajectory.h5``) → ``sample_<T>K`` for each
``classical.sample_temperatures_K`` (unconstrained bonds, ``classical.sample_timestep_fs``; one frame every
``classical.sample_every_ps`` into ``samples/``).

``checkpoint.npz`` (positions nm, velocities nm/ps, box nm, and the progress as JSON) is replaced atomically every
``classical.checkpoint_every_ps`` and at the end of each phase; a killed run continues from it. Units in the
outputs: Å, ps, K, g/cm³, kJ/mol.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from deepeut.classical.parameters import ClassicalError
from deepeut.config.classical import ClassicalConfig, Constraints
from deepeut.utils.io import atomic_path
from deepeut.utils.units import density_g_cm3

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.npz"


def phases(cfg: ClassicalConfig) -> List[str]:
    return ["minimise", "heat", "npt", "settle", "nvt"] + [
        f"sample_{t:g}K" for t in cfg.sample_temperatures_K if cfg.samples_per_temperature > 0
    ]


@dataclass
class Progress:
    """Where a replica stands: the phase, steps done in it, and the series kept across restarts."""

    phase: str = "minimise"
    steps_done: int = 0
    npt_density: List[float] = field(default_factory=list)  # g/cm³, one per save interval
    nvt_frames: int = 0
    wall_s: Dict[str, float] = field(default_factory=dict)
    simulated_ps: Dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


def save_checkpoint(path: Path, context, progress: Progress) -> None:
    state = context.getState(getPositions=True, getVelocities=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                positions=state.getPositions(asNumpy=True)._value,
                velocities=state.getVelocities(asNumpy=True)._value,
                box=state.getPeriodicBoxVectors(asNumpy=True)._value,
                progress=progress.to_json(),
            )


def load_checkpoint(path: Path) -> Optional[tuple]:
    """(positions nm, velocities nm/ps, box nm, Progress) or None; a damaged file names itself."""
    if not path.exists():
        return None
    try:
        with np.load(path) as d:
            return d["positions"], d["velocities"], d["box"], Progress(**json.loads(str(d["progress"])))
    except Exception as exc:
        raise ClassicalError(f"{path} is damaged ({type(exc).__name__}); delete it to restart this replica") from None


class Engine:
    """One OpenMM context per (constraints, barostat) choice over the same parameters; state moves between them."""

    def __init__(
        self,
        make_system: Callable,
        cfg: ClassicalConfig,
        platform,
        properties: Dict,
        n_atoms: int,
        masses_amu: np.ndarray,
    ):
        self.make_system, self.cfg = make_system, cfg
        self.platform, self.properties = platform, properties
        self.n_atoms, self.total_mass = n_atoms, float(masses_amu.sum())
        self.context = None
        self.integrator = None
        self.system = None

    def switch(
        self,
        constraints: Constraints,
        timestep_fs: float,
        temperature_K: float,
        barostat: bool,
        positions_nm,
        velocities_nm_ps,
        box_nm,
    ) -> None:
        import openmm
        from openmm import unit

        system = self.make_system(constraints)
        if barostat:
            system.addForce(
                openmm.MonteCarloBarostat(
                    self.cfg.pressure_bar * unit.bar, temperature_K * unit.kelvin, self.cfg.barostat_every
                )
            )
        integ = openmm.LangevinMiddleIntegrator(
            temperature_K * unit.kelvin,
            self.cfg.friction_per_ps / unit.picosecond,
            timestep_fs * 1e-3 * unit.picoseconds,
        )
        ctx = openmm.Context(system, integ, self.platform, self.properties)
        ctx.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in np.asarray(box_nm)])
        ctx.setPositions(np.asarray(positions_nm))
        if velocities_nm_ps is None:
            ctx.setVelocitiesToTemperature(temperature_K * unit.kelvin)
        else:
            ctx.setVelocities(np.asarray(velocities_nm_ps))
        if constraints == Constraints.hbonds:
            ctx.applyConstraints(1e-6)
            ctx.applyVelocityConstraints(1e-6)
        self.system, self.integrator, self.context = system, integ, ctx
        self.dof = 3 * self.n_atoms - system.getNumConstraints() - 3

    def observables(self, st=None) -> Dict[str, float]:
        """Potential and kinetic energy (kJ/mol), temperature (K), volume (Å³), density (g/cm³) of the current
        state (or of the OpenMM ``State`` given, which must hold energies)."""
        from openmm import unit

        st = st or self.context.getState(getEnergy=True)
        pe = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        ke = st.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        vol = st.getPeriodicBoxVolume().value_in_unit(unit.nanometer**3) * 1000.0
        temp = 2 * ke / (self.dof * unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin))
        return {
            "potential_kJ_mol": pe,
            "kinetic_kJ_mol": ke,
            "temperature_K": temp,
            "volume_A3": vol,
            "density_g_cm3": density_g_cm3(self.total_mass, vol),
        }

    def state(self) -> tuple:
        """(positions nm, velocities nm/ps, box nm) of the current state."""
        return self.arrays(self.context.getState(getPositions=True, getVelocities=True))

    def snapshot(self) -> tuple:
        """(observables, positions nm, velocities nm/ps, box nm) from one state read."""
        st = self.context.getState(getPositions=True, getVelocities=True, getEnergy=True)
        return (self.observables(st), *self.arrays(st))

    @staticmethod
    def arrays(st) -> tuple:
        return (
            st.getPositions(asNumpy=True)._value,
            st.getVelocities(asNumpy=True)._value,
            st.getPeriodicBoxVectors(asNumpy=True)._value,
        )


def check_finite(obs: Dict[str, float], phase: str, time_ps: float) -> None:
    if not np.isfinite(obs["potential_kJ_mol"]) or not np.isfinite(obs["temperature_K"]):
        raise ClassicalError(
            f"{phase}: the energy became NaN at {time_ps:.2f} ps; lower classical.timestep_fs or "
            "raise classical.minimise_iterations"
        )


def run_steps(
    engine: Engine,
    n_steps: int,
    progress: Progress,
    every: int,
    checkpoint_every: int,
    on_interval: Callable[[int], None],
    on_checkpoint: Callable[[], None],
    desc: str,
    timestep_fs: float,
) -> None:
    """Step from ``progress.steps_done`` to ``n_steps`` in intervals of ``every`` steps, calling ``on_interval``
    after each and ``on_checkpoint`` every ``checkpoint_every`` steps; a progress bar shows ps and the ETA."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    done0 = progress.steps_done
    with tqdm(total=n_steps, initial=done0, desc=desc, unit="step", mininterval=2.0, leave=False) as bar:
        while progress.steps_done < n_steps:
            k = min(every, n_steps - progress.steps_done)
            engine.integrator.step(k)
            progress.steps_done += k
            bar.update(k)
            on_interval(progress.steps_done)
            if progress.steps_done % checkpoint_every < k or progress.steps_done == n_steps:
                wall = time.perf_counter() - t0
                progress.wall_s[progress.phase] = progress.wall_s.get(progress.phase, 0.0) + wall
                progress.simulated_ps[progress.phase] = progress.steps_done * timestep_fs / 1000.0
                t0 = time.perf_counter()
                on_checkpoint()


def rescale_to_density(
    positions_nm: np.ndarray,
    box_nm: np.ndarray,
    molecule: np.ndarray,
    masses: np.ndarray,
    target_g_cm3: float,
    total_mass: float,
) -> tuple:
    """Scale the box isotropically to ``target_g_cm3``, moving molecule centres of mass with it (molecules rigid)."""
    volume_A3 = abs(np.linalg.det(box_nm)) * 1000.0
    factor = (density_g_cm3(total_mass, volume_A3) / target_g_cm3) ** (1 / 3)
    n_mol = int(molecule.max()) + 1
    com = np.zeros((n_mol, 3))
    np.add.at(com, molecule, positions_nm * masses[:, None])
    com /= np.bincount(molecule, weights=masses, minlength=n_mol)[:, None]
    return positions_nm + (factor - 1.0) * com[molecule], box_nm * factor
