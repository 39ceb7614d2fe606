"""Schema of the ``classical`` config group (conf/classical/*.yaml): GAFF2 + AM1-BCC liquids in OpenMM."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import List

from omegaconf import MISSING

from deepeut.config.base import EXECUTION, INPUT


class Constraints(str, Enum):
    """Bond constraints of the classical MD: bonds to hydrogen (2 fs steps) or none (1 fs, for label frames)."""

    hbonds = "hbonds"
    none = "none"


@dataclass
class ClassicalConfig:
    """``stage=classical``: minimise → heat → NPT (the force field's density) → NVT at the system's density.

    Durations in ps (defaults from ``scale.classical_duration_ps``), temperatures in K, pressure in bar, lengths in
    Å. Keys are prefixed so that none clashes with ``build.force_field`` (the packmol pre-optimisation).
    """

    name: str = MISSING
    ff_atom_types: str = "gaff2"  # antechamber -at
    ff_charge_method: str = "bcc"  # antechamber -c: AM1-BCC
    #: Li/Merz 12-6 monovalent ion set shipped with AmberTools (HFE set for TIP3P)
    ff_ion_frcmod: str = "frcmod.ions1lm_126_tip3p"
    #: factor on the charges of the ions (cation and anion); 1.0 = plain GAFF2 + AM1-BCC
    ionic_charge_scale: float = 1.0
    cutoff_A: float = 10.0  # real-space cutoff; the box gets min(this, 0.45 × smallest edge)
    min_cutoff_A: float = 4.5  # a box whose cutoff would fall below this is refused
    constraints: Constraints = Constraints.hbonds
    timestep_fs: float = 2.0
    friction_per_ps: float = 1.0  # Langevin (middle) thermostat
    temperature_K: float = 353.0
    pressure_bar: float = 1.0
    barostat_every: int = 25  # Monte Carlo barostat: steps between volume moves
    minimise_iterations: int = 2000
    heat_ps: float = 5.0
    npt_ps: float = 50.0
    nvt_ps: float = 50.0
    save_every_ps: float = 0.1  # NVT frames written to the H5MD trajectory
    checkpoint_every_ps: float = 5.0
    #: stop when the NPT density leaves ±this fraction of ``system.density_g_cm3`` (a barostat that runs away)
    max_density_deviation: float = 0.25  # of the mean density over 5 ps (88 atoms fluctuate by ~5 %)
    #: independently packed boxes (packmol seeds build.seed + 7919 r); the pipeline passes how many it needs
    replicas: int = field(default=1, metadata=INPUT)
    #: pre-sampling for reference labels: unconstrained NVT at each temperature, a frame every sample_every_ps
    sample_temperatures_K: List[float] = field(default_factory=lambda: [353.0, 400.0, 450.0])
    sample_every_ps: float = 2.0
    samples_per_temperature: int = 0  # 0: no pre-sampling
    sample_timestep_fs: float = 1.0
    #: where parameters made on this machine are kept (the shipped ones in deepeut/classical/params are read first)
    param_cache: str = field(default="outputs/classical_params", metadata=EXECUTION)

    def __post_init__(self) -> None:
        from deepeut.config.base import _at_least, _positive, _require

        _require(self.ionic_charge_scale > 0, "classical.ionic_charge_scale", "must be > 0")
        _positive(self, "classical", "friction_per_ps", "temperature_K")
        _at_least(self, "classical", 0, "pressure_bar")
        _at_least(self, "classical", 1, "barostat_every")
        _at_least(self, "classical", 0, "minimise_iterations")
        _require(
            self.min_cutoff_A > 0 and self.cutoff_A >= self.min_cutoff_A,
            "classical.cutoff_A",
            "must be >= classical.min_cutoff_A > 0",
        )
        _require(
            0 < self.timestep_fs <= 4 and 0 < self.sample_timestep_fs <= 4,
            "classical.timestep_fs",
            "must be in (0, 4] fs",
        )
        _require(
            self.constraints == Constraints.hbonds or self.timestep_fs <= 1.0,
            "classical.timestep_fs",
            "must be <= 1 fs with classical.constraints=none (bonds to H vibrate at ~10 fs)",
        )
        for name in ("heat_ps", "npt_ps", "nvt_ps"):
            _require(getattr(self, name) >= 0, f"classical.{name}", "must be >= 0 ps")
        _require(
            self.save_every_ps > 0 and self.checkpoint_every_ps > 0 and self.sample_every_ps > 0,
            "classical.save_every_ps",
            "save, checkpoint and sample intervals must be > 0 ps",
        )
        _require(self.replicas >= 1, "classical.replicas", "must be >= 1")
        _require(self.samples_per_temperature >= 0, "classical.samples_per_temperature", "must be >= 0")
        _require(all(t > 0 for t in self.sample_temperatures_K), "classical.sample_temperatures_K", "must be > 0 K")
        _require(0 < self.max_density_deviation < 1, "classical.max_density_deviation", "must be in (0, 1)")
