"""Finished stages keyed by the hash of their config and inputs, so that identical work is never redone.

A pipeline stage runs in ``<cache_dir>/<stage>/<system>-<key>/``. ``key`` is a SHA-256 (16 hex digits) of

* the stage name and deepeut's version,
* the config sections the stage reads (``deepeut.stages.STAGES[stage].reads``), without the fields the schema
  marks as execution (how it runs: ``train.devices``, ...) or input (a file handed in: ``md.starts``, ...),
* the keys (or content hashes) of its typed inputs: the upstream stages, the shipped dataset, an ensemble, start
  structures (:func:`structures_digest`),
* a content digest of the code that computes it (``STAGES[stage].code``: its packages and the ground floor) and
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
from typing import Any, Callable, Dict, Optional, Tuple

from deepeut.config.schema import Config
from deepeut.utils.io import write_json_atomic
from deepeut.utils.lock import LOCK, folder_lock

log = logging.getLogger(__name__)

DONE = "stage.json"


def keyed_config(obj: Any) -> Any:
    """A config section as plain data without its execution and input fields (``deepeut.config.base.key_exempt``:
    how a stage runs, and files the stage receives as typed inputs keyed by their content)."""
    from deepeut.config.base import key_exempt

    if dataclasses.is_dataclass(obj):
        return {f.name: keyed_config(getattr(obj, f.name)) for f in dataclasses.fields(obj) if not key_exempt(f)}
    if isinstance(obj, (list, tuple)):
        return [keyed_config(v) for v in obj]
    if isinstance(obj, dict):
        return {k: keyed_config(v) for k, v in obj.items()}
    return obj


def stage_config(cfg: Config, stage: str) -> Dict[str, Any]:
    """The config sections the stage reads (deepeut.stages.STAGES), as they enter its key."""
    from deepeut.stages import STAGES

    return {s: keyed_config(getattr(cfg, s)) for s in STAGES[stage].reads}


def stage_code(stage: str) -> Tuple[str, ...]:
    from deepeut.stages import STAGES

    return STAGES[stage].code


def digest(obj: Any) -> str:
    """16 hex digits of the SHA-256 of ``obj`` as canonical JSON."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_digest(path: Path) -> str:
    """Content hash of one file (an ensemble manifest, a dataset manifest, ...)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def structures_digest(paths) -> str:
    """Content hash of start structures (and the ``topology.json`` beside each), in order."""
    h = hashlib.sha256()
    for p in paths:
        for f in (Path(p), Path(p).with_name("topology.json")):
            if f.is_file():
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def stage_key(cfg: Config, stage: str, inputs: Dict[str, str]) -> str:
    from deepeut import __version__
    from deepeut.utils.provenance import code_digest, library_versions

    return digest(
        {
            "stage": stage,
            "deepeut": __version__,
            "inputs": inputs,
            "code": code_digest(stage_code(stage)),
            "libraries": library_versions(),
            "config": stage_config(cfg, stage),
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
                "config": stage_config(cfg, stage),
                "provenance": provenance(stage_code(stage)),
            },
        )
        return rec


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))
