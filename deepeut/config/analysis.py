"""Config group analysis: which analyses run on which trajectories, and their settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from omegaconf import MISSING

from deepeut.config.base import _at_least, _choice, INPUT, _positive, _require
from deepeut.config.choices import RDFPairs, VelocityUnit


@dataclass
class AnalysisConfig:
    """Trajectory analysis (conf/analysis/*.yaml): which analyses run and their settings (Å, ps)."""

    name: str = MISSING
    #: trajectories (H5MD, LAMMPS dump, extxyz; several = replicas); default: the md stage's replicas beside
    trajectories: List[str] = field(default_factory=list, metadata=INPUT)
    timestep_fs: Optional[float] = None  # MD timestep of LAMMPS dumps / frame spacing of extxyz files
    dump_velocity_unit: VelocityUnit = VelocityUnit["A/ps"]  # LAMMPS dump velocities (see VelocityUnit)
    read_chunk_mb: float = 32.0  # LAMMPS dumps are parsed at most this much text at a time (bounds memory)
    start_ps: Optional[float] = None  # skip this much (default: the run's md.equilibration_ps, else 0)
    stride: int = 1  # use every stride-th frame for the dynamics
    block_frames: int = 256  # frames per streaming block
    rdf: bool = True
    com_rdf: bool = True
    rdf_stride: int = 10  # frames between RDF samples
    #: atom RDFs and CNs count pairs of different molecules (intermolecular, as TRAVIS and the paper) or all pairs
    rdf_pairs: RDFPairs = RDFPairs.intermolecular
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
        _choice(self.dump_velocity_unit, VelocityUnit, "analysis.dump_velocity_unit")
        _choice(self.rdf_pairs, RDFPairs, "analysis.rdf_pairs")
        _require(self.read_chunk_mb > 0, "analysis.read_chunk_mb", "must be > 0")
        _positive(self, "analysis", "contact_cutoff_A", "vccf_lag_ps")
        _at_least(self, "analysis", 1, "block_frames", "min_correlation_frames", "n_blocks")
        for pair, r in self.vccf_shell_A.items():
            _require(r > 0, f"analysis.vccf_shell_A.{pair}", f"must be > 0 Å, got {r}")
