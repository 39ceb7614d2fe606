"""``stage=dataset``: print (and write) the summary of a dataset store."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

from deepeut.config.schema import Config, ConfigError
from deepeut.data.store import open_store, StoreError
from deepeut.stage_io import Dataset
from deepeut.utils.io import write_text_atomic


def dataset(cfg: Config, out: Path) -> Dict:
    """``stage=dataset`` from the command line: the store of ``data.store``, then :func:`run_dataset`."""
    if not cfg.data.store:
        raise ConfigError("data.store: stage=dataset needs the path of a dataset store (a run's data/ folder)")
    return run_dataset(Dataset(Path(cfg.data.store)), out)


def run_dataset(data: Dataset, out: Path) -> Dict:
    """Summary table of the store of ``data`` (counts per split and source, force statistics in eV/Å), printed and
    written to ``dataset_summary.txt``."""
    try:
        store = open_store(data.store, must_exist=True)
    except StoreError as exc:
        raise ConfigError(f"data.store: {exc}") from None
    store.recover()
    text = store.summary()
    print(text)
    write_text_atomic(out / "dataset_summary.txt", text + "\n")
    result = {"n_structures": len(store), "manifest_hash": store.manifest_hash()}
    store.close()
    return result
