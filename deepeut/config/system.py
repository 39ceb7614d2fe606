"""Config groups system, scale and build: the chemistry (species from SMILES, Fig. 1 labels), the box size and
the packing of boxes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

from omegaconf import MISSING

from deepeut.config.base import _at_least, _choice, _positive, _require
from deepeut.config.choices import PackingForceField, SpeciesRole


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
    role: SpeciesRole = MISSING  # cation | anion | solvent
    charge: int = 0  # e
    per_ion_pair: float = 1.0  # molecules per LiTFSI ion pair (the molar ratio)
    labels: List[LabelRule] = field(default_factory=list)
    #: conformer choice: 4-atom SMARTS → wanted dihedral (degrees), e.g. trans-NMA
    dihedral_targets: Dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _choice(self.role, SpeciesRole, f"species {self.name}.role")
        _require(self.per_ion_pair > 0, f"species {self.name}.per_ion_pair", "must be > 0")


@dataclass
class SystemConfig:
    """The chemistry of one deep eutectic electrolyte (conf/system/*.yaml)."""

    name: str = MISSING
    title: str = ""
    species: List[SpeciesConfig] = field(default_factory=list)
    density_g_cm3: float = MISSING  # from the paper's production box
    temperature_K: float = MISSING  # K (the paper: 353)
    conductivity_exp_S_m: float = MISSING  # Table III, experiment
    paper_box_edge_A: float = MISSING  # production box edge of the paper (128 ion pairs)
    production_ps: float = MISSING  # the paper's production run (URA 3 ns, ACT and NMA 2 ns)
    #: the paper's numbers for this system (Tables I-III), printed beside ours
    paper: Dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(self.density_g_cm3 > 0, "system.density_g_cm3", "must be > 0")
        _positive(self, "system", "production_ps")
        _require(self.temperature_K > 0, "system.temperature_K", f"must be > 0 K, got {self.temperature_K}")
        _require(len(self.species) >= 2, "system.species", "needs at least a cation and an anion")
        charge = sum(s.charge * s.per_ion_pair for s in self.species)
        _require(abs(charge) < 1e-9, "system.species", f"net charge per ion pair is {charge:+g} e, not 0")


@dataclass
class ScaleConfig:
    """Box size: how many LiTFSI ion pairs (the amide count follows from the molar ratio)."""

    name: str = MISSING
    n_ion_pairs: int = MISSING
    #: default MD durations (ps) of the md configs at this scale: equilibrate, production (exploration: the al group)
    md_duration_ps: Dict[str, float] = field(default_factory=dict)
    #: default classical (GAFF2) durations (ps) at this scale: heat, npt, nvt
    classical_duration_ps: Dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(self.n_ion_pairs >= 1, "scale.n_ion_pairs", "must be >= 1")
        for group, durations in (
            ("md_duration_ps", self.md_duration_ps),
            ("classical_duration_ps", self.classical_duration_ps),
        ):
            for stage, ps in durations.items():
                _require(ps >= 0, f"scale.{group}.{stage}", f"must be >= 0 ps, got {ps}")


@dataclass
class BuildConfig:
    """Packing of a liquid box (stage=build)."""

    seed: int = 1
    packmol_tolerance_A: float = 2.0  # packmol distance tolerance between molecules
    min_distance_A: float = 1.7  # check: no two atoms of different molecules closer than this
    density_tolerance: float = 0.005  # check: relative deviation of the density
    max_attempts: int = 3  # packmol retries with new seeds before giving up
    #: conformer used for each species: RDKit ETKDG + MMFF (UFF when MMFF has no parameters)
    force_field: PackingForceField = PackingForceField.MMFF

    def __post_init__(self) -> None:
        _require(
            0 < self.min_distance_A <= self.packmol_tolerance_A,
            "build.min_distance_A",
            "must be in (0, build.packmol_tolerance_A]",
        )
        _choice(self.force_field, PackingForceField, "build.force_field")
        _at_least(self, "build", 0, "seed")
        _at_least(self, "build", 1, "max_attempts")
        _positive(self, "build", "density_tolerance")
