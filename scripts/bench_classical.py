#!/usr/bin/env python
"""Classical MD speed: deepeut's classical NVT phase (observables, H5MD frames, checkpoints, progress bar) vs a
plain OpenMM loop (``integrator.step`` only) on the same prmtop, box and settings, in one run; ns/day for each box.

    .venv/bin/python scripts/bench_classical.py [--system ura] [--scales tiny train] [--ps 4] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ns_per_day(ps: float, seconds: float) -> float:
    return ps / 1000.0 / (seconds / 86400.0)


def bench_scale(system: str, scale: str, ps: float, device: str) -> tuple:
    from deepeut.classical.parameters import system_parameters
    from deepeut.classical.protocol import Progress
    from deepeut.classical.task import ReplicaRunner
    from deepeut.config import compose, validate
    from deepeut.systems.box import build_box

    cfg = validate(
        compose(
            [
                "stage=classical",
                f"system={system}",
                f"scale={scale}",
                f"device={device}",
                f"classical.nvt_ps={ps}",
                "classical.checkpoint_every_ps=1.0",
            ]
        )
    )
    box = build_box(cfg.system, cfg.scale.n_ion_pairs, cfg.build)
    params = system_parameters(cfg.system.species, cfg.classical)
    with tempfile.TemporaryDirectory() as tmp:
        runner = ReplicaRunner(cfg, box, params, Path(tmp))
        pos, box_nm = box.atoms.positions / 10.0, box.atoms.cell.array / 10.0
        runner.engine.switch(cfg.classical.constraints, cfg.classical.timestep_fs, 353.0, False, pos, None, box_nm)
        import openmm

        openmm.LocalEnergyMinimizer.minimize(runner.engine.context, 10.0, 500)
        pos, vel, box_nm = runner.engine.state()
        # plain OpenMM: the same context settings, integrator.step only
        runner.engine.switch(cfg.classical.constraints, cfg.classical.timestep_fs, 353.0, False, pos, vel, box_nm)
        n = int(round(ps * 1000 / cfg.classical.timestep_fs))
        runner.engine.integrator.step(50)
        t0 = time.perf_counter()
        runner.engine.integrator.step(n)
        t_plain = time.perf_counter() - t0
        # deepeut: the nvt phase with its observables, H5MD frames every 0.1 ps, checkpoints every 1 ps
        t0 = time.perf_counter()
        runner.phase_nvt("nvt", Progress(phase="nvt"), pos, vel, box_nm)
        t_ours = time.perf_counter() - t0
    return len(box.atoms), ns_per_day(ps, t_plain), ns_per_day(ps, t_ours)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system", default="ura")
    ap.add_argument("--scales", nargs="+", default=["tiny", "train"])
    ap.add_argument("--ps", type=float, default=4.0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    print(
        f"classical NVT (GAFF2, PME, 2 fs, H bonds constrained), {args.system}, {args.ps:g} ps per box, "
        f"device={args.device}"
    )
    print(f"{'scale':>11}{'atoms':>7}{'plain OpenMM ns/day':>21}{'deepeut ns/day':>16}{'ratio':>7}")
    for scale in args.scales:
        atoms, plain, ours = bench_scale(args.system, scale, args.ps, args.device)
        print(f"{scale:>11}{atoms:>7}{plain:>21.1f}{ours:>16.1f}{ours / plain:>7.2f}")


if __name__ == "__main__":
    main()
