"""Atomic file output: a reader never sees a half-written file, a killed run never leaves one."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path`` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; the result gets the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=1) + "\n")


def read_json(path: str | os.PathLike) -> Optional[Dict]:
    """The JSON object in ``path``, or None when there is no such file."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def read_jsonl(path: str | os.PathLike) -> List[Dict]:
    """The JSON objects of the lines of ``path`` (a manifest.jsonl), blank lines skipped; empty when there is no
    such file."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_csv(path: str | os.PathLike, header: Sequence[str], columns: Sequence) -> Path:
    """Columns (equal-length sequences) under ``header`` as a CSV file, written atomically."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(zip(*columns))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, buf.getvalue())


def read_csv_columns(path: str | os.PathLike) -> Dict[str, Any]:
    """The numeric columns (numpy arrays) of a CSV file written by :func:`write_csv`, by header."""
    import csv

    import numpy as np

    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return {name: np.array([float(r[k]) for r in rows[1:]]) for k, name in enumerate(rows[0])}


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (JSON has no NaN; a bare NaN makes the file invalid)."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # numpy scalars
        return json_safe(obj.item())
    return obj


def display_path(path) -> str:
    """``path`` relative to the working directory when inside it (records shipped with an ensemble or a dataset
    hold no machine paths), else as given."""
    import os

    p = Path(path).resolve()
    try:
        return os.path.relpath(p, Path.cwd()) if p.is_relative_to(Path.cwd().resolve()) else str(path)
    except ValueError:
        return str(path)
