"""Hydra structured configs: the schema every YAML file in ``conf/`` is validated against.

Typed fields catch unknown keys and wrong types when Hydra composes the config (before any
work starts); ``__post_init__`` checks values (ranges, consistency) when :func:`deepeut.config.validate`
turns the composed config into these objects. Units are in the field names (``_K``, ``_fs``, ``_A``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from omegaconf import MISSING

from deepeut.config.classical import ClassicalConfig
from deepeut.config.validate import ValidateConfig
from deepeut.errors import InputError


class ConfigError(InputError):
    """A config value is out of range or inconsistent; the message names the key."""


def _require(ok: bool, key: str, msg: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {msg}")


def _check_dynamics(prefix: str, temperature_K: float, timestep_fs: float, duration_ps: float, tau_ps: float) -> None:
    """Checks shared by every MD-like config (md.*, reference.*)."""
    _require(temperature_K > 0, f"{prefix}.temperature_K", f"must be > 0 K, got {temperature_K}")
    _require(
        0 < timestep_fs <= 5.0,
        f"{prefix}.timestep_fs",
        f"must be in (0, 5] fs, got {timestep_fs}: molecules with hydrogens need ~0.5 fs",
    )
    _require(duration_ps > 0, f"{prefix}.duration_ps", "must be > 0 ps")
    _require(tau_ps > 0, f"{prefix}.thermostat_tau_ps", "must be > 0 ps")


# --------------------------------------------------------------------------- system
@dataclass
class LabelRule:
    """One atom label of Fig. 1: the first atom of ``smarts`` gets ``label``.

    ``cis_trans: true`` (amine hydrogens) splits the label into ``label(C)`` / ``label(T)`` by the
    dihedral H–N–C=O of the current geometry: |φ| < 90° is *cis* to the carbonyl oxygen.
    """

    label: str = MISSING
    smarts: str = MISSING
    cis_trans: bool = False


@dataclass
class SpeciesConfig:
    """One molecular species of the electrolyte."""

    name: str = MISSING
    smiles: str = MISSING
    role: str = MISSING  # cation | anion | solvent
    charge: int = 0  # e
    per_ion_pair: float = 1.0  # molecules per LiTFSI ion pair (the molar ratio)
    labels: List[LabelRule] = field(default_factory=list)
    #: conformer choice: 4-atom SMARTS → wanted dihedral (degrees), e.g. trans-NMA
    dihedral_targets: Dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(
            self.role in ("cation", "anion", "solvent"),
            f"species {self.name}.role",
            f"'{self.role}' is not one of cation, anion, solvent",
        )
        _require(self.per_ion_pair > 0, f"species {self.name}.per_ion_pair", "must be > 0")


@dataclass
class SystemConfig:
    """The chemistry of one deep eutectic electrolyte (conf/system/*.yaml)."""

    name: str = MISSING
    title: str = ""
    species: List[SpeciesConfig] = field(default_factory=list)
    density_g_cm3: float = MISSING  # from the paper's production box
    temperature_K: float = 353.0
    conductivity_exp_S_m: float = MISSING  # Table III, experiment
    paper_box_edge_A: float = MISSING  # production box edge of the paper (128 ion pairs)
    production_ps: float = 2000.0  # the paper's production run (URA 3 ns, ACT and NMA 2 ns)
    #: the paper's numbers for this system (Tables I-III), printed beside ours
    paper: Dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(self.density_g_cm3 > 0, "system.density_g_cm3", "must be > 0")
        _require(self.temperature_K > 0, "system.temperature_K", f"must be > 0 K, got {self.temperature_K}")
        _require(len(self.species) >= 2, "system.species", "needs at least a cation and an anion")
        charge = sum(s.charge * s.per_ion_pair for s in self.species)
        _require(abs(charge) < 1e-9, "system.species", f"net charge per ion pair is {charge:+g} e, not 0")


@dataclass
class ScaleConfig:
    """Box size: how many LiTFSI ion pairs (the amide count follows from the molar ratio)."""

    name: str = MISSING
    n_ion_pairs: int = MISSING
    #: default MD durations (ps) of the md configs at this scale: explore, equilibrate, production
    md_duration_ps: Dict[str, float] = field(default_factory=dict)
    #: default classical (GAFF2) durations (ps) at this scale: heat, npt, nvt
    classical_duration_ps: Dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(self.n_ion_pairs >= 1, "scale.n_ion_pairs", "must be >= 1")


@dataclass
class BuildConfig:
    """Packing of a liquid box (stage=build)."""

    seed: int = 1
    packmol_tolerance_A: float = 2.0  # packmol distance tolerance between molecules
    min_distance_A: float = 1.7  # check: no two atoms of different molecules closer than this
    density_tolerance: float = 0.005  # check: relative deviation of the density
    max_attempts: int = 3  # packmol retries with new seeds before giving up
    #: conformer used for each species: RDKit ETKDG + MMFF (UFF when MMFF has no parameters)
    force_field: str = "MMFF"

    def __post_init__(self) -> None:
        _require(
            0 < self.min_distance_A <= self.packmol_tolerance_A,
            "build.min_distance_A",
            "must be in (0, build.packmol_tolerance_A]",
        )
        _require(self.force_field in ("MMFF", "UFF"), "build.force_field", "one of MMFF, UFF")


@dataclass
class StageConfig:
    """Which stage ``run.py`` runs (conf/stage/*.yaml)."""

    name: str = MISSING


# --------------------------------------------------------------------------- later stages (filled by parts 2-6)
@dataclass
class XTBSettings:
    """GFN-xTB through tblite (labeler=xtb)."""

    method: str = "GFN2-xTB"  # GFN2-xTB | GFN1-xTB
    electronic_temperature: float = 300.0  # K (Fermi smearing)
    accuracy: float = 1.0  # tblite numerical accuracy (smaller is tighter)
    max_iterations: int = 250  # SCF cycles
    mixer_damping: float = 0.4
    threads: int = 1  # OpenMP threads per task: parallelism comes from running tasks side by side

    def __post_init__(self) -> None:
        _require(self.method in ("GFN2-xTB", "GFN1-xTB"), "labeler.xtb.method", "one of GFN2-xTB, GFN1-xTB")
        _require(self.electronic_temperature > 0, "labeler.xtb.electronic_temperature", "must be > 0 K")
        _require(self.threads >= 1, "labeler.xtb.threads", "must be >= 1")


@dataclass
class CP2KSettings:
    """DFT with CP2K through ASE's calculator and cp2k_shell (labeler=cp2k)."""

    xc: str = "PBE"
    dispersion: str = "D3(BJ)"  # D3(BJ) | D3 | '' (none)
    basis_set: str = "DZVP-MOLOPT-SR-GTH"
    basis_set_file: str = "BASIS_MOLOPT"
    pseudo_potential: str = "GTH-PBE"
    potential_file: str = "GTH_POTENTIALS"
    cutoff_Ry: float = 400.0
    rel_cutoff_Ry: float = 60.0  # multigrid REL_CUTOFF
    max_scf: int = 50
    ot_minimizer: str = "DIIS"
    outer_scf: int = 0
    charge: int = 0  # e, total charge of the box
    data_dir: str = "/usr/share/cp2k"  # where BASIS_MOLOPT, GTH_POTENTIALS and dftd3.dat live
    command: Optional[str] = None  # default: cp2k_shell on PATH
    extra_input: str = ""  # raw CP2K input merged into the generated one


@dataclass
class ImportSettings:
    """Existing reference data (labeler=import)."""

    path: Optional[str] = None  # extxyz file, or a CP2K *-pos-1.xyz (forces from *-frc-1.xyz beside it)
    format: str = "extxyz"  # extxyz | cp2k
    energy_unit: str = "eV"  # eV | hartree | kcal/mol | kJ/mol | Ry
    force_unit: str = "eV/A"  # eV/A | hartree/bohr | kcal/mol/A | kJ/mol/A
    cp2k_input: Optional[str] = None  # CP2K input with the &CELL (default: the *.inp beside the trajectory)

    def __post_init__(self) -> None:
        _require(self.format in ("extxyz", "cp2k"), "labeler.imported.format", "one of extxyz, cp2k")


@dataclass
class ExecutorConfig:
    """Where labeling tasks run."""

    kind: str = "pool"  # serial | pool (local processes) | submitit (Slurm) | submitit_local
    n_workers: int = 1
    timeout_min: int = 60
    cpus_per_task: int = 1
    mem_gb: Optional[int] = 4
    slurm_partition: Optional[str] = None

    def __post_init__(self) -> None:
        _require(
            self.kind in ("serial", "pool", "submitit", "submitit_local"),
            "labeler.executor.kind",
            f"'{self.kind}' is not one of serial, pool, submitit, submitit_local",
        )
        _require(self.n_workers >= 1, "labeler.executor.n_workers", "must be >= 1")


@dataclass
class LabelerConfig:
    """Reference method (conf/labeler/*.yaml): ``name`` picks which settings block is used."""

    name: str = MISSING  # xtb | cp2k | import
    xtb: XTBSettings = field(default_factory=XTBSettings)
    cp2k: CP2KSettings = field(default_factory=CP2KSettings)
    imported: ImportSettings = field(default_factory=ImportSettings)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    failure_budget: float = 0.1  # fraction of a run's labels allowed to fail before it stops
    max_net_force_eV_A: float = 0.05  # |Σ F| above this rejects a label

    def __post_init__(self) -> None:
        _require(self.name in ("xtb", "cp2k", "import"), "labeler.name", "one of xtb, cp2k, import")
        _require(0 <= self.failure_budget <= 1, "labeler.failure_budget", "must be in [0, 1]")
        if self.name == "import":
            _require(bool(self.imported.path), "labeler.imported.path", "labeler=import needs a file to import")


@dataclass
class ReferenceConfig:
    """stage=reference: MD driven by the labeler itself, then the paper's frame selection."""

    box: Optional[str] = None  # start structure (extxyz); default: build one (stage build) in the run dir
    temperature_K: float = 353.0
    timestep_fs: float = 0.5
    duration_ps: float = 0.1  # paper: 20 ps
    thermostat: str = "nose_hoover_chain"  # nose_hoover_chain | langevin
    thermostat_tau_ps: float = 0.05
    chain_length: int = 3
    n_train: int = 60  # frames from the first 75 % (increasing time lag); paper: 4500 (train + validation)
    n_test: int = 20  # frames from the last 25 %; paper: 500
    trainval_fraction: float = 0.75
    checkpoint_every: int = 10  # MD steps between checkpoints
    seed: int = 0

    def __post_init__(self) -> None:
        _check_dynamics("reference", self.temperature_K, self.timestep_fs, self.duration_ps, self.thermostat_tau_ps)
        _require(
            self.thermostat in ("nose_hoover_chain", "langevin"),
            "reference.thermostat",
            "one of nose_hoover_chain, langevin",
        )
        _require(0 < self.trainval_fraction < 1, "reference.trainval_fraction", "must be in (0, 1)")


@dataclass
class DataConfig:
    """Where the dataset store lives."""

    store: Optional[str] = None  # default: <run dir>/data
    source: Optional[str] = None  # stage=label: extxyz file of structures to label
    split: str = "train"  # stage=label: split of the labeled structures


@dataclass
class ModelConfig:
    """Allegro hyperparameters (conf/model/*.yaml), mapped onto ``allegro.model.AllegroModel`` (allegro 0.8).

    ``*_nonlinearity: null`` means a linear MLP. Widths of MLP hidden layers are one number per MLP in
    allegro 0.8 (the paper's widening two-body MLP cannot be expressed exactly; see model/allegro_paper.yaml).
    """

    name: str = MISSING
    r_max: float = 6.0  # Å, radial cutoff
    l_max: int = 2  # maximal rotation order of the spherical harmonics
    parity: bool = True  # even and odd parity features
    num_layers: int = 2  # Allegro interaction layers
    num_scalar_features: int = 64  # latent scalar width
    num_tensor_features: int = 8  # equivariant feature multiplicity
    num_bessels: int = 8
    bessel_trainable: bool = True
    polynomial_cutoff_p: int = 6
    radial_chemical_embed_dim: Optional[int] = None  # default: num_scalar_features
    scalar_embed_mlp_hidden_layers_depth: int = 1  # two-body MLP
    scalar_embed_mlp_hidden_layers_width: int = 64
    scalar_embed_mlp_nonlinearity: Optional[str] = "silu"
    allegro_mlp_hidden_layers_depth: int = 1  # latent MLP
    allegro_mlp_hidden_layers_width: int = 64
    allegro_mlp_nonlinearity: Optional[str] = "silu"
    readout_mlp_hidden_layers_depth: int = 1  # pair-energy MLP
    readout_mlp_hidden_layers_width: int = 32
    readout_mlp_nonlinearity: Optional[str] = None
    tp_path_channel_coupling: bool = True
    model_dtype: str = "float32"
    #: add nequip's ZBL screened nuclear repulsion (a pair prior for close contacts the data never shows; the
    #: element of each type is its type name)
    zbl: bool = False

    def __post_init__(self) -> None:
        _require(self.r_max > 0, "model.r_max", "must be > 0 Å")
        _require(self.l_max >= 0, "model.l_max", "must be >= 0")
        _require(self.num_layers >= 1, "model.num_layers", "must be >= 1")
        _require(self.model_dtype in ("float32", "float64"), "model.model_dtype", "one of float32, float64")
        for key in ("scalar_embed_mlp_nonlinearity", "allegro_mlp_nonlinearity", "readout_mlp_nonlinearity"):
            val = getattr(self, key)
            _require(val in (None, "silu", "mish", "gelu"), f"model.{key}", f"'{val}' is not silu, mish, gelu or null")


@dataclass
class TrainConfig:
    """Training of the Allegro ensemble through ``nequip-train`` (conf/train/*.yaml).

    Loss (Eq. 5): ``energy_weight`` × per-atom energy MSE (eV²/atom²) + ``force_weight`` × force MSE (eV²/Å²).
    Members differ in the weight-initialisation seed and in the train/validation split (seed ``seed + k``).
    """

    name: str = MISSING
    ensemble_size: int = 3
    #: which members this run trains (null: all). A multirun ``train.members=[0],[1],[2]`` trains them side by side
    members: Optional[List[int]] = None
    seed: int = 1  # member k uses seed + k for its weights and its train/validation split
    val_fraction: float = 0.1  # of the training pool, per member
    lr: float = 1e-3  # Adam
    batch_size: int = 1  # structures per step (paper: 1)
    val_batch_size: int = 5
    max_epochs: int = 200  # paper: at most 200
    early_stopping_patience: Optional[int] = None  # epochs without validation improvement; null: off
    energy_weight: float = 1.0  # per-atom energy MSE weight (Eq. 5)
    force_weight: float = 1.0  # force MSE weight (Eq. 5)
    #: Lightning Trainer: devices per member (GPUs when device=cuda), nodes and strategy (ddp for several GPUs)
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    num_workers: int = 0  # DataLoader worker processes
    package: bool = True  # nequip-package each finished member (model.nequip.zip)
    #: warm start: a trained ensemble folder whose member k's best.ckpt initialises member k (null: from scratch)
    init_from: Optional[str] = None

    def __post_init__(self) -> None:
        _require(self.ensemble_size >= 1, "train.ensemble_size", "must be >= 1")
        _require(self.lr > 0, "train.lr", "must be > 0")
        _require(0 < self.val_fraction < 1, "train.val_fraction", "must be in (0, 1)")
        _require(self.batch_size >= 1 and self.val_batch_size >= 1, "train.batch_size", "must be >= 1")
        _require(self.max_epochs >= 1, "train.max_epochs", "must be >= 1")
        _require(
            self.energy_weight >= 0 and self.force_weight >= 0 and self.energy_weight + self.force_weight > 0,
            "train.energy_weight",
            "loss weights must be >= 0 and not both 0",
        )
        for k in self.members or []:
            _require(
                0 <= k < self.ensemble_size,
                "train.members",
                f"member {k} is outside 0..{self.ensemble_size - 1} (train.ensemble_size={self.ensemble_size})",
            )


@dataclass
class ALConfig:
    """Active learning (conf/al/*.yaml): the paper's loop of Methods B. Thresholds in kcal/mol/Å (paper)."""

    name: str = MISSING
    alpha: float = 0.1  # conformal miscoverage: ũ covers the error with probability ≥ 1 − α
    level: str = "atom"  # conformal scores per atom, or per structure (max over atoms); see active_learning/conformal
    #: conformal quantile: exact (split-conformal order statistic, default) | paper (the paper's AmpTorch formula
    #: with N = calibration structures); see deepeut/active_learning/conformal.py
    quantile: str = "exact"
    threshold_kcal_mol_A: float = 3.0  # select frames with max ũ above this
    #: when set, the threshold is this factor × the iteration ensemble's mean member test force RMSE (the paper's
    #: 3 kcal/mol/Å is ~3× its own RMSE); threshold_kcal_mol_A is then unused
    threshold_rmse_factor: Optional[float] = None
    stop_below: int = 50  # stop when fewer frames than this are selected after screening
    #: when set, stop when the frames selected after screening are fewer than this fraction of the explored
    #: frames (calibration frames excluded); stop_below is then unused
    stop_below_fraction: Optional[float] = None
    max_iterations: int = 5
    explore_runs: int = 10  # MD runs per iteration from different initial boxes
    explore_ps: float = 50.0  # per run (paper: 50-100 ps)
    explore_temperature_K: float = 400.0
    explore_save_every_fs: float = 50.0  # the paper: every 100 steps of 0.5 fs
    #: stop an exploration run at the first saved frame with a broken or fused molecule (its frames so far are
    #: kept): the frames after a break are all rejected by the screening, so running on wastes the run's time
    explore_stop_on_broken: bool = False
    n_calibration: int = 20  # exploration frames labeled for the conformal calibration
    retrain: str = "scratch"  # scratch | warm (members start from the previous iteration's weights)
    max_selected: Optional[int] = None  # cap on frames labeled per iteration
    min_gap_frames: int = 2  # diversity: chosen frames of one run are at least this many frames apart
    #: smallest allowed distance between atoms of different molecules, per element pair "H-O" (Å)
    min_distance_A: Dict[str, float] = field(default_factory=dict)
    seed: int = 0
    #: a trained ensemble (stage=train folder) that iteration 0 uses instead of training its own (stage=pipeline
    #: passes its train stage here); it must have been trained on the loop's initial data
    initial_ensemble: Optional[str] = None

    def __post_init__(self) -> None:
        _require(0 < self.alpha < 1, "al.alpha", "must be in (0, 1)")
        _require(self.level in ("atom", "structure"), "al.level", "one of atom, structure")
        _require(self.quantile in ("exact", "paper"), "al.quantile", "one of exact, paper")
        _require(self.retrain in ("scratch", "warm"), "al.retrain", "one of scratch, warm")
        _require(self.explore_runs >= 1 and self.explore_ps > 0, "al.explore_runs", "needs >= 1 run of > 0 ps")
        _require(self.n_calibration >= 1, "al.n_calibration", "must be >= 1")
        _require(self.max_iterations >= 1, "al.max_iterations", "must be >= 1")
        _require(
            self.threshold_rmse_factor is None or self.threshold_rmse_factor > 0,
            "al.threshold_rmse_factor",
            "must be > 0 (or null for the absolute threshold_kcal_mol_A)",
        )
        _require(
            self.stop_below_fraction is None or 0 < self.stop_below_fraction < 1,
            "al.stop_below_fraction",
            "must be in (0, 1) (or null for the count stop_below)",
        )
        for k in self.min_distance_A:
            _require(len(k.split("-")) == 2, "al.min_distance_A", f"key '{k}' is not an element pair like H-O")


@dataclass
class MDConfig:
    """Molecular dynamics with the trained potential (conf/md/*.yaml): NVT, Nosé–Hoover chain by default.

    Durations default to the ``scale``'s (``scale.md_duration_ps``): the paper's at ``scale=production``,
    a few ps at ``scale=tiny``.
    """

    name: str = MISSING
    engine: str = "ase"  # ase (CPU default) | torchsim (batched replicas on a GPU) | lammps (pair_allegro)
    temperature_K: float = 353.0
    timestep_fs: float = 0.5
    duration_ps: float = 10.0
    save_every_fs: float = 10.0  # positions, velocities and observables
    thermostat: str = "nose_hoover_chain"  # nose_hoover_chain | langevin
    thermostat_tau_ps: float = 0.05  # Nosé–Hoover chain relaxation time (Langevin: 1/friction)
    chain_length: int = 3
    replicas: int = 1  # independent runs from different initial structures (build.seed + r) and velocity seeds
    seed: int = 0  # velocity seed of replica r: seed + r
    start: Optional[str] = None  # extxyz or H5MD (last frame, with velocities); default: build a box per replica
    #: one start per replica (cycled), e.g. the classical stage's equilibrated boxes; overrides ``start``
    starts: List[str] = field(default_factory=list)
    topology: Optional[str] = None  # topology.json of ``start`` (default: the one beside it, else recognised)
    #: which member drives the MD; null: the committee mean of all members (N_c× the cost; engines ase and
    #: torchsim: md.engine=lammps refuses it at start)
    ensemble_member: Optional[int] = 0
    checkpoint_every_steps: int = 200
    equilibration_ps: float = 0.0  # leading part of the run that the analysis skips
    max_force_eV_A: float = 30.0  # stop when any force exceeds this
    max_temperature_factor: float = 2.0  # stop when T > factor × temperature_K
    check_molecules_every: int = 10  # saved frames between molecule-recognition checks (0: never)
    #: Verlet skin (Å) of the model's neighbour list in MD (engine ase; vesin): the list is rebuilt only when an
    #: atom moved more than half of it; 0 rebuilds every step. The forces are the same either way.
    neighbor_skin_A: float = 1.0
    #: when a check fails: ``stop`` (the stage fails with one line; checkpoint and bad frame kept) or
    #: ``truncate`` (engine ase: the replica ends at its last frame that passed every check, md.json says
    #: why and when, and the analysis uses the frames kept; the main job and the pipeline use this)
    on_unstable: str = "stop"
    lammps_command: str = "lmp"  # LAMMPS binary with the Allegro pair style (engine=lammps)

    def __post_init__(self) -> None:
        _check_dynamics("md", self.temperature_K, self.timestep_fs, self.duration_ps, self.thermostat_tau_ps)
        _require(
            self.engine in ("ase", "torchsim", "lammps"),
            "md.engine",
            f"'{self.engine}' is not one of ase, torchsim, lammps",
        )
        _require(
            self.thermostat in ("nose_hoover_chain", "langevin"), "md.thermostat", "one of nose_hoover_chain, langevin"
        )
        _require(self.save_every_fs >= self.timestep_fs, "md.save_every_fs", "must be >= md.timestep_fs")
        _require(self.replicas >= 1, "md.replicas", "must be >= 1")
        _require(self.chain_length >= 1, "md.chain_length", "must be >= 1")
        _require(self.max_temperature_factor > 1, "md.max_temperature_factor", "must be > 1")
        _require(self.neighbor_skin_A >= 0, "md.neighbor_skin_A", "must be >= 0 Å (0: rebuild every step)")
        _require(
            self.on_unstable in ("stop", "truncate"),
            "md.on_unstable",
            f"'{self.on_unstable}' is not one of stop, truncate",
        )
        from deepeut.md.engines import engine_problems

        for key, msg in engine_problems(self.engine, self.thermostat, self.ensemble_member, self.on_unstable)[:1]:
            raise ConfigError(f"{key}: {msg}")


@dataclass
class AnalysisConfig:
    """Trajectory analysis (conf/analysis/*.yaml): which analyses run and their settings (Å, ps)."""

    name: str = MISSING
    #: trajectories (H5MD, LAMMPS dump, extxyz; several = replicas); default: the md stage's replicas beside
    trajectories: List[str] = field(default_factory=list)
    timestep_fs: Optional[float] = None  # MD timestep of LAMMPS dumps / frame spacing of extxyz files
    dump_velocity_unit: str = "A/ps"  # LAMMPS dump velocities: A/ps (units metal) or A/fs (units real)
    read_chunk_mb: float = 32.0  # LAMMPS dumps are parsed at most this much text at a time (bounds memory)
    start_ps: Optional[float] = None  # skip this much (default: the run's md.equilibration_ps, else 0)
    stride: int = 1  # use every stride-th frame for the dynamics
    block_frames: int = 256  # frames per streaming block
    rdf: bool = True
    com_rdf: bool = True
    rdf_stride: int = 10  # frames between RDF samples
    #: atom RDFs and CNs count pairs of different molecules (intermolecular, as TRAVIS and the paper) or all pairs
    rdf_pairs: str = "intermolecular"
    rdf_r_max_A: float = 8.0  # (clipped to half the smallest box width)
    rdf_bins: int = 160
    diffusion: bool = True  # VACF (Eq. 8-9) and MSD (Eq. 10)
    conductivity: bool = True  # Eqs. 12-14
    lifetimes: bool = True  # Li-amide pair lifetime (Eq. 11) and rotational relaxation
    vccf: bool = True  # Eqs. 15-16
    cdf: bool = True  # g(r, φ): Li-TFSI CoM distance vs TFSI C-S-S-C torsion
    sdf: bool = True  # spatial distribution functions around TFSI and the amide (Gaussian cube files, Fig. 10)
    contact_cutoff_A: float = 3.0  # Li-O(amide) first shell (Eq. 11)
    max_lag_fraction: float = 0.3  # correlation depth (the paper: 30 % of the trajectory)
    vccf_lag_ps: float = 1.0  # VCCF correlation depth
    #: VCCF shell radius R (Å) per CoM pair where the paper names one (Li–TFSI: its first shell spans 2.6–5.2 Å,
    #: a double peak whose inner dip is not the shell's end); other pairs: the first minimum of the CoM g(r)
    vccf_shell_A: Dict[str, float] = field(default_factory=lambda: {"Li-TFSI": 5.2})
    n_blocks: int = 3  # time blocks for standard errors of D and σ within one trajectory (1: off)
    #: time-correlation analyses (D, σ, lifetimes, VCCFs) run only on at least this many frames; a shorter run
    #: gets the static analyses and a list of what was skipped and why
    min_correlation_frames: int = 20
    #: shear viscosity (mPa s) for the Yeh–Hummer finite-size correction of D (reported separately); null: off
    viscosity_mPa_s: Optional[float] = None

    def __post_init__(self) -> None:
        _require(0 < self.max_lag_fraction <= 0.5, "analysis.max_lag_fraction", "must be in (0, 0.5]")
        _require(self.stride >= 1 and self.rdf_stride >= 1, "analysis.stride", "must be >= 1")
        _require(self.rdf_r_max_A > 0 and self.rdf_bins > 10, "analysis.rdf_r_max_A", "must be > 0 (and rdf_bins > 10)")
        _require(self.dump_velocity_unit in ("A/ps", "A/fs"), "analysis.dump_velocity_unit", "one of A/ps, A/fs")
        _require(self.read_chunk_mb > 0, "analysis.read_chunk_mb", "must be > 0")


@dataclass
class LoggerConfig:
    """Experiment tracking (conf/logger/*.yaml): none | csv | wandb (offline unless ``mode: online``)."""

    name: str = MISSING
    mode: str = "offline"  # wandb: offline | online | disabled
    project: str = "deepeut"  # wandb project
    entity: Optional[str] = None  # wandb team/user
    tags: List[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _require(self.name in ("none", "csv", "wandb"), "logger.name", f"'{self.name}' is not one of none, csv, wandb")
        _require(self.mode in ("offline", "online", "disabled"), "logger.mode", "one of offline, online, disabled")


# --------------------------------------------------------------------------- top level
@dataclass
class PipelineConfig:
    """``stage=pipeline`` (the whole workflow) and ``stage=main`` (production MD + analysis + report).

    Every stage of a pipeline runs in ``<cache_dir>/<stage>/<system>-<key>/``, where ``key`` hashes the config
    sections that decide the stage's result and the keys of its inputs; a folder with ``stage.json`` is
    finished and is reused by any later run that resolves to the same key.
    """

    cache_dir: str = "outputs/stages"
    reference_labels: bool = False  # true: label reference MD (reference.*, labeler); false: the shipped xTB data
    #: ion pairs of the box that build, reference labels and active learning use (the paper: 8, its FPMD box);
    #: null: ``scale.n_ion_pairs``, like production MD
    reference_ion_pairs: Optional[int] = None
    active_learning: bool = True  # run the al.* loop between training and production MD
    #: stage=main: ensembles of earlier runs are looked for under this folder (newest complete one of the system)
    search_outputs: str = "outputs"
    #: on a CPU, refuse to start when the time estimate exceeds this many hours (null: no limit)
    max_estimate_h: Optional[float] = 3.0
    dry_run: bool = False  # print the plan and its estimate, then stop
    #: run stage=classical (GAFF2 equilibration, one box per MD replica) first and start the MD from its liquids
    classical: bool = True
    #: seconds a run waits for a stage folder that another live run is working in (0: stop at once with a line
    #: naming that run; negative: wait as long as it takes, then reuse its result)
    lock_wait_s: float = 0.0

    def __post_init__(self) -> None:
        _require(
            self.max_estimate_h is None or self.max_estimate_h > 0,
            "pipeline.max_estimate_h",
            "must be > 0 hours or null",
        )
        _require(
            self.reference_ion_pairs is None or self.reference_ion_pairs >= 1,
            "pipeline.reference_ion_pairs",
            "must be >= 1 or null",
        )


@dataclass
class Config:
    """The whole run: ``python run.py system=nma scale=tiny stage=build``."""

    system: SystemConfig = MISSING
    scale: ScaleConfig = MISSING
    stage: StageConfig = MISSING
    labeler: LabelerConfig = MISSING
    model: ModelConfig = MISSING
    train: TrainConfig = MISSING
    al: ALConfig = MISSING
    md: MDConfig = MISSING
    analysis: AnalysisConfig = MISSING
    logger: LoggerConfig = MISSING
    classical: ClassicalConfig = MISSING
    validate: ValidateConfig = MISSING
    build: BuildConfig = field(default_factory=BuildConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    data: DataConfig = field(default_factory=DataConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    seed: int = 0
    device: str = "cpu"  # cpu | cuda | cuda:N
    output_dir: Optional[str] = None  # default: the Hydra run directory
    #: a trained ensemble (a stage=train output folder with ensemble.json) for evaluate, md and main;
    #: ``embedded``: the default ensemble shipped for the system (deepeut/models/<system>);
    #: default: evaluate/md use the train/ folder beside the stage's output, main finds one (see deepeut.pipeline)
    ensemble: Optional[str] = None

    def __post_init__(self) -> None:
        _require(
            self.device == "cpu" or self.device.startswith("cuda") or self.device == "mps",
            "device",
            f"'{self.device}' is not cpu, cuda, cuda:N or mps",
        )


#: config groups and the schema each of their files is checked against
GROUPS: Dict[str, type] = {
    "system": SystemConfig,
    "scale": ScaleConfig,
    "stage": StageConfig,
    "labeler": LabelerConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "al": ALConfig,
    "md": MDConfig,
    "analysis": AnalysisConfig,
    "logger": LoggerConfig,
    "classical": ClassicalConfig,
    "validate": ValidateConfig,
}
