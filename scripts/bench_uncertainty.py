#!/usr/bin/env python
"""Ensemble force uncertainty (Eq. 6): deepeut's one pass (neighbour list built once, shared by the members) vs
N_c separate nequip ASE calculators on the same frames, one run.

    .venv/bin/python scripts/bench_uncertainty.py --ensemble outputs/ura_ensemble [--frames 15]
Without --ensemble a 1-epoch 3-member ensemble is trained on the URA demo data first (~1 min).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ensemble", default=None)
    ap.add_argument("--frames", type=int, default=15)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    ens_dir = Path(args.ensemble) if args.ensemble else Path(tmp.name) / "ens"
    if not args.ensemble:
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "run.py"),
                "stage=train",
                "train.max_epochs=1",
                "logger=none",
                f"output_dir={ens_dir}",
            ],
            check=True,
            capture_output=True,
        )
    from ase.io import read
    from nequip.integrations.ase import NequIPCalculator

    from deepeut.training.potential import Ensemble, force_uncertainty, member_model_files

    frames = read(ens_dir / "data" / "test.extxyz", f":{args.frames}")
    ens = Ensemble.load(ens_dir)
    ens.predict(frames[:1])
    t0 = time.perf_counter()
    u_ours = ens.predict(frames).uncertainty()
    t_ours = time.perf_counter() - t0
    calcs = [
        NequIPCalculator._from_saved_model(str(f), device="cpu", chemical_species_to_atom_type_map=True)
        for f in member_model_files(ens_dir)
    ]
    frames[0].copy().calc = calcs[0]
    t0 = time.perf_counter()
    u_ase = []
    for a in frames:
        forces = []
        for c in calcs:
            b = a.copy()
            b.calc = c
            forces.append(b.get_forces())
        u_ase.append(force_uncertainty(np.array(forces)))
    t_ase = time.perf_counter() - t0
    diff = max(np.abs(x - y).max() for x, y in zip(u_ours, u_ase))
    n_at = len(frames[0])
    print(f"Eq. 6 uncertainty, {len(calcs)} members, {len(frames)} frames of {n_at} atoms")
    print(f"  deepeut one pass        {1000 * t_ours / len(frames):8.1f} ms/frame")
    print(
        f"  {len(calcs)} nequip ASE calculators {1000 * t_ase / len(frames):8.1f} ms/frame   "
        f"deepeut speed-up ×{t_ase / t_ours:.2f}   max |Δu| {diff:.1e} eV/Å"
    )


if __name__ == "__main__":
    main()
