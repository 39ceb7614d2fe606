"""The stages: one entry per stage; ``run.py`` dispatches on ``stage.name``.

Each stage has a command-line adapter ``(cfg, out) -> dict`` (listed here) that takes its inputs from the config
and calls the stage's typed function ``run_<stage>(cfg, <inputs>, out) -> <output>`` (deepeut.stage_io); the
pipeline calls the typed functions directly. ``reads`` names the config sections that decide a stage's result and
``code`` the packages that compute it: together with the content of its inputs they make its cache key
(deepeut.pipeline.cache). Fields marked execution or input in the config schema never enter a key.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Tuple

from deepeut.config.schema import Config, ConfigError
from deepeut.errors import StageError


@dataclass(frozen=True)
class Stage:
    entry: str  # "module:function" of the command-line adapter (imported lazily: config errors come in < 1 s)
    reads: Tuple[str, ...] = ()  # config sections that decide the result (the cache key)
    code: Tuple[str, ...] = ()  # deepeut sub-packages that compute it (the ground floor is always included)


STAGES: Dict[str, Stage] = {
    "build": Stage("deepeut.systems.task:build", ("system", "scale", "build"), ("systems",)),
    "classical": Stage(
        "deepeut.classical.task:classical", ("system", "scale", "build", "classical"), ("classical", "systems")
    ),
    "reference": Stage(
        "deepeut.labeling.task:reference",
        ("system", "scale", "build", "reference", "labeler"),
        ("labeling", "systems", "md"),
    ),
    "label": Stage("deepeut.labeling.task:label"),
    "dataset": Stage("deepeut.data.task:dataset"),
    "train": Stage("deepeut.training.task:train", ("system", "model", "train", "seed"), ("training",)),
    "evaluate": Stage("deepeut.training.evaluate:evaluate"),
    "md": Stage("deepeut.md.task:md", ("system", "scale", "build", "md"), ("md", "training", "systems")),
    "analysis": Stage("deepeut.analysis.task:analysis", ("system", "analysis"), ("analysis", "systems")),
    "al": Stage(
        "deepeut.active_learning.loop:active_learning",
        ("system", "scale", "build", "labeler", "model", "train", "al", "md", "seed"),
        ("active_learning", "training", "labeling", "md", "systems"),
    ),
    "validate": Stage(
        "deepeut.pipeline.workflow:validate_job",
        ("system", "scale", "build", "md", "validate", "labeler"),
        ("validation", "md", "training", "labeling", "systems"),
    ),
    "pipeline": Stage("deepeut.pipeline.workflow:run_pipeline"),
    "main": Stage("deepeut.pipeline.workflow:main_job"),
}


#: errors that end a stage with one clear line (and exit code 1) instead of a traceback (deepeut.errors)
RUN_ERRORS = (StageError,)


def stage_function(name: str) -> Callable[[Config, Path], Dict]:
    if name not in STAGES:
        raise ConfigError(f"stage.name: '{name}' is not one of {', '.join(STAGES)}")
    module, func = STAGES[name].entry.split(":")
    return getattr(importlib.import_module(module), func)


def run_stage(cfg: Config, out: Path) -> Dict:
    out.mkdir(parents=True, exist_ok=True)
    return stage_function(cfg.stage.name)(cfg, out)
