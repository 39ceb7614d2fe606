"""Reference-label candidates from the classical stage: one extxyz per replica, split by trajectory.

``python -m deepeut.classical.samples <classical stage dir> <out dir> [--test-replicas 1]`` writes
``<out>/<scale>_r<k>.extxyz`` (every pre-sampled frame of replica k, in time order per temperature) and prints which
files are meant for ``train`` and which for ``test``: the last ``--test-replicas`` replicas are held out whole, so
train and test never share a trajectory (neighbouring frames are correlated).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List


def collect(stage_dir: Path, out_dir: Path, test_replicas: int = 1) -> Dict[str, List[Path]]:
    from ase.io import read, write

    summary = json.loads((stage_dir / "classical.json").read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    reps = sorted(stage_dir.glob("replica_*/samples"), key=lambda p: int(p.parent.name.split("_")[1]))
    split: Dict[str, List[Path]] = {"train": [], "test": []}
    for n, samples in enumerate(reps):
        r = int(samples.parent.name.split("_")[1])
        frames = [read(p) for p in sorted(samples.glob("*.extxyz"))]
        for a in frames:
            a.info.update({"system": summary["system"], "scale": summary["scale"], "replica": r})
        path = out_dir / f"{summary['scale']}_r{r}.extxyz"
        write(path, frames, format="extxyz")
        split["test" if n >= len(reps) - test_replicas else "train"].append(path)
    return split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage_dir", type=Path)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--test-replicas", type=int, default=1)
    args = ap.parse_args()
    for split, paths in collect(args.stage_dir, args.out_dir, args.test_replicas).items():
        for p in paths:
            print(split, p)


if __name__ == "__main__":
    main()
