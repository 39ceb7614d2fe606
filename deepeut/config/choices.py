"""The string choices of the config, as enums (OmegaConf refuses any other value at composition, naming the key).

``StrEnum`` members compare equal to their strings and print as them, so code and YAML use the plain words.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Sequence


def choices(name: str, words: Sequence[str]) -> type:
    """An enum whose members are named and valued by ``words`` (any string, e.g. ``GFN2-xTB`` or ``import``)."""
    return StrEnum(name, [(w, w) for w in words], module=__name__)


#: MD engine: ase (CPU default), torchsim (batched replicas on a GPU), lammps (pair_allegro)
Engine = StrEnum("Engine", ["ase", "torchsim", "lammps"])
Thermostat = StrEnum("Thermostat", ["nose_hoover_chain", "langevin"])
#: a committee-mean run's members: one model call each, or one vmapped call over their stacked weights
CommitteeEval = StrEnum("CommitteeEval", ["loop", "vmap"])
#: when an MD safety check fails: stop the stage, or keep the frames before the failure and go on
OnUnstable = StrEnum("OnUnstable", ["stop", "truncate"])
#: conformal scores per atom, or per structure (the max over its atoms)
ConformalLevel = StrEnum("ConformalLevel", ["atom", "structure"])
#: exact: the split-conformal order statistic; paper: the paper's AmpTorch formula
ConformalQuantile = StrEnum("ConformalQuantile", ["exact", "paper"])
#: how an AL iteration retrains: from scratch, or warm-started from the previous iteration's members
Retrain = StrEnum("Retrain", ["scratch", "warm"])
LabelerName = choices("LabelerName", ["xtb", "cp2k", "import"])
XTBMethod = choices("XTBMethod", ["GFN2-xTB", "GFN1-xTB"])
ImportFormat = choices("ImportFormat", ["extxyz", "cp2k"])
#: how labeling tasks run: serial, pool (local processes), submitit (Slurm), submitit_local
ExecutorKind = choices("ExecutorKind", ["serial", "pool", "submitit", "submitit_local"])
LoggerName = choices("LoggerName", ["none", "csv", "wandb"])
LoggerMode = choices("LoggerMode", ["offline", "online", "disabled"])
SpeciesRole = choices("SpeciesRole", ["cation", "anion", "solvent"])
#: the force field of the packmol pre-optimisation (RDKit)
PackingForceField = choices("PackingForceField", ["MMFF", "UFF"])
#: LAMMPS dump velocity unit: A/ps (units metal) or A/fs (units real)
VelocityUnit = choices("VelocityUnit", ["A/ps", "A/fs"])
#: which atom pairs the RDFs and CNs count: pairs of different molecules (TRAVIS, the paper) or all pairs
RDFPairs = choices("RDFPairs", ["intermolecular", "all"])
ModelDtype = choices("ModelDtype", ["float32", "float64"])
#: MLP nonlinearity of an Allegro block (null in the config: linear)
Nonlinearity = choices("Nonlinearity", ["silu", "mish", "gelu"])
