#!/usr/bin/env python
"""MD step overhead: deepeut's ASE engine (H5MD, checkpoints, safety checks, progress) vs a bare ASE
NoseHooverChainNVT loop with nequip's own ASE calculator, same model and box, one run.

    .venv/bin/python scripts/bench_md.py --ensemble outputs/ura_ensemble [--steps 400]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ensemble", required=True)
    ap.add_argument("--steps", type=int, default=400)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from ase import units
    from ase.md.nose_hoover_chain import NoseHooverChainNVT
    from nequip.integrations.ase import NequIPCalculator

    from deepeut.config import compose, validate
    from deepeut.md.dynamics import init_velocities
    from deepeut.md.runner import ReplicaSetup, run_replica
    from deepeut.md.task import md_calculator, start_structure
    from deepeut.training.potential import member_model_files

    cfg = validate(compose([f"ensemble={args.ensemble}", f"md.duration_ps={args.steps * 0.5 / 1000}",
                            "md.save_every_fs=10", "logger=none"]))
    with tempfile.TemporaryDirectory() as tmp:
        setup = start_structure(cfg, 0, Path(tmp) / "box")
        atoms = setup.atoms
        # bare ASE with nequip's calculator
        bare = atoms.copy()
        init_velocities(bare, 353.0, 0)
        bare.calc = NequIPCalculator._from_saved_model(str(member_model_files(args.ensemble)[0]), device="cpu",
                                                        chemical_species_to_atom_type_map=True)
        dyn = NoseHooverChainNVT(bare, timestep=0.5 * units.fs, temperature_K=353.0, tdamp=50 * units.fs, tchain=3)
        dyn.run(5)
        t0 = time.perf_counter()
        dyn.run(args.steps)
        t_bare = time.perf_counter() - t0
        # deepeut's engine (model loaded the same way, H5MD every 20 steps, checkpoints every 200, checks)
        setup.calculator = md_calculator(cfg, Path(tmp))
        t0 = time.perf_counter()
        run_replica(ReplicaSetup(atoms=atoms, calculator=setup.calculator, seed=0, molecule=setup.molecule,
                                 labels=setup.labels, recognizer=setup.recognizer,
                                 expected_counts=setup.expected_counts), cfg.md, Path(tmp) / "run", progress=False)
        t_ours = time.perf_counter() - t0
    print(f"NVT MD, {len(atoms)} atoms, {args.steps} steps of 0.5 fs")
    print(f"  bare ASE + NequIPCalculator {1000 * t_bare / args.steps:7.1f} ms/step")
    print(f"  deepeut md.engine=ase       {1000 * t_ours / args.steps:7.1f} ms/step   overhead "
          f"{100 * (t_ours / t_bare - 1):+.0f} % (H5MD, checkpoints, molecule checks, progress)")


if __name__ == "__main__":
    main()
