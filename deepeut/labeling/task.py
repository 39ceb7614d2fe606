"""``stage=reference`` (the primary dataset) and ``stage=label`` (label given structures in parallel)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Dict, Optional

from deepeut.config.schema import Config, ConfigError
from deepeut.data.store import DatasetStore
from deepeut.data.label import structure_hash
from deepeut.stage_io import Dataset, DatasetOutput, Structures
from deepeut.utils.io import write_json_atomic

log = logging.getLogger(__name__)


def store_path(cfg: Config, out: Path) -> Path:
    """The dataset store of this run: ``data.store`` or ``<run dir>/data``."""
    return Path(cfg.data.store) if cfg.data.store else out / "data"


def start_box(cfg: Config, start: Optional[Path], out: Path):
    """The start structure: ``start`` or a freshly built box (written to ``<out>/build``)."""
    from ase.io import read

    if start is not None:
        if not Path(start).exists():
            raise ConfigError(f"reference.box: {start} does not exist")
        return read(start)
    from deepeut.systems.task import build

    box = out / "build" / "box.extxyz"
    if not box.exists():
        build(cfg, out / "build")
    return read(box)


def reference(cfg: Config, out: Path) -> Dict:
    """``stage=reference`` from the command line: start at ``reference.box`` (none: a freshly packed box), store in
    ``data.store`` (none: ``<out>/data``), then :func:`run_reference`."""
    start = Path(cfg.reference.box) if cfg.reference.box else None
    return run_reference(cfg, start, Dataset(store_path(cfg, out)), out).to_json()


def run_reference(cfg: Config, start: Optional[Path], dataset: Dataset, out: Path) -> DatasetOutput:
    """Labeler-driven NVT MD from ``start`` (or imported reference data), frame selection, into the store of
    ``dataset``."""
    from deepeut.labeling.reference import imported_labels, run_labeler_md, select_frames, trajectory_labels
    from deepeut.labeling.runner import labeler_spec, make_labeler

    t0 = time.perf_counter()
    ref = cfg.reference
    if cfg.labeler.name == "import":
        frames = imported_labels(cfg)
        kind, labeler_hash = "import", "import:" + str(cfg.labeler.imported.path)
    else:
        labeler = make_labeler(labeler_spec(cfg.labeler))
        atoms = start_box(cfg, start, out)
        traj = run_labeler_md(atoms, labeler, ref, out / "reference_md")
        frames = list(trajectory_labels(traj, labeler))
        kind, labeler_hash = "reference_md", labeler.hash
    train_idx, test_idx = select_frames(len(frames), ref)
    store = DatasetStore(dataset.store)
    added = {"train": 0, "test": 0}
    for split, idx in (("train", train_idx), ("test", test_idx)):
        for k in idx.tolist():
            atoms, label = frames[k]
            source = {"kind": kind, "frame": k, "time_fs": atoms.info.get("time_fs"), "system": cfg.system.name}
            added[split] += store.add(structure_hash(atoms, labeler_hash), atoms, label, split, source)
    store.export()
    summary = {
        "n_frames": len(frames),
        "n_train": len(train_idx),
        "n_test": len(test_idx),
        "added": added,
        "store": str(store.root),
        "seconds": round(time.perf_counter() - t0, 1),
        "units": {"energy": "eV", "forces": "eV/Å", "time": "fs"},
    }
    write_json_atomic(out / "reference.json", summary)
    log.info(
        "reference dataset: %d frames → %d train, %d test in %s\n%s",
        len(frames),
        len(train_idx),
        len(test_idx),
        store.root,
        store.summary(),
    )
    store.close()
    return DatasetOutput(dataset, summary)


def label(cfg: Config, out: Path) -> Dict:
    """``stage=label`` from the command line: the structures of ``data.source`` into the store of ``data.store``
    (none: ``<out>/data``), then :func:`run_label`."""
    if not cfg.data.source:
        raise ConfigError("data.source: stage=label needs an extxyz file of structures to label")
    src = Path(cfg.data.source)
    if not src.exists():
        raise ConfigError(f"data.source: {src} does not exist")
    return run_label(cfg, Structures.of([src]), Dataset(store_path(cfg, out)), out).to_json()


def run_label(cfg: Config, sources: Structures, dataset: Dataset, out: Path) -> DatasetOutput:
    """Label every structure of the ``sources`` files (extxyz) into the store of ``dataset`` as split
    ``data.split``, in parallel (``labeler.executor``); labels already in the store are skipped."""
    from ase.io import read

    from deepeut.labeling.runner import LabelItem, label_structures, labeler_spec

    items = [
        LabelItem(atoms=a, split=cfg.data.split, source={"kind": "label", "path": str(src), "frame": k})
        for src in sources.paths
        for k, a in enumerate(read(src, index=":"))
    ]
    store = DatasetStore(dataset.store)
    report = label_structures(items, labeler_spec(cfg.labeler), store, cfg.labeler.executor, cfg.labeler.failure_budget)
    store.export()
    write_json_atomic(out / "label.json", report.as_dict())
    log.info(
        "labeled %d, skipped %d (done before), failed %d in %.1f s\n%s",
        report.n_labeled,
        report.n_skipped,
        report.n_failed,
        report.seconds,
        store.summary(),
    )
    store.close()
    return DatasetOutput(dataset, report.as_dict())
