#!/usr/bin/env python
"""Labeling throughput: GFN2-xTB (tblite, 1 thread per task) with 1 worker vs 2 local workers, same frames.

.venv/bin/python scripts/bench_labeling.py [--frames 4] [--system ura]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--system", default="ura")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from ase.io import read

    from deepeut.config import compose, validate
    from deepeut.data.demo import demo_files
    from deepeut.data.store import open_store
    from deepeut.labeling.runner import LabelItem, label_structures, labeler_spec

    cfg = validate(compose([f"system={args.system}"]))
    frames = read(demo_files(args.system)["test"], f":{args.frames}")
    times = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(Path(tmp) / "data")
            ex = dataclasses.replace(cfg.labeler.executor, kind="pool", n_workers=workers)
            t0 = time.perf_counter()
            rep = label_structures(
                [LabelItem(a.copy(), "train", {"kind": "bench", "frame": k}) for k, a in enumerate(frames)],
                labeler_spec(cfg.labeler),
                store,
                ex,
                progress=False,
            )
            times[workers] = time.perf_counter() - t0
            store.close()
            assert rep.n_labeled == len(frames), rep.as_dict()
    print(f"GFN2-xTB labels of {len(frames)} {args.system} frames ({len(frames[0])} atoms)")
    for w, t in times.items():
        print(f"  {w} worker(s): {t / len(frames):6.1f} s/structure   throughput ×{times[1] / t:.2f}")


if __name__ == "__main__":
    main()
