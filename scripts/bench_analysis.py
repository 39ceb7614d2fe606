#!/usr/bin/env python
"""Full Tables I–III analysis of a synthetic paper-size trajectory: wall time, peak memory, scaling in frames.

Builds the NMA production box (8192 atoms, 46.1 Å), moves every molecule rigidly with Ornstein–Uhlenbeck
velocities (10 fs frames), writes H5MD, and runs ``stage=analysis`` on it in a fresh process per size, so the
peak resident memory (ru_maxrss) is that of the analysis alone.
    .venv/bin/python scripts/bench_analysis.py --frames 500 1000 2000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_trajectory(path: Path, n_frames: int, dt_ps: float = 0.01, seed: int = 0) -> int:
    sys.path.insert(0, str(ROOT))
    from deepeut.config import compose, validate
    from deepeut.trajectory.h5md import OBSERVABLES, H5MDWriter
    from deepeut.systems.box import build_box

    cfg = validate(compose(["system=nma", "scale=production"]))
    box = build_box(cfg.system, cfg.scale.n_ion_pairs, cfg.build)
    mol = box.topology.molecule
    n_mol = mol.max() + 1
    rng = np.random.default_rng(seed)
    gamma, kt_m = 2.0, 1.0  # 1/ps, Å²/ps² → D = 0.5 Å²/ps
    a, s = np.exp(-gamma * dt_ps), np.sqrt(kt_m * (1 - np.exp(-2 * gamma * dt_ps)))
    v = rng.normal(scale=np.sqrt(kt_m), size=(n_mol, 3))
    r = np.zeros((n_mol, 3))
    with H5MDWriter(path, box.atoms.numbers, box.atoms.get_masses(), box.atoms.cell.array, mol) as w:
        for t in range(n_frames):
            w.append(t, t * dt_ps, box.atoms.positions + r[mol], v[mol], {k: 0.0 for k in OBSERVABLES})
            v_new = a * v + s * rng.normal(size=v.shape)
            r += 0.5 * (v + v_new) * dt_ps
            v = v_new
    return len(box.atoms)


def analyse(traj: Path, out: Path) -> dict:
    code = (
        "import resource, sys, time; sys.argv = sys.argv[:1]\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from deepeut.config import compose, validate\n"
        "from deepeut.analysis.task import analysis\n"
        f"cfg = validate(compose(['stage=analysis', 'system=nma', 'scale=production', 'logger=none',"
        f" 'analysis.trajectories=[{traj}]']))\n"
        "from pathlib import Path\n"
        "t0 = time.perf_counter()\n"
        f"analysis(cfg, Path({str(out)!r}))\n"
        "print('RESULT', time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")][0].split()
    return {"seconds": float(line[1]), "peak_MB": float(line[2]) / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[500, 1000])
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.frames:
            traj = Path(tmp) / f"traj_{n}.h5"
            t0 = time.perf_counter()
            n_atoms = write_trajectory(traj, n)
            t_write = time.perf_counter() - t0
            r = analyse(traj, Path(tmp) / f"an_{n}")
            rows.append({"frames": n, "atoms": n_atoms, "write_s": t_write, **r})
            print(
                f"{n_atoms} atoms × {n} frames: analysis {r['seconds']:.1f} s "
                f"({1000 * r['seconds'] / n:.1f} ms/frame), peak memory {r['peak_MB']:.0f} MB "
                f"(trajectory written in {t_write:.0f} s)",
                flush=True,
            )
    if len(rows) > 1:
        per = np.polyfit([r["frames"] for r in rows], [r["seconds"] for r in rows], 1)
        print(
            f"linear fit: {per[0] * 1000:.1f} ms/frame + {per[1]:.1f} s; "
            f"20 000 frames → ~{(per[0] * 20000 + per[1]) / 60:.0f} min"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
