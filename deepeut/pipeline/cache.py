"""Finished stages keyed by the hash of their config and inputs, so that identical work is never redone.

A pipeline stage runs in ``<cache_dir>/<stage>/<system>-<key>/``. ``key`` is a SHA-256 (16 hex digits) of

* the stage name and deepeut's version,
* the config sections that decide the stage's result (:data:`SECTIONS`, minus how-to-run fields such as
  ``train.devices``: :data:`EXECUTION_FIELDS`),
* the keys (or content hashes) of its inputs: the upstream stages, the shipped dataset, an ensemble,
* a content digest of the code that computes it (:data:`CODE`: the stage's packages and the ground floor) and
  the versions of the libraries that decide its numbers (deepeut.utils.provenance), so a fixed bug or a new
  library never reuses a stale result.

``stage.json`` is written last, atomically: a folder with it is finished and any run that resolves to the same
key reuses it. A folder without it belongs to a run that died; the next run with the same key continues in it
(every stage resumes from its own checkpoints: labels in the store, ``last.ckpt``, MD ``checkpoint.pkl``, ...).
A run holds the folder's OS lock (:func:`deepeut.utils.lock.folder_lock`) while it works in it: a second run of
the same stage waits ``pipeline.lock_wait_s`` seconds for it, then stops with a line naming the holder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

from deepeut.config.schema import Config
from deepeut.utils.io import write_json_atomic
from deepeut.utils.lock import LOCK, folder_lock

log = logging.getLogger(__name__)

DONE = "stage.json"

#: config sections that decide each stage's result
SECTIONS: Dict[str, Sequence[str]] = {
    "build": ("system", "scale", "build"),
    "classical": ("system", "scale", "build", "classical"),
    "reference": ("system", "scale", "build", "reference", "labeler"),
    "train": ("system", "model", "train", "seed"),
    "al": ("system", "scale", "build", "labeler", "model", "train", "al", "md", "seed"),
    "md": ("system", "scale", "build", "md"),
    "analysis": ("system", "analysis"),
}

#: deepeut sub-packages whose code computes each stage (the ground floor is always included)
CODE: Dict[str, Sequence[str]] = {
    "build": ("systems",),
    "classical": ("classical", "systems"),
    "reference": ("labeling", "systems", "md"),
    "train": ("training",),
    "al": ("active_learning", "training", "labeling", "md", "systems"),
    "md": ("md", "training", "systems"),
    "analysis": ("analysis", "systems"),
    "validate": ("validation", "md", "training", "labeling", "systems"),
}

#: fields that change how a stage runs (hardware, parallelism, logging), not what it computes
EXECUTION_FIELDS = {
    "train": ("devices", "num_nodes", "strategy", "num_workers", "members"),
    "labeler": ("executor",),
    "analysis": ("trajectories",),
    "classical": ("param_cache",),
    "al": ("initial_ensemble",),  # the train stage's key is an input instead
    "md": ("checkpoint_every_steps", "neighbor_skin_A"),  # same frames either way
}


def _section(cfg: Config, dotted: str) -> Any:
    obj: Any = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
        for name in EXECUTION_FIELDS.get(dotted, ()):
            obj.pop(name, None)
    return obj


def digest(obj: Any) -> str:
    """16 hex digits of the SHA-256 of ``obj`` as canonical JSON."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_digest(path: Path) -> str:
    """Content hash of one file (an ensemble manifest, a dataset manifest, ...)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def stage_key(cfg: Config, stage: str, inputs: Dict[str, str]) -> str:
    from deepeut import __version__
    from deepeut.utils.provenance import code_digest, library_versions

    return digest(
        {
            "stage": stage,
            "deepeut": __version__,
            "inputs": inputs,
            "code": code_digest(tuple(CODE.get(stage, ()))),
            "libraries": library_versions(),
            "config": {s: _section(cfg, s) for s in SECTIONS[stage]},
        }
    )


@dataclass
class StageRecord:
    """One stage of a pipeline run: where it ran, whether it was reused, what it returned."""

    stage: str
    key: str
    dir: Path
    reused: bool = False
    wall_s: float = 0.0
    result: Dict = field(default_factory=dict)

    def to_json(self) -> Dict:
        return {
            "stage": self.stage,
            "key": self.key,
            "dir": str(self.dir),
            "reused": self.reused,
            "wall_s": round(self.wall_s, 1),
            "result": self.result,
        }


class StageCache:
    """``<root>/<stage>/<system>-<key>/`` folders; :meth:`run` reuses a finished one or runs the stage into it."""

    def __init__(self, root: str | Path, system: str, lock_wait_s: float = 0.0):
        self.root, self.system, self.lock_wait_s = Path(root), system, lock_wait_s

    def folder(self, stage: str, key: str) -> Path:
        return self.root / stage / f"{self.system}-{key}"

    def finished(self, stage: str, key: str) -> Optional[Dict]:
        path = self.folder(stage, key) / DONE
        return json.loads(path.read_text()) if path.exists() else None

    def run(self, cfg: Config, stage: str, inputs: Dict[str, str], func: Callable[[Path], Dict]) -> StageRecord:
        """Reuse the finished stage with this key, or run ``func(folder)`` under the folder's lock and mark it
        finished."""
        key = stage_key(cfg, stage, inputs)
        folder = self.folder(stage, key)
        done = self.finished(stage, key)
        if done is None:
            with folder_lock(folder, self.lock_wait_s):
                done = self.finished(stage, key)  # a run we waited for may have finished it
                if done is None:
                    return self._run_locked(cfg, stage, key, inputs, func)
        log.info("stage %s: reusing the finished run in %s (key %s)", stage, folder, key)
        return StageRecord(stage, key, folder, True, done.get("wall_s", 0.0), done.get("result", {}))

    def _run_locked(
        self, cfg: Config, stage: str, key: str, inputs: Dict[str, str], func: Callable[[Path], Dict]
    ) -> StageRecord:
        folder = self.folder(stage, key)
        if any(p.name != LOCK for p in folder.iterdir()):
            log.info("stage %s: continuing the unfinished run in %s", stage, folder)
            for part in folder.rglob(".*.part"):  # half-written files of a killed run (we hold the lock)
                part.unlink(missing_ok=True)
        t0 = time.time()
        result = func(folder) or {}
        rec = StageRecord(stage, key, folder, False, time.time() - t0, _jsonable(result))
        from deepeut.utils.provenance import provenance

        write_json_atomic(
            folder / DONE,
            {
                **rec.to_json(),
                "inputs": inputs,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "config": {s: _section(cfg, s) for s in SECTIONS[stage]},
                "provenance": provenance(tuple(CODE.get(stage, ()))),
            },
        )
        return rec


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))
