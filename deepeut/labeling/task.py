"""``stage=reference`` (the primary dataset) and ``stage=label`` (label given structures in parallel)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Dict

from deepeut.config.schema import Config, ConfigError
from deepeut.data.store import DatasetStore
from deepeut.data.label import structure_hash
from deepeut.utils.io import write_json_atomic

log = logging.getLogger(__name__)


def store_path(cfg: Config, out: Path) -> Path:
    """The dataset store of this run: ``data.store`` or ``<run dir>/data``."""
    return Path(cfg.data.store) if cfg.data.store else out / "data"


def start_box(cfg: Config, out: Path):
    """The start structure: ``reference.box`` or a freshly built box (written to ``<out>/build``)."""
    from ase.io import read

    if cfg.reference.box:
        path = Path(cfg.reference.box)
        if not path.exists():
            raise ConfigError(f"reference.box: {path} does not exist")
        return read(path)
    from deepeut.systems.task import build

    box = out / "build" / "box.extxyz"
    if not box.exists():
        build(cfg, out / "build")
    return read(box)


def reference(cfg: Config, out: Path) -> Dict:
    """Labeler-driven NVT MD (or imported reference data), frame selection, dataset store."""
    from deepeut.labeling.reference import imported_labels, run_labeler_md, select_frames, trajectory_labels
    from deepeut.labeling.runner import labeler_spec, make_labeler

    t0 = time.perf_counter()
    ref = cfg.reference
    if cfg.labeler.name == "import":
        frames = imported_labels(cfg)
        kind, labeler_hash = "import", "import:" + str(cfg.labeler.imported.path)
    else:
        labeler = make_labeler(labeler_spec(cfg.labeler))
        atoms = start_box(cfg, out)
        traj = run_labeler_md(atoms, labeler, ref, out / "reference_md")
        frames = list(trajectory_labels(traj, labeler))
        kind, labeler_hash = "reference_md", labeler.hash
    train_idx, test_idx = select_frames(len(frames), ref)
    store = DatasetStore(store_path(cfg, out))
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
    return summary


def label(cfg: Config, out: Path) -> Dict:
    """Label the structures of ``data.source`` (extxyz) into the store, in parallel (``labeler.executor``)."""
    from ase.io import read

    from deepeut.labeling.runner import LabelItem, label_structures, labeler_spec

    if not cfg.data.source:
        raise ConfigError("data.source: stage=label needs an extxyz file of structures to label")
    src = Path(cfg.data.source)
    if not src.exists():
        raise ConfigError(f"data.source: {src} does not exist")
    structures = read(src, index=":")
    items = [
        LabelItem(atoms=a, split=cfg.data.split, source={"kind": "label", "path": str(src), "frame": k})
        for k, a in enumerate(structures)
    ]
    store = DatasetStore(store_path(cfg, out))
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
    return report.as_dict()
