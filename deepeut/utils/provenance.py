"""What computed a result: content digests of deepeut's own code and the versions of the libraries that decide
results, the commit when the code is a git checkout, and the hardware. Stage cache keys include the code digest
of the packages a stage runs (so a fixed bug never reuses a stale result); every finished stage records all of it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Dict, Sequence

PACKAGE = Path(__file__).resolve().parents[1]
#: libraries whose version decides numbers deepeut writes
LIBRARIES = (
    "numpy",
    "scipy",
    "torch",
    "nequip",
    "nequip-allegro",
    "ase",
    "tblite",
    "openmm",
    "rdkit",
    "h5py",
    "freud-analysis",
    "vesin",
    "torch-sim-atomistic",
)


@functools.lru_cache(maxsize=None)
def code_digest(packages: Sequence[str] = ()) -> str:
    """16 hex digits of the SHA-256 over the source files of the given sub-packages of deepeut (all when empty),
    plus the shared ground floor (config, utils, trajectory, data)."""
    roots = [PACKAGE / p for p in (tuple(packages) or ("",))] + [
        PACKAGE / p for p in ("config", "utils", "trajectory", "data")
    ]
    h = hashlib.sha256()
    for f in sorted({f for r in roots for f in r.rglob("*.py")}):
        h.update(str(f.relative_to(PACKAGE)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def library_versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


@functools.lru_cache(maxsize=None)
def git_commit() -> str:
    """The checkout's commit (with '+dirty' when files differ), or '' outside a git checkout."""
    try:
        root = PACKAGE.parent
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return commit + ("+dirty" if commit and dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def provenance(packages: Sequence[str] = ()) -> Dict:
    """Code digest, commit, library versions and hardware, for a stage record."""
    return {
        "code_digest": code_digest(tuple(packages)),
        "commit": git_commit(),
        "libraries": library_versions(),
        "hardware": {"machine": platform.machine(), "cpus": os.cpu_count(), "platform": sys.platform},
    }
