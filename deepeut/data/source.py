"""The labeled data a stage trains or evaluates on: a dataset store, or the shipped demo dataset.

:func:`training_data` copies the split files into ``<out>/data/`` (so a trained model keeps the exact data it
saw) and returns their paths with the dataset's manifest hash. Energies are in eV, forces in eV/Å.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Optional

from deepeut.data.store import StoreError, manifest_hash, open_store
from deepeut.utils.io import atomic_path, read_jsonl
from deepeut.utils.io import display_path


@dataclass
class DatasetFiles:
    """Split files (extxyz with ``energy`` and ``forces``) and where they came from."""

    train: Path  # the pool every ensemble member splits into train/validation
    test: Path
    calibration: Optional[Path]
    manifest_hash: str
    origin: str  # "store:<path>" or "demo:<system>"
    n_train: int
    n_test: int

    def to_json(self) -> Dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def _count_frames(path: Path) -> int:
    """Frames in an extxyz file (counts the atom-count lines without parsing coordinates)."""
    n, lines = 0, iter(path.read_text().splitlines())
    for line in lines:
        if not line.strip():
            continue
        n += 1
        for _ in range(int(line) + 1):
            next(lines)
    return n


def _copy(src: Path, dest: Path) -> Path:
    opener = gzip.open if src.suffix == ".gz" else open
    with opener(src, "rb") as fin, atomic_path(dest) as tmp, open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    return dest


def from_store(store_dir: str | Path, dest: Path) -> DatasetFiles:
    """Export a dataset store's splits and copy them to ``dest``; the store must hold train and test data."""
    store = open_store(store_dir, must_exist=True)
    try:
        store.recover()
        files = store.export()
        digest = store.manifest_hash()
    finally:
        store.close()
    copied = {split: _copy(files[split], dest / f"{split}.extxyz") for split in ("train", "test", "calibration")}
    counts = {split: _count_frames(path) for split, path in copied.items()}
    for split in ("train", "test"):
        if counts[split] == 0:
            raise StoreError(f"{store_dir}: the dataset store has no '{split}' structures to train on")
    return DatasetFiles(
        copied["train"],
        copied["test"],
        copied["calibration"] if counts["calibration"] else None,
        digest,
        f"store:{display_path(store_dir)}",
        counts["train"],
        counts["test"],
    )


def from_demo(system: str, dest: Path, kind: str = "demo") -> DatasetFiles:
    """The shipped GFN2-xTB dataset of ``system`` (``kind`` demo: ``scale=tiny`` boxes; campaign: the potentials
    campaign's liquid and active-learning frames), unpacked into ``dest``."""
    from deepeut.data.demo import demo_files

    src = demo_files(system, kind)
    rows = read_jsonl(src["manifest"])
    train, test = _copy(src["train"], dest / "train.extxyz"), _copy(src["test"], dest / "test.extxyz")
    return DatasetFiles(
        train, test, None, manifest_hash(rows), f"{kind}:{system}", _count_frames(train), _count_frames(test)
    )


def training_data(store: Optional[str], system: str, dest: Path) -> DatasetFiles:
    """``data.store`` when given, else the shipped demo dataset of ``system``."""
    return from_store(store, dest) if store else from_demo(system, dest)
