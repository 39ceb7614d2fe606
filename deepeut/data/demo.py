"""The shipped GFN2-xTB demo datasets (``scale=tiny``), so the laptop demo does not start by labeling.

``deepeut/data/demo/<system>/`` holds ``train.extxyz.gz`` and ``test.extxyz.gz`` (energy in eV, forces in
eV/Å, provenance in each frame's info) and ``manifest.jsonl`` (the store's rows). Regenerate with
``bash scripts/make_demo_data.sh`` (runs ``python run.py stage=reference system=S ...`` and
``python -m deepeut.data.demo pack``).
"""

from __future__ import annotations

import gzip
import shutil
import sys
from pathlib import Path
from typing import Dict

import numpy as np
from deepeut.errors import StageError

DEMO_DIR = Path(__file__).resolve().parent / "demo"
#: the packed datasets that ship with deepeut, by kind: the demo data and the potentials campaign's xTB data
#: (deepeut/data/campaign/<system>/, written by deepeut.active_learning.snapshot); a dataset origin
#: "<kind>:<system>" (e.g. "campaign:ura") names one
SHIPPED_DIRS = {"demo": DEMO_DIR, "campaign": DEMO_DIR.parent / "campaign"}


class DemoDataMissing(StageError, FileNotFoundError):
    pass


def demo_files(system: str, kind: str = "demo") -> Dict[str, Path]:
    """Paths of the shipped dataset of ``system`` (train, test, manifest); ``kind``: a key of ``SHIPPED_DIRS``."""
    d = SHIPPED_DIRS[kind] / system
    files = {"train": d / "train.extxyz.gz", "test": d / "test.extxyz.gz", "manifest": d / "manifest.jsonl"}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        how = "bash scripts/make_demo_data.sh" if kind == "demo" else f"SYSTEM={system} bash scripts/campaign.sh"
        raise DemoDataMissing(
            f"no shipped {kind} dataset for system '{system}' (missing {', '.join(missing)}); regenerate with {how}"
        )
    return files


def pack(store_dir: Path, dest: Path) -> Dict[str, Path]:
    """Copy a store's split files (gzipped; calibration too when it has any) and manifest into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    for split in ("train", "test", "calibration"):
        src = store_dir / f"{split}.extxyz"
        if split == "calibration" and (not src.exists() or src.stat().st_size == 0):
            continue
        # mtime 0: the same content packs to the same bytes (git sees no change when nothing was added)
        with (
            open(src, "rb") as fin,
            open(dest / f"{split}.extxyz.gz", "wb") as raw,
            gzip.GzipFile(f"{split}.extxyz", "wb", compresslevel=9, fileobj=raw, mtime=0) as fout,
        ):
            shutil.copyfileobj(fin, fout)
        out[split] = dest / f"{split}.extxyz.gz"
    shutil.copy(store_dir / "manifest.jsonl", dest / "manifest.jsonl")
    out["manifest"] = dest / "manifest.jsonl"
    return out


def unpack(src: Path, store_dir: Path) -> int:
    """Restore a packed dataset (:func:`pack`) into the store at ``store_dir`` under its original keys, splits,
    sources and labeler provenance, so that a later labeling run skips these structures; returns how many were
    added (0 when all were there already)."""
    from ase.io import iread

    from deepeut.data.store import open_store
    from deepeut.utils.io import read_jsonl

    store = open_store(store_dir)
    added = set()
    try:
        for path in (Path(src) / f"{split}.extxyz.gz" for split in ("train", "test", "calibration")):
            if path.exists():
                for atoms in iread(str(path), index=":", format="extxyz"):
                    key = str(atoms.info["key"])
                    if store.add(key, *stored_label(atoms)):
                        added.add(key)
        store.restore_recorded([r for r in read_jsonl(Path(src) / "manifest.jsonl") if r["key"] in added])
        store.export()
    finally:
        store.close()
    return len(added)


def stored_label(atoms) -> tuple:
    """(plain atoms, Label, split, source) of one frame of a packed store (energy eV, forces eV/Å, provenance in
    its info), with the hash the labeling run recorded."""
    import json

    from deepeut.data.label import Label

    info, res = atoms.info, atoms.calc.results if atoms.calc is not None else {}
    label = Label(
        energy=float(res.get("energy", info.get("energy"))),
        forces=np.asarray(res.get("forces", atoms.arrays.get("forces")), float),
        labeler=str(info.get("labeler", "")),
        method=str(info.get("method", "")),
        version=str(info.get("labeler_version") or "unknown"),
        settings=json.loads(info.get("labeler_settings") or "{}"),
        attempts=int(info.get("attempts", 1)),
        recorded_settings_hash=info.get("settings_hash"),
    )
    plain = atoms.copy()
    plain.calc = None
    return plain, label, str(info["split"]), json.loads(info.get("source") or "{}")


if __name__ == "__main__":  # python -m deepeut.data.demo pack|unpack <from> <to>
    if len(sys.argv) != 4 or sys.argv[1] not in ("pack", "unpack"):
        sys.exit("usage: python -m deepeut.data.demo pack <store dir> <dest dir> | unpack <packed dir> <store dir>")
    if sys.argv[1] == "unpack":
        print(f"{unpack(Path(sys.argv[2]), Path(sys.argv[3]))} labeled structures restored into {sys.argv[3]}")
        sys.exit(0)
    for k, v in pack(Path(sys.argv[2]), Path(sys.argv[3])).items():
        print(f"{k}: {v} ({v.stat().st_size / 1024:.0f} KiB)")
