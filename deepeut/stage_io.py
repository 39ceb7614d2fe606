"""What one stage hands the next: typed inputs and outputs, all of them files.

Every stage has a function ``run_<stage>(cfg, <typed inputs>, out) -> <typed output>``; the pipeline
(deepeut.pipeline.workflow) is the only place that wires one stage's output to the next stage's input, and the
stage cache keys a stage by its config sections plus the content of these inputs (deepeut.pipeline.cache). A stage
run alone from the command line (``stage=md``) gets its inputs from the config through a thin adapter (``md.starts``,
``committee=``, ``analysis.trajectories``, ``data.store``, ...); the config is never rewritten to pass data.

Paths are as given (absolute or relative to the working directory); ``to_json`` gives the stage record's result.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple


def _json(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (Structures, Trajectories)):
        return [str(p) for p in value.paths]
    if isinstance(value, Dataset):
        return str(value.store) if value.store is not None else None
    if isinstance(value, EnsembleRef):
        return str(value.path)
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Structures:
    """Start structures (extxyz with ``topology.json`` beside it, or H5MD), one per replica, cycled; empty: each
    replica packs a fresh box."""

    paths: Tuple[Path, ...] = ()

    @classmethod
    def of(cls, paths: Sequence[str | Path]) -> "Structures":
        return cls(tuple(Path(p) for p in paths))

    def __bool__(self) -> bool:
        return bool(self.paths)

    def for_replica(self, replica: int) -> Optional[Path]:
        return self.paths[replica % len(self.paths)] if self.paths else None


@dataclass(frozen=True)
class Dataset:
    """A labeled dataset: a store folder (deepeut.data.store), or None for the shipped demo dataset of the system."""

    store: Optional[Path] = None


@dataclass(frozen=True)
class EnsembleRef:
    """A trained committee: a ``stage=train`` folder (``ensemble.json`` + ``member_<k>/``)."""

    path: Path


@dataclass(frozen=True)
class Trajectories:
    """MD trajectories (H5MD, or LAMMPS dumps with analysis.topology) of replicas of one system."""

    paths: Tuple[Path, ...]

    @classmethod
    def of(cls, paths: Sequence[str | Path]) -> "Trajectories":
        return cls(tuple(Path(p) for p in paths))


class StageOutput:
    """Base of the typed outputs. ``to_json`` (the stage record's result): every field as plain data, a field
    ``summary`` (the stage's numbers) spread into the top level."""

    def to_json(self) -> Dict[str, Any]:
        out = {f.name: _json(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "summary"}
        return {**out, **_json(getattr(self, "summary", {}))}


@dataclass(frozen=True)
class BoxOutput(StageOutput):
    box: Structures  # box.extxyz (topology.json beside it)
    summary: Dict = field(default_factory=dict)


@dataclass(frozen=True)
class ClassicalOutput(StageOutput):
    liquids: Structures  # replica_<r>/box.extxyz
    classical: Path  # classical.json


@dataclass(frozen=True)
class DatasetOutput(StageOutput):
    store: Dataset
    summary: Dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainOutput(StageOutput):
    ensemble: EnsembleRef
    summary: Dict = field(default_factory=dict)


@dataclass(frozen=True)
class ALOutput(StageOutput):
    ensemble: Optional[EnsembleRef]  # the final committee (None: the loop never trained)
    history: List[Dict]
    stopped: bool


@dataclass(frozen=True)
class MDOutput(StageOutput):
    trajectories: Trajectories
    md: Path  # md.json
    stopped_early: List[str]
