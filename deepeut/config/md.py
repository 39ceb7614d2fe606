"""Config group md: NVT molecular dynamics with the trained potential (engines, thermostat, safety bounds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from omegaconf import MISSING

from deepeut.config.base import _at_least, _check_dynamics, _choice, ConfigError, EXECUTION, INPUT, _positive, _require
from deepeut.config.choices import CommitteeEval, Engine, OnUnstable, Thermostat


@dataclass
class MDConfig:
    """Molecular dynamics with the trained potential (conf/md/*.yaml): NVT, Nosé–Hoover chain by default.

    Durations default to the ``scale``'s (``scale.md_duration_ps``): the paper's at ``scale=production``,
    a few ps at ``scale=tiny``.
    """

    name: str = MISSING
    engine: Engine = Engine.ase  # ase (CPU default) | torchsim (batched replicas on a GPU) | lammps (pair_allegro)
    temperature_K: float = 353.0
    timestep_fs: float = 0.5
    duration_ps: float = 10.0
    save_every_fs: float = 10.0  # positions, velocities and observables
    thermostat: Thermostat = Thermostat.nose_hoover_chain  # nose_hoover_chain | langevin
    thermostat_tau_ps: float = 0.05  # Nosé–Hoover chain relaxation time (Langevin: 1/friction)
    chain_length: int = 3
    replicas: int = 1  # independent runs from different initial structures (build.seed + r) and velocity seeds
    seed: int = 0  # velocity seed of replica r: seed + r
    #: extxyz or H5MD (last frame, with velocities); default: build a box per replica
    start: Optional[str] = field(default=None, metadata=INPUT)
    #: one start per replica (cycled), e.g. the classical stage's equilibrated boxes; overrides ``start``
    starts: List[str] = field(default_factory=list, metadata=INPUT)
    topology: Optional[str] = None  # topology.json of ``start`` (default: the one beside it, else recognised)
    #: which member drives the MD; null: the committee mean of all members (N_c× the cost; engines ase and
    #: torchsim: md.engine=lammps refuses it at start)
    ensemble_member: Optional[int] = 0
    checkpoint_every_steps: int = field(default=200, metadata=EXECUTION)
    equilibration_ps: float = 0.0  # leading part of the run that the analysis skips
    max_force_eV_A: float = 30.0  # stop when any force exceeds this
    max_temperature_factor: float = 2.0  # stop when T > factor × temperature_K
    check_molecules_every: int = 10  # saved frames between molecule-recognition checks (0: never)
    #: a freshly packed box (no md.start) is relaxed with the potential first (FIRE, at most this many steps, to a
    #: largest force of relax_fmax_eV_A): a packmol box stores enough potential energy to heat 88 atoms past
    #: 600 K within 20 fs. 0: start MD from the packed box as it is. Starts from files are never relaxed.
    relax_packed_steps: int = 200
    relax_fmax_eV_A: float = 0.5
    #: Verlet skin (Å) of the model's neighbour list in MD (engines ase and torchsim; vesin-torch on the model's
    #: device): the list is rebuilt only when an atom moved more than half of it; 0 rebuilds every step. The forces
    #: are the same either way. LAMMPS keeps its own neighbour list and skin.
    neighbor_skin_A: float = field(default=1.0, metadata=EXECUTION)
    #: how a committee-mean run evaluates its members on the shared graph: ``loop`` (one model call each; the
    #: faster on CPU, scripts/bench_md.py) or ``vmap`` (their weights stacked, one vmapped call: for GPUs,
    #: deepeut.training.stacked). Same forces either way.
    committee_eval: CommitteeEval = field(default=CommitteeEval.loop, metadata=EXECUTION)
    #: > 1: the model evaluates each structure in this many slabs, each with a 2 r_max halo (Allegro is strictly
    #: local, so energies and forces are those of the whole box; memory scales with a slab): the route for a model
    #: too large for one pass over the box on a GPU (engine ase; deepeut.training.chunked). 1: the whole box.
    eval_chunks: int = field(default=1, metadata=EXECUTION)
    #: members compiled ahead of time (``nequip-compile --mode aotinductor --target ase`` with the batched
    #: contraction, once per member file, device and torch version, cached in $DEEPEUT_COMPILE_CACHE or
    #: ~/.cache/deepeut/compiled; ~1.5 min per member on 2 cores): faster MD on engine ase (scripts/bench_md.py),
    #: same forces to float32 rounding. False: the eager models.
    compiled: bool = field(default=False, metadata=EXECUTION)
    #: when a check fails: ``stop`` (the stage fails with one line; checkpoint and bad frame kept) or
    #: ``truncate`` (engine ase: the replica ends at its last frame that passed every check, md.json says
    #: why and when, and the analysis uses the frames kept; the main job and the pipeline use this)
    on_unstable: OnUnstable = OnUnstable.stop
    lammps_command: str = "lmp"  # LAMMPS binary with the Allegro pair style (engine=lammps)

    def __post_init__(self) -> None:
        _check_dynamics("md", self.temperature_K, self.timestep_fs, self.duration_ps, self.thermostat_tau_ps)
        _choice(self.engine, Engine, "md.engine")
        _choice(self.thermostat, Thermostat, "md.thermostat")
        _require(self.save_every_fs >= self.timestep_fs, "md.save_every_fs", "must be >= md.timestep_fs")
        _require(self.replicas >= 1, "md.replicas", "must be >= 1")
        _at_least(self, "md", 0, "seed", "ensemble_member", "check_molecules_every")
        _at_least(self, "md", 1, "checkpoint_every_steps")
        _at_least(self, "md", 0, "relax_packed_steps")
        _positive(self, "md", "relax_fmax_eV_A")
        _positive(self, "md", "max_force_eV_A")
        _require(0 <= self.equilibration_ps < self.duration_ps, "md.equilibration_ps", "must be in [0, md.duration_ps)")
        _require(self.chain_length >= 1, "md.chain_length", "must be >= 1")
        _require(self.max_temperature_factor > 1, "md.max_temperature_factor", "must be > 1")
        _require(self.neighbor_skin_A >= 0, "md.neighbor_skin_A", "must be >= 0 Å (0: rebuild every step)")
        _choice(self.on_unstable, OnUnstable, "md.on_unstable")
        from deepeut.config.engines import engine_problems

        _at_least(self, "md", 1, "eval_chunks")
        _require(
            not (self.compiled and self.committee_eval == CommitteeEval.vmap),
            "md.compiled",
            "compiled members cannot be vmapped: set md.committee_eval=loop or md.compiled=false",
        )
        _require(
            not (self.compiled and self.eval_chunks > 1),
            "md.compiled",
            "the chunked evaluation (md.eval_chunks > 1) needs the eager members' per-atom energies: "
            "set md.eval_chunks=1 or md.compiled=false",
        )
        problems = engine_problems(
            self.engine, self.thermostat, self.ensemble_member, self.on_unstable, self.eval_chunks, self.compiled
        )
        for key, msg in problems[:1]:
            raise ConfigError(f"{key}: {msg}")
