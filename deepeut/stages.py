"""One function per stage; ``run.py`` dispatches on ``stage.name``.

Each stage reads its inputs from files and writes its outputs into the run directory ``out``;
nothing flows between stages through globals.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable, Dict

from deepeut.config.schema import Config, ConfigError
from deepeut.errors import StageError

#: stage name → "module:function" (imported lazily so that config errors surface in well under a second)
STAGES: Dict[str, str] = {
    "build": "deepeut.systems.task:build",
    "classical": "deepeut.classical.task:classical",
    "reference": "deepeut.labeling.task:reference",
    "label": "deepeut.labeling.task:label",
    "dataset": "deepeut.data.task:dataset",
    "train": "deepeut.training.task:train",
    "evaluate": "deepeut.training.evaluate:evaluate",
    "md": "deepeut.md.task:md",
    "analysis": "deepeut.analysis.task:analysis",
    "al": "deepeut.active_learning.loop:active_learning",
    "validate": "deepeut.validation.task:validate",
    "pipeline": "deepeut.pipeline.workflow:run_pipeline",
    "main": "deepeut.pipeline.workflow:main_job",
}


#: errors that end a stage with one clear line (and exit code 1) instead of a traceback (deepeut.errors)
RUN_ERRORS = (StageError,)


def stage_function(name: str) -> Callable[[Config, Path], Dict]:
    if name not in STAGES:
        raise ConfigError(f"stage.name: '{name}' is not one of {', '.join(STAGES)}")
    module, func = STAGES[name].split(":")
    return getattr(importlib.import_module(module), func)


def run_stage(cfg: Config, out: Path) -> Dict:
    out.mkdir(parents=True, exist_ok=True)
    return stage_function(cfg.stage.name)(cfg, out)
