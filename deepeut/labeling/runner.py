"""Label many structures as independent tasks: serially, in a local process pool, or on Slurm (submitit).

Each task is keyed by the content hash of (structure, labeler settings). A task that the store already
holds is skipped; a worker writes its result file atomically the moment it is done, so a killed run
loses at most the calculations that were in flight. A failure budget (fraction of the tasks of a run)
stops the run with a clear message when too many labels fail.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Sequence

from deepeut.data.store import DatasetStore
from deepeut.data.label import structure_hash
from deepeut.labeling.base import FailureBudgetExceeded, Labeler, LabelingError

log = logging.getLogger(__name__)


@dataclass
class LabelItem:
    """One structure to label, with the split it goes to and where it came from."""

    atoms: Any  # ase.Atoms
    split: str = "train"
    source: Dict[str, Any] = field(default_factory=dict)


@dataclass
class LabelingReport:
    n_tasks: int = 0
    n_skipped: int = 0  # already in the store (finished earlier)
    n_labeled: int = 0
    n_failed: int = 0
    reasons: List[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> Dict[str, Any]:
        return {
            "n_tasks": self.n_tasks,
            "n_skipped": self.n_skipped,
            "n_labeled": self.n_labeled,
            "n_failed": self.n_failed,
            "failure_reasons": self.reasons[:20],
            "seconds": round(self.seconds, 2),
        }


def labeler_spec(cfg) -> Dict[str, Any]:
    """A plain, picklable description of the configured labeler (``cfg`` is a LabelerConfig)."""
    from dataclasses import asdict

    settings = {"xtb": asdict(cfg.xtb), "cp2k": asdict(cfg.cp2k)}.get(cfg.name)
    if settings is None:
        raise LabelingError(f"labeler '{cfg.name}' does not compute labels (use it to import data)")
    return {"name": cfg.name, "settings": settings, "max_net_force": cfg.max_net_force_eV_A}


def make_labeler(spec: Dict[str, Any]) -> Labeler:
    """Build the :class:`Labeler` of a :func:`labeler_spec`."""
    if spec["name"] == "xtb":
        from deepeut.labeling.xtb import XTBLabeler as cls
    elif spec["name"] == "cp2k":
        from deepeut.labeling.cp2k import CP2KLabeler as cls  # type: ignore[no-redef]
    else:
        raise LabelingError(f"unknown labeler '{spec['name']}'")
    return cls(spec["settings"], max_net_force=spec.get("max_net_force", 0.05))


def label_task(spec: Dict[str, Any], atoms, key: str, split: str, source: Dict, store_root: str) -> Dict:
    """Worker: label one structure and write its result (or failure) file into the store atomically."""
    from deepeut.data.store import write_failure, write_labeled_structure

    labeler = make_labeler(spec)
    root = Path(store_root)
    workdir = root / "work" / key if spec["name"] == "cp2k" else None
    try:
        label = labeler.label(atoms, workdir=str(workdir) if workdir else None)
    except LabelingError as exc:
        write_failure(root, key, atoms, split, source, str(exc), spec["name"], labeler.hash)
        return {"key": key, "status": "failed", "reason": str(exc)}
    write_labeled_structure(root, key, atoms, label, split, source)
    return {"key": key, "status": "ok", "reason": ""}


def _executor(kind: str, n_workers: int, folder: Path, exec_cfg):
    if kind == "pool":
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(max_workers=n_workers, mp_context=mp.get_context("spawn"))
    if kind in ("submitit", "submitit_local"):
        import submitit

        ex = submitit.AutoExecutor(folder=str(folder), cluster="local" if kind == "submitit_local" else None)
        params = {"timeout_min": exec_cfg.timeout_min, "cpus_per_task": exec_cfg.cpus_per_task}
        if kind == "submitit":
            params.update({"slurm_partition": exec_cfg.slurm_partition, "mem_gb": exec_cfg.mem_gb})
            params = {k: v for k, v in params.items() if v is not None}
        ex.update_parameters(**params)
        return ex
    raise LabelingError(f"labeler.executor.kind: '{kind}' is not serial, pool, submitit or submitit_local")


def _as_completed(kind: str, futures):
    if kind == "pool":
        from concurrent.futures import as_completed

        return as_completed(futures)
    import submitit

    return submitit.helpers.as_completed(futures)


def label_structures(
    items: Sequence[LabelItem],
    spec: Dict[str, Any],
    store: DatasetStore,
    exec_cfg,
    failure_budget: float = 0.1,
    progress: bool = True,
) -> LabelingReport:
    """Label ``items`` into ``store`` (resumable; see the module docstring)."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    store.recover()
    labeler = make_labeler(spec)
    report = LabelingReport(n_tasks=len(items))
    todo, queued = [], set()
    for it in items:
        key = structure_hash(it.atoms, labeler.hash)
        if store.has(key) or key in queued:
            report.n_skipped += 1
        else:
            todo.append((key, it))
            queued.add(key)
    log.info(
        "labeling with %s (%s): %d tasks, %d already done, %d to run on %s×%d",
        spec["name"],
        labeler.method,
        len(items),
        report.n_skipped,
        len(todo),
        exec_cfg.kind,
        exec_cfg.n_workers,
    )
    max_failures = failure_budget * max(len(items), 1)
    bar = tqdm(total=len(todo), desc=f"labeling ({spec['name']})", unit="structure", disable=not progress)

    def _ingest(result: Dict, it: LabelItem) -> None:
        key = result["key"]
        if result["status"] == "ok":
            store.ingest(key)
            report.n_labeled += 1
        else:
            store.ingest_failure(key)
            report.n_failed += 1
            report.reasons.append(f"{key}: {result['reason']}")
        bar.update(1)
        if report.n_failed > max_failures:
            raise FailureBudgetExceeded(
                f"failure budget exceeded: {report.n_failed} of {len(items)} labels failed "
                f"(budget {100 * failure_budget:.0f} %); first reasons: {' | '.join(report.reasons[:3])}"
            )

    args = [(spec, it.atoms, key, it.split, it.source, str(store.root)) for key, it in todo]
    try:
        if exec_cfg.kind == "serial" or not todo:
            for a, (_, it) in zip(args, todo):
                _ingest(label_task(*a), it)
        else:
            ex = _executor(exec_cfg.kind, exec_cfg.n_workers, store.root / "submitit", exec_cfg)
            futures = {}
            for a, (_, it) in zip(args, todo):
                futures[ex.submit(label_task, *a)] = it
            try:
                for fut in _as_completed(exec_cfg.kind, list(futures)):
                    _ingest(fut.result(), futures[fut])
            finally:
                if exec_cfg.kind == "pool":
                    ex.shutdown(wait=False, cancel_futures=True)
                else:
                    for fut in futures:
                        if not fut.done():
                            fut.cancel()
    finally:
        bar.close()
        report.seconds = time.perf_counter() - t0
    return report
