#!/usr/bin/env python
"""Reading a LAMMPS dump: deepeut's streaming reader vs MDAnalysis's DumpReader, one run, seconds and peak memory.

Writes an 8192-atom ``dump custom`` file (id mol element x y z ix iy iz vx vy vz, atoms unsorted, as LAMMPS writes
them) of ``--frames`` frames, then reads every frame's positions and velocities with each reader in its own
process (peak resident memory from getrusage) and checks that both give the same positions.
    .venv/bin/python scripts/bench_dump.py [--frames 300] [--atoms 8192] [--keep PATH]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ELEMENTS = np.array(["C", "H", "O", "N", "Li", "S", "F"])


def write_dump(path: Path, n_atoms: int, n_frames: int, edge: float = 45.1) -> None:
    rng = np.random.default_rng(0)
    el = ELEMENTS[rng.integers(0, len(ELEMENTS), n_atoms)]
    ids = np.arange(1, n_atoms + 1)
    head = (
        "ITEM: NUMBER OF ATOMS\n{n}\nITEM: BOX BOUNDS pp pp pp\n"
        + f"0 {edge}\n" * 3
        + "ITEM: ATOMS id mol element x y z ix iy iz vx vy vz\n"
    )
    with open(path, "w") as f:
        for t in range(n_frames):
            x = rng.random((n_atoms, 3)) * edge
            img = rng.integers(-2, 3, (n_atoms, 3))
            v = rng.normal(size=(n_atoms, 3)) * 0.01
            order = rng.permutation(n_atoms)
            f.write(f"ITEM: TIMESTEP\n{t * 100}\n" + head.format(n=n_atoms))
            rows = np.column_stack([ids, ids // 10 + 1])[order]
            body = "\n".join(
                f"{i} {m} {e} {a:.5f} {b:.5f} {c:.5f} {p} {q} {r} {d:.6f} {g:.6f} {h:.6f}"
                for (i, m), e, (a, b, c), (p, q, r), (d, g, h) in zip(rows, el[order], x[order], img[order], v[order])
            )
            f.write(body + "\n")


def read_deepeut(path: str) -> dict:
    from deepeut.trajectory.lammps_dump import LammpsDump

    t0 = time.perf_counter()
    checksum = 0.0
    with LammpsDump(path, 0.5) as d:
        for s in range(0, d.n_frames, 256):  # the analysis pass reads 256-frame blocks
            sl = slice(s, min(s + 256, d.n_frames))
            pos, vel = d.positions(sl), d.velocities(sl)
            checksum += float(pos[:, 17].sum()) + 0.0 * float(vel.sum())
        frames = d.n_frames
    return {"seconds": time.perf_counter() - t0, "frames": frames, "checksum": checksum}


def read_mdanalysis(path: str) -> dict:
    import warnings

    import MDAnalysis as mda

    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    u = mda.Universe(
        path,
        format="LAMMPSDUMP",
        topology_format="LAMMPSDUMP",
        lammps_coordinate_convention="unscaled",
        unwrap_images=True,
    )
    checksum = 0.0
    for ts in u.trajectory:
        checksum += float(u.atoms.positions[17].sum()) + 0.0 * float(ts.velocities.sum())
    return {"seconds": time.perf_counter() - t0, "frames": len(u.trajectory), "checksum": checksum}


def child(which: str, path: str) -> None:
    res = {"deepeut": read_deepeut, "MDAnalysis": read_mdanalysis}[which](path)
    res["peak_MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--atoms", type=int, default=8192)
    ap.add_argument("--keep", type=Path, help="write the dump here and keep it")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "bench.lammpstrj"
        write_dump(path, args.atoms, args.frames)
        size = path.stat().st_size / 2**20
        res = {}
        for which in ("deepeut", "MDAnalysis"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", which, str(path)], capture_output=True, text=True, check=True
            )
            res[which] = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"LAMMPS dump, {args.atoms} atoms × {args.frames} frames ({size:.0f} MiB), positions + velocities of "
        "every frame"
    )
    for which, r in res.items():
        print(
            f"  {which:<11} {r['seconds']:7.2f} s  {1000 * r['seconds'] / r['frames']:6.1f} ms/frame  "
            f"peak {r['peak_MiB']:6.0f} MiB   deepeut speed-up ×{r['seconds'] / res['deepeut']['seconds']:5.2f}"
        )
    agree = np.isclose(res["deepeut"]["checksum"], res["MDAnalysis"]["checksum"], rtol=1e-5)
    print(f"  same unwrapped positions (checksum of one atom over all frames): {'yes' if agree else 'NO'}")


if __name__ == "__main__":
    main()
