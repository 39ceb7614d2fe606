"""The dataset store: labeled structures, one row each, with provenance; nothing recomputed, nothing lost.

Layout of a store directory (``<run>/data/`` by default)::

    manifest.sqlite          the index (source of truth), one row per structure, see COLUMNS
    manifest.jsonl           the same rows as JSON lines (rewritten by export(); for people and scripts)
    structures/<key>.extxyz  one labeled frame each: energy (eV) and forces (eV/Å), written atomically
    failed/<key>.json        why a structure could not be labeled
    train.extxyz             all 'train' structures (the pool each ensemble member splits into train/validation)
    test.extxyz              held-out test structures
    calibration.extxyz       conformal-calibration structures (active learning)

``key`` is the content hash of (structure, labeler settings): the same structure labeled the same way is
stored once. Rows are committed one at a time (SQLite transactions), and a structure file that a worker
wrote but the index never recorded (the run was killed in between) is picked up by :meth:`recover`.
The split files are readable by nequip's ``ASEDataModule`` (keys ``energy`` and ``forces``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from deepeut.data.label import Label
from deepeut.utils.io import atomic_path, write_json_atomic, write_text_atomic
from deepeut.errors import StageError

SPLITS = ("train", "test", "calibration")
COLUMNS = {
    "key": "TEXT PRIMARY KEY",  # content hash of structure + labeler settings
    "split": "TEXT",  # train | test | calibration
    "source": "TEXT",  # JSON: {"kind": "reference_md", "frame": 12} | {"kind": "al", "iteration": 1, ...} | import
    "labeler": "TEXT",
    "method": "TEXT",
    "settings_hash": "TEXT",
    "status": "TEXT",  # ok | failed
    "reason": "TEXT",  # why it failed ('' when ok)
    "energy_eV": "REAL",
    "max_force_eV_A": "REAL",
    "net_force_eV_A": "REAL",
    "n_atoms": "INTEGER",
    "formula": "TEXT",
    "attempts": "INTEGER",
    "created": "REAL",  # unix time
}


def manifest_hash(rows: List[Dict]) -> str:
    """Hash of the ``key`` and ``split`` of manifest rows with status ok (order-independent)."""
    import hashlib

    h = hashlib.sha256()
    for r in sorted((r for r in rows if r.get("status", "ok") == "ok"), key=lambda r: r["key"]):
        h.update(f"{r['key']}:{r['split']};".encode())
    return h.hexdigest()[:16]


class StoreError(StageError):
    """The dataset store is missing, inconsistent, or asked for something it does not hold."""


def label_to_atoms(atoms, label: Label, key: str, split: str, source: Dict):
    """A copy of ``atoms`` carrying ``label`` (SinglePointCalculator) and its provenance in ``info``."""
    from ase.calculators.singlepoint import SinglePointCalculator

    out = atoms.copy()
    out.calc = None
    out.info = {
        "key": key,
        "split": split,
        "labeler": label.labeler,
        "method": label.method,
        "labeler_version": label.version or "unknown",  # an empty value would swallow the next extxyz key
        "settings_hash": label.settings_hash,
        "labeler_settings": json.dumps(label.settings, sort_keys=True, default=str),
        "source": json.dumps(source, sort_keys=True, ensure_ascii=False),  # Å survives extxyz quoting
        "attempts": label.attempts,
        "energy_unit": "eV",
        "force_unit": "eV/A",
    }
    out.calc = SinglePointCalculator(out, energy=label.energy, forces=label.forces)
    return out


def structure_file(root: str | Path, key: str) -> Path:
    return Path(root) / "structures" / f"{key}.extxyz"


def failure_file(root: str | Path, key: str) -> Path:
    return Path(root) / "failed" / f"{key}.json"


def write_labeled_structure(root: str | Path, key: str, atoms, label: Label, split: str, source: Dict) -> Path:
    """Write ``structures/<key>.extxyz`` of the store at ``root`` atomically (what a labeling worker does)."""
    from ase.io import write

    path = structure_file(root, key)
    with atomic_path(path) as tmp:
        write(tmp, label_to_atoms(atoms, label, key, split, source), format="extxyz")
    return path


def write_failure(
    root: str | Path, key: str, atoms, split: str, source: Dict, reason: str, labeler: str = "", settings_hash: str = ""
) -> Path:
    """Write ``failed/<key>.json`` of the store at ``root`` atomically: why a structure could not be labeled."""
    return write_json_atomic(
        failure_file(root, key),
        {
            "key": key,
            "reason": reason,
            "source": source,
            "split": split,
            "labeler": labeler,
            "settings_hash": settings_hash,
            "n_atoms": len(atoms),
            "formula": atoms.get_chemical_formula(),
        },
    )


class DatasetStore:
    """A directory of labeled structures with a SQLite manifest (see the module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        (self.root / "structures").mkdir(parents=True, exist_ok=True)
        (self.root / "failed").mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.root / "manifest.sqlite", timeout=60)
        self._db.row_factory = sqlite3.Row
        cols = ", ".join(f"{k} {v}" for k, v in COLUMNS.items())
        self._db.execute(f"CREATE TABLE IF NOT EXISTS structures ({cols})")
        self._db.commit()

    # ------------------------------------------------------------------ writing
    def structure_path(self, key: str) -> Path:
        return structure_file(self.root, key)

    def has(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM structures WHERE key=?", (key,)).fetchone() is not None

    def add(self, key: str, atoms, label: Label, split: str, source: Dict) -> bool:
        """Store one labeled structure; returns False when ``key`` is already stored."""
        if split not in SPLITS:
            raise StoreError(f"split '{split}' is not one of {', '.join(SPLITS)}")
        if self.has(key):
            return False
        write_labeled_structure(self.root, key, atoms, label, split, source)
        return self.ingest(key)

    def ingest(self, key: str) -> bool:
        """Index the structure file ``structures/<key>.extxyz`` (written by :meth:`add` or a worker)."""
        from ase.io import read

        if self.has(key):
            return False
        path = self.structure_path(key)
        try:
            atoms = read(path, format="extxyz")
        except Exception as exc:
            raise StoreError(f"{path}: unreadable structure file ({exc})") from None
        info = atoms.info
        forces = np.asarray(atoms.get_forces())
        fnorm = np.linalg.norm(forces, axis=1)
        self._insert(
            key=key,
            split=info.get("split", "train"),
            source=info.get("source", "{}"),
            labeler=info.get("labeler", ""),
            method=info.get("method", ""),
            settings_hash=info.get("settings_hash", ""),
            status="ok",
            reason="",
            energy_eV=float(atoms.get_potential_energy()),
            max_force_eV_A=float(fnorm.max()),
            net_force_eV_A=float(np.linalg.norm(forces.sum(0))),
            n_atoms=len(atoms),
            formula=atoms.get_chemical_formula(),
            attempts=int(info["attempts"]) if "attempts" in info else None,
        )
        return True

    def add_failure(
        self, key: str, atoms, split: str, source: Dict, reason: str, labeler: str = "", settings_hash: str = ""
    ) -> None:
        write_failure(self.root, key, atoms, split, source, reason, labeler, settings_hash)
        self.ingest_failure(key)

    def ingest_failure(self, key: str) -> bool:
        """Index the failure file ``failed/<key>.json`` (written by :meth:`add_failure` or a worker)."""
        if self.has(key):
            return False
        d = json.loads(failure_file(self.root, key).read_text())
        self._insert(
            key=key,
            split=d.get("split", "train"),
            source=json.dumps(d.get("source", {}), sort_keys=True),
            labeler=d.get("labeler", ""),
            method="",
            settings_hash=d.get("settings_hash", ""),
            status="failed",
            reason=d.get("reason", ""),
            energy_eV=None,
            max_force_eV_A=None,
            net_force_eV_A=None,
            n_atoms=d.get("n_atoms"),
            formula=d.get("formula", ""),
            attempts=None,
        )
        return True

    def _insert(self, **row) -> None:
        row["created"] = time.time()
        keys = ", ".join(row)
        self._db.execute(
            f"INSERT OR IGNORE INTO structures ({keys}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
        )
        self._db.commit()

    def restore_recorded(self, rows: List[Dict]) -> None:
        """Give stored keys the manifest values a packed manifest recorded for them (creation time, force
        statistics computed before the extxyz round trip), so row order and a re-packed manifest stay the original
        store's (rows of keys not stored are left out)."""
        for r in rows:
            cols = [c for c in r if c in COLUMNS and c != "key"]
            if cols:
                sets = ", ".join(f"{c}=?" for c in cols)
                self._db.execute(f"UPDATE structures SET {sets} WHERE key=?", (*[r[c] for c in cols], r["key"]))
        self._db.commit()

    def recover(self) -> int:
        """Index structure/failure files that workers wrote but the manifest never recorded."""
        n = 0
        for path in sorted((self.root / "structures").glob("*.extxyz")):
            n += self.ingest(path.stem)
        for path in sorted((self.root / "failed").glob("*.json")):
            n += self.ingest_failure(path.stem)
        return n

    # ------------------------------------------------------------------ reading
    def rows(self, split: Optional[str] = None, status: Optional[str] = "ok") -> List[Dict]:
        q, args = "SELECT * FROM structures WHERE 1=1", []
        if split is not None:
            q += " AND split=?"
            args.append(split)
        if status is not None:
            q += " AND status=?"
            args.append(status)
        return [dict(r) for r in self._db.execute(q + " ORDER BY created, key", args)]

    def read(self, split: Optional[str] = None) -> List:
        """Labeled structures (ase.Atoms with energy/forces) of ``split``, in insertion order."""
        from ase.io import read

        return [read(self.structure_path(r["key"]), format="extxyz") for r in self.rows(split)]

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM structures WHERE status='ok'").fetchone()[0])

    def export(self) -> Dict[str, Path]:
        """Rewrite ``<split>.extxyz`` and ``manifest.jsonl`` from the manifest (atomically)."""
        paths = {}
        for split in SPLITS:
            rows = self.rows(split)
            path = self.root / f"{split}.extxyz"
            with atomic_path(path) as tmp:
                with open(tmp, "w") as fout:
                    for r in rows:
                        fout.write(self.structure_path(r["key"]).read_text())
            paths[split] = path
        lines = [json.dumps(r, sort_keys=True) for r in self.rows(status=None)]
        paths["manifest"] = write_text_atomic(self.root / "manifest.jsonl", "\n".join(lines) + ("\n" if lines else ""))
        return paths

    def manifest_hash(self) -> str:
        """Hash of the keys and splits of all ok structures (identifies the training data of a model)."""
        return manifest_hash(self.rows())

    def summary(self) -> str:
        """Counts per split and source kind, and force statistics (eV/Å), as a text table."""
        rows = self.rows(status=None)
        groups: Dict[tuple, List[Dict]] = {}
        for r in rows:
            kind = json.loads(r["source"] or "{}").get("kind", "?")
            groups.setdefault((r["split"], kind, r["status"]), []).append(r)
        head = (
            f"{'split':<12}{'source':<16}{'status':<8}{'n':>6}{'mean max|F| eV/Å':>18}{'max |F| eV/Å':>14}{'atoms':>7}"
        )
        lines = [f"dataset store {self.root}", head, "-" * len(head)]
        for (split, kind, status), rs in sorted(groups.items()):
            f = [r["max_force_eV_A"] for r in rs if r["max_force_eV_A"] is not None]
            natoms = sorted({r["n_atoms"] for r in rs if r["n_atoms"]})
            lines.append(
                f"{split:<12}{kind:<16}{status:<8}{len(rs):>6}"
                f"{(np.mean(f) if f else float('nan')):>18.3f}{(max(f) if f else float('nan')):>14.3f}"
                f"{','.join(map(str, natoms)):>7}"
            )
        failed = [r for r in rows if r["status"] == "failed"]
        for r in failed[:5]:
            lines.append(f"  failed {r['key']}: {r['reason']}")
        return "\n".join(lines)

    def close(self) -> None:
        self._db.close()


def open_store(root: str | Path, must_exist: bool = False) -> DatasetStore:
    root = Path(root)
    if must_exist and not (root / "manifest.sqlite").exists():
        raise StoreError(f"{root}: no dataset store here (manifest.sqlite missing)")
    return DatasetStore(root)
