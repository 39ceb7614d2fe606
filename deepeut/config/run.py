"""Config groups stage, logger and the pipeline section: what runs, how it is tracked, and the stage cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from omegaconf import MISSING

from deepeut.config.base import _choice, _require
from deepeut.config.choices import LoggerMode, LoggerName


@dataclass
class StageConfig:
    """Which stage ``run.py`` runs (conf/stage/*.yaml)."""

    name: str = MISSING


@dataclass
class LoggerConfig:
    """Experiment tracking (conf/logger/*.yaml): none | csv | wandb (offline unless ``mode: online``)."""

    name: LoggerName = MISSING
    mode: LoggerMode = LoggerMode.offline  # wandb: offline | online | disabled
    project: str = "deepeut"  # wandb project
    entity: Optional[str] = None  # wandb team/user
    tags: List[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _choice(self.name, LoggerName, "logger.name")
        _choice(self.mode, LoggerMode, "logger.mode")


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
