"""Hydra structured configs: the schema every YAML file in ``conf/`` is validated against.

One module per config group (deepeut/config/<group>.py, next to its validators); this module assembles the
top-level :class:`Config` and the group registry. Typed fields catch unknown keys and wrong types when Hydra
composes the config (before any work starts); ``__post_init__`` checks values (ranges, consistency) when
:func:`deepeut.config.validate` turns the composed config into these objects. Units are in the field names
(``_K``, ``_fs``, ``_A``, ...).
"""

from __future__ import annotations

import logging

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, Optional, get_type_hints

from omegaconf import MISSING

from deepeut.config.al import ALConfig
from deepeut.config.analysis import AnalysisConfig
from deepeut.config.base import INPUT, ConfigError, _check_dynamics, _require
from deepeut.config.classical import ClassicalConfig
from deepeut.config.labeling import (
    CP2KSettings,
    DataConfig,
    ExecutorConfig,
    ImportSettings,
    LabelerConfig,
    ReferenceConfig,
    XTBSettings,
)
from deepeut.config.md import MDConfig
from deepeut.config.run import LoggerConfig, PipelineConfig, StageConfig
from deepeut.config.system import BuildConfig, LabelRule, ScaleConfig, SpeciesConfig, SystemConfig
from deepeut.config.training import ModelConfig, TrainConfig
from deepeut.config.validate import ValidateConfig

__all__ = [
    "ALConfig",
    "AnalysisConfig",
    "BuildConfig",
    "CP2KSettings",
    "ClassicalConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "ExecutorConfig",
    "GROUPS",
    "ImportSettings",
    "LabelRule",
    "LabelerConfig",
    "LoggerConfig",
    "MDConfig",
    "ModelConfig",
    "PipelineConfig",
    "ReferenceConfig",
    "ScaleConfig",
    "SpeciesConfig",
    "StageConfig",
    "SystemConfig",
    "TrainConfig",
    "ValidateConfig",
    "XTBSettings",
    "_check_dynamics",
    "_require",
]


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
    #: the trained model committee (a stage=train output folder with ensemble.json) for evaluate, md, validate
    #: and main; ``embedded``: the committee shipped for the system (deepeut/models/<system>); default: evaluate/md
    #: use the train/ folder beside the stage's output, main and validate find one (see deepeut.pipeline)
    committee: Optional[str] = field(default=None, metadata=INPUT)
    #: the old name of ``committee`` (to a chemist an "ensemble" is NVT or NPT); still accepted, with a warning
    ensemble: Optional[str] = field(default=None, metadata=INPUT)

    def __post_init__(self) -> None:
        if self.ensemble is not None:
            _require(
                self.committee in (None, self.ensemble),
                "ensemble",
                "is the old name of committee; give committee= alone",
            )
            logging.getLogger("deepeut").warning("ensemble= is now committee= (the old name still works)")
            self.committee, self.ensemble = self.ensemble, None
        _require(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        _require(
            self.device == "cpu" or self.device.startswith("cuda") or self.device == "mps",
            "device",
            f"'{self.device}' is not cpu, cuda, cuda:N or mps",
        )


#: config groups and the schema each of their files is checked against
GROUPS: Dict[str, type] = {
    f.name: get_type_hints(Config)[f.name] for f in dataclasses.fields(Config) if f.default is MISSING
}
