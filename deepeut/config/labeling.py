"""Config groups labeler, reference and data: reference methods (GFN2-xTB, CP2K, imported labels), how labels
are computed in parallel, labeler-driven reference MD and the dataset store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from omegaconf import MISSING

from deepeut.config.base import EXECUTION, INPUT, _at_least, _check_dynamics, _choice, _positive, _require
from deepeut.config.choices import ExecutorKind, ImportFormat, LabelerName, Thermostat, XTBMethod


@dataclass
class XTBSettings:
    """GFN-xTB through tblite (labeler=xtb)."""

    method: XTBMethod = XTBMethod["GFN2-xTB"]
    electronic_temperature: float = 300.0  # K (Fermi smearing)
    accuracy: float = 1.0  # tblite numerical accuracy (smaller is tighter)
    max_iterations: int = 250  # SCF cycles
    mixer_damping: float = 0.4
    threads: int = 1  # OpenMP threads per task: parallelism comes from running tasks side by side

    def __post_init__(self) -> None:
        _choice(self.method, XTBMethod, "labeler.xtb.method")
        _require(self.electronic_temperature > 0, "labeler.xtb.electronic_temperature", "must be > 0 K")
        _require(self.threads >= 1, "labeler.xtb.threads", "must be >= 1")
        _positive(self, "labeler.xtb", "accuracy", "mixer_damping")
        _at_least(self, "labeler.xtb", 1, "max_iterations")


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

    def __post_init__(self) -> None:
        _positive(self, "labeler.cp2k", "cutoff_Ry", "rel_cutoff_Ry")
        _at_least(self, "labeler.cp2k", 1, "max_scf")
        _at_least(self, "labeler.cp2k", 0, "outer_scf")


@dataclass
class ImportSettings:
    """Existing reference data (labeler=import)."""

    path: Optional[str] = None  # extxyz file, or a CP2K *-pos-1.xyz (forces from *-frc-1.xyz beside it)
    format: ImportFormat = ImportFormat.extxyz
    energy_unit: str = "eV"  # eV | hartree | kcal/mol | kJ/mol | Ry
    force_unit: str = "eV/A"  # eV/A | hartree/bohr | kcal/mol/A | kJ/mol/A
    cp2k_input: Optional[str] = None  # CP2K input with the &CELL (default: the *.inp beside the trajectory)

    def __post_init__(self) -> None:
        _choice(self.format, ImportFormat, "labeler.imported.format")


@dataclass
class ExecutorConfig:
    """Where labeling tasks run."""

    kind: ExecutorKind = ExecutorKind.pool  # serial | pool (local processes) | submitit (Slurm) | submitit_local
    n_workers: int = 1
    timeout_min: int = 60
    cpus_per_task: int = 1
    mem_gb: Optional[int] = 4
    slurm_partition: Optional[str] = None

    def __post_init__(self) -> None:
        _choice(self.kind, ExecutorKind, "labeler.executor.kind")
        _require(self.n_workers >= 1, "labeler.executor.n_workers", "must be >= 1")
        _positive(self, "labeler.executor", "timeout_min", "mem_gb")
        _at_least(self, "labeler.executor", 1, "cpus_per_task")


@dataclass
class LabelerConfig:
    """Reference method (conf/labeler/*.yaml): ``name`` picks which settings block is used."""

    name: LabelerName = MISSING  # xtb | cp2k | import
    xtb: XTBSettings = field(default_factory=XTBSettings)
    cp2k: CP2KSettings = field(default_factory=CP2KSettings)
    imported: ImportSettings = field(default_factory=ImportSettings)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig, metadata=EXECUTION)
    failure_budget: float = 0.1  # fraction of a run's labels allowed to fail before it stops
    max_net_force_eV_A: float = 0.05  # |Σ F| above this rejects a label

    def __post_init__(self) -> None:
        _choice(self.name, LabelerName, "labeler.name")
        _require(0 <= self.failure_budget <= 1, "labeler.failure_budget", "must be in [0, 1]")
        _positive(self, "labeler", "max_net_force_eV_A")
        if self.name == "import":
            _require(bool(self.imported.path), "labeler.imported.path", "labeler=import needs a file to import")


@dataclass
class ReferenceConfig:
    """stage=reference: MD driven by the labeler itself, then the paper's frame selection."""

    #: start structure (extxyz); default: build one (stage build) in the run dir
    box: Optional[str] = field(default=None, metadata=INPUT)
    temperature_K: float = 353.0
    timestep_fs: float = 0.5
    duration_ps: float = 0.1  # paper: 20 ps
    thermostat: Thermostat = Thermostat.nose_hoover_chain
    thermostat_tau_ps: float = 0.05
    chain_length: int = 3
    n_train: int = 60  # frames from the first 75 % (increasing time lag); paper: 4500 (train + validation)
    n_test: int = 20  # frames from the last 25 %; paper: 500
    trainval_fraction: float = 0.75
    checkpoint_every: int = 10  # MD steps between checkpoints
    seed: int = 0

    def __post_init__(self) -> None:
        _check_dynamics("reference", self.temperature_K, self.timestep_fs, self.duration_ps, self.thermostat_tau_ps)
        _choice(self.thermostat, Thermostat, "reference.thermostat")
        _require(0 < self.trainval_fraction < 1, "reference.trainval_fraction", "must be in (0, 1)")
        _at_least(self, "reference", 1, "chain_length", "n_train", "checkpoint_every")
        _at_least(self, "reference", 0, "n_test", "seed")


@dataclass
class DataConfig:
    """Where the dataset store lives."""

    store: Optional[str] = field(default=None, metadata=INPUT)  # default: <run dir>/data
    source: Optional[str] = field(default=None, metadata=INPUT)  # stage=label: extxyz file of structures to label
    split: str = "train"  # stage=label: split of the labeled structures
